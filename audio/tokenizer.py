"""Whisper's tokenizer on top of a HF `tokenizers` tokenizer.json (GPT-2 byte-level BPE + Whisper's specials).

Every special id is looked up in the file by its token text. Timestamp tokens are the exception: the
tokenizer.json files shipped with CTranslate2/HF conversions stop at <|notimestamps|>, so the timestamp ids
are derived as in Whisper's vocabulary: <|0.00|> = no_timestamps + 1, then one id per 0.02 s up to 30.00 s.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from tokenizers import Tokenizer

TIME_PRECISION = 0.02  # seconds per timestamp token
N_TIMESTAMPS = 1501  # <|0.00|> ... <|30.00|>
# openai-whisper decides multilingual by vocabulary size: English-only models have 51864 entries
# (GPT-2's 50257 + specials + timestamps), multilingual ones at least 51865 (one more text token).
MULTILINGUAL_MIN_VOCAB = 51865

# What Whisper keeps out of transcripts by default (speaker tags, music notes, bracketed annotations),
# while basic punctuation stays allowed. A symbol is suppressed when it is a single token, alone or after a
# space; the music symbols (U+2640..U+267F) are suppressed by their first token whatever the split,
# which is safe because their UTF-8 forms share their leading bytes.
_NON_SPEECH_SYMBOLS = (
    list('"#()*+/:;<=>@[\\]^_`{|}~「」『』')
    + "<< >> <<< >>> -- --- -( -[ (' (\" (( )) ((( ))) [[ ]] {{ }} ♪♪ ♪♪♪".split()
)
_MUSIC_SYMBOLS = "♩♪♫♬♭♮♯"

_LANGUAGE_TOKEN = re.compile(r"^<\|([a-z]{2,3})\|>$")
# Codes some converted files use where Whisper uses the current ISO 639-1 code (same id either way):
# HF's Whisper vocabularies spell Hebrew <|iw|>, openai-whisper <|he|>.
_LANGUAGE_CODE_ALIASES = {"iw": "he"}


class WhisperTokenizer:
    """Text <-> token ids for Whisper, with the special ids the decoder needs.

    Args:
        path: a tokenizer.json, or a folder holding one.
        multilingual: override the English-only/multilingual decision (default: from the vocabulary size,
            as openai-whisper does).
    """

    def __init__(self, path: str | os.PathLike, multilingual: bool | None = None):
        path = Path(path)
        if path.is_dir():
            path = path / "tokenizer.json"
        try:
            spec = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise ValueError(f"{path}: cannot read a tokenizer.json ({err})") from None
        # The converted files add a prefix space and wrap every encoding in <|startoftranscript|>
        # <|notimestamps|> ... <|endoftext|>; Whisper's own (tiktoken) encoding does neither, and the
        # decoder builds its prompt itself.
        if isinstance(spec.get("pre_tokenizer"), dict) and spec["pre_tokenizer"].get("type") == "ByteLevel":
            spec["pre_tokenizer"]["add_prefix_space"] = False
        spec["post_processor"] = None
        self.path = path
        self._tok = Tokenizer.from_str(json.dumps(spec))
        self._non_speech: tuple[int, ...] | None = None

        self.special_tokens: dict[str, int] = {
            t["content"]: t["id"] for t in spec.get("added_tokens", []) if t.get("special")
        }
        self.eot = self._special("<|endoftext|>")
        self.sot = self._special("<|startoftranscript|>")
        self.transcribe = self._special("<|transcribe|>")
        self.translate = self._special("<|translate|>")
        self.sot_lm = self._special("<|startoflm|>")
        self.sot_prev = self._special("<|startofprev|>")
        self.no_timestamps = self._special("<|notimestamps|>")
        # Older files call it <|nocaptions|>, newer ones <|nospeech|>; same role, same id.
        self.no_speech: int | None = self.special_tokens.get(
            "<|nospeech|>", self.special_tokens.get("<|nocaptions|>")
        )
        self.timestamp_begin = self.no_timestamps + 1
        self.timestamp_end = self.timestamp_begin + N_TIMESTAMPS - 1
        self.vocab_size = self.timestamp_begin + N_TIMESTAMPS  # the model's n_vocab
        if self._tok.get_vocab_size(with_added_tokens=True) > self.timestamp_begin:
            raise ValueError(f"{path}: ids beyond <|notimestamps|> would collide with the timestamp ids")

        # Language tokens in id order: <|en|> first, so index = the language's position in Whisper's list.
        languages = sorted(
            (token_id, m.group(1))
            for token, token_id in self.special_tokens.items()
            if (m := _LANGUAGE_TOKEN.match(token))
        )
        self.language_tokens: dict[str, int] = {
            _LANGUAGE_CODE_ALIASES.get(code, code): token_id for token_id, code in languages
        }
        if multilingual is None:
            multilingual = self.vocab_size >= MULTILINGUAL_MIN_VOCAB
        self.multilingual = multilingual

    def _special(self, text: str) -> int:
        if text not in self.special_tokens:
            raise ValueError(f"{self.path}: special token {text} is missing; is this a Whisper tokenizer?")
        return self.special_tokens[text]

    # -- prompts --------------------------------------------------------------------------------------

    def sot_sequence(self, language: str | None = None, task: str | None = None) -> tuple[int, ...]:
        """The decoder prompt: <|startoftranscript|>, then for multilingual models <|lang|> <|task|>.

        English-only models take just <|startoftranscript|>; asking them for another language or for
        translation is an error. Multilingual models default to English transcription.
        """
        if task not in (None, "transcribe", "translate"):
            raise ValueError(f"task must be 'transcribe' or 'translate', got {task!r}")
        if not self.multilingual:
            if language not in (None, "en"):
                raise ValueError(f"this English-only tokenizer cannot transcribe language {language!r}")
            if task == "translate":
                raise ValueError("this English-only tokenizer cannot translate; use a multilingual model")
            return (self.sot,)
        task_token = self.translate if task == "translate" else self.transcribe
        return (self.sot, self.to_language_token(language or "en"), task_token)

    def to_language_token(self, language: str) -> int:
        """The id of <|language|> for a language code such as "en" or "de"."""
        language = _LANGUAGE_CODE_ALIASES.get(language, language)
        if language not in self.language_tokens:
            raise ValueError(f"unknown language code {language!r}; known: {', '.join(self.language_tokens)}")
        return self.language_tokens[language]

    # -- text ------------------------------------------------------------------------------------------

    def encode(self, text: str) -> list[int]:
        """Token ids of `text` (no special tokens added; no prefix space added)."""
        return self._tok.encode(text, add_special_tokens=False).ids

    def decode(self, ids) -> str:
        """Text of the ordinary tokens in `ids`; special and timestamp ids (>= eot) are dropped."""
        return self._tok.decode([int(i) for i in ids if int(i) < self.eot], skip_special_tokens=False)

    def decode_with_timestamps(self, ids) -> str:
        """Text with timestamp ids rendered as "<|1.08|>"; other special ids are dropped."""
        pieces: list[str] = []
        run: list[int] = []  # ordinary tokens since the last timestamp, decoded together so bytes rejoin
        for token in (int(i) for i in ids):
            if token < self.eot:
                run.append(token)
            elif self.timestamp_begin <= token <= self.timestamp_end:
                pieces.append(self._tok.decode(run, skip_special_tokens=False))
                pieces.append(f"<|{(token - self.timestamp_begin) * TIME_PRECISION:.2f}|>")
                run = []
        pieces.append(self._tok.decode(run, skip_special_tokens=False))
        return "".join(pieces)

    # -- suppression -----------------------------------------------------------------------------------

    def non_speech_tokens(self) -> tuple[int, ...]:
        """Sorted ids Whisper suppresses to keep annotations like "[MUSIC]" or "♪♪" out of transcripts.

        Hyphen and apostrophe are suppressed only at the start of a word (" -", " '"), so "co-op" and
        "don't" still decode.
        """
        if self._non_speech is not None:
            return self._non_speech
        result = {self.encode(" -")[0], self.encode(" '")[0]}
        for symbol in _NON_SPEECH_SYMBOLS:
            for ids in (self.encode(symbol), self.encode(" " + symbol)):
                if len(ids) == 1:
                    result.add(ids[0])
        for symbol in _MUSIC_SYMBOLS:
            result.add(self.encode(symbol)[0])
            result.add(self.encode(" " + symbol)[0])
        self._non_speech = tuple(sorted(result))  # ~100 encodes: worth computing once
        return self._non_speech

    def suppress_tokens(self) -> tuple[int, ...]:
        """openai-whisper's default suppress set (suppress_tokens="-1"): non-speech tokens plus the
        task/prompt specials and no-speech, which must never be sampled."""
        specials = {self.transcribe, self.translate, self.sot, self.sot_prev, self.sot_lm}
        if self.no_speech is not None:
            specials.add(self.no_speech)
        return tuple(sorted(set(self.non_speech_tokens()) | specials))

    def begin_suppress_tokens(self) -> tuple[int, ...]:
        """Suppressed at the first sampled position only: a blank (space) and end-of-text."""
        return (self.encode(" ")[0], self.eot)

    def __len__(self) -> int:
        return self.vocab_size
