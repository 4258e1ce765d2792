"""diffusers' AutoencoderKL checkpoints (a folder with config.json and diffusion_pytorch_model.safetensors) ->
zoo's vision.autoencoder.AutoencoderKL.

The two layouts share most names; the table renames the rest: each level's resampler (diffusers keeps it in a
one-element list, `downsamplers.0` / `upsamplers.0`) and the middle block's attention (`attentions.0.to_q` ...,
or `query`/`key`/`value`/`proj_attn` in checkpoints written before diffusers renamed them). Only the plain
AutoencoderKL converts: the configs zoo cannot build (no quant convs, other block types, a latent shift or
per-channel latent statistics) are refused before any weight is read.
"""

from pathlib import Path

import torch

from shared.convert import convert_state, linear, model_keys
from shared.errors import ConfigError, WeightsError
from shared.pretrained import load_checked
from shared.state_dict import read_json, read_state_dict
from vision.autoencoder import AutoencoderConfig, AutoencoderKL

CONFIG_FILE = "config.json"
# diffusers' weight file names, in order of preference (the .bin of older saves is read with weights_only=True)
WEIGHTS_FILES = ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin")
DOWN_BLOCK, UP_BLOCK = "DownEncoderBlock2D", "UpDecoderBlock2D"
HINT = "expected a full diffusers AutoencoderKL (encoder, decoder and both quant convs) of the same config"

# AutoencoderConfig field <- diffusers field, with diffusers' default for a config.json that leaves it out
# (those defaults, not zoo's, are what diffusers would build).
_FIELDS = {
    "in_channels": ("in_channels", 3),
    "out_channels": ("out_channels", 3),
    "block_out_channels": ("block_out_channels", (64,)),
    "layers_per_block": ("layers_per_block", 1),
    "latent_channels": ("latent_channels", 4),
    "norm_num_groups": ("norm_num_groups", 32),
    "sample_size": ("sample_size", 32),
    "scaling_factor": ("scaling_factor", 0.18215),
    "mid_block_attention": ("mid_block_add_attention", True),
}


def _refuse(source: str, problem: str, why: str) -> ConfigError:
    return ConfigError(f"{source}: {problem} is not supported; {why}")


def _check_buildable(config: dict, levels: int, source: str) -> None:
    """A ConfigError for the first setting zoo's AutoencoderKL has no module or field for."""
    name = config.get("_class_name", "AutoencoderKL")
    if name != "AutoencoderKL":
        raise _refuse(source, f"a {name}", "only diffusers' AutoencoderKL converts")
    if config.get("act_fn", "silu") != "silu":
        raise _refuse(source, f"act_fn={config['act_fn']!r}", "zoo's autoencoder uses SiLU throughout")
    for flag in ("use_quant_conv", "use_post_quant_conv"):
        if config.get(flag, True) is not True:
            raise _refuse(source, f"{flag}={config[flag]}", "zoo's AutoencoderKL always has both quant convs")
    for field, plain in (("down_block_types", DOWN_BLOCK), ("up_block_types", UP_BLOCK)):
        types = list(config.get(field, [plain]))
        if types != [plain] * levels:
            raise _refuse(source, f"{field}={types}",
                          f"expected {levels} x {plain!r}, one per entry of block_out_channels")
    # Settings a diffusion pipeline applies to the latents: zoo's config has a place for scaling_factor only,
    # so dropping these would silently mis-normalise every latent.
    if config.get("shift_factor") not in (None, 0, 0.0):
        raise _refuse(source, f"shift_factor={config['shift_factor']}", "zoo's config keeps scaling_factor only")
    for field in ("latents_mean", "latents_std"):
        if config.get(field) is not None:
            raise _refuse(source, f"a per-channel {field}", "zoo's config keeps scaling_factor only")


def _square_size(size, source: str) -> int:
    """diffusers allows sample_size as [H, W]; zoo's is one side."""
    if isinstance(size, (list, tuple)):
        if len(size) != 2 or size[0] != size[1]:
            raise _refuse(source, f"sample_size={list(size)}", "zoo's autoencoder config holds one square size")
        size = size[0]
    return int(size)


