"""One compiled PPO iteration, critix vs rejax (and critix at another commit): the program ppo_speed.py --rejax runs
123 times, timed alone, alternating in one invocation.

Each side builds its training program for `--seeds` seeds with the hyperparameters of `ppo_speed.py --rejax`
(COMMON_PPO there: 4 envs x 2048-step rollouts, 10 epochs of 128 minibatches of 64, 64x64 tanh networks), compiles
one iteration of it ahead of time and runs it `--calls` times; the figure is the fastest call (seconds per
iteration), the least disturbed by other processes on a shared machine. Sides, one process each, in rounds:
- critix: `Compiled.chunk` (train/compiled.py) of length 1, `jit(vmap(member.chunk))`;
- critix-base (with `--base-src SRC`): the same from another critix source tree (e.g. `git worktree`'s src/);
- rejax: `jit(vmap(fori_loop(1, algo.train_iteration)))` of rejax 0.1.3's PPO (peers/.venv-rejax).
`--parts` also times the rollout alone and the update alone of each critix side and rejax. `--cpu-time` times with
the process's CPU time instead of wall time: pinned to one core (`taskset -c 1`) on a machine busy with other work,
the seconds the side computed, without those it waited for the core. Results:
benchmarks/results/ppo_iteration-<date>.json.

    .venv/bin/python benchmarks/ppo_iteration.py --seeds 16 --rounds 3
    .venv/bin/python benchmarks/ppo_iteration.py --seeds 16 --rounds 3 --base-src /tmp/base/src --parts
    taskset -c 1 .venv/bin/python benchmarks/ppo_iteration.py --seeds 16 --rounds 3 --parts --cpu-time
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ppo_speed import REJAX_PYTHON, write_results  # noqa: E402

BENCH = Path(__file__).resolve().parent

CRITIX_SIDE = textwrap.dedent('''
    import json, os, sys, time
    import jax
    from critix.agents import ppo
    from critix.train.compiled import Compiled
    from critix.train.config import RunConfig
    from critix.types import Rollout
    seeds, calls, parts = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3] == "1"
    clock = time.process_time if os.environ.get("PPO_ITERATION_CLOCK") == "cpu" else time.perf_counter
    cfg = ppo.Config(hidden_sizes=(64, 64), activation="tanh", learning_rate=3e-4, anneal_learning_rate=True,
                     adam_eps=1e-8, max_grad_norm=0.0, minibatch_size=64, num_epochs=10, gamma=0.99,
                     gae_lambda=0.95, clip_ratio=0.2, value_clip_ratio=0.2, entropy_coef=0.0, value_coef=0.5,
                     normalize_advantage=True)
    run = RunConfig(env="gymnax:CartPole-v1", steps=1_007_616, num_envs=4, num_seeds=seeds, rollout_length=2048,
                    log_every=8192, eval_every=0, progress=False, tensorboard=False)
    stepper = Compiled("ppo", cfg, run)
    member, carry = stepper.member, stepper.fresh()

    def timed(f, *args):
        start = clock()
        exe = jax.jit(f).lower(*args).compile()
        compile_seconds, seconds = clock() - start, []
        for _ in range(calls):
            start = clock()
            jax.block_until_ready(exe(*args))
            seconds.append(clock() - start)
        return compile_seconds, seconds

    out = {"groups": 1}
    start = clock()
    chunk = stepper.chunk.lower(stepper.fresh(), 1, True).compile()  # donates its carry: a fresh one per call
    out["compile_seconds"], out["iteration_seconds"] = clock() - start, []
    for _ in range(calls):
        fresh = jax.block_until_ready(stepper.fresh())
        start = clock()
        jax.block_until_ready(chunk(fresh))
        out["iteration_seconds"].append(clock() - start)
    if parts:
        def rollout(carry):
            def step(carry, _):
                carry, transition, _, _ = member.env_step(carry, member.act(cfg, carry, carry.obs_rms, True))
                return carry, transition
            return jax.lax.scan(step, carry, None, length=2048)
        _, out["rollout_seconds"] = timed(jax.vmap(rollout), carry)
        transitions = jax.jit(jax.vmap(rollout))(carry)[1]
        _, out["update_seconds"] = timed(jax.vmap(lambda a, r: ppo.update(cfg, a, Rollout(r))), carry.agent,
                                         transitions)
    print(json.dumps(out))
''')

REJAX_SIDE = textwrap.dedent('''
    import argparse, json, os, sys, time
    import jax, jax.numpy as jnp
    sys.path.insert(0, sys.argv[4])
    import peer_rejax_ppo
    from rejax.algos.ppo import AdvantageMinibatch
    seeds, calls, parts = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3] == "1"
    clock = time.process_time if os.environ.get("PPO_ITERATION_CLOCK") == "cpu" else time.perf_counter
    args = argparse.Namespace(num_envs=4, rollout_length=2048, minibatch_size=64, num_epochs=10, learning_rate=3e-4,
                              anneal_learning_rate=True, gamma=0.99, gae_lambda=0.95, clip_ratio=0.2,
                              entropy_coef=0.0, vf_coef=1.0, hidden_sizes=[64, 64], activation="tanh")
    algo = peer_rejax_ppo.make_algo(args, 1_007_616)
    ts = jax.jit(jax.vmap(algo.init_state))(jax.random.split(jax.random.PRNGKey(0), seeds))

    def timed(f, *a):
        start = clock()
        exe = jax.jit(f).lower(*a).compile()
        compile_seconds, seconds = clock() - start, []
        for _ in range(calls):
            start = clock()
            jax.block_until_ready(exe(*a))
            seconds.append(clock() - start)
        return compile_seconds, seconds

    out = {"groups": 1}
    iteration = jax.vmap(lambda t: jax.lax.fori_loop(0, 1, lambda _, t: algo.train_iteration(t), t))
    out["compile_seconds"], out["iteration_seconds"] = timed(iteration, ts)
    if parts:
        def update(ts, trajectories):  # train_iteration after collect_trajectories
            last_val = jnp.where(ts.last_done, 0, algo.critic.apply(ts.critic_ts.params, ts.last_obs))
            advantages, targets = algo.calculate_gae(trajectories, last_val)
            def epoch(ts, _):
                rng, minibatch_rng = jax.random.split(ts.rng)
                batch = AdvantageMinibatch(trajectories, advantages, targets)
                minibatches = algo.shuffle_and_split(batch, minibatch_rng)
                ts, _ = jax.lax.scan(lambda ts, mb: (algo.update(ts, mb), None), ts.replace(rng=rng), minibatches)
                return ts, None
            return jax.lax.scan(epoch, ts, None, algo.num_epochs)[0]
        rollout = jax.vmap(algo.collect_trajectories)
        _, out["rollout_seconds"] = timed(rollout, ts)
        after, trajectories = jax.jit(rollout)(ts)
        _, out["update_seconds"] = timed(jax.vmap(update), after, trajectories)
    print(json.dumps(out))
''')


def run_side(lib: str, args: argparse.Namespace) -> dict[str, Any]:
    common = [str(args.seeds), str(args.calls), "1" if args.parts else "0"]
    environ = {**os.environ, "PPO_ITERATION_CLOCK": "cpu" if args.cpu_time else "wall"}
    if lib == "rejax":
        cmd = [str(args.rejax_python), "-c", REJAX_SIDE, *common, str(BENCH / "peers")]
    else:
        cmd = [sys.executable, "-c", CRITIX_SIDE, *common]
        if lib == "critix-base":
            environ["PYTHONPATH"] = f"{args.base_src.resolve()}{os.pathsep}{environ.get('PYTHONPATH', '')}"
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, env=environ)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise SystemExit(f"{lib} failed:\n{proc.stdout[-2000:]}{proc.stderr[-3000:]}")
    r = json.loads(lines[-1])
    best = {f"{k.removesuffix('_seconds')}_best": min(v) for k, v in r.items() if k.endswith("_seconds")
            and isinstance(v, list)}
    return {"lib": lib, "seeds": args.seeds, **r, **best}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--calls", type=int, default=3, help="calls of each compiled program per process")
    parser.add_argument("--parts", action="store_true", help="also time the rollout alone and the update alone")
    parser.add_argument("--base-src", type=Path, default=None, help="another critix source tree, as critix-base")
    parser.add_argument("--rejax-python", type=Path, default=REJAX_PYTHON)
    parser.add_argument("--cpu-time", action="store_true",
                        help="time with the process's CPU time (all threads) instead of wall time: on a machine "
                             "shared with other work, run under `taskset -c <core>`, it leaves out the time the "
                             "process waits for the core")
    args = parser.parse_args()
    load_at_start = list(os.getloadavg())
    libs = ["critix", *(["critix-base"] if args.base_src else []), "rejax"]
    results = []
    for round_ in range(args.rounds):
        for lib in libs if round_ % 2 == 0 else libs[::-1]:
            results.append({"round": round_, **run_side(lib, args)})
            print(json.dumps(results[-1]), flush=True)
    report: dict[str, Any] = {"note": "seconds per iteration: the fastest call of each process; ratios: other "
                                      "seconds / critix seconds, per round (above 1: critix is faster)",
                              "clock": "process CPU time" if args.cpu_time else "wall time"}
    for key in ("iteration_best", "rollout_best", "update_best", "compile"):
        for lib in libs:
            values = [r[key if key != "compile" else "compile_seconds"] for r in results if r["lib"] == lib
                      and (key == "compile" or key in r)]
            if values:
                report[f"{lib}_{key}_median"] = statistics.median(values)
        for other in libs[1:]:
            if key == "compile" or key not in results[0]:
                continue
            ratios = [o[key] / c[key] for c, o in zip([r for r in results if r["lib"] == "critix"],
                                                      [r for r in results if r["lib"] == other])]
            report[f"{other}_over_critix_{key}_per_round"] = ratios
            report[f"{other}_over_critix_{key}_median"] = statistics.median(ratios)
    write_results("ppo_iteration", load_at_start, report, results,
                  ["round", "lib", "seeds", "groups", "iteration_best", "rollout_best", "update_best",
                   "compile_seconds"])


if __name__ == "__main__":
    main()
