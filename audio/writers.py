"""Transcript files in openai-whisper's formats: txt, vtt, srt, tsv, json (or all of them).

Each writer takes the dict transcribe() returns and writes `<output_dir>/<stem of the audio file>.<ext>`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TextIO

from audio.transcribe import format_timestamp

FORMATS = ("txt", "vtt", "srt", "tsv", "json")


def _clean(text: str) -> str:
    return text.strip().replace("-->", "->")  # an arrow inside a cue would end the cue line


def _spoken(result: dict):
    return [s for s in result["segments"] if s["text"].strip()]


def write_txt(result: dict, file: TextIO) -> None:
    for segment in _spoken(result):
        print(segment["text"].strip(), file=file, flush=True)


def write_vtt(result: dict, file: TextIO) -> None:
    print("WEBVTT\n", file=file)
    for s in _spoken(result):
        print(
            f"{format_timestamp(s['start'])} --> {format_timestamp(s['end'])}\n{_clean(s['text'])}\n",
            file=file,
        )


def write_srt(result: dict, file: TextIO) -> None:
    for index, s in enumerate(_spoken(result), start=1):
        start = format_timestamp(s["start"], always_include_hours=True, decimal_marker=",")
        end = format_timestamp(s["end"], always_include_hours=True, decimal_marker=",")
        print(f"{index}\n{start} --> {end}\n{_clean(s['text'])}\n", file=file)


def write_tsv(result: dict, file: TextIO) -> None:
    """Start and end in integer milliseconds, tab-separated, so the file survives locale-dependent parsers."""
    print("start", "end", "text", sep="\t", file=file)
    for s in _spoken(result):
        text = s["text"].strip().replace("\t", " ")
        print(round(1000 * s["start"]), round(1000 * s["end"]), text, sep="\t", file=file)


def write_json(result: dict, file: TextIO) -> None:
    json.dump(result, file, ensure_ascii=False)


WRITERS = {"txt": write_txt, "vtt": write_vtt, "srt": write_srt, "tsv": write_tsv, "json": write_json}


def write_result(
    result: dict, audio_path: str | Path, output_dir: str | Path, output_format: str = "all"
) -> list[Path]:
    """Write the transcript of `audio_path` in one format (or "all") -> the paths written."""
    if output_format != "all" and output_format not in WRITERS:
        raise ValueError(f"unknown output format {output_format!r}: use one of {', '.join(FORMATS)} or all")
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for ext in FORMATS if output_format == "all" else (output_format,):
        path = output_dir / f"{Path(audio_path).stem}.{ext}"
        with open(path, "w", encoding="utf-8") as file:
            WRITERS[ext](result, file)
        written.append(path)
    return written
