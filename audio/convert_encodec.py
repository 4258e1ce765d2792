"""Hugging Face EnCodec checkpoints (transformers' EncodecModel) -> zoo Encodec.

transformers numbers the layers of each SEANet half in one list in which the ELUs take numbers too, so the key
table is built from the config. Its convolutions are weight-normed: a magnitude g and a direction v, named
weight_g / weight_v in the published files and parametrizations.weight.original0 / original1 when saved by
transformers 5; `fold_weight_norm` turns each pair into the one plain weight g * v / |v| first. The quantizer's
training statistics (cluster sizes, running averages) are dropped.
"""

import math
from pathlib import Path

import torch

from audio.encodec import Encodec, EncodecConfig
from shared.convert import Step, convert_state, drop, linear, mismatch_error, model_keys, prefixed
from shared.errors import ConfigError, WeightsError
from text.checkpoint_io import build_from_hf

# transformers' EncodecConfig defaults (the 24 kHz model), for the fields a config.json leaves out
HF_DEFAULTS = {
    "target_bandwidths": [1.5, 3.0, 6.0, 12.0, 24.0], "sampling_rate": 24000, "audio_channels": 1,
    "normalize": False, "chunk_length_s": None, "hidden_size": 128, "num_filters": 32, "num_residual_layers": 1,
    "upsampling_ratios": [8, 5, 4, 2], "norm_type": "weight_norm", "kernel_size": 7, "last_kernel_size": 7,
    "residual_kernel_size": 3, "dilation_growth_rate": 2, "use_causal_conv": True, "pad_mode": "reflect",
    "compress": 2, "num_lstm_layers": 2, "trim_right_ratio": 1.0, "codebook_size": 1024, "codebook_dim": None,
    "use_conv_shortcut": True,
}
# The (g, v) names of a weight-normed weight: torch.nn.utils.weight_norm's, then its parametrization's.
WEIGHT_NORM_NAMES = ((".weight_g", ".weight_v"),
                     (".parametrizations.weight.original0", ".parametrizations.weight.original1"))
_LSTM_PARAMS = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")


