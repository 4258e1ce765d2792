"""Word timestamps against openai-whisper's (same tiny.en weights, same audio), their parts against its
functions, and the srt/vtt layout of words against its writers."""

import base64
import gzip
import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from audio.alignment import ALIGNMENT_HEADS, alignment_heads, dtw, median_filter
from audio.io import load_audio
from audio.transcribe import transcribe
from audio.word_timestamps import WordTiming, merge_punctuations
from audio.writers import SubtitleOptions, write_srt, write_vtt

ROOT = Path(__file__).resolve().parents[2]
# zoo's name -> openai-whisper's, for the released sizes in the table
OPENAI_NAMES = {
    "whisper_tiny_en": "tiny.en", "whisper_tiny": "tiny", "whisper_base_en": "base.en", "whisper_base": "base",
    "whisper_small_en": "small.en", "whisper_small": "small", "whisper_medium_en": "medium.en",
    "whisper_medium": "medium", "whisper_large_v2": "large-v2", "whisper_large_v3": "large-v3",
    "whisper_large_v3_turbo": "large-v3-turbo",
}  # fmt: skip


def openai_heads(name: str, n_layers: int, n_heads: int) -> tuple:
    """openai-whisper's published heads for a model, decoded from its base85 gzipped bool array."""
    whisper = pytest.importorskip("whisper")
    packed = gzip.decompress(base64.b85decode(whisper._ALIGNMENT_HEADS[name]))
    mask = np.frombuffer(packed, dtype=bool).reshape(n_layers, n_heads)
    return tuple((int(layer), int(head)) for layer, head in np.argwhere(mask))


def test_heads_table_is_openai_whispers():
    from audio.recipes import WHISPER

    assert set(ALIGNMENT_HEADS) == set(OPENAI_NAMES)
    for name, heads in ALIGNMENT_HEADS.items():
        config = WHISPER[name]
        assert heads == openai_heads(OPENAI_NAMES[name], config.n_text_layer, config.n_text_head), name


def test_heads_come_from_the_weights_else_the_table_else_the_last_half(whisper_model):
    model, tokenizer = whisper_model
    assert alignment_heads(model, tokenizer) == openai_heads("tiny.en", 4, 6)  # the CTranslate2 config.json
    assert alignment_heads(model) == ALIGNMENT_HEADS["whisper_tiny_en"]
    import zoo

    tiny = zoo.create_model("whisper_test")
    assert alignment_heads(tiny) == tuple((layer, head) for layer in (1,) for head in range(4))
    with pytest.raises(Exception, match="do not fit"):
        alignment_heads(tiny, heads=[[5, 0]])


def test_dtw_and_median_filter_match_openai_whisper():
    timing = pytest.importorskip("whisper.timing")
    rng = np.random.default_rng(0)
    for n, m in [(1, 1), (3, 40), (12, 150), (30, 7)]:
        cost = rng.standard_normal((n, m))
        cost[:, ::5] = 0.5  # ties: the order of preference must match too
        ours = dtw(cost)
        theirs = timing.dtw_cpu(cost.copy())
        np.testing.assert_array_equal(np.stack(ours), theirs)
    x = torch.randn(3, 9, 50)
    torch.testing.assert_close(median_filter(x, 7), timing.median_filter(x, 7))


def test_punctuation_joins_its_word():
    words = [WordTiming(w, [i], i, i + 1, 1.0) for i, w in enumerate([' "', "Hi", ",", " you", ".", '"'])]
    merge_punctuations(words, "\"'“¿([{-", "\"'.。,，!！?？:：”)]}、")
    assert [w.word for w in words] == ["", ' "Hi,', "", ' you."', "", ""]
    assert [w.tokens for w in words] == [[], [0, 1, 2], [], [3, 4, 5], [], []]


@pytest.fixture(scope="module")
def whisper_model(ct2_dir):
    from zoo.transcribe import load_model

    return load_model("tiny.en", device="cpu")


