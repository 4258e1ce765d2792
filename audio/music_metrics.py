"""Grading generated melodies against their prompts by reading the audio back with a pitch tracker.

The prompt fixes every note's time window (audio.melodies): note i of a melody at `step` seconds a note
sounds from i * step to (i + 1) * step. `track_notes` runs librosa's pYIN once over the melody's span
(fmin MIDI 55, fmax MIDI 90, 64 ms frames, 16 ms hop, quarter-semitone bins) and reads each note as the
median MIDI pitch of the voiced frames in the middle 60% of its window; a note of which fewer than half those
frames are voiced reads None.

Grading rule: a note is right when its reading, rounded to the nearest MIDI note, equals the expected note,
octave included, for every timbre. pYIN is known to read some square waves an octave low, so this was
measured first: on clean renders of 288 prompts (every key and timbre, 1,920 notes) these settings read
every note right, octave included, for all four timbres, and still did after a Griffin-Lim round trip of the
renders' magnitude spectrograms; a pitch-class fallback would only hide a model's octave errors. They show
instead as the gap between `note_accuracy` and `pitch_class_accuracy` (octave ignored), which `grade` also
reports.

Tempo: `tempo_of` is the median time between onsets (librosa's spectral-flux onset detector), and
`tempo_word` names the nearest tempo of the grammar when it lies within a factor sqrt(2) of it.
"""

from __future__ import annotations

import math
from concurrent.futures import ProcessPoolExecutor

import librosa
import numpy as np

from audio.melodies import ATTRIBUTES, TEMPOS, melody_notes, note_seconds, parse
from shared.errors import InputError

FMIN_MIDI, FMAX_MIDI = 55, 90  # melodies span MIDI 60..83; a little room each side for out-of-tune output
FRAME_SECONDS, HOP_SECONDS = 0.064, 0.016
RESOLUTION = 0.25  # pYIN pitch bins per semitone, inverted: 0.25 is 4x faster than librosa's 0.1, as exact here
WINDOW = (0.2, 0.8)  # the part of each note's window that is read: the middle 60%, clear of onsets
MIN_VOICED = 0.5  # fraction of a window's frames that must be voiced for the note to read at all
TEMPO_TOLERANCE = math.sqrt(2)


def _mono(wav) -> np.ndarray:
    wav = np.asarray(wav, dtype=np.float32)
    wav = wav.reshape(-1) if wav.ndim == 2 and 1 in wav.shape else wav
    if wav.ndim != 1 or wav.size == 0:
        raise InputError(f"expected mono audio of shape (N,), got shape {wav.shape}; pass one clip at a time")
    return wav


def track_notes(wav, sr: int, prompt: str) -> list[float | None]:
    """For each note the prompt asks for, the median MIDI pitch (fractional) pYIN reads in the middle 60% of
    that note's window, or None where it is mostly unvoiced. wav: (N,) float audio at sr Hz."""
    wav, notes, step = _mono(wav), melody_notes(prompt), note_seconds(prompt)
    span = round(len(notes) * step * sr)
    wav = np.pad(wav[:span], (0, max(0, span - len(wav))))  # (span,): a short clip reads silence at the end
    hop = round(HOP_SECONDS * sr)
    f0, voiced, _ = librosa.pyin(
        wav, fmin=librosa.midi_to_hz(FMIN_MIDI), fmax=librosa.midi_to_hz(FMAX_MIDI), sr=sr,
        frame_length=round(FRAME_SECONDS * sr), hop_length=hop, resolution=RESOLUTION)
    times = librosa.times_like(f0, sr=sr, hop_length=hop)  # (frames,) centre of each frame
    readings = []
    for i in range(len(notes)):
        inside = (times >= (i + WINDOW[0]) * step) & (times <= (i + WINDOW[1]) * step)
        pitches = f0[inside & voiced]
        if len(pitches) < MIN_VOICED * inside.sum() or len(pitches) == 0:
            readings.append(None)
        else:
            readings.append(float(np.median(librosa.hz_to_midi(pitches))))
    return readings


