"""Reading Hugging Face-format weights safely: a folder or a file of safetensors, a sharded index, or a
pickle loaded with weights_only=True (which refuses anything but tensors, so it cannot run code); and the
one way every HF converter loads: read config.json, build, read the tensors, convert, load with checks."""

import json
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import torch
from torch import nn

from shared.errors import WeightsError
from shared.pretrained import load_checked

WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin")


def weights_file(path: Path) -> Path:
    """The weights file itself, or the first of WEIGHT_FILES inside a folder."""
    if path.is_file():
        return path
    for name in WEIGHT_FILES:
        if (path / name).is_file():
            return path / name
    raise WeightsError(f"{path}: no model.safetensors or pytorch_model.bin in this folder")


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors of a weights folder or file; any unreadable or unsafe file is a one-line WeightsError."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = weights_file(Path(path))
    try:
        if path.name.endswith(".index.json"):
            state = {}
            for shard in sorted(set(json.loads(path.read_text())["weight_map"].values())):
                state.update(load_file(str(path.parent / shard)))
            return state
        if path.suffix == ".safetensors":
            return load_file(str(path))
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        reason = "zoo unpickles only with weights_only=True, which refuses anything else"
        raise WeightsError(f"{path}: not a plain state dict of tensors ({reason}); "
                           "re-save it as model.safetensors") from None
    except (SafetensorError, OSError, RuntimeError, KeyError, ValueError, EOFError,
            json.JSONDecodeError) as err:
        raise WeightsError(f"{path}: cannot read weights ({str(err).splitlines()[0]})") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsError(f"{path}: not a state dict of tensors")
    return state


def read_hf_config(folder: str | Path, kind: str) -> dict:
    """The config.json of an HF model folder as a dict; a one-line WeightsError when missing or not JSON.

    kind names the expected model in the message (e.g. "GPT-2").
    """
    path = Path(folder) / "config.json"
    if not path.is_file():
        raise WeightsError(f"{path}: not found; expected an HF {kind} folder")
    try:
        config = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise WeightsError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(config, dict):
        raise WeightsError(f"{path}: not a JSON object; expected an HF {kind} config")
    return config


Model = TypeVar("Model", bound=nn.Module)


def load_converted(path: str | Path, model: Model, convert: Callable) -> Model:
    """Fill `model` in place from an HF folder or weights file: read the tensors, map them with
    `convert(state, model.config, source=...)` (a converter of text/ or vision/), load with strict checks."""
    state = convert(read_state_dict(path), model.config, source=str(path))
    return load_checked(model, state, str(path))


def build_from_hf(folder: str | Path, kind: str, config_from_hf: Callable[[dict], object],
                  model_class: Callable, convert: Callable) -> nn.Module:
    """Build the model that the folder's config.json describes and load its weights into it."""
    config = config_from_hf(read_hf_config(folder, kind))
    return load_converted(folder, model_class(config), convert)
