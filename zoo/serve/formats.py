"""Response bodies in OpenAI's formats: transcripts as json, text, srt, vtt or verbose_json, embeddings as
float lists or base64 of little-endian float32."""

from __future__ import annotations

import base64
import io

import numpy as np

from audio.writers import write_srt, write_vtt

TRANSCRIPT_FORMATS = ("json", "text", "srt", "vtt", "verbose_json")
SEGMENT_FIELDS = ("id", "seek", "start", "end", "text", "tokens", "temperature", "avg_logprob",
                  "compression_ratio", "no_speech_prob")


def _written(writer, result: dict) -> str:
    buffer = io.StringIO()
    writer(result, buffer)
    return buffer.getvalue()


def transcript(result: dict, response_format: str, duration: float, with_words: bool = False):
    """The body for one transcript: a dict for the JSON formats, a str for text, srt and vtt.

    `text` is the transcript's own text, as zoo.transcribe returns it, stripped of its leading space as
    OpenAI's is; the `text` format is that text on one line."""
    text = result["text"].strip()
    if response_format == "json":
        return {"text": text}
    if response_format == "text":
        return text + "\n"
    if response_format == "srt":
        return _written(write_srt, result)
    if response_format == "vtt":
        return _written(write_vtt, result)
    segments = [{key: segment[key] for key in SEGMENT_FIELDS if key in segment} for segment in result["segments"]]
    body = {"task": "transcribe", "language": result["language"], "duration": round(duration, 3),
            "text": text, "segments": segments}
    if with_words:
        body["words"] = [{"word": w["word"], "start": w["start"], "end": w["end"]}
                         for segment in result["segments"] for w in segment.get("words", [])]
    return body


def embedding(vector, encoding_format: str):
    """One (D,) vector as a list of floats, or as base64 of its little-endian float32 bytes."""
    values = np.asarray(vector, dtype="<f4")
    if encoding_format == "base64":
        return base64.b64encode(values.tobytes()).decode("ascii")
    return values.tolist()
