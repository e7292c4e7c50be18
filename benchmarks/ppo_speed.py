"""PPO speed: critix host mode vs SB3 vs SBX on Gymnasium CartPole-v1, alternating in one invocation.

Same work for all: PPO with SB3's defaults (critix's defaults copy them), 4 envs, `--steps` env steps, 64x64 tanh
networks, 2048-step rollouts per env, minibatch 64, 10 epochs. Each run is its own process, one at a time:
critix, SB3, SBX, critix, SB3, SBX ... (`--pairs` rounds). Figures per run:
- critix: whole-run steps/s = steps / (wall time of rollouts + updates, compile included) and steady-state
  steps/s from its summary.json (the first, compiling iteration left out), plus its compile seconds;
- peers: steps / wall time of `learn()` (SBX's compile included).
The ratios use the whole-run figures (compile included on both sides). Evaluation is outside every timer.
Issue 19: the report checks critix at 5x SBX's steps/s (whole run) with every critix final return inside or above
the peers' range, and gives the env limit (CartPole-v1 alone with random actions: bare, and through a 4-env SAME_STEP
vector env as the loop steps it, measured before the runs) with critix's fraction of it. critix acts with
`--acting auto` (NumPy for these 64x64 networks; docs/host.md).
`--compiled` adds critix compiled PPO on gymnax:CartPole-v1 (`--compiled-seeds` seeds in one process).
Raw results: benchmarks/results/ppo_speed-<date>.json and .csv, with machine, versions, load and commands.

`--rejax` runs a different comparison instead (issue 3): critix compiled PPO against rejax 0.1.3 (its own venv,
`bash benchmarks/peers/install_rejax.sh`; `--rejax-python` to point elsewhere), both on gymnax CartPole-v1,
`--compiled-seeds` seeds x `--compiled-steps` env steps per seed, alternating critix, rejax, critix, rejax ...
(`--pairs` rounds, one process at a time). Both get the same hyperparameters as explicit flags (COMMON_PPO below;
the rejax-name mapping and the differences rejax does not let us set are in peers/peer_rejax_ppo.py's docstring).
Figures per pair, both sides timed the same way: the training program is compiled ahead of time (JAX's
`.lower(...).compile()`) and then run, each timer stopping when its work is done:
- compile: trace + lower + compile of the training program. rejax: its `jit(vmap(train))` (init included);
  critix: compile_seconds of its summary.json, the chunk programs of train/compiled.py (the run is one chunk here:
  `--log-every` = the run's steps, so one program compiles once; the small init and evaluation programs compile
  outside both timers, before and after training);
- run alone: one call of the compiled program, to `block_until_ready` on the trained state (rejax) or to the chunk's
  metrics on the host (critix: train_seconds of its summary.json);
- with compile = compile + run alone, what a first call of the jitted training costs.
The final evaluation, the checkpoint and process start-up are outside every timer (process_seconds records the
whole process).

Compile caches (both modes): `--compile-cache cold` (default) gives every run an empty persistent cache, so every
run compiles everything, a first run on the machine; `--compile-cache warm` gives each side (critix, SBX, rejax)
one cache, filled by an untimed run before its timed ones, so every timed run loads its programs, a later run of
the same configuration (benchmarks/compile_caches.py; JAX's own cache for SBX and rejax).
Ratios are rejax seconds / critix seconds (above 1: critix is faster), per pair and as medians; in odd pairs rejax
runs first. Acceptance, per pair: issue 19, both ratios at least 1.2 and every critix seed's final return (10 greedy
episodes) at least 475; issue 3 (kept), the ratio with compile above 1 and the same returns. Raw results: benchmarks/results/ppo_speed-rejax-<date>.json and .csv.

    .venv/bin/python benchmarks/ppo_speed.py --pairs 3
    .venv/bin/python benchmarks/ppo_speed.py --pairs 3 --compile-cache warm
    .venv/bin/python benchmarks/ppo_speed.py --pairs 1 --steps 20000 --no-peers
    .venv/bin/python benchmarks/ppo_speed.py --rejax --pairs 3        # 16 seeds x 1M steps each side
    .venv/bin/python benchmarks/ppo_speed.py --rejax --pairs 1 --compiled-seeds 2 --compiled-steps 50000
"""

from __future__ import annotations

import argparse
import csv
import datetime
import importlib.metadata
import json
import math
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from compile_caches import CHOICES, Caches  # noqa: E402
from dqn_speed import env_limit  # noqa: E402
from sac_speed import cpu_model  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "benchmarks"
PEER_PYTHON = BENCH / "peers" / ".venv" / "bin" / "python"
CACHES = Caches("cold")  # main() sets the --compile-cache choice
CRITIX = [sys.executable, "-m", "critix.cli"]


