"""Same results before and after a change: train fixed-seed runs with a given critix source tree, then compare.

Each case is a short `critix train` (or `critix collect`) with fixed seeds. On CPU, XLA and the envs are
deterministic, so two source trees that compute the same thing write the same learned values to metrics.csv
(losses, Q-values, returns); the timing columns are left out of the comparison.

    # train every case with the source tree in SRC (a checkout or `git worktree` of the commit), into OUT
    .venv/bin/python benchmarks/same_results.py run --src /tmp/before/src --out /tmp/same/before
    .venv/bin/python benchmarks/same_results.py run --src src --out /tmp/same/after
    # compare two such folders: one line per case, every differing column named
    .venv/bin/python benchmarks/same_results.py compare /tmp/same/before /tmp/same/after

The source tree is put first on PYTHONPATH of each subprocess, so the same virtual environment runs both.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

TIMING_COLUMNS = {"wall_seconds", "time/steps_per_second", "time/gradient_steps_per_second"}
COMMON = ["--num-seeds", "2", "--no-progress", "--no-tensorboard"]
DATASET = "dataset-pendulum-medium-replay"

# name -> critix arguments (the run folder is added); the offline case reads the dataset the collect case writes.
CASES: dict[str, list[str]] = {
    "collect": ["collect", "--env", "Pendulum-v1", "--kind", "medium-replay", "--train-steps", "3000",
                "--snapshot-every", "1000", "--learning-starts", "500", "--ref-episodes", "2", "--no-progress"],
    "sac-host": ["train", "sac", "--env", "Pendulum-v1", "--steps", "3000", "--learning-starts", "1000",
                 "--eval-every", "1000", "--eval-episodes", "3", "--log-every", "500", "--hidden-sizes", "64",
                 "64", *COMMON],
    "ppo-host": ["train", "ppo", "--env", "CartPole-v1", "--steps", "8192", "--num-envs", "4", "--rollout-length", "256",
                 "--eval-every", "4096", "--eval-episodes", "3", "--log-every", "1024", *COMMON],
    "ppo-host-normalized": ["train", "ppo", "--env", "Pendulum-v1", "--steps", "8192", "--num-envs", "4",
                            "--normalize-obs", "--normalize-reward", "--eval-every", "4096", "--eval-episodes", "3",
                            "--log-every", "2048", *COMMON],
    "dqn-per-host": ["train", "dqn", "--env", "CartPole-v1", "--steps", "6000", "--prioritized", "--n-step", "1",
                     "--learning-starts", "500", "--target-update-period", "100", "--eval-every", "3000",
                     "--eval-episodes", "3", "--log-every", "500", *COMMON],
    "dqn-nstep-host": ["train", "dqn", "--env", "CartPole-v1", "--steps", "6000", "--n-step", "3",
                       "--learning-starts", "500", "--target-update-period", "100", "--eval-every", "3000",
                       "--eval-episodes", "3", "--log-every", "500", *COMMON],
    # SB3's DQN settings (benchmarks/dqn_speed.py) in 64-step chunks: learning starts inside the second chunk, and
    # the run ends with a shorter chunk (6000 = 93 x 64 + 48).
    "dqn-sb3-c64-host": ["train", "dqn", "--env", "CartPole-v1", "--steps", "6000", "--hidden-sizes", "64", "64",
                         "--no-dueling", "--no-double-q", "--critic-head", "scalar", "--q-lr", "0.0001",
                         "--q-lr-decay-steps", "0", "--n-step", "1", "--target-update-period", "250",
                         "--exploration-steps", "1000", "--v-min", "-100", "--v-max", "100", "--chunk-size", "64",
                         "--utd-ratio", "0.25", "--learning-starts", "100", "--eval-every", "3000",
                         "--eval-episodes", "3", "--log-every", "500", *COMMON],
    "iql-offline": ["train", "iql", "--dataset", "{dataset}", "--steps", "3000", "--chunk-size", "500",
                    "--eval-every", "1500", "--eval-episodes", "3", "--hidden-sizes", "64", "64", *COMMON],
    "ppo-compiled": ["train", "ppo", "--env", "gymnax:CartPole-v1", "--steps", "40960", "--num-envs", "4",
                     "--eval-every", "20480", "--eval-episodes", "3", "--log-every", "4096", *COMMON],
    "ppo-compiled-normalized": ["train", "ppo", "--env", "gymnax:Pendulum-v1", "--steps", "16384", "--num-envs", "4",
                                "--normalize-obs", "--normalize-reward", "--eval-every", "8192", "--eval-episodes",
                                "3", "--log-every", "2048", *COMMON],
    "sac-compiled": ["train", "sac", "--env", "gymnax:Pendulum-v1", "--steps", "3000", "--learning-starts", "1000",
                     "--normalize-obs", "--eval-every", "1500", "--eval-episodes", "3", "--log-every", "500",
                     "--hidden-sizes", "64", "64", *COMMON],
}


def run(src: Path, out: Path, only: list[str], dataset: Path | None) -> None:
    out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": f"{src.resolve()}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
           "JAX_PLATFORMS": "cpu"}
    for name, args in CASES.items():
        if only and name not in only:
            continue
        args = [a.replace("{dataset}", str(dataset or out / DATASET)) for a in args]
        target = ["--out", str(out / DATASET), "--overwrite"] if name == "collect" else ["--run-dir", str(out / name)]
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "critix.cli", *args, *target], env=env, capture_output=True,
                              text=True)
        print(f"{name}: exit {done.returncode} in {time.perf_counter() - start:.0f} s", flush=True)
        if done.returncode:
            print(done.stdout[-2000:], done.stderr[-4000:], sep="\n")


def rows(path: Path) -> list[dict[str, str]]:
    """The learned values of a metrics.csv: one merged row per (step, seed) with its non-empty, non-timing cells
    (one run may log a step's training metrics and its evaluation in one row, another in two)."""
    merged: dict[tuple[str, str], dict[str, str]] = {}
    with path.open(newline="") as f:
        for row in csv.DictReader(f):
            cells = merged.setdefault((row["step"], row["seed"]), {})
            cells.update({k: v for k, v in row.items() if k not in TIMING_COLUMNS and v != ""})
    return list(merged.values())


def compare_case(a: Path, b: Path) -> str:
    if a.name == DATASET:
        return compare_dataset(a, b)
    ra, rb = rows(a / "metrics.csv"), rows(b / "metrics.csv")
    if len(ra) != len(rb):
        return f"DIFFERENT: {len(ra)} vs {len(rb)} rows"
    columns = sorted({c for r in ra + rb for c in r})
    differing: dict[str, float] = {}
    for x, y in zip(ra, rb):
        for c in columns:
            if x.get(c) != y.get(c):
                try:
                    gap = abs(float(x.get(c) or "nan") - float(y.get(c) or "nan"))
                except ValueError:
                    gap = math.inf
                differing[c] = max(differing.get(c, 0.0), gap if math.isfinite(gap) else math.inf)
    if differing:
        return "DIFFERENT: " + ", ".join(f"{c} (max |diff| {g:.3g})" for c, g in sorted(differing.items()))
    final = json.loads((b / "summary.json").read_text()).get("final_return_mean")
    return f"identical: {len(ra)} rows x {len(columns)} columns (final return {final:.2f})"


def compare_dataset(a: Path, b: Path) -> str:
    import h5py
    import numpy as np

    fa, fb = a / "data" / "main_data.hdf5", b / "data" / "main_data.hdf5"
    with h5py.File(fa, "r") as ha, h5py.File(fb, "r") as hb:
        names_a, names_b = [], []
        ha.visit(names_a.append)
        hb.visit(names_b.append)
        if names_a != names_b:
            return f"DIFFERENT: datasets {len(names_a)} vs {len(names_b)} entries"
        arrays = [n for n in names_a if isinstance(ha[n], h5py.Dataset)]
        bad = [n for n in arrays if not np.array_equal(ha[n][()], hb[n][()])]
    return f"DIFFERENT: {bad[:5]}" if bad else f"identical: {len(arrays)} arrays"


def compare(a: Path, b: Path) -> int:
    failures = 0
    for name in CASES:
        folder = DATASET if name == "collect" else name
        if not (a / folder).exists() or not (b / folder).exists():
            print(f"{name}: missing in {'the first' if not (a / folder).exists() else 'the second'} folder")
            failures += 1
            continue
        verdict = compare_case(a / folder, b / folder)
        failures += verdict.startswith("DIFFERENT")
        print(f"{name}: {verdict}")
    return 1 if failures else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="train every case with one source tree")
    r.add_argument("--src", type=Path, required=True, help="the critix source folder (holding critix/)")
    r.add_argument("--out", type=Path, required=True)
    r.add_argument("--only", default="", help="comma-separated case names")
    r.add_argument("--dataset", type=Path, default=None,
                   help="the offline case's dataset (default: the one the collect case wrote into --out); give the "
                        "first tree's so that both train on the same data")
    c = sub.add_parser("compare", help="compare two folders written by `run`")
    c.add_argument("a", type=Path)
    c.add_argument("b", type=Path)
    args = parser.parse_args()
    if args.command == "run":
        run(args.src, args.out, [x for x in args.only.split(",") if x], args.dataset)
        return 0
    return compare(args.a, args.b)


if __name__ == "__main__":
    sys.exit(main())
