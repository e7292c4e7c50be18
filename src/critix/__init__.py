"""critix: fast, tested actor-critic and value-based deep RL on JAX.

`critix.load(RUN_DIR)` returns the trained `critix.Policy` of a run folder (`critix.policy`); both resolve on first
use, so `import critix` stays light (no JAX until then).
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version
from typing import Any

try:
    __version__ = version("critix")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.1.0"

LAZY = {"load": "critix.policy", "Policy": "critix.policy"}
"""Public names of the package that live in a module above it (docs/architecture.md, "Layers"): imported on use."""

__all__ = ["Policy", "__version__", "load"]


def __getattr__(name: str) -> Any:
    if name in LAZY:
        return getattr(importlib.import_module(LAZY[name]), name)
    raise AttributeError(f"module 'critix' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(LAZY))
