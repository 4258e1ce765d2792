"""save_pretrained / from_pretrained for every model: a folder with config.json and model.safetensors."""

import dataclasses
import json
from pathlib import Path

import torch
from torch import nn

from shared.convert import check_keys
from shared.errors import ConfigError, WeightsError
from shared.state_dict import read_json, read_state_dict

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"


def config_from_dict(config_class, fields: dict, source: str = "config"):
    """Build a frozen config dataclass, naming unknown fields instead of failing deep inside __init__."""
    known = {f.name for f in dataclasses.fields(config_class)}
    unknown = sorted(set(fields) - known)
    if unknown:
        raise ConfigError(f"{source}: unknown field(s) {', '.join(unknown)} for {config_class.__name__}")
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()}
    return config_class(**values)


def check_state_dict(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Raise a one-line WeightsError for the first missing, unexpected or mis-shaped key."""
    expected = model.state_dict()
    check_keys(state, expected, source=source)
    for key, tensor in expected.items():
        if tuple(state[key].shape) != tuple(tensor.shape):
            raise WeightsError(f"{source}: weight {key!r} has shape {tuple(state[key].shape)}, "
                               f"the model expects {tuple(tensor.shape)}")


def load_checked(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> nn.Module:
    """Load a full state dict after checking every key and shape."""
    check_state_dict(model, state, source)
    model.load_state_dict(state, strict=True)
    return model


class PretrainedMixin:
    """Gives a model with a dataclass `config` and a `config_class` the save/load pair."""

    config_class: type

    def save_pretrained(self, directory: str | Path) -> Path:
        """Write config.json and model.safetensors into `directory` (created if needed)."""
        from safetensors.torch import save_model

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        payload = {"architecture": type(self).__name__, **dataclasses.asdict(self.config)}
        (directory / CONFIG_FILE).write_text(json.dumps(payload, indent=2) + "\n")
        save_model(self, str(directory / WEIGHTS_FILE))
        return directory

    @classmethod
    def from_pretrained(cls, directory: str | Path, map_location: str | torch.device = "cpu"):
        """Rebuild a model saved with save_pretrained (its tensors are read to the CPU, then copied in)."""
        directory = Path(directory)
        fields = read_json(directory / CONFIG_FILE, "save_pretrained()")
        weights_path = directory / WEIGHTS_FILE
        if not weights_path.is_file():
            raise WeightsError(f"{weights_path}: not found; expected a folder written by save_pretrained()")
        architecture = fields.pop("architecture", cls.__name__)
        if architecture != cls.__name__:
            raise WeightsError(f"{directory}: holds a {architecture}, not a {cls.__name__}")
        model = cls(config_from_dict(cls.config_class, fields, str(directory / CONFIG_FILE)))
        state = read_state_dict(weights_path)
        # save_model drops the second name of a tied tensor; restore it from the model's own aliases.
        for key, tensor in model.state_dict().items():
            if key not in state:
                twin = _tied_twin(model, key)
                if twin in state:
                    state[key] = state[twin]
        return load_checked(model, state, str(weights_path))


def _tied_twin(model: nn.Module, key: str) -> str | None:
    """Another state-dict name sharing storage with `key`, if any."""
    state = model.state_dict(keep_vars=True)
    ptr = state[key].data_ptr()
    for other, tensor in state.items():
        if other != key and tensor.data_ptr() == ptr:
            return other
    return None
