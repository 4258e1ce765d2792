"""`zoo serve`: the OpenAI-compatible HTTP API and the web page, on the models this machine has.

    zoo serve --port 8000 --models tiny.en,minilm_l6 --generator ./gpt2 --classifier output/train/<run>
    # then: OpenAI(base_url="http://127.0.0.1:8000/v1", api_key="-").audio.transcriptions.create(...)
"""

from __future__ import annotations

import sys
from pathlib import Path

from shared.errors import ConfigError
from zoo import cli_threads


def _check_folder(flag: str, folder: str | None) -> None:
    if folder is not None and not Path(folder).is_dir():
        raise ConfigError(f"{flag} {folder}: no such folder")


def run_serve(args) -> int:
    import uvicorn

    from zoo.serve.app import build_app
    from zoo.serve.config import ServeConfig

    for flag, folder in (("--generator", args.generator), ("--classifier", args.classifier),
                         ("--captioner", args.captioner)):
        _check_folder(flag, folder)
    limits = (args.max_upload_mb, args.max_audio_seconds, args.max_tokens, args.max_embedding_inputs,
              args.queue_size, args.embedding_queue_size, args.embedding_batch)
    if min(limits) <= 0:
        raise ConfigError("--max-upload-mb, --max-audio-seconds, --max-tokens, --max-embedding-inputs, "
                          "--queue-size, --embedding-queue-size and --embedding-batch must be positive")
    # Chosen here and applied on the compute thread, which re-checks it between jobs (zoo.serve.compute).
    choice = cli_threads.start_threads("serve", args.threads)
    config = ServeConfig(
        models=[m.strip() for m in args.models.split(",") if m.strip()] if args.models else None,
        generator=args.generator, classifier=args.classifier, captioner=args.captioner, api_key=args.api_key,
        threads=choice.count, device=args.device, max_upload_mb=args.max_upload_mb,
        max_audio_seconds=args.max_audio_seconds, max_embedding_inputs=args.max_embedding_inputs,
        max_tokens=args.max_tokens, queue_size=args.queue_size, embedding_queue_size=args.embedding_queue_size,
        embedding_batch=args.embedding_batch)
    app = build_app(config)
    print(f"zoo serve: loading models; http://{args.host}:{args.port}/ (GET /health answers 200 when ready)",
          file=sys.stderr, flush=True)
    # uvicorn's SIGTERM/SIGINT handling stops accepting and lets the requests in flight finish (no timeout);
    # the app's shutdown then drains the compute queue.
    server = uvicorn.Server(uvicorn.Config(app, host=args.host, port=args.port, log_level=args.log_level,
                                           access_log=False, timeout_graceful_shutdown=None))
    app.state.server.on_failure = lambda: setattr(server, "should_exit", True)
    server.run()
    return 2 if app.state.server.failure else 0  # the loader has said why, in one line


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("serve", help="an OpenAI-compatible HTTP API and a web page for zoo's models")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--models", default=None, metavar="A,B",
                   help="model ids to serve (default: every model with weights here, and the shipped captioner)")
    p.add_argument("--generator", default=None, metavar="DIR",
                   help="a GPT-2 folder (HF or save_pretrained) served by /v1/completions")
    p.add_argument("--classifier", default=None, metavar="RUN_DIR",
                   help="a `zoo train` run folder served by /v1/images/classifications")
    p.add_argument("--captioner", default=None, metavar="RUN_DIR",
                   help="a `zoo train --task caption` run folder (default: the shipped captioner_tiny_shapes)")
    p.add_argument("--api-key", default=None, help="require Authorization: Bearer KEY on /v1/ requests")
    p.add_argument("--max-upload-mb", type=float, default=25.0, help="largest request body (default 25)")
    p.add_argument("--max-audio-seconds", type=float, default=900.0, help="longest audio to transcribe")
    p.add_argument("--max-embedding-inputs", type=int, default=2048, help="most inputs per embedding request")
    p.add_argument("--max-tokens", type=int, default=512, help="largest max_tokens of a completion")
    p.add_argument("--queue-size", type=int, default=32,
                   help="requests waiting per model family before 429 Too Many Requests (default 32)")
    p.add_argument("--embedding-queue-size", type=int, default=1024,
                   help="embedding requests waiting before 429 (short and batched, so a burst may queue)")
    p.add_argument("--embedding-batch", type=int, default=64,
                   help="most sentences of queued embedding requests run in one pass")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    p.add_argument("--log-level", default="warning", choices=("critical", "error", "warning", "info", "debug"))
    cli_threads.add_argument(p)
    p.set_defaults(func=run_serve)
