"""A generated text-to-music dataset: captioned melodies rendered by a small additive synthesiser.

Every prompt comes from one grammar and names the whole melody, which `render` plays at 16 kHz:

    a {tempo} {direction} {key} {mode} {pattern} on a {timbre}
    a slow rising C major scale on a soft sine        -> MIDI 60 62 64 65 67 69 71 72, 0.4 s a note
    a fast falling Bb minor arpeggio on a warm organ  -> MIDI 82 77 73 70, 0.2 s a note

The tonic lies in MIDI 60..71 (C4..B4), so melodies stay within MIDI 60..83. A scale is degrees 1..8 of the
mode (tonic to octave), an arpeggio degrees 1 3 5 8; falling plays the same notes reversed. Every clip lasts
CLIP_SECONDS (a slow scale fills it; shorter melodies end in silence). The render seed changes small things
only (loudness, onset jitter, phase), never the notes or the tempo.

Some (key, timbre) pairs, HELDOUT_PAIRS, never occur in the train, val and test splits; the `holdout` split
holds only them, to measure whether a model composes keys and timbres it has only heard apart.
"""

from __future__ import annotations

import hashlib
import itertools
from dataclasses import dataclass
from typing import Callable

import numpy as np

from shared.errors import InputError

SAMPLE_RATE = 16000
CLIP_SECONDS = 3.2
TEMPOS = {"slow": 0.4, "fast": 0.2}  # seconds per note
DIRECTIONS = ("rising", "falling")
# the tonic is MIDI 60 + index; flats only, so no key is written with a "#" that word splitting would drop
KEYS = ("C", "Db", "D", "Eb", "E", "F", "Gb", "G", "Ab", "A", "Bb", "B")
MODES = {"major": (0, 2, 4, 5, 7, 9, 11, 12), "minor": (0, 2, 3, 5, 7, 8, 10, 12)}  # semitones of degrees 1..8
PATTERNS = {"scale": (0, 1, 2, 3, 4, 5, 6, 7), "arpeggio": (0, 2, 4, 7)}  # indices into the mode's degrees
BAND_LIMIT_HZ = 4000.0  # no partial above this, so square waves do not alias and pitch trackers read them
ATTACK_SECONDS, RELEASE_SECONDS = 0.005, 0.02  # raised-cosine ramps at each end of a note: no clicks
LEVEL = 0.5  # peak of a note before the seed's gain
GAIN_DB, JITTER_SECONDS = 3.0, 0.003  # the seed draws a gain in +-GAIN_DB and each onset's shift in +-JITTER


@dataclass(frozen=True)
class Timbre:
    """An instrument: `amplitudes` maps harmonic numbers k (1 = the fundamental) to their amplitudes, and
    harmonic k dies away as exp(-decay * k * t) with t in seconds since the onset (decay 0: a steady tone)."""

    amplitudes: Callable[[np.ndarray], np.ndarray]
    decay: float = 0.0


def _organ(k: np.ndarray) -> np.ndarray:
    drawbars = {1: 1.0, 2: 0.5, 3: 0.35, 4: 0.2, 6: 0.1}
    return np.array([drawbars.get(int(i), 0.0) for i in k])


TIMBRES = {
    "soft sine": Timbre(lambda k: (k == 1).astype(np.float64)),
    "bright square": Timbre(lambda k: (k % 2 == 1) / k),  # odd harmonics at 1/k: a band-limited square
    "plucked string": Timbre(lambda k: k ** -1.2, decay=3.0),  # bright onset, upper harmonics fade first
    "warm organ": Timbre(_organ),
}
ATTRIBUTES = {
    "tempo": tuple(TEMPOS), "direction": DIRECTIONS, "key": KEYS, "mode": tuple(MODES),
    "pattern": tuple(PATTERNS), "timbre": tuple(TIMBRES),
}
# One (key, timbre) pair in eight, six keys each at most once and every timbre at most twice, so each key and
# each timbre is still heard in training with other partners.
HELDOUT_PAIRS = (("D", "soft sine"), ("Ab", "soft sine"), ("F", "bright square"), ("B", "bright square"),
                 ("Db", "plucked string"), ("A", "warm organ"))
SPLITS = ("train", "val", "test", "holdout")
TEMPLATE = "a {tempo} {direction} {key} {mode} {pattern} on a {timbre}"
_SLOTS = (("article", ("a",)), ("tempo", ATTRIBUTES["tempo"]), ("direction", DIRECTIONS), ("key", KEYS),
          ("mode", ATTRIBUTES["mode"]), ("pattern", ATTRIBUTES["pattern"]), ("on", ("on",)), ("article", ("a",)))
WORDS = sorted({"a", "on"}.union(*(v for name, v in ATTRIBUTES.items() if name != "timbre"),
                                 *(timbre.split() for timbre in TIMBRES)))


def compose(tempo: str, direction: str, key: str, mode: str, pattern: str, timbre: str) -> str:
    """The prompt for these attribute values (the inverse of `parse`)."""
    return TEMPLATE.format(tempo=tempo, direction=direction, key=key, mode=mode, pattern=pattern, timbre=timbre)


