"""transformers' MusicGen checkpoints (MusicgenForConditionalGeneration) -> zoo MusicGen.

One folder holds three models and a projection: `text_encoder.*` (T5's encoder under T5EncoderModel's names),
`enc_to_dec_proj` (only when the text width differs from the decoder's), `decoder.*` (the codebook decoder:
`embed_tokens.{k}`, pre-norm layers with LayerNorms and bias-free projections, `layer_norm`, `lm_heads.{k}`) and
`audio_encoder.*` (EnCodec, converted by audio/convert_encodec.py). Neither side stores the decoder's sinusoidal
positions: both compute the same table.

The codec: a MusicGenConfig names its codec (audio.music_codecs.CODECS), and a folder's EnCodec must be one of
the named ones (MusicGen's checkpoints all use encodec_32khz).
"""

import functools
from pathlib import Path

import torch

from audio.convert_encodec import convert_encodec_state, encodec_config_from_hf
from audio.encodec import Encodec, EncodecConfig
from audio.music_codecs import CODECS
from audio.musicgen import MusicGen, MusicGenConfig
from shared.convert import convert_state, drop, linear, model_keys, prefixed, require_equal
from shared.errors import ConfigError, WeightsError
from shared.pretrained import load_checked
from shared.state_dict import read_json, read_state_dict
from text.convert_t5 import config_from_hf as t5_config_from_hf
from text.convert_t5 import stack_table

# transformers' MusicgenDecoderConfig defaults (musicgen-small's decoder), for the fields a config.json leaves out
DECODER_DEFAULTS = {
    "vocab_size": 2048, "max_position_embeddings": 2048, "num_hidden_layers": 24, "ffn_dim": 4096,
    "num_attention_heads": 16, "activation_function": "gelu", "hidden_size": 1024, "dropout": 0.1,
    "scale_embedding": False, "num_codebooks": 4, "audio_channels": 1, "pad_token_id": 2048, "bos_token_id": 2048,
    "cross_attention_hidden_size": None,
}
# The T5 encoder fields a MusicGenConfig cannot set: they must keep T5Config's defaults.
T5_FIXED = ("gated_mlp", "activation", "num_buckets", "max_distance", "norm_eps")
EMBED_ALIAS = "text_encoder.encoder.embed_tokens.weight"
EMBED = "text_encoder.shared.weight"
HINT = "does config.json describe these weights?"


def _section(config: dict, name: str) -> dict:
    part = config.get(name)
    if not isinstance(part, dict):
        raise ConfigError(f"MusicGen config: no {name!r} section; expected a MusicgenForConditionalGeneration "
                          "config.json")
    return part


@functools.cache
def _named_codecs() -> dict[str, EncodecConfig | None]:
    """name -> its EncodecConfig (None for another kind of codec)."""
    named = {}
    for name, build in CODECS.items():
        with torch.device("meta"):  # only the config: no memory, no initialisation time
            codec = build()
        named[name] = codec.config if isinstance(codec, Encodec) else None
    return named


def codec_name(codec: EncodecConfig) -> str:
    """The name of the zoo codec that is `codec`; ConfigError when none is."""
    for name, config in _named_codecs().items():
        if config == codec:
            return name
    raise ConfigError(f"MusicGen config: its EnCodec ({codec}) is none of zoo's named codecs; add it to "
                      "audio.music_codecs.CODECS")


def musicgen_config_from_hf(config: dict, codec: str | None = None) -> MusicGenConfig:
    """A MusicGenConfig from a transformers MusicGen config.json (its "decoder", "text_encoder" and
    "audio_encoder" sections). `codec` names the zoo codec; by default codec_name() of the audio encoder.
    Refuses (ConfigError) what zoo's MusicGen does not do: stereo, scaled embeddings, another activation."""
    dec = DECODER_DEFAULTS | _section(config, "decoder")
    text = _section(config, "text_encoder")
    source = "MusicGen config"
    if dec["audio_channels"] != 1:
        raise ConfigError(f"{source}: audio_channels={dec['audio_channels']} (stereo) is not supported; use a "
                          "mono model such as facebook/musicgen-small")
    refused = {"scale_embedding": False, "activation_function": "gelu", "cross_attention_hidden_size": None,
               "pad_token_id": dec["vocab_size"], "bos_token_id": dec["vocab_size"]}
    for field, value in refused.items():
        if dec[field] != value:
            raise ConfigError(f"{source}: decoder {field}={dec[field]!r} is not supported; zoo's MusicGen "
                              f"has {value!r}")
    t5 = t5_config_from_hf(text)
    if codec is None:
        codec = codec_name(encodec_config_from_hf(_section(config, "audio_encoder")))
    result = MusicGenConfig(
        codec=codec, num_codebooks=dec["num_codebooks"], codebook_size=dec["vocab_size"], dim=dec["hidden_size"],
        n_layers=dec["num_hidden_layers"], n_heads=dec["num_attention_heads"], mlp_hidden=dec["ffn_dim"],
        max_len=dec["max_position_embeddings"], dropout=dec["dropout"], text_vocab_size=t5.vocab_size,
        text_dim=t5.dim, text_layers=t5.n_encoder_layers, text_heads=t5.n_heads, text_head_dim=t5.head_dim,
        text_mlp_hidden=t5.mlp_hidden, text_pad_id=t5.pad_id)
    for field in T5_FIXED:
        if getattr(t5, field) != getattr(result.text_config, field):
            raise ConfigError(f"{source}: the text encoder's {field} is {getattr(t5, field)!r}; zoo's MusicGen "
                              f"takes T5 with {getattr(result.text_config, field)!r}")
    return result


