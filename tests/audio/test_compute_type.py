"""compute_type (faster-whisper's names): int8 Whisper transcribes the committed clips as well as float32,
bad names are one-line errors, and loaded models are cached per compute type."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch

import zoo
from audio.io import load_audio
from audio.transcribe import transcribe
from shared.errors import ConfigError
from shared.quantize import Int8Attention, Int8Linear
from zoo.transcribe import load_model

ROOT = Path(__file__).resolve().parents[2]
SHORT_CLIPS = ("weather.wav", "kitchen.wav", "numbers.wav", "library.wav")


def normalized_words(text: str) -> list[str]:
    return "".join(c if c.isalnum() or c in "' " else " " for c in text.lower()).split()


def word_errors(reference: list[str], hypothesis: list[str]) -> int:
    """Levenshtein distance over words: substitutions + deletions + insertions."""
    previous = list(range(len(hypothesis) + 1))
    for i, ref in enumerate(reference, 1):
        current = [i]
        for j, hyp in enumerate(hypothesis, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ref != hyp)))
        previous = current
    return previous[-1]


def wer(references: list[str], hypotheses: list[str]) -> float:
    refs = [normalized_words(r) for r in references]
    errors = sum(word_errors(r, normalized_words(h)) for r, h in zip(refs, hypotheses))
    return errors / sum(len(r) for r in refs)


def test_word_error_rate_counts_edits():
    assert wer(["a b c d"], ["a x c"]) == 0.5  # one substitution, one deletion
    assert wer(["The cat."], ["the cat"]) == 0.0


def test_int8_transcribes_as_well_as_float32(ct2_dir, examples_dir, transcripts):
    float_model, tokenizer = load_model("tiny.en", device="cpu", compute_type="float32")
    int8_model, _ = load_model("tiny.en", device="cpu", compute_type="int8")
    assert load_model("tiny.en", device="cpu", compute_type="int8")[0] is int8_model  # cached per compute type
    assert int8_model is not float_model
    assert not [m for m in int8_model.modules() if isinstance(m, torch.nn.Linear)]  # every projection is int8
    assert isinstance(int8_model.decoder.head, Int8Linear)
    assert sum(isinstance(m, Int8Attention) for m in int8_model.modules()) == 12  # 4 encoder, 4 + 4 decoder
    assert not any(isinstance(m, Int8Linear) for m in float_model.modules())

    references = [transcripts[name] for name in SHORT_CLIPS]
    texts = {}
    for kind, model in (("float32", float_model), ("int8", int8_model)):
        texts[kind] = [
            transcribe(model, load_audio(examples_dir / name), tokenizer=tokenizer, temperature=0.0,
                       beam_size=None)["text"]
            for name in SHORT_CLIPS
        ]  # fmt: skip
    float_wer, int8_wer = wer(references, texts["float32"]), wer(references, texts["int8"])
    assert float_wer < 0.2, texts["float32"]  # the model works at all
    assert int8_wer <= float_wer + 0.01, (texts["int8"], texts["float32"])


def test_unknown_compute_type_names_the_choices(examples_dir):
    with pytest.raises(ConfigError, match="unknown compute_type 'int4': choose one of default, float32, int8"):
        zoo.transcribe(examples_dir / "weather.wav", compute_type="int4")
    with pytest.raises(ConfigError, match="'float16' does not run on cpu"):
        load_model("tiny.en", device="cpu", compute_type="float16")


def test_cli_rejects_an_unknown_compute_type_in_one_line(examples_dir):
    proc = subprocess.run(
        [sys.executable, "-m", "zoo", "transcribe", str(examples_dir / "weather.wav"), "--compute_type", "int4"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "invalid choice: 'int4'" in proc.stderr and "int8_float32" in proc.stderr
