"""The melody grammar, the synthesiser and the splits of audio.melodies."""

import numpy as np
import pytest

from audio import melodies
from audio.melodies import combinations, dataset, melody_notes, note_seconds, parse, render, sample_prompts
from shared.errors import InputError

SR = melodies.SAMPLE_RATE


@pytest.mark.parametrize("prompt, notes", [
    ("a slow rising C major scale on a soft sine", [60, 62, 64, 65, 67, 69, 71, 72]),
    ("a fast falling A minor arpeggio on a bright square", [81, 76, 72, 69]),
    ("a slow rising B major arpeggio on a warm organ", [71, 75, 78, 83]),
    ("a fast falling Eb minor scale on a plucked string", [75, 73, 71, 70, 68, 66, 65, 63]),
])
def test_melody_notes_by_hand(prompt, notes):
    assert melody_notes(prompt) == notes


def test_parse_reads_every_attribute_and_tells_key_a_from_article_a():
    assert parse("a fast falling A minor arpeggio on a plucked string") == {
        "tempo": "fast", "direction": "falling", "key": "A", "mode": "minor", "pattern": "arpeggio",
        "timbre": "plucked string"}
    assert note_seconds("a slow rising C major scale on a soft sine") == 0.4
    assert note_seconds("a fast rising C major scale on a soft sine") == 0.2
    words = melodies.WORDS
    assert words == sorted(words) and {"A", "a", "Db", "Bb", "soft", "sine", "on"} <= set(words)


@pytest.mark.parametrize("prompt, named", [
    ("a slow rising H major scale on a soft sine", "'H'"),
    ("a slow rising c major scale on a soft sine", "'c'"),  # keys are capitalised
    ("A slow rising C major scale on a soft sine", "'A'"),  # the key A where the article goes
    ("a rising slow C major scale on a soft sine", "'rising'"),
    ("a slow rising C major scale on a soft organ", "'soft organ'"),
    ("a slow rising C major scale", "incomplete"),
])
def test_prompts_outside_the_grammar_are_one_line_input_errors(prompt, named):
    with pytest.raises(InputError) as error:
        parse(prompt)
    assert named in str(error.value) and "\n" not in str(error.value)


def test_unknown_word_error_lists_the_known_words():
    with pytest.raises(InputError, match="known words: A Ab B Bb C D Db"):
        melody_notes("a slow rising C major scale on a soft violin")


def test_every_melody_stays_in_midi_60_to_83_and_the_splits_partition_the_grammar():
    train, holdout = combinations("train"), combinations("holdout")
    assert len(train) + len(holdout) == np.prod([len(v) for v in melodies.ATTRIBUTES.values()]) == 768
    assert len(holdout) == 16 * len(melodies.HELDOUT_PAIRS) == 96 and not set(train) & set(holdout)
    notes = [n for p in train + holdout for n in melody_notes(p)]
    assert min(notes) == 60 and max(notes) == 83
    assert combinations("val") == combinations("test") == train


def test_every_key_and_timbre_is_still_heard_in_training():
    seen = {(parse(p)["key"], parse(p)["timbre"]) for p in combinations("train")}
    assert not seen & set(melodies.HELDOUT_PAIRS) and len(seen) == 48 - len(melodies.HELDOUT_PAIRS)
    assert {k for k, _ in seen} == set(melodies.KEYS) and {t for _, t in seen} == set(melodies.TIMBRES)


def test_held_out_pairs_never_in_train_val_test_and_always_in_holdout():
    for split in ("train", "val", "test"):
        pairs = {(parse(p)["key"], parse(p)["timbre"]) for p in sample_prompts(1500, 3, split)}
        assert not pairs & set(melodies.HELDOUT_PAIRS)
    held = sample_prompts(200, 3, "holdout")
    assert all((parse(p)["key"], parse(p)["timbre"]) in melodies.HELDOUT_PAIRS for p in held)
    assert set(held) == set(combinations("holdout"))  # 200 > 96: every held-out combination comes up


def test_sample_prompts_is_seeded_balanced_and_per_split():
    first = sample_prompts(700, 0, "train")
    assert first == sample_prompts(700, 0, "train") and sample_prompts(50, 0, "train") == first[:50]
    assert sorted(first[:672]) == sorted(combinations("train"))  # one shuffled round covers every combination
    assert sample_prompts(50, 1, "train") != first[:50] and sample_prompts(50, 0, "val") != first[:50]
    with pytest.raises(InputError, match="unknown split"):
        sample_prompts(3, 0, "dev")


def test_dataset_is_deterministic_and_pairs_prompts_with_render_seeds():
    pairs = dataset("val", 20, seed=5)
    assert pairs == dataset("val", 20, seed=5) and [p for p, _ in pairs] == sample_prompts(20, 5, "val")
    assert len({s for _, s in pairs}) == 20 and all(isinstance(s, int) and s >= 0 for _, s in pairs)
    assert dataset("test", 20, seed=5) != pairs


def test_render_is_a_clip_of_float32_and_deterministic_per_seed():
    prompt = "a fast rising G minor arpeggio on a warm organ"
    wav = render(prompt, seed=4)
    assert wav.dtype == np.float32 and wav.shape == (round(melodies.CLIP_SECONDS * SR),)
    assert np.array_equal(wav, render(prompt, seed=4)) and not np.array_equal(wav, render(prompt, seed=5))
    assert 0.2 < np.abs(wav).max() < 1.0
    assert not wav[round(0.81 * SR):].any()  # 4 notes of 0.2 s, then silence


def _loudest_midi(segment: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(segment * np.hanning(len(segment)), n=16 * len(segment)))
    hz = np.fft.rfftfreq(16 * len(segment), 1 / SR)[spectrum.argmax()]
    return 69 + 12 * np.log2(hz / 440)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_seed_never_changes_the_notes_or_their_timing(seed):
    prompt = "a slow falling Gb major scale on a soft sine"
    wav, step = render(prompt, seed), round(0.4 * SR)
    for i, note in enumerate(melody_notes(prompt)):
        middle = wav[i * step + step // 5:(i + 1) * step - step // 5]
        assert abs(_loudest_midi(middle) - note) < 0.1
    rms = [np.sqrt(np.mean(render(prompt, s) ** 2)) for s in range(6)]
    assert 20 * np.log10(max(rms) / min(rms)) <= 6.0  # loudness within +-3 dB


def test_notes_start_and_end_without_clicks():
    prompt = "a slow rising C major scale on a soft sine"
    wav = render(prompt, seed=1)
    peak, top_hz = np.abs(wav).max(), 440 * 2 ** ((72 - 69) / 12)
    # a sine's steepest step is 2 pi f / sr of its peak; a cut note would jump by up to its whole peak
    assert np.abs(np.diff(wav)).max() <= 1.05 * 2 * np.pi * top_hz / SR * peak
    assert abs(wav[0]) < 1e-3 and abs(wav[-1]) < 1e-3


def test_square_wave_is_band_limited():
    wav = render("a slow rising C major scale on a bright square", seed=0).astype(np.float64)
    power = np.abs(np.fft.rfft(wav)) ** 2
    hz = np.fft.rfftfreq(len(wav), 1 / SR)
    assert power[hz > melodies.BAND_LIMIT_HZ + 100].sum() < 1e-6 * power.sum()
    assert power[(hz > 2500) & (hz < 4000)].sum() > 1e-3 * power.sum()  # but bright: upper harmonics are there
