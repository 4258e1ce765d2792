"""Audio loading (audio/io.py) and Whisper's log-mel features (audio/features.py)."""

import numpy as np
import pytest
import soundfile as sf
import torch

from audio.features import (
    HOP_LENGTH,
    N_FFT,
    N_FRAMES,
    N_SAMPLES,
    SAMPLE_RATE,
    log_mel_spectrogram,
    mel_filters,
    pad_or_trim,
    slaney_mel_filters,
)
from audio.io import AudioError, load_audio
from shared.errors import InputError


def _noise(seconds: float, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-0.5, 0.5, int(seconds * SAMPLE_RATE)).astype(np.float32)


# ---------------------------------------------------------------------------------------------- loading


def test_examples_are_16k_mono_and_listed(examples_dir, transcripts):
    wavs = sorted(p.name for p in examples_dir.glob("*.wav"))
    assert wavs == sorted(transcripts) and "long.wav" in wavs
    assert sum(p.stat().st_size for p in examples_dir.iterdir()) < 4_000_000
    for name in wavs:
        info = sf.info(str(examples_dir / name))
        assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16"), name
        seconds = info.frames / info.samplerate
        assert (65 <= seconds <= 75) if name == "long.wav" else (3 <= seconds <= 8), (name, seconds)


def test_load_wav_matches_soundfile(examples_dir):
    path = examples_dir / "weather.wav"
    audio = load_audio(path)
    reference, sr = sf.read(str(path), dtype="float32")
    assert sr == SAMPLE_RATE and audio.dtype == np.float32 and audio.ndim == 1
    np.testing.assert_array_equal(audio, reference)
    assert 0.05 < np.abs(audio).max() <= 1.0  # real speech, not silence


def test_load_resamples_and_downmixes(tmp_path):
    t = np.arange(44100 * 2) / 44100
    tone = 0.5 * np.sin(2 * np.pi * 440 * t)
    stereo = np.stack([tone, tone], axis=1).astype(np.float32)  # (T, 2)
    path = tmp_path / "tone.wav"
    sf.write(str(path), stereo, 44100)
    audio = load_audio(path)
    assert audio.dtype == np.float32 and audio.shape == (32000,)
    # still a 440 Hz tone after resampling: the spectrum peaks at bin 440 of a 1 Hz-resolution FFT
    spectrum = np.abs(np.fft.rfft(audio[:16000]))
    assert abs(int(spectrum.argmax()) - 440) <= 1


@pytest.mark.parametrize("ext,fmt", [("flac", "FLAC"), ("ogg", "OGG"), ("mp3", "MP3")])
def test_load_compressed_formats(tmp_path, ext, fmt):
    tone = (0.3 * np.sin(2 * np.pi * 300 * np.arange(16000) / 16000)).astype(np.float32)
    path = tmp_path / f"tone.{ext}"
    sf.write(str(path), tone, 16000, format=fmt)
    audio = load_audio(path)
    assert abs(len(audio) - 16000) < 2000  # codecs may add priming samples
    assert 0.2 < np.abs(audio).max() < 0.45


def _one_line_error(path, match):
    with pytest.raises(AudioError, match=match) as info:
        load_audio(path)
    message = str(info.value)
    assert str(path) in message and "\n" not in message
    assert isinstance(info.value, InputError) and isinstance(info.value, ValueError)
    return message


def test_bad_inputs_give_one_line_errors(tmp_path):
    _one_line_error(tmp_path / "nope.wav", "no such file")
    _one_line_error(tmp_path, "directory")
    (tmp_path / "empty.wav").write_bytes(b"")
    _one_line_error(tmp_path / "empty.wav", "empty")
    (tmp_path / "notes.wav").write_text("these are meeting notes, not audio\n" * 20)
    _one_line_error(tmp_path / "notes.wav", "not a readable audio file")
    (tmp_path / "clip.m4a").write_bytes(bytes(range(256)) * 8)
    message = _one_line_error(tmp_path / "clip.m4a", "not a readable audio file")
    assert "wav" in message and "Traceback" not in message
    sf.write(str(tmp_path / "zero.wav"), np.zeros(0, dtype=np.float32), 16000)
    _one_line_error(tmp_path / "zero.wav", "no audio samples")


# ---------------------------------------------------------------------------------------------- features


def test_constants():
    assert (SAMPLE_RATE, N_FFT, HOP_LENGTH, N_SAMPLES, N_FRAMES) == (16000, 400, 160, 480000, 3000)


def test_mel_filters_shape_and_cache():
    assert mel_filters(80).shape == (80, 201) and mel_filters(128).shape == (128, 201)
    assert mel_filters(80) is mel_filters(80)


