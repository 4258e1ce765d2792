"""Text <-> token ids for every text model, over a Hugging Face `tokenizers` tokenizer.json.

One class serves WordPiece (BERT, MiniLM), byte-level BPE (GPT-2) and Unigram (T5): the file carries the
model, normalizer, pre-tokenizer, post-processor (special tokens around a sequence) and decoder. Padding and
truncation stored in the file are switched off at load time and applied only when a call asks for them, so a
file written for one sequence length does not silently pad every input to it.

    tok = Tokenizer.from_dir("all-MiniLM-L6-v2/")
    batch = tok.encode_batch(["A man is eating.", "Hi"])   # input_ids (2, T), attention_mask (2, T)
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import torch
from tokenizers import Tokenizer as _Backend

from shared.errors import InputError, WeightsError

TOKENIZER_FILE = "tokenizer.json"
ROLES = ("pad", "bos", "eos", "cls", "sep", "mask", "unk")

# When no tokenizer_config.json names the special tokens, a role goes to the first of these spellings that the
# vocabulary holds (BERT's brackets, RoBERTa/T5's angle brackets, GPT-2's one end-of-text token).
_CONVENTIONAL = {
    "pad": ("[PAD]", "<pad>", "<|pad|>"),
    "bos": ("<s>", "<|startoftext|>", "<|endoftext|>"),
    "eos": ("</s>", "<|endoftext|>"),
    "cls": ("[CLS]", "<cls>"),
    "sep": ("[SEP]", "<sep>"),
    "mask": ("[MASK]", "<mask>"),
    "unk": ("[UNK]", "<unk>", "<|endoftext|>"),
}
# transformers stores "no limit" as a huge integer; anything above this is treated as no limit.
_NO_LIMIT = 10**9


def _token_text(value) -> str | None:
    """A special token as written in tokenizer_config.json / special_tokens_map.json: a string or a dict."""
    if isinstance(value, dict):
        return value.get("content")
    return value if isinstance(value, str) else None


class Tokenizer:
    """A tokenizer.json with its special tokens by role.

    Args:
        backend: a `tokenizers.Tokenizer`.
        special_tokens: role -> token text for any of pad, bos, eos, cls, sep, mask, unk; roles not given are
            found in the file (its padding token, its model's unknown token, then conventional spellings).
        model_max_length: default truncation length when encode_batch gets truncation=True and no max_length.
        padding_side: "right" (encoders) or "left" (batched generation with decoder-only models).
    """

    def __init__(self, backend: _Backend, special_tokens: dict[str, str | None] | None = None,
                 model_max_length: int | None = None, padding_side: str = "right", source: str = "tokenizer"):
        if padding_side not in ("left", "right"):
            raise InputError(f"padding_side must be 'left' or 'right', got {padding_side!r}")
        self.backend = backend
        self.source = source
        self.model_max_length = model_max_length
        self.padding_side = padding_side
        backend.no_padding()
        backend.no_truncation()
        given = {k: v for k, v in (special_tokens or {}).items() if v is not None}
        unknown = sorted(set(given) - set(ROLES))
        if unknown:
            raise InputError(f"unknown special-token role(s) {', '.join(unknown)}; "
                             f"roles are {', '.join(ROLES)}")
        self.special_tokens: dict[str, str | None] = {role: given.get(role) for role in ROLES}
        for role, token in given.items():
            if backend.token_to_id(token) is None:
                raise WeightsError(f"{source}: special token {token!r} ({role}) is not in the vocabulary")

    # ----------------------------------------------------------------------------------------- loading

    @classmethod
    def from_file(cls, path: str | Path, special_tokens: dict[str, str | None] | None = None,
                  **kwargs) -> Tokenizer:
        """Load a tokenizer.json (or a folder holding one); keyword arguments as in the constructor.

        Roles missing from `special_tokens` are found in the file; a role given as None has no token.
        """
        path = Path(path).expanduser()
        if path.is_dir():
            return cls.from_dir(path, special_tokens=special_tokens, **kwargs)
        if not path.is_file():
            raise WeightsError(f"{path}: tokenizer file not found; "
                               "pass a tokenizer.json or a folder holding one")
        try:
            backend = _Backend.from_file(str(path))
        except Exception as err:  # the Rust side raises plain Exceptions with multi-line messages
            reason = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise WeightsError(f"{path}: not a valid tokenizer.json ({reason})") from None
        specials = dict(special_tokens or {})
        padding = backend.padding or {}
        found = {"pad": padding.get("pad_token"), "unk": getattr(backend.model, "unk_token", None)}
        for role in ROLES:
            if role in specials:
                continue
            candidates = ((found.get(role),) if found.get(role) else ()) + _CONVENTIONAL[role]
            specials[role] = next((t for t in candidates if backend.token_to_id(t) is not None), None)
        return cls(backend, specials, source=str(path), **kwargs)

    @classmethod
    def from_dir(cls, directory: str | Path, **kwargs) -> Tokenizer:
        """Load tokenizer.json from a folder, with roles and max length from tokenizer_config.json and
        special_tokens_map.json when the folder has them (as Hugging Face model folders do)."""
        directory = Path(directory).expanduser()
        if not directory.is_dir():
            raise WeightsError(f"{directory}: not a folder; pass a folder holding {TOKENIZER_FILE}")
        path = directory / TOKENIZER_FILE
        if not path.is_file():
            raise WeightsError(f"{directory}: no {TOKENIZER_FILE} in this folder; pass a folder with a "
                               f"Hugging Face fast-tokenizer file")
        config: dict = {}
        for name in ("special_tokens_map.json", "tokenizer_config.json"):
            file = directory / name
            if file.is_file():
                try:
                    config.update(json.loads(file.read_text(encoding="utf-8")))
                except json.JSONDecodeError as err:
                    raise WeightsError(f"{file}: not valid JSON ({err})") from None
        # A folder with a tokenizer config decides every role (absent means none, as in transformers).
        specials = {role: _token_text(config.get(f"{role}_token")) for role in ROLES} if config else {}
        specials.update(kwargs.pop("special_tokens", None) or {})
        max_length = config.get("model_max_length")
        limited = isinstance(max_length, int) and max_length < _NO_LIMIT
        kwargs.setdefault("model_max_length", max_length if limited else None)
        if config.get("padding_side") in ("left", "right"):
            kwargs.setdefault("padding_side", config["padding_side"])
        return cls.from_file(path, special_tokens=specials, **kwargs)

    # -------------------------------------------------------------------------------------- vocabulary

    @property
    def vocab_size(self) -> int:
        """Number of ids, added tokens included."""
        return self.backend.get_vocab_size(with_added_tokens=True)

    def __len__(self) -> int:
        return self.vocab_size

    def token_to_id(self, token: str) -> int | None:
        return self.backend.token_to_id(token)

    def id_to_token(self, index: int) -> str | None:
        return self.backend.id_to_token(index)

    def special_id(self, role: str) -> int | None:
        """The id of a special token by role (pad, bos, eos, cls, sep, mask, unk), or None if it has none."""
        if role not in ROLES:
            raise InputError(f"unknown special-token role {role!r}; roles are {', '.join(ROLES)}")
        token = self.special_tokens[role]
        return None if token is None else self.backend.token_to_id(token)

    pad_id = property(lambda self: self.special_id("pad"))
    bos_id = property(lambda self: self.special_id("bos"))
    eos_id = property(lambda self: self.special_id("eos"))
    cls_id = property(lambda self: self.special_id("cls"))
    sep_id = property(lambda self: self.special_id("sep"))
    mask_id = property(lambda self: self.special_id("mask"))
    unk_id = property(lambda self: self.special_id("unk"))

    @property
    def all_special_ids(self) -> list[int]:
        """Ids of every special token: the roles above plus tokens the file marks special."""
        ids = {self.special_id(role) for role in ROLES} | set(self.backend.get_added_tokens_decoder())
        added = self.backend.get_added_tokens_decoder()
        return sorted(i for i in ids if i is not None and (i not in added or added[i].special))

    # -------------------------------------------------------------------------------- encode / decode

    def tokenize(self, text: str, add_special_tokens: bool = False) -> list[str]:
        """Token strings of one text."""
        return self.backend.encode(_check_text(text), add_special_tokens=add_special_tokens).tokens

    def encode(self, text: str, pair: str | None = None, add_special_tokens: bool = True) -> list[int]:
        """Ids of one text (or a text pair, e.g. BERT's sentence A and B), with special tokens by default."""
        pair = None if pair is None else _check_text(pair)
        return self.backend.encode(_check_text(text), pair, add_special_tokens=add_special_tokens).ids

    def decode(self, ids: Sequence[int] | torch.Tensor, skip_special_tokens: bool = True) -> str:
        """Text of one id sequence (list or 1-D tensor)."""
        if isinstance(ids, torch.Tensor):
            if ids.dim() != 1:
                raise InputError(f"decode takes one sequence of ids, got a tensor of shape "
                                 f"{tuple(ids.shape)}; use decode_batch for a batch")
            ids = ids.tolist()
        ids = list(ids)
        bad = [i for i in ids if not isinstance(i, int) or not 0 <= i < self.vocab_size]
        if bad:
            raise InputError(f"cannot decode id {bad[0]!r}: ids must be integers in [0, {self.vocab_size})")
        return self.backend.decode(ids, skip_special_tokens=skip_special_tokens)

    def decode_batch(self, batch: Sequence[Sequence[int]] | torch.Tensor, skip_special_tokens: bool = True):
        """Texts of a batch of id sequences; padding disappears with skip_special_tokens."""
        rows = batch.tolist() if isinstance(batch, torch.Tensor) else list(batch)
        return [self.decode(row, skip_special_tokens) for row in rows]

    def encode_batch(self, texts: Sequence[str] | str, pairs: Sequence[str] | None = None,
                     padding: bool | str = True, truncation: bool = True, max_length: int | None = None,
                     add_special_tokens: bool = True, padding_side: str | None = None,
                     pad_to_multiple_of: int | None = None) -> dict[str, torch.Tensor]:
        """Encode several texts into padded tensors.

        padding: True / "longest" pads to the longest text, "max_length" to max_length, False pads nothing
            (the texts must then encode to one length). truncation: cut each text to max_length tokens
            (special tokens included); max_length defaults to model_max_length, and to no limit without one.
            A tokenizer without a pad token (GPT-2) pads with its eos token; the attention mask marks it.

        Returns input_ids (B, T) long, attention_mask (B, T) bool (True = real token) and
        token_type_ids (B, T) long (0 for the first text, 1 for its pair).
        """
        texts = [texts] if isinstance(texts, str) else list(texts)
        if not texts:
            raise InputError("encode_batch got no texts; pass a non-empty list of strings")
        texts = [_check_text(t) for t in texts]
        if pairs is not None:
            pairs = [_check_text(p) for p in ([pairs] if isinstance(pairs, str) else pairs)]
            if len(pairs) != len(texts):
                raise InputError(f"got {len(texts)} texts but {len(pairs)} pairs; pass one pair per text")
        if padding not in (True, False, "longest", "max_length", "do_not_pad"):
            raise InputError(f"padding must be True, False, 'longest' or 'max_length', got {padding!r}")
        limit = (max_length or self.model_max_length) if truncation else None
        if padding == "max_length" and max_length is None:
            raise InputError("padding='max_length' needs max_length")
        side = padding_side or self.padding_side
        if side not in ("left", "right"):
            raise InputError(f"padding_side must be 'left' or 'right', got {side!r}")
        inputs = texts if pairs is None else list(zip(texts, pairs))
        backend = self.backend
        try:
            if limit is not None:
                backend.enable_truncation(limit, strategy="longest_first")
            if padding in (True, "longest", "max_length"):
                pad_id = self.pad_id if self.pad_id is not None else (self.eos_id or 0)
                backend.enable_padding(direction=side, pad_id=pad_id, pad_type_id=0,
                                       pad_token=backend.id_to_token(pad_id) or "",
                                       length=max_length if padding == "max_length" else None,
                                       pad_to_multiple_of=pad_to_multiple_of)
            encodings = backend.encode_batch(inputs, add_special_tokens=add_special_tokens)
        except Exception as err:
            raise InputError(f"cannot encode this batch: {str(err).splitlines()[0]}") from None
        finally:
            backend.no_padding()
            backend.no_truncation()
        lengths = {len(e.ids) for e in encodings}
        if len(lengths) > 1:
            raise InputError("texts encode to different lengths and padding is off; pass padding=True")
        return {
            "input_ids": torch.tensor([e.ids for e in encodings], dtype=torch.long),  # (B, T)
            "attention_mask": torch.tensor([e.attention_mask for e in encodings], dtype=torch.bool),
            "token_type_ids": torch.tensor([e.type_ids for e in encodings], dtype=torch.long),
        }

    def __call__(self, texts: Sequence[str] | str, **kwargs) -> dict[str, torch.Tensor]:
        """Same as encode_batch."""
        return self.encode_batch(texts, **kwargs)

    def __repr__(self) -> str:
        roles = ", ".join(f"{r}={t!r}" for r, t in self.special_tokens.items() if t is not None)
        return f"Tokenizer({type(self.backend.model).__name__}, vocab={self.vocab_size}, {roles})"


def _check_text(text) -> str:
    if not isinstance(text, str):
        raise InputError(f"expected text as a string, got {type(text).__name__}")
    return text
