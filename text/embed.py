"""Sentence embeddings: strings in, L2-normalised vectors out (the sentence-transformers recipe).

Sentences are tokenized in batches sorted by length, so each batch pads only to its own longest sentence;
the vectors come back in the caller's order. The model is any zoo BERT: its last hidden states are averaged
over real tokens and normalised, whatever head its task has.
"""

from collections.abc import Sequence

import torch

from shared.errors import ConfigError, InputError
from shared.inference import prepare_for_inference
from text.bert import Bert, SentenceEmbeddingHead
from text.tokenizer import Tokenizer


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


class SentenceEncoder:
    """A BERT-family model with its tokenizer.

    Args:
        model: a zoo Bert (usually task="embedding", e.g. minilm_l6 with its weights).
        tokenizer: the model's tokenizer.
        max_length: tokens per sentence, special tokens included (all-MiniLM-L6-v2 was trained with 256);
            longer sentences are truncated. Defaults to the model's position table size.
        device: where to run; CUDA when available by default.
        dtype: run under autocast in this dtype (e.g. torch.bfloat16 on a GPU); None keeps float32.
    """

    def __init__(self, model: Bert, tokenizer: Tokenizer, max_length: int | None = None,
                 device: str | torch.device | None = None, dtype: torch.dtype | None = None):
        if not isinstance(model, Bert):
            raise ConfigError(f"sentence embeddings need a BERT-family model, got {type(model).__name__}")
        self.device = torch.device(device) if device is not None else default_device()
        self.model = prepare_for_inference(model.to(self.device).eval())
        self.tokenizer = tokenizer
        self.max_length = max_length or model.config.max_len
        self.dtype = dtype
        self.pool = SentenceEmbeddingHead()

    @property
    def dim(self) -> int:
        return self.model.config.dim

    @torch.inference_mode()
    def encode(self, sentences: Sequence[str] | str, batch_size: int = 32) -> torch.Tensor:
        """sentences (N strings) -> (N, D) float32 unit vectors on the CPU, in input order."""
        sentences = [sentences] if isinstance(sentences, str) else list(sentences)
        if not sentences:
            raise InputError("no sentences to embed; pass at least one")
        if not all(isinstance(s, str) for s in sentences):
            raise InputError("sentences must be strings")
        if batch_size < 1:
            raise InputError(f"batch_size must be at least 1, got {batch_size}")
        # Longest first: a batch then pads to a length its own sentences need.
        order = sorted(range(len(sentences)), key=lambda i: -len(sentences[i]))
        out = torch.empty(len(sentences), self.dim)
        for start in range(0, len(order), batch_size):
            index = order[start:start + batch_size]
            batch = self.tokenizer.encode_batch([sentences[i] for i in index], max_length=self.max_length)
            out[index] = self._embed(batch).float().cpu()
        return out

    def _embed(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        ids = batch["input_ids"].to(self.device)  # (B, T)
        mask = batch["attention_mask"].to(self.device)
        types = batch["token_type_ids"].to(self.device)
        with torch.autocast(self.device.type, dtype=self.dtype, enabled=self.dtype is not None):
            hidden = self.model.forward_features(ids, mask, types)  # (B, T, D)
        return self.pool(hidden.float(), mask)  # (B, D)

    __call__ = encode


def embed(sentences: Sequence[str] | str, model: Bert, tokenizer: Tokenizer, batch_size: int = 32,
          device: str | torch.device | None = None, max_length: int | None = None) -> torch.Tensor:
    """One-off embedding of sentences with a model and tokenizer: (N, D) unit vectors."""
    return SentenceEncoder(model, tokenizer, max_length, device).encode(sentences, batch_size)
