"""The key-table helper (shared.convert) and the one weights reader (shared.state_dict)."""

import json
import pickle

import pytest
import torch
from safetensors.torch import save_file

from shared.convert import (
    apply,
    concat,
    convert_state,
    drop,
    linear,
    mismatch_error,
    model_keys,
    prefixed,
    require_equal,
    split,
    transpose,
)
from shared.errors import WeightsError
from shared.state_dict import read_json, read_state_dict, weights_file


def t(*shape) -> torch.Tensor:
    return torch.arange(torch.Size(shape).numel(), dtype=torch.float32).reshape(shape)


def test_rename_fills_placeholders_in_order():
    table = {"h.{}.mlp.{}.weight": "blocks.{}.fc{}.weight", "wte": "embed"}
    out = convert_state({"h.3.mlp.1.weight": t(2), "h.12.mlp.0.weight": t(3), "wte": t(1)}, table, source="x")
    assert set(out) == {"blocks.3.fc1.weight", "blocks.12.fc0.weight", "embed"}
    assert torch.equal(out["blocks.12.fc0.weight"], t(3))


def test_split_equal_sized_transposed_and_errors():
    fused = t(4, 6)
    out = convert_state({"qkv": fused}, {"qkv": split("q", "k", "v", dim=-1, transpose=True)}, source="x")
    assert [out[n].shape for n in "qkv"] == [(2, 4)] * 3
    assert torch.equal(out["k"], fused[:, 2:4].t()) and out["k"].is_contiguous()
    out = convert_state({"kv": t(5)}, {"kv": split("k", "v", sizes=(2, 3))}, source="x")
    assert torch.equal(out["v"], t(5)[2:])
    with pytest.raises(WeightsError, match=r"^x: qkv has shape \(4, 7\), cannot split dimension -1 into 3"):
        convert_state({"qkv": t(4, 7)}, {"qkv": split("q", "k", "v", dim=-1)}, source="x")
    with pytest.raises(WeightsError, match=r"^x: kv has shape \(6,\), expected a size of 5 in dimension 0"):
        convert_state({"kv": t(6)}, {"kv": split("k", "v", sizes=(2, 3))}, source="x")


def test_transpose_apply_and_linear():
    table = {**linear("c_fc", transpose), **linear("ln", "norm"), "pos": apply("pos_embed", lambda x: x[0])}
    state = {"c_fc.weight": t(2, 3), "c_fc.bias": t(3), "ln.weight": t(2), "ln.bias": t(2), "pos": t(1, 4, 2)}
    out = convert_state(state, table, source="x")
    assert out["weight"].shape == (3, 2) and out["weight"].is_contiguous()
    assert torch.equal(out["bias"], t(3))  # a 1-D tensor passes a transpose unchanged
    assert set(out) == {"weight", "bias", "norm.weight", "norm.bias", "pos_embed"}
    assert out["pos_embed"].shape == (4, 2)
    table = linear("c_attn", lambda p: split(f"q.{p}", f"k.{p}", dim=-1, transpose=True))
    out = convert_state({"c_attn.weight": t(2, 4), "c_attn.bias": t(4)}, table, source="x")
    assert out["q.weight"].shape == (2, 2) and torch.equal(out["k.bias"], t(4)[2:])


def test_concat_joins_parts_in_index_order_and_a_missing_part_is_missing():
    table = {"b.{}": concat("fused.{}", 1, 2), "a.{}": concat("fused.{}", 0, 2)}
    out = convert_state({"b.0": t(2) + 10, "a.0": t(2)}, table, source="x", expected=["fused.0"])
    assert torch.equal(out["fused.0"], torch.cat([t(2), t(2) + 10]))
    with pytest.raises(WeightsError, match="x: missing weight 'fused.0', named 'b.0' in the checkpoint"):
        convert_state({"a.0": t(2)}, table, source="x", expected=["fused.0"])
    with pytest.raises(WeightsError, match="x: missing weight 'fused.0'"):
        convert_state({"a.0": t(2)}, table, source="x")


def test_ignore_drop_and_optional():
    table = {"w": "w", "lm_head": drop()}
    out = convert_state({"w": t(1), "lm_head": t(1), "h.0.attn.bias": t(1)}, table, source="x",
                        ignore=[r"h\.\d+\.attn\.bias"], expected=["w", "head.fc"], optional=["head.fc"])
    assert list(out) == ["w"]


def test_missing_and_unexpected_are_one_message():
    table = {"h.{}.fc.weight": "blocks.{}.fc.weight"}
    expected = ["blocks.0.fc.weight", "blocks.1.fc.weight"]
    with pytest.raises(WeightsError) as info:
        convert_state({"h.0.fc.weight": t(1)}, table, source="ckpt", expected=expected, hint="check the depth")
    assert str(info.value) == ("ckpt: missing weight 'blocks.1.fc.weight', named 'h.1.fc.weight' in the "
                               "checkpoint (1 missing in all); check the depth")
    state = {f"h.{i}.fc.weight": t(1) for i in range(3)}
    with pytest.raises(WeightsError, match=r"^ckpt: unexpected weight 'h.2.fc.weight' \(1 unexpected in all\)$"):
        convert_state(state, table, source="ckpt", expected=expected)  # named by the checkpoint's key
    with pytest.raises(WeightsError, match=r"^ckpt: unexpected weight 'score' \(2 unexpected in all\)$"):
        convert_state({**state, "score": t(1), "other": t(1)}, table, source="ckpt")
    assert str(mismatch_error("f", missing=["a", "b"], unexpected=["c"])) == (
        "f: missing weight 'a' (2 missing in all), unexpected weight 'c' (1 unexpected in all)")


