"""Offline RL benchmark: collect D4RL-style datasets, train every offline agent, report normalised scores and speed.

For each env (default Hopper-v5 and HalfCheetah-v5) one behaviour run (critix SAC) makes the medium and
medium-replay datasets (`critix.train.collect`); each offline agent then trains on each dataset with S vmapped
seeds (`critix.train.offline`), and the table reports the final normalised score (mean and 95% t-interval over
seeds), the dataset's own mean normalised score, gradient steps/s per seed (S seeds vmapped in one process) and
the FLOP bound of one update (matmul FLOPs / measured matmul GFLOP/s at the same sizes). With `--peer d3rlpy`
the same datasets go through d3rlpy's IQL, CQL and TD3+BC in the peer venv (benchmarks/peers/peer_offline.py),
one after the other in this invocation, never concurrently.

    .venv/bin/python benchmarks/offline.py                                   # the full acceptance run (hours)
    .venv/bin/python benchmarks/offline.py --envs Hopper-v5 --kinds medium --collect-train-steps 20000 \
        --dataset-steps 20000 --steps 5000 --algos bc iql td3bc --num-seeds 3   # a reduced run

Raw results: benchmarks/results/offline-<stamp>.{json,csv}; the summary goes to docs/benchmarks.md by hand.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import json
import math
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from critix import agents
from critix.train.collect import CollectConfig, collect
from critix.data.datasets import read_dataset
from critix.train import offline

ROOT = Path(__file__).resolve().parents[1]
T_975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262}
RUN_OPTIONS = {"td3bc": {"normalize_obs": True}, "iql": {"normalize_reward": True},
               "xql": {"normalize_reward": True}, "fdvl": {"normalize_reward": True}}


def interval(values: list[float]) -> tuple[float, float, float]:
    """Mean and the 95% Student-t interval over seeds."""
    x = np.asarray(values, np.float64)
    mean = float(x.mean())
    if x.size < 2:
        return mean, math.nan, math.nan
    half = T_975.get(x.size - 1, 1.96) * float(x.std(ddof=1)) / math.sqrt(x.size)
    return mean, mean - half, mean + half


def mlp_flops(sizes: list[int], batch: int) -> float:
    """Forward matmul FLOPs of an MLP with these layer widths (2 * B * in * out per layer)."""
    return float(sum(2 * batch * a * b for a, b in zip(sizes[:-1], sizes[1:])))


def update_flops(algo: str, cfg: Any, obs_dim: int, act_dim: int) -> float:
    """Matmul FLOPs of one gradient step (backward = 2 x forward); an estimate, documented term by term."""
    B, h = cfg.batch_size, list(cfg.hidden_sizes)
    q = mlp_flops([obs_dim + act_dim, *h, 1], B)  # one critic, forward
    pi = mlp_flops([obs_dim, *h, act_dim], B)
    v = mlp_flops([obs_dim, *h, 1], B)
    E = getattr(cfg, "num_critics", 2)
    if algo == "bc":
        return 3 * pi
    if algo in ("iql", "xql", "fdvl"):
        # target Q(s,a); V fwd+bwd; V(s) for weights; actor fwd+bwd; V(s'); critics fwd+bwd
        return E * q + 3 * v + v + 3 * pi + v + 3 * E * q
    if algo == "td3bc":
        # every step: target actor, target critics, critics fwd+bwd; every 2nd: actor fwd+bwd through the critics
        return pi + E * q + 3 * E * q + (3 * pi + 3 * E * q) / cfg.policy_delay
    if algo == "cql":
        n = 3 * cfg.num_sampled_actions
        # actor at s' and s (2 fwd); target critics; critics fwd+bwd on (s,a) and on the 3N sampled actions;
        # actor fwd+bwd through the critics
        return 2 * pi + E * q + 3 * E * q * (1 + n) + 3 * pi + 3 * E * q
    raise ValueError(algo)


def matmul_gflops(batch: int, hidden: int, repeats: int = 200) -> float:
    """Measured fp32 matmul GFLOP/s at [batch, hidden] x [hidden, hidden] (the update's dominant shape)."""
    a = jnp.ones((batch, hidden), jnp.float32)
    b = jnp.ones((hidden, hidden), jnp.float32)

    @jax.jit
    def chain(a: jax.Array) -> jax.Array:
        return jax.lax.fori_loop(0, repeats, lambda _, x: jnp.tanh(x @ b) , a)

    chain(a).block_until_ready()
    best = math.inf
    for _ in range(3):
        start = time.perf_counter()
        chain(a).block_until_ready()
        best = min(best, time.perf_counter() - start)
    return 2 * batch * hidden * hidden * repeats / best / 1e9


def run_peer(peer: str, algo: str, dataset: Path, steps: int, seed: int, timeout: int,
             eval_episodes: int) -> dict[str, Any]:
    python = ROOT / "benchmarks" / "peers" / ".venv-d3rlpy" / "bin" / "python"
    if not python.exists():
        return {"error": f"{python} missing: run bash benchmarks/peers/install_d3rlpy.sh"}
    cmd = [str(python), str(ROOT / "benchmarks" / "peers" / "peer_offline.py"), "--algo", algo, "--dataset",
           str(dataset), "--steps", str(steps), "--seed", str(seed), "--eval-episodes", str(eval_episodes)]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout} s"}
    lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
    return json.loads(lines[-1]) if lines else {"error": out.stderr[-2000:]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--envs", nargs="+", default=["Hopper-v5", "HalfCheetah-v5"])
    parser.add_argument("--kinds", nargs="+", default=["medium", "medium-replay"])
    parser.add_argument("--algos", nargs="+", default=["bc", "iql", "cql", "td3bc", "xql", "fdvl"])
    parser.add_argument("--collect-train-steps", type=int, default=300_000, help="SAC env steps of the behaviour run")
    parser.add_argument("--snapshot-every", type=int, default=10_000)
    parser.add_argument("--dataset-steps", type=int, default=200_000, help="transitions of the medium datasets")
    parser.add_argument("--steps", type=int, default=300_000, help="gradient steps per seed")
    parser.add_argument("--num-seeds", type=int, default=3)
    parser.add_argument("--eval-episodes", type=int, default=10)
    parser.add_argument("--chunk-size", type=int, default=5_000)
    parser.add_argument("--datasets-dir", default=str(ROOT / "benchmarks" / "datasets"))
    parser.add_argument("--peer", choices=["none", "d3rlpy"], default="none")
    parser.add_argument("--peer-timeout", type=int, default=6 * 3600)
    parser.add_argument("--peer-steps", type=int, default=0, help="gradient steps of each peer run (0: --steps)")
    parser.add_argument("--peer-seeds", type=int, default=0, help="peer runs per algorithm (0: --num-seeds)")
    args = parser.parse_args()

    stamp = datetime.datetime.now().strftime("%Y-%m-%d-%H%M%S")
    out = ROOT / "benchmarks" / "results" / f"offline-{stamp}"
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT).stdout
    meta = {"date": stamp, "command": " ".join(sys.argv), "critix_commit": commit.strip(),
            "python": platform.python_version(), "jax": jax.__version__, "machine": platform.processor() or
            platform.machine(), "cpu_count": __import__("os").cpu_count()}
    rows: list[dict[str, Any]] = []
    gflops = matmul_gflops(256, 256)
    for env in args.envs:
        paths = {kind: Path(args.datasets_dir) / f"{env.lower()}-{kind}" for kind in args.kinds}
        missing = [k for k, p in paths.items() if not p.exists()]
        if missing:
            cfg = CollectConfig(env=env, kind=missing[0], train_steps=args.collect_train_steps,
                                snapshot_every=args.snapshot_every, steps=args.dataset_steps)
            start = time.perf_counter()
            made = collect(cfg, missing, {k: str(paths[k]) for k in missing})
            print(f"collected {env} {missing} in {time.perf_counter() - start:.0f} s: {json.dumps(made)}", flush=True)
        for kind, path in paths.items():
            dataset = read_dataset(path)
            obs_dim, act_dim = dataset.observation_space.shape[0], dataset.action_space.shape[0]
            for algo in args.algos:
                spec = agents.get(algo)
                run = offline.OfflineRunConfig(
                    dataset=str(path), steps=args.steps, num_seeds=args.num_seeds, chunk_size=args.chunk_size,
                    eval_every=0, eval_episodes=args.eval_episodes, progress=False, tensorboard=False,
                    run_dir=str(out / f"{env}-{kind}-{algo}"), **RUN_OPTIONS.get(algo, {}))
                summary = offline.train(algo, spec.default_config, run)
                mean, low, high = interval(summary["final_normalized_score"])
                flops = update_flops(algo, spec.default_config, obs_dim, act_dim)
                bound = gflops * 1e9 / flops
                sps = summary["gradient_steps_per_second"] or math.nan
                row = {"lib": "critix", "env": env, "kind": kind, "algo": algo, "seeds": args.num_seeds,
                       "steps": args.steps, "score_mean": mean, "score_ci_low": low, "score_ci_high": high,
                       "scores": summary["final_normalized_score"],
                       "dataset_score": summary["dataset_normalized_score_mean"],
                       "steps_per_second_per_seed": sps, "steps_per_second_all_seeds": sps * args.num_seeds,
                       "flop_bound_steps_per_second": bound, "fraction_of_flop_bound": sps * args.num_seeds / bound,
                       "wall_seconds": summary["wall_seconds"], "compile_seconds": summary["compile_seconds"]}
                rows.append(row)
                print(json.dumps(row), flush=True)
                if args.peer == "d3rlpy" and algo in ("iql", "cql", "td3bc"):
                    for seed in range(args.peer_seeds or args.num_seeds):
                        peer = run_peer("d3rlpy", algo, path, args.peer_steps or args.steps, seed, args.peer_timeout,
                                        args.eval_episodes)
                        peer.update({"lib": "d3rlpy", "env": env, "kind": kind, "algo": algo, "seed": seed})
                        rows.append(peer)
                        print(json.dumps(peer), flush=True)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps({"meta": {**meta, "matmul_gflops_256": gflops}, "rows": rows},
                                                 indent=2))
    keys = sorted({k for r in rows for k in r})
    with (out / "results.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, keys)
        writer.writeheader()
        writer.writerows(rows)
    print(f"results in {out}")


if __name__ == "__main__":
    main()
