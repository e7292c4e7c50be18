"""Compile caches of the speed benchmarks: every critix run and every JAX peer run (SBX, rejax) is given its cache
folder explicitly, so that no figure depends on what earlier runs left in ~/.cache.

- `cold` (default): a fresh, empty folder for every run: the first run of a configuration on a machine, everything
  compiled (what the figures before the compile cache measured).
- `warm`: one folder per side (critix, SBX, rejax ...) kept for the whole benchmark and filled by one untimed run
  of that side before the timed ones: a later run of the same configuration. SBX and rejax get JAX's own persistent
  cache (JAX_COMPILATION_CACHE_DIR, every program cached) so both sides load rather than compile; SB3 compiles
  nothing.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

CHOICES = ("cold", "warm")


class Caches:
    def __init__(self, mode: str) -> None:
        if mode not in CHOICES:
            raise SystemExit(f"--compile-cache must be one of {', '.join(CHOICES)}, got {mode!r}")
        self.mode = mode
        self.root = Path(tempfile.mkdtemp(prefix="critix-bench-caches-"))
        self.warmed: set[str] = set()
        atexit.register(shutil.rmtree, self.root, True)

    def environ(self, side: str, base: dict[str, str] | None = None) -> dict[str, str]:
        """The environment of one run of `side`: its cache folder, for critix and for JAX itself."""
        environ = dict(os.environ if base is None else base)
        if self.mode == "warm":
            folder = self.root / side
            folder.mkdir(exist_ok=True)
        else:
            folder = Path(tempfile.mkdtemp(prefix=f"{side}-", dir=self.root))
        environ["CRITIX_COMPILE_CACHE"] = str(folder)
        environ["JAX_COMPILATION_CACHE_DIR"] = str(folder)
        environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
        environ["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"] = "0"
        return environ

    def warm(self, side: str, run: Callable[[], Any]) -> None:
        """With `warm`, run `side` once (untimed, its result dropped) before its first timed run; else nothing."""
        if self.mode == "warm" and side not in self.warmed:
            print(f"warming the compile cache of {side} (untimed run)", flush=True)
            run()
            self.warmed.add(side)
