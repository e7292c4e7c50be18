"""The results of a sweep, written into its folder through `critix.stats`: summary.md (configurations ranked by
mean final return with 95% bootstrap intervals over seeds, the best one, every trial's status), results.csv (one
row per configuration and seed), results.json, and plots/ (learning curves per configuration, final-return
intervals), each plot in PNG and SVG."""

from __future__ import annotations

import csv
import dataclasses
import datetime
import importlib.metadata
import io
import os
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from critix import __version__
from critix.provenance import source_commit
from critix.stats import aggregate, plots
from critix.bench.report import dataclasses_dict, format_figure, format_interval, jax_version, machine
from critix.stats.runs import RunData, load_run
from critix.sweep.spec import Configuration, Manifest, format_value
from critix.files import atomic_write_bytes, atomic_write_json

MAX_CURVES = 8
"""Learning curves of at most this many configurations (the best by mean final return) in one plot."""


@dataclasses.dataclass
class ConfigResult:
    """A configuration's finished seeds and their final evaluation returns, and its runs (for the curves)."""

    config: Configuration
    seeds: list[int]
    returns: np.ndarray
    runs: list[RunData]
    wall_seconds: list[float]
    statuses: Counter[str]
    mean: aggregate.Interval | None = None
    iqm: aggregate.Interval | None = None


def eval_points(run_dir: Path) -> list[tuple[int, float]]:
    """(env step, mean evaluation return over the run's seeds) at every evaluation all its seeds have logged."""
    path = run_dir / "metrics.csv"
    if not path.is_file():
        return []
    with path.open("rb") as f:  # a row being appended right now is incomplete: read again later
        f.seek(0, os.SEEK_END)
        if f.tell() == 0:
            return []
        f.seek(-1, os.SEEK_END)
        if f.read(1) != b"\n":
            return []
    run = load_run(run_dir)
    complete = np.all(np.isfinite(run.values), axis=0)
    return [(int(s), float(v)) for s, v in zip(run.steps[complete], run.values[:, complete].mean(axis=0))]


def collect(manifest: Manifest) -> list[ConfigResult]:
    """Read every trial's run folder: final returns of the finished seeds, in seed order, per configuration."""
    results = []
    for config in manifest.configs:
        by_seed: dict[int, float] = {}
        runs, walls, statuses = [], [], Counter()
        for trial in (t for t in manifest.trials if t.config == config.index):
            statuses[trial.status] += 1
            run_dir = manifest.run_dir(trial)
            if not (run_dir / "metrics.csv").is_file():
                continue
            run = load_run(run_dir)
            runs.append(dataclasses.replace(run, algo=config.label))  # curves grouped by configuration
            if run.final is not None and run.summary is not None:
                by_seed.update(zip(trial.seeds, (float(x) for x in run.final)))
                walls.append(float(run.summary.get("wall_seconds", np.nan)))
        seeds = sorted(by_seed)
        results.append(ConfigResult(config, seeds, np.array([by_seed[s] for s in seeds]), runs, walls, statuses))
    return results


def write_summary(manifest: Manifest, reps: int = 10_000, log: Callable[[str], None] = print) -> Path:
    """Write summary.md, results.csv, results.json and plots/ into the sweep folder; returns summary.md's path."""
    out, spec = manifest.out, manifest.spec
    results = collect(manifest)
    scored = [r for r in results if r.returns.size]
    if scored:
        intervals = aggregate.aggregate_metrics({r.config.label: r.returns[:, None] for r in scored},
                                                ["mean", "iqm"], reps=reps, seed=0)
        for r in scored:
            r.mean, r.iqm = intervals[r.config.label]["mean"], intervals[r.config.label]["iqm"]
        scored.sort(key=lambda r: -r.mean.point if r.mean else 0.0)
    best = scored[0] if scored else None
    improvement = None
    if len(scored) > 1:
        improvement = aggregate.probability_of_improvement_interval(scored[0].returns[:, None],
                                                                    scored[1].returns[:, None], reps=reps, seed=0)
    written = _plots(out / "plots", spec, results, scored, reps)
    lines = _markdown(manifest, results, scored, improvement, written, reps)
    summary = out / "summary.md"
    atomic_write_bytes(summary, "\n".join(lines).encode())
    _write_csv(out / "results.csv", manifest, results)
    atomic_write_json(out / "results.json", {
        "algo": spec["algo"], "env": spec["env"], "steps": spec["steps"], "seeds": spec["seeds"], "reps": reps,
        "configs": [{"index": r.config.index, "label": r.config.label, "params": r.config.params, "seeds": r.seeds,
                     "final_return": r.returns.tolist(), "wall_seconds_per_trial": r.wall_seconds,
                     "mean": dataclasses_dict(r.mean) if r.mean else None,
                     "iqm": dataclasses_dict(r.iqm) if r.iqm else None, "trial_statuses": dict(r.statuses)}
                    for r in results],
        "best": None if best is None else {"index": best.config.index, "label": best.config.label,
                                           "params": best.config.params, "mean": dataclasses_dict(best.mean)},
        "p_best_beats_runner_up": None if improvement is None else dataclasses_dict(improvement),
        "trials": [dataclasses.asdict(t) for t in manifest.trials],
        "plots": written,
    })
    log(f"wrote {summary}")
    return summary