def autoencoder_config_from_diffusers(config: dict, source: str = "diffusers AutoencoderKL config"
                                      ) -> AutoencoderConfig:
    """The AutoencoderConfig of a diffusers AutoencoderKL config.json (as a dict).

    Raises a one-line ConfigError for what zoo cannot build: use_quant_conv / use_post_quant_conv false,
    block types other than DownEncoderBlock2D / UpDecoderBlock2D, an activation other than SiLU, a latent
    shift_factor or latents_mean / latents_std, a non-square sample_size. force_upcast (a dtype policy)
    and diffusers' bookkeeping fields are ignored.
    """
    fields = {ours: config.get(theirs, default) for ours, (theirs, default) in _FIELDS.items()}
    fields["block_out_channels"] = tuple(int(c) for c in fields["block_out_channels"])
    _check_buildable(config, len(fields["block_out_channels"]), source)
    fields["sample_size"] = _square_size(fields["sample_size"], source)
    fields["scaling_factor"] = float(fields["scaling_factor"])
    fields["mid_block_attention"] = bool(fields["mid_block_attention"])
    try:
        return AutoencoderConfig(**fields)
    except ConfigError as err:
        raise ConfigError(f"{source}: {err}") from None


_RESNET_LAYERS = ("norm1", "conv1", "norm2", "conv2", "conv_shortcut")
# The middle block's attention: (diffusers' name, the name of checkpoints saved before its rename, zoo's)
_ATTENTION = (("to_q", "query", "q_proj"), ("to_k", "key", "k_proj"), ("to_v", "value", "v_proj"),
              ("to_out.0", "proj_attn", "out_proj"))


def _resnets(path: str) -> dict:
    """Every layer of the ResNet blocks under `path` ("{}" for their index), whose names are the same in both."""
    return {key: target for layer in _RESNET_LAYERS
            for key, target in linear(f"{path}.{{}}.{layer}", f"{path}.{{}}.{layer}").items()}


def _half(part: str, levels: str, resampler: str) -> dict:
    """The table of the encoder or the decoder: its levels are `levels`, their resampler `resampler`."""
    theirs, ours = f"{part}.mid_block.attentions.0", f"{part}.mid_block.attention"
    return {
        **linear(f"{part}.conv_in", f"{part}.conv_in"),
        **_resnets(f"{part}.{levels}.{{}}.resnets"),
        **linear(f"{part}.{levels}.{{}}.{resampler}.0.conv", f"{part}.{levels}.{{}}.resample.conv"),
        **_resnets(f"{part}.mid_block.resnets"),
        **linear(f"{theirs}.group_norm", f"{ours}.group_norm"),
        **{key: target for current, old, zoo in _ATTENTION for src in (current, old)
           for key, target in linear(f"{theirs}.{src}", f"{ours}.attn.{zoo}").items()},
        **linear(f"{part}.conv_norm_out", f"{part}.conv_norm_out"),
        **linear(f"{part}.conv_out", f"{part}.conv_out"),
    }


TABLE = {
    **_half("encoder", "down_blocks", "downsamplers"),
    **_half("decoder", "up_blocks", "upsamplers"),
    **linear("quant_conv", "quant_conv"),
    **linear("post_quant_conv", "post_quant_conv"),
}


def convert_autoencoder(state: dict[str, torch.Tensor], config: AutoencoderConfig,
                        source: str = "diffusers AutoencoderKL weights") -> dict[str, torch.Tensor]:
    """A diffusers AutoencoderKL state dict -> zoo's AutoencoderKL state dict for `config`.

    The full model only (encoder, decoder, quant_conv, post_quant_conv): a missing or unknown key is one
    WeightsError naming it. Shapes are checked when the result is loaded (load_diffusers_autoencoder).
    """
    return convert_state(state, TABLE, source=source, expected=model_keys(AutoencoderKL, config), hint=HINT)


def load_diffusers_autoencoder(folder: str | Path) -> AutoencoderKL:
    """A zoo AutoencoderKL (in eval mode) from a diffusers AutoencoderKL folder, as its save_pretrained writes
    it: config.json and diffusion_pytorch_model.safetensors (or .bin). Weights are read through the safe
    reader and loaded strictly: every key and shape must match."""
    folder = Path(folder)
    if not folder.is_dir():
        raise WeightsError(f"{folder}: not a folder; expected a diffusers AutoencoderKL folder with "
                           f"{CONFIG_FILE} and {WEIGHTS_FILES[0]}")
    if not (folder / CONFIG_FILE).is_file() and (folder / "vae" / CONFIG_FILE).is_file():
        raise WeightsError(f"{folder}: a diffusion pipeline folder; pass its vae/ subfolder")
    config_path = folder / CONFIG_FILE
    config = autoencoder_config_from_diffusers(read_json(config_path, "diffusers AutoencoderKL"), str(config_path))
    weights = next((folder / name for name in WEIGHTS_FILES if (folder / name).is_file()), None)
    if weights is None:
        raise WeightsError(f"{folder}: no {WEIGHTS_FILES[0]} (or {WEIGHTS_FILES[1]}) here; expected the weights "
                           "a diffusers AutoencoderKL saves beside its config.json")
    state = convert_autoencoder(read_state_dict(weights), config, source=str(weights))
    return load_checked(AutoencoderKL(config), state, str(weights)).eval()