def _decoder_table() -> dict:
    """transformers' MusicgenForCausalLM keys (under "decoder.") -> zoo's TextDecoder keys."""
    theirs, ours = "decoder.model.decoder.layers.{}", "decoder.stack.blocks.{}"
    table = {"decoder.model.decoder.embed_tokens.{}.weight": "decoder.embed.tables.{}.weight"}
    for their_attn, our_attn in (("self_attn", "attn"), ("encoder_attn", "cross_attn")):
        for proj in ("q_proj", "k_proj", "v_proj", "out_proj"):
            table[f"{theirs}.{their_attn}.{proj}.weight"] = f"{ours}.{our_attn}.{proj}.weight"
    table |= linear(f"{theirs}.self_attn_layer_norm", f"{ours}.attn_norm")
    table |= linear(f"{theirs}.encoder_attn_layer_norm", f"{ours}.cross_norm")
    table |= {f"{theirs}.{fc}.weight": f"{ours}.mlp.{fc}.weight" for fc in ("fc1", "fc2")}
    table |= linear(f"{theirs}.final_layer_norm", f"{ours}.mlp_norm")
    table |= linear("decoder.model.decoder.layer_norm", "decoder.stack.final_norm")
    table["decoder.lm_heads.{}.weight"] = "decoder.head.heads.{}.weight"
    return table


def musicgen_table() -> dict:
    """transformers MusicGen key -> zoo MusicGen key, all but the audio encoder's (convert_encodec_state's)."""
    return {
        EMBED: "text_encoder.embed.token.weight",
        EMBED_ALIAS: drop(),
        **prefixed(stack_table("encoder", "encoder", False, False), "text_encoder.", "text_encoder."),
        **linear("enc_to_dec_proj", "enc_to_dec_proj"),
        **_decoder_table(),
    }


def convert_musicgen_state(hf_state: dict[str, torch.Tensor], config: MusicGenConfig,
                           source: str = "MusicGen checkpoint") -> dict[str, torch.Tensor]:
    """A transformers MusicgenForConditionalGeneration state dict -> a zoo MusicGen state dict; one
    WeightsError for any mismatch."""
    codec = _named_codecs()[config.codec]
    if codec is None:
        raise ConfigError(f"{source}: MusicGen checkpoints carry EnCodec; codec {config.codec!r} is not one")
    state = dict(hf_state)
    require_equal(state, EMBED_ALIAS, EMBED, source=source, why="T5's encoder reads one embedding")
    if EMBED not in state and EMBED_ALIAS in state:  # a file may keep only one name of the tied pair
        state[EMBED] = state.pop(EMBED_ALIAS)
    audio = {key: state.pop(key) for key in list(state) if key.startswith("audio_encoder.")}
    expected = [key for key in model_keys(MusicGen, config) if not key.startswith("codec.")]
    out = convert_state(state, musicgen_table(), source=source, expected=expected, hint=HINT)
    return out | convert_encodec_state(audio, codec, source, src="audio_encoder.", dst="codec.")


def load_hf_musicgen(path: str | Path, model: MusicGen) -> MusicGen:
    """Fill `model` in place from a transformers MusicGen folder (config.json and model.safetensors or
    pytorch_model.bin), strictly: every key and shape must fit, and the folder's EnCodec must be the model's."""
    path = Path(path)
    folder = path if path.is_dir() else path.parent
    hf = read_json(folder / "config.json", "Hugging Face MusicGen")
    if encodec_config_from_hf(_section(hf, "audio_encoder")) != getattr(model.codec, "config", None):
        raise WeightsError(f"{path}: its EnCodec differs from the model's codec {model.config.codec!r}; build the "
                           "model from the folder's config with musicgen_from_hf")
    state = convert_musicgen_state(read_state_dict(path), model.config, str(path))
    return load_checked(model, state, str(path))


def musicgen_from_hf(path: str | Path) -> MusicGen:
    """Build the MusicGen that a transformers folder's config.json describes and load its weights."""
    config = musicgen_config_from_hf(read_json(Path(path) / "config.json", "Hugging Face MusicGen"))
    return load_hf_musicgen(path, MusicGen(config))
