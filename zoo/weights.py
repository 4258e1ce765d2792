"""Where pretrained weights come from: a spec per pretrained name, its sources tried in order."""

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from shared.errors import WeightsError


@dataclass(frozen=True)
class Source:
    """One place weights may be found. `locate()` returns a path, or None when not available here."""

    description: str
    locate: Callable[[], Path | None]


@dataclass(frozen=True)
class WeightSpec:
    """How to find and load the weights of one pretrained model.

    sources: tried in order after an explicit path. load(path, model) fills the model from a file or folder.
    preprocessing: what inputs the weights expect (mean/std/size, sample rate, n_mels, tokenizer, ...).
    hint: what to install or pass when no source has them.
    """

    sources: tuple[Source, ...]
    load: Callable
    hint: str
    preprocessing: dict = field(default_factory=dict)

    def available(self) -> Path | None:
        for source in self.sources:
            path = source.locate()
            if path is not None:
                return path
        return None

    def resolve(self, name: str, explicit: str | Path | None = None) -> Path:
        """The path to load for `name`: the explicit one if given, else the first source that has them."""
        if explicit is not None:
            path = Path(explicit).expanduser()
            if not path.exists():
                raise WeightsError(f"weights for {name}: {path} does not exist")
            return path
        path = self.available()
        if path is None:
            raise WeightsError(f"no weights for {name} on this machine: {self.hint}")
        return path


def package_source(package: str, locate: Callable[[object], Path]) -> Source:
    """Weights shipped inside an installed Python package."""

    def find() -> Path | None:
        import importlib

        try:
            module = importlib.import_module(package)
        except ImportError:
            return None
        path = Path(locate(module))
        return path if path.exists() else None

    return Source(f"installed package {package}", find)


def folder_source(folder: Path, description: str) -> Source:
    """Weights in a fixed folder, e.g. ones the repository ships in examples/ (there only in a source checkout)."""
    return Source(description, lambda: folder if folder.is_dir() else None)


def hf_cache_source(repo_id: str, marker: str = "config.json") -> Source:
    """The folder of `marker` in a local Hugging Face cache snapshot of `repo_id` (never downloaded here): the
    snapshot itself for a config.json at its top, a subfolder for e.g. a diffusers pipeline's
    "transformer/config.json"."""

    def find() -> Path | None:
        import os

        home = Path(os.environ.get("HF_HUB_CACHE") or Path(os.environ.get("HF_HOME", "~/.cache/huggingface"))
                    .expanduser() / "hub")
        snapshots = home / f"models--{repo_id.replace('/', '--')}" / "snapshots"
        found = sorted(snapshots.glob(f"*/{marker}")) if snapshots.is_dir() else []
        return found[-1].parent if found else None

    return Source(f"local Hugging Face cache ({repo_id})", find)
