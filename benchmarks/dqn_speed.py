"""DQN speed: critix vs SB3 vs SBX on Gymnasium CartPole-v1, alternating in one invocation (issue 4).

Same work for all three: SB3 2.9.2's DQN defaults (SB3_DQN below), 1 env, 1 seed, `--steps` env steps. Each run is
its own process, one at a time: critix, SB3, SBX, critix, SB3, SBX ... (`--pairs` rounds). The peers run
benchmarks/peers/peer_dqn.py in the peers' venv (install.sh) with every hyperparameter passed explicitly.

critix gets the same values as explicit `critix train dqn` flags (critix_dqn_flags), so none of its tuned
CartPole defaults (critix.agents.tuned: 256x256, lr 2.3e-3, dueling, 3-step, lr decay, chunk 256 ...) applies;
after each run the run folder's config.json is checked field by field: every field must be the value given here
or, for the fields not given (inert here: distributional-head and prioritized-replay settings), dqn.Config's own
default, and every tuned field must be one that the flags set. Mapping of the SB3 settings to critix:
- train_freq 4, gradient_steps 1 -> --chunk-size 4 --utd-ratio 0.25: the host loop steps the env chunk_size times
  with the current network, then makes round(utd_ratio x chunk_size) = 1 gradient step on a batch drawn from the
  buffer that already holds those 4 transitions; SB3 collects train_freq = 4 steps, then makes gradient_steps = 1.
  The acting network therefore changes every 4 env steps on both sides. (A larger chunk with the same ratio would
  be faster for critix but acts with a staler network: not the same algorithm.)
- target_update_interval 10,000 env steps -> --target-update-period 2500 gradient steps (10,000 x 0.25), tau 1.0
  -> --target-tau 1.0 (hard copy);
- exploration_fraction 0.1 x --steps -> --exploration-steps (critix's epsilon counts env steps from the start,
  learning_starts + gradient steps / utd_ratio, as SB3's schedule counts from step 0);
- learning_starts 100: SB3 trains first after step 104 (num_timesteps > learning_starts at a train_freq
  boundary), critix after step 100 (>=): one gradient step more over the run;
- Adam (eps 1e-8 on all sides), max_grad_norm 10 (global norm on all sides), Huber loss, 64x64 ReLU, no double Q
  (--no-double-q: critix's default is on), no dueling, 1-step targets, uniform replay of capacity 1e6.

Figures per run:
- critix: whole-run steps/s = steps / (compile_seconds + train_seconds + warmup_seconds) from the final
  checkpoint's counters (every chunk from the first env step to the end, as SB3's learn() counts its warm-up
  steps too; runs before 2026-12-05 16:30 UTC left the first chunk of random warm-up actions untimed) and the
  steady-state figure (summary's steps_per_second: the chunks after the compiling one; the first policy call,
  which compiles `act`, is inside it);
- peers: steps / wall time of `learn()` (SBX's compiles included) and a steady figure from the first env step
  after their first gradient step (step 105) to the end.
The headline ratio (issue 4: at least 3x SB3) uses the whole-run figures; steady ratios are reported beside it.
Evaluation (10 deterministic episodes at the end) is outside every timer.

Chunk sizes (issue 19): `--chunk-sizes 4,64` (default) runs critix once per chunk size in every round, as "critix"
(chunk 4: SB3's exact schedule, the acting network changes every 4 env steps) and "critix-c64" (chunk 64: the same
0.25 gradient steps per env step, applied in 16-step groups, so the acting network is up to 64 env steps behind;
docs/host.md says what that changes). A value ending in "o" ("64o": "critix-c64-overlap") adds --overlap-updates: the
chunk's updates run while the next chunk steps the env, which then acts one chunk later (up to 128 env steps behind
at chunk 64). Acting is `--acting auto` (NumPy for this 64x64 network). The issue-19 target:
critix at 10x SB3's steps/s (whole run) with the mean final return over the pairs' seeds inside the range of SB3's
final returns; both are reported per chunk size. The env limit: CartPole-v1 stepped with random actions alone, bare
(`gym.make`) and through the 1-env SAME_STEP vector env the loop uses, measured in the same invocation before
the runs; critix's steps/s as a fraction of it is reported.

Why 100,000 steps by default: SB3's exploration_fraction 0.1 then gives 10,000 exploration steps, which is exactly
dqn.Config's default exploration_steps (its docstring: SB3's "10k of 100k"), so critix's own defaults and SB3's
coincide at this budget; and critix's compile (a few seconds) weighs on a 50k run twice as much as on a 100k run,
where a 3x-SB3 critix would train for only about 8 s. One pair takes about 2.5 minutes on 2 idle cores.

`--compile-cache cold` (default): every critix and SBX run starts from an empty persistent compile cache (a first run
on the machine); `warm`: each starts from a cache its side's untimed first run filled (a later run of the same
configuration; benchmarks/compile_caches.py).

    .venv/bin/python benchmarks/dqn_speed.py --pairs 3 --torch-threads 1
    .venv/bin/python benchmarks/dqn_speed.py --pairs 1 --steps 5000        # a smoke run
    .venv/bin/python benchmarks/dqn_speed.py --pairs 3 --skip sbx --chunk-sizes 64   # issue 19's headline only
    .venv/bin/python benchmarks/dqn_speed.py --pairs 3 --skip sbx --chunk-sizes 64 --compile-cache warm
    .venv/bin/python benchmarks/dqn_speed.py --pairs 3 --skip sbx --chunk-sizes 64,64o   # with --overlap-updates
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import datetime
import importlib.metadata
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from compile_caches import CHOICES, Caches  # noqa: E402
from sac_speed import cpu_model  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "benchmarks"
PEER_PYTHON = BENCH / "peers" / ".venv" / "bin" / "python"
CACHES = Caches("cold")  # main() sets the --compile-cache choice
PEER_SCRIPT = BENCH / "peers" / "peer_dqn.py"
CRITIX = [sys.executable, "-m", "critix.cli"]
LOAD_AT_START = list(os.getloadavg())

# SB3 2.9.2 DQN defaults (stable_baselines3.DQN.__init__ and DQNPolicy: net_arch [64, 64], ReLU, Adam).
SB3_DQN: dict[str, Any] = {
    "learning_rate": 1e-4, "buffer_size": 1_000_000, "learning_starts": 100, "batch_size": 32, "tau": 1.0,
    "gamma": 0.99, "train_freq": 4, "gradient_steps": 1, "target_update_interval": 10_000,
    "exploration_fraction": 0.1, "exploration_initial_eps": 1.0, "exploration_final_eps": 0.05,
    "max_grad_norm": 10.0, "hidden_sizes": (64, 64),
}


def critix_dqn_config(p: dict[str, Any], steps: int, chunk_size: int | None = None,
                      overlap: bool = False) -> tuple[dict[str, Any], dict[str, Any]]:
    """The SB3 settings as critix dqn.Config fields and RunConfig fields (see the module docstring); `chunk_size`
    (default: SB3's train_freq) is how many env steps the host loop takes between update calls; `overlap`: with
    --overlap-updates (a chunk's updates run while the next chunk steps the envs)."""
    utd = p["gradient_steps"] / p["train_freq"]
    agent = {
        "hidden_sizes": tuple(p["hidden_sizes"]), "activation": "relu", "encoder": "mlp", "dueling": False,
        "double_q": False, "critic_head": "scalar", "scalar_loss": "huber", "q_lr": p["learning_rate"],
        "q_lr_decay_steps": 0, "max_grad_norm": p["max_grad_norm"], "gamma": p["gamma"], "n_step": 1,
        "target_tau": p["tau"], "target_update_period": round(p["target_update_interval"] * utd),
        "batch_size": p["batch_size"], "epsilon_start": p["exploration_initial_eps"],
        "epsilon_end": p["exploration_final_eps"],
        "exploration_steps": round(p["exploration_fraction"] * steps), "prioritized": False, "augmentation_pad": 0,
        # Inert for the scalar head; given so that the tuned CartPole value range does not show in config.json.
        "v_min": -100.0, "v_max": 100.0,
    }
    run = {"chunk_size": chunk_size or p["train_freq"], "num_envs": 1, "num_seeds": 1, "normalize_obs": False,
           "buffer_size": p["buffer_size"], "learning_starts": p["learning_starts"], "utd_ratio": utd}
    if overlap:
        run["overlap_updates"] = True
    return agent, run


def to_flags(values: dict[str, Any]) -> list[str]:
    flags: list[str] = []
    for name, value in values.items():
        flag = "--" + name.replace("_", "-")
        if isinstance(value, bool):
            flags.append(flag if value else "--no-" + name.replace("_", "-"))
        elif isinstance(value, tuple):
            flags += [flag, *(str(v) for v in value)]
        else:
            flags += [flag, str(value)]
    return flags


def verify_config(config: dict[str, Any], agent: dict[str, Any], run: dict[str, Any]) -> None:
    """config.json must hold exactly the given values, dqn.Config defaults elsewhere, and no tuned value."""
    from critix.agents import dqn, tuned

    def flat(values: dict[str, Any]) -> dict[str, Any]:  # value_head's fields beside the others, as flags are
        return {k: v for name, value in values.items()
                for k, v in (value.items() if isinstance(value, dict) else [(name, value)])}

    defaults = flat(dataclasses.asdict(dqn.Config()))
    problems = []
    for name, value in flat(config["agent"]).items():
        want = agent.get(name, defaults[name])
        have = tuple(value) if isinstance(value, list) else value
        if have != (tuple(want) if isinstance(want, list) else want):
            problems.append(f"agent.{name} = {value!r}, expected {want!r}")
    for name, want in run.items():
        if config["run"][name] != want:
            problems.append(f"run.{name} = {config['run'][name]!r}, expected {want!r}")
    entry = tuned.tuned("dqn", config["run"]["env"])
    if entry is not None:  # every tuned field must have been overridden by a flag
        problems += [f"tuned field {k} not set by a flag" for k in {**entry.agent, **entry.run}
                     if k not in agent and k not in run]
    if problems:
        raise SystemExit("critix's config.json does not match the SB3 settings:\n  " + "\n  ".join(problems))


def run_critix(env: str, steps: int, seed: int, chunk_size: int | None = None, src: str | None = None,
               side: str = "critix", overlap: bool = False) -> dict[str, Any]:
    """One critix run; `src`: a critix source folder put first on PYTHONPATH (another commit's checkout); `side`:
    whose compile cache it uses (`CACHES`)."""
    agent, run = critix_dqn_config(SB3_DQN, steps, chunk_size, overlap)
    environ = CACHES.environ(side)
    if src:
        environ["PYTHONPATH"] = f"{Path(src).resolve()}{os.pathsep}{environ.get('PYTHONPATH', '')}"
    with tempfile.TemporaryDirectory(prefix="critix-dqn-") as tmp:
        run_dir = Path(tmp) / "run"
        cmd = [*CRITIX, "train", "dqn", "--env", env, "--steps", str(steps), "--seed", str(seed),
               "--eval-every", "0", "--eval-episodes", "10", "--log-every", str(max(1, steps // 10)),
               "--no-progress", "--no-tensorboard", "--run-dir", str(run_dir), *to_flags(agent), *to_flags(run)]
        t = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False, env=environ)
        process_seconds = time.perf_counter() - t
        if proc.returncode != 0:
            raise SystemExit(f"critix failed: {shlex.join(cmd)}\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
        summary = json.loads((run_dir / "summary.json").read_text())
        config = json.loads((run_dir / "config.json").read_text())
        verify_config(config, agent, run)
        with (run_dir / "metrics.csv").open() as f:
            rows = [(int(r["step"]), float(r["wall_seconds"])) for r in csv.DictReader(f)]
        # summary.json of the off-policy loop has no train_seconds: the final checkpoint's counters do.
        last = sorted((run_dir / "checkpoints").glob("step_*"))[-1]
        counters = json.loads((last / "meta.json").read_text())["counters"]
    timed = counters["compile_seconds"] + counters["train_seconds"] + counters.get("warmup_seconds", 0.0)
    # Between the first and the last metrics row (10% and 100% of the run): no compile of any kind inside.
    late = ((rows[-1][0] - rows[0][0]) / (rows[-1][1] - rows[0][1])
            if len(rows) > 1 and rows[-1][1] > rows[0][1] else None)
    return {"lib": "critix", "lib_version": summary["critix_version"], "env": env, "seed": seed,
            "steps": summary["steps"], "steps_per_second": summary["steps"] / timed,
            "steps_per_second_steady": summary["steps_per_second"], "steps_per_second_after_10pct": late,
            "compile_seconds": counters["compile_seconds"], "train_seconds": counters["train_seconds"],
            "warmup_seconds": counters.get("warmup_seconds", 0.0),
            "train_steps": counters["train_steps"], "timed_seconds": timed, "process_seconds": process_seconds, "gradient_steps": summary["gradient_steps"],
            "final_return": summary["final_return_mean"], "config_verified": True, "config": config,
            "chunk_size": run["chunk_size"],
            "command": shlex.join(cmd[2:])}


def run_peer(lib: str, env: str, steps: int, seed: int, peer_python: Path, torch_threads: int) -> dict[str, Any]:
    p = SB3_DQN
    cmd = [str(peer_python), str(PEER_SCRIPT), "--lib", lib, "--env", env, "--steps", str(steps), "--seed",
           str(seed), *to_flags({k: v for k, v in p.items()})]
    if torch_threads:
        cmd += ["--torch-threads", str(torch_threads)]
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, env=CACHES.environ(lib))
    process_seconds = time.perf_counter() - t
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise SystemExit(f"peer failed: {shlex.join(cmd)}\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    return {**json.loads(lines[-1]), "process_seconds": process_seconds, "command": shlex.join(cmd)}


def env_limit(env_id: str, steps: int = 50_000, num_envs: int = 1) -> dict[str, float]:
    """Random-action steps/s of the env alone: bare (`gym.make`, reset at episode ends) and through the
    `num_envs`-env SAME_STEP sync vector env the host loop steps (critix.envs.gym.make_vector_env), counting every
    env's step."""
    import gymnasium as gym
    import numpy as np

    from critix.envs.gym import make_vector_env

    rng = np.random.default_rng(0)
    bare = gym.make(env_id)
    bare.reset(seed=0)
    actions = [bare.action_space.sample() for _ in range(1000)]
    begin = time.perf_counter()
    for i in range(steps):
        _, _, terminated, truncated, _ = bare.step(actions[i % 1000])
        if terminated or truncated:
            bare.reset()
    bare_rate = steps / (time.perf_counter() - begin)
    bare.close()
    vec = make_vector_env(env_id, num_envs, 0, "sync")
    vec.reset(seed=0)
    batched = [np.asarray([actions[(i + j) % 1000] for j in range(num_envs)]) for i in range(1000)]
    vector_steps = max(1, steps // num_envs)
    begin = time.perf_counter()
    for i in range(vector_steps):
        vec.step(batched[i % 1000])
    vector_rate = vector_steps * num_envs / (time.perf_counter() - begin)
    vec.close()
    del rng
    return {"bare_env_steps_per_second": bare_rate, "vector_env_steps_per_second": vector_rate,
            "num_envs": num_envs, "steps": steps}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="CartPole-v1")
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--peer-python", type=Path, default=PEER_PYTHON, help="python of the peers' venv")
    parser.add_argument("--torch-threads", type=int, default=0,
                        help="torch threads for the peers (1 avoids spin-waiting when the cores are shared)")
    parser.add_argument("--chunk-sizes", default="4,64",
                        help="critix's --chunk-size values, one critix run each per round (4: SB3's train_freq); a "
                             "value ending in 'o' (64o) runs that chunk size with --overlap-updates")
    parser.add_argument("--skip", default="", help="peers to leave out, e.g. sbx")
    parser.add_argument("--critix-base-src", default=None,
                        help="a critix source folder of another commit (e.g. a `git worktree`'s src/): each chunk size "
                             "also runs with it as 'critix-base' ('critix-base-c64' ...) in the same alternation, "
                             "for a before/after speed comparison (ratios: <lib>_vs_base_*)")
    parser.add_argument("--compiled", action="store_true",
                        help="also run critix in compiled mode on gymnax:<env> (the same flags; the same schedule: "
                             "4 env steps, then 1 gradient step) in every round")
    parser.add_argument("--compile-cache", choices=CHOICES, default="cold",
                        help="cold: every run compiles from an empty cache; warm: each side's untimed first run "
                             "fills a cache its timed runs load from (benchmarks/compile_caches.py)")
    args = parser.parse_args()
    global CACHES
    CACHES = Caches(args.compile_cache)
    if not args.peer_python.exists():
        raise SystemExit(f"{args.peer_python} is missing: run `bash benchmarks/peers/install.sh`")
    if LOAD_AT_START[0] > 0.5:
        print(f"warning: load average {LOAD_AT_START[0]:.2f} > 0.5 at the start: the machine is busy, speed "
              "figures are not valid", file=sys.stderr)
    variants = [(int(v.removesuffix("o")), v.endswith("o")) for v in args.chunk_sizes.split(",") if v]
    chunks = {("critix" if c == SB3_DQN["train_freq"] else f"critix-c{c}") + ("-overlap" if o else ""): c
              for c, o in variants}
    overlapping = {name for name in chunks if name.endswith("-overlap")}
    skip = {v for v in args.skip.split(",") if v}
    bases = {name.replace("critix", "critix-base", 1): name for name in chunks} if args.critix_base_src else {}
    libs = [lib for name in chunks for lib in (name, *[b for b, m in bases.items() if m == name])]
    libs += [lib for lib in ("sb3", "sbx") if lib not in skip]
    libs += ["critix-compiled"] if args.compiled else []
    limit = env_limit(args.env)
    print(json.dumps({"env_limit": limit}), flush=True)
    results: list[dict[str, Any]] = []

    def run(lib: str, pair: int) -> dict[str, Any]:
        if lib in chunks:
            return {**run_critix(args.env, args.steps, pair, chunks[lib], overlap=lib in overlapping), "lib": lib}
        if lib in bases:
            return {**run_critix(args.env, args.steps, pair, chunks[bases[lib]], src=args.critix_base_src,
                                 side="critix-base", overlap=bases[lib] in overlapping), "lib": lib}
        if lib == "critix-compiled":
            return {**run_critix(f"gymnax:{args.env}", args.steps, pair), "lib": "critix-compiled"}
        return run_peer(lib, args.env, args.steps, pair, args.peer_python, args.torch_threads)

    for lib in libs:  # --compile-cache warm: one untimed run of each (chunk sizes compile their own programs)
        if lib != "sb3":  # SB3 compiles nothing
            CACHES.warm(lib, lambda: run(lib, 0))
    for pair in range(args.pairs):
        for lib in libs:
            r = run(lib, pair)
            results.append({"pair": pair, **r})
            print(json.dumps({k: v for k, v in results[-1].items() if k != "config"}), flush=True)

    def of(lib: str) -> list[dict[str, Any]]:
        return [r for r in results if r["lib"] == lib]

    report: dict[str, Any] = {"ratio_note": "critix steps/s / peer steps/s, per pair; whole = compile included",
                              "env_limit": limit}
    for lib in libs:
        report[f"{lib}_median_steps_per_second"] = statistics.median(r["steps_per_second"] for r in of(lib))
        steady = [r["steps_per_second_steady"] for r in of(lib) if r["steps_per_second_steady"]]
        report[f"{lib}_median_steps_per_second_steady"] = statistics.median(steady) if steady else None
        report[f"{lib}_final_returns"] = [r["final_return"] for r in of(lib)]
    for base, mine in bases.items():
        for kind, field in (("whole", "steps_per_second"), ("steady", "steps_per_second_steady")):
            ratios = [c[field] / b[field] for c, b in zip(of(mine), of(base), strict=True) if c[field] and b[field]]
            report[f"{mine}_vs_base_{kind}_per_pair"] = ratios
            report[f"{mine}_vs_base_{kind}_median"] = statistics.median(ratios) if ratios else None
        report[f"{base}_compile_seconds"] = [r["compile_seconds"] for r in of(base)]
        report[f"{mine}_compile_seconds"] = [r["compile_seconds"] for r in of(mine)]
        report[f"{mine}_vs_base_process_seconds_per_pair"] = [
            c["process_seconds"] / b["process_seconds"] for c, b in zip(of(mine), of(base), strict=True)]
    for mine in [*chunks, *bases]:
        report[f"{mine}_fraction_of_env_limit"] = (report[f"{mine}_median_steps_per_second_steady"] or 0.0) / \
            limit["vector_env_steps_per_second"]
        for lib in [p for p in ("sb3", "sbx") if p in libs]:
            whole = [c["steps_per_second"] / p["steps_per_second"] for c, p in zip(of(mine), of(lib), strict=True)]
            steady = [c["steps_per_second_steady"] / p["steps_per_second_steady"]
                      for c, p in zip(of(mine), of(lib), strict=True)
                      if c["steps_per_second_steady"] and p["steps_per_second_steady"]]
            key = f"{mine}_vs_{lib}" if mine != "critix" else f"ratio_vs_{lib}"
            report[f"{key}_per_pair"] = whole
            report[f"{key}_median"] = statistics.median(whole)
            report[f"{key}_steady_per_pair"] = steady
            report[f"{key}_steady_median"] = statistics.median(steady) if steady else None
    if args.compiled and "sb3" in libs:
        compiled = [c["steps_per_second"] / p["steps_per_second"]
                    for c, p in zip(of("critix-compiled"), of("sb3"), strict=True)]
        report["ratio_compiled_vs_sb3_per_pair"] = compiled
        report["ratio_compiled_vs_sb3_median"] = statistics.median(compiled)
    if "sb3" in libs:
        sb3_returns = report["sb3_final_returns"]
        report["target"] = ("issue 19: critix at least 10x SB3's steps/s (whole run, compile included), mean final "
                            "return inside the range of SB3's final returns")
        for mine in chunks:
            ratio = report[f"{mine}_vs_sb3_median" if mine != "critix" else "ratio_vs_sb3_median"]
            mean_return = statistics.mean(report[f"{mine}_final_returns"])
            report[f"{mine}_target_met"] = {
                "speed": ratio >= 10.0, "returns": min(sb3_returns) <= mean_return <= max(sb3_returns),
                "mean_final_return": mean_return, "sb3_final_return_range": [min(sb3_returns), max(sb3_returns)]}
    agent, run = critix_dqn_config(SB3_DQN, args.steps)
    report["hyperparameters"] = {"sb3": SB3_DQN, "critix_agent": agent, "critix_run": run,
                                 "critix_flags": to_flags(agent) + to_flags(run),
                                 "critix_chunk_sizes": chunks}

    stamp = datetime.datetime.now().strftime("%Y-%m-%d-%H%M%S")

    def git(*a: str) -> str:
        return subprocess.run(["git", *a], capture_output=True, text=True, cwd=REPO).stdout.strip()

    peer = next((r for r in results if r["lib"] == "sbx"), {})
    meta = {"date": stamp, "critix_base_src": args.critix_base_src, "cpu_model": cpu_model(), "cpu_count": os.cpu_count(), "python": platform.python_version(),
            "jax": importlib.metadata.version("jax"), "jaxlib": importlib.metadata.version("jaxlib"),
            "critix_commit": git("rev-parse", "--short", "HEAD"), "critix_dirty": bool(git("status", "--porcelain")),
            "peers": {"sb3": next((r["lib_version"] for r in results if r["lib"] == "sb3"), None),
                      "sbx": peer.get("lib_version"), "torch": peer.get("torch"), "peer_jax": peer.get("jax"),
                      "gymnasium": peer.get("gymnasium"), "torch_threads": args.torch_threads or "torch default"},
            "load_at_start": LOAD_AT_START, "load_at_end": list(os.getloadavg()), "command": shlex.join(sys.argv),
            "compile_cache": CACHES.mode}
    out = BENCH / "results" / f"dqn_speed-{stamp}"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps({"meta": meta, "report": report, "runs": results}, indent=2))
    keys = ["pair", "lib", "lib_version", "env", "steps", "chunk_size", "steps_per_second", "steps_per_second_steady",
            "compile_seconds", "gradient_steps", "final_return", "process_seconds"]
    with out.with_suffix(".csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, keys, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(results)
    print(json.dumps({k: v for k, v in report.items() if k != "hyperparameters"}, indent=2))
    print(f"wrote {out}.json and .csv")


if __name__ == "__main__":
    main()