@pytest.mark.parametrize("n_mels", [80, 128])
def test_log_mel_matches_openai_whisper(examples_dir, n_mels):
    whisper_audio = pytest.importorskip("whisper.audio")
    speech = load_audio(examples_dir / "kitchen.wav")
    for audio in (speech, _noise(2.5, seed=n_mels)):
        ours = log_mel_spectrogram(audio, n_mels=n_mels)
        theirs = whisper_audio.log_mel_spectrogram(torch.from_numpy(audio), n_mels=n_mels)
        assert ours.shape == theirs.shape == (n_mels, len(audio) // HOP_LENGTH)
        torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=0)
    # with transcribe()'s right padding, numpy input, and our filterbank vs the table they ship
    ours = log_mel_spectrogram(speech, n_mels=n_mels, padding=N_SAMPLES)
    theirs = whisper_audio.log_mel_spectrogram(torch.from_numpy(speech), n_mels=n_mels, padding=N_SAMPLES)
    torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=0)
    assert torch.equal(mel_filters(n_mels), whisper_audio.mel_filters("cpu", n_mels))


@pytest.mark.parametrize("n_mels", [80, 128, 40])
def test_slaney_mel_filters_match_librosa(n_mels):
    librosa = pytest.importorskip("librosa")
    theirs = librosa.filters.mel(sr=SAMPLE_RATE, n_fft=N_FFT, n_mels=n_mels, htk=False, norm="slaney")
    ours = slaney_mel_filters(n_mels)
    assert ours.dtype == np.float32 and ours.shape == (n_mels, N_FFT // 2 + 1)
    np.testing.assert_allclose(ours, theirs, atol=1e-6, rtol=0)
    # another rate and FFT size exercise the formula rather than a stored table
    np.testing.assert_allclose(
        slaney_mel_filters(64, sample_rate=22050, n_fft=1024),
        librosa.filters.mel(sr=22050, n_fft=1024, n_mels=64),
        atol=1e-6,
        rtol=0,
    )


def test_features_do_not_import_librosa(examples_dir):
    """librosa costs ~125 MiB resident; soundfile-readable 16 kHz files must not pull it in."""
    import subprocess
    import sys

    code = (
        "import sys; from audio.io import load_audio; from audio.features import log_mel_spectrogram; "
        f"log_mel_spectrogram(load_audio({str(examples_dir / 'weather.wav')!r}), 128); "
        "print('librosa' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_log_mel_range_and_silence():
    mel = log_mel_spectrogram(_noise(1.0))
    # normalised: at most 8 decades below the peak, i.e. a span of 2.0 after /4
    assert mel.dtype == torch.float32 and float(mel.max() - mel.min()) <= 2.0 + 1e-6
    silence = log_mel_spectrogram(np.zeros(SAMPLE_RATE, dtype=np.float32))
    assert torch.all(silence == (-10 + 4) / 4)  # clamp at 1e-10 -> log10 = -10


def test_log_mel_batch_is_per_clip():
    quiet, loud = _noise(1.0, seed=1) * 0.01, _noise(1.0, seed=2)
    batch = log_mel_spectrogram(np.stack([quiet, loud]))  # (2, 80, 100)
    assert batch.shape == (2, 80, 100)
    torch.testing.assert_close(batch[0], log_mel_spectrogram(quiet))
    torch.testing.assert_close(batch[1], log_mel_spectrogram(loud))


def test_log_mel_rejects_bad_input():
    with pytest.raises(ValueError, match="shape"):
        log_mel_spectrogram(np.zeros((1, 2, 400), dtype=np.float32))
    with pytest.raises(TypeError, match="float"):
        log_mel_spectrogram(np.zeros(400, dtype=np.int16))


def test_pad_or_trim_numpy_and_torch():
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    np.testing.assert_array_equal(pad_or_trim(x, 6), np.pad(x, ((0, 0), (0, 2))))
    np.testing.assert_array_equal(pad_or_trim(x, 2), x[:, :2])
    np.testing.assert_array_equal(pad_or_trim(x, 5, axis=0), np.pad(x, ((0, 2), (0, 0))))
    t = torch.from_numpy(x)
    torch.testing.assert_close(pad_or_trim(t, 6), torch.from_numpy(np.pad(x, ((0, 0), (0, 2)))))
    torch.testing.assert_close(pad_or_trim(t, 1, axis=0), t[:1])
    torch.testing.assert_close(pad_or_trim(t, 5, axis=0), torch.from_numpy(np.pad(x, ((0, 2), (0, 0)))))
    assert pad_or_trim(np.zeros(10)).shape == (N_SAMPLES,)
