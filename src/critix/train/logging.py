"""Run-folder logging on the host: a long-format metrics CSV (one row per step and seed), TensorBoard event
files (one folder per seed, so TensorBoard overlays them), an optional tracker (W&B), and the learning-curve plot."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any

import numpy as np

from critix.files import atomic_write_bytes
from critix.stats.runs import read_metrics

BASE_COLUMNS = ["step", "seed", "wall_seconds"]


class MetricsLogger:
    """Appends rows to metrics.csv and scalars to TensorBoard and, if given, a tracker (`critix.train.tracking`).
    `metrics` fixes the CSV columns up front."""

    def __init__(
        self, run_dir: Path, num_seeds: int, metrics: list[str], tensorboard: bool = True, purge_step: int | None = None,
        tracker: Any = None,
    ) -> None:
        """purge_step: on resume, TensorBoard drops events at steps >= purge_step written by the killed process.
        tracker: one more sink with `log(step, per_seed)`, given every row's values (the lifecycle closes it)."""
        self.path = Path(run_dir) / "metrics.csv"
        self.num_seeds = num_seeds
        self.tracker = tracker
        self.columns = BASE_COLUMNS + sorted(metrics)
        header = None
        if self.path.exists():
            with self.path.open(newline="") as f:
                header = next(csv.reader(f), None)
            if header:
                self.columns = header
        if not header:  # a new file, or one a kill left empty: write the header atomically
            text = io.StringIO()
            csv.writer(text).writerow(self.columns)
            atomic_write_bytes(self.path, text.getvalue().encode())
        self.writers = []
        if tensorboard:
            from tensorboardX import SummaryWriter

            self.writers = [SummaryWriter(str(Path(run_dir) / "tb" / f"seed_{i}"), purge_step=purge_step)
                            for i in range(num_seeds)]

    def truncate_after(self, step: int) -> None:
        """Drop rows logged after `step` (used on resume, so no row is duplicated)."""
        if not self.path.exists():
            return
        text = self.path.read_text()
        if not text.endswith("\n"):  # a kill interrupted the last append: drop the partial row
            text = text[: text.rfind("\n") + 1]
        rows = list(csv.reader(io.StringIO(text, newline="")))
        if not rows:
            return
        width = len(rows[0])
        kept = [rows[0]] + [r for r in rows[1:] if len(r) == width and int(float(r[0])) <= step]
        buffer = io.StringIO()
        csv.writer(buffer).writerows(kept)
        atomic_write_bytes(self.path, buffer.getvalue().encode())

    def log(self, step: int, wall_seconds: float, per_seed: dict[str, np.ndarray]) -> None:
        """per_seed: metric name -> array [S] (NaN where a seed has no value at this step)."""
        names = sorted(per_seed)
        with self.path.open("a", newline="") as f:
            writer = csv.writer(f)
            for seed in range(self.num_seeds):
                row = {"step": step, "seed": seed, "wall_seconds": round(wall_seconds, 3)}
                row.update({name: float(np.asarray(per_seed[name])[seed]) for name in names})
                writer.writerow([_fmt(row.get(col, math.nan)) for col in self.columns])
        for seed, writer in enumerate(self.writers):
            for name in names:
                value = float(np.asarray(per_seed[name])[seed])
                if math.isfinite(value):
                    writer.add_scalar(name, value, step)
        if self.tracker is not None:
            self.tracker.log(step, per_seed)

    def flush(self) -> None:
        for writer in self.writers:
            writer.flush()

    def close(self) -> None:
        for writer in self.writers:
            writer.close()


def _fmt(value: float | int) -> str:
    if isinstance(value, int):
        return str(value)
    return "" if not math.isfinite(value) else f"{value:.6g}"


def last_logged_step(metrics_csv: Path) -> int | None:
    """The env step of the last complete row of a metrics.csv (read from its end), or None if it has none."""
    try:
        with metrics_csv.open("rb") as f:
            f.seek(max(0, f.seek(0, 2) - 4096))
            lines = f.read().split(b"\n")[:-1]  # the piece after the last newline is a partial row or empty
    except OSError:
        return None
    for line in reversed(lines):
        try:
            return int(float(line.split(b",", 1)[0]))
        except ValueError:  # the header, or a row cut by the 4 KiB window
            continue
    return None


def plot_learning_curve(metrics_csv: Path, out_png: Path, title: str, metric: str = "eval/return") -> bool:
    """Mean over seeds with the min-max band, from metrics.csv; writes PNG and SVG. False if nothing to plot."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = read_metrics(metrics_csv)
    if metric not in data:
        return False
    keep = np.isfinite(data[metric])
    steps, seeds, values = data["step"][keep], data["seed"][keep], data[metric][keep]
    if values.size == 0:
        return False
    grid = np.unique(steps)
    table = np.full((grid.size, int(seeds.max()) + 1), np.nan)
    table[np.searchsorted(grid, steps), seeds.astype(int)] = values
    mean = np.nanmean(table, axis=1)
    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=120)
    ax.plot(grid, mean, color="#0072B2", label=f"mean over {table.shape[1]} seed(s)")
    ax.fill_between(grid, np.nanmin(table, axis=1), np.nanmax(table, axis=1), color="#0072B2", alpha=0.2,
                    label="min-max over seeds")
    ax.set_xlabel("environment steps (per seed)")
    ax.set_ylabel("evaluation return (deterministic policy)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    out_png = Path(out_png)
    fig.savefig(out_png)
    fig.savefig(out_png.with_suffix(".svg"))
    plt.close(fig)
    return True
