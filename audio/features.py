"""Whisper's log-mel front end: 25 ms Hann windows every 10 ms, Slaney mel filters, log10 with an 8-decade
dynamic range, scaled to roughly [-1, 1].

The numbers must match openai-whisper's to ~1e-6, because a Whisper checkpoint was trained on exactly these
features; see tests/audio/test_features.py for the parity check.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

SAMPLE_RATE = 16000
N_FFT = 400  # 25 ms window
HOP_LENGTH = 160  # 10 ms hop: 100 frames per second
CHUNK_LENGTH = 30  # seconds of audio per encoder window
N_SAMPLES = CHUNK_LENGTH * SAMPLE_RATE  # 480000 samples in a window
N_FRAMES = N_SAMPLES // HOP_LENGTH  # 3000 mel frames in a window
N_SAMPLES_PER_TOKEN = HOP_LENGTH * 2  # the conv stem halves the frame rate
FRAMES_PER_SECOND = SAMPLE_RATE // HOP_LENGTH  # 100: 10 ms per mel frame
TOKENS_PER_SECOND = SAMPLE_RATE // N_SAMPLES_PER_TOKEN  # 50: 20 ms per encoder position


_MEL_LINEAR_HZ = 200.0 / 3  # Hz per mel below the break
_MEL_BREAK_HZ = 1000.0
_MEL_BREAK = _MEL_BREAK_HZ / _MEL_LINEAR_HZ  # 15 mels
_MEL_LOG_STEP = np.log(6.4) / 27.0  # log-Hz per mel above the break


def _hz_to_mel(freqs: np.ndarray) -> np.ndarray:
    """Slaney's mel scale (the Auditory Toolbox's, librosa's default): linear below 1 kHz, log above."""
    mels = freqs / _MEL_LINEAR_HZ
    log_region = freqs >= _MEL_BREAK_HZ
    mels[log_region] = _MEL_BREAK + np.log(freqs[log_region] / _MEL_BREAK_HZ) / _MEL_LOG_STEP
    return mels


def _mel_to_hz(mels: np.ndarray) -> np.ndarray:
    freqs = _MEL_LINEAR_HZ * mels
    log_region = mels >= _MEL_BREAK
    freqs[log_region] = _MEL_BREAK_HZ * np.exp(_MEL_LOG_STEP * (mels[log_region] - _MEL_BREAK))
    return freqs


