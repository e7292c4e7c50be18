"""Read run folders (written by `critix train`) into arrays for statistics and plots.

A run folder holds config.json (algo, env), metrics.csv (long format: one row per step and seed, see
critix.train.logging) and, once finished, summary.json (final evaluation return per seed, wall time, steps/s).
"""

from __future__ import annotations

import csv
import dataclasses
import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from critix.stats import normalize
from critix.types import CritixError


def read_metrics(path: Path) -> dict[str, np.ndarray]:
    """metrics.csv -> column name -> float array (empty cells are NaN)."""
    with Path(path).open(newline="") as f:
        reader = csv.DictReader(f)
        rows = list(reader)
        columns = reader.fieldnames or []
    return {c: np.array([float(r[c]) if r[c] not in ("", None) else np.nan for r in rows]) for c in columns}


def point_label(point: dict[str, float], sep: str = " ") -> str:
    """`learning_rate=0.0003 clip_ratio=0.1`: a grid point as the CLI, folders, plots and summaries name it."""
    return sep.join(f"{name}={format(float(value), '.4g')}" for name, value in point.items())


@dataclasses.dataclass(frozen=True)
class RunData:
    """One run folder: S seeds trained together. Curves: steps [P], values [S, P] (NaN where not logged)."""

    path: Path
    algo: str
    env: str
    steps: np.ndarray
    values: np.ndarray
    final: np.ndarray | None  # [S] final evaluation return per seed (summary.json), None while unfinished
    summary: dict[str, Any] | None

    @property
    def finished(self) -> bool:
        return self.summary is not None


def find_runs(paths: Iterable[str | Path]) -> list[Path]:
    """Run folders among `paths`: a folder with config.json is a run (a compiled grid run: its grid/ point folders);
    any other folder is searched below."""
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if not path.is_dir():
            raise CritixError(f"{path} is not a folder; give run folders (with config.json) or folders holding them")
        if (path / "config.json").is_file() and not (path / "grid").is_dir():
            found.append(path)
            continue
        below = sorted(p.parent for p in path.rglob("config.json") if not (p.parent / "grid").is_dir())
        if not below:
            raise CritixError(f"{path} holds no run folder (no config.json below it); is it a critix run folder?")
        found.extend(below)
    return list(dict.fromkeys(found))


def load_run(path: Path, metric: str = "eval/return") -> RunData:
    """Read one run folder; `metric` is the metrics.csv column for the curves."""
    path = Path(path)
    try:
        config = json.loads((path / "config.json").read_text())
        algo, env, num_seeds = config["algo"], config["run"]["env"], int(config["run"]["num_seeds"])
        if config.get("grid_point"):  # one point of a compiled grid run: its values tell it from the others
            algo += " " + point_label(config["grid_point"])
    except (OSError, json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
        raise CritixError(f"{path}/config.json is missing or malformed ({err}); is {path} a critix run folder?") from None
    steps, values = np.zeros(0), np.full((num_seeds, 0), np.nan)
    if (path / "metrics.csv").is_file():
        data = read_metrics(path / "metrics.csv")
        if data and metric not in data:
            raise CritixError(f"{path}/metrics.csv has no column {metric!r}; columns: {', '.join(sorted(data))}")
        if data and data["step"].size:
            keep = np.isfinite(data[metric])
            step, seed, value = data["step"][keep], data["seed"][keep].astype(int), data[metric][keep]
            steps = np.unique(step)
            values = np.full((num_seeds, steps.size), np.nan)
            values[seed, np.searchsorted(steps, step)] = value
    summary, final = None, None
    if (path / "summary.json").is_file():
        try:
            summary = json.loads((path / "summary.json").read_text())
            final = np.asarray(summary["final_return"], dtype=np.float64)
        except (OSError, json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
            raise CritixError(f"{path}/summary.json is malformed ({err}); rerun or resume the run") from None
    return RunData(path, algo, env, steps, values, final, summary)


def merge_curves(runs: Sequence[RunData]) -> tuple[np.ndarray, np.ndarray]:
    """Curves of several runs (same algo and env) on the union of their steps: steps [P], values [sum S, P]."""
    steps = np.unique(np.concatenate([r.steps for r in runs])) if runs else np.zeros(0)
    rows = []
    for run in runs:
        table = np.full((run.values.shape[0], steps.size), np.nan)
        table[:, np.searchsorted(steps, run.steps)] = run.values
        rows.append(table)
    return steps, np.concatenate(rows, axis=0) if rows else np.zeros((0, 0))


def group(runs: Iterable[RunData]) -> dict[str, dict[str, list[RunData]]]:
    """algo -> env -> runs, in first-seen order."""
    out: dict[str, dict[str, list[RunData]]] = {}
    for run in runs:
        out.setdefault(run.algo, {}).setdefault(run.env, []).append(run)
    return out


def final_returns(runs: Iterable[RunData]) -> dict[str, dict[str, np.ndarray]]:
    """algo -> env -> final evaluation returns of every finished seed [R] (unfinished runs are left out)."""
    out: dict[str, dict[str, np.ndarray]] = {}
    for algo, by_env in group(r for r in runs if r.final is not None).items():
        out[algo] = {env: np.concatenate([r.final for r in rs if r.final is not None]) for env, rs in by_env.items()}
    return out


def score_table(
    finals: Mapping[str, Mapping[str, np.ndarray]],
    tasks: Sequence[str] | None = None,
    references: Mapping[str, normalize.Reference] | None = None,
) -> tuple[dict[str, np.ndarray], list[str]]:
    """Normalised score dict for aggregation: algo -> [R, T] on `tasks` (default: the tasks every algorithm has),
    R = the fewest finished seeds that algorithm has on any of those tasks (its first R seeds per task).

    Returns the score dict and the task list. With a single task and no reference for it, raw returns are used.
    """
    if not finals:
        raise CritixError("no finished runs (summary.json) to aggregate; finish or resume the runs first")
    if tasks is None:
        common = set.intersection(*(set(by_env) for by_env in finals.values()))
        tasks = [t for t in next(iter(finals.values())) if t in common]
    if not tasks:
        raise CritixError("the algorithms share no task; aggregate each one alone or run them on the same tasks")
    raw_single = len(tasks) == 1 and tasks[0] not in (normalize.REFERENCES if references is None else references)
    table = {}
    for algo, by_env in finals.items():
        missing = [t for t in tasks if t not in by_env]
        if missing:
            raise CritixError(f"{algo} has no finished run on {', '.join(missing)}")
        count = min(by_env[t].size for t in tasks)
        columns = {t: by_env[t][:count] for t in tasks}
        if raw_single:
            table[algo] = np.stack(list(columns.values()), axis=1)
        else:
            table[algo] = normalize.normalize_tasks(columns, references)
    return table, list(tasks)
