"""transformers' VisionEncoderDecoderModel (a ViT encoder, a GPT-2 decoder with cross-attention) -> Captioner.

The encoder half goes through the ViT converter of vision.convert, the decoder's self-attention, MLP and
embeddings through the GPT-2 converter of text.convert_gpt2; this module adds only what those do not know:

    HF (under decoder.transformer.h.{i}.)        zoo (under decoder.stack.blocks.{i}.)
    ln_cross_attn                                cross_norm
    crossattention.q_attn   Conv1D (D, D)        cross_attn.q_proj      transposed
    crossattention.c_attn   Conv1D (D, 2D)       cross_attn.k_proj, v_proj   split in two, transposed
    crossattention.c_proj   Conv1D (D, D)        cross_attn.out_proj    transposed
    enc_to_dec_proj (top level, when widths differ)   memory_proj

Unknown or missing keys are errors naming the key.
"""

import re
from pathlib import Path

import torch

from shared.errors import WeightsError
from text.checkpoint_io import build_from_hf, load_converted
from text.convert_gpt2 import config_from_hf as gpt2_config_from_hf
from text.convert_gpt2 import convert_gpt2
from text.gpt2 import GPT2Config
from vision.captioner import Captioner, CaptionerConfig
from vision.convert import from_hf as vit_from_hf

# Non-persistent attention-mask buffers that older transformers versions wrote into checkpoints.
IGNORED = re.compile(r"h\.\d+\.crossattention\.(bias|masked_bias)$")
CROSS = re.compile(r"h\.(\d+)\.(ln_cross_attn|crossattention)\.")


def _gpt2_config(config: CaptionerConfig) -> GPT2Config:
    """The GPT-2 of the same shape as the captioner's decoder (what convert_gpt2 reads)."""
    c = config
    return GPT2Config(vocab_size=c.vocab_size, max_len=c.max_len, dim=c.dim, n_layers=c.n_layers,
                      n_heads=c.n_heads, mlp_hidden=c.mlp_hidden, activation=c.activation,
                      norm_eps=c.norm_eps, dropout=c.dropout, bos_id=c.bos_id, eos_id=c.eos_id,
                      pad_id=c.pad_id)


def _take(state: dict, key: str, source: str) -> torch.Tensor:
    if key not in state:
        raise WeightsError(f"{source}: missing weight {'decoder.transformer.' + key!r}; "
                           "was the GPT-2 decoder built with add_cross_attention=True?")
    return state.pop(key)


def _cross_attention(state: dict, config: CaptionerConfig, source: str) -> dict:
    """Pop the decoder's cross-attention weights (HF keys without `transformer.`) from `state` as zoo keys."""
    out, D = {}, config.dim
    for i in range(config.n_layers):
        hf, ours = f"h.{i}.", f"decoder.stack.blocks.{i}."
        for p in ("weight", "bias"):
            out[f"{ours}cross_norm.{p}"] = _take(state, f"{hf}ln_cross_attn.{p}", source)
            query, kv, proj = (_take(state, f"{hf}crossattention.{name}.{p}", source)
                               for name in ("q_attn", "c_attn", "c_proj"))
            if kv.shape[-1] != 2 * D:
                raise WeightsError(f"{source}: {hf}crossattention.c_attn.{p} has shape {tuple(kv.shape)}, "
                                   f"expected a last dimension of {2 * D}")
            key, value = kv.split(D, dim=-1)
            for name, tensor in (("q_proj", query), ("k_proj", key), ("v_proj", value), ("out_proj", proj)):
                # Conv1D keeps weights as (in, out), nn.Linear as (out, in)
                out[f"{ours}cross_attn.{name}.{p}"] = tensor.t().contiguous() if p == "weight" else tensor
    return out


