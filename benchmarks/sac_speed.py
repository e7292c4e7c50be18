"""SAC speed: critix vs Stable-Baselines3 vs SBX, alternating in one invocation, plus the FLOP-bound limit.

Runs in the main venv (critix's). Each run is its own process and only one runs at a time: for every env,
`--pairs` rounds of critix, SB3, SBX (A B C A B C ...). All use SAC with critix's defaults ([256, 256], batch
256, buffer 1e6, lr 3e-4, UTD 1, twin critics, learned temperature) for `--steps` env steps of which the
first `--learning-starts` are random.

What is timed (see benchmarks/README.md):
- critix: `steps_per_second` from its summary.json: env steps + updates after learning starts, the chunk that
  compiles the update (`compile_seconds`, reported) and evaluation left out.
- peers: `steps_per_second_after_learning_starts` from peer_sac.py: every env step + update after learning
  starts, their first update (SBX's compile) included; `steps_per_second_after_first_update` leaves it out
  and is the like-for-like steady-state figure. Ratios are given against both.

`--seeds-scaling`: on one env, critix with 1 seed, critix with 8 seeds in one process (aggregate seed-steps/s
= steps/s x 8), and 8 SB3 processes started together on the same cores (aggregate = sum of their steps/s).

Raw results go to benchmarks/results/<name>-<date>.json and .csv, with the machine, versions and command.

    .venv/bin/python benchmarks/sac_speed.py                         # HalfCheetah-v5 and Pendulum-v1, 3 pairs
    .venv/bin/python benchmarks/sac_speed.py --steps 600 --learning-starts 300 --pairs 1 --envs Pendulum-v1
    .venv/bin/python benchmarks/sac_speed.py --seeds-scaling
"""

from __future__ import annotations

import argparse
import csv
import datetime
import importlib.metadata
import itertools
import json
import os
import platform
import shlex
import shutil
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
sys.path.insert(0, str(BENCH))
from compile_caches import CHOICES, Caches  # noqa: E402

CACHES = Caches("cold")  # main() sets the --compile-cache choice
PEER_SCRIPT = BENCH / "peers" / "peer_sac.py"
LOAD_AT_START = list(os.getloadavg())
CHUNK_SIZE = 50  # critix RunConfig.chunk_size default: env steps between compiled update calls

# critix in a subprocess through its Python API (the --critix-api fallback for the CLI); argv[1] is JSON.
CRITIX_API_CODE = """
import json, sys
from critix.agents import sac
from critix.train import RunConfig, train
a = json.loads(sys.argv[1])
run = RunConfig(env=a["env"], steps=a["steps"], num_seeds=a["num_seeds"], seed=a["seed"], eval_every=0,
                eval_episodes=1, progress=False, tensorboard=False, run_dir=a["run_dir"],
                learning_starts=a["learning_starts"])
train("sac", sac.Config(), run)
"""


# ---- the limit -------------------------------------------------------------------------------------------
def mlp_macs(sizes: list[int]) -> int:
    """Multiply-adds of one forward pass of a dense MLP with layer widths `sizes`, per sample (no biases)."""
    return sum(a * b for a, b in itertools.pairwise(sizes))


def sac_update_macs(obs_dim: int, act_dim: int, hidden: tuple[int, ...] = (256, 256), batch: int = 256,
                    num_critics: int = 2) -> dict[str, int]:
    """Multiply-adds of the matmuls of one SAC update (critic step + actor step), counted per batch.

    Actor A: obs -> hidden -> (mean, log_std), i.e. 2 x act_dim outputs. Critic C: (obs, act) -> hidden -> 1.
    A backward pass costs ~2x its forward (gradients w.r.t. weights and inputs); one that needs only input
    gradients (the critic inside the actor loss) ~1x. Per sample:
      target:  actor forward on next_obs (A) + num_critics target critic forwards (nC)
      critic:  num_critics forwards + backwards (nC x 3)
      actor:   actor forward on obs (A) + num_critics critic forwards on (obs, pi(obs)) (nC)
               + backward through the critics, input grads only (nC x 1) + backward through the actor (2A)
    total = 4A + 6nC per sample (4A + 12C for twin critics); the temperature loss, Adam, the Polyak update and
    the elementwise ops are left out (O(params) or O(batch x width), small next to the matmuls).
    FLOPs = 2 x MACs.
    """
    a = mlp_macs([obs_dim, *hidden, 2 * act_dim])
    c = mlp_macs([obs_dim + act_dim, *hidden, 1])
    n = num_critics
    parts = {
        "target": a + n * c,
        "critic": 3 * n * c,
        "actor": a + n * c + n * c + 2 * a,
    }
    macs = {k: v * batch for k, v in parts.items()}
    macs["total"] = sum(macs.values())
    return macs


