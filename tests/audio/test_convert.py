"""Converters to openai-whisper names: real CTranslate2 tiny.en, HF parity, openai .pt, and error paths."""

import pathlib

import pytest
import torch

from audio.convert import (
    DIM_FIELDS,
    check_openai_state,
    ct2_to_openai,
    dims_from_ct2,
    dims_from_hf,
    hf_to_openai,
    load_ct2_whisper,
    load_openai_checkpoint,
    openai_shapes,
)
from audio.ct2 import load_ct2_variables
from shared.errors import WeightsError

whisper = pytest.importorskip("whisper")

TINY_DIMS = dict(
    n_mels=80, n_audio_ctx=8, n_audio_state=16, n_audio_head=2, n_audio_layer=2,
    n_vocab=40, n_text_ctx=6, n_text_state=16, n_text_head=2, n_text_layer=3,
)  # fmt: skip


# ------------------------------------------------------------------------------------ CTranslate2


def _openai_to_ct2(state: dict, dims: dict) -> dict:
    """Test-side inverse of ct2_to_openai, written from the facts file's table: fuse q/k/v with a zero key
    bias, cross k/v, add the alias and scalar options."""
    out = {
        "encoder/position_encodings/encodings": state["encoder.positional_embedding"],
        "decoder/embeddings/weight": state["decoder.token_embedding.weight"],
        "decoder/projection/weight": state["decoder.token_embedding.weight"],  # the alias, resolved
        "decoder/position_encodings/encodings": state["decoder.positional_embedding"],
        "encoder/num_heads": torch.tensor(dims["n_audio_head"], dtype=torch.int16),
        "decoder/num_heads": torch.tensor(dims["n_text_head"], dtype=torch.int16),
        "decoder/activation": torch.tensor(3, dtype=torch.int8),
        "decoder/pre_norm": torch.tensor(1, dtype=torch.int8),
        "decoder/scale_embeddings": torch.tensor(0, dtype=torch.int8),
        "decoder/alibi": torch.tensor(0, dtype=torch.int8),
        "decoder/start_from_zero_embedding": torch.tensor(0, dtype=torch.int8),
        "decoder/alignment_heads": torch.tensor(1, dtype=torch.int16),
        "decoder/alignment_layer": torch.tensor(-1, dtype=torch.int16),
    }
    for ct2, oa in [("encoder/conv1", "encoder.conv1"), ("encoder/conv2", "encoder.conv2")]:
        out[f"{ct2}/weight"], out[f"{ct2}/bias"] = state[f"{oa}.weight"], state[f"{oa}.bias"]
    for ct2, oa in [("encoder/layer_norm", "encoder.ln_post"), ("decoder/layer_norm", "decoder.ln")]:
        out[f"{ct2}/gamma"], out[f"{ct2}/beta"] = state[f"{oa}.weight"], state[f"{oa}.bias"]

    def layer(src: str, dst: str, cross: bool) -> None:
        def lin(ct2: str, oa: str, names=("weight", "bias")) -> None:
            out[f"{dst}/{ct2}/{names[0]}"] = state[f"{src}.{oa}.weight"]
            out[f"{dst}/{ct2}/{names[1]}"] = state[f"{src}.{oa}.bias"]

        def ln(ct2: str, oa: str) -> None:
            lin(ct2, oa, names=("gamma", "beta"))

        def fused(ct2: str, attn: str, parts: list[str]) -> None:
            out[f"{dst}/{ct2}/weight"] = torch.cat([state[f"{src}.{attn}.{p}.weight"] for p in parts])
            zero = torch.zeros_like(state[f"{src}.{attn}.value.bias"])
            out[f"{dst}/{ct2}/bias"] = torch.cat([state.get(f"{src}.{attn}.{p}.bias", zero) for p in parts])

        fused("self_attention/linear_0", "attn", ["query", "key", "value"])
        lin("self_attention/linear_1", "attn.out")
        ln("self_attention/layer_norm", "attn_ln")
        lin("ffn/linear_0", "mlp.0")
        lin("ffn/linear_1", "mlp.2")
        ln("ffn/layer_norm", "mlp_ln")
        if cross:
            lin("attention/linear_0", "cross_attn.query")
            fused("attention/linear_1", "cross_attn", ["key", "value"])
            lin("attention/linear_2", "cross_attn.out")
            ln("attention/layer_norm", "cross_attn_ln")

    for i in range(dims["n_audio_layer"]):
        layer(f"encoder.blocks.{i}", f"encoder/layer_{i}", cross=False)
    for i in range(dims["n_text_layer"]):
        layer(f"decoder.blocks.{i}", f"decoder/layer_{i}", cross=True)
    return out


@pytest.fixture(scope="module")
def tiny_ct2(make_openai_whisper):
    state = make_openai_whisper(TINY_DIMS).state_dict()
    return state, _openai_to_ct2(state, TINY_DIMS)


def _convert(variables: dict) -> dict:
    return ct2_to_openai(
        variables, n_text_layers=TINY_DIMS["n_text_layer"], n_audio_layers=TINY_DIMS["n_audio_layer"]
    )


