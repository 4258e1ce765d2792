"""diffusers' class-conditional DiT checkpoints (DiTTransformer2DModel, or the Transformer2DModel of older saves
with norm_type "ada_norm_zero") -> zoo's vision.dit.DiT, and DiTPipeline folders -> (DiT, AutoencoderKL).

The layouts differ in three ways the table and the checks below handle:
- diffusers gives every block its own timestep + class embedder (`norm1.emb`) and the final layer reads block
  0's; DiT computes the conditioning once, so zoo keeps one `time_embed` / `class_embed`. The copies must be
  equal (they are in converted DiT checkpoints); block 0's is kept.
- diffusers' `norm1.linear` projects to all six modulations of a block (shift, scale, gate of the attention,
  then of the MLP); zoo splits them between the two adaLN-Zero norms, rows [0:3d] and [3d:6d].
- the final layer's `proj_out_1` (shift, scale) and `proj_out_2` are zoo's `final_norm.linear` and `head`.
"""

import dataclasses
from pathlib import Path

import torch

from shared.convert import convert_state, linear, mismatch_error, model_keys, require_equal, split
from shared.errors import ConfigError, WeightsError
from shared.pretrained import load_checked
from shared.state_dict import read_json, read_state_dict
from vision.dit import DiT, DiTConfig

CONFIG_FILE = "config.json"
# diffusers' weight file names, in order of preference (an older .bin is read with weights_only=True)
WEIGHTS_FILES = ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.safetensors.index.json",
                 "diffusion_pytorch_model.bin")
CLASSES = ("DiTTransformer2DModel", "Transformer2DModel")
HINT = "expected a diffusers DiTTransformer2DModel checkpoint of the same config"

_BLOCK, _OURS = "transformer_blocks.{}", "stack.blocks.{}"
_EMBEDDER = "norm1.emb."
# Block 0's embedder -> zoo's shared one (the other blocks' copies are checked, then left out).
EMBEDDER = {
    **linear(f"transformer_blocks.0.{_EMBEDDER}timestep_embedder.linear_1", "time_embed.linear_1"),
    **linear(f"transformer_blocks.0.{_EMBEDDER}timestep_embedder.linear_2", "time_embed.linear_2"),
    f"transformer_blocks.0.{_EMBEDDER}class_embedder.embedding_table.weight": "class_embed.weight",
}
TABLE = {
    **linear("pos_embed.proj", "patch_embed.proj"),
    **EMBEDDER,
    **linear(f"{_BLOCK}.norm1.linear", lambda p: split(f"{_OURS}.attn_norm.linear.{p}",
                                                        f"{_OURS}.mlp_norm.linear.{p}", dim=0)),
    **linear(f"{_BLOCK}.attn1.to_q", f"{_OURS}.attn.q_proj"),
    **linear(f"{_BLOCK}.attn1.to_k", f"{_OURS}.attn.k_proj"),
    **linear(f"{_BLOCK}.attn1.to_v", f"{_OURS}.attn.v_proj"),
    **linear(f"{_BLOCK}.attn1.to_out.0", f"{_OURS}.attn.out_proj"),
    **linear(f"{_BLOCK}.ff.net.0.proj", f"{_OURS}.mlp.fc1"),
    **linear(f"{_BLOCK}.ff.net.2", f"{_OURS}.mlp.fc2"),
    **linear("proj_out_1", "final_norm.linear"),
    **linear("proj_out_2", "head"),
}
# The sin-cos position table is computed, never learned; a save that kept it as a buffer carries nothing.
IGNORE = (r"pos_embed\.pos_embed",)

# diffusers' DiTTransformer2DModel defaults: what it builds for a field config.json leaves out (a
# Transformer2DModel config with norm_type "ada_norm_zero" is built as a DiTTransformer2DModel too).
_DEFAULTS = {"num_attention_heads": 16, "attention_head_dim": 72, "in_channels": 4, "out_channels": None,
             "num_layers": 28, "attention_bias": True, "sample_size": 32, "patch_size": 2,
             "activation_fn": "gelu-approximate", "num_embeds_ada_norm": 1000, "norm_type": "ada_norm_zero",
             "norm_elementwise_affine": False, "norm_eps": 1e-5}