def convert_vision_encoder_decoder(hf_state: dict[str, torch.Tensor], config: CaptionerConfig,
                                   source: str = "VisionEncoderDecoderModel checkpoint") -> dict:
    """An HF VisionEncoderDecoderModel state dict (ViT + GPT-2) -> a zoo Captioner state dict."""
    encoder, decoder, out = {}, {}, {}
    for key, tensor in hf_state.items():
        if key.startswith("encoder."):
            encoder[key.removeprefix("encoder.")] = tensor
        elif key.startswith("decoder."):
            decoder[key.removeprefix("decoder.").removeprefix("transformer.")] = tensor
        elif key in ("enc_to_dec_proj.weight", "enc_to_dec_proj.bias"):
            out["memory_proj." + key.rsplit(".", 1)[1]] = tensor
        else:
            raise WeightsError(f"{source}: unexpected weight {key!r}; "
                               "not a ViT + GPT-2 VisionEncoderDecoderModel")
    if not encoder or not decoder:
        raise WeightsError(f"{source}: no {'encoder' if not encoder else 'decoder'}.* weights; "
                           "expected a VisionEncoderDecoderModel state dict")
    decoder = {k: v for k, v in decoder.items() if not IGNORED.search(k)}
    out.update(_cross_attention(decoder, config, source))
    leftover = [k for k in decoder if CROSS.match(k)]
    if leftover:
        raise WeightsError(f"{source}: unexpected weight {'decoder.transformer.' + leftover[0]!r}; "
                           f"the checkpoint has more decoder layers than the config's {config.n_layers}")
    out.update(convert_gpt2(decoder, _gpt2_config(config), source))
    out.update({f"encoder.{k}": v for k, v in vit_from_hf(encoder, config.encoder_config, source).items()})
    return out


def config_from_hf(hf: dict) -> CaptionerConfig:
    """A CaptionerConfig from an HF VisionEncoderDecoderConfig (config.json as a dict)."""
    enc, dec = hf.get("encoder") or {}, hf.get("decoder") or {}
    if enc.get("model_type") != "vit" or dec.get("model_type") != "gpt2":
        raise WeightsError(f"only a ViT encoder with a GPT-2 decoder is supported, not "
                           f"{enc.get('model_type')!r} + {dec.get('model_type')!r}")
    if enc.get("hidden_act", "gelu") != "gelu":
        raise WeightsError(f"ViT activation {enc.get('hidden_act')!r} is not supported; only gelu")
    dim = enc.get("hidden_size", 768)
    overrides = {"img_size": enc.get("image_size", 224), "patch_size": enc.get("patch_size", 16),
                 "in_chans": enc.get("num_channels", 3), "dim": dim,
                 "depth": enc.get("num_hidden_layers", 12), "n_heads": enc.get("num_attention_heads", 12),
                 "mlp_ratio": enc.get("intermediate_size", 4 * dim) / dim,
                 "qkv_bias": enc.get("qkv_bias", True), "norm_eps": enc.get("layer_norm_eps", 1e-12),
                 "drop_path_rate": 0.0}
    gpt2 = gpt2_config_from_hf(dec)
    start = hf.get("decoder_start_token_id")
    pad = hf.get("pad_token_id")
    return CaptionerConfig(
        encoder="vit_base_patch16_224", encoder_overrides=overrides, vocab_size=gpt2.vocab_size,
        max_len=gpt2.max_len, dim=gpt2.dim, n_layers=gpt2.n_layers, n_heads=gpt2.n_heads,
        mlp_hidden=gpt2.mlp_hidden, activation=gpt2.activation, norm_eps=gpt2.norm_eps, dropout=gpt2.dropout,
        bos_id=gpt2.bos_id if start is None else start, eos_id=hf.get("eos_token_id") or gpt2.eos_id,
        pad_id=gpt2.pad_id if pad is None else pad)


def load_hf_captioner(path: str | Path, model: Captioner) -> Captioner:
    """Fill `model` in place from an HF VisionEncoderDecoderModel folder or weights file."""
    return load_converted(path, model, convert_vision_encoder_decoder)


def captioner_from_hf(path: str | Path) -> Captioner:
    """Build a Captioner whose config follows the folder's config.json, and load its weights."""
    return build_from_hf(path, "VisionEncoderDecoderModel", config_from_hf, Captioner,
                         convert_vision_encoder_decoder)