def slaney_mel_filters(n_mels: int, sample_rate: int = SAMPLE_RATE, n_fft: int = N_FFT) -> np.ndarray:
    """Triangular filters evenly spaced on Slaney's mel scale from 0 Hz to Nyquist, each scaled to unit area
    (Slaney normalisation): (n_mels, n_fft // 2 + 1) float32.

    The filterbank Whisper was trained with (librosa.filters.mel(sr, n_fft, n_mels) with its defaults,
    htk=False, norm="slaney"); computed here in float64 like librosa, so features need no librosa import.
    """
    fft_freqs = np.arange(n_fft // 2 + 1) * (1.0 / (n_fft * (1.0 / sample_rate)))  # (F,), as numpy's rfftfreq
    mel_edges = np.linspace(0.0, _hz_to_mel(np.array([sample_rate / 2.0]))[0], n_mels + 2)
    hz_edges = _mel_to_hz(mel_edges)  # (n_mels + 2,): lower edge, centre and upper edge of each triangle
    widths = np.diff(hz_edges)  # (n_mels + 1,)
    ramps = hz_edges[:, None] - fft_freqs[None, :]  # (n_mels + 2, F)
    rising = -ramps[:-2] / widths[:-1, None]  # (n_mels, F)
    falling = ramps[2:] / widths[1:, None]
    # Rounded to float32 before the area scaling, as librosa does, so the result is bit-identical to the
    # table openai-whisper ships (mel_filters.npz).
    weights = np.maximum(0.0, np.minimum(rising, falling)).astype(np.float32)
    weights *= (2.0 / (hz_edges[2:] - hz_edges[:-2]))[:, None]  # unit area per filter
    return weights


@lru_cache(maxsize=None)
def _mel_filters_cpu(n_mels: int) -> torch.Tensor:
    return torch.from_numpy(slaney_mel_filters(n_mels))


def mel_filters(n_mels: int, device: torch.device | str | None = None) -> torch.Tensor:
    """The (n_mels, N_FFT // 2 + 1) Slaney mel filterbank, computed once per n_mels and cached."""
    if n_mels <= 0:
        raise ValueError(f"n_mels must be positive, got {n_mels}")
    filters = _mel_filters_cpu(n_mels)
    return filters if device is None else filters.to(device)


def log_mel_spectrogram(
    audio: np.ndarray | torch.Tensor,
    n_mels: int = 80,
    padding: int = 0,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Whisper's log-mel spectrogram of 16 kHz audio.

    Args:
        audio: samples at 16 kHz, shape (T,) or (B, T), numpy or torch, float.
        n_mels: number of mel bins (80 for most Whisper models, 128 for large-v3).
        padding: zero samples appended on the right before the STFT (openai-whisper's transcribe pads
            N_SAMPLES so the last window is complete).
        device: where to compute; defaults to the tensor's device (CPU for numpy input).

    Returns:
        float32 tensor (n_mels, n_frames) for (T,) input or (B, n_mels, n_frames) for (B, T) input, with
        n_frames = (T + padding) // HOP_LENGTH.

    Dynamic range clipping (max - 8) uses each clip's own maximum, so a clip's features do not depend on
    the other clips in a batch; for a single clip this is exactly openai-whisper's computation.
    """
    if isinstance(audio, np.ndarray):
        audio = torch.from_numpy(np.ascontiguousarray(audio))
    if not torch.is_tensor(audio):
        raise TypeError(f"audio must be a numpy array or torch tensor, got {type(audio).__name__}")
    if audio.ndim not in (1, 2):
        raise ValueError(f"audio must have shape (T,) or (B, T), got {tuple(audio.shape)}")
    if not audio.is_floating_point():
        raise TypeError(f"audio must hold float samples in [-1, 1], got dtype {audio.dtype}")
    if device is not None:
        audio = audio.to(device)
    audio = audio.float()
    if padding > 0:
        audio = F.pad(audio, (0, padding))

    window = torch.hann_window(N_FFT, device=audio.device)
    stft = torch.stft(audio, N_FFT, HOP_LENGTH, window=window, return_complex=True)  # (..., 201, T//160 + 1)
    # The centred STFT yields one frame more than T // HOP_LENGTH; Whisper drops the last.
    power = stft[..., :-1].abs() ** 2  # (..., 201, frames)

    mel = mel_filters(n_mels, audio.device) @ power  # (..., n_mels, frames)
    log_spec = torch.clamp(mel, min=1e-10).log10()
    peak = log_spec.amax(dim=(-2, -1), keepdim=True)  # (..., 1, 1): per clip
    log_spec = torch.maximum(log_spec, peak - 8.0)
    return (log_spec + 4.0) / 4.0


def pad_or_trim(array: np.ndarray | torch.Tensor, length: int = N_SAMPLES, *, axis: int = -1):
    """Zero-pad or cut `array` along `axis` to exactly `length` (default: one 30 s window of samples).

    Works on numpy arrays and torch tensors, returning the same kind.
    """
    if length < 0:
        raise ValueError(f"length must be >= 0, got {length}")
    size = array.shape[axis]
    if size == length:
        return array
    if torch.is_tensor(array):
        if size > length:
            return array.narrow(axis, 0, length)
        pads = [0] * (2 * array.ndim)
        # F.pad lists (left, right) pairs starting from the LAST dimension.
        pads[2 * (array.ndim - 1 - (axis % array.ndim)) + 1] = length - size
        return F.pad(array, pads)
    array = np.asarray(array)
    if size > length:
        return np.take(array, np.arange(length), axis=axis)
    widths = [(0, 0)] * array.ndim
    widths[axis] = (0, length - size)
    return np.pad(array, widths)