# Settings that must have this value for zoo's DiT to compute what diffusers does: (value, why).
_REQUIRED = {
    "norm_type": ("ada_norm_zero", "zoo converts the class-conditional adaLN-Zero DiT only"),
    "activation_fn": ("gelu-approximate", "zoo's DiT MLP uses the tanh-approximate GELU"),
    "attention_bias": (True, "zoo's DiT attention has biases"),
    "norm_elementwise_affine": (False, "zoo's adaLN-Zero norms have no affine parameters"),
    "cross_attention_dim": (None, "zoo's class-conditional DiT has no cross-attention"),
    "num_vector_embeds": (None, "zoo's DiT reads continuous latents"),
}


def _get(config: dict, field: str):
    return config[field] if field in config else _DEFAULTS.get(field)


def dit_config_from_diffusers(config: dict, source: str = "diffusers DiT config") -> DiTConfig:
    """The DiTConfig of a diffusers DiTTransformer2DModel config.json (as a dict).

    Raises a one-line ConfigError for what zoo cannot build: another class, a norm_type other than
    "ada_norm_zero", no class embedding (num_embeds_ada_norm), an activation other than "gelu-approximate",
    attention without biases, affine MLP norms, cross-attention, discrete inputs, a non-square sample_size.
    dropout, upcast_attention (a precision policy) and norm_num_groups (unused by the patched model) are
    ignored.
    """
    name = config.get("_class_name", CLASSES[0])
    if name not in CLASSES:
        raise ConfigError(f"{source}: a {name} is not supported; zoo converts {' or '.join(CLASSES)} (DiT) only")
    if name == "Transformer2DModel" and "norm_type" not in config:
        raise ConfigError(f"{source}: a Transformer2DModel without norm_type is not a DiT; "
                          "zoo converts norm_type 'ada_norm_zero' only")
    for field, (value, why) in _REQUIRED.items():
        if _get(config, field) != value:
            raise ConfigError(f"{source}: {field}={_get(config, field)!r} is not supported; {why}")
    classes, patch = _get(config, "num_embeds_ada_norm"), _get(config, "patch_size")
    size = _get(config, "sample_size")
    if not classes:
        raise ConfigError(f"{source}: num_embeds_ada_norm={classes!r} is not supported; zoo's DiT needs the "
                          "number of classes of its class embedding")
    if not patch:
        raise ConfigError(f"{source}: patch_size={patch!r} is not supported; zoo's DiT reads patched latents")
    if isinstance(size, (list, tuple)):
        if len(size) != 2 or size[0] != size[1]:
            raise ConfigError(f"{source}: sample_size={list(size)} is not supported; zoo's DiT is square")
        size = size[0]
    heads, head_dim = int(_get(config, "num_attention_heads")), int(_get(config, "attention_head_dim"))
    out = _get(config, "out_channels")
    try:
        return DiTConfig(sample_size=int(size), patch_size=int(patch), in_channels=int(_get(config, "in_channels")),
                         out_channels=None if out is None else int(out), dim=heads * head_dim,
                         n_layers=int(_get(config, "num_layers")), n_heads=heads, mlp_ratio=4.0,
                         num_classes=int(classes), mlp_norm_eps=float(_get(config, "norm_eps")))
    except ConfigError as err:
        raise ConfigError(f"{source}: {err}") from None


def _shared_embedder(state: dict[str, torch.Tensor], n_layers: int, source: str) -> dict[str, torch.Tensor]:
    """`state` without the embedder copies of blocks 1.., after checking, block by block in table order, that
    each is there and equals block 0's."""
    first = f"transformer_blocks.0.{_EMBEDDER}"
    copies = set()
    for block in range(1, n_layers):
        for twin in EMBEDDER:
            key = twin.replace(first, f"transformer_blocks.{block}.{_EMBEDDER}")
            if key not in state:
                raise mismatch_error(source, missing=[key], hint=HINT)
            require_equal(state, key, twin, source=source,
                          why="zoo's DiT shares one timestep and class embedder across its blocks (diffusers' "
                              "copies are equal in converted DiT checkpoints); copy block 0's into every block")
            copies.add(key)
    return {key: tensor for key, tensor in state.items() if key not in copies}


