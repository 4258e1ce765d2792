"""Models by name: create_model, list_models and model_info over the family table (zoo.models)."""

import dataclasses
import difflib
import fnmatch
from pathlib import Path

from torch import nn

from shared.errors import ConfigError
from zoo.models import ALIASES, MODELS, ModelEntry


def _closest(name: str) -> str:
    matches = difflib.get_close_matches(name.lower(), list(MODELS) + list(ALIASES), n=3, cutoff=0.5)
    return f"; did you mean {', '.join(matches)}?" if matches else "; see `zoo list`"


def get_entry(name: str) -> ModelEntry:
    """The entry for a name or alias, or a ConfigError naming the closest matches."""
    for key in (name.lower(), name.lower().replace("-", "_")):
        key = ALIASES.get(key, key)
        if key in MODELS:
            return MODELS[key]
    raise ConfigError(f"unknown model {name!r}{_closest(name)}")


def list_models(pattern: str = "*", task: str | None = None, pretrained: bool = False) -> list[str]:
    """Registered names matching a shell-style pattern, optionally only one task or only those with weights
    available on this machine."""
    names = [n for n in sorted(MODELS) if fnmatch.fnmatch(n, pattern.lower())]
    if task is not None:
        names = [n for n in names if MODELS[n].task == task]
    if pretrained:
        names = [n for n in names if MODELS[n].weights is not None and MODELS[n].weights.available()]
    return names


def architectures() -> dict[str, type]:
    """Every registered model class by class name (what a saved config.json's "architecture" holds)."""
    return {entry.model_class.__name__: entry.model_class for entry in MODELS.values()}


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
        "aliases": sorted(a for a, t in ALIASES.items() if t == entry.name),
        "config": dataclasses.asdict(entry.config),
        "weights": weights,
    }
