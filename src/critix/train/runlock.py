"""One process trains a run folder at a time: an exclusive lock on `RUN_DIR/.run.lock` while a run trains.

Without it, a second `critix train --resume` (or a second `critix bench` of the same suite) on a folder that is
still training would interleave checkpoints and metrics rows with the first, and the folder would silently hold
neither run. With it, the second process stops at once with who holds the folder. The lock is `flock` on an open
file, so the operating system drops it when its process ends, however it ends (`kill -9` included): a lock file
left behind never blocks a resume. The file records the holder (pid, host, start time) for the error message
and for `critix bench`'s report; it is JSON text, like every file critix writes. Where the OS has no `flock`
(Windows), folders are not locked.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from critix.types import CritixError

try:
    import fcntl
except ImportError:  # Windows: no flock
    fcntl = None  # type: ignore[assignment]

LOCK_FILE = ".run.lock"


@contextlib.contextmanager
def locked(path: Path, wait_seconds: float, busy: Callable[[], str]) -> Iterator[int]:
    """Hold an exclusive lock on `path` (yields its file descriptor); wait up to `wait_seconds` for another holder
    to let go, else raise CritixError(busy())."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        if fcntl is None:
            yield fd
            return
        deadline = time.monotonic() + wait_seconds
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise CritixError(busy()) from None
                time.sleep(0.5)
        yield fd
    finally:
        os.close(fd)  # releases the lock unless a child process still holds the descriptor


def holder(run_dir: Path) -> str | None:
    """Who is training `run_dir` now ("pid 123 on host, since 2026-11-22 03:23 UTC"), or None if no process is."""
    path = run_dir / LOCK_FILE
    if fcntl is None:
        return None
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return _describe(path)
    finally:
        os.close(fd)  # also drops the shared lock taken to test
    return None


def _describe(path: Path) -> str:
    try:
        info = json.loads(path.read_text())
        return f"pid {int(info['pid'])} on {info['host']}, since {info['since']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "a process that has not recorded itself yet"


@contextlib.contextmanager
def claim(run_dir: Path) -> Iterator[Path]:
    """Create `run_dir` and hold its lock while the block runs (yields `run_dir`); CritixError naming the holder
    when another process is training it."""

    def busy() -> str:
        return (f"{run_dir} is being trained by another process ({_describe(run_dir / LOCK_FILE)}): wait for it to "
                f"finish or stop it, then resume; or train into another --run-dir")

    run_dir.mkdir(parents=True, exist_ok=True)
    # A short wait, not none: `holder` probes the lock for an instant, and a run starting then must not fail.
    with locked(run_dir / LOCK_FILE, 2.0, busy) as fd:
        since = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        record = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "since": since}).encode()
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, record)
        yield run_dir
