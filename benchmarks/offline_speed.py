"""Offline update speed: critix vs d3rlpy on the same dataset, same networks and batch, in one invocation (issue 8).

For each of IQL, TD3+BC and CQL, one after the other (never concurrently): critix with 1 seed, critix with 3 seeds
vmapped in one process, then d3rlpy 2.8.1 with 1 seed (its own venv, benchmarks/peers/install_d3rlpy.sh), each its
own process. Networks 256x256, batch 256, every other hyperparameter each library's default (peer_offline.py).
Figures:
- critix: gradient steps/s per seed from summary.json (steady state: the first, compiling chunk and the evaluation
  excluded); the 3-seed run's per-seed rate x 3 is its aggregate;
- d3rlpy: gradient steps / wall time of `fit` (its first steps included; no evaluation inside);
- FLOP bound: matmul FLOPs of one update (offline.update_flops) against a 256x256x256 fp32 matmul rate measured
  in this invocation: the most updates/s this machine could do if every FLOP ran at matmul speed.
Speed does not depend on what the data hold, so the dataset is a random-policy one (`critix collect --kind random`,
made once under benchmarks/datasets/ if missing); scores are not the point here (benchmarks/offline.py).

    .venv/bin/python benchmarks/offline_speed.py                       # IQL, TD3+BC, CQL on Hopper-v5
    .venv/bin/python benchmarks/offline_speed.py --algos iql --steps 2000 --peer-steps 500

Raw results: benchmarks/results/offline_speed-<stamp>.json.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import jax

sys.path.insert(0, str(Path(__file__).resolve().parent))
from offline import matmul_gflops, run_peer, update_flops  # noqa: E402  (benchmarks/offline.py)

from critix import agents  # noqa: E402
from critix.train.collect import CollectConfig, collect  # noqa: E402
from critix.data.datasets import read_dataset  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RUN_OPTIONS = {"td3bc": ["--normalize-obs"], "iql": ["--normalize-reward"]}  # as benchmarks/offline.py


def critix_run(algo: str, dataset: Path, steps: int, seeds: int, chunk: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="critix-offline-speed-") as tmp:
        cmd = [sys.executable, "-m", "critix.cli", "train", algo, "--dataset", str(dataset), "--steps", str(steps),
               "--num-seeds", str(seeds), "--chunk-size", str(chunk), "--eval-every", "0", "--eval-episodes", "1",
               "--no-progress", "--no-tensorboard", "--run-dir", str(Path(tmp) / "run"), *RUN_OPTIONS.get(algo, [])]
        start = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise SystemExit(f"critix failed: {' '.join(cmd)}\n{proc.stderr[-3000:]}")
        summary = json.loads((Path(tmp) / "run" / "summary.json").read_text())
    return {"lib": "critix", "algo": algo, "seeds": seeds, "steps": steps,
            "steps_per_second_per_seed": summary["gradient_steps_per_second"],
            "steps_per_second_all_seeds": summary["gradient_steps_per_second"] * seeds,
            "compile_seconds": summary["compile_seconds"], "process_seconds": time.perf_counter() - start,
            "command": " ".join(cmd[2:])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="Hopper-v5")
    parser.add_argument("--algos", nargs="+", default=["iql", "td3bc", "cql"])
    parser.add_argument("--steps", type=int, default=6000, help="critix gradient steps per run")
    parser.add_argument("--chunk-size", type=int, default=1000, help="critix steps per compiled call")
    parser.add_argument("--peer-steps", type=int, default=2000, help="d3rlpy gradient steps per run")
    parser.add_argument("--peer-timeout", type=int, default=3600)
    parser.add_argument("--no-peer", action="store_true")
    parser.add_argument("--dataset", default="", help="Minari-format dataset (default: a random one, made once)")
    args = parser.parse_args()

    dataset = Path(args.dataset) if args.dataset else ROOT / "benchmarks" / "datasets" / f"{args.env}-random-speed"
    if not dataset.exists():
        # A token behaviour run (its expert reference only normalises scores, which this benchmark does not use).
        collect(CollectConfig(env=args.env, kind="random", steps=20_000, train_steps=3_000, snapshot_every=1_000,
                              learning_starts=1_000, progress=False), ["random"], {"random": str(dataset)})
    data = read_dataset(str(dataset))
    obs_dim, act_dim = data.observation_space.shape[0], data.action_space.shape[0]
    stamp = datetime.datetime.now().strftime("%Y-%m-%d-%H%M%S")
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT)
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True,
                           cwd=ROOT).stdout.strip() != ""
    meta = {"date": stamp, "command": " ".join(sys.argv), "critix_commit": commit.stdout.strip(),
            "critix_dirty": dirty, "python": platform.python_version(), "jax": jax.__version__,
            "cpu_count": os.cpu_count(), "load_at_start": list(os.getloadavg()), "dataset": str(dataset),
            "env": args.env}
    gflops = matmul_gflops(256, 256)
    out = ROOT / "benchmarks" / "results" / f"offline_speed-{stamp}.json"
    rows: list[dict[str, Any]] = []
    for algo in args.algos:
        flops = update_flops(algo, agents.get(algo).default_config, obs_dim, act_dim)
        bound = gflops * 1e9 / flops
        for seeds in (1, 3):
            row = critix_run(algo, dataset, args.steps, seeds, args.chunk_size)
            row.update({"flop_bound_steps_per_second": bound,
                        "fraction_of_flop_bound": row["steps_per_second_all_seeds"] / bound,
                        "update_gflop": flops / 1e9})
            rows.append(row)
            print(json.dumps(row), flush=True)
            write(meta, gflops, rows, out)
        if not args.no_peer:
            peer = run_peer("d3rlpy", algo, dataset, args.peer_steps, 0, args.peer_timeout, 1)
            peer.update({"lib": "d3rlpy", "algo": algo, "seeds": 1, "steps": args.peer_steps,
                         "flop_bound_steps_per_second": bound})
            rows.append(peer)
            print(json.dumps(peer), flush=True)
            write(meta, gflops, rows, out)  # after each row, so a stopped invocation keeps what it measured
    summary = []
    for algo in args.algos:
        one = next(r for r in rows if r["algo"] == algo and r["lib"] == "critix" and r["seeds"] == 1)
        three = next(r for r in rows if r["algo"] == algo and r["lib"] == "critix" and r["seeds"] == 3)
        peer = next((r for r in rows if r["algo"] == algo and r["lib"] == "d3rlpy"), {})
        peer_sps = peer.get("steps_per_second_per_seed")
        summary.append({"algo": algo, "critix_1_seed": one["steps_per_second_per_seed"],
                        "critix_3_seeds_aggregate": three["steps_per_second_all_seeds"], "d3rlpy_1_seed": peer_sps,
                        "ratio_per_seed": one["steps_per_second_per_seed"] / peer_sps if peer_sps else None,
                        "ratio_aggregate": three["steps_per_second_all_seeds"] / peer_sps if peer_sps else None,
                        "flop_bound": one["flop_bound_steps_per_second"],
                        "fraction_of_bound_1_seed": one["fraction_of_flop_bound"],
                        "fraction_of_bound_3_seeds": three["fraction_of_flop_bound"]})
        print(json.dumps(summary[-1]), flush=True)
    write(meta, gflops, rows, out, summary)
    print(f"wrote {out}")


def write(meta: dict[str, Any], gflops: float, rows: list[dict[str, Any]], out: Path,
          summary: list[dict[str, Any]] | None = None) -> None:
    meta = {**meta, "load_at_end": list(os.getloadavg()), "matmul_gflops_256": gflops}
    out.write_text(json.dumps({"meta": meta, "summary": summary, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
