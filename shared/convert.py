"""The one way a foreign checkpoint becomes a zoo state dict: a key table applied by `convert_state`.

A table maps source-name patterns to zoo names. In a pattern, "{}" stands for a layer index (digits); the
target uses the same "{}" placeholders, filled in the same order:

    {"h.{}.ln_1.weight": "decoder.stack.blocks.{}.attn_norm.weight",
     "h.{}.attn.c_attn.weight": split("...q_proj.weight", "...k_proj.weight", "...v_proj.weight", dim=-1)}

A target is a zoo name (the tensor is renamed) or a Step, a small callable that turns one source tensor into
zoo tensors: `split` a fused tensor, `transpose` a weight stored (in, out), `concat` several source tensors into
one, `apply` any other per-tensor change, `drop` a known tensor that zoo has no place for. Every source key
must match exactly one pattern (or an `ignore` regex), and with `expected` every zoo key must be produced:
anything else is one WeightsError, worded by `mismatch_error` for every converter alike.
"""

import abc
import dataclasses
import functools
import re
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence

import torch
from torch import Tensor, nn

from shared.errors import WeightsError


class Step(abc.ABC):
    """One source tensor -> zoo tensors. `names` are the zoo-name templates it writes ("{}" placeholders)."""

    names: tuple[str, ...]

    @abc.abstractmethod
    def __call__(self, tensor: Tensor, groups: tuple[str, ...]) -> dict[str, Tensor]:
        """The zoo tensors made from `tensor`, whose source key matched the layer indices `groups`."""

    def prefixed(self, prefix: str) -> "Step":
        """The same step writing under `prefix` (how one table serves inside a larger model)."""
        return dataclasses.replace(self, names=tuple(prefix + name for name in self.names))


def _fill(name: str, groups: tuple[str, ...]) -> str:
    return name.format(*groups) if groups else name


def _transposed(tensor: Tensor) -> Tensor:
    # a 1-D tensor (a bias) passes unchanged, so one step serves both parameters of a Conv1D layer
    return tensor.t().contiguous() if tensor.dim() == 2 else tensor


