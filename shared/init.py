"""Weight initialisation schemes, applied with `model.apply(...)`."""

from functools import partial

from torch import nn


def _init(module: nn.Module, linear_init) -> None:
    if isinstance(module, nn.Linear):
        linear_init(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Embedding):
        nn.init.normal_(module.weight, std=0.02)
    elif isinstance(module, nn.LayerNorm) and module.elementwise_affine:
        nn.init.ones_(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


def normal_init(module: nn.Module, std: float = 0.02) -> None:
    """GPT-2 / BERT style: N(0, std) weights, zero biases."""
    _init(module, partial(nn.init.normal_, std=std))


def xavier_init(module: nn.Module) -> None:
    """Glorot-uniform linear weights, as in the original Transformer's reference code."""
    _init(module, nn.init.xavier_uniform_)


def trunc_normal_init(module: nn.Module, std: float = 0.02) -> None:
    """ViT style: truncated normal linear weights."""
    _init(module, partial(nn.init.trunc_normal_, std=std))


SCHEMES = {"normal": normal_init, "xavier": xavier_init, "trunc_normal": trunc_normal_init}


def init_weights(model: nn.Module, scheme: str = "normal") -> None:
    """Initialise every submodule of `model` with a named scheme; zero-initialised heads are kept by
    re-running their own reset afterwards where a head defines one."""
    if scheme not in SCHEMES:
        raise ValueError(f"unknown init scheme {scheme!r}: choose one of {sorted(SCHEMES)}")
    model.apply(SCHEMES[scheme])
    for module in model.modules():
        if hasattr(module, "reset_head"):
            module.reset_head()
