"""The model registry: every named config of every family, with aliases and weight specs."""

import dataclasses
import difflib
import fnmatch
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from shared.errors import ConfigError
from zoo.weights import WeightSpec


@dataclass(frozen=True)
class ModelEntry:
    name: str
    family: str
    task: str
    model_class: type
    config: object
    weights: WeightSpec | None = None

    def num_params(self) -> int:
        """Parameter count, computed on the meta device so even the largest models cost nothing to count."""
        with torch.device("meta"):
            model = self.model_class(self.config)
        return sum(p.numel() for p in model.parameters())


_MODELS: dict[str, ModelEntry] = {}
_ALIASES: dict[str, str] = {}


def register(entry: ModelEntry, aliases: tuple[str, ...] = ()) -> None:
    if entry.name in _MODELS:
        raise ValueError(f"model {entry.name!r} registered twice")
    _MODELS[entry.name] = entry
    for alias in aliases:
        _ALIASES[alias.lower()] = entry.name


def register_family(family: str, task: str, model_class: type, recipes: dict, aliases: dict | None = None,
                    weights: dict | None = None) -> None:
    """Register every recipe of a family; aliases map alias -> name, weights map name -> WeightSpec."""
    aliases, weights = aliases or {}, weights or {}
    for name, config in recipes.items():
        register(ModelEntry(name, family, task, model_class, config, weights.get(name)),
                 tuple(a for a, target in aliases.items() if target == name))


def _closest(name: str) -> str:
    matches = difflib.get_close_matches(name.lower(), list(_MODELS) + list(_ALIASES), n=3, cutoff=0.5)
    return f"; did you mean {', '.join(matches)}?" if matches else "; see `zoo list`"


def get_entry(name: str) -> ModelEntry:
    """The entry for a name or alias, or a ConfigError naming the closest matches."""
    _ensure_loaded()
    for key in (name.lower(), name.lower().replace("-", "_")):
        key = _ALIASES.get(key, key)
        if key in _MODELS:
            return _MODELS[key]
    raise ConfigError(f"unknown model {name!r}{_closest(name)}")


def list_models(pattern: str = "*", task: str | None = None, pretrained: bool = False) -> list[str]:
    """Registered names matching a shell-style pattern, optionally only one task or only those with weights
    available on this machine."""
    _ensure_loaded()
    names = [n for n in sorted(_MODELS) if fnmatch.fnmatch(n, pattern.lower())]
    if task is not None:
        names = [n for n in names if _MODELS[n].task == task]
    if pretrained:
        names = [n for n in names if _MODELS[n].weights is not None and _MODELS[n].weights.available()]
    return names


def apply_overrides(entry: ModelEntry, overrides: dict):
    """The entry's config with fields replaced; unknown fields name the closest real ones."""
    fields = {f.name for f in dataclasses.fields(entry.config)}
    for key in overrides:
        if key not in fields:
            close = difflib.get_close_matches(key, fields, n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else f"; fields are {', '.join(sorted(fields))}"
            raise ConfigError(f"{entry.name} has no config field {key!r}{hint}")
    return dataclasses.replace(entry.config, **overrides)


def create_model(name: str, pretrained: bool | str | Path = False, **overrides) -> nn.Module:
    """Build a registered model by name or alias.

    pretrained: False for random weights, True to load them from the first available source, or a path to
    a weights file or folder. Overrides replace config fields (e.g. num_classes=10).
    """
    entry = get_entry(name)
    config = apply_overrides(entry, overrides)
    model = entry.model_class(config)
    if pretrained is not False:
        if entry.weights is None:
            raise ConfigError(f"{entry.name} has no pretrained weights in zoo; "
                              f"use pretrained=False or a folder from save_pretrained() with from_pretrained()")
        path = entry.weights.resolve(entry.name, None if pretrained is True else pretrained)
        entry.weights.load(path, model)
    return model


def model_info(name: str) -> dict:
    """Family, task, config, parameter count and weight sources of a model."""
    entry = get_entry(name)
    weights = None
    if entry.weights is not None:
        weights = {"sources": [s.description for s in entry.weights.sources],
                   "available": str(entry.weights.available() or "") or None,
                   "preprocessing": entry.weights.preprocessing}
    return {
        "name": entry.name,
        "family": entry.family,
        "task": entry.task,
        "architecture": entry.model_class.__name__,
        "parameters": entry.num_params(),
        "aliases": sorted(a for a, t in _ALIASES.items() if t == entry.name),
        "config": dataclasses.asdict(entry.config),
        "weights": weights,
    }


_loaded = False


def _ensure_loaded() -> None:
    global _loaded
    if not _loaded:
        _loaded = True
        from zoo import models  # noqa: F401  (registers every family)
