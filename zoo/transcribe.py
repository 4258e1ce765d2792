"""`zoo.transcribe(path_or_array, model="tiny.en")`: speech to text with a registered Whisper model, and the
per-process cache of loaded models."""

from __future__ import annotations

import functools
import os
from pathlib import Path

from shared.errors import WeightsError
from zoo import registry
from zoo.models import WHISPER_HINT


def default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def resolve_weights(model: str, model_dir: str | os.PathLike | None = None) -> tuple[Path, object]:
    """(weights path, registry entry or None) for a model name or alias, or a path to weights."""
    if (
        model_dir is None
        and ("/" in model or os.sep in model or model.endswith((".pt", ".bin")))
        and Path(model).expanduser().exists()
    ):
        return Path(model).expanduser(), None
    entry = registry.get_entry(model)
    if entry.weights is None:
        raise WeightsError(f"{entry.name} has no pretrained weights; {WHISPER_HINT}")
    return entry.weights.resolve(entry.name, model_dir), entry


@functools.lru_cache(maxsize=2)
def _load(path: str, device: str, expected_config, precision: str):
    from audio.precision import apply_compute_type
    from audio.weights import load_tokenizer, load_whisper
    from shared.inference import prepare_for_inference

    model = load_whisper(path, device=device)
    if expected_config is not None and model.config != expected_config:
        raise WeightsError(
            f"{path}: these weights are a different Whisper size than the model asked for; "
            "pass the matching --model name or leave it out"
        )
    model = prepare_for_inference(apply_compute_type(model, precision))  # int8 fuses q/k/v itself
    return model, load_tokenizer(path, multilingual=model.is_multilingual)


def load_model(
    model: str = "tiny.en",
    model_dir: str | os.PathLike | None = None,
    device: str | None = None,
    compute_type: str = "default",
):
    """(Whisper model in eval mode, its WhisperTokenizer), loaded once per process, device and compute type.

    compute_type: faster-whisper's names (default, float32, int8, int8_float32; float16 on CUDA), see
    audio.precision.
    """
    from audio.precision import resolve_compute_type

    device = device or default_device()
    precision = resolve_compute_type(compute_type, device)  # before any loading: a bad name fails fast
    path, entry = resolve_weights(model, model_dir)
    return _load(str(path.resolve()), device, entry.config if entry is not None else None, precision)


def transcribe(
    audio,
    model: str = "tiny.en",
    *,
    model_dir: str | os.PathLike | None = None,
    device: str | None = None,
    compute_type: str = "default",
    batch_size: int | None = None,
    **options,
) -> dict | list[dict]:
    """Transcribe a file path or a 1-D float array of 16 kHz samples; or a list of them, giving a list of
    results.

    `model` is a registered name or alias (tiny.en, base, openai/whisper-small, ...) or a path to weights;
    compute_type is faster-whisper's (default, float32, int8, int8_float32; float16 on CUDA); batch_size
    encodes and decodes the windows of that many files together (a list only), each file getting the text it
    gets alone. Options are those of audio.transcribe.transcribe (temperature, beam_size, language,
    initial_prompt, ...). Returns {"text", "language", "segments": [...]} per input.
    """
    from audio.batched import transcribe_many
    from audio.precision import resolve_compute_type
    from audio.transcribe import transcribe as run

    whisper, tokenizer = load_model(model, model_dir, device, compute_type)
    if next(whisper.parameters()).device.type == "cuda":  # the compute type decides, not the fp16 default
        options["fp16"] = resolve_compute_type(compute_type, "cuda") == "float16"
    if isinstance(audio, (list, tuple)):
        return transcribe_many(whisper, list(audio), tokenizer=tokenizer, batch_size=batch_size or 1, **options)
    return run(whisper, audio, tokenizer=tokenizer, **options)
