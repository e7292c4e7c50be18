"""Compiled mode vs host mode for the same agent and env, in one invocation (issue 3: SAC on Pendulum-v1).

Each run is its own `critix train` process, one at a time: host (Gymnasium `Pendulum-v1`), compiled
(`gymnax:Pendulum-v1`), host, compiled ... (`--pairs` rounds). Same agent config, seeds, steps and logging in both;
evaluation is outside every timer. Figures per run, from its summary.json:
- steady steps/s: env steps per seed per second after learning starts, chunks that compile excluded;
- whole-run seconds: compile + steady training time (warm-up and evaluation excluded).
The ratio compiled / host of the steady figures is the speed-up of moving the env and the loop into XLA.

    .venv/bin/python benchmarks/compiled_speed.py --pairs 1 --steps 3000 --num-seeds 8
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
CRITIX = [sys.executable, "-m", "critix.cli"]


def run(algo: str, env: str, steps: int, num_seeds: int, extra: list[str]) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="critix-compiled-speed-") as tmp:
        run_dir = Path(tmp) / "run"
        cmd = [*CRITIX, "train", algo, "--env", env, "--steps", str(steps), "--num-seeds", str(num_seeds),
               "--eval-every", "0", "--eval-episodes", "5", "--log-every", "500", "--no-progress",
               "--no-tensorboard", "--run-dir", str(run_dir), *extra]
        start = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        process_seconds = time.perf_counter() - start
        if proc.returncode != 0:
            raise SystemExit(f"failed: {shlex.join(cmd)}\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
        summary = json.loads((run_dir / "summary.json").read_text())
    return {"env": env, "mode": summary.get("mode", "host"), "steps": summary["steps"], "num_seeds": num_seeds,
            "steps_per_second": summary["steps_per_second"], "compile_seconds": summary["compile_seconds"],
            "train_seconds": summary["train_seconds"], "process_seconds": process_seconds,
            "final_return": summary["final_return_mean"], "command": shlex.join(cmd[2:])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--algo", default="sac")
    parser.add_argument("--env", default="Pendulum-v1", help="Gymnasium id; the compiled run uses gymnax:<env>")
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--num-seeds", type=int, default=8)
    parser.add_argument("--pairs", type=int, default=1)
    parser.add_argument("--train-args", default="--learning-starts 1000", help="extra critix train flags for both")
    args = parser.parse_args()
    extra = shlex.split(args.train_args)
    load_at_start = list(os.getloadavg())
    runs = []
    for pair in range(args.pairs):
        for env in (args.env, f"gymnax:{args.env}"):
            runs.append({"pair": pair, **run(args.algo, env, args.steps, args.num_seeds, extra)})
            print(json.dumps(runs[-1]), flush=True)
    host = [r for r in runs if not r["env"].startswith("gymnax:")]
    compiled = [r for r in runs if r["env"].startswith("gymnax:")]
    ratios = [c["steps_per_second"] / h["steps_per_second"] for h, c in zip(host, compiled, strict=True)]
    report = {"ratio_compiled_over_host_steady_per_pair": ratios,
              "ratio_compiled_over_host_steady_median": statistics.median(ratios)}
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=REPO).stdout
    import jax

    stamp = datetime.datetime.now().strftime("%Y-%m-%d-%H%M%S")
    meta = {"date": stamp, "machine": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
            "python": platform.python_version(), "jax": jax.__version__, "critix_commit": commit.strip(),
            "load_at_start": load_at_start, "load_at_end": list(os.getloadavg()), "command": shlex.join(sys.argv)}
    out = REPO / "benchmarks" / "results" / f"compiled_speed-{stamp}.json"
    out.write_text(json.dumps({"meta": meta, "report": report, "runs": runs}, indent=2))
    print(json.dumps(report, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
