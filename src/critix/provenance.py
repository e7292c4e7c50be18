"""Where a result came from: the critix source commit this process loaded.

Every summary.json records it as `critix_commit`, and suite reports list the commits their runs trained at, so
a table that mixes runs from several commits says so. The commit is read once, when this module is first
imported (a process loads critix's code at its start), so a long run whose checkout moves on while it trains
still reports the code it ran.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

UNKNOWN = "unknown"


def _read_commit() -> str:
    """Short git commit of the checkout this file is tracked in, with " (uncommitted changes)" when a tracked
    file differs from it; "unknown" when critix is not running from a git checkout (e.g. installed from a wheel)."""
    here = Path(__file__).resolve()

    def git(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["git", "-C", str(here.parent), *args], capture_output=True, text=True, timeout=10)

    try:
        if git("ls-files", "--error-unmatch", here.name).returncode != 0:  # not a tracked source file
            return UNKNOWN
        head = git("rev-parse", "--short", "HEAD").stdout.strip()
        dirty = git("status", "--porcelain", "--untracked-files=no").stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return UNKNOWN
    if not head:
        return UNKNOWN
    return head + (" (uncommitted changes)" if dirty else "")


_COMMIT = _read_commit()


def source_commit() -> str:
    """The commit of the critix source this process loaded (see the module docstring)."""
    return _COMMIT
