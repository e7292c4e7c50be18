"""Plots for results: learning curves with interval bands, aggregate-metric intervals, performance profiles.

Every function writes the figure to `out` (.png or .svg) and the same figure in the other of the two formats
beside it, and returns the paths written. Colours are the Okabe-Ito palette (distinguishable with the common
colour-vision deficiencies), with a distinct line style per algorithm as a second cue; one colour per algorithm
across all panels of a figure.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from critix.stats import aggregate
from critix.stats.runs import RunData, group, merge_curves
from critix.types import CritixError

OKABE_ITO = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#000000", "#F0E442")
LINE_STYLES = ("-", "--", "-.", ":")
METRIC_LABELS = {"iqm": "IQM", "mean": "Mean", "median": "Median", "optimality_gap": "Optimality gap"}
FORMATS = (".png", ".svg")


def algorithm_styles(names: Sequence[str]) -> dict[str, dict[str, Any]]:
    """A colour and line style per algorithm, stable for a given order of names."""
    return {name: {"color": OKABE_ITO[i % len(OKABE_ITO)], "linestyle": LINE_STYLES[i % len(LINE_STYLES)]}
            for i, name in enumerate(names)}


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": 10, "axes.titlesize": 11, "axes.labelsize": 10, "legend.fontsize": 9,
                         "axes.spines.top": False, "axes.spines.right": False, "svg.fonttype": "none"})
    return plt


def _save(fig: Any, out: Path) -> list[Path]:
    out = Path(out)
    if out.suffix.lower() not in FORMATS:
        raise CritixError(f"--out {out}: the plot file must end in .png or .svg (both are written)")
    out.parent.mkdir(parents=True, exist_ok=True)
    paths = [out] + [out.with_suffix(s) for s in FORMATS if s != out.suffix.lower()]
    for path in paths:
        fig.savefig(path, dpi=150, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return paths


def _steps_formatter() -> Any:
    """Tick labels 500, 20k, 1.5M instead of an offset exponent."""
    from matplotlib.ticker import FuncFormatter

    def label(x: float, _pos: int) -> str:
        for scale, suffix in ((1e6, "M"), (1e3, "k")):
            if abs(x) >= scale:
                return f"{x / scale:g}{suffix}"
        return f"{x:g}"

    return FuncFormatter(label)


def _grid(count: int, width: float = 4.6, height: float = 3.4) -> tuple[Any, np.ndarray]:
    plt = _pyplot()
    cols = min(count, 2 if count == 4 else 3)
    rows = -(-count // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False)
    for ax in axes.flat[count:]:
        ax.set_visible(False)
    return fig, axes.flat


def plot_learning_curves(
    runs: Sequence[RunData],
    out: Path,
    estimator: str = "iqm",
    reps: int = aggregate.PROFILE_REPS,
    confidence: float = 0.95,
    ylabel: str = "evaluation return (deterministic policy)",
    title: str | None = None,
) -> list[Path]:
    """One panel per environment; per algorithm, `estimator` ('iqm' or 'mean') over all its seeds at each
    evaluation step with a bootstrap confidence band. Runs of the same algorithm and env are pooled."""
    if not runs:
        raise CritixError("no runs to plot")
    by_algo = group(runs)
    envs = list(dict.fromkeys(r.env for r in runs))
    styles = algorithm_styles(list(by_algo))
    fig, axes = _grid(len(envs))
    name = "IQM" if estimator == "iqm" else "mean"
    for ax, env in zip(axes, envs):
        for algo, by_env in by_algo.items():
            if env not in by_env:
                continue
            steps, values = merge_curves(by_env[env])
            if steps.size == 0:
                continue
            point, low, high = aggregate.curve_intervals(values, estimator, reps, confidence)
            seeds = int(np.sum(np.any(np.isfinite(values), axis=1)))
            unfinished = "" if all(r.finished for r in by_env[env]) else ", unfinished"
            # Markers show where the evaluations are, and keep a curve of one evaluation visible.
            ax.plot(steps, point, label=f"{algo} ({seeds} seed{'s' if seeds != 1 else ''}{unfinished})", lw=1.8,
                    marker="o", ms=3, **styles[algo])
            ax.fill_between(steps, low, high, color=styles[algo]["color"], alpha=0.2, lw=0)
        ax.set_title(env)
        ax.set_xlabel("environment steps (per seed)")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_formatter(_steps_formatter())
        ax.legend(loc="best", frameon=False)
    fig.suptitle(title or f"Learning curves: {name} over seeds, {int(confidence * 100)}% bootstrap interval")
    fig.tight_layout()
    return _save(fig, out)


def plot_aggregate_intervals(
    results: Mapping[str, Mapping[str, aggregate.Interval]],
    out: Path,
    xlabel: str = "normalised score (0 = random policy, 1 = reference)",
    title: str | None = None,
) -> list[Path]:
    """One panel per aggregate metric: each algorithm's point estimate (tick) and confidence interval (bar),
    as in Agarwal et al. 2021, Fig. 1 (results from aggregate.aggregate_metrics)."""
    if not results:
        raise CritixError("no aggregate results to plot")
    algos = list(results)
    metrics = list(next(iter(results.values())))
    styles = algorithm_styles(algos)
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(metrics), figsize=(2.9 * len(metrics) + 1.2, 0.45 * len(algos) + 1.4),
                             squeeze=False, sharey=True)
    for ax, metric in zip(axes[0], metrics):
        for i, algo in enumerate(algos):
            iv = results[algo][metric]
            color = styles[algo]["color"]
            ax.barh(i, iv.high - iv.low, left=iv.low, height=0.6, color=color, alpha=0.6)
            ax.vlines(iv.point, i - 0.3, i + 0.3, color="black", lw=1.6)
        ax.set_title(METRIC_LABELS.get(metric, metric) + (" (lower is better)" if metric == "optimality_gap" else ""))
        ax.set_yticks(range(len(algos)), algos)
        ax.set_ylim(-0.6, len(algos) - 0.4)
        ax.invert_yaxis()
        ax.grid(axis="x", alpha=0.3)
        ax.spines["left"].set_visible(False)
    fig.supxlabel(xlabel)
    fig.suptitle(title or "Aggregate metrics: point estimate (line) and 95% stratified bootstrap interval (bar)")
    fig.tight_layout()
    return _save(fig, out)


def plot_performance_profiles(
    profiles: Mapping[str, aggregate.Profile],
    out: Path,
    xlabel: str = r"normalised score $\tau$ (0 = random policy, 1 = reference)",
    title: str | None = None,
) -> list[Path]:
    """Fraction of runs with score > tau against tau, with bands (results from aggregate.performance_profile)."""
    if not profiles:
        raise CritixError("no performance profiles to plot")
    styles = algorithm_styles(list(profiles))
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.0, 4.0))
    for algo, prof in profiles.items():
        ax.plot(prof.thresholds, prof.fraction, label=algo, lw=1.8, **styles[algo])
        ax.fill_between(prof.thresholds, prof.low, prof.high, color=styles[algo]["color"], alpha=0.2, lw=0)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(r"fraction of runs with score > $\tau$")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(loc="best", frameon=False)
    ax.set_title(title or "Performance profiles (score distributions), 95% bootstrap bands")
    fig.tight_layout()
    return _save(fig, out)


def profile_thresholds(score_dict: Mapping[str, np.ndarray], points: int = 101) -> np.ndarray:
    """Thresholds spanning every score in the dict (and at least [0, 1])."""
    values = np.concatenate([np.ravel(s) for s in score_dict.values()])
    low, high = min(0.0, float(values.min())), max(1.0, float(values.max()))
    return np.linspace(low, high, points)


def plot_runs(
    paths: Sequence[str | Path],
    out: Path,
    kind: str = "curves",
    estimator: str = "iqm",
    metric: str = "eval/return",
    reps: int | None = None,
    seed: int = 0,
) -> list[Path]:
    """`critix plot`: read run folders (or folders holding them) and draw one kind of figure:
    'curves' (learning curves per env), 'aggregate' (IQM/mean/median/optimality gap intervals over the envs all
    algorithms share, normalised per env) or 'profile' (performance profiles, same scores)."""
    from critix.stats.runs import find_runs, final_returns, load_run, score_table

    if not paths:
        raise CritixError("give at least one run folder: critix plot RUN_DIR... --out FILE")
    runs = [load_run(p, metric) for p in find_runs(paths)]
    if kind == "curves":
        ylabel = "evaluation return (deterministic policy)" if metric == "eval/return" else metric
        return plot_learning_curves(runs, out, estimator, reps or aggregate.PROFILE_REPS, ylabel=ylabel)
    if kind not in ("aggregate", "profile"):
        raise CritixError(f"--kind must be curves, aggregate or profile, got {kind!r}")
    scores, tasks = score_table(final_returns(runs))
    label = "normalised score (0 = random policy, 1 = reference)"
    if len(tasks) == 1 and not _has_reference(tasks[0]):
        label = f"final evaluation return on {tasks[0]} (no normalisation reference)"
    what = f"{len(tasks)} task{'s' if len(tasks) != 1 else ''}: {', '.join(tasks)}"
    if kind == "aggregate":
        results = aggregate.aggregate_metrics(scores, reps=reps or aggregate.DEFAULT_REPS, seed=seed)
        return plot_aggregate_intervals(results, out, xlabel=label,
                                        title=f"Aggregate metrics over {what} (95% stratified bootstrap)")
    profiles = aggregate.performance_profile(scores, profile_thresholds(scores), reps=reps or aggregate.PROFILE_REPS,
                                             seed=seed)
    return plot_performance_profiles(profiles, out, xlabel=label.replace("score", r"score $\tau$", 1),
                                     title=f"Performance profiles over {what}")


def _has_reference(task: str) -> bool:
    from critix.stats.normalize import REFERENCES

    return task in REFERENCES
