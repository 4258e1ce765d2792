"""The spectral tokenizer on melodies of harmonic notes: shapes, determinism, the round trip's log-magnitude
error and pitch, silence, the state dict, and the errors a caller can trigger."""

import librosa
import numpy as np
import pytest
import torch

from audio.spectral_tokenizer import SpectralTokenizer, SpectralTokenizerConfig, fit_spectral_tokenizer
from shared.errors import ConfigError, InputError

SR = 16000
HOP = 320
CONFIG = SpectralTokenizerConfig(codebook_size=32)


def melody(rng: np.random.Generator, seconds: float = 1.2) -> tuple[np.ndarray, list[tuple[int, int, int]]]:
    """A clip of notes (MIDI 60..84, 0.2 or 0.4 s, a few harmonics falling off as 1/h or faster, now and then a
    rest) and its notes as (start sample, length, MIDI)."""
    wav = np.zeros(int(seconds * SR), np.float32)
    length = int(rng.choice([0.2, 0.4]) * SR)
    notes, start = [], 0
    while start + length <= len(wav):
        midi = int(rng.integers(60, 85))
        f0 = 440.0 * 2 ** ((midi - 69) / 12)
        harmonics = np.arange(1, int(min(8, 4000 // f0)) + 1)
        amplitudes = rng.uniform(0.3, 1.0) / harmonics ** rng.uniform(1.0, 2.0)
        t = np.arange(length) / SR
        phases = rng.uniform(0, 2 * np.pi, (len(harmonics), 1))
        tone = (amplitudes[:, None] * np.sin(2 * np.pi * f0 * harmonics[:, None] * t + phases)).sum(0)
        envelope = np.minimum(1.0, np.minimum(t / 0.01, (length / SR - t) / 0.03))  # no clicks
        wav[start : start + length] = 0.3 * tone * envelope
        notes.append((start, length, midi))
        start += length * (2 if rng.random() < 0.15 else 1)
    return wav, notes


@pytest.fixture(scope="module")
def clips():
    rng = np.random.default_rng(0)
    return [melody(rng) for _ in range(68)]


@pytest.fixture(scope="module")
def tokenizer(clips):
    wavs = torch.from_numpy(np.stack([wav for wav, _ in clips[:60]]))
    return fit_spectral_tokenizer(wavs, CONFIG, seed=0, iters=10)


@pytest.fixture(scope="module")
def held_out(clips):
    """Eight clips the tokenizer was not fitted on, and their notes."""
    return torch.from_numpy(np.stack([wav for wav, _ in clips[60:]])), [notes for _, notes in clips[60:]]


def relative_error(reference: torch.Tensor, estimate: torch.Tensor) -> float:
    return ((estimate - reference).norm() / reference.norm()).item()


def test_shapes_dtypes_and_properties(tokenizer, held_out):
    wavs, _ = held_out
    codes = tokenizer.encode(wavs[:3])
    assert codes.dtype == torch.int64 and codes.shape == (3, 4, wavs.shape[1] // HOP)
    assert torch.equal(tokenizer.encode(wavs[:3, None]), codes)  # (B, 1, N) reads as (B, N)
    assert 0 <= codes.min() and codes.max() < 32
    wav = tokenizer.decode(codes)
    assert wav.dtype == torch.float32 and wav.shape == (3, codes.shape[-1] * HOP)
    assert tokenizer.decode(codes, length=1000).shape == (3, 1000)
    assert tokenizer.encode(wavs[:1, :1000]).shape == (1, 4, 4)  # ceil(1000 / 320): every sample has a frame
    assert (tokenizer.sample_rate, tokenizer.frame_rate) == (16000, 50.0)
    assert (tokenizer.num_codebooks, tokenizer.codebook_size) == (4, 32)
    assert tokenizer.codebooks.shape == (4, 32, 513)


def test_encode_decode_and_fit_are_deterministic(tokenizer, clips, held_out):
    wavs, _ = held_out
    codes = tokenizer.encode(wavs)
    assert torch.equal(tokenizer.encode(wavs), codes)
    assert torch.equal(tokenizer.decode(codes), tokenizer.decode(codes))
    fit_wavs = torch.from_numpy(np.stack([wav for wav, _ in clips[:20]]))
    first, again, other = (fit_spectral_tokenizer(fit_wavs, CONFIG, seed=s, iters=3).codebooks for s in (1, 1, 2))
    assert torch.equal(first, again)
    assert not torch.equal(first, other)


def test_each_codebook_lowers_the_error_and_the_round_trip_stays_close(tokenizer, held_out):
    wavs, _ = held_out
    log_mag = tokenizer.log_magnitude(wavs)  # (B, T, F)
    codes = tokenizer.encode(wavs)
    picked = [tokenizer.codebooks[k][codes[:, k]] for k in range(4)]  # each (B, T, F)
    errors = [relative_error(log_mag, sum(picked[: k + 1])) for k in range(4)]
    assert errors == sorted(errors, reverse=True) and errors[0] > errors[-1] + 0.03, errors
    assert errors[-1] < 0.065, errors  # measured 0.045..0.050 over three data seeds
    round_trip = tokenizer.log_magnitude(tokenizer.decode(codes))
    assert relative_error(log_mag, round_trip) < 0.13  # measured 0.110..0.112: Griffin-Lim adds the rest


def test_round_trip_keeps_every_note(tokenizer, held_out):
    wavs, notes = held_out
    decoded = tokenizer.decode(tokenizer.encode(wavs), length=wavs.shape[1])
    for original, round_trip, clip_notes in zip(wavs.numpy(), decoded.numpy(), notes):
        for wav in (original, round_trip):
            f0 = librosa.yin(wav, fmin=200, fmax=1400, sr=SR, frame_length=1024, hop_length=160)
            for start, length, midi in clip_notes:
                middle = f0[int(start + 0.2 * length) // 160 : int(start + 0.8 * length) // 160 + 1]
                assert round(float(librosa.hz_to_midi(np.median(middle)))) == midi


def test_silence_codes_to_zeros_and_decodes_to_silence(tokenizer, clips):
    codes = tokenizer.encode(torch.zeros(2, SR))
    assert not codes.any()
    assert tokenizer.decode(codes).abs().max() < 1e-4
    wav = torch.from_numpy(clips[0][0][: SR // 2].copy())
    wav[int(0.25 * SR) :] = 0  # a quarter second of notes, then a quarter second of nothing
    decoded = tokenizer.decode(tokenizer.encode(wav[None]))[0]
    tail, notes = decoded[int(0.3 * SR) : SR // 2], decoded[: int(0.2 * SR)]
    assert tail.square().mean().sqrt() < 1e-3 * notes.square().mean().sqrt()


def test_state_dict_round_trip_gives_the_same_codes(tokenizer, held_out):
    wavs, _ = held_out
    state = tokenizer.state_dict()
    assert list(state) == ["codebooks"]
    restored = SpectralTokenizer(CONFIG)
    assert not torch.equal(restored.encode(wavs), tokenizer.encode(wavs))
    restored.load_state_dict(state)
    assert torch.equal(restored.encode(wavs), tokenizer.encode(wavs))


@pytest.mark.parametrize(
    "wav",
    [torch.zeros(SR), torch.zeros(2, 2, SR), torch.zeros(2, SR, dtype=torch.int16), torch.zeros(1, 300)],
    ids=["1d", "stereo", "integers", "too-short"],
)
def test_unusable_audio_is_a_one_line_input_error(tokenizer, wav):
    with pytest.raises(InputError) as error:
        tokenizer.encode(wav)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize(
    "codes", [torch.zeros(1, 3, 5, dtype=torch.long), torch.zeros(1, 4, 5), torch.full((1, 4, 5), 32)],
    ids=["codebooks", "floats", "range"],
)
def test_unusable_codes_are_an_input_error(tokenizer, codes):
    with pytest.raises(InputError, match="codes must"):
        tokenizer.decode(codes)


def test_bad_config_is_a_config_error():
    with pytest.raises(ConfigError, match="divide"):
        SpectralTokenizerConfig(hop_length=300)
    with pytest.raises(ConfigError, match="codebooks of shape"):
        SpectralTokenizer(CONFIG, codebooks=torch.zeros(4, 16, 513))
