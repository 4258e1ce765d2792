"""Crash-safe training checkpoints.

A checkpoint is a folder `checkpoints/e<epoch>-u<updates>/` holding
    model.safetensors      the trained weights (what training continues from)
    model_ema.safetensors  the EMA weights, when --model-ema is on (what is evaluated and classified with)
    meta.json              model name, classes, input preprocessing, metrics: enough to rebuild and use it
    state.pt               optimizer, scheduler, grad scaler, RNG and loader position, summary rows
Each file is written to a temporary name, fsynced and renamed; the folder itself is complete before the
`last` (and `best`) symlinks are atomically switched to it. A SIGKILL at any instant therefore leaves `last`
pointing at a complete checkpoint, and folders no link points to are removed at the next save or resume.
"""

import json
import os
import random
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch

from shared.errors import ConfigError, WeightsError
from shared.pretrained import check_state_dict

MODEL, EMA, META, STATE = "model.safetensors", "model_ema.safetensors", "meta.json", "state.pt"


def _file_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


FILE_MODE = _file_mode()  # mkstemp makes 0600 files; give checkpoints the permissions open() would


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, write) -> None:
    """Call write(tmp_path) on a temporary file next to `path`, fsync it, then rename it over `path`."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        os.chmod(tmp, FILE_MODE)
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    _fsync_dir(path.parent)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def _relink(run_dir: Path, name: str, target: str) -> None:
    """Point run_dir/name at checkpoints/target with one atomic rename of a fresh symlink."""
    tmp = run_dir / f".{name}.tmp"
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    os.symlink(Path("checkpoints") / target, tmp)
    os.replace(tmp, run_dir / name)
    _fsync_dir(run_dir)


def rng_state() -> dict:
    np_state = np.random.get_state()
    state = {"python": random.getstate(), "torch": torch.get_rng_state(),
             "numpy": {"key": torch.from_numpy(np_state[1].astype(np.int64)), "pos": np_state[2],
                       "has_gauss": np_state[3], "gauss": np_state[4]}}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state(("MT19937", n["key"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _state_dict(model) -> dict:
    """A contiguous CPU copy; tied tensors are cloned so safetensors accepts them."""
    return {k: v.detach().to("cpu").contiguous().clone() for k, v in model.state_dict().items()}


def save(run_dir: Path, name: str, model, ema, meta: dict, state: dict, best: bool) -> Path:
    """Write checkpoint folder checkpoints/<name>, then switch `last` (and `best` if best) to it."""
    from safetensors.torch import save_file

    run_dir = Path(run_dir)
    root = run_dir / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    folder = root / name
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir()
    atomic_write(folder / MODEL, lambda tmp: save_file(_state_dict(model), tmp))
    if ema is not None:
        atomic_write(folder / EMA, lambda tmp: save_file(_state_dict(ema), tmp))
    atomic_write(folder / STATE, lambda tmp: torch.save(state, tmp))
    atomic_write_text(folder / META, json.dumps(meta, indent=2) + "\n")
    _fsync_dir(root)
    _relink(run_dir, "last", name)
    if best:
        _relink(run_dir, "best", name)
    clean(run_dir)
    return folder


def clean(run_dir: Path) -> None:
    """Remove checkpoint folders no link points to (older ones, or one a crash left half written)."""
    run_dir, keep = Path(run_dir), set()
    for link in ("last", "best"):
        if (run_dir / link).is_symlink():
            keep.add(os.readlink(run_dir / link).split("/")[-1])
    root = run_dir / "checkpoints"
    for folder in root.iterdir() if root.is_dir() else ():
        if folder.name not in keep:
            shutil.rmtree(folder, ignore_errors=True)


def find(path: str | Path, prefer=("best", "last")) -> Path:
    """The checkpoint folder meant by `path`: a checkpoint folder, or a run folder (the first of its `prefer`
    links that exists: best for using a model, last for resuming)."""
    path = Path(path).expanduser()
    if not path.exists():
        raise WeightsError(f"{path}: no such run or checkpoint folder")
    if (path / META).is_file():
        return path.resolve()
    for link in prefer:
        if (path / link / META).is_file():
            return (path / link).resolve()
    raise WeightsError(f"{path}: no checkpoint here (expected {META} in it, or a run folder with last/ "
                       f"or best/)")


def run_dir_of(checkpoint: Path) -> Path:
    """The run folder a checkpoint folder belongs to."""
    checkpoint = Path(checkpoint).resolve()
    return checkpoint.parent.parent if checkpoint.parent.name == "checkpoints" else checkpoint


def read_meta(checkpoint: Path) -> dict:
    try:
        return json.loads((Path(checkpoint) / META).read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise WeightsError(f"{Path(checkpoint) / META}: unreadable ({err})") from None


def load_weights(model, checkpoint: Path, ema: bool) -> str:
    """Fill `model` from the checkpoint (the EMA weights when asked and present); return the file used."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(checkpoint) / (EMA if ema and (Path(checkpoint) / EMA).is_file() else MODEL)
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError) as err:
        raise WeightsError(f"{path}: cannot read safetensors ({err})") from None
    check_state_dict(model, state, str(path))
    model.load_state_dict(state)
    return path.name


def load_trained(path: str | Path, model, task: str) -> str:
    """Fill a registered model from a `zoo train --task TASK` checkpoint or run folder (its EMA weights when
    kept), refusing one of another task or trained with overrides the model's config does not have; returns
    the file used."""
    folder = find(path)
    meta = read_meta(folder)
    if meta.get("task") != task:
        raise WeightsError(f"{folder} is not a {task} checkpoint (it was trained for "
                           f"{meta.get('task', 'classification')})")
    config = getattr(model, "config", None)
    differing = {k: v for k, v in meta.get("model_overrides", {}).items() if getattr(config, k, v) != v}
    if differing:
        raise WeightsError(f"{folder} was trained with {differing}; create the model with those overrides")
    return load_weights(model, folder, ema=True)


def check_same_model(meta: dict, model_name: str, checkpoint: Path) -> None:
    if meta.get("model") != model_name:
        raise ConfigError(f"{checkpoint} holds a {meta.get('model')} checkpoint, not {model_name}; "
                          f"drop --model to use the checkpoint's own, or start a new run")


def load_state(checkpoint: Path) -> dict:
    path = Path(checkpoint) / STATE
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise WeightsError(f"{path}: missing; the checkpoint cannot be resumed") from None
    except Exception as err:  # torch.load raises many types for a damaged or foreign file
        raise WeightsError(f"{path}: cannot read training state ({type(err).__name__}: {err})") from None