@pytest.fixture(scope="module")
def both(whisper_model, openai_tiny_en, examples_dir):
    """{clip: (zoo result, openai-whisper result)} with word timestamps, for two short committed clips."""
    whisper = pytest.importorskip("whisper")
    model, tokenizer = whisper_model
    openai_tiny_en.set_alignment_heads(whisper._ALIGNMENT_HEADS["tiny.en"])
    found = {}
    for name in ("weather.wav", "kitchen.wav"):
        audio = load_audio(examples_dir / name)
        ours = transcribe(model, audio, tokenizer=tokenizer, word_timestamps=True)
        theirs = whisper.transcribe(openai_tiny_en, audio, word_timestamps=True, fp16=False, verbose=None)
        found[name] = ours, theirs
    return found


def test_words_and_times_match_openai_whisper(both):
    for name, (ours, theirs) in both.items():
        assert ours["text"] == theirs["text"], name
        assert len(ours["segments"]) == len(theirs["segments"])
        for a, b in zip(ours["segments"], theirs["segments"]):
            assert [w["word"] for w in a["words"]] == [w["word"] for w in b["words"]], name
            for x, y in zip(a["words"], b["words"]):
                assert set(x) == {"word", "start", "end", "probability"}
                assert abs(x["start"] - y["start"]) <= 0.1 and abs(x["end"] - y["end"]) <= 0.1, (name, x, y)
                assert x["probability"] == pytest.approx(y["probability"], abs=1e-3)
            assert a["start"] == pytest.approx(b["start"], abs=0.1) and a["end"] == pytest.approx(b["end"], abs=0.1)
        json.dumps(ours)


@pytest.mark.parametrize(
    "options",
    [
        dict(),
        dict(max_line_width=20),
        dict(max_line_width=16, max_line_count=2),
        dict(max_words_per_line=3),
        dict(max_line_width=24, highlight_words=True),
    ],
)
def test_subtitles_match_openai_whispers_writers(both, options):
    utils = pytest.importorskip("whisper.utils")
    ours, _ = both["weather.wav"]
    second, _ = both["kitchen.wav"]
    shift = ours["segments"][-1]["end"] + 5.0  # a long pause between the two clips' words
    result = {"segments": ours["segments"] + [_shifted(s, shift) for s in second["segments"]]}
    for write, writer in [(write_srt, utils.WriteSRT("")), (write_vtt, utils.WriteVTT(""))]:
        a, b = io.StringIO(), io.StringIO()
        write(result, a, SubtitleOptions(**options))
        writer.write_result(result, b, options)
        assert a.getvalue() == b.getvalue(), options


def _shifted(segment: dict, seconds: float) -> dict:
    words = [dict(w, start=w["start"] + seconds, end=w["end"] + seconds) for w in segment["words"]]
    return dict(segment, start=segment["start"] + seconds, end=segment["end"] + seconds, words=words)


def test_cli_srt_lines_fit_max_line_width(tmp_path, examples_dir, ct2_dir):
    clip = examples_dir / "vad" / "speech_gap.wav"
    args = ["--word_timestamps", "True", "--max_line_width", "42", "--vad_filter", "True", "--beam_size", "5"]
    run = subprocess.run(
        [sys.executable, "-m", "zoo", "transcribe", str(clip), *args, "--output_dir", str(tmp_path), "-f", "all"],
        cwd=ROOT, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    cues = (tmp_path / "speech_gap.srt").read_text().strip().split("\n\n")
    text_lines = [line for cue in cues for line in cue.splitlines()[2:]]
    assert len(text_lines) > len(cues) and all(len(line) <= 42 for line in text_lines), text_lines
    result = json.loads((tmp_path / "speech_gap.json").read_text())
    words = [w["word"] for s in result["segments"] for w in s["words"]]
    assert " ".join(text_lines).split() == "".join(words).split()
    speech = json.loads((clip.parent / "transcripts.json").read_text())["speech_gap.wav"]["speech"]
    for cue in cues:
        start, end = cue.splitlines()[1].split(" --> ")
        middle = (_seconds(start) + _seconds(end)) / 2
        assert any(a - 0.2 <= middle <= b + 0.2 for a, b in speech), cue  # no cue in the silence


def _seconds(stamp: str) -> float:
    hours, minutes, seconds = stamp.replace(",", ".").split(":")
    return 3600 * int(hours) + 60 * int(minutes) + float(seconds)
