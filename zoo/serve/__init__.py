"""`zoo serve`: an OpenAI-compatible HTTP API (transcriptions, embeddings, completions, models) plus zoo's
image endpoints and a web page, on one compute thread that the event loop hands its work to.

    from zoo.serve.app import build_app
    from zoo.serve.config import ServeConfig
    app = build_app(ServeConfig(models=["tiny.en", "minilm_l6"]))  # then run it with uvicorn
"""
