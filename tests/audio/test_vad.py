"""The VAD filter: Silero's probabilities in one pass, the time line mapped back, and a clip with 30 s of
silence inside transcribed with the real tiny.en weights."""

import json

import numpy as np
import pytest
import torch

from audio.io import load_audio
from audio.transcribe import transcribe
from audio.vad import SpeechTimeline, VadOptions, speech_chunks, speech_probabilities, vad_options
from shared.errors import ConfigError


@pytest.fixture(scope="module")
def clip(examples_dir):
    """The committed clip: speech, 30 s of silence, speech; and where its speech is (seconds)."""
    folder = examples_dir / "vad"
    info = json.loads((folder / "transcripts.json").read_text())["speech_gap.wav"]
    return folder / "speech_gap.wav", info


def test_probabilities_match_silero_window_by_window(examples_dir):
    from silero_vad import load_silero_vad

    audio = load_audio(examples_dir / "kitchen.wav")
    model = load_silero_vad(onnx=False)
    model.reset_states()
    padded = torch.nn.functional.pad(torch.from_numpy(audio), (0, -len(audio) % 512))
    with torch.inference_mode():
        expected = [model(window, 16000).item() for window in padded.split(512)]
    np.testing.assert_allclose(speech_probabilities(audio), expected, atol=1e-4)
    assert max(expected) > 0.9 and min(expected) < 0.1  # speech and pauses both present


def test_timeline_moves_times_past_the_cut_silence():
    sr = 16000
    chunks = [{"start": 1 * sr, "end": 3 * sr}, {"start": 10 * sr, "end": 12 * sr}]  # 1 s and 7 s cut
    timeline = SpeechTimeline(chunks, n_samples=20 * sr, pad=0.5)
    # speech-only audio: chunk 0 is 0-2 s (speech 0.5-1.5), chunk 1 is 2-4 s (speech 2.5-3.5)
    segment = {"start": 0.7, "end": 3.2}
    timeline.restore(segment)
    assert (segment["start"], segment["end"]) == (1.7, 11.2)
    segment = {"start": 1.8, "end": 3.9}  # starts and ends in the padding around the cut silence
    timeline.restore(segment)
    assert (segment["start"], segment["end"]) == (10.5, 11.5)
    words = [{"word": " a", "start": 2.6, "end": 2.9}, {"word": " b", "start": 3.0, "end": 3.3}]
    segment = {"start": 2.6, "end": 3.3, "words": words}
    timeline.restore(segment)
    assert [(w["start"], w["end"]) for w in words] == [(10.6, 10.9), (11.0, 11.3)]
    assert (segment["start"], segment["end"]) == (10.6, 11.3)


def test_options_are_faster_whispers():
    assert vad_options(None) == VadOptions(0.5, 0, float("inf"), 2000, 400)
    assert vad_options({"threshold": 0.3}).threshold == 0.3
    with pytest.raises(ConfigError, match="unknown vad_parameters window"):
        vad_options({"window": 3})


def test_speech_chunks_surround_the_speech(clip):
    path, info = clip
    chunks = speech_chunks(load_audio(path), VadOptions())
    assert len(chunks) == len(info["speech"]) == 2
    for chunk, (start, end) in zip(chunks, info["speech"]):
        assert chunk["start"] / 16000 <= start and chunk["end"] / 16000 >= end
        assert chunk["start"] / 16000 > start - 1.0 and chunk["end"] / 16000 < end + 1.0


@pytest.fixture(scope="module")
def whisper_model(ct2_dir):
    from zoo.transcribe import load_model

    return load_model("tiny.en", device="cpu")


@pytest.mark.parametrize("word_timestamps", [False, True])
def test_speech_gap_clip_with_vad_filter(whisper_model, clip, word_timestamps):
    model, tokenizer = whisper_model
    path, info = clip
    result = transcribe(model, str(path), tokenizer=tokenizer, vad_filter=True, word_timestamps=word_timestamps)
    assert result["text"].strip() == info["text"]
    spoken = [s for s in result["segments"] if s["text"].strip()]
    if not word_timestamps:  # one segment per stretch of speech, on the original time line
        assert [(s["start"], s["end"]) for s in spoken] == [pytest.approx(span, abs=0.2) for span in info["speech"]]
    else:  # every word inside the speech, none in the silence
        for word in (w for s in spoken for w in s["words"]):
            assert any(a - 0.2 <= word["start"] and word["end"] <= b + 0.2 for a, b in info["speech"]), word