def test_table_errors_are_weights_errors():
    with pytest.raises(WeightsError, match="matches 2 entries"):
        convert_state({"h.0.w": t(1)}, {"h.{}.w": "a.{}", "h.0.w": "b"}, source="x")
    with pytest.raises(WeightsError, match="'h.0.w' and 'h.0.v' both map to 'a'"):
        convert_state({"h.0.w": t(1), "h.0.v": t(1)}, {"h.{}.w": "a", "h.{}.v": "a"}, source="x")


def test_prefixed_table_and_tied_twins():
    table = prefixed({"h.{}.w": "blocks.{}.w", "qkv": split("q", "k")}, "decoder.", "dec.")
    out = convert_state({"decoder.h.1.w": t(1), "decoder.qkv": t(2)}, table, source="x")
    assert set(out) == {"dec.blocks.1.w", "dec.q", "dec.k"}
    require_equal({"a": t(2), "b": t(2)}, "a", "b", source="x", why="tied")
    with pytest.raises(WeightsError, match="^x: a differs from b; zoo ties them$"):
        require_equal({"a": t(2), "b": t(2) + 1}, "a", "b", source="x", why="zoo ties them")


def test_model_keys_are_the_state_dict_of_a_meta_model():
    assert model_keys(lambda n: torch.nn.Linear(n, 2), 3) == ("weight", "bias")


# --- the reader ----------------------------------------------------------------------------------------

STATE = {"a.weight": torch.ones(2, 3), "b": torch.arange(4.0)}


def assert_state(state):
    assert set(state) == set(STATE) and all(torch.equal(state[k], v) for k, v in STATE.items())


def test_reads_safetensors_files_and_folders(tmp_path):
    save_file(STATE, str(tmp_path / "model.safetensors"))
    assert_state(read_state_dict(tmp_path / "model.safetensors"))
    assert_state(read_state_dict(tmp_path))
    (tmp_path / "model.safetensors").rename(tmp_path / "weights.bin")  # found by its header, not its name
    assert_state(read_state_dict(tmp_path / "weights.bin"))


def test_reads_weights_only_pickles_nested_and_ddp_prefixed(tmp_path):
    torch.save(STATE, tmp_path / "pytorch_model.bin")
    assert_state(read_state_dict(tmp_path))
    for i, nest in enumerate(("state_dict", "model", "model_state_dict", "module")):
        path = tmp_path / f"ckpt{i}.pth"
        torch.save({"epoch": 3, nest: {f"module.{k}": v for k, v in STATE.items()}, "optimizer": {}}, path)
        assert_state(read_state_dict(path))


def test_reads_hf_shards(tmp_path):
    save_file({"a.weight": STATE["a.weight"]}, str(tmp_path / "model-00001-of-00002.safetensors"))
    save_file({"b": STATE["b"]}, str(tmp_path / "model-00002-of-00002.safetensors"))
    index = {"weight_map": {"a.weight": "model-00001-of-00002.safetensors",
                            "b": "model-00002-of-00002.safetensors"}}
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps(index))
    assert weights_file(tmp_path).name == "model.safetensors.index.json"
    assert_state(read_state_dict(tmp_path))


class _RunsCode:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_bad_files_are_one_line_errors_naming_the_file(tmp_path, capsys):
    save_file(STATE, str(tmp_path / "good.safetensors"))
    cases = {
        "truncated.safetensors": (tmp_path / "good.safetensors").read_bytes()[:-10],
        "garbage.bin": b"not a checkpoint at all" * 10,
        "evil.pth": pickle.dumps({"state_dict": _RunsCode()}, protocol=2),
    }
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(WeightsError, match=name) as info:
            read_state_dict(tmp_path / name)
        assert "\n" not in str(info.value)
    assert "must never run" not in capsys.readouterr().out
    torch.save({"step": 3}, tmp_path / "nothing.pt")
    with pytest.raises(WeightsError, match="entry 'step' is not a tensor"):
        read_state_dict(tmp_path / "nothing.pt")
    (tmp_path / "empty").mkdir()
    with pytest.raises(WeightsError, match="empty: no weights in this folder"):
        read_state_dict(tmp_path / "empty")
    with pytest.raises(WeightsError, match="absent.pt: does not exist"):
        read_state_dict(tmp_path / "absent.pt")
    (tmp_path / "model.safetensors.index.json").write_text("{}")
    with pytest.raises(WeightsError, match="not a valid index"):
        read_state_dict(tmp_path)


def test_read_json(tmp_path):
    path = tmp_path / "config.json"
    with pytest.raises(WeightsError, match="config.json: not found; expected a GPT-2 config here"):
        read_json(path, "GPT-2")
    path.write_text("{not json")
    with pytest.raises(WeightsError, match="config.json: not valid JSON"):
        read_json(path, "GPT-2")
    path.write_text("[1]")
    with pytest.raises(WeightsError, match="not a JSON object; expected a T5 config"):
        read_json(path, "T5")
    path.write_text('{"d_model": 8}')
    assert read_json(path, "T5") == {"d_model": 8}