def convert_dit(state: dict[str, torch.Tensor], config: DiTConfig,
                source: str = "diffusers DiT weights") -> dict[str, torch.Tensor]:
    """A diffusers DiTTransformer2DModel state dict -> zoo's DiT state dict for `config` (a pure function).

    Raises WeightsError for a missing or unknown key, or a block whose embedder differs from block 0's.
    Shapes are checked when the result is loaded.
    """
    if config.text_dim or not config.num_classes:
        raise ConfigError("convert_dit builds class-conditional DiTs only: num_classes > 0 and text_dim 0")
    state = _shared_embedder(state, config.n_layers, source)
    return convert_state(state, TABLE, source=source, expected=model_keys(DiT, config), ignore=IGNORE, hint=HINT)


# ---------------------------------------------------------------------------------------- diffusers folders

def _locate(path: Path) -> tuple[Path | None, Path]:
    """(config.json or None, weights file) of a transformer folder, a pipeline folder or a weights file."""
    path = Path(path)
    if not path.exists():
        raise WeightsError(f"{path}: does not exist")
    if path.is_file():
        config = path.parent / CONFIG_FILE
        return (config if config.is_file() else None), path
    if not (path / CONFIG_FILE).is_file() and (path / "transformer" / CONFIG_FILE).is_file():
        path = path / "transformer"  # a DiTPipeline folder
    if not (path / CONFIG_FILE).is_file():
        raise WeightsError(f"{path}: no {CONFIG_FILE} here or in transformer/; expected a diffusers DiT folder "
                           "(DiTPipeline.save_pretrained or a download of facebook/DiT-XL-2-256)")
    weights = next((path / name for name in WEIGHTS_FILES if (path / name).is_file()), None)
    if weights is None:
        raise WeightsError(f"{path}: no {WEIGHTS_FILES[0]} (or {WEIGHTS_FILES[-1]}) here; expected the weights "
                           "a diffusers DiTTransformer2DModel saves beside its config.json")
    return path / CONFIG_FILE, weights


def _read_config(path: Path) -> DiTConfig:
    return dit_config_from_diffusers(read_json(path, "diffusers DiTTransformer2DModel"), str(path))


def load_dit_weights(path: str | Path, model: DiT) -> DiT:
    """Fill `model` in place from a diffusers DiT folder (the transformer's, or a pipeline's with transformer/)
    or weights file: the WeightSpec loader. A config.json beside the weights is checked against the model's
    config first; the first differing field is one WeightsError."""
    config_path, weights = _locate(Path(path))
    if config_path is not None:
        theirs = _read_config(config_path)
        for field in dataclasses.fields(DiTConfig):
            a, b = getattr(theirs, field.name), getattr(model.config, field.name)
            if a != b:
                raise WeightsError(f"{config_path}: the checkpoint has {field.name}={a}, this model "
                                   f"{field.name}={b}; pick the matching model name or pass {field.name}={a}")
    state = convert_dit(read_state_dict(weights), model.config, source=str(weights))
    return load_checked(model, state, str(weights))


def load_diffusers_dit(folder: str | Path) -> DiT:
    """A zoo DiT (in eval mode) built from a diffusers DiTTransformer2DModel folder: config.json and
    diffusion_pytorch_model.safetensors (or .bin), as its save_pretrained writes them; a DiTPipeline folder
    is read from its transformer/ subfolder. Every key and shape must match."""
    config_path, weights = _locate(Path(folder))
    if config_path is None:
        raise WeightsError(f"{folder}: a weights file; pass the folder that holds it and its {CONFIG_FILE}")
    model = DiT(_read_config(config_path))
    state = convert_dit(read_state_dict(weights), model.config, source=str(weights))
    return load_checked(model, state, str(weights)).eval()


def load_dit_pipeline(folder: str | Path):
    """(DiT, AutoencoderKL), both in eval mode, from a diffusers DiTPipeline folder as its save_pretrained
    writes it: transformer/ (the denoiser) and vae/ (the autoencoder whose latents it denoises); scheduler/
    is not read."""
    from vision.convert_autoencoder import load_diffusers_autoencoder

    folder = Path(folder)
    for part in ("transformer", "vae"):
        if not (folder / part / CONFIG_FILE).is_file():
            raise WeightsError(f"{folder}: no {part}/{CONFIG_FILE}; expected a DiTPipeline folder with transformer/ "
                               "and vae/ subfolders (DiTPipeline.save_pretrained, facebook/DiT-XL-2-256)")
    return load_diffusers_dit(folder / "transformer"), load_diffusers_autoencoder(folder / "vae")
