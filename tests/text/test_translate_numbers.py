"""The original Transformer learns to spell out numbers it never saw."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "translate_numbers.py"
WEIGHTS = EXAMPLE.parent / "numbers"
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


def test_shipped_weights_translate_held_out_numbers():
    """The checkpoint in examples/numbers spells out >= 95% of the 2,000 held-out numbers exactly (what the
    demo runs), as training.json beside it records."""
    recorded = json.loads((WEIGHTS / "training.json").read_text())
    assert (WEIGHTS / "model.safetensors").stat().st_size < 5_000_000
    metrics = run_example("--checkpoint", str(WEIGHTS), timeout=300)
    assert metrics["held_out"] == recorded["held_out"] == 2000
    assert metrics["exact_match"] >= 0.95, metrics
    assert metrics["exact_match"] == pytest.approx(recorded["exact_match"], abs=0.005), (metrics, recorded)


@pytest.mark.slow
def test_learns_held_out_numbers():
    """A fixed number of steps with fixed seeds on one thread: the same run on any machine. 300 steps measured
    99.9% exact match (83 s on one thread of a busy 2-core machine); the timeout only catches a hang."""
    metrics = run_example("--steps", "300", "--seed", "0", timeout=1200)
    assert metrics["steps"] == 300 and metrics["held_out"] == 2000
    assert metrics["exact_match"] >= 0.98, metrics


def run_example(*args: str, timeout: float) -> dict:
    """Run the script as a user would; returns its --json line."""
    result = subprocess.run([sys.executable, str(EXAMPLE), *args, "--json"], capture_output=True, text=True,
                            timeout=timeout)
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1])
