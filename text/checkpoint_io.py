"""The one way every Hugging Face-format converter loads: read config.json, build the model, read the tensors
(shared.state_dict), convert them with the family's key table, load with strict checks."""

from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from torch import nn

from shared.pretrained import load_checked
from shared.state_dict import read_json, read_state_dict

Model = TypeVar("Model", bound=nn.Module)


def load_converted(path: str | Path, model: Model, convert: Callable) -> Model:
    """Fill `model` in place from an HF folder or weights file: read the tensors, map them with
    `convert(state, model.config, source=...)` (a converter of text/ or vision/), load with strict checks."""
    state = convert(read_state_dict(path), model.config, source=str(path))
    return load_checked(model, state, str(path))


def build_from_hf(folder: str | Path, kind: str, config_from_hf: Callable[[dict], object],
                  model_class: Callable, convert: Callable) -> nn.Module:
    """Build the model that the folder's config.json describes and load its weights into it.

    kind names the expected model in errors (e.g. "GPT-2").
    """
    config = config_from_hf(read_json(Path(folder) / "config.json", f"Hugging Face {kind}"))
    return load_converted(folder, model_class(config), convert)
