"""Transcript files in openai-whisper's formats: txt, vtt, srt, tsv, json (or all of them).

Each writer takes the dict transcribe() returns and writes `<output_dir>/<stem of the audio file>.<ext>`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from audio.transcribe import format_timestamp

FORMATS = ("txt", "vtt", "srt", "tsv", "json")


@dataclass(frozen=True)
class SubtitleOptions:
    """How srt and vtt lay out word-timestamped results (openai-whisper's names; ignored without words).

    max_line_width: characters per line before a break; max_line_count: lines per cue (with a width);
    highlight_words: one cue per word, the word underlined; max_words_per_line: words per cue when no width.
    """

    max_line_width: int | None = None
    max_line_count: int | None = None
    highlight_words: bool = False
    max_words_per_line: int | None = None


def _clean(text: str) -> str:
    return text.strip().replace("-->", "->")  # an arrow inside a cue would end the cue line


def _spoken(result: dict):
    return [s for s in result["segments"] if s["text"].strip()]


def write_txt(result: dict, file: TextIO) -> None:
    for segment in _spoken(result):
        print(segment["text"].strip(), file=file, flush=True)


def _subtitle_lines(result: dict, options: SubtitleOptions):
    """Subtitles as lists of words (each {"word", "start", "end"}, a line break written into the word that
    starts a new line), from the words of every segment."""
    preserve_segments = options.max_line_count is None or options.max_line_width is None
    max_width = options.max_line_width or 1000
    per_line = options.max_words_per_line or 1000
    subtitle, line_len, line_count = [], 0, 1
    last = next((s["words"][0]["start"] for s in result["segments"] if s.get("words")), 0.0)
    for segment in result["segments"]:
        words = segment.get("words") or []
        for chunk_start in range(0, len(words), per_line):
            for i, word in enumerate(words[chunk_start : chunk_start + per_line]):
                timing = dict(word)
                long_pause = not preserve_segments and timing["start"] - last > 3.0
                has_room = line_len + len(timing["word"]) <= max_width
                segment_break = i == 0 and bool(subtitle) and preserve_segments
                if line_len > 0 and has_room and not long_pause and not segment_break:
                    line_len += len(timing["word"])  # same line
                else:
                    timing["word"] = timing["word"].strip()
                    full = options.max_line_count is not None and (long_pause or line_count >= options.max_line_count)
                    if (subtitle and full) or segment_break:
                        yield subtitle  # next subtitle
                        subtitle, line_count = [], 1
                    elif line_len > 0:
                        line_count += 1  # next line
                        timing["word"] = "\n" + timing["word"]
                    line_len = len(timing["word"].strip())
                subtitle.append(timing)
                last = timing["start"]
    if subtitle:
        yield subtitle


def _cues(result: dict, options: SubtitleOptions, stamp):
    """(start, end, text) of each cue: a segment's, or with word timestamps a line-broken group of words
    (one cue per word with highlight_words, the spoken word underlined)."""
    if not any("words" in s for s in result["segments"]):
        for s in _spoken(result):
            yield stamp(s["start"]), stamp(s["end"]), _clean(s["text"])
        return
    for subtitle in _subtitle_lines(result, options):
        text = "".join(w["word"] for w in subtitle).replace("-->", "->")
        if not options.highlight_words:
            yield stamp(subtitle[0]["start"]), stamp(subtitle[-1]["end"]), text
            continue
        last = stamp(subtitle[0]["start"])
        for i, word in enumerate(subtitle):
            start, end = stamp(word["start"]), stamp(word["end"])
            if last != start:
                yield last, start, text  # the pause before this word, nothing underlined
            underlined = (
                re.sub(r"^(\s*)(.*)$", r"\1<u>\2</u>", w["word"]) if j == i else w["word"]
                for j, w in enumerate(subtitle)
            )
            yield start, end, "".join(underlined).replace("-->", "->")
            last = end


def write_vtt(result: dict, file: TextIO, options: SubtitleOptions | None = None) -> None:
    print("WEBVTT\n", file=file)
    for start, end, text in _cues(result, options or SubtitleOptions(), format_timestamp):
        print(f"{start} --> {end}\n{text}\n", file=file)


def write_srt(result: dict, file: TextIO, options: SubtitleOptions | None = None) -> None:
    def stamp(seconds: float) -> str:
        return format_timestamp(seconds, always_include_hours=True, decimal_marker=",")

    for index, (start, end, text) in enumerate(_cues(result, options or SubtitleOptions(), stamp), start=1):
        print(f"{index}\n{start} --> {end}\n{text}\n", file=file)


def write_tsv(result: dict, file: TextIO) -> None:
    """Start and end in integer milliseconds, tab-separated, so the file survives locale-dependent parsers."""
    print("start", "end", "text", sep="\t", file=file)
    for s in _spoken(result):
        text = s["text"].strip().replace("\t", " ")
        print(round(1000 * s["start"]), round(1000 * s["end"]), text, sep="\t", file=file)


def write_json(result: dict, file: TextIO) -> None:
    """The whole result dict, segments' words included when transcribed with word timestamps."""
    json.dump(result, file, ensure_ascii=False)


WRITERS = {"txt": write_txt, "vtt": write_vtt, "srt": write_srt, "tsv": write_tsv, "json": write_json}


def write_result(
    result: dict,
    audio_path: str | Path,
    output_dir: str | Path,
    output_format: str = "all",
    subtitles: SubtitleOptions | None = None,
) -> list[Path]:
    """Write the transcript of `audio_path` in one format (or "all") -> the paths written; `subtitles` lays
    out srt and vtt cues from the words."""
    if output_format != "all" and output_format not in WRITERS:
        raise ValueError(f"unknown output format {output_format!r}: use one of {', '.join(FORMATS)} or all")
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for ext in FORMATS if output_format == "all" else (output_format,):
        path = output_dir / f"{Path(audio_path).stem}.{ext}"
        with open(path, "w", encoding="utf-8") as file:
            if ext in ("srt", "vtt"):
                WRITERS[ext](result, file, subtitles)
            else:
                WRITERS[ext](result, file)
        written.append(path)
    return written
