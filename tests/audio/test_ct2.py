"""The CTranslate2 model.bin reader: the real tiny.en file, and synthetic files written here byte by byte."""

import random
import struct

import numpy as np
import pytest
import torch

from audio.ct2 import WeightsFormatError, load_ct2_variables, read_ct2

# ------------------------------------------------------------------------------------ a test-side writer
# Written independently of the reader from the layout in the facts file, so a shared misreading would
# have to be made twice.

_DTYPE_IDS = {"float32": 0, "int8": 1, "int16": 2, "int32": 3, "float16": 4}


def _string(text: str) -> bytes:
    raw = text.encode() + b"\0"
    return struct.pack("<H", len(raw)) + raw


def _variable(name: str, array: np.ndarray, dtype_id: int | None = None) -> bytes:
    data = np.ascontiguousarray(array).astype(array.dtype.newbyteorder("<")).tobytes()
    dtype_id = _DTYPE_IDS[array.dtype.name] if dtype_id is None else dtype_id
    return (
        _string(name)
        + struct.pack("<B", array.ndim)
        + struct.pack(f"<{array.ndim}I", *array.shape)
        + struct.pack("<BI", dtype_id, len(data))
        + data
    )


def _file(variables: list[bytes], aliases=(), version=6, spec="WhisperSpec", revision=3) -> bytes:
    out = struct.pack("<I", version) + _string(spec) + struct.pack("<II", revision, len(variables))
    out += b"".join(variables) + struct.pack("<I", len(aliases))
    for alias, target in aliases:
        out += _string(alias) + _string(target)
    return out


def _tiny_arrays() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "encoder/conv1/weight": rng.standard_normal((4, 3, 3)).astype(np.float16),
        "encoder/layer_0/ffn/linear_0/bias": rng.standard_normal(5).astype(np.float32),
        "decoder/embeddings/weight": rng.standard_normal((6, 2)).astype(np.float16),
        "decoder/num_heads": np.array(6, dtype=np.int16),
        "decoder/activation": np.array(3, dtype=np.int8),
        "some/int32": np.arange(-3, 3, dtype=np.int32).reshape(2, 3),
        "empty": np.zeros((0, 4), dtype=np.float32),
    }


def _tiny_file() -> bytes:
    variables = [_variable(k, v) for k, v in _tiny_arrays().items()]
    return _file(variables, aliases=[("decoder/projection/weight", "decoder/embeddings/weight")])


def _write(tmp_path, data: bytes, name="model.bin"):
    path = tmp_path / name
    path.write_bytes(data)
    return path


# ------------------------------------------------------------------------------------ the real file