def test_ct2_round_trip_on_a_tiny_random_model(tiny_ct2):
    state, variables = tiny_ct2
    assert dims_from_ct2(variables) == TINY_DIMS
    converted = _convert(variables)
    assert converted.keys() == state.keys() == openai_shapes(TINY_DIMS).keys()
    for key, tensor in state.items():
        assert torch.equal(converted[key], tensor), key


def test_ct2_errors_name_the_variable(tiny_ct2):
    _, good = tiny_ct2

    def fails(change: dict, match: str, drop: str | None = None) -> None:
        variables = {k: v for k, v in good.items() if k != drop} | change
        with pytest.raises(WeightsError, match=match):
            _convert(variables)

    name = "decoder/layer_1/attention/linear_1/bias"
    fails({name: torch.ones_like(good[name])}, f"{name} has shape .*key rows are not zero")
    fails(
        {},
        "missing weight 'encoder.blocks.1.mlp.0.weight', named 'encoder/layer_1/ffn/linear_0/weight'",
        drop="encoder/layer_1/ffn/linear_0/weight",
    )
    fails({"encoder/layer_0/ffn/linear_0/weight_scale": torch.ones(1)}, "weight_scale'.*int8")
    fails({"decoder/layer_9/ffn/linear_0/bias": torch.ones(1)}, "unexpected weight 'decoder/layer_9/")
    fails({"decoder/activation": torch.tensor(0, dtype=torch.int8)}, "'decoder/activation' is 0")
    fails({"decoder/projection/weight": torch.zeros(40, 16)}, "decoder/projection/weight differs")
    name = "encoder/layer_0/self_attention/linear_0/weight"
    fails({name: torch.zeros(47, 16)}, f"{name} has shape \\(47, 16\\), cannot split dimension 0 into 3")


def test_dims_from_ct2_checks_config(tiny_ct2, tmp_path):
    _, variables = tiny_ct2
    assert dims_from_ct2(variables, {"suppress_ids": [1, 39], "alignment_heads": [[2, 1]]}) == TINY_DIMS
    with pytest.raises(WeightsError, match="suppress_ids"):
        dims_from_ct2(variables, {"suppress_ids": [40]})
    with pytest.raises(WeightsError, match="alignment head"):
        dims_from_ct2(variables, {"alignment_heads": [[3, 0]]})
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(WeightsError, match="config.json"):
        dims_from_ct2(variables, tmp_path / "config.json")
    missing = {k: v for k, v in variables.items() if k != "decoder/num_heads"}
    with pytest.raises(WeightsError, match="'decoder/num_heads'"):
        dims_from_ct2(missing)


def test_real_tiny_en_loads_strict_and_transcribes(ct2_dir, examples_dir, transcripts):
    from audio.features import HOP_LENGTH, N_FRAMES, N_SAMPLES, log_mel_spectrogram, pad_or_trim
    from audio.io import load_audio

    variables = load_ct2_variables(ct2_dir)
    dims = dims_from_ct2(variables, ct2_dir / "config.json")
    assert dims == dict(
        n_mels=80, n_audio_ctx=1500, n_audio_state=384, n_audio_head=6, n_audio_layer=4,
        n_vocab=51864, n_text_ctx=448, n_text_state=384, n_text_head=6, n_text_layer=4,
    )  # fmt: skip
    state = ct2_to_openai(variables, n_text_layers=4, n_audio_layers=4)
    assert len(state) == 4 + 1 + 2 + 4 * 15 + 2 + 2 + 4 * 24  # convs, pos, ln_post, blocks; embeddings, ln
    model = whisper.model.Whisper(whisper.model.ModelDimensions(**dims))
    model.load_state_dict(state, strict=True)
    model.eval()
    torch.testing.assert_close(
        model.encoder.positional_embedding, state["encoder.positional_embedding"].float()
    )

    # one window the way openai-whisper's transcribe() builds it: log-mel of the audio, then 0.0 frames
    name = "kitchen.wav"
    audio = load_audio(examples_dir / name)
    mel = log_mel_spectrogram(audio, padding=N_SAMPLES)[:, : len(audio) // HOP_LENGTH]
    mel = pad_or_trim(mel, N_FRAMES)  # (80, 3000)
    options = whisper.DecodingOptions(language="en", without_timestamps=False, fp16=False)
    result = whisper.decode(model, mel, options)
    assert result.text == transcripts[name]
    assert result.tokens[0] == 50363  # <|0.00|>: the timestamp rules are active


def test_load_ct2_whisper_folder(ct2_dir):
    dims, state = load_ct2_whisper(ct2_dir)
    assert dims["n_vocab"] == 51864 and state["decoder.token_embedding.weight"].dtype == torch.float16
    assert (
        "decoder.blocks.3.cross_attn.key.weight" in state
        and "decoder.blocks.3.cross_attn.key.bias" not in state
    )


# ------------------------------------------------------------------------------------ HF transformers


def test_hf_parity(hf_whisper):
    hf_model = hf_whisper
    dims = dims_from_hf(hf_model.config)
    assert dims == dims_from_hf(hf_model.config.to_dict())
    assert (dims["n_audio_ctx"], dims["n_text_ctx"], dims["n_vocab"]) == (16, 24, 96)
    state = hf_to_openai(hf_model.state_dict())
    check_openai_state(state, dims, "test")
    model = whisper.model.Whisper(whisper.model.ModelDimensions(**dims)).eval()
    model.load_state_dict(state, strict=True)

    torch.manual_seed(1)
    mel = torch.randn(2, dims["n_mels"], 2 * dims["n_audio_ctx"])  # (B, n_mels, frames): the stem halves frames
    tokens = torch.randint(0, dims["n_vocab"], (2, 10))
    with torch.no_grad():
        theirs = hf_model(input_features=mel, decoder_input_ids=tokens).logits
        ours = model(mel, tokens)
    assert ours.shape == theirs.shape == (2, 10, dims["n_vocab"])
    torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=0)