def matmul_gflops(size: int = 256, iters: int = 200, repeats: int = 7) -> float:
    """fp32 matmul rate (GFLOP/s) of jax at size^3: `iters` chained matmuls in one jitted scan, best time.

    The scan keeps dispatch out of the timing; multiplying by an orthogonal matrix keeps values bounded.
    """
    import jax
    import jax.numpy as jnp

    key_a, key_q = jax.random.split(jax.random.PRNGKey(0))
    x = jax.random.normal(key_a, (size, size), jnp.float32)
    q, _ = jnp.linalg.qr(jax.random.normal(key_q, (size, size), jnp.float32))

    @jax.jit
    def chain(x: jax.Array, q: jax.Array) -> jax.Array:
        return jax.lax.scan(lambda c, _: (c @ q, None), x, None, length=iters)[0]

    chain(x, q).block_until_ready()  # compile
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        chain(x, q).block_until_ready()
        best = min(best, time.perf_counter() - t)
    return 2 * size**3 * iters / best / 1e9


def critix_update_ms(obs_dim: int, act_dim: int, num_seeds: int = 1, chunk: int = CHUNK_SIZE,
                     repeats: int = 10) -> float:
    """Best wall time (ms) of one critix SAC gradient step alone: `update_many` over `chunk` synthetic batches
    (the loop's compiled chunk, no env, no acting, no buffer), vmapped over `num_seeds` seeds when > 1.

    Set against the loop's ms per env step it splits the run into update compute and everything else.
    """
    from functools import partial

    import gymnasium as gym
    import jax
    import jax.numpy as jnp
    import numpy as np

    from critix.agents import sac
    from critix.types import Transition

    cfg = sac.Config()
    obs_space = gym.spaces.Box(-np.inf, np.inf, (obs_dim,), np.float32)
    act_space = gym.spaces.Box(-1.0, 1.0, (act_dim,), np.float32)
    keys = jax.random.split(jax.random.PRNGKey(0), num_seeds)
    state = jax.vmap(lambda k: sac.init(cfg, k, obs_space, act_space))(keys)
    rng = np.random.default_rng(0)
    lead = (num_seeds, chunk, cfg.batch_size)

    def normal(*shape: int) -> jax.Array:
        return jnp.asarray(rng.normal(size=(*lead, *shape)), jnp.float32)

    batches = Transition(obs=normal(obs_dim), action=jnp.tanh(normal(act_dim)), reward=normal(),
                         next_obs=normal(obs_dim), terminated=jnp.zeros(lead), truncated=jnp.zeros(lead))
    step = jax.jit(jax.vmap(partial(sac.update_many, cfg)), donate_argnums=0)
    state, _ = step(state, batches)
    jax.block_until_ready(state)
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        state, _ = step(state, batches)
        jax.block_until_ready(state)
        best = min(best, time.perf_counter() - t)
    return best / chunk * 1e3


def numpy_matmul_gflops(size: int = 256, iters: int = 400, repeats: int = 7) -> float:
    """fp32 matmul rate (GFLOP/s) of numpy's BLAS at size^3, best of `repeats`: a second reference next to XLA's
    own dot (hand-tuned BLAS kernels can be faster than the code XLA emits for these sizes)."""
    import numpy as np

    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((size, size), dtype=np.float32) for _ in range(2))
    out = np.empty_like(a)
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        for _ in range(iters):
            np.dot(a, b, out=out)
        best = min(best, time.perf_counter() - t)
    return 2 * size**3 * iters / best / 1e9


