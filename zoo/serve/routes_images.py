"""zoo's own image endpoints: POST /v1/images/captions and POST /v1/images/classifications."""

from __future__ import annotations

import base64

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from shared.errors import InputError, ZooError
from zoo.serve.errors import APIError, from_zoo_error
from zoo.serve.requests import flag, number, read_form, submit, text_field, upload_to_file, wait_for

router = APIRouter()


def check_image(path) -> None:
    """415 unless the upload decodes fully as an image (what the models will read)."""
    from vision.datasets import load_image

    try:
        load_image(path)
    except InputError as err:
        raise APIError(415, str(err).replace(str(path), "file"), "file", "unsupported_image") from None


async def _run(request: Request, form, task: str, make_payload):
    """Save and check the upload, queue the job, and give its result (the file is deleted after)."""
    path = await upload_to_file(form)
    try:
        await run_in_threadpool(check_image, path)
        return await wait_for(request, submit(request.app.state.server.scheduler, task, make_payload(str(path))))
    except ZooError as err:
        raise from_zoo_error(err, "file") from None
    finally:
        path.unlink(missing_ok=True)


@router.post("/v1/images/captions")
async def captions(request: Request):
    state = request.app.state.server
    form = await read_form(request)
    model = state.resolve(text_field(form, "model"), "caption")
    attention = flag(text_field(form, "attention"), "attention")
    name = getattr(form.get("file"), "filename", None) or "image"  # the map's title: the user's name for it
    caption, png = await _run(request, form, "caption", lambda path: (model, path, attention, name))
    return {"model": model.id, "caption": caption,
            "attention_png": base64.b64encode(png).decode("ascii") if png is not None else None}


@router.post("/v1/images/classifications")
async def classifications(request: Request):
    state = request.app.state.server
    form = await read_form(request)
    model = state.resolve(text_field(form, "model"), "classification")
    top_k = number(text_field(form, "top_k", "5"), "top_k", int, 1, 1000)
    classes = await _run(request, form, "classification", lambda path: (model, path, top_k))
    return {"model": model.id, "classes": [{"label": label, "score": score} for label, score in classes]}
