"""PPO speed: critix host mode vs SB3 vs SBX on Gymnasium CartPole-v1, alternating in one invocation.

Same work for all: PPO with SB3's defaults (critix's defaults copy them), 4 envs, `--steps` env steps, 64x64 tanh
networks, 2048-step rollouts per env, minibatch 64, 10 epochs. Each run is its own process, one at a time:
critix, SB3, SBX, critix, SB3, SBX ... (`--pairs` rounds). Figures per run:
- critix: whole-run steps/s = steps / (wall time of rollouts + updates, compile included) and steady-state
  steps/s from its summary.json (the first, compiling iteration left out), plus its compile seconds;
- peers: steps / wall time of `learn()` (SBX's compile included).
The ratios use the whole-run figures (compile included on both sides). Evaluation is outside every timer.
`--compiled` adds critix compiled PPO on gymnax:CartPole-v1 (`--compiled-seeds` seeds in one process).
Raw results: benchmarks/results/ppo_speed-<date>.json and .csv, with machine, versions, load and commands.

    .venv/bin/python benchmarks/ppo_speed.py --pairs 3
    .venv/bin/python benchmarks/ppo_speed.py --pairs 1 --steps 20000 --no-peers
"""

from __future__ import annotations

import argparse
import csv
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
BENCH = REPO / "benchmarks"
PEER_PYTHON = BENCH / "peers" / ".venv" / "bin" / "python"
CRITIX = [sys.executable, "-m", "critix.cli"]


def run_critix(env: str, steps: int, num_envs: int, num_seeds: int, extra: list[str]) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="critix-ppo-") as tmp:
        run_dir = Path(tmp) / "run"
        cmd = [*CRITIX, "train", "ppo", "--env", env, "--steps", str(steps), "--num-envs", str(num_envs),
               "--num-seeds", str(num_seeds), "--eval-every", "0", "--log-every", str(steps),
               "--no-progress", "--no-tensorboard", "--run-dir", str(run_dir), *extra]
        t = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        process_seconds = time.perf_counter() - t
        if proc.returncode != 0:
            raise SystemExit(f"critix failed: {shlex.join(cmd)}\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
        summary = json.loads((run_dir / "summary.json").read_text())
    timed = summary["compile_seconds"] + summary["train_seconds"]  # all env steps and updates; no evaluation
    return {"lib": "critix", "lib_version": summary["critix_version"], "env": env, "num_seeds": num_seeds,
            "steps": summary["steps"], "steps_per_second": summary["steps"] / timed,
            "steps_per_second_steady": summary["steps_per_second"], "compile_seconds": summary["compile_seconds"],
            "wall_seconds": timed, "process_seconds": process_seconds,
            "final_return": summary["final_return_mean"], "final_return_per_seed": summary["final_return"],
            "command": shlex.join(cmd[2:])}


def run_peer(lib: str, steps: int, num_envs: int, seed: int, peer_python: Path = PEER_PYTHON,
             torch_threads: int = 0) -> dict[str, Any]:
    cmd = [str(peer_python), str(BENCH / "peers" / "peer_ppo.py"), "--lib", lib, "--steps", str(steps),
           "--num-envs", str(num_envs), "--seed", str(seed)]
    if torch_threads:
        cmd += ["--torch-threads", str(torch_threads)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise SystemExit(f"peer failed: {shlex.join(cmd)}\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    return {**json.loads(lines[-1]), "command": shlex.join(cmd)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--num-envs", type=int, default=4)
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--no-peers", action="store_true")
    parser.add_argument("--peer-python", type=Path, default=PEER_PYTHON, help="python of the peers' venv")
    parser.add_argument("--torch-threads", type=int, default=0,
                        help="torch threads for the peers (1 avoids spin-waiting when the cores are shared)")
    parser.add_argument("--compiled", action="store_true", help="also run compiled PPO on gymnax:CartPole-v1")
    parser.add_argument("--compiled-steps", type=int, default=1_000_000)
    parser.add_argument("--compiled-seeds", type=int, default=16)
    args = parser.parse_args()
    if not args.no_peers and not args.peer_python.exists():
        raise SystemExit(f"{args.peer_python} is missing: run `bash benchmarks/peers/install.sh` (or pass --no-peers)")
    load_at_start = list(os.getloadavg())
    results: list[dict[str, Any]] = []
    for pair in range(args.pairs):
        results.append({"pair": pair, **run_critix("CartPole-v1", args.steps, args.num_envs, 1, [])})
        print(json.dumps(results[-1]), flush=True)
        for lib in ([] if args.no_peers else ["sb3", "sbx"]):
            results.append({"pair": pair, **run_peer(lib, args.steps, args.num_envs, pair, args.peer_python,
                                                       args.torch_threads)})
            print(json.dumps(results[-1]), flush=True)
    if args.compiled:
        results.append({"pair": None, **run_critix("gymnax:CartPole-v1", args.compiled_steps, args.num_envs,
                                                    args.compiled_seeds, [])})
        print(json.dumps(results[-1]), flush=True)
    host = [r for r in results if r["lib"] == "critix" and r["env"] == "CartPole-v1"]
    report: dict[str, Any] = {"critix_median_steps_per_second": statistics.median(r["steps_per_second"] for r in host)}
    for lib in ([] if args.no_peers else ["sb3", "sbx"]):
        ratios = [c["steps_per_second"] / p["steps_per_second"]
                  for c, p in zip(host, [r for r in results if r["lib"] == lib], strict=True)]
        report[f"{lib}_median_steps_per_second"] = statistics.median(
            r["steps_per_second"] for r in results if r["lib"] == lib)
        report[f"ratio_vs_{lib}_per_pair"] = ratios
        report[f"ratio_vs_{lib}_median"] = statistics.median(ratios)
    stamp = datetime.datetime.now().strftime("%Y-%m-%d-%H%M%S")
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=REPO).stdout
    import jax

    meta = {"date": stamp, "machine": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
            "python": platform.python_version(), "jax": jax.__version__, "critix_commit": commit.strip(),
            "load_at_start": load_at_start, "load_at_end": list(os.getloadavg()), "command": shlex.join(sys.argv)}
    out = BENCH / "results" / f"ppo_speed-{stamp}"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps({"meta": meta, "report": report, "runs": results}, indent=2))
    keys = ["pair", "lib", "env", "num_seeds", "steps", "steps_per_second", "steps_per_second_steady",
            "compile_seconds", "final_return"]
    with out.with_suffix(".csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, keys, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(results)
    print(json.dumps(report, indent=2))
    print(f"wrote {out}.json and .csv")


if __name__ == "__main__":
    main()
