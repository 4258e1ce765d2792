"""POST /v1/embeddings and POST /v1/completions, in OpenAI's request and response shapes."""

from __future__ import annotations

import asyncio
import json
import time
import uuid

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse

from shared.errors import ZooError
from shared.generation import Greedy, Sample
from zoo.serve import formats
from zoo.serve.errors import ClientGone, bad_request, from_zoo_error
from zoo.serve.models import Completion
from zoo.serve.requests import number, read_json, submit, wait_for

router = APIRouter()


def _sentences(value, limit: int) -> list[str]:
    sentences = [value] if isinstance(value, str) else value
    if not isinstance(sentences, list) or not sentences:
        raise bad_request("input must be a non-empty string or a non-empty list of strings", "input")
    if not all(isinstance(s, str) for s in sentences):
        raise bad_request("input must be strings; token arrays are not supported", "input")
    if any(not s for s in sentences):
        raise bad_request("input must not contain empty strings", "input")
    if len(sentences) > limit:
        raise bad_request(f"input has {len(sentences)} items; at most {limit} per request "
                          "(--max-embedding-inputs)", "input")
    return sentences


@router.post("/v1/embeddings")
async def embeddings(request: Request):
    state = request.app.state.server
    data = await read_json(request)
    model = state.resolve(data.get("model"), "embedding")
    sentences = _sentences(data.get("input"), state.config.max_embedding_inputs)
    encoding = data.get("encoding_format") or "float"
    if encoding not in ("float", "base64"):
        raise bad_request(f"encoding_format must be float or base64, got {encoding!r}", "encoding_format")
    if data.get("dimensions") not in (None, model.handle.dim):
        raise bad_request(f"{model.id} gives {model.handle.dim}-dimensional vectors; dimensions cannot "
                          "change that", "dimensions")
    vectors, tokens = await wait_for(request, submit(state.scheduler, "embedding", (model, sentences)))
    return {"object": "list", "model": model.id,
            "data": [{"object": "embedding", "index": i, "embedding": formats.embedding(v, encoding)}
                     for i, v in enumerate(vectors.numpy())],
            "usage": {"prompt_tokens": sum(tokens), "total_tokens": sum(tokens)}}


def _completion_request(data: dict, max_tokens_limit: int) -> Completion:
    prompt = data.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1:
        prompt = prompt[0]
    if not isinstance(prompt, str):
        raise bad_request("prompt must be a string (one prompt per request)", "prompt")
    number(data.get("n"), "n", int, 1, 1)
    number(data.get("best_of"), "best_of", int, 1, 1)
    for unsupported in ("logprobs", "echo", "suffix"):
        if data.get(unsupported):
            raise bad_request(f"{unsupported} is not supported by this server", unsupported)
    max_tokens = number(data.get("max_tokens", 16), "max_tokens", int, 1, max_tokens_limit)
    temperature = number(data.get("temperature", 1.0), "temperature", float, 0.0, 2.0)
    top_p = number(data.get("top_p", 1.0), "top_p", float, 0.0, 1.0)
    seed = number(data.get("seed"), "seed", int)
    stop = data.get("stop") or []
    stop = [stop] if isinstance(stop, str) else stop
    if not isinstance(stop, list) or len(stop) > 4 or not all(isinstance(s, str) for s in stop):
        raise bad_request("stop must be a string or a list of at most 4 strings", "stop")
    if temperature == 0 or top_p == 0:
        selector = Greedy()
    else:
        selector = Sample(temperature, None, top_p if top_p < 1 else None, seed)
    return Completion(prompt, max_tokens, selector, stop)


def _finish_reason(reason: str) -> str:
    return "length" if reason == "length" else "stop"


def _chunk(completion_id: str, created: int, model_id: str, text: str, finish: str | None) -> str:
    choice = {"text": text, "index": 0, "logprobs": None, "finish_reason": finish}
    body = {"id": completion_id, "object": "text_completion", "created": created, "model": model_id,
            "choices": [choice]}
    return f"data: {json.dumps(body)}\n\n"


@router.post("/v1/completions")
async def completions(request: Request):
    state = request.app.state.server
    data = await read_json(request)
    model = state.resolve(data.get("model"), "completion")
    job = _completion_request(data, state.config.max_tokens)
    completion_id, created = f"cmpl-{uuid.uuid4().hex[:24]}", int(time.time())
    if data.get("stream"):
        loop, pieces = asyncio.get_running_loop(), asyncio.Queue()
        job.on_text = _forward(job, loop, pieces)
        future = submit(state.scheduler, "completion", (model, job))  # a 429 before the stream begins
        return StreamingResponse(_stream(request, future, job, pieces, model.id, completion_id, created),
                                 media_type="text/event-stream")
    try:
        out, prompt_tokens = await wait_for(request, submit(state.scheduler, "completion", (model, job)))
    except ZooError as err:
        raise from_zoo_error(err, "prompt") from None
    usage = {"prompt_tokens": prompt_tokens, "completion_tokens": len(out.token_ids),
             "total_tokens": prompt_tokens + len(out.token_ids)}
    return JSONResponse({"id": completion_id, "object": "text_completion", "created": created,
                         "model": model.id, "choices": [{"text": out.text, "index": 0, "logprobs": None,
                                                         "finish_reason": _finish_reason(out.finish_reason)}],
                         "usage": usage})


class _Abandoned(Exception):
    """Raised inside generation when the streaming client has gone, to stop spending compute on it."""


def _forward(job: Completion, loop, pieces: asyncio.Queue):
    """on_text for the compute thread: hand each piece to the event loop, or stop once the client is gone."""

    def on_text(piece: str) -> None:
        if job.abandoned:
            raise _Abandoned()
        loop.call_soon_threadsafe(pieces.put_nowait, piece)

    return on_text


async def _stream(request: Request, future, job: Completion, pieces: asyncio.Queue, model_id: str,
                  completion_id: str, created: int):
    """Server-sent events: a chunk per piece of text as the compute thread makes it, a last chunk with the
    finish reason, then `data: [DONE]`. An error after the stream began is sent as an error event."""
    waiting = asyncio.ensure_future(wait_for(request, future))
    try:
        while not (waiting.done() and pieces.empty()):
            getter = asyncio.ensure_future(pieces.get())
            await asyncio.wait({getter, waiting}, return_when=asyncio.FIRST_COMPLETED)
            if getter.done():
                yield _chunk(completion_id, created, model_id, getter.result(), None)
            else:
                getter.cancel()
        out, _ = waiting.result()
        yield _chunk(completion_id, created, model_id, "", _finish_reason(out.finish_reason))
    except ClientGone:
        return
    except ZooError as err:
        error = from_zoo_error(err, "prompt")
        yield f"data: {json.dumps({'error': {'message': error.message, 'type': 'invalid_request_error'}})}\n\n"
    finally:
        job.abandoned = True  # a generation still running for a client that left stops at its next piece
        future.cancel()
        waiting.cancel()
    yield "data: [DONE]\n\n"