def _plots(folder: Path, spec: dict[str, Any], results: list[ConfigResult], scored: list[ConfigResult],
           reps: int) -> list[str]:
    written = []
    order = scored + [r for r in results if not r.returns.size]
    curves = [run for r in order[:MAX_CURVES] for run in r.runs if run.steps.size]
    if curves:
        plots.plot_learning_curves(curves, folder / "learning_curves.png", "iqm", min(reps, aggregate.PROFILE_REPS),
                                   title=f"{spec['algo']} on {spec['env']}: evaluation return per configuration "
                                         "(IQM over seeds, 95% bootstrap band)")
        written.append("plots/learning_curves.png")
    if scored:
        plots.plot_aggregate_intervals(
            {r.config.label: {"mean": r.mean, "iqm": r.iqm} for r in scored if r.mean and r.iqm},
            folder / "final_returns.png", xlabel="final evaluation return (deterministic policy)",
            title=f"{spec['algo']} on {spec['env']}: final return per configuration, 95% bootstrap interval "
                  "over seeds")
        written.append("plots/final_returns.png")
    return written


def _markdown(manifest: Manifest, results: list[ConfigResult], scored: list[ConfigResult],
              improvement: aggregate.Interval | None, written: list[str], reps: int) -> list[str]:
    spec = manifest.spec
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    last = manifest.invocations[-1] if manifest.invocations else {}
    lines = [f"# Sweep: {spec['algo']} on {spec['env']}", ""]
    lines += [
        f"- Written {stamp} by `{last.get('command', 'critix sweep')}`",
        f"- critix {__version__} (commit {source_commit()}), jax {jax_version()}, Ray {_ray_version()}; machine: "
        f"{machine()}",
        f"- {len(manifest.configs)} configurations x {len(spec['seeds'])} seeds ({', '.join(map(str, spec['seeds']))}), "
        f"{spec['steps']:,} environment steps per seed, {len(manifest.trials)} trials "
        f"({'all seeds of a configuration in one trial' if not spec['seeds_per_trial'] else str(spec['seeds_per_trial']) + ' seed(s) per trial'}), "
        f"scheduler {spec['scheduler']['name']}",
        f"- Swept: {_swept(spec)}; fixed: {', '.join(f'{k}={format_value(v)}' for k, v in spec['fixed'].items()) or 'nothing'}",
        "- Score of a seed: its final evaluation return (mean over the evaluation episodes of the deterministic "
        f"policy at the end of training). Intervals: 95% percentile bootstrap over seeds ({reps:,} replicates); "
        "with few seeds they are rough.",
        "",
    ]
    for i, inv in enumerate(manifest.invocations, 1):
        wall = f"{inv['wall_seconds']:.0f} s" if "wall_seconds" in inv else "killed or still running"
        lines.append(f"- Invocation {i} ({inv['started_at']}): {inv['trials_to_run']} trial(s) to run, wall time {wall}")
    lines += ["", "## Configurations, best first", ""]
    if scored:
        lines += ["| rank | configuration | seeds | mean final return [95% CI] | IQM [95% CI] | per seed | "
                  "wall time per trial (s) |", "|---|---|---|---|---|---|---|"]
        for rank, r in enumerate(scored, 1):
            assert r.mean is not None and r.iqm is not None
            per_seed = ", ".join(format_figure(float(x)) for x in r.returns)
            wall = ", ".join(f"{w:.0f}" for w in r.wall_seconds)
            lines.append(f"| {rank} | `{r.config.label}` | {len(r.seeds)} | **{format_interval(r.mean)}** | "
                         f"{format_interval(r.iqm)} | {per_seed} | {wall} |")
        best = scored[0]
        lines += ["", f"**Best configuration: `{best.config.label}`**, mean final return {format_interval(best.mean)} "
                      f"over {len(best.seeds)} seed(s)."]
        if improvement is not None:
            lines.append(f"P(a seed of `{best.config.label}` beats a seed of the runner-up `{scored[1].config.label}`)"
                         f" = {format_interval(improvement)} (0.5: no difference; an interval that contains 0.5 means "
                         "the sweep cannot tell them apart).")
    else:
        lines.append("No trial has finished yet.")
    lines += ["", "## Plots", ""]
    if "plots/final_returns.png" in written:
        lines += ["Final evaluation return per configuration (mean and IQM over seeds, 95% bootstrap intervals):",
                  "", "![final returns](plots/final_returns.png)", ""]
    if "plots/learning_curves.png" in written:
        lines += [f"Learning curves (IQM over seeds, 95% bootstrap band; at most the {MAX_CURVES} best "
                  "configurations):", "", "![learning curves](plots/learning_curves.png)", ""]
    lines += ["Each plot is also in SVG beside the PNG.", "", "## Trials", "",
              "| trial | configuration | seeds | status | attempts | final return per seed | run folder |",
              "|---|---|---|---|---|---|---|"]
    by_index = {r.config.index: r for r in results}
    for t in manifest.trials:
        r = by_index[t.config]
        finals = ", ".join(format_figure(float(r.returns[r.seeds.index(s)])) for s in t.seeds if s in r.seeds)
        if not finals and (points := eval_points(manifest.run_dir(t))):
            finals = (f"(unfinished; last evaluation at step {points[-1][0]:,}: {format_figure(points[-1][1])}, "
                      "mean over seeds)")
        status = t.status + (f": {t.error}" if t.error and t.status == "failed" else "")
        lines.append(f"| {t.id} | `{r.config.label}` | {t.seeds[0]}-{t.seeds[-1]} | {status} | {t.attempts} | "
                     f"{finals or '-'} | `{t.run_dir}` |")
    lines += ["", "Stopped: stopped early by the ASHA scheduler (run folder kept, not resumed). A rerun of the "
              "same command skips finished and stopped trials and resumes the others from their last checkpoint.",
              "", "## Reproduce", "", "```bash", last.get("command", "critix sweep"), "```", ""]
    return lines


