"""POST /v1/audio/transcriptions: OpenAI's transcription endpoint on zoo's Whisper models.

The text equals zoo.transcribe on the same file with the same options: the upload is decoded by the same
reader (audio.io.load_audio) and run through the same transcribe().
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from starlette.concurrency import run_in_threadpool

from audio.features import SAMPLE_RATE
from shared.errors import InputError, ZooError
from zoo.serve import formats
from zoo.serve.errors import APIError, bad_request, from_zoo_error
from zoo.serve.requests import number, read_form, submit, text_field, upload_to_file, wait_for

router = APIRouter()
GRANULARITIES = ("segment", "word")


def decode_upload(path, max_seconds: float):
    """16 kHz samples of an uploaded file, as zoo.transcribe reads a file (415 if it is not audio)."""
    from audio.io import load_audio

    try:
        samples = load_audio(path)
    except InputError as err:
        message = str(err).replace(str(path), "file")  # the temporary name means nothing to the client
        raise APIError(415, message, "file", "unsupported_audio") from None
    seconds = len(samples) / SAMPLE_RATE
    if seconds > max_seconds:
        raise bad_request(f"the audio is {seconds:.0f} s long; this server transcribes at most "
                          f"{max_seconds:.0f} s (--max-audio-seconds)", "file")
    return samples


def options_of(form, word_timestamps: bool) -> dict:
    """transcribe() options from OpenAI's fields. Temperature 0 (or none) is Whisper's fallback schedule,
    as OpenAI documents; another value samples at that temperature only."""
    from audio.transcribe import DEFAULT_TEMPERATURES

    temperature = number(text_field(form, "temperature"), "temperature", float, 0.0, 1.0)
    options = {"temperature": DEFAULT_TEMPERATURES if not temperature else (temperature,)}
    language = text_field(form, "language")
    if language:
        options["language"] = language.lower()
    prompt = text_field(form, "prompt")
    if prompt:
        options["initial_prompt"] = prompt
    if word_timestamps:
        options["word_timestamps"] = True
    return options


def granularities(form, response_format: str) -> set[str]:
    values = form.getlist("timestamp_granularities[]") + form.getlist("timestamp_granularities")
    for value in values:
        if value not in GRANULARITIES:
            raise bad_request(f"timestamp_granularities[] must be segment or word, got {value!r}",
                              "timestamp_granularities[]")
    if values and response_format != "verbose_json":
        raise bad_request("timestamp_granularities[] needs response_format verbose_json",
                          "timestamp_granularities[]")
    return set(values)


@router.post("/v1/audio/transcriptions")
async def transcriptions(request: Request):
    state = request.app.state.server
    form = await read_form(request)
    model = state.resolve(text_field(form, "model"), "transcription")
    response_format = text_field(form, "response_format", "json", formats.TRANSCRIPT_FORMATS)
    words = "word" in granularities(form, response_format)
    options = options_of(form, words)
    path = await upload_to_file(form)
    try:
        samples = await run_in_threadpool(decode_upload, path, state.config.max_audio_seconds)
    finally:
        path.unlink(missing_ok=True)
    try:
        result = await wait_for(request, submit(state.scheduler, "transcription", (model, samples, options)))
    except ZooError as err:
        raise from_zoo_error(err) from None
    body = formats.transcript(result, response_format, len(samples) / SAMPLE_RATE, words)
    if isinstance(body, str):
        media = {"vtt": "text/vtt", "srt": "application/x-subrip"}.get(response_format, "text/plain")
        return PlainTextResponse(body, media_type=media)
    return JSONResponse(body)
