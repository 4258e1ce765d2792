"""The one safe reader of weight files, whatever library wrote them.

safetensors files (alone, in a model folder, or sharded behind an index) and pickles loaded only through
torch.load(weights_only=True), which refuses anything but tensors and plain containers, so reading a file
never runs its code. Training checkpoints are unwrapped (their "state_dict" / "model" entry) and a
DistributedDataParallel "module." prefix is removed. Every failure is a one-line WeightsError naming the file.
"""

import json
from pathlib import Path

import torch

from shared.errors import WeightsError

# Files a model folder may hold its weights in, in order of preference.
FOLDER_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                "pytorch_model.bin.index.json", "model.pt", "model.pth")
# Keys under which training checkpoints nest the model's weights.
NESTED = ("state_dict", "model", "model_state_dict", "module")


def weights_file(path: Path) -> Path:
    """The weights file itself, or the one inside a model folder (Hugging Face, timm, save_pretrained)."""
    path = Path(path)
    if not path.exists():
        raise WeightsError(f"{path}: does not exist")
    if not path.is_dir():
        return path
    for name in FOLDER_FILES:
        if (path / name).is_file():
            return path / name
    raise WeightsError(f"{path}: no weights in this folder; expected one of {', '.join(FOLDER_FILES)}")


def _is_safetensors(path: Path) -> bool:
    """A safetensors file starts with an 8-byte header length followed by a JSON header."""
    if path.suffix == ".safetensors":
        return True
    with path.open("rb") as f:
        head = f.read(9)
    header_len = int.from_bytes(head[:8], "little") if len(head) == 9 else 0
    return head[8:9] == b"{" and 0 < header_len < path.stat().st_size


def _read_safetensors(path: Path) -> dict:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as err:
        raise WeightsError(f"{path}: cannot read safetensors ({str(err).splitlines()[0]}); "
                           "the file may be truncated or corrupt") from None


def _read_pickle(path: Path) -> object:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # on garbage, torch's unpickler raises almost anything (IndexError, ...)
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise WeightsError(f"{path}: not safetensors, and not a plain state dict of tensors in a pickle that "
                           f"weights_only=True accepts ({reason}); re-save it as model.safetensors") from None


def _read_sharded(index: Path) -> dict:
    try:
        shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, AttributeError) as err:
        raise WeightsError(f"{index}: not a valid index of weight shards ({type(err).__name__}: {err})") from None
    state = {}
    for shard in shards:
        part = _read_file(index.parent / shard)
        if not isinstance(part, dict):
            raise WeightsError(f"{index.parent / shard}: holds no state dict of named tensors")
        state.update(part)
    return state


def _read_file(path: Path) -> object:
    if not path.is_file():
        raise WeightsError(f"{path}: does not exist")
    if path.name.endswith(".index.json"):
        return _read_sharded(path)
    return _read_safetensors(path) if _is_safetensors(path) else _read_pickle(path)


def read_checkpoint(path: str | Path) -> object:
    """Everything a weights file holds, read as safely as read_state_dict reads it: for a pickle, the whole
    object, e.g. a dict that carries the model's dimensions beside its state dict."""
    return _read_file(weights_file(Path(path)))


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors by name from a weights file or model folder: safetensors, a sharded index, or a pickled
    PyTorch checkpoint (weights_only=True), unwrapped from a training checkpoint and from DDP's "module."."""
    file = weights_file(Path(path))
    state = _read_file(file)
    for key in NESTED:
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
            break
    if not isinstance(state, dict) or not state:
        raise WeightsError(f"{file}: holds no state dict of named tensors")
    bad = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise WeightsError(f"{file}: entry {bad[0]!r} is not a tensor; expected a state dict of weights")
    if all(k.startswith("module.") for k in state):
        state = {k.removeprefix("module."): v for k, v in state.items()}
    return state


def read_json(path: Path, kind: str) -> dict:
    """A config.json as a dict; a one-line WeightsError when it is missing, not JSON or not an object.

    kind names what the file should configure, e.g. "Hugging Face GPT-2".
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: not found; expected a {kind} config here")
    try:
        config = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise WeightsError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(config, dict):
        raise WeightsError(f"{path}: not a JSON object; expected a {kind} config")
    return config