def _swept(spec: dict[str, Any]) -> str:
    parts = [f"{k} in {{{', '.join(format_value(v) for v in values)}}}" for k, values in spec["grid"].items()]
    search = spec.get("search")
    if search:
        parts += [f"{k} ~ {kind}{tuple(args)}" for k, (kind, args) in search["space"].items()]
        parts.append(f"{search['samples']} random sample(s) per grid point (seed {search['seed']})")
    return "; ".join(parts) or "nothing (one configuration over the seeds)"


def _ray_version() -> str:
    try:
        return importlib.metadata.version("ray")
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _write_csv(path: Path, manifest: Manifest, results: list[ConfigResult]) -> None:
    keys = list(dict.fromkeys(k for c in manifest.configs for k in c.params))
    trial_of = {(t.config, s): t for t in manifest.trials for s in t.seeds}
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["config", "label", *keys, "seed", "final_return", "trial", "run_dir"])
    for r in results:
        for seed, value in zip(r.seeds, r.returns):
            trial = trial_of[(r.config.index, seed)]
            writer.writerow([r.config.index, r.config.label, *(format_value(r.config.params.get(k, "")) for k in keys),
                             seed, f"{value:.6g}", trial.id, trial.run_dir])
    atomic_write_bytes(path, buffer.getvalue().encode())
