"""What `zoo serve` serves and the limits it holds requests to."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class ServeConfig:
    """Everything build_app() needs. `models`: ids or registry names to serve (None: every model whose
    weights are on this machine, the shipped captioner, and the --generator/--classifier folders)."""

    models: list[str] | None = None
    generator: str | None = None         # an HF GPT-2 folder or a save_pretrained() folder
    classifier: str | None = None        # a `zoo train` run folder
    captioner: str | None = None         # a `zoo train --task caption` run folder; default the shipped one
    api_key: str | None = None
    threads: int | None = None           # torch threads on the compute thread; None leaves torch's own
    device: str | None = None
    max_upload_mb: float = 25.0
    max_audio_seconds: float = 900.0
    max_embedding_inputs: int = 2048     # OpenAI's own limit per request
    max_tokens: int = 512
    queue_size: int = 32                 # jobs waiting per family before a 429
    embedding_queue_size: int = 1024     # embedding requests are short and batched: a burst may wait
    embedding_batch: int = 64            # sentences the compute thread embeds in one pass
    warm: bool = True                    # run each model once before /health says ready

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)