def env_sizes(env_id: str) -> tuple[int, int]:
    import gymnasium as gym

    env = gym.make(env_id)
    try:
        return int(env.observation_space.shape[0]), int(env.action_space.shape[0])
    finally:
        env.close()


# ---- runs ------------------------------------------------------------------------------------------------
def tail(text: str, n: int = 25) -> str:
    return "\n".join(text.strip().splitlines()[-n:])


def critix_command(args: argparse.Namespace, env: str, num_seeds: int, run_dir: Path) -> list[str]:
    if args.critix_api:
        payload = {"env": env, "steps": args.steps, "learning_starts": args.learning_starts,
                   "num_seeds": num_seeds, "seed": args.seed, "run_dir": str(run_dir)}
        return [sys.executable, "-c", CRITIX_API_CODE, json.dumps(payload)]
    cmd = [args.critix_bin, "train", "sac", "--env", env, "--steps", str(args.steps),
           "--learning-starts", str(args.learning_starts), "--num-seeds", str(num_seeds), "--eval-every", "0",
           "--eval-episodes", "1", "--no-progress", "--no-tensorboard", "--run-dir", str(run_dir)]
    if args.seed:
        cmd += ["--seed", str(args.seed)]
    return cmd


def run_critix(args: argparse.Namespace, env: str, num_seeds: int = 1, src: str | None = None,
               lib: str = "critix") -> dict[str, Any]:
    """One critix run; `src`: a critix source folder put first on PYTHONPATH (another commit's checkout)."""
    run_dir = Path(tempfile.mkdtemp(prefix=f"critix-{env}-", dir=scratch_dir())) / "run"
    cmd = critix_command(args, env, num_seeds, run_dir)
    environ = CACHES.environ(lib)
    if src:
        environ["PYTHONPATH"] = f"{Path(src).resolve()}{os.pathsep}{environ.get('PYTHONPATH', '')}"
    t = time.perf_counter()
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=args.timeout,
                          cwd=run_dir.parent, env=environ)
    wall = time.perf_counter() - t
    summary_path = run_dir / "summary.json"
    if proc.returncode != 0 or not summary_path.exists():
        hint = "" if args.critix_api else " (if the critix CLI is not ready, rerun with --critix-api)"
        raise SystemExit(f"critix run failed{hint}: {shlex.join(cmd)}\nexit {proc.returncode}\n"
                         f"{tail(proc.stdout + proc.stderr)}")
    summary = json.loads(summary_path.read_text())
    if not args.keep_runs:
        shutil.rmtree(run_dir.parent, ignore_errors=True)
    sps = summary.get("steps_per_second")
    return {
        "lib": lib,
        "lib_version": summary.get("critix_version"),
        "critix_commit": summary.get("critix_commit"),
        "num_seeds": num_seeds,
        "steps_per_second": sps,  # per seed, after learning starts, compile chunk excluded
        "steps_per_second_steady": sps,
        "compile_seconds": summary.get("compile_seconds"),
        "wall_seconds": summary.get("wall_seconds"),
        "process_seconds": wall,
        "aggregate_seed_steps_per_second": sps * num_seeds if sps else None,
        "final_return": summary.get("final_return_mean"),
        "command": shlex.join(cmd) if not args.critix_api else "python -c <critix API> " + cmd[-1],
    }


def peer_command(args: argparse.Namespace, lib: str, env: str, seed: int,
                 torch_threads: int = 0) -> list[str]:
    cmd = [str(args.peer_python), str(PEER_SCRIPT), "--lib", lib, "--algo", "sac", "--env", env,
           "--steps", str(args.steps), "--learning-starts", str(args.learning_starts), "--seed", str(seed)]
    if torch_threads:
        cmd += ["--torch-threads", str(torch_threads)]
    return cmd