@dataclasses.dataclass(frozen=True)
class _Split(Step):
    names: tuple[str, ...]
    dim: int
    sizes: tuple[int, ...] | None
    transpose: bool

    def __call__(self, tensor, groups):
        length = tensor.shape[self.dim] if tensor.dim() else 0
        sizes = self.sizes
        if sizes is None:
            if length % len(self.names):
                raise ValueError(f"cannot split dimension {self.dim} into {len(self.names)} equal parts")
            sizes = (length // len(self.names),) * len(self.names)
        if sum(sizes) != length:
            raise ValueError(f"expected a size of {sum(sizes)} in dimension {self.dim}")
        parts = tensor.split(list(sizes), dim=self.dim)
        return {_fill(n, groups): _transposed(p) if self.transpose else p.contiguous()
                for n, p in zip(self.names, parts)}


@dataclasses.dataclass(frozen=True)
class _Apply(Step):
    names: tuple[str, ...]
    fn: Callable[[Tensor], Tensor]

    def __call__(self, tensor, groups):
        return {_fill(self.names[0], groups): self.fn(tensor)}


@dataclasses.dataclass(frozen=True)
class _Part:
    """One of `count` source tensors concatenated along `dim` into one zoo tensor (see `concat`)."""

    index: int
    count: int
    dim: int
    tensor: Tensor


@dataclasses.dataclass(frozen=True)
class _Concat(Step):
    names: tuple[str, ...]
    index: int
    count: int
    dim: int

    def __call__(self, tensor, groups):
        return {_fill(self.names[0], groups): _Part(self.index, self.count, self.dim, tensor)}


def split(*names: str, dim: int = 0, sizes: Sequence[int] | None = None, transpose: bool = False) -> Step:
    """One fused tensor -> one zoo tensor per name, in order: equal chunks along `dim`, or the given sizes.

    transpose=True also transposes each 2-D part (a fused Conv1D weight stored (in, out)).
    """
    return _Split(tuple(names), dim, None if sizes is None else tuple(sizes), transpose)


def transpose(name: str) -> Step:
    """A 2-D weight stored (in, out) -> (out, in), contiguous; a 1-D tensor is only renamed."""
    return _Apply((name,), _transposed)


def apply(name: str, fn: Callable[[Tensor], Tensor]) -> Step:
    """Any other per-tensor change (a reshape, a cast) on the way to the zoo name."""
    return _Apply((name,), fn)


def concat(name: str, index: int, count: int, dim: int = 0) -> Step:
    """This source tensor is part `index` of `count` that are concatenated along `dim` into one zoo tensor."""
    return _Concat((name,), index, count, dim)


@dataclasses.dataclass(frozen=True)
class _Drop(Step):
    names: tuple[str, ...] = ()

    def __call__(self, tensor, groups):
        return {}


def drop() -> Step:
    """A known source tensor that zoo keeps no copy of (a tied alias, a head the task has no module for)."""
    return _Drop()


def linear(src: str, dst: str | Callable[[str], Step]) -> dict:
    """Table entries for both parameters of a layer: "src.weight" and "src.bias".

    `dst` is the zoo layer name (".weight"/".bias" appended) or a factory called with "weight" or "bias"
    that returns the Step for that parameter.
    """
    if isinstance(dst, str):
        return {f"{src}.{p}": f"{dst}.{p}" for p in ("weight", "bias")}
    return {f"{src}.{p}": dst(p) for p in ("weight", "bias")}


def prefixed(table: Mapping[str, str | Step], src: str, dst: str) -> dict:
    """The same table for a model nested under new names: `src` before every pattern, `dst` before every
    target (how the captioner reuses the ViT and GPT-2 tables)."""
    return {src + pattern: dst + target if isinstance(target, str) else target.prefixed(dst)
            for pattern, target in table.items()}


@functools.lru_cache(maxsize=4096)
def _compile(pattern: str) -> re.Pattern:
    return re.compile(re.escape(pattern).replace(r"\{\}", r"(\d+)"))


def _targets(target: str | Step) -> tuple[str, ...]:
    return (target,) if isinstance(target, str) else target.names


def mismatch_error(source: str, *, missing: Sequence[str] = (), unexpected: Sequence[str] = (),
                   hint: str = "", checkpoint_name: str = "") -> WeightsError:
    """THE one message for weights that do not fit a model, e.g.
    "model.bin: missing weight 'x', named 'y' in the checkpoint (3 missing in all); <hint>".

    checkpoint_name is the source's name of the first missing weight, when the table knows it.
    """
    parts = []
    if missing:
        named = f", named {checkpoint_name!r} in the checkpoint" if checkpoint_name else ""
        parts.append(f"missing weight {missing[0]!r}{named} ({len(missing)} missing in all)")
    if unexpected:
        parts.append(f"unexpected weight {unexpected[0]!r} ({len(unexpected)} unexpected in all)")
    return WeightsError(f"{source}: {', '.join(parts)}" + (f"; {hint}" if hint else ""))


def _source_name(zoo_key: str, table: Mapping[str, str | Step]) -> str:
    """The source name a table would have read `zoo_key` from, or "" when no entry writes it."""
    for pattern, target in table.items():
        for name in _targets(target):
            found = _compile(name).fullmatch(zoo_key)
            if found:
                return _fill(pattern, found.groups())
    return ""


def _join(parts: list[_Part]) -> Tensor | None:
    """The concatenation of a complete set of parts, or None when some are missing."""
    by_index = {part.index: part.tensor for part in parts}
    count = parts[0].count
    if sorted(by_index) != list(range(count)):
        return None
    return torch.cat([by_index[i] for i in range(count)], dim=parts[0].dim)


def _match(state: Mapping[str, Tensor], table: Mapping[str, str | Step], ignore: Iterable[str], source: str,
           hint: str) -> list[tuple[str, str | Step, tuple[str, ...]]]:
    """(source key, target, layer indices) for every key, in table order, whatever order the file keeps its
    keys in, so the first error reported is always the same one. Unknown keys raise mismatch_error."""
    patterns = [(_compile(pattern), target) for pattern, target in table.items()]
    ignored = [re.compile(regex) for regex in ignore]
    matched, unknown = [], []
    for key in state:
        found = [(i, m) for i, (regex, _) in enumerate(patterns) if (m := regex.fullmatch(key))]
        if len(found) > 1:
            raise WeightsError(f"{source}: weight {key!r} matches {len(found)} entries of the key table")
        if found:
            i, m = found[0]
            matched.append(((i, tuple(map(int, m.groups()))), key, patterns[i][1], m.groups()))
        elif not any(regex.fullmatch(key) for regex in ignored):
            unknown.append(key)
    if unknown:
        raise mismatch_error(source, unexpected=unknown, hint=hint)
    return [entry[1:] for entry in sorted(matched, key=lambda entry: entry[0])]


def convert_state(state: Mapping[str, Tensor], table: Mapping[str, str | Step], *, source: str,
                  expected: Collection[str] | None = None, ignore: Iterable[str] = (),
                  optional: Collection[str] = (), hint: str = "") -> dict[str, Tensor]:
    """Apply a key table to a foreign state dict; every mismatch is one WeightsError.

    Source keys must match exactly one table pattern or an `ignore` regex. With `expected` (the zoo model's
    state-dict keys), every expected key not produced and not in `optional` is missing, and every produced
    key not expected is unexpected (named by its source key). `hint` ends the message of a mismatch.
    """
    out: dict[str, Tensor] = {}
    origin: dict[str, str] = {}  # zoo key -> the source key it came from
    parts: dict[str, list[_Part]] = {}
    for key, target, groups in _match(state, table, ignore, source, hint):
        tensor = state[key]
        try:
            produced = {_fill(target, groups): tensor} if isinstance(target, str) else target(tensor, groups)
        except (ValueError, RuntimeError) as err:
            raise WeightsError(f"{source}: {key} has shape {tuple(tensor.shape)}, {err}") from None
        for name, value in produced.items():
            if isinstance(value, _Part):
                parts.setdefault(name, []).append(value)
            elif name in out:
                raise WeightsError(f"{source}: {origin[name]!r} and {key!r} both map to {name!r}")
            else:
                out[name] = value
            origin.setdefault(name, key)
    incomplete = []
    for name, pieces in parts.items():
        joined = _join(pieces)
        if joined is None:
            incomplete.append(name)
        else:
            out[name] = joined
    if expected is not None:
        check_keys(out, expected, source=source, optional=optional, hint=hint, table=table, origin=origin)
    elif incomplete:
        raise mismatch_error(source, missing=incomplete, hint=hint)
    return out


def check_keys(state: Collection[str], expected: Collection[str], *, source: str,
               optional: Collection[str] = (), hint: str = "", table: Mapping[str, str | Step] = {},
               origin: Mapping[str, str] = {}) -> None:
    """Raise mismatch_error unless `state` has every expected key (but the optional ones) and no other.

    With the table that made `state`, a missing weight is also named as the checkpoint would name it; with
    `origin` (zoo key -> source key), an unexpected one is named by its source key.
    """
    wanted = set(expected)
    missing = [k for k in expected if k not in state and k not in optional]
    unexpected = [origin.get(k, k) for k in state if k not in wanted]
    if missing or unexpected:
        checkpoint_name = _source_name(missing[0], table) if missing else ""
        raise mismatch_error(source, missing=missing, unexpected=unexpected, hint=hint,
                             checkpoint_name=checkpoint_name)


def require_equal(state: Mapping[str, Tensor], name: str, twin: str, *, source: str, why: str) -> None:
    """A tensor the checkpoint stores twice (a tied head) must equal its twin; zoo keeps one copy."""
    if name in state and twin in state and not torch.equal(state[name], state[twin]):
        raise WeightsError(f"{source}: {name} differs from {twin}; {why}")


def model_keys(build: Callable[[object], nn.Module], config) -> tuple[str, ...]:
    """The state-dict keys of `build(config)` (a model class and its config): a table's `expected`."""
    with torch.device("meta"):  # only the names: no memory, no initialisation time
        return tuple(build(config).state_dict())
