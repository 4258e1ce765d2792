"""transformers' VisionEncoderDecoderModel (a ViT encoder, a GPT-2 decoder with cross-attention) -> Captioner.

One table made of the two it is built from: the Hugging Face ViT table of vision.convert under "encoder.",
the GPT-2 table of text.convert_gpt2 (with its cross-attention layers) under "decoder.transformer.", and the
projection HF adds when the two widths differ (enc_to_dec_proj -> memory_proj). Unknown or missing keys are
errors naming the key.
"""

from pathlib import Path

import torch

from shared.convert import convert_state, drop, linear, model_keys, prefixed, require_equal
from shared.errors import WeightsError
from text.checkpoint_io import build_from_hf, load_converted
from text.convert_gpt2 import IGNORED as GPT2_IGNORED
from text.convert_gpt2 import config_from_hf as gpt2_config_from_hf
from text.convert_gpt2 import decoder_table
from vision.captioner import Captioner, CaptionerConfig
from vision.convert import HF as VIT_HF
from vision.convert import HF_UNUSED as VIT_UNUSED
from vision.convert import fit_positions

IGNORED = (*(f"encoder\\.{regex}" for regex in VIT_UNUSED),
           *(f"decoder\\.transformer\\.{regex}" for regex in GPT2_IGNORED))


def convert_vision_encoder_decoder(hf_state: dict[str, torch.Tensor], config: CaptionerConfig,
                                   source: str = "VisionEncoderDecoderModel checkpoint") -> dict:
    """An HF VisionEncoderDecoderModel state dict (ViT + GPT-2) -> a zoo Captioner state dict."""
    require_equal(hf_state, "decoder.lm_head.weight", "decoder.transformer.wte.weight", source=source,
                  why="zoo's captioner ties them")
    table = {
        **prefixed(VIT_HF, "encoder.", "encoder."),
        **prefixed(decoder_table(config.dim, cross_attention=True), "decoder.transformer.", "decoder."),
        "decoder.lm_head.weight": drop(),
        **linear("enc_to_dec_proj", "memory_proj"),
    }
    hint = (f"is it a ViT + GPT-2 VisionEncoderDecoderModel with cross-attention, and no more decoder layers "
            f"than the config's {config.n_layers}?")
    out = convert_state(hf_state, table, source=source, expected=model_keys(Captioner, config), ignore=IGNORED,
                        hint=hint)
    out["encoder.pos_embed.weight"] = fit_positions(out["encoder.pos_embed.weight"], config.encoder_config,
                                                    source)
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
