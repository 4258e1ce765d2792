"""build_app(config) -> the FastAPI app of `zoo serve`.

Models load and warm in a background thread at start-up (GET /health answers 503 until they are ready, then
200); all model work then runs on one compute thread (zoo.serve.compute), never on the event loop. At shutdown
the scheduler takes no new work and finishes what is queued.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from shared.errors import ZooError
from zoo.serve import errors, models, routes_audio, routes_images, routes_text
from zoo.serve.compute import Lane, Scheduler
from zoo.serve.config import ServeConfig
from zoo.serve.errors import APIError
from zoo.serve.middleware import Guard

STATIC = Path(__file__).resolve().parent / "static"


class ServerState:
    """What the endpoints share: the config, the served models once loaded, and the scheduler."""

    def __init__(self, config: ServeConfig):
        self.config = config
        self.served: dict[str, models.Served] = {}
        self.scheduler: Scheduler | None = None
        self.ready = threading.Event()
        self.failure: str | None = None
        # what ends the server when its models cannot load: whoever runs it may set a gentler way
        self.on_failure = lambda: os.kill(os.getpid(), signal.SIGTERM)

    def load(self) -> None:
        """Load and warm every model, then start the compute thread (runs on the loader thread)."""
        try:
            if self.config.threads:
                from shared.threads import apply_threads

                apply_threads(self.config.threads)
            served = models.load_models(self.config)
            if self.config.warm:
                models.warm(served)
            c = self.config
            lanes = [Lane("transcription", models.run_transcriptions, c.queue_size),
                     Lane("embedding", models.run_embeddings, c.embedding_queue_size, batch=c.embedding_batch,
                          cost=lambda payload: len(payload[1])),
                     Lane("completion", models.run_completions, c.queue_size),
                     Lane("caption", models.run_captions, c.queue_size),
                     Lane("classification", models.run_classifications, c.queue_size)]
            self.scheduler = Scheduler(lanes, threads=c.threads)
            self.scheduler.start()
            self.served = served
            self.ready.set()
            print(f"zoo serve: ready, serving {', '.join(served)}", file=sys.stderr, flush=True)
        except Exception as err:  # the server cannot serve without its models: say why in one line and exit
            self.failure = str(err) if isinstance(err, ZooError) else f"{type(err).__name__}: {err}"
            print(f"zoo serve: error: {self.failure}", file=sys.stderr, flush=True)
            self.on_failure()

    def require_ready(self) -> None:
        if not self.ready.is_set():
            raise APIError(503, "the models are still loading; retry when GET /health answers 200",
                           code="loading", headers={"Retry-After": "5"})

    def resolve(self, name: str | None, task: str) -> models.Served:
        """The served model a request names (its id, registry name or an alias), or the first one of the task
        when it names none; 404 naming the served models otherwise."""
        self.require_ready()
        of_task = [s for s in self.served.values() if s.task == task]
        if name is not None and not isinstance(name, str):
            raise errors.bad_request(f"model must be a string, got {type(name).__name__}", "model")
        if not name:
            if of_task:
                return of_task[0]
            raise errors.bad_request("model is required", "model")
        for served in of_task:
            if name == served.id or name.lower() in served.names:
                return served
        names = ", ".join(s.id for s in of_task) or "none"
        raise APIError(404, f"model {name!r} is not served for {task}; served: {names} (GET /v1/models)",
                       "model", "model_not_found")


def build_app(config: ServeConfig) -> FastAPI:
    """The app; models load when it starts (its lifespan), in a background thread."""
    state = ServerState(config)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        threading.Thread(target=state.load, name="zoo-load", daemon=True).start()
        yield
        if state.scheduler is not None:
            state.scheduler.stop()  # uvicorn has finished the requests in flight; drain what is queued

    app = FastAPI(title="zoo", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.server = state
    errors.install(app)
    app.add_middleware(Guard, api_key=config.api_key, max_bytes=config.max_upload_bytes)
    for module in (routes_audio, routes_text, routes_images):
        app.include_router(module.router)

    @app.get("/health")
    async def health():
        if state.ready.is_set():
            return {"status": "ok"}
        return JSONResponse({"status": "failed" if state.failure else "loading"}, 503)

    @app.get("/stats")
    async def stats():
        """What each family's queue holds, has run and has dropped (cancelled by clients that left)."""
        state.require_ready()
        return {"lanes": state.scheduler.stats()}

    @app.get("/v1/models")
    async def list_served():
        state.require_ready()
        return {"object": "list", "data": [{"id": s.id, "object": "model", "owned_by": "zoo", "task": s.task}
                                           for s in state.served.values()]}

    @app.get("/")
    async def page():
        return FileResponse(STATIC / "index.html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app
