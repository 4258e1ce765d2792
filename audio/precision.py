"""Compute types, by faster-whisper's names: what a loaded Whisper runs its weights in.

    float32       every weight and activation in float32 (the reference the parity tests compare against)
    int8          the encoder's and decoder's projections, MLPs and the vocabulary head in int8 with
                  per-channel scales, activations quantized per call (shared.quantize); the conv stem,
                  norms, embeddings, attention itself and the KV cache stay float32. CPU only.
    int8_float32  the same as int8: faster-whisper's name for int8 weights around float32 layers
    float16       half precision weights and activations. CUDA only.
    default       float16 on CUDA, float32 on the CPU (the checkpoint is float16; CPUs have no fast fp16)
"""

from __future__ import annotations

from shared.errors import ConfigError

COMPUTE_TYPES = ("default", "float32", "int8", "int8_float32", "float16")
_ON_CPU = {"default": "float32", "float32": "float32", "int8": "int8", "int8_float32": "int8"}
_ON_CUDA = {"default": "float16", "float32": "float32", "float16": "float16"}


def resolve_compute_type(compute_type: str, device) -> str:
    """The precision a compute type means on a device: 'float32', 'int8' or 'float16'.

    An unknown name, or one the device cannot run, is a ConfigError naming the choices.
    """
    kind = str(device).split(":")[0]  # "cuda:1" -> "cuda"; without importing torch (the CLI's choices)
    table = _ON_CUDA if kind == "cuda" else _ON_CPU
    if compute_type not in COMPUTE_TYPES:
        raise ConfigError(f"unknown compute_type {compute_type!r}: choose one of {', '.join(COMPUTE_TYPES)}")
    if compute_type not in table:
        raise ConfigError(
            f"compute_type {compute_type!r} does not run on {kind}: choose one of {', '.join(table)}"
        )
    return table[compute_type]


def apply_compute_type(model, precision: str):
    """Convert a float32 Whisper (an nn.Module) in place to a resolved precision (resolve_compute_type);
    returns it."""
    if precision == "int8":
        from shared.quantize import quantize_int8

        return quantize_int8(model, inplace=True)
    if precision == "float16":
        return model.half()
    return model
