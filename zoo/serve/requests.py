"""Reading requests: typed form and JSON fields with one-line 400s, uploads to temporary files, and waiting
for a queued job while watching whether the client is still there."""

from __future__ import annotations

import asyncio
import json
import math
import os
import tempfile
from concurrent.futures import Future
from pathlib import Path

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile
from starlette.requests import Request

from zoo.serve.compute import QueueFull, Stopped
from zoo.serve.errors import APIError, ClientGone, bad_request

DISCONNECT_POLL_SECONDS = 0.1


async def read_form(request: Request) -> FormData:
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith("multipart/form-data"):
        raise bad_request(f"expected a multipart/form-data body, got {content_type or 'none'}")
    return await request.form(max_files=4, max_fields=64)


async def read_json(request: Request) -> dict:
    raw = await request.body()
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise bad_request("the body is not valid JSON; send a JSON object with Content-Type: "
                          "application/json") from None
    if not isinstance(data, dict):
        raise bad_request(f"the body must be a JSON object, got {type(data).__name__}")
    return data


def text_field(form: FormData, name: str, default: str | None = None, choices=None) -> str | None:
    value = form.get(name, default)
    if isinstance(value, UploadFile):
        raise bad_request(f"{name} must be a text field, not a file", name)
    if value is not None and choices is not None and value not in choices:
        raise bad_request(f"{name} must be one of {', '.join(choices)}, got {value!r}", name)
    return value


def number(value, name: str, kind=float, low: float | None = None, high: float | None = None):
    """A form string or JSON value as `kind`, within [low, high]; a 400 naming the field otherwise."""
    if value is None:
        return None
    if isinstance(value, bool) or (kind is int and isinstance(value, float) and not value.is_integer()):
        raise bad_request(f"{name} must be {'an integer' if kind is int else 'a number'}, got {value!r}", name)
    try:
        result = kind(value)
    except (TypeError, ValueError):
        raise bad_request(f"{name} must be {'an integer' if kind is int else 'a number'}, got {value!r}",
                          name) from None
    if isinstance(result, float) and not math.isfinite(result):
        raise bad_request(f"{name} must be a finite number, got {value!r}", name)
    if (low is not None and result < low) or (high is not None and result > high):
        raise bad_request(f"{name} must be between {low} and {high}, got {value!r}", name)
    return result


def flag(value, name: str, default: bool = False) -> bool:
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    if str(value).lower() in ("true", "1", "yes"):
        return True
    if str(value).lower() in ("false", "0", "no", ""):
        return False
    raise bad_request(f"{name} must be true or false, got {value!r}", name)


async def upload_to_file(form: FormData, name: str = "file") -> Path:
    """The uploaded file as a temporary file (the caller deletes it), keeping its name's suffix so decoders
    can tell the format from it."""
    upload = form.get(name)
    if upload is None:
        raise bad_request(f"{name} is required: send the file as a multipart field named {name!r}", name)
    if not isinstance(upload, UploadFile):
        raise bad_request(f"{name} must be a file upload, got a text field", name)
    suffix = Path(upload.filename or "").suffix[:16]
    fd, path = tempfile.mkstemp(prefix="zoo-serve-", suffix=suffix)

    def copy() -> None:
        upload.file.seek(0)
        with os.fdopen(fd, "wb") as out:
            while chunk := upload.file.read(1 << 20):
                out.write(chunk)

    await run_in_threadpool(copy)
    return Path(path)


def submit(scheduler, lane: str, payload) -> Future:
    """Queue a job; a full queue is a 429 with Retry-After, a stopping server a 503."""
    try:
        return scheduler.submit(lane, payload)
    except QueueFull as err:
        raise APIError(429, str(err), code="queue_full", headers={"Retry-After": str(err.retry_after)}) from None
    except Stopped:
        raise APIError(503, "the server is shutting down; retry on another instance", code="shutting_down") \
            from None


async def wait_for(request: Request, future: Future):
    """The job's result; if the client disconnects first, the job is cancelled (dropped unrun if still
    queued) and ClientGone is raised."""
    waiting = asyncio.wrap_future(future)
    while True:
        done, _ = await asyncio.wait({waiting}, timeout=DISCONNECT_POLL_SECONDS)
        if done:
            return waiting.result()
        if await request.is_disconnected():
            future.cancel()
            waiting.cancel()
            raise ClientGone()
