"""Many files in one call: windows of several files encoded and decoded together, each file's transcript
the same as when it is transcribed alone."""

import numpy as np
import pytest
import torch

import zoo
from audio.batched import transcribe_many
from audio.decoding import DecodingOptions, decode_batch, decode_features
from audio.io import load_audio
from audio.transcribe import transcribe
from shared.errors import InputError

CLIPS = ("weather.wav", "kitchen.wav", "numbers.wav", "library.wav")


@pytest.fixture(scope="module")
def whisper(ct2_dir):
    from zoo.transcribe import load_model

    return load_model("tiny.en", device="cpu", compute_type="float32")


@pytest.fixture(scope="module")
def clips(examples_dir):
    audio = [load_audio(examples_dir / name) for name in CLIPS]
    # a longer clip of two windows, so files of different lengths (and prompts) share batches
    long = np.concatenate([audio[0], np.zeros(16000 * 22, np.float32), audio[1], audio[2]])
    return [*audio, long, audio[3][: 16000 * 2]]


def same(a: dict, b: dict) -> bool:
    return a["text"] == b["text"] and [s["tokens"] for s in a["segments"]] == [s["tokens"] for s in b["segments"]]


@pytest.mark.parametrize("compute_type", ["float32", "int8"])
def test_batched_greedy_equals_each_file_alone(compute_type, clips, ct2_dir):
    from zoo.transcribe import load_model

    # int8 too: each sequence of a batch gets its own activation scale (shared.quantize)
    model, tokenizer = load_model("tiny.en", device="cpu", compute_type=compute_type)
    options = dict(temperature=0.0, beam_size=None)
    alone = [transcribe(model, audio, tokenizer=tokenizer, **options) for audio in clips]
    batched = transcribe_many(model, clips, tokenizer=tokenizer, batch_size=4, **options)
    assert len(batched) == len(clips)
    for i, (a, b) in enumerate(zip(alone, batched)):
        assert same(a, b), (i, a["text"], b["text"])
        assert [s["start"] for s in a["segments"]] == [s["start"] for s in b["segments"]]
    assert len(alone[4]["segments"]) > 1  # the long clip did take several windows


def test_fallback_and_beam_search_in_a_batch(whisper, clips):
    model, tokenizer = whisper
    # A log-probability threshold no window meets: every window falls back to sampling, re-decoded alone
    # (seeded here so the samples repeat); beam search rows decode alone as well.
    options = dict(temperature=(0.0, 0.5), logprob_threshold=0.0, beam_size=None, best_of=2)
    torch.manual_seed(0)
    alone = [transcribe(model, audio, tokenizer=tokenizer, **options) for audio in clips[:2]]
    torch.manual_seed(0)
    batched = transcribe_many(model, clips[:2], tokenizer=tokenizer, batch_size=2, **options)
    assert all(s["temperature"] == 0.5 for r in batched for s in r["segments"])
    assert all(same(a, b) for a, b in zip(alone, batched))
    memory = model.embed_audio(torch.zeros(2, model.config.n_mels, model.n_frames))
    beam = [DecodingOptions(beam_size=2, language="en"), DecodingOptions(language="en", without_timestamps=True)]
    results = decode_batch(model, memory, tokenizer, beam)
    for row, opts in enumerate(beam):
        assert results[row] == decode_features(model, memory[row : row + 1], tokenizer, opts)


def test_python_api_returns_one_result_per_file(examples_dir, ct2_dir):
    paths = [examples_dir / name for name in CLIPS[:2]]
    results = zoo.transcribe(paths, batch_size=2, compute_type="float32", temperature=0.0, beam_size=None)
    assert [r["text"] for r in results] == [zoo.transcribe(p, compute_type="float32", temperature=0.0,
                                                           beam_size=None)["text"] for p in paths]
    with pytest.raises(InputError, match="batch_size must be at least 1"):
        transcribe_many(None, paths, tokenizer=None, batch_size=0)


def test_cli_batches_files_and_reports_bad_ones(tmp_path, examples_dir, ct2_dir):
    import subprocess
    import sys
    from pathlib import Path

    from zoo.transcribe import load_model

    good = [examples_dir / "weather.wav", examples_dir / "library.wav"]
    missing = tmp_path / "missing.wav"
    proc = subprocess.run(
        [sys.executable, "-m", "zoo", "transcribe", str(good[0]), str(missing), str(good[1]), "--batch_size", "2",
         "--compute_type", "int8", "--beam_size", "None", "--temperature_increment_on_fallback", "None",
         "--output_format", "txt", "--output_dir", str(tmp_path), "--verbose", "False", "--threads", "2"],
        cwd=Path(__file__).resolve().parents[2], capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert str(missing) in proc.stderr and "1 of 3 file(s) could not be transcribed" in proc.stderr
    model, tokenizer = load_model("tiny.en", device="cpu", compute_type="int8")
    for clip in good:
        alone = transcribe(model, load_audio(clip), tokenizer=tokenizer, temperature=0.0, beam_size=None)
        assert (tmp_path / f"{clip.stem}.txt").read_text().strip() == alone["text"].strip()


def test_batch_keeps_word_timestamps_and_the_vad_filter(clips, ct2_dir):
    from zoo.transcribe import load_model

    model, tokenizer = load_model("tiny.en", device="cpu", compute_type="int8")
    gap = np.concatenate([clips[0], np.zeros(16000 * 30, np.float32), clips[1]])  # speech, 30 s silence, speech
    options = dict(temperature=0.0, beam_size=None, vad_filter=True, word_timestamps=True)
    alone = [transcribe(model, audio, tokenizer=tokenizer, **options) for audio in (gap, clips[2])]
    batched = transcribe_many(model, [gap, clips[2]], tokenizer=tokenizer, batch_size=2, **options)
    for a, b in zip(alone, batched):
        assert same(a, b)
        assert [s["words"] for s in a["segments"]] == [s["words"] for s in b["segments"]]
    assert batched[0]["segments"][-1]["start"] > 30  # back on the original time line, after the silence