def parse_peer(cmd: list[str], proc: Any, stdout: str, stderr: str) -> dict[str, Any]:
    """The result dict of one peer run, from the last JSON line that peer_sac.py printed."""
    for line in reversed(stdout.strip().splitlines()):
        if line.startswith("{"):
            try:
                out = json.loads(line)
                break
            except json.JSONDecodeError:
                pass
    else:
        raise SystemExit(f"peer run failed: {shlex.join(cmd)}\nexit {proc.returncode}\n"
                         f"{tail(stdout + stderr)}")
    return {
        "lib": out["lib"],
        "lib_version": out["lib_version"],
        "num_seeds": 1,
        "steps_per_second": out["steps_per_second_after_learning_starts"],
        "steps_per_second_steady": out["steps_per_second_after_first_update"],
        "compile_seconds": out["first_update_seconds"],
        "wall_seconds": out["wall_seconds"],
        "aggregate_seed_steps_per_second": out["steps_per_second_after_learning_starts"],
        "final_return": out.get("final_return"),
        "command": shlex.join(cmd),
        "peer": out,
    }


def scratch_dir() -> Path:
    """Working folder of the subprocesses: what they drop (MuJoCo's MUJOCO_LOG.TXT) stays out of the repo."""
    path = BENCH / "results" / "tmp"
    path.mkdir(parents=True, exist_ok=True)
    return path


def run_peer(args: argparse.Namespace, lib: str, env: str) -> dict[str, Any]:
    cmd = peer_command(args, lib, env, args.seed, args.torch_threads)
    t = time.perf_counter()
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=args.timeout,
                          cwd=scratch_dir(), env=CACHES.environ(lib))
    result = parse_peer(cmd, proc, proc.stdout, proc.stderr)
    result["process_seconds"] = time.perf_counter() - t
    return result


def run_peers_together(args: argparse.Namespace, lib: str, env: str, count: int) -> list[dict[str, Any]]:
    """`count` peer processes started at the same time (seeds seed..seed+count-1), sharing the cores."""
    cmds = [peer_command(args, lib, env, args.seed + i, args.scaling_torch_threads) for i in range(count)]
    t = time.perf_counter()
    procs = [subprocess.Popen(c, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=scratch_dir(),
                              env=CACHES.environ(lib)) for c in cmds]
    outs = [p.communicate(timeout=args.timeout) for p in procs]
    wall = time.perf_counter() - t
    results = [parse_peer(c, p, o, e) for c, p, (o, e) in zip(cmds, procs, outs, strict=True)]
    for r in results:
        r["process_seconds"] = wall
    return results


