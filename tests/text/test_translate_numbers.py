"""The original Transformer learns to spell out numbers it never saw."""

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "translate_numbers.py"
sys.path.insert(0, str(EXAMPLE.parent))

from translate_numbers import Vocab, number_to_words, split_numbers  # noqa: E402


def test_number_words():
    assert number_to_words(407) == "four hundred seven"
    assert number_to_words(0) == "zero"
    assert number_to_words(19) == "nineteen"
    assert number_to_words(90) == "ninety"
    assert number_to_words(12_000) == "twelve thousand"
    assert number_to_words(99_999) == "ninety nine thousand nine hundred ninety nine"


def test_split_holds_numbers_out():
    train, test = split_numbers(100_000, 2000, seed=0)
    assert len(test) == 2000 and not set(train) & set(test)
    vocab = Vocab()
    assert vocab.decode(vocab.encode_target(407)[1:]) == "four hundred seven"


@pytest.mark.slow
def test_learns_held_out_numbers():
    started = time.monotonic()
    result = subprocess.run([sys.executable, str(EXAMPLE), "--steps", "600", "--seconds", "160", "--seed", "0",
                             "--json"], capture_output=True, text=True, timeout=400)
    assert result.returncode == 0, result.stderr[-2000:]
    metrics = json.loads(result.stdout.strip().splitlines()[-1])
    assert metrics["exact_match"] >= 0.95, metrics
    print(f"exact match {metrics['exact_match']:.3f} after {metrics['steps']} steps "
          f"in {time.monotonic() - started:.0f}s")