def tempo_of(wav, sr: int) -> float:
    """Seconds per note: the median time between the onsets librosa finds (nan with fewer than two)."""
    onsets = librosa.onset.onset_detect(y=_mono(wav), sr=sr, hop_length=round(HOP_SECONDS * sr), units="time")
    return float(np.median(np.diff(onsets))) if len(onsets) > 1 else math.nan


def tempo_word(seconds: float) -> str | None:
    """The grammar's tempo nearest to `seconds` per note (on a log scale), or None when none is within a
    factor sqrt(2)."""
    if not seconds > 0:  # also nan
        return None
    word = min(TEMPOS, key=lambda w: abs(math.log(seconds / TEMPOS[w])))
    return word if abs(math.log(seconds / TEMPOS[word])) <= math.log(TEMPO_TOLERANCE) else None


def grade(wav, sr: int, prompt: str) -> dict:
    """How well (N,) audio at sr Hz plays the prompt: note_accuracy and pitch_class_accuracy (fractions of the
    expected notes read right, the latter ignoring the octave), exact (every note right), tempo_ok (tempo_word
    of the measured tempo is the prompt's), and the evidence: expected, notes (readings), right, seconds_per_note.
    """
    expected = melody_notes(prompt)
    readings = track_notes(wav, sr, prompt)
    right = [r is not None and round(r) == e for r, e in zip(readings, expected)]
    same_class = [r is not None and (round(r) - e) % 12 == 0 for r, e in zip(readings, expected)]
    seconds = tempo_of(wav, sr)
    return {"note_accuracy": sum(right) / len(expected), "pitch_class_accuracy": sum(same_class) / len(expected),
            "exact": all(right), "tempo_ok": tempo_word(seconds) == parse(prompt)["tempo"],
            "expected": expected, "notes": readings, "right": right, "seconds_per_note": seconds}


def grade_many(wavs, sr: int, prompts: list[str], workers: int = 1) -> list[dict]:
    """`grade` of each (wav, prompt) pair, in order; workers > 1 grades in that many processes."""
    if len(wavs) != len(prompts):
        raise InputError(f"{len(wavs)} clips but {len(prompts)} prompts; pass one prompt per clip")
    if workers <= 1:
        return [grade(wav, sr, prompt) for wav, prompt in zip(wavs, prompts)]
    with ProcessPoolExecutor(workers) as pool:
        return list(pool.map(grade, wavs, [sr] * len(wavs), prompts))


def _scores(results: list[dict]) -> dict:
    notes = [hit for r in results for hit in r["right"]]
    pairs = [(n, e) for r in results for n, e in zip(r["notes"], r["expected"])]
    classes = sum(n is not None and (round(n) - e) % 12 == 0 for n, e in pairs)
    return {"clips": len(results), "note_accuracy": 100.0 * sum(notes) / max(len(notes), 1),
            "pitch_class_accuracy": 100.0 * classes / max(len(notes), 1),
            "exact": 100.0 * sum(r["exact"] for r in results) / max(len(results), 1),
            "tempo": 100.0 * sum(r["tempo_ok"] for r in results) / max(len(results), 1)}


def summarize(results: list[dict], prompts: list[str]) -> dict:
    """Percent scores of `grade` results: note_accuracy and pitch_class_accuracy over all notes, exact and tempo
    over clips, with `clips` counted; the same for each value of each attribute under flat keys such as
    'timbre=soft sine/exact' (a JSON file or a two-column CSV holds them), and nested under "by":
    by[attribute][value] -> the scores of the clips whose prompt has that value."""
    if len(results) != len(prompts):
        raise InputError(f"{len(results)} results but {len(prompts)} prompts; pass one prompt per result")
    attributes = [parse(p) for p in prompts]
    summary: dict = _scores(results)
    by: dict = {}
    for name, values in ATTRIBUTES.items():
        for value in values:
            group = [r for r, a in zip(results, attributes) if a[name] == value]
            if group:
                by.setdefault(name, {})[value] = scores = _scores(group)
                summary.update({f"{name}={value}/{metric}": score for metric, score in scores.items()})
    return {**summary, "by": by}