def run_critix(env: str, steps: int, num_envs: int, num_seeds: int, extra: list[str],
               log_every: int | None = None, src: Path | None = None, lib: str = "critix") -> dict[str, Any]:
    """One critix PPO run; `src`: a critix source folder put first on PYTHONPATH (another commit's checkout)."""
    environ = CACHES.environ(lib)
    if src is not None:
        environ["PYTHONPATH"] = f"{src.resolve()}{os.pathsep}{environ.get('PYTHONPATH', '')}"
    with tempfile.TemporaryDirectory(prefix="critix-ppo-") as tmp:
        run_dir = Path(tmp) / "run"
        cmd = [*CRITIX, "train", "ppo", "--env", env, "--steps", str(steps), "--num-envs", str(num_envs),
               "--num-seeds", str(num_seeds), "--eval-every", "0", "--log-every", str(log_every or steps),
               "--no-progress", "--no-tensorboard", "--run-dir", str(run_dir), *extra]
        t = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False, env=environ)
        process_seconds = time.perf_counter() - t
        if proc.returncode != 0:
            raise SystemExit(f"critix failed: {shlex.join(cmd)}\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
        summary = json.loads((run_dir / "summary.json").read_text())
    timed = summary["compile_seconds"] + summary["train_seconds"]  # all env steps and updates; no evaluation
    return {"lib": lib, "lib_version": summary["critix_version"], "critix_commit": summary.get("critix_commit"),
            "env": env, "num_seeds": num_seeds,
            "steps": summary["steps"], "steps_per_second": summary["steps"] / timed,
            "steps_per_second_steady": summary["steps_per_second"], "compile_seconds": summary["compile_seconds"],
            "train_seconds": summary.get("train_seconds"), "wall_seconds": timed, "process_seconds": process_seconds,
            "final_return": summary["final_return_mean"], "final_return_per_seed": summary["final_return"],
            "command": shlex.join(cmd[2:])}


def run_peer(lib: str, steps: int, num_envs: int, seed: int, peer_python: Path = PEER_PYTHON,
             torch_threads: int = 0) -> dict[str, Any]:
    cmd = [str(peer_python), str(BENCH / "peers" / "peer_ppo.py"), "--lib", lib, "--steps", str(steps),
           "--num-envs", str(num_envs), "--seed", str(seed)]
    if torch_threads:
        cmd += ["--torch-threads", str(torch_threads)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, env=CACHES.environ(lib))
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise SystemExit(f"peer failed: {shlex.join(cmd)}\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    return {**json.loads(lines[-1]), "command": shlex.join(cmd)}


# ---- critix compiled PPO vs rejax (--rejax) --------------------------------------------------------------
REJAX_PYTHON = BENCH / "peers" / ".venv-rejax" / "bin" / "python"
REJAX_SCRIPT = BENCH / "peers" / "peer_rejax_ppo.py"
# The one hyperparameter set both sides get as explicit flags: critix's PPO defaults (SB3's) as this benchmark
# runs them, adjusted where rejax hard-codes a choice (peer_rejax_ppo.py's docstring has the mapping), and with the
# learning rate annealed linearly to 0 over the run's gradient steps on both sides (CleanRL's and PureJaxRL's PPO
# default; `--constant-lr` turns it off). With SB3's constant 3e-4 the final policies at 1M steps still swing:
# results/ppo_speed-rejax-2026-11-21-211325.json has 2 of 16 critix seeds and 5 of 16 rejax seeds below 475.
COMMON_PPO: dict[str, Any] = {
    "rollout_length": 2048, "minibatch_size": 64, "num_epochs": 10, "learning_rate": 3e-4, "gamma": 0.99,
    "gae_lambda": 0.95, "clip_ratio": 0.2, "entropy_coef": 0.0, "hidden_sizes": (64, 64), "activation": "tanh",
}
RETURN_THRESHOLD = 475.0  # issue 3: every seed at least this (gymnasium's "solved" level of CartPole-v1)
SPEEDUP = 1.2  # issue 19: rejax seconds / critix seconds, with compile and on the run alone


def common_flags(p: dict[str, Any]) -> list[str]:
    """The flags both command lines share (same names in `critix train ppo` and peer_rejax_ppo.py)."""
    flags: list[str] = []
    for name, value in p.items():
        flags += [f"--{name.replace('_', '-')}", *(str(v) for v in value)] if isinstance(value, tuple) else \
            [f"--{name.replace('_', '-')}", str(value)]
    return flags


def critix_ppo_flags(p: dict[str, Any], anneal: bool) -> list[str]:
    """Every PPO field set explicitly, so no critix default decides anything (rejax equivalents in brackets)."""
    return [*common_flags(p), "--anneal-learning-rate" if anneal else "--no-anneal-learning-rate",
            "--adam-eps", "1e-8",  # [optax.adam's default eps]
            "--max-grad-norm", "0",  # [max_grad_norm=inf: rejax clips element-wise, critix by global norm: both off]
            "--value-clip-ratio", str(p["clip_ratio"]),  # [rejax always clips V to clip_eps]
            "--value-coef", "0.5",  # [vf_coef 1.0 times rejax's 0.5 * squared error]
            "--normalize-advantage", "--no-normalize-obs", "--no-normalize-reward"]


def run_critix_compiled(args: argparse.Namespace, seed: int) -> dict[str, Any]:
    per_iteration = COMMON_PPO["rollout_length"] * args.num_envs
    steps = math.ceil(args.compiled_steps / per_iteration) * per_iteration
    r = run_critix("gymnax:CartPole-v1", steps, args.num_envs, args.compiled_seeds,
                   [*critix_ppo_flags(COMMON_PPO, not args.constant_lr), "--seed", str(seed)],
                   log_every=steps)  # one chunk: compile_seconds is its compile, train_seconds its run
    per_seed = r["final_return_per_seed"]
    r.update({"run_seconds": r["train_seconds"], "final_return_min": min(per_seed), "seed": seed})
    return r


def run_rejax(args: argparse.Namespace, seed: int) -> dict[str, Any]:
    cmd = [str(args.rejax_python), str(REJAX_SCRIPT), "--num-seeds", str(args.compiled_seeds), "--steps",
           str(args.compiled_steps), "--seed", str(seed), "--num-envs", str(args.num_envs),
           *common_flags(COMMON_PPO), "--vf-coef", "1.0", *([] if args.constant_lr else ["--anneal-learning-rate"])]
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, env=CACHES.environ("rejax"))
    process_seconds = time.perf_counter() - t
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise SystemExit(f"rejax failed: {shlex.join(cmd)}\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    r = json.loads(lines[-1])
    return {**r, "final_return_per_seed": r["final_return"], "final_return": r["final_return_mean"],
            "process_seconds": process_seconds, "seed": seed, "command": shlex.join(cmd)}


def rejax_main(args: argparse.Namespace) -> None:
    if not args.rejax_python.exists():
        raise SystemExit(f"{args.rejax_python} is missing: run `bash benchmarks/peers/install_rejax.sh`")
    load_at_start = list(os.getloadavg())
    results: list[dict[str, Any]] = []
    pairs: list[dict[str, Any]] = []
    CACHES.warm("critix", lambda: run_critix_compiled(args, seed=0))
    CACHES.warm("rejax", lambda: run_rejax(args, seed=0))
    for pair in range(args.pairs):
        # critix first in even pairs, rejax first in odd ones, so neither always runs on the cooler machine
        runs = {}
        for lib in ("critix", "rejax") if pair % 2 == 0 else ("rejax", "critix"):
            runs[lib] = {"pair": pair, **(run_critix_compiled(args, seed=pair) if lib == "critix" else
                                          run_rejax(args, seed=pair))}
            print(json.dumps(runs[lib]), flush=True)
        c, r = runs["critix"], runs["rejax"]
        results += [c, r]
        ratio_with = r["wall_seconds"] / c["wall_seconds"]
        ratio_without = r["run_seconds"] / c["run_seconds"] if c["run_seconds"] else None
        pairs.append({
            "pair": pair,
            "critix_wall_with_compile": c["wall_seconds"], "rejax_wall_with_compile": r["wall_seconds"],
            "critix_wall_without_compile": c["run_seconds"], "rejax_wall_without_compile": r["run_seconds"],
            "critix_compile_seconds": c["compile_seconds"], "rejax_compile_seconds": r["compile_seconds"],
            "ratio_with_compile": ratio_with, "ratio_without_compile": ratio_without,
            "critix_final_return_min": c["final_return_min"], "rejax_final_return_min": r["final_return_min"],
            "acceptance_met": (ratio_with >= SPEEDUP and (ratio_without or 0.0) >= SPEEDUP
                               and c["final_return_min"] >= RETURN_THRESHOLD),
            "issue3_acceptance_met": ratio_with > 1 and c["final_return_min"] >= RETURN_THRESHOLD,
        })

    def median(key: str) -> float | None:
        values = [p[key] for p in pairs if p[key] is not None]
        return statistics.median(values) if values else None

    report: dict[str, Any] = {
        "ratio_note": "rejax seconds / critix seconds; above 1 means critix is faster",
        **{f"median_{k}": median(k) for k in pairs[0] if "acceptance" not in k and k != "pair"},
        "pairs": pairs,
        "acceptance_met_every_pair": all(p["acceptance_met"] for p in pairs),
        "acceptance": f"issue 19: critix at least {SPEEDUP:g}x faster than rejax (rejax seconds / critix seconds) "
                      f"both with compile and on the run alone, every critix seed >= {RETURN_THRESHOLD:g}",
        "issue3_acceptance_met_every_pair": all(p["issue3_acceptance_met"] for p in pairs),
        "issue3_acceptance": f"critix wall (compile included) below rejax's, every critix seed >= "
                             f"{RETURN_THRESHOLD:g}",
        "hyperparameters": {**COMMON_PPO, "anneal_learning_rate": not args.constant_lr, "num_envs": args.num_envs,
                            "seeds": args.compiled_seeds, "steps_per_seed": results[0]["steps"],
                            "critix_flags": critix_ppo_flags(COMMON_PPO, not args.constant_lr)},
    }
    write_results("ppo_speed-rejax", load_at_start, report, results,
                  ["pair", "lib", "lib_version", "num_seeds", "steps", "seed", "wall_seconds", "run_seconds",
                   "compile_seconds", "final_return", "final_return_min", "process_seconds"],
                  peer_versions={k: results[1].get(k) for k in ("lib_version", "jax", "jaxlib", "gymnax", "flax",
                                                                "optax", "python")})


def write_results(name: str, load_at_start: list[float], report: dict[str, Any], results: list[dict[str, Any]],
                  keys: list[str], peer_versions: dict[str, Any] | None = None) -> None:
    stamp = datetime.datetime.now().strftime("%Y-%m-%d-%H%M%S")
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=REPO).stdout
    dirty = bool(subprocess.run(["git", "status", "--porcelain"], capture_output=True, text=True, cwd=REPO).stdout)
    import jax

    meta = {"date": stamp, "machine": platform.processor() or platform.machine(), "cpu_model": cpu_model(),
            "cpu_count": os.cpu_count(), "python": platform.python_version(), "jax": jax.__version__,
            "jaxlib": importlib.metadata.version("jaxlib"), "critix_commit": commit.strip(), "critix_dirty": dirty,
            "load_at_start": load_at_start, "load_at_end": list(os.getloadavg()), "command": shlex.join(sys.argv),
            "compile_cache": CACHES.mode}
    if peer_versions:
        meta["peer"] = peer_versions
    out = BENCH / "results" / f"{name}-{stamp}"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps({"meta": meta, "report": report, "runs": results}, indent=2))
    with out.with_suffix(".csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, keys, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(results)
    print(json.dumps(report, indent=2))
    print(f"wrote {out}.json and .csv")


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
    parser.add_argument("--critix-base-src", type=Path, default=None,
                        help="a critix source folder of another commit (e.g. a `git worktree`'s src/): its host "
                             "run (and compiled run with --compiled) alternates with critix's, as 'critix-base'")
    parser.add_argument("--compiled-steps", type=int, default=1_000_000)
    parser.add_argument("--compiled-seeds", type=int, default=16)
    parser.add_argument("--rejax", action="store_true",
                        help="instead: critix compiled PPO vs rejax on gymnax:CartPole-v1 (issue 3)")
    parser.add_argument("--rejax-python", type=Path, default=REJAX_PYTHON, help="python of the rejax venv")
    parser.add_argument("--constant-lr", action="store_true",
                        help="--rejax: keep the learning rate constant (SB3's default) instead of annealing it")
    parser.add_argument("--compile-cache", choices=CHOICES, default="cold",
                        help="cold: every run compiles from an empty cache; warm: each side's untimed first run "
                             "fills a cache its timed runs load from (benchmarks/compile_caches.py)")
    args = parser.parse_args()
    global CACHES
    CACHES = Caches(args.compile_cache)
    if args.rejax:
        rejax_main(args)
        return
    if not args.no_peers and not args.peer_python.exists():
        raise SystemExit(f"{args.peer_python} is missing: run `bash benchmarks/peers/install.sh` (or pass --no-peers)")
    load_at_start = list(os.getloadavg())
    if load_at_start[0] > 0.5:
        print(f"warning: load average {load_at_start[0]:.2f} > 0.5 at the start: the machine is busy, speed "
              "figures are not valid", file=sys.stderr)
    limit = env_limit("CartPole-v1", num_envs=args.num_envs)
    print(json.dumps({"env_limit": limit}), flush=True)
    results: list[dict[str, Any]] = []
    bases = [] if args.critix_base_src is None else ["critix-base"]
    CACHES.warm("critix", lambda: run_critix("CartPole-v1", args.steps, args.num_envs, 1, []))
    for base in bases:
        CACHES.warm(base, lambda: run_critix("CartPole-v1", args.steps, args.num_envs, 1, [],
                                             src=args.critix_base_src, lib=base))
    for lib in ([] if args.no_peers else ["sbx"]):  # SB3 compiles nothing
        CACHES.warm(lib, lambda: run_peer(lib, args.steps, args.num_envs, 0, args.peer_python, args.torch_threads))
    for pair in range(args.pairs):
        results.append({"pair": pair, **run_critix("CartPole-v1", args.steps, args.num_envs, 1, [])})
        print(json.dumps(results[-1]), flush=True)
        for base in bases:
            results.append({"pair": pair, **run_critix("CartPole-v1", args.steps, args.num_envs, 1, [],
                                                       src=args.critix_base_src, lib=base)})
            print(json.dumps(results[-1]), flush=True)
        if args.compiled and bases:  # compiled runs alternate too when two commits are compared
            for src, lib in ((None, "critix"), (args.critix_base_src, "critix-base")):
                results.append({"pair": pair, **run_critix("gymnax:CartPole-v1", args.compiled_steps, args.num_envs,
                                                           args.compiled_seeds, [], src=src, lib=lib)})
                print(json.dumps(results[-1]), flush=True)
        for lib in ([] if args.no_peers else ["sb3", "sbx"]):
            results.append({"pair": pair, **run_peer(lib, args.steps, args.num_envs, pair, args.peer_python,
                                                       args.torch_threads)})
            print(json.dumps(results[-1]), flush=True)
    if args.compiled and not bases:
        results.append({"pair": None, **run_critix("gymnax:CartPole-v1", args.compiled_steps, args.num_envs,
                                                    args.compiled_seeds, [])})
        print(json.dumps(results[-1]), flush=True)
    host = [r for r in results if r["lib"] == "critix" and r["env"] == "CartPole-v1"]
    report: dict[str, Any] = {"critix_median_steps_per_second": statistics.median(r["steps_per_second"] for r in host),
                              "critix_median_steps_per_second_steady": statistics.median(
                                  r["steps_per_second_steady"] for r in host), "env_limit": limit}
    report["critix_fraction_of_env_limit"] = (report["critix_median_steps_per_second_steady"]
                                              / limit["vector_env_steps_per_second"])
    for env, kind in (("gymnax:CartPole-v1", "compiled_"), ("CartPole-v1", "")):
        for base in bases:
            ours = [r for r in results if r["lib"] == "critix" and r["env"] == env]
            theirs = [r for r in results if r["lib"] == base and r["env"] == env]
            for key in ("steps_per_second", "steps_per_second_steady"):
                ratios = [c[key] / p[key] for c, p in zip(ours, theirs, strict=True) if c[key] and p[key]]
                if ratios:
                    report[f"{kind}{key}_ratio_vs_{base}_per_pair"] = ratios
                    report[f"{kind}{key}_ratio_vs_{base}_median"] = statistics.median(ratios)
    for lib in ([] if args.no_peers else ["sb3", "sbx"]):
        ratios = [c["steps_per_second"] / p["steps_per_second"]
                  for c, p in zip(host, [r for r in results if r["lib"] == lib], strict=True)]
        report[f"{lib}_median_steps_per_second"] = statistics.median(
            r["steps_per_second"] for r in results if r["lib"] == lib)
        report[f"ratio_vs_{lib}_per_pair"] = ratios
        report[f"ratio_vs_{lib}_median"] = statistics.median(ratios)
        report[f"{lib}_final_returns"] = [r["final_return"] for r in results if r["lib"] == lib]
    report["critix_final_returns"] = [r["final_return"] for r in host]
    if not args.no_peers:
        peers = report["sb3_final_returns"] + report["sbx_final_returns"]
        report["target"] = "issue 19: critix at least 5x SBX's steps/s (whole run), returns as the peers'"
        report["target_met"] = {"speed": report["ratio_vs_sbx_median"] >= 5.0,
                                "returns": min(report["critix_final_returns"]) >= min(peers)}
    write_results("ppo_speed", load_at_start, report, results,
                  ["pair", "lib", "env", "num_seeds", "steps", "steps_per_second", "steps_per_second_steady",
                   "compile_seconds", "final_return"])


if __name__ == "__main__":
    main()