def test_hf_errors_name_the_key(hf_whisper):
    hf_model = hf_whisper
    good = hf_model.state_dict()
    untied = dict(good) | {"proj_out.weight": torch.zeros_like(good["proj_out.weight"])}
    without_proj = {k: v for k, v in good.items() if k != "proj_out.weight"}
    assert hf_to_openai(without_proj).keys() == hf_to_openai(good).keys()  # tied weights are often not saved
    with pytest.raises(WeightsError, match="proj_out.weight differs"):
        hf_to_openai(untied)
    with pytest.raises(WeightsError, match="unexpected weight 'model.encoder.layers.0.self_attn.k_proj.bias'"):
        hf_to_openai(dict(good) | {"model.encoder.layers.0.self_attn.k_proj.bias": torch.zeros(32)})
    missing = {k: v for k, v in good.items() if k != "model.decoder.layers.1.fc2.bias"}
    with pytest.raises(WeightsError, match="missing weight .*, named 'model.decoder.layers.1.fc2.bias'"):
        hf_to_openai(missing)
    gap = {k: v for k, v in good.items() if not k.startswith("model.encoder.layers.0.")}
    with pytest.raises(WeightsError, match="missing weight .*, named 'model.encoder.layers.0."):
        hf_to_openai(gap)
    config = hf_model.config.to_dict()
    bad_configs = [
        ({"activation_function": "relu"}, "gelu"),
        ({"encoder_ffn_dim": 100}, "4 x d_model"),
        ({"scale_embedding": True}, "scale_embedding"),
        ({"encoder_attention_heads": 5}, "divisible"),
    ]
    for change, match in bad_configs:
        with pytest.raises(WeightsError, match=match):
            dims_from_hf(config | change)


# ------------------------------------------------------------------------------------ openai-whisper .pt


def test_openai_checkpoint_round_trip(tmp_path, make_openai_whisper):
    state = make_openai_whisper(TINY_DIMS).state_dict()
    path = tmp_path / "tiny.pt"
    torch.save({"dims": TINY_DIMS, "model_state_dict": state}, path)
    dims, loaded = load_openai_checkpoint(path)
    assert dims == TINY_DIMS and list(dims) == list(DIM_FIELDS)
    assert all(torch.equal(loaded[k], v) for k, v in state.items()) and loaded.keys() == state.keys()


class _Exploit:
    """Unpickling this would create a file: the loader must refuse it instead."""

    def __init__(self, marker: pathlib.Path):
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (self.marker,))


def test_openai_checkpoint_errors(tmp_path, make_openai_whisper):
    state = make_openai_whisper(TINY_DIMS).state_dict()

    def fails(obj, match: str) -> None:
        path = tmp_path / "bad.pt"
        if isinstance(obj, bytes):
            path.write_bytes(obj)
        else:
            torch.save(obj, path)
        with pytest.raises(WeightsError, match=match) as info:
            load_openai_checkpoint(path)
        assert str(path) in str(info.value) and "\n" not in str(info.value)

    marker = tmp_path / "pwned"
    fails({"dims": TINY_DIMS, "model_state_dict": state, "x": _Exploit(marker)}, "weights_only=True accepts")
    assert not marker.exists()
    fails(b"this is not a checkpoint", "weights_only=True accepts")
    fails({"model_state_dict": state}, "'dims'")
    fails({"dims": {**TINY_DIMS, "n_mels": None}, "model_state_dict": state}, "n_mels=None")
    no_vocab = {k: v for k, v in TINY_DIMS.items() if k != "n_vocab"}
    fails({"dims": no_vocab, "model_state_dict": state}, "exactly the fields")
    wrong = dict(state) | {"decoder.ln.bias": torch.zeros(3)}
    fails({"dims": TINY_DIMS, "model_state_dict": wrong}, r"'decoder.ln.bias' has shape \(3,\)")
    fails(
        {"dims": TINY_DIMS, "model_state_dict": state | {"decoder.extra": torch.zeros(1)}}, "'decoder.extra'"
    )
    with pytest.raises(WeightsError, match="nope.pt: does not exist"):
        load_openai_checkpoint(tmp_path / "nope.pt")
