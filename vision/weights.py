"""Reading a state dict from a weights file or folder, whatever library wrote it, without running code."""

import json
from pathlib import Path

import torch

from shared.errors import WeightsError

# Files a model folder may hold its weights in, in order of preference.
FOLDER_FILES = ("model.safetensors", "pytorch_model.bin", "model.pt", "model.pth")
# Keys under which training checkpoints nest the model's weights.
NESTED = ("state_dict", "model", "model_state_dict", "module")


def weights_file(path: Path) -> Path:
    """The weights file itself, or the one inside a model folder (Hugging Face, timm, save_pretrained)."""
    if not path.is_dir():
        return path
    for name in FOLDER_FILES:
        if (path / name).is_file():
            return path / name
    if (path / "model.safetensors.index.json").is_file():
        return path / "model.safetensors.index.json"
    raise WeightsError(f"{path}: no weights in this folder; expected one of {', '.join(FOLDER_FILES)}")


def _is_safetensors(path: Path) -> bool:
    """A safetensors file starts with an 8-byte header length followed by a JSON header."""
    with path.open("rb") as f:
        head = f.read(9)
    header_len = int.from_bytes(head[:8], "little") if len(head) == 9 else 0
    return head[8:9] == b"{" and 0 < header_len < path.stat().st_size


def _read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as err:
        raise WeightsError(f"{path}: cannot read safetensors ({str(err).splitlines()[0]}); "
                           "the file may be truncated or corrupt") from None


def _read_sharded(index: Path) -> dict[str, torch.Tensor]:
    try:
        shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
    except (json.JSONDecodeError, KeyError, AttributeError) as err:
        raise WeightsError(f"{index}: not a valid safetensors index ({err})") from None
    state = {}
    for shard in shards:
        state.update(_read_safetensors(index.parent / shard))
    return state


def _read_pickle(path: Path) -> dict:
    import pickle

    try:
        # weights_only refuses anything but tensors and plain containers: no code runs while loading.
        return torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError) as err:
        raise WeightsError(f"{path}: cannot read as safetensors or as a PyTorch checkpoint "
                           f"({str(err).splitlines()[0]})") from None


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors by name from a safetensors file, a pickled PyTorch checkpoint (loaded with
    weights_only=True) or a model folder. Training checkpoints are unwrapped (their state_dict / model
    entry) and a DistributedDataParallel "module." prefix is removed."""
    path = Path(path)
    if not path.exists():
        raise WeightsError(f"{path}: does not exist")
    file = weights_file(path)
    if file.name.endswith(".index.json"):
        state = _read_sharded(file)
    elif _is_safetensors(file):
        state = _read_safetensors(file)
    else:
        state = _read_pickle(file)
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
        state = {k[len("module."):]: v for k, v in state.items()}
    return state