def encodec_config_from_hf(config: dict) -> EncodecConfig:
    """An EncodecConfig from the fields of a transformers EnCodec config.json (or MusicGen's audio_encoder).

    Refuses (ConfigError) what zoo's Encodec does not do: chunked encoding and loudness normalization (the
    48 kHz model's), and codebooks of another width than the encoder's output.
    """
    hf = HF_DEFAULTS | config
    source = "EnCodec config"
    if hf.get("model_type", "encodec") != "encodec":
        raise ConfigError(f"{source}: model_type is {hf['model_type']!r}, not 'encodec'")
    if hf["chunk_length_s"] is not None:
        raise ConfigError(f"{source}: chunk_length_s={hf['chunk_length_s']} (chunked encoding) is not supported; "
                          "use a model that encodes in one piece, such as facebook/encodec_32khz")
    if hf["normalize"]:
        raise ConfigError(f"{source}: normalize=True (per-chunk loudness scales) is not supported")
    if hf["codebook_dim"] not in (None, hf["hidden_size"]):
        raise ConfigError(f"{source}: codebook_dim={hf['codebook_dim']} differs from hidden_size="
                          f"{hf['hidden_size']}; EnCodec's decoder reads the codewords directly")
    fields = {name: hf[name] for name in EncodecConfig.__dataclass_fields__ if name in hf}
    fields["upsampling_ratios"] = tuple(fields["upsampling_ratios"])
    # transformers keeps as many codebooks as its highest bandwidth needs
    frame_rate = math.ceil(hf["sampling_rate"] / math.prod(hf["upsampling_ratios"]))
    bits = math.ceil(math.log2(hf["codebook_size"]))
    fields["num_quantizers"] = int(1000 * hf["target_bandwidths"][-1] // (frame_rate * bits))
    return EncodecConfig(**fields)


def fold_weight_norm(state: dict[str, torch.Tensor], source: str = "EnCodec checkpoint") -> dict[str, torch.Tensor]:
    """The state with every weight-normed pair (g, v), under either naming, replaced by "<layer>.weight" =
    g * v / |v|, the norm taken over all but the first dimension. Other tensors pass unchanged."""
    out = dict(state)
    for g_name, v_name in WEIGHT_NORM_NAMES:
        layers = {key.removesuffix(suffix) for key in state for suffix in (g_name, v_name) if key.endswith(suffix)}
        for layer in sorted(layers):
            missing = [layer + name for name in (g_name, v_name) if layer + name not in state]
            if missing:
                raise mismatch_error(source, missing=missing)
            g, v = out.pop(layer + g_name), out.pop(layer + v_name)
            if g.numel() != v.shape[0]:
                raise WeightsError(f"{source}: {layer + g_name} has shape {tuple(g.shape)}, but its direction "
                                   f"{layer + v_name} has {v.shape[0]} rows")
            norm = v.flatten(1).norm(dim=1).view(-1, *[1] * (v.dim() - 1))  # (out, 1, 1)
            out[layer + ".weight"] = v * (g.view_as(norm) / norm)
    return out


def _conv(theirs: str, ours: str, config: EncodecConfig) -> dict[str, str]:
    """One padded convolution: its conv, and its GroupNorm under time_group_norm."""
    table = linear(f"{theirs}.conv", f"{ours}.conv")
    if config.norm_type == "time_group_norm":
        table |= linear(f"{theirs}.norm", f"{ours}.norm")
    return table


def _block(theirs: str, ours: str, config: EncodecConfig) -> dict[str, str]:
    """One residual block: transformers' block.0 and block.2 are ELUs."""
    table = _conv(f"{theirs}.block.1", f"{ours}.conv1", config) | _conv(f"{theirs}.block.3", f"{ours}.conv2", config)
    if config.use_conv_shortcut:
        table |= _conv(f"{theirs}.shortcut", f"{ours}.shortcut", config)
    return table


def _half(theirs: str, ours: str, layers: list[str | None], config: EncodecConfig) -> dict[str, str]:
    """transformers' numbered layers of one SEANet half; `layers` names zoo's module for each (None: an ELU)."""
    table = {}
    for i, name in enumerate(layers):
        if name == "lstm":
            table |= {f"{theirs}.{i}.lstm.{p}_l{{}}": f"{ours}.lstm.{p}_l{{}}" for p in _LSTM_PARAMS}
        elif name is not None and ".blocks." in name:
            table |= _block(f"{theirs}.{i}", f"{ours}.{name}", config)
        elif name is not None:
            table |= _conv(f"{theirs}.{i}", f"{ours}.{name}", config)
    return table


def encodec_table(config: EncodecConfig) -> dict[str, str | Step]:
    """transformers EncodecModel key -> zoo Encodec key, for a state passed through fold_weight_norm (nest it in
    a larger model's table with shared.convert.prefixed)."""
    blocks = range(config.num_residual_layers)
    encoder: list[str | None] = ["stem"]
    for s in range(len(config.upsampling_ratios)):
        encoder += [f"stages.{s}.blocks.{j}" for j in blocks] + [None, f"stages.{s}.down"]
    decoder: list[str | None] = ["stem", "lstm"]
    for s in range(len(config.upsampling_ratios)):
        decoder += [None, f"stages.{s}.up"] + [f"stages.{s}.blocks.{j}" for j in blocks]
    return {
        **_half("encoder.layers", "encoder", [*encoder, "lstm", None, "head"], config),
        **_half("decoder.layers", "decoder", [*decoder, None, "head"], config),
        "quantizer.layers.{}.codebook.embed": "quantizer.codebooks.{}.weight",
        **{f"quantizer.layers.{{}}.codebook.{name}": drop() for name in ("inited", "cluster_size", "embed_avg")},
    }


def convert_encodec_state(hf_state: dict[str, torch.Tensor], config: EncodecConfig, source: str = "EnCodec checkpoint",
                          src: str = "", dst: str = "") -> dict[str, torch.Tensor]:
    """A transformers EncodecModel state dict -> a zoo Encodec state dict; one WeightsError for any mismatch.

    Every key of `hf_state` must start with `src` (e.g. "audio_encoder." in a MusicGen checkpoint); the zoo
    keys come out under `dst` (the codec's name inside the caller's model).
    """
    expected = [dst + key for key in model_keys(Encodec, config)]
    table = prefixed(encodec_table(config), src, dst)
    return convert_state(fold_weight_norm(hf_state, source), table, source=source, expected=expected,
                         hint="does config.json describe these weights?")


def load_encodec(path: str | Path) -> Encodec:
    """An Encodec built from a transformers EnCodec folder (config.json + model.safetensors or
    pytorch_model.bin) and loaded strictly: every key and shape must fit."""
    return build_from_hf(path, "EnCodec", encodec_config_from_hf, Encodec, convert_encodec_state)
