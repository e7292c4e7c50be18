"""`critix bench` end to end on a tiny suite: skips incompatible pairs, is killed mid-suite, resumes without redoing
finished runs, and writes the report with its plots. Plus the planning logic (which seeds each run folder holds)."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from critix.cli import main
from critix.bench import runner as bench

REPO_ROOT = Path(__file__).resolve().parents[2]

TINY_TRAIN = ("--hidden-sizes 32 32 --batch-size 32 --learning-starts 100 --chunk-size 50 --eval-every 500 "
              "--eval-episodes 2 --checkpoint-every 250")


def bench_args(out: Path) -> list[str]:
    return ["bench", "classic", "--algos", "sac", "--tasks", "Pendulum-v1,CartPole-v1", "--seeds", "2",
            "--seeds-per-run", "1", "--steps", "1500", "--reps", "500", "--out", str(out), f"--train-args={TINY_TRAIN}"]


def subprocess_env() -> dict[str, str]:
    """The test session's JAX settings (CPU, persistent compilation cache, fast compiles) for a child process."""
    env = dict(os.environ)
    env.update({"JAX_PLATFORMS": "cpu", "JAX_COMPILATION_CACHE_DIR": str(REPO_ROOT / ".jax_cache"),
                "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0", "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0"})
    return env


def has_checkpoint(run_dir: Path) -> bool:
    return any((p / "meta.json").exists() for p in (run_dir / "checkpoints").glob("step_*"))


def test_bench_is_killed_resumes_and_reports(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "suite"
    first = out / "runs" / "sac" / "Pendulum-v1_1500" / "seeds_0-0"
    second = out / "runs" / "sac" / "Pendulum-v1_1500" / "seeds_1-1"
    proc = subprocess.Popen([sys.executable, "-m", "critix.cli", *bench_args(out)], env=subprocess_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 400
    while time.time() < deadline and proc.poll() is None:
        if (first / "summary.json").exists() and has_checkpoint(second):
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the suite ended (or failed) before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)  # kill -9: no cleanup at all
    proc.wait()
    assert (first / "summary.json").exists() and not (second / "summary.json").exists()
    finished_at = (first / "summary.json").stat().st_mtime_ns
    step = int(sorted((second / "checkpoints").glob("step_*"))[-1].name.removeprefix("step_"))

    assert main([*bench_args(out), "--report-only"]) == 0  # the report of a stopped suite says where each run is
    report = (out / "report.md").read_text()
    assert "1 of 2 run folders finished" in report
    assert f"seeds_1-1`: stopped; resumes from its checkpoint at step {step:,} of 1,500" in report
    capsys.readouterr()

    assert main(bench_args(out)) == 0
    log = capsys.readouterr().out
    assert "2 runs (1 finished, 1 to run)" in log and "resume sac Pendulum-v1 seeds 1-1" in log
    assert "skip sac on CartPole-v1" in log
    assert (first / "summary.json").stat().st_mtime_ns == finished_at  # the finished run was not redone
    summary = json.loads((second / "summary.json").read_text())
    assert summary["steps"] == 1500 and summary["num_seeds"] == 1
    commit = summary["critix_commit"]  # provenance: the commit the finishing process loaded
    with (second / "metrics.csv").open(newline="") as f:
        evals = [(r["step"], r["seed"]) for r in csv.DictReader(f) if r["eval/return"]]
    assert evals == [("500", "0"), ("1000", "0"), ("1500", "0")]  # resumed: no duplicated or missing rows
    config = json.loads((second / "config.json").read_text())
    assert config["run"]["seed"] == 1 and config["agent"]["hidden_sizes"] == [32, 32]

    report = (out / "report.md").read_text()
    assert "| sac | 1 | 2 | **" in report  # aggregate row: 1 task, 2 runs
    assert f"- Finished runs trained at: commit {commit} (2 runs)" in report  # the killed process ran this code too
    assert "| Pendulum-v1 | sac | 2 |" in report
    assert "| sac | CartPole-v1 | sac needs a continuous (Box) action space" in report
    assert "2 of 2 run folders finished (under `runs/`); their wall times add up to" in report and "overridden with --steps" in report
    for name in ("learning_curves", "aggregate", "performance_profiles"):
        assert (out / "plots" / f"{name}.png").stat().st_size > 5000
        assert (out / "plots" / f"{name}.svg").exists()
    with (out / "scores.csv").open(newline="") as f:
        scores = list(csv.DictReader(f))
    assert [(r["seed"], r["task"]) for r in scores] == [("0", "Pendulum-v1"), ("1", "Pendulum-v1")]
    aggregate = json.loads((out / "aggregate.json").read_text())
    iqm = aggregate["aggregate"]["sac"]["iqm"]
    assert iqm["low"] <= iqm["point"] <= iqm["high"]

    assert main(bench_args(out)) == 0  # everything finished: nothing runs again
    assert "2 runs (2 finished, 0 to run)" in capsys.readouterr().out


def test_plan_fills_missing_seeds_around_existing_run_folders(tmp_path: Path) -> None:
    folder = bench.task_dir(tmp_path, "sac", "Pendulum-v1", 15_000)
    (folder / "seeds_0-1").mkdir(parents=True)
    (folder / "seeds_0-1" / "summary.json").write_text("{}")
    (folder / "seeds_3-3").mkdir()  # started and killed before it wrote anything
    cfg = bench.BenchConfig("classic", ("sac", "td3"), seeds=6, out=str(tmp_path), tasks=("Pendulum-v1", "CartPole-v1"),
                            seeds_per_run=2)
    the_plan = bench.plan(cfg)
    sac = sorted((u.first_seed, u.num_seeds) for u in the_plan.units if u.algo == "sac")
    assert sac == [(0, 2), (2, 1), (3, 1), (4, 2)]
    td3 = sorted((u.first_seed, u.num_seeds) for u in the_plan.units if u.algo == "td3")
    assert td3 == [(0, 2), (2, 2), (4, 2)]
    assert [u.finished for u in the_plan.units if u.algo == "sac" and u.first_seed == 0] == [True]
    assert {(s.algo, s.env) for s in the_plan.skipped} == {("sac", "CartPole-v1"), ("td3", "CartPole-v1")}
    whole = bench.plan(bench.BenchConfig("classic", ("sac",), seeds=5, out=str(tmp_path / "b"), tasks=("Pendulum-v1",)))
    assert [(u.first_seed, u.num_seeds) for u in whole.units] == [(0, 5)]
    argv = bench.train_command(whole.units[0], whole.suite, ["--utd-ratio", "2"])
    assert argv[:5] == ["sac", "--env", "Pendulum-v1", "--steps", "15000"] and argv[-2:] == ["--utd-ratio", "2"]


@pytest.mark.parametrize("argv, message", [
    (["bench", "nosuch", "--algos", "sac"], "unknown suite"),
    (["bench", "classic", "--algos", "nosuch"], "unknown algorithm"),
    (["bench", "classic", "--algos", "sac", "--tasks", "Hopper-v5"], "has no task"),
    (["bench", "classic", "--algos", "sac", "--seeds", "0"], "seeds must be >= 1"),
])
def test_bench_bad_input_exits_2(argv: list[str], message: str, capsys: pytest.CaptureFixture[str],
                                 tmp_path: Path) -> None:
    assert main([*argv, "--out", str(tmp_path / "x")]) == 2
    assert message in capsys.readouterr().err
