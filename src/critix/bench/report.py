"""The benchmark report of `critix bench`: report.md with per-task and aggregate tables (IQM and 95% stratified
bootstrap intervals, wall time, steps/s), plots, scores.csv and aggregate.json, all in the suite's folder."""

from __future__ import annotations

import csv
import datetime
import io
import os
import platform
import shlex
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from critix import __version__
from critix.provenance import source_commit
from critix.stats import aggregate, normalize, plots
from critix.stats.runs import RunData, load_run
from critix.files import atomic_write_bytes, atomic_write_json

if TYPE_CHECKING:
    from critix.bench.runner import BenchConfig, Plan


def format_figure(value: float) -> str:
    """A figure for a report table: thousands separated, three significant-ish digits below that."""
    magnitude = abs(value)
    if magnitude >= 1000:
        return f"{value:,.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    return f"{value:.3f}" if magnitude < 1 else f"{value:.2f}"


def format_interval(interval: aggregate.Interval) -> str:
    """An interval as "point [low, high]" for a report table."""
    return f"{format_figure(interval.point)} [{format_figure(interval.low)}, {format_figure(interval.high)}]"


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    return f"{os.cpu_count()} CPU cores ({cpu}), Python {platform.python_version()}, load average {load}"


def bench_command(cfg: BenchConfig) -> str:
    parts = ["critix bench", cfg.suite, "--algos", ",".join(cfg.algos)]
    if cfg.seeds is not None:
        parts += ["--seeds", str(cfg.seeds)]
    if cfg.out:
        parts += ["--out", cfg.out]
    if cfg.tasks:
        parts += ["--tasks", ",".join(cfg.tasks)]
    if cfg.steps is not None:
        parts += ["--steps", str(cfg.steps)]
    if cfg.seeds_per_run:
        parts += ["--seeds-per-run", str(cfg.seeds_per_run)]
    for arg in cfg.train_args:
        parts.append(f"--train-args={shlex.quote(arg)}")
    return " ".join(parts)


def run_commits(runs: Sequence[RunData]) -> str:
    """The critix commits that finished runs trained at, with counts, as summary.json records them (the commit
    of the process that finished the run; summaries older than that field say "not recorded")."""
    counts = Counter(r.summary.get("critix_commit") for r in runs if r.summary is not None)
    if not counts:
        return "no finished run yet"

    def item(commit: str | None, n: int) -> str:
        count = f"{n} run{'s' if n != 1 else ''}"
        return f"commit {commit} ({count})" if commit else f"commit not recorded ({count}: summary.json older than the field)"

    return ", ".join(item(c, n) for c, n in counts.items())


