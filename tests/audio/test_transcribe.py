"""Long-form transcription with the real tiny.en weights, silence and noise, the Python API, the writers."""

import difflib
import json
import re

import numpy as np
import pytest

import zoo
from audio.io import load_audio
from audio.transcribe import format_timestamp, transcribe
from audio.writers import write_result
from shared.errors import InputError

SEGMENT_KEYS = {
    "id",
    "seek",
    "start",
    "end",
    "text",
    "tokens",
    "temperature",
    "avg_logprob",
    "compression_ratio",
    "no_speech_prob",
}


@pytest.fixture(scope="module")
def whisper(ct2_dir):
    from zoo.transcribe import load_model

    return load_model("tiny.en", device="cpu")


def words(text: str) -> list[str]:
    return re.sub(r"[^a-z0-9' ]", " ", text.lower()).split()


def _same_as_openai(ours: dict, theirs: dict) -> None:
    assert ours["text"] == theirs["text"]
    assert len(ours["segments"]) == len(theirs["segments"])
    for a, b in zip(ours["segments"], theirs["segments"]):
        assert a["tokens"] == b["tokens"] and a["seek"] == b["seek"]
        assert a["start"] == pytest.approx(b["start"]) and a["end"] == pytest.approx(b["end"])


def test_short_clip_matches_openai_transcribe(whisper, openai_tiny_en, examples_dir):
    openai_whisper = pytest.importorskip("whisper")
    model, tokenizer = whisper
    audio = load_audio(examples_dir / "weather.wav")
    ours = transcribe(model, audio, tokenizer=tokenizer)
    theirs = openai_whisper.transcribe(openai_tiny_en, audio, fp16=False, verbose=None)
    _same_as_openai(ours, theirs)
    assert ours["language"] == "en" and set(ours["segments"][0]) == SEGMENT_KEYS
    json.dumps(ours)  # plain Python values only


@pytest.mark.slow
def test_long_clip_is_transcribed_completely(whisper, openai_tiny_en, examples_dir, transcripts):
    model, tokenizer = whisper
    audio = load_audio(examples_dir / "long.wav")
    duration = len(audio) / 16000
    assert duration > 60
    result = transcribe(model, audio, tokenizer=tokenizer)

    hypothesis = words(result["text"])
    position = 0
    for sentence in re.split(r"(?<=\.)\s+", transcripts["long.wav"]):  # every sentence, in order
        expected = words(sentence)
        best, best_at = 0.0, None
        for start in range(position, len(hypothesis)):
            window = hypothesis[start : start + len(expected)]
            ratio = difflib.SequenceMatcher(None, expected, window).ratio()
            if ratio > best:
                best, best_at = ratio, start
        assert best >= 0.75, (sentence, result["text"])
        position = best_at + 1

    segments = result["segments"]
    assert segments[-1]["end"] > 60 and segments[-1]["end"] <= duration + 1.0
    for previous, current in zip(segments, segments[1:]):
        assert current["start"] >= previous["start"] and current["start"] >= previous["end"] - 1e-6
    assert all(s["end"] > s["start"] for s in segments if s["text"])
    assert len({s["seek"] for s in segments}) >= 3  # several windows, each seeking to the last timestamp

    openai_whisper = pytest.importorskip("whisper")
    _same_as_openai(result, openai_whisper.transcribe(openai_tiny_en, audio, fp16=False, verbose=None))


@pytest.mark.parametrize("kind", ["silence", "noise"])
def test_silence_and_noise_give_no_text(whisper, kind):
    model, tokenizer = whisper
    rng = np.random.default_rng(0)
    audio = (
        np.zeros(8 * 16000, np.float32)
        if kind == "silence"
        else (0.1 * rng.standard_normal(8 * 16000)).astype(np.float32)
    )
    result = transcribe(model, audio, tokenizer=tokenizer)
    assert result["text"].strip() == "", result["text"]
    assert all(not s["text"].strip() for s in result["segments"])


def test_python_api(examples_dir, ct2_dir):
    audio = load_audio(examples_dir / "numbers.wav")
    result = zoo.transcribe(audio, "tiny.en", temperature=0.0, initial_prompt="Train times.")
    assert "train" in result["text"].lower() and "morning" in result["text"].lower()
    assert zoo.transcribe(examples_dir / "numbers.wav", "openai/whisper-tiny.en")["text"]
    with pytest.raises(InputError, match="no such file"):
        zoo.transcribe(examples_dir / "missing.wav")
    with pytest.raises(InputError, match="1-D"):
        zoo.transcribe(np.zeros((2, 100), np.float32))


def test_writers(tmp_path):
    result = {
        "text": " Hello there. Bye.",
        "language": "en",
        "segments": [
            {"id": 0, "seek": 0, "start": 0.0, "end": 1.5, "text": " Hello there.", "tokens": [1, 2]},
            {"id": 1, "seek": 0, "start": 1.5, "end": 1.5, "text": "", "tokens": []},
            {"id": 2, "seek": 150, "start": 3661.25, "end": 3662.0, "text": " Bye.", "tokens": [3]},
        ],
    }
    paths = write_result(result, "/somewhere/talk.wav", tmp_path, "all")
    assert sorted(p.name for p in paths) == ["talk.json", "talk.srt", "talk.tsv", "talk.txt", "talk.vtt"]
    assert (tmp_path / "talk.txt").read_text() == "Hello there.\nBye.\n"
    srt = (tmp_path / "talk.srt").read_text()
    assert srt.startswith(
        "1\n00:00:00,000 --> 00:00:01,500\nHello there.\n\n2\n01:01:01,250 --> 01:01:02,000\nBye."
    )
    vtt = (tmp_path / "talk.vtt").read_text()
    assert vtt.startswith("WEBVTT\n\n00:00.000 --> 00:01.500\nHello there.\n")
    assert (tmp_path / "talk.tsv").read_text().splitlines() == [
        "start\tend\ttext",
        "0\t1500\tHello there.",
        "3661250\t3662000\tBye.",
    ]
    assert json.loads((tmp_path / "talk.json").read_text()) == result
    assert format_timestamp(62.0456) == "01:02.046"
