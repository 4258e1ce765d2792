"""Grading melodies with the pitch tracker: clean renders score full marks, wrong ones do not."""

import math

import numpy as np
import pytest

from audio.melodies import CLIP_SECONDS, SAMPLE_RATE, melody_notes, render, sample_prompts
from audio.music_metrics import grade, grade_many, summarize, tempo_of, tempo_word, track_notes
from shared.errors import InputError

SR = SAMPLE_RATE


@pytest.fixture(scope="module")
def clean():
    """40 varied prompts (train and held-out, every timbre and tempo), their clean renders and grades."""
    prompts = sample_prompts(32, 0, "train") + sample_prompts(8, 0, "holdout")
    wavs = [render(p, seed=i) for i, p in enumerate(prompts)]
    return prompts, wavs, grade_many(wavs, SR, prompts)


def test_clean_renders_score_full_marks(clean):
    prompts, _, results = clean
    summary = summarize(results, prompts)
    assert summary["note_accuracy"] >= 95.0 and summary["exact"] >= 90.0 and summary["tempo"] >= 95.0
    assert set(summary["by"]["timbre"]) == {"soft sine", "bright square", "plucked string", "warm organ"}
    assert min(s["note_accuracy"] for s in summary["by"]["timbre"].values()) >= 90.0


def test_track_notes_reads_each_note_in_tune(clean):
    prompts, wavs, _ = clean
    readings = track_notes(wavs[0], SR, prompts[0])
    assert len(readings) == len(melody_notes(prompts[0]))
    assert all(abs(r - n) < 0.3 for r, n in zip(readings, melody_notes(prompts[0])))


def test_wrong_key_or_reversed_melody_scores_low():
    wav = render("a slow rising C major scale on a bright square", seed=2)
    assert grade(wav, SR, "a slow rising C major scale on a bright square")["exact"]
    for other in ("a slow rising D major scale on a bright square", "a slow falling C major scale on a bright square"):
        result = grade(wav, SR, other)
        assert result["note_accuracy"] <= 0.25 and not result["exact"]


def test_octave_errors_count_as_wrong_notes_but_right_pitch_classes():
    prompt = "a slow rising C major arpeggio on a soft sine"
    t = np.arange(round(0.4 * SR)) / SR
    notes = [0.5 * np.sin(2 * np.pi * 440 * 2 ** ((n + 12 - 69) / 12) * t) * np.hanning(len(t))
             for n in melody_notes(prompt)]
    wav = np.concatenate(notes)  # every note an octave too high
    result = grade(wav, SR, prompt)
    assert result["note_accuracy"] == 0.0 and result["pitch_class_accuracy"] == 1.0


def test_silence_scores_zero():
    prompt = "a fast rising E minor scale on a warm organ"
    result = grade(np.zeros(round(CLIP_SECONDS * SR), np.float32), SR, prompt)
    assert result["note_accuracy"] == 0.0 and not result["exact"] and not result["tempo_ok"]
    assert result["notes"] == [None] * 8 and math.isnan(result["seconds_per_note"])


def test_tempo_is_read_from_onsets():
    slow, fast = "a slow falling G major scale on a plucked string", "a fast falling G major scale on a plucked string"
    assert abs(tempo_of(render(slow, 1), SR) - 0.4) < 0.03 and abs(tempo_of(render(fast, 1), SR) - 0.2) < 0.03
    assert grade(render(slow, 1), SR, slow)["tempo_ok"] and not grade(render(slow, 1), SR, fast)["tempo_ok"]
    assert [tempo_word(s) for s in (0.4, 0.5, 0.25, 0.19, 1.0, 0.05, math.nan)] == \
        ["slow", "slow", "fast", "fast", None, None, None]


def test_summarize_counts_notes_clips_and_attribute_values():
    prompts = ["a slow rising C major scale on a soft sine", "a fast rising C major arpeggio on a warm organ"]
    results = [
        {"right": [True] * 6 + [False] * 2, "notes": [60, 62, 64, 65, 67, 69, 59, None],
         "expected": melody_notes(prompts[0]), "exact": False, "tempo_ok": True},
        {"right": [True] * 4, "notes": [60, 64, 67, 72], "expected": melody_notes(prompts[1]), "exact": True,
         "tempo_ok": False},
    ]
    summary = summarize(results, prompts)
    assert summary["clips"] == 2 and summary["note_accuracy"] == pytest.approx(100 * 10 / 12)
    assert summary["exact"] == 50.0 and summary["tempo"] == 50.0
    assert summary["timbre=soft sine/note_accuracy"] == 75.0 and summary["tempo=fast/exact"] == 100.0
    assert summary["by"]["pattern"]["arpeggio"] == {"clips": 1, "note_accuracy": 100.0,
                                                    "pitch_class_accuracy": 100.0, "exact": 100.0, "tempo": 0.0}
    assert "minor" not in summary["by"]["mode"]  # values no clip has are left out
    assert all(isinstance(v, (int, float)) for k, v in summary.items() if k != "by")
    with pytest.raises(InputError):
        summarize(results, prompts[:1])


def test_grade_many_in_processes_matches_in_order(clean):
    prompts, wavs, results = clean
    assert grade_many(wavs[:3], SR, prompts[:3], workers=2) == results[:3]


def test_bad_audio_is_a_one_line_input_error():
    with pytest.raises(InputError, match="mono audio"):
        grade(np.zeros((2, 1000), np.float32), SR, "a slow rising C major scale on a soft sine")
    with pytest.raises(InputError, match="one prompt per clip"):
        grade_many([np.zeros(100, np.float32)], SR, [])