def write_report(cfg: BenchConfig, the_plan: Plan, failures: dict[Path, str],
                 log: Callable[[str], None] = print) -> Path:
    """Read the suite's run folders and write report.md, scores.csv, aggregate.json and plots/ into its folder."""
    out = cfg.out_dir()
    plot_dir = out / "plots"
    runs = [load_run(u.path) for u in the_plan.units if u.started]
    finished = [r for r in runs if r.final is not None]
    algos = [a for a in cfg.algos if any(r.algo == a for r in finished)]
    task_order = [t.env for t in the_plan.tasks]
    finals = _finals(finished, the_plan.seeds)
    seed = 0
    lines = [f"# Benchmark report: `{the_plan.suite.name}` suite", ""]
    lines += [f"{the_plan.suite.description}.", ""]
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines += [
        f"- Written {stamp} by `{bench_command(cfg)}`",
        f"- critix {__version__} (commit {source_commit()}), jax {jax_version()}; machine: {machine()}",
        f"- Finished runs trained at: {run_commits(finished)}",
        "- Budgets (environment steps per seed): "
        + ", ".join(f"{t.env} {t.steps:,}" for t in the_plan.tasks)
        + (" (**overridden with --steps: not the suite's budgets**)" if cfg.steps is not None else ""),
        f"- Seeds: {the_plan.seeds} per (algorithm, task); score of a seed = mean return of "
        f"{the_plan.suite.eval_episodes} deterministic evaluation episodes at the end of training, on separate "
        "evaluation envs",
        f"- Intervals: 95% percentile intervals of the stratified bootstrap ({cfg.reps:,} replicates, seed {seed}), "
        "see docs/benchmarks.md, \"How to read a suite report\"",
        "",
    ]

    # ---- aggregate ----------------------------------------------------------------------------------------
    results: dict[str, dict[str, aggregate.Interval]] = {}
    profiles: dict[str, aggregate.Profile] = {}
    algo_tasks: dict[str, list[str]] = {}
    score_dicts: dict[str, np.ndarray] = {}
    for algo in algos:
        tasks = [t for t in task_order if t in finals.get(algo, {})]
        count = min(finals[algo][t].size for t in tasks)
        score_dicts[algo] = normalize.normalize_tasks({t: finals[algo][t][:count] for t in tasks})
        algo_tasks[algo] = tasks
    if score_dicts:
        for algo, scores in score_dicts.items():
            results.update(aggregate.aggregate_metrics({algo: scores}, reps=cfg.reps, seed=seed))
        taus = plots.profile_thresholds(score_dicts)
        for algo, scores in score_dicts.items():
            profiles.update(aggregate.performance_profile({algo: scores}, taus, reps=min(cfg.reps, 2_000), seed=seed))
    lines += ["## Aggregate over tasks (normalised scores)", ""]
    if results:
        lines += [
            "Per task, score = (return - random-policy return) / (reference return - random-policy return): 0 is "
            "a random policy, 1 the reference (table at the end). Higher is better, except optimality gap (the "
            "average shortfall below 1).",
            "",
            "| algorithm | tasks | runs | IQM | mean | median | optimality gap |",
            "|---|---|---|---|---|---|---|",
        ]
        for algo, metrics in results.items():
            scores = score_dicts[algo]
            iqm, mean, median, gap = (format_interval(metrics[m]) for m in ("iqm", "mean", "median", "optimality_gap"))
            lines.append(f"| {algo} | {len(algo_tasks[algo])} | {scores.size} | **{iqm}** | {mean} | {median} | {gap} |")
        if len({tuple(t) for t in algo_tasks.values()}) > 1:
            lines += ["", "The algorithms ran on different task sets (see skipped pairs below), so compare their "
                      "aggregates only alongside the per-task table; " + "; ".join(
                          f"{a}: {', '.join(t)}" for a, t in algo_tasks.items()) + "."]
        lines.append("")
        lines += _improvement_lines(algos, finals, task_order, cfg.reps, seed)
    else:
        lines += ["No finished runs yet.", ""]

    # ---- per task -----------------------------------------------------------------------------------------
    lines += ["## Per task (raw returns)", "",
              "| task | algorithm | seeds | IQM return [95% CI] | mean return [95% CI] | normalised IQM | "
              "wall time per run (s) | steps/s per seed |",
              "|---|---|---|---|---|---|---|---|"]
    per_task_json: list[dict[str, Any]] = []
    for env in task_order:
        for algo in algos:
            if env not in finals.get(algo, {}):
                continue
            returns = finals[algo][env]
            raw = aggregate.aggregate_metrics({algo: returns[:, None]}, ["iqm", "mean"], reps=cfg.reps, seed=seed)
            ref = normalize.REFERENCES.get(env)
            norm = "-" if ref is None else format_figure(
                float(aggregate.iqm(normalize.normalize(returns, ref)[:, None])))
            env_runs = [r for r in finished if r.algo == algo and r.env == env]
            walls = [float(r.summary["wall_seconds"]) for r in env_runs if r.summary]
            sps = [float(r.summary["steps_per_second"]) for r in env_runs
                   if r.summary and r.summary.get("steps_per_second")]
            wall = format_figure(float(np.mean(walls))) if walls else "-"
            speed = format_figure(float(np.mean(sps))) if sps else "-"
            lines.append(f"| {env} | {algo} | {returns.size} | {format_interval(raw[algo]['iqm'])} | "
                         f"{format_interval(raw[algo]['mean'])} | {norm} | {wall} | {speed} |")
            per_task_json.append({"task": env, "algo": algo, "seeds": int(returns.size),
                                  "iqm": dataclasses_dict(raw[algo]["iqm"]),
                                  "mean": dataclasses_dict(raw[algo]["mean"]),
                                  "wall_seconds_per_run": walls, "steps_per_second_per_seed": sps})
    lines += ["", "Wall time: whole run (all its seeds together, evaluation and compilation included). steps/s: "
              "environment steps per seed per second after learning starts, as summary.json reports it (so a run "
              "of K seeds moves K times as many steps). Timings depend on the machine's load at the time.", ""]

    # ---- plots --------------------------------------------------------------------------------------------
    lines += ["## Plots", ""]
    written: list[str] = []
    curve_runs = [r for r in runs if r.steps.size]
    if curve_runs:
        plots.plot_learning_curves(curve_runs, plot_dir / "learning_curves.png", "iqm")
        written.append("learning_curves")
        lines += ["Learning curves (IQM over seeds of the evaluation return, 95% bootstrap band):", "",
                  "![learning curves](plots/learning_curves.png)", ""]
    if results:
        plots.plot_aggregate_intervals(results, plot_dir / "aggregate.png")
        plots.plot_performance_profiles(profiles, plot_dir / "performance_profiles.png")
        written += ["aggregate", "performance_profiles"]
        lines += ["Aggregate metrics (normalised scores):", "", "![aggregate metrics](plots/aggregate.png)", "",
                  "Performance profiles: the fraction of runs (seed x task) whose normalised score exceeds tau:", "",
                  "![performance profiles](plots/performance_profiles.png)", ""]
    lines += ["Each plot is also in SVG beside the PNG.", ""]

    # ---- what did not run ---------------------------------------------------------------------------------
    lines += ["## Runs", ""]
    unfinished = [u for u in the_plan.units if not u.finished]
    total = sum(float(r.summary["wall_seconds"]) for r in finished if r.summary and "wall_seconds" in r.summary)
    lines.append(f"{len(the_plan.units) - len(unfinished)} of {len(the_plan.units)} run folders finished "
                 f"(under `runs/`); their wall times add up to {total / 60:.1f} minutes.")
    if the_plan.skipped:
        lines += ["", "Skipped (algorithm, task) pairs: the algorithm cannot handle the task's spaces.", "",
                  "| algorithm | task | reason |", "|---|---|---|"]
        lines += [f"| {s.algo} | {s.env} | {s.reason} |" for s in the_plan.skipped]
    if unfinished:
        lines += ["", "Unfinished runs (rerun the same command to resume them):", ""]
        for unit in unfinished:
            why = failures.get(unit.path)
            lines.append(f"- `{_rel(unit.path, out)}`: " + (f"failed: {why}" if why else unit.progress()))
    lines += ["", "## Normalisation references", "", "| task | random-policy return (0) | reference (1) | source |",
              "|---|---|---|---|"]
    for env in task_order:
        ref = normalize.REFERENCES.get(env)
        if ref is not None:
            lines.append(f"| {env} | {ref.low:g} | {ref.high:g} | {ref.source} |")
    lines += ["", "## Reproduce", "", "```bash", bench_command(cfg), "```",
              "", "Every run folder holds its `config.json`; `critix train ALGO --resume RUN_DIR` continues one.", ""]

    report = out / "report.md"
    atomic_write_bytes(report, "\n".join(lines).encode())
    _write_scores_csv(out / "scores.csv", finished, the_plan.seeds)
    atomic_write_json(out / "aggregate.json", {
        "suite": the_plan.suite.name,
        "command": bench_command(cfg),
        "reps": cfg.reps,
        "aggregate": {a: {m: dataclasses_dict(iv) for m, iv in ms.items()} for a, ms in results.items()},
        "aggregate_tasks": algo_tasks,
        "per_task": per_task_json,
        "skipped": [{"algo": s.algo, "task": s.env, "reason": s.reason} for s in the_plan.skipped],
        "plots": written,
    })
    log(f"wrote {report}")
    return report