# ---- provenance and output -------------------------------------------------------------------------------
def cpu_model() -> str:
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        name = next((ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("model name")), None)
        flags = next((ln.split(":", 1)[1].split() for ln in lines if ln.startswith("flags")), [])
        if name:
            return name + (" (AVX-512)" if "avx512f" in flags else " (AVX2)" if "avx2" in flags else "")
    except OSError:
        pass
    try:
        out = subprocess.run(["lscpu"], check=False, capture_output=True, text=True).stdout
        for line in out.splitlines():
            if line.startswith("Model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def git_commit() -> dict[str, Any]:
    def git(*a: str) -> str:
        out = subprocess.run(["git", "-C", str(REPO), *a], check=False, capture_output=True, text=True)
        return out.stdout.strip()

    return {"commit": git("rev-parse", "HEAD") or None, "dirty": bool(git("status", "--porcelain"))}


def version_of(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def provenance(runs: list[dict[str, Any]]) -> dict[str, Any]:
    peers: dict[str, Any] = {}
    for r in runs:
        p = r.get("peer")
        if p:
            peers[p["lib"]] = {k: p.get(k) for k in ("lib_version", "torch_version", "torch_threads",
                                                      "jax_version", "jaxlib_version", "python")
                               if p.get(k) is not None}
    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:
        affinity = None
    return {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "machine": {"nproc": affinity or os.cpu_count(), "cpu_count": os.cpu_count(),
                    "cpu_model": cpu_model(), "platform": platform.platform()},
        "python": platform.python_version(),
        "jax": version_of("jax"),
        "jaxlib": version_of("jaxlib"),
        "critix": version_of("critix"),
        "critix_git": git_commit(),
        "peers": peers,
        "command": shlex.join([sys.executable, *sys.argv]),
        "compile_cache": CACHES.mode,
        "cwd": os.getcwd(),
        "load_average_at_start": LOAD_AT_START,
        "load_average_at_end": list(os.getloadavg()),
    }


CSV_FIELDS = ("mode", "env", "pair", "lib", "lib_version", "num_seeds", "process", "steps", "learning_starts",
              "steps_per_second", "steps_per_second_steady", "compile_seconds", "wall_seconds",
              "aggregate_seed_steps_per_second", "final_return", "command")


def write_results(name: str, meta: dict[str, Any], runs: list[dict[str, Any]], summary: dict[str, Any],
                  out_dir: Path) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.datetime.now().strftime("%Y-%m-%d-%H%M%S")
    json_path, csv_path = out_dir / f"{name}-{stamp}.json", out_dir / f"{name}-{stamp}.csv"
    json_path.write_text(json.dumps({**meta, "runs": runs, "summary": summary}, indent=2) + "\n")
    with csv_path.open("w", newline="") as f:
        w = csv.DictWriter(f, CSV_FIELDS, extrasaction="ignore")
        w.writeheader()
        for r in runs:
            w.writerow(r)
    return json_path, csv_path


def fmt(x: Any, spec: str = ".1f") -> str:
    return "-" if x is None else format(x, spec)


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a and b else None


def median(xs: list[float | None]) -> float | None:
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


# ---- modes -----------------------------------------------------------------------------------------------
def speed(args: argparse.Namespace) -> None:
    envs = [e for e in args.envs.split(",") if e]
    libs = ["critix", *(["critix-base"] if args.critix_base_src else []),
            *[lib for lib in ("sb3", "sbx") if lib not in args.skip]]
    if (args.steps - args.learning_starts) % CHUNK_SIZE or args.learning_starts % CHUNK_SIZE:
        print(f"note: critix updates in chunks of {CHUNK_SIZE} steps; with --steps and --learning-starts "
              f"multiples of {CHUNK_SIZE} no chunk of another size gets compiled inside the timed part",
              file=sys.stderr)
    print("measuring the fp32 matmul rate (jax, 256^3 in a jitted scan; again after the runs)", flush=True)
    gflops_before = matmul_gflops()
    print(f"  {gflops_before:.1f} GFLOP/s\n", flush=True)

    runs: list[dict[str, Any]] = []
    for env in envs:
        for lib in libs:  # --compile-cache warm: one untimed run of each JAX side first
            if lib != "sb3":
                CACHES.warm(f"{lib}-{env}", lambda: run_critix(args, env, src=args.critix_base_src, lib=lib)
                            if lib == "critix-base" else run_critix(args, env) if lib == "critix"
                            else run_peer(args, lib, env))
        for pair in range(args.pairs):
            for lib in libs:
                print(f"[{env}] pair {pair + 1}/{args.pairs}: {lib} ...", end=" ", flush=True)
                if lib == "critix-base":
                    r = run_critix(args, env, src=args.critix_base_src, lib=lib)
                else:
                    r = run_critix(args, env) if lib == "critix" else run_peer(args, lib, env)
                r.update(mode="speed", env=env, pair=pair, steps=args.steps,
                         learning_starts=args.learning_starts)
                runs.append(r)
                print(f"{fmt(r['steps_per_second'])} steps/s (steady {fmt(r['steps_per_second_steady'])}, "
                      f"compile/first update {fmt(r['compile_seconds'], '.2f')} s, "
                      f"wall {fmt(r['wall_seconds'])} s)", flush=True)

    gflops_after = matmul_gflops()
    gflops = max(gflops_before, gflops_after)  # the best rate seen is the bound
    print(f"\nfp32 matmul 256^3: {gflops_before:.1f} GFLOP/s before the runs, {gflops_after:.1f} after; "
          f"the bound uses {gflops:.1f}")
    blas_gflops = numpy_matmul_gflops()
    print(f"numpy (BLAS) fp32 matmul 256^3: {blas_gflops:.1f} GFLOP/s (for reference; the bound uses XLA's)")
    summary: dict[str, Any] = {"matmul_gflops_256": gflops, "matmul_gflops_256_before": gflops_before,
                               "matmul_gflops_256_after": gflops_after,
                               "numpy_blas_matmul_gflops_256": blas_gflops, "envs": {}}
    for env in envs:
        er = [r for r in runs if r["env"] == env]
        by = {lib: sorted((r for r in er if r["lib"] == lib), key=lambda r: r["pair"]) for lib in libs}
        s: dict[str, Any] = {}
        print(f"\n== {env}: SAC, {args.steps} steps, learning starts {args.learning_starts}, UTD 1 ==")
        print("steps/s after learning starts (peers: first update included | steady: excluded; "
              "critix: compile chunk excluded)")
        header = f"{'pair':>5} " + " ".join(f"{lib:>10} {'steady':>8}" for lib in libs)
        header += "".join(f" {'cx/' + lib:>8} {'steady':>7}" for lib in libs[1:])
        print(header)
        for pair in range(args.pairs):
            row = f"{pair + 1:>5} "
            row += " ".join(f"{fmt(by[lib][pair]['steps_per_second']):>10} "
                            f"{fmt(by[lib][pair]['steps_per_second_steady']):>8}" for lib in libs)
            cx = by["critix"][pair]["steps_per_second"]
            for lib in libs[1:]:
                p, ps = by[lib][pair]["steps_per_second"], by[lib][pair]["steps_per_second_steady"]
                row += f" {fmt(ratio(cx, p), '.2f'):>8} {fmt(ratio(cx, ps), '.2f'):>7}"
            print(row)
        med = {lib: median([r["steps_per_second"] for r in by[lib]]) for lib in libs}
        med_steady = {lib: median([r["steps_per_second_steady"] for r in by[lib]]) for lib in libs}
        row = f"{'med':>5} " + " ".join(f"{fmt(med[lib]):>10} {fmt(med_steady[lib]):>8}" for lib in libs)
        ratios: dict[str, Any] = {}
        for lib in libs[1:]:
            cx = [r["steps_per_second"] for r in by["critix"]]
            per_pair = [ratio(c, r["steps_per_second"]) for c, r in zip(cx, by[lib], strict=True)]
            steady = [r["steps_per_second_steady"] for r in by[lib]]
            per_pair_steady = [ratio(c, p) for c, p in zip(cx, steady, strict=True)]
            ratios[f"critix/{lib}"] = {"per_pair": per_pair, "median": median(per_pair),
                                       "per_pair_steady": per_pair_steady,
                                       "median_steady": median(per_pair_steady)}
            row += f" {fmt(median(per_pair), '.2f'):>8} {fmt(median(per_pair_steady), '.2f'):>7}"
        print(row)
        print("  (ratios: critix steps/s over the peer's, per pair; the 'med' row: medians of the ratios)")
        compile_med = median([r["compile_seconds"] for r in by["critix"]])
        print(f"  critix compile (the chunk holding the first update): median {fmt(compile_med, '.2f')} s")

        obs_dim, act_dim = env_sizes(env)
        macs = sac_update_macs(obs_dim, act_dim)
        flops = 2 * macs["total"]
        sec_per_update = flops / (gflops * 1e9)
        max_sps = 1.0 / sec_per_update
        print(f"  FLOP bound: obs {obs_dim}, act {act_dim}: one SAC update = {macs['total'] / 1e6:.1f} M "
              f"MACs = {flops / 1e6:.0f} MFLOP -> {sec_per_update * 1e3:.2f} ms at {gflops:.0f} GFLOP/s "
              f"= at most {max_sps:.0f} steps/s at UTD 1")
        update_ms = critix_update_ms(obs_dim, act_dim)
        loop_ms = 1e3 / med["critix"] if med["critix"] else None
        rest_ms = loop_ms - update_ms if loop_ms else None
        print(f"  critix SAC update alone ({CHUNK_SIZE} fused, synthetic batches): {update_ms:.2f} ms "
              f"= {flops / update_ms / 1e6:.0f} GFLOP/s; the loop takes {fmt(loop_ms, '.2f')} ms per "
              f"env step, so {fmt(rest_ms, '.2f')} ms goes to env, acting and the buffer")
        fractions = {lib: (med[lib] / max_sps if med[lib] else None) for lib in libs}
        print("  fraction of the bound (median steps/s / max): "
              + ", ".join(f"{lib} {fmt(fractions[lib], '.2f')}" for lib in libs))
        s.update(obs_dim=obs_dim, act_dim=act_dim, update_macs=macs, update_flops=flops,
                 flop_bound_seconds_per_update=sec_per_update, flop_bound_max_steps_per_second=max_sps,
                 median_steps_per_second=med, median_steps_per_second_steady=med_steady, ratios=ratios,
                 critix_fraction_of_flop_bound=fractions["critix"], fraction_of_flop_bound=fractions,
                 critix_compile_seconds_median=compile_med, critix_update_ms=update_ms,
                 critix_loop_ms_per_step=loop_ms)
        summary["envs"][env] = s

    meta = provenance(runs)
    json_path, csv_path = write_results("sac_speed", meta, runs, summary, Path(args.results_dir))
    print(f"\nraw results: {json_path.relative_to(REPO) if json_path.is_relative_to(REPO) else json_path}, "
          f"{csv_path.name}")


def seeds_scaling(args: argparse.Namespace) -> None:
    env, n = args.scaling_env, args.scaling_seeds
    runs: list[dict[str, Any]] = []
    for pair in range(args.pairs):
        for label in ("critix-1", f"critix-{n}", f"sb3-x{n}"):
            print(f"[{env}] round {pair + 1}/{args.pairs}: {label} ...", end=" ", flush=True)
            if label == "critix-1":
                rs = [run_critix(args, env, 1)]
            elif label.startswith("critix"):
                rs = [run_critix(args, env, n)]
            else:
                rs = run_peers_together(args, "sb3", env, n)
            for i, r in enumerate(rs):
                r.update(mode="seeds_scaling", env=env, pair=pair, steps=args.steps,
                         learning_starts=args.learning_starts, process=i, config=label)
            runs.extend(rs)
            agg = sum(r["aggregate_seed_steps_per_second"] or 0 for r in rs)
            per = ", ".join(fmt(r["steps_per_second"]) for r in rs)
            unit = "process" if len(rs) > 1 else "seed"
            print(f"aggregate {agg:.1f} seed-steps/s (per {unit}: {per})", flush=True)

    labels = ("critix-1", f"critix-{n}", f"sb3-x{n}")
    agg: dict[str, list[float]] = {label: [] for label in labels}
    for pair in range(args.pairs):
        for label in labels:
            rs = [r for r in runs if r["pair"] == pair and r["config"] == label]
            agg[label].append(sum(r["aggregate_seed_steps_per_second"] or 0 for r in rs))
    print(f"\n== {env}: aggregate seed-steps/s after learning starts, {args.steps} steps per seed ==")
    print(f"{'round':>5} " + " ".join(f"{label:>10}" for label in labels)
          + f" {'x' + str(n) + '/x1':>8} {'cx' + str(n) + '/sb3':>9}")
    for pair in range(args.pairs):
        a1, an, sb = (agg[label][pair] for label in labels)
        print(f"{pair + 1:>5} {a1:>10.1f} {an:>10.1f} {sb:>10.1f} {an / a1 if a1 else 0:>8.2f} "
              f"{an / sb if sb else 0:>9.2f}")
    med = {label: statistics.median(agg[label]) for label in labels}
    print(f"{'med':>5} " + " ".join(f"{med[label]:>10.1f}" for label in labels))
    print(f"  SB3 processes used torch threads = {args.scaling_torch_threads or 'default'}; "
          f"critix {n} seeds run vmapped in one process")
    obs_dim, act_dim = env_sizes(env)
    flops = 2 * sac_update_macs(obs_dim, act_dim)["total"]
    update_ms = {1: critix_update_ms(obs_dim, act_dim, 1), n: critix_update_ms(obs_dim, act_dim, n)}
    for seeds, ms in update_ms.items():
        print(f"  critix SAC update alone, {seeds} seed(s) vmapped: {ms:.2f} ms per step = "
              f"{seeds * 1e3 / ms:.0f} seed-updates/s = {seeds * flops / ms / 1e6:.0f} GFLOP/s "
              "(the ceiling of the loop's aggregate)")
    summary = {"env": env, "seeds": n, "aggregate_per_round": agg, "median_aggregate": med,
               "scaling_torch_threads": args.scaling_torch_threads,
               "critix_update_ms": {str(k): v for k, v in update_ms.items()}}
    meta = provenance(runs)
    json_path, csv_path = write_results("sac_seeds_scaling", meta, runs, summary, Path(args.results_dir))
    print(f"\nraw results: {json_path}, {csv_path.name}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--envs", default="HalfCheetah-v5,Pendulum-v1", help="comma-separated Gymnasium ids")
    parser.add_argument("--pairs", type=int, default=3, help="rounds of critix, SB3, SBX per env")
    parser.add_argument("--steps", type=int, default=3000, help="env steps per run (per seed)")
    parser.add_argument("--learning-starts", type=int, default=1000, help="random steps before updates start")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip", default="", help="comma-separated peers to leave out: sb3, sbx")
    parser.add_argument("--critix-base-src", default=None,
                        help="a critix source folder of another commit (e.g. a `git worktree`'s src/): runs as the "
                             "peer 'critix-base' in the same alternation, for a before/after speed comparison")
    parser.add_argument("--critix-api", action="store_true",
                        help="run critix through its Python API in a subprocess instead of the `critix` CLI")
    parser.add_argument("--critix-bin", default=str(Path(sys.executable).with_name("critix")),
                        help="the critix CLI of the main venv")
    parser.add_argument("--peer-python", default=str(PEER_PYTHON),
                        help="python of the peer venv (install.sh)")
    parser.add_argument("--torch-threads", type=int, default=0,
                        help="torch threads of the peers in the speed mode (0: torch's default, the cores)")
    parser.add_argument("--seeds-scaling", action="store_true",
                        help="instead: critix 1 seed vs critix N seeds vs N SB3 processes at once")
    parser.add_argument("--scaling-env", default="HalfCheetah-v5")
    parser.add_argument("--scaling-seeds", type=int, default=8)
    parser.add_argument("--scaling-torch-threads", type=int, default=1,
                        help="torch threads of each SB3 process in --seeds-scaling (0: torch's default)")
    parser.add_argument("--results-dir", default=str(BENCH / "results"))
    parser.add_argument("--keep-runs", action="store_true",
                        help="keep critix run folders in benchmarks/results/tmp")
    parser.add_argument("--timeout", type=float, default=None, help="seconds per run before giving up")
    parser.add_argument("--compile-cache", choices=CHOICES, default="cold",
                        help="cold: every run compiles from an empty cache; warm: each side's untimed first run "
                             "fills a cache its timed runs load from (benchmarks/compile_caches.py)")
    args = parser.parse_args()
    global CACHES
    CACHES = Caches(args.compile_cache)
    args.skip = {s for s in args.skip.split(",") if s}
    # subprocesses run in benchmarks/results/tmp; abspath (not resolve) keeps the venvs' python symlinks
    args.peer_python, args.critix_bin = os.path.abspath(args.peer_python), os.path.abspath(args.critix_bin)
    if args.steps <= args.learning_starts + 2 * CHUNK_SIZE:
        parser.error(f"--steps must exceed --learning-starts + {2 * CHUNK_SIZE} for critix to time anything")
    if not Path(args.peer_python).exists() and (args.seeds_scaling or args.skip != {"sb3", "sbx"}):
        parser.error(f"{args.peer_python} not found: run benchmarks/peers/install.sh first")
    if not args.critix_api and not Path(args.critix_bin).exists():
        parser.error(f"{args.critix_bin} not found: install critix in this venv, or use --critix-api")
    if LOAD_AT_START[0] > 0.5:
        print(f"warning: load average {LOAD_AT_START[0]:.2f} before starting: other work shares these cores "
              "and the figures will say more about it than about the libraries (SB3 with 2 torch threads "
              "suffers most)", file=sys.stderr)
    seeds_scaling(args) if args.seeds_scaling else speed(args)


if __name__ == "__main__":
    main()
