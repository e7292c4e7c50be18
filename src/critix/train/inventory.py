"""The run folders in a folder and how far each got (`critix runs`), for the user who started twenty runs yesterday.

A folder is a run folder if it holds any file a run writes (config.json, metrics.csv, summary.json, checkpoints/,
.run.lock). Its status:
- training now: a live process holds its lock (`critix.train.runlock.holder`; the OS drops the lock when the
  process ends, however it ends);
- broken: config.json is missing or malformed (or summary.json is), with the reason;
- finished: summary.json is there and no checkpoint is newer than it;
- stopped: none of these (killed, interrupted, or failed): `critix train ALGO --resume RUN_DIR` continues it.
Nothing here raises on a malformed folder: what cannot be read is reported as the reason.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime
import json
import math
from pathlib import Path
from typing import Any

from critix.train import checkpoint, runlock
from critix.train.config import load_run_config, read_config_json
from critix.types import CritixError

RUN_FILES = ("config.json", "metrics.csv", "summary.json", "checkpoints", runlock.LOCK_FILE)
MAX_DEPTH = 3
"""How deep below the folder given to look for run folders (a sweep's trials/<id>/ is two levels down)."""
STATUSES = ("training now", "stopped", "finished", "broken")


@dataclasses.dataclass
class RunInfo:
    """One row of `critix runs`. Times are seconds (wall) and ISO 8601 local time (started)."""

    path: str
    status: str
    algo: str | None = None
    env: str | None = None
    """The env id, or for an offline run its dataset ("dataset NAME")."""
    num_seeds: int | None = None
    steps_done: int | None = None
    steps_planned: int | None = None
    final_return: float | None = None
    """Mean over seeds: the final evaluation (summary.json), else the last evaluation in metrics.csv."""
    return_source: str | None = None
    """"summary" or "last eval"."""
    wall_seconds: float | None = None
    started: str | None = None
    note: str | None = None
    """Why a run is broken, who trains it now, or where a resume of a stopped run continues from."""


def is_run_folder(path: Path) -> bool:
    return any((path / name).exists() for name in RUN_FILES)


def find_run_folders(root: Path, depth: int = MAX_DEPTH) -> list[Path]:
    """Run folders at or below `root` (never inside a run folder), up to `depth` levels down."""
    if is_run_folder(root):
        return [root]
    if depth == 0:
        return []
    found: list[Path] = []
    try:
        children = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    except OSError:
        return []
    for child in children:
        found.extend(find_run_folders(child, depth - 1))
    return found


def scan(root: Path) -> list[RunInfo]:
    """Every run folder in `root`, oldest start first; CritixError only if `root` is not a folder."""
    root = Path(root)
    if not root.is_dir():
        raise CritixError(f"{root} is not a folder; give the folder your run folders are in (default ./runs)")
    infos = [inspect(path, root) for path in find_run_folders(root)]
    return sorted(infos, key=lambda i: (i.started or "", i.path))


def inspect(path: Path, root: Path | None = None) -> RunInfo:
    """What one run folder is and how far it got; a folder critix cannot read is "broken" with the reason."""
    try:
        return _inspect(path, root)
    except Exception as err:  # noqa: BLE001 - a listing never crashes on a malformed folder
        return RunInfo(_name(path, root), "broken", note=f"{type(err).__name__}: {err}")


def _name(path: Path, root: Path | None) -> str:
    if root is None or path == root:
        return str(path)
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def _inspect(path: Path, root: Path | None) -> RunInfo:
    info = RunInfo(_name(path, root), "stopped", started=_started(path))
    holder = runlock.holder(path)
    config_error = None
    try:
        config = read_config_json(path)
        load_run_config(path)  # the agent and run configs a resume would build
        run = config["run"]
        info.algo = str(config["algo"])
        if config.get("mode") == "offline":
            info.env = f"dataset {Path(str(run.get('dataset', ''))).name}"
        else:
            info.env = str(run["env"])
        info.steps_planned, info.num_seeds = int(run["steps"]), int(run["num_seeds"])
    except (CritixError, ValueError, KeyError, TypeError) as err:
        config_error = str(err) if isinstance(err, CritixError) else f"config.json: {type(err).__name__}: {err}"

    progress = _progress(path)
    info.steps_done, info.wall_seconds = progress["step"], progress["wall"]
    if progress["eval"] is not None:
        info.final_return, info.return_source = progress["eval"], "last eval"

    summary, summary_error = _summary(path)
    if holder is not None:
        info.status, info.note = "training now", f"{holder}" + (f"; {config_error}" if config_error else "")
        return info
    if config_error is not None:
        info.status, info.note = "broken", config_error
        return info
    if summary_error is not None:
        info.status, info.note = "broken", summary_error
        return info
    if summary is not None:
        steps = int(summary["steps"])
        if info.steps_done is None or steps >= info.steps_done:  # no checkpoint newer than the summary
            info.status, info.steps_done = "finished", steps
            info.steps_planned = max(info.steps_planned or 0, steps)  # a resume may have extended the run
            finals = [float(x) for x in summary["final_return"]]
            info.final_return = float(summary.get("final_return_mean", sum(finals) / len(finals)))
            info.return_source = "summary"
            if summary.get("wall_seconds") is not None:
                info.wall_seconds = float(summary["wall_seconds"])
            return info
    saved = progress["checkpoint"]
    if saved is None:
        info.note = "no checkpoint yet: a resume starts over"
    elif info.steps_done is not None and saved < info.steps_done:
        info.note = f"a resume continues from the checkpoint at step {saved:,}"
    return info


def _started(path: Path) -> str | None:
    """When the run started: config.json is written once, at the start (a resume keeps it); else the lock's or the
    folder's time."""
    for candidate in (path / "config.json", path / runlock.LOCK_FILE, path):
        try:
            stamp = candidate.stat().st_mtime
        except OSError:
            continue
        return datetime.datetime.fromtimestamp(stamp).isoformat(timespec="seconds")
    return None


def _summary(path: Path) -> tuple[dict[str, Any] | None, str | None]:
    """(summary.json, None), (None, None) when there is none, or (None, why it is unreadable)."""
    file = path / "summary.json"
    if not file.exists():
        return None, None
    try:
        summary = json.loads(file.read_bytes().decode("utf-8"))
        if not isinstance(summary, dict):
            raise TypeError(f"it holds {type(summary).__name__}, not an object")
        int(summary["steps"])
        if not summary["final_return"]:
            raise ValueError("final_return is empty")
        [float(x) for x in summary["final_return"]]
    except (OSError, ValueError, TypeError, KeyError) as err:
        return None, f"summary.json is malformed ({type(err).__name__}: {err})"
    return summary, None


def _progress(path: Path) -> dict[str, Any]:
    """The furthest step (metrics.csv or the newest checkpoint), its wall time, the mean over seeds of the last
    evaluation in metrics.csv, and the newest checkpoint's step; None where unknown."""
    step, wall, last_eval, saved = None, None, None, None
    ckpts = checkpoint.list_checkpoints(path / "checkpoints")
    steps = [checkpoint.step_of(c) for c in ckpts if c.name.removeprefix("step_").isdigit()]
    if steps:
        step = saved = max(steps)
        try:
            meta = json.loads((path / "checkpoints" / f"step_{step}" / "meta.json").read_text())
            wall = float(meta["counters"]["wall_seconds"])
        except (OSError, ValueError, KeyError, TypeError):
            pass
    try:
        with (path / "metrics.csv").open(newline="") as f:
            eval_step, eval_values = None, []
            for row in csv.DictReader(f):
                row_step = _number(row.get("step"))
                if row_step is None:
                    continue
                if step is None or row_step > step:
                    step = int(row_step)
                    wall = _number(row.get("wall_seconds")) or wall
                value = _number(row.get("eval/return"))
                if value is not None:
                    if row_step != eval_step:
                        eval_step, eval_values = row_step, []
                    eval_values.append(value)
            if eval_values:
                last_eval = sum(eval_values) / len(eval_values)
    except (OSError, ValueError, csv.Error):
        pass
    return {"step": step, "wall": wall, "eval": last_eval, "checkpoint": saved}


def _number(text: str | None) -> float | None:
    try:
        value = float(text) if text not in (None, "") else None
    except ValueError:
        return None
    return value if value is not None and math.isfinite(value) else None


def format_seconds(seconds: float | None) -> str:
    """12s, 3m05s, 2h04m."""
    if seconds is None:
        return "-"
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