def dataclasses_dict(interval: aggregate.Interval) -> dict[str, float]:
    return {"point": interval.point, "low": interval.low, "high": interval.high}


def _finals(finished: Sequence[RunData], seeds: int) -> dict[str, dict[str, np.ndarray]]:
    """algo -> env -> final returns of the suite's seeds 0..seeds-1 that finished, in seed order."""
    by_key: dict[tuple[str, str], dict[int, float]] = {}
    for run in finished:
        first = int(_config(run)["run"]["seed"])
        values = by_key.setdefault((run.algo, run.env), {})
        for i, value in enumerate(run.final if run.final is not None else []):
            if first + i < seeds:
                values[first + i] = float(value)
    out: dict[str, dict[str, np.ndarray]] = {}
    for (algo, env), values in by_key.items():
        if values:
            out.setdefault(algo, {})[env] = np.array([values[s] for s in sorted(values)])
    return out


def _config(run: RunData) -> dict[str, Any]:
    import json

    return json.loads((run.path / "config.json").read_text())


def _improvement_lines(algos: Sequence[str], finals: dict[str, dict[str, np.ndarray]], task_order: Sequence[str],
                       reps: int, seed: int) -> list[str]:
    rows = []
    for i, x in enumerate(algos):
        for y in algos[i + 1:]:
            common = [t for t in task_order if t in finals.get(x, {}) and t in finals.get(y, {})]
            if not common:
                continue
            nx = min(finals[x][t].size for t in common)
            ny = min(finals[y][t].size for t in common)
            sx = normalize.normalize_tasks({t: finals[x][t][:nx] for t in common})
            sy = normalize.normalize_tasks({t: finals[y][t][:ny] for t in common})
            poi = aggregate.probability_of_improvement_interval(sx, sy, reps=reps, seed=seed)
            rows.append(f"| {x} | {y} | {format_interval(poi)} | {', '.join(common)} |")
    if not rows:
        return []
    return ["Probability of improvement P(X > Y): the chance that a run of X beats a run of Y on a task, averaged "
            "over their common tasks (0.5 = no difference; an interval excluding 0.5 is a significant difference).",
            "", "| X | Y | P(X > Y) [95% CI] | common tasks |", "|---|---|---|---|", *rows, ""]


def _write_scores_csv(path: Path, finished: Sequence[RunData], seeds: int) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["algo", "task", "steps", "seed", "final_return", "normalised_score", "run_dir"])
    for run in finished:
        config = _config(run)
        first, steps = int(config["run"]["seed"]), int(config["run"]["steps"])
        ref = normalize.REFERENCES.get(run.env)
        for i, value in enumerate(run.final if run.final is not None else []):
            if first + i >= seeds:
                continue
            norm = "" if ref is None else f"{float(normalize.normalize(value, ref)):.6g}"
            writer.writerow([run.algo, run.env, steps, first + i, f"{value:.6g}", norm,
                             _rel(run.path, path.parent)])
    atomic_write_bytes(path, buffer.getvalue().encode())


def _rel(path: Path, base: Path) -> str:
    try:
        return str(Path(path).relative_to(base))
    except ValueError:
        return str(path)


def jax_version() -> str:
    import jax

    return jax.__version__
