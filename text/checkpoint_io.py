"""Reading Hugging Face-format weights safely: a folder or a file of safetensors, a sharded index, or a
pickle loaded with weights_only=True (which refuses anything but tensors, so it cannot run code)."""

import json
import pickle
from pathlib import Path

import torch

from shared.errors import WeightsError

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