def test_real_tiny_en_file(ct2_dir):
    model = read_ct2(ct2_dir / "model.bin")
    assert (model.binary_version, model.spec_name, model.spec_revision) == (6, "WhisperSpec", 3)
    assert len(model.variables) == 148
    assert model.aliases == {"decoder/projection/weight": "decoder/embeddings/weight"}
    v = model.variables
    shapes = {
        "encoder/conv1/weight": (384, 80, 3),
        "encoder/conv2/weight": (384, 384, 3),
        "encoder/position_encodings/encodings": (1500, 384),
        "encoder/layer_3/self_attention/linear_0/weight": (1152, 384),
        "encoder/layer_0/ffn/linear_0/weight": (1536, 384),
        "encoder/layer_0/ffn/linear_1/weight": (384, 1536),
        "encoder/layer_norm/gamma": (384,),
        "decoder/embeddings/weight": (51864, 384),
        "decoder/position_encodings/encodings": (448, 384),
        "decoder/layer_0/self_attention/linear_0/weight": (1152, 384),
        "decoder/layer_2/attention/linear_0/weight": (384, 384),
        "decoder/layer_2/attention/linear_1/weight": (768, 384),
        "decoder/layer_2/attention/linear_2/weight": (384, 384),
        "decoder/layer_norm/beta": (384,),
    }
    for name, shape in shapes.items():
        assert tuple(v[name].shape) == shape and v[name].dtype == torch.float16, name
    assert sum(1 for n in v if n.startswith("encoder/layer_") and n.endswith("linear_0/weight")) == 8
    assert int(v["encoder/num_heads"]) == 6 and v["encoder/num_heads"].dtype == torch.int16
    assert int(v["decoder/num_heads"]) == 6 and int(v["decoder/activation"]) == 3
    assert int(v["decoder/pre_norm"]) == 1 and int(v["decoder/scale_embeddings"]) == 0
    assert not any(n.endswith("weight_scale") for n in v)
    # fused [q; k; v]: the key rows of the bias are zero, the others are not
    bias = v["encoder/layer_0/self_attention/linear_0/bias"]
    assert torch.all(bias[384:768] == 0) and bias[:384].abs().sum() > 0 and bias[768:].abs().sum() > 0
    # Whisper's sinusoids, rounded to fp16
    pos = v["encoder/position_encodings/encodings"].float()
    increment = np.log(10000) / (384 // 2 - 1)
    scaled = torch.arange(1500)[:, None] * torch.exp(-increment * torch.arange(384 // 2))[None, :]
    torch.testing.assert_close(pos, torch.cat([scaled.sin(), scaled.cos()], dim=1), atol=5e-4, rtol=0)

    resolved = load_ct2_variables(ct2_dir)  # a folder works too
    assert len(resolved) == 149
    assert resolved["decoder/projection/weight"] is resolved["decoder/embeddings/weight"]


# ------------------------------------------------------------------------------------ synthetic files


def test_tiny_file_round_trip(tmp_path):
    model = read_ct2(_write(tmp_path, _tiny_file()))
    assert model.spec_name == "WhisperSpec" and model.spec_revision == 3
    expected = _tiny_arrays()
    assert list(model.variables) == list(expected)
    for name, array in expected.items():
        tensor = model.variables[name]
        assert tensor.dtype == getattr(torch, array.dtype.name) and tuple(tensor.shape) == array.shape
        np.testing.assert_array_equal(tensor.numpy(), array)
    resolved = model.resolved()
    assert resolved["decoder/projection/weight"] is resolved["decoder/embeddings/weight"]


def test_bfloat16_round_trip(tmp_path):
    values = torch.tensor([1.0, -2.5, 3.0e38, 1e-3], dtype=torch.bfloat16)
    raw = values.view(torch.int16).numpy()
    model = read_ct2(_write(tmp_path, _file([_variable("x", raw, dtype_id=5)])))
    assert model.variables["x"].dtype == torch.bfloat16
    assert torch.equal(model.variables["x"], values)


def _error(tmp_path, data: bytes, match: str, name="model.bin") -> str:
    path = _write(tmp_path, data, name)
    with pytest.raises(WeightsFormatError, match=match) as info:
        read_ct2(path)
    message = str(info.value)
    assert str(path) in message and "\n" not in message
    return message


def test_truncated_at_every_offset(tmp_path):
    data = _tiny_file()
    path = tmp_path / "model.bin"
    for end in range(len(data)):
        path.write_bytes(data[:end])
        with pytest.raises(WeightsFormatError, match="remain|cannot fit") as info:
            read_ct2(path)
        assert str(path) in str(info.value), end


def test_truncated_real_file_names_the_variable(tmp_path, ct2_dir):
    data = (ct2_dir / "model.bin").read_bytes()
    message = _error(tmp_path, data[: len(data) // 2], "remain")
    assert "variable #" in message and "tensor data needs" in message


def test_header_errors(tmp_path):
    good = _tiny_file()
    _error(tmp_path, b"", "binary version needs 4 bytes")
    _error(tmp_path, struct.pack("<I", 5) + good[4:], "binary version 5 is not supported")
    _error(tmp_path, struct.pack("<I", 7) + good[4:], "binary version 7")
    _error(tmp_path, b"PK\x03\x04" + good[4:], "binary version")  # e.g. a torch .pt zip
    _error(tmp_path, _file([], spec="Whisper\nSpec"), "control characters")
    # a count of variables far beyond the bytes present is refused before any loop runs
    assert good[22:26] == struct.pack("<I", 7)  # after 4 version + (2 + 12) spec + 4 revision
    huge_count = good[:22] + struct.pack("<I", 0xFFFFFFFF) + good[26:]
    _error(tmp_path, huge_count, "variable count 4294967295 cannot fit")


def test_bad_variables_name_the_variable(tmp_path):
    ok = _variable("first/ok", np.ones(2, np.float32))

    def bad(var: bytes, match: str) -> str:
        message = _error(tmp_path, _file([ok, var]), match)
        assert "variable #1" in message
        return message

    arr = np.ones((2, 3), np.float32)
    name = _string("second/bad")
    assert "'second/bad'" in bad(_variable("second/bad", arr, dtype_id=9), "unknown dtype id 9")
    bad(name + struct.pack("<B", 200) + b"\0" * 64, "rank 200 is absurd")
    # byte count disagreeing with shape x dtype
    bad(name + struct.pack("<B2IBI", 2, 2, 3, 0, 20) + b"\0" * 20, "byte count 20 does not match")
    # absurd dims, whose product would overflow int64
    bad(name + struct.pack("<B2IBI", 2, 0xFFFFFFFF, 0xFFFFFFFF, 0, 0xFFFFFFFF), "dimension beyond")
    bad(name + struct.pack("<B3IBI", 3, 1 << 30, 1 << 30, 1 << 30, 0, 0xFFFFFFFF), "does not match")
    bad(name + struct.pack("<B1IBI", 1, 1 << 28, 0, 1 << 30), "tensor data needs 1073741824 bytes")
    # string length running past the end, missing NUL, bad UTF-8, empty string
    message = bad(struct.pack("<H", 60000) + b"x" * 10, "length|name needs 60000 bytes")
    assert "after 'first/ok'" in message
    bad(struct.pack("<H", 3) + b"abc" + b"\0" * 20, "not a NUL-terminated string")
    bad(struct.pack("<H", 3) + b"\xff\xfe\0" + b"\0" * 20, "not valid UTF-8")
    bad(struct.pack("<H", 0) + b"\0" * 20, "length 0")
    _error(tmp_path, _file([ok, ok]), "'first/ok': duplicate variable name")


def test_alias_and_trailing_errors(tmp_path):
    var = _variable("w", np.ones(2, np.float32))
    _error(tmp_path, _file([var], aliases=[("p", "missing")]), "alias target is not a variable")
    _error(tmp_path, _file([var], aliases=[("w", "w")]), "collides")
    _error(tmp_path, _file([var]) + b"\0garbage", "8 unexpected trailing bytes")
    _error(tmp_path, _file([var])[:-4], "alias count needs 4 bytes")
    huge = _file([var])[:-4] + struct.pack("<I", 1 << 30)
    _error(tmp_path, huge, "alias count 1073741824 cannot fit")


def test_random_corruption_never_crashes(tmp_path):
    """Flipped bytes either still parse (e.g. inside tensor data) or give a WeightsFormatError."""
    data = bytearray(_tiny_file())
    path = tmp_path / "model.bin"
    rng = random.Random(0)
    failures = 0
    for _ in range(400):
        corrupt = bytearray(data)
        for _ in range(rng.randint(1, 3)):
            corrupt[rng.randrange(len(corrupt))] = rng.randrange(256)
        path.write_bytes(bytes(corrupt))
        try:
            read_ct2(path)
        except WeightsFormatError as err:
            failures += 1
            assert str(path) in str(err)
    assert failures > 100  # most flips land in the structure of this small file


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.bin"):
        read_ct2(tmp_path / "nope.bin")
    with pytest.raises(FileNotFoundError, match="model.bin"):
        read_ct2(tmp_path)  # a folder without model.bin