def parse(prompt: str) -> dict[str, str]:
    """The attributes a prompt names: 'a slow rising C major scale on a soft sine' -> {'tempo': 'slow',
    'direction': 'rising', 'key': 'C', 'mode': 'major', 'pattern': 'scale', 'timbre': 'soft sine'}.
    Words are case-sensitive (the key 'A' is not the article 'a'); a prompt outside the grammar is an
    InputError."""
    words = prompt.split()
    for word in words:
        if word not in WORDS:
            raise InputError(f"unknown word {word!r} in prompt {prompt!r}; known words: {' '.join(WORDS)}")
    if len(words) <= len(_SLOTS):
        raise InputError(f"prompt {prompt!r} is incomplete; write {TEMPLATE!r}")
    attributes = {}
    for word, (slot, values) in zip(words, _SLOTS):
        if word not in values:
            raise InputError(f"{word!r} cannot stand where the {slot!r} goes in {prompt!r}; use one of "
                             f"{', '.join(values)} (grammar: {TEMPLATE!r})")
        attributes[slot] = word
    timbre = " ".join(words[len(_SLOTS):])
    if timbre not in TIMBRES:
        raise InputError(f"unknown timbre {timbre!r} in {prompt!r}; use one of {', '.join(TIMBRES)}")
    del attributes["article"], attributes["on"]
    return {**attributes, "timbre": timbre}


def melody_notes(prompt: str) -> list[int]:
    """The MIDI notes the prompt asks for, in the order they sound."""
    a = parse(prompt)
    tonic = 60 + KEYS.index(a["key"])
    notes = [tonic + MODES[a["mode"]][degree] for degree in PATTERNS[a["pattern"]]]
    return notes[::-1] if a["direction"] == "falling" else notes


def note_seconds(prompt: str) -> float:
    """Seconds from one note's onset to the next at the prompt's tempo."""
    return TEMPOS[parse(prompt)["tempo"]]


def _envelope(n: int, sr: int) -> np.ndarray:
    """(n,) raised-cosine attack and release around a flat middle."""
    env = np.ones(n)
    for ramp, ends_at_start in ((min(round(ATTACK_SECONDS * sr), n // 2), True),
                                (min(round(RELEASE_SECONDS * sr), n // 2), False)):
        rise = 0.5 - 0.5 * np.cos(np.pi * (np.arange(ramp) + 0.5) / ramp)
        if ends_at_start:
            env[:ramp] *= rise
        else:
            env[n - ramp:] *= rise[::-1]
    return env


def _note(midi: int, n: int, timbre: Timbre, phase: float, sr: int) -> np.ndarray:
    """(n,) one note with its envelope, peak LEVEL: all harmonics below BAND_LIMIT_HZ summed at once."""
    f0 = 440.0 * 2.0 ** ((midi - 69) / 12)
    k = np.arange(1, int(BAND_LIMIT_HZ // f0) + 1)  # (K,)
    amps = timbre.amplitudes(k).astype(np.float64)
    k, amps = k[amps > 0], amps[amps > 0]
    t = np.arange(n) / sr  # (n,)
    partials = np.sin(k[:, None] * (2 * np.pi * f0 * t[None, :] + phase))  # (K, n): a shift of the whole wave
    if timbre.decay:
        partials *= np.exp(-timbre.decay * k[:, None] * t[None, :])
    wave = amps @ partials  # (n,)
    return LEVEL * wave / np.abs(wave).max() * _envelope(n, sr)


def render(prompt: str, seed: int = 0) -> np.ndarray:
    """(CLIP_SECONDS * SAMPLE_RATE,) float32 mono: the prompt's melody, one note per tempo step from t = 0,
    then silence. The seed draws the loudness (+-3 dB), a few ms of jitter per onset and each note's phase."""
    notes, step = melody_notes(prompt), note_seconds(prompt)
    timbre = TIMBRES[parse(prompt)["timbre"]]
    rng = np.random.default_rng(seed)
    gain = 10.0 ** (rng.uniform(-GAIN_DB, GAIN_DB) / 20)
    jitter = rng.uniform(-JITTER_SECONDS, JITTER_SECONDS, len(notes))
    phases = rng.uniform(0, 2 * np.pi, len(notes))
    total, length = round(CLIP_SECONDS * SAMPLE_RATE), round(step * SAMPLE_RATE)
    out = np.zeros(total)
    for i, midi in enumerate(notes):
        start = max(0, round((i * step + jitter[i]) * SAMPLE_RATE))
        n = min(length, total - start)  # the last note of a slow scale may not run past the clip
        out[start:start + n] += _note(midi, n, timbre, phases[i], SAMPLE_RATE)
    return (gain * out).astype(np.float32)


def combinations(split: str) -> list[str]:
    """Every prompt a split draws from: holdout those with a HELDOUT_PAIRS (key, timbre), the others the rest."""
    if split not in SPLITS:
        raise InputError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
    held = set(HELDOUT_PAIRS)
    prompts = []
    for values in itertools.product(*ATTRIBUTES.values()):
        a = dict(zip(ATTRIBUTES, values))
        if ((a["key"], a["timbre"]) in held) == (split == "holdout"):
            prompts.append(compose(**a))
    return prompts


def _split_seed(seed: int, split: str, *more: int) -> int:
    digest = hashlib.sha256("/".join(map(str, ("melodies", seed, split, *more))).encode()).digest()
    return int.from_bytes(digest[:8], "little")


def sample_prompts(n: int, seed: int, split: str = "train") -> list[str]:
    """n prompts of a split: the split's combinations in shuffled rounds, each round a new permutation, so every
    combination comes up as often as any other. The same (n, seed, split) gives the same list, and a smaller n
    its prefix; each split and seed has its own order."""
    prompts = combinations(split)
    rng = np.random.default_rng(_split_seed(seed, split))
    out: list[str] = []
    while len(out) < n:
        out.extend(prompts[i] for i in rng.permutation(len(prompts)))
    return out[:n]


def dataset(split: str, n: int, seed: int) -> list[tuple[str, int]]:
    """n (prompt, render seed) pairs of a split: the prompts of `sample_prompts(n, seed, split)`, each with a
    render seed drawn from (seed, split, index), so the clips are `render(prompt, render_seed)`."""
    return [(prompt, _split_seed(seed, split, i) % 2**31)
            for i, prompt in enumerate(sample_prompts(n, seed, split))]
