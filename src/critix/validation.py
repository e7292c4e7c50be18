"""Input checks shared by every config: field types, finite numbers, and resources a run would need.

Configs call `check_types` first in `__post_init__`, so a wrong type (a string for `gamma`, `True` for
`batch_size`, NaN for a learning rate) gets one message naming the field, before any range check compares it;
`check_range` then checks numeric fields against a range written as the message shows it ('in (0, 1]', '>= 1').
"""

from __future__ import annotations

import dataclasses
import math
import os
import types
import typing
from typing import Any

from critix.types import CritixError


def _describe(hint: Any) -> str:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in args)
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return "a tuple of " + {int: "integers", float: "finite numbers", str: "strings"}.get(args[0], "values")
        return "a tuple"
    if hint is type(None):
        return "None"
    if hint is float:
        return "a finite number"
    if hint is int:
        return "an integer"
    if hint is bool:
        return "true or false"
    if hint is str:
        return "a string"
    return getattr(hint, "__name__", str(hint))


def _matches(value: Any, hint: Any) -> bool:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Literal:
        return any(value == a and type(value) is type(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, a) for a in args)
    if origin is tuple:
        if not isinstance(value, tuple):
            return False
        if len(args) == 2 and args[1] is Ellipsis:
            return all(_matches(v, args[0]) for v in value)
        return len(args) == len(value) and all(_matches(v, a) for v, a in zip(value, args, strict=True))
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if hint is str:
        return isinstance(value, str)
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):  # a nested config (e.g. value_head)
        return isinstance(value, hint)
    return True  # other annotations are checked by the config itself


def check_types(cfg: Any) -> None:
    """Every field of the dataclass `cfg` matches its annotation (floats finite); raises ValueError naming it."""
    hints = typing.get_type_hints(type(cfg))
    for field in dataclasses.fields(cfg):
        value = getattr(cfg, field.name)
        if not _matches(value, hints[field.name]):
            raise ValueError(f"{field.name} must be {_describe(hints[field.name])}, got {value!r} "
                             f"({type(value).__name__})")


def within(value: float, valid: str) -> bool:
    """Whether `value` lies in the range `valid` names: '>= a', '> a', or an interval 'in [a, b]' (closed),
    'in (a, b]', 'in [a, b)', 'in (a, b)'. A note after the range ('>= 0 (0: whole rollout)') is for the
    message only."""
    bounds = valid.removeprefix("in ").split(" (")[0]
    if bounds.startswith(">="):
        return value >= float(bounds[2:])
    if bounds.startswith(">"):
        return value > float(bounds[1:])
    low, high = (float(bound) for bound in bounds[1:-1].split(","))
    above = value >= low if bounds[0] == "[" else value > low
    below = value <= high if bounds[-1] == "]" else value < high
    return above and below


def check_range(cfg: Any, valid: str, *names: str) -> None:
    """Each field `names` of `cfg` lies in the range `valid` (see `within`); raises ValueError naming the first
    that does not, its valid range and its value."""
    for name in names:
        value = getattr(cfg, name)
        if not within(value, valid):
            raise ValueError(f"{name} must be {valid}, got {value!r}")


def physical_memory_bytes() -> int | None:
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return None


def check_buffer_memory(capacity: int, bytes_per_item: int, num_seeds: int, fraction: float = 0.8) -> None:
    """Fail before allocating replay buffers that cannot fit in this machine's memory."""
    need = capacity * bytes_per_item * num_seeds
    have = physical_memory_bytes()
    if have is not None and need > fraction * have:
        raise CritixError(
            f"the replay buffers need {need / 2**30:.1f} GiB ({capacity} transitions x {bytes_per_item} bytes x "
            f"{num_seeds} seeds), more than this machine's {have / 2**30:.1f} GiB; lower --buffer-size or --num-seeds"
        )
