"""Reading audio files into the float32 mono 16 kHz arrays that Whisper's features expect.

openai-whisper shells out to the ffmpeg program for this; we read with soundfile (libsndfile: wav, flac,
ogg, mp3 with libsndfile >= 1.1) and fall back to librosa for anything soundfile cannot open, so no external
program is needed. Every failure becomes one `AudioError` with a one-line message a user can act on.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np

from shared.errors import InputError

SAMPLE_RATE = 16000
SUPPORTED_FORMATS = "wav, flac, ogg or mp3"


class AudioError(InputError):
    """An audio file that cannot be turned into samples; the message names the file and a fix.

    An InputError (and so a ValueError): the CLI reports it in one line and goes on with the other files.
    """


def load_audio(path: str | os.PathLike, sr: int = SAMPLE_RATE) -> np.ndarray:
    """Read an audio file as mono float32 samples in [-1, 1] at `sr` Hz.

    Multi-channel audio is averaged to mono; other sample rates are resampled.

    Returns:
        np.ndarray of shape (T,), dtype float32.
    Raises:
        AudioError: the file is missing, empty, not audio, in an unsupported format, or holds no samples.
    """
    path = Path(path)
    if sr <= 0:
        raise InputError(f"sample rate must be positive, got {sr}")
    if not path.exists():
        raise AudioError(f"{path}: no such file; check the path")
    if path.is_dir():
        raise AudioError(f"{path}: is a directory; pass an audio file ({SUPPORTED_FORMATS})")
    if path.stat().st_size == 0:
        raise AudioError(f"{path}: the file is empty (0 bytes); re-export or re-record it")

    samples, native_sr = _read(path)  # (T, C) float32
    if samples.size == 0:
        raise AudioError(f"{path}: the file contains no audio samples; use a recording longer than 0 s")
    mono = samples.mean(axis=1, dtype=np.float32) if samples.shape[1] > 1 else samples[:, 0]
    if not np.isfinite(mono).all():
        raise AudioError(f"{path}: the audio contains NaN or infinite samples; re-export it")
    if native_sr != sr:
        import librosa

        mono = librosa.resample(mono, orig_sr=native_sr, target_sr=sr)
    return np.ascontiguousarray(mono, dtype=np.float32)


def _read(path: Path) -> tuple[np.ndarray, int]:
    """Decode `path` to ((T, C) float32 samples, sample rate), soundfile first, then librosa."""
    import soundfile as sf

    try:
        data, native_sr = sf.read(str(path), dtype="float32", always_2d=True)
        return data, int(native_sr)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError):
        pass  # not a format libsndfile knows: let librosa (audioread) try before giving up
    try:
        import librosa

        with warnings.catch_warnings():
            # librosa warns about the soundfile failure we already know about, and about audioread.
            warnings.simplefilter("ignore")
            data, native_sr = librosa.load(str(path), sr=None, mono=False, dtype=np.float32)
    except Exception as err:  # audioread raises a variety of backend-specific errors
        raise AudioError(
            f"{path}: not a readable audio file ({type(err).__name__}); "
            f"convert it to {SUPPORTED_FORMATS} (e.g. with sox or ffmpeg)"
        ) from err
    data = np.atleast_2d(data).T  # librosa gives (C, T) or (T,); we want (T, C)
    return np.asarray(data, dtype=np.float32), int(native_sr)
