"""Microseconds per act call of the host loops' acting paths, in one process (issue 19, item 1), and the env limit.

For each case (agent, env, S seeds x N envs) it builds the host stepper's `Acting` (critix.train.host) on a fresh
agent and times, alternating A B C A B C (`--rounds`, medians reported):
- `per-step-key`: the acting of critix before issue 19, one jitted, seed-vmapped call of the agent's `act` per
  step that also splits the step's key and draws its random numbers (`HostStepper.policy`, still used by
  `critix collect`);
- `jit`: `Acting` with `--acting jit`, one compiled call per step on random numbers drawn per block;
- `numpy`: `Acting` with `--acting numpy`, the policy in NumPy on host parameters.
Each timed call includes what the loop does per step: slicing the block's random numbers, normalisation (off
here), the action back in host memory; the block draws (one device call per 256 steps) are amortised over the
calls, as in a run. It also times
the env alone (random actions through the same Gymnasium vector env the loop uses, SAME_STEP autoreset, and the
bare env without the vector wrapper): the fastest a host loop could step. JSON to stdout and to
benchmarks/results/act_speed-<date>.json with machine, load and commit.

    .venv/bin/python benchmarks/act_speed.py                  # DQN, PPO, SAC cases, ~1 minute
    .venv/bin/python benchmarks/act_speed.py --calls 2000 --rounds 5
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import jax
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sac_speed import cpu_model, git_commit  # noqa: E402

from critix import agents  # noqa: E402
from critix.envs.gym import make_vector_env  # noqa: E402
from critix.train.config import RunConfig  # noqa: E402
from critix.agents.contract import acting_keys  # noqa: E402
from critix.train.host import HOST_ACTING_MAX_MACS, Acting  # noqa: E402
from critix.train.offpolicy import OffPolicy  # noqa: E402
from critix.train.onpolicy import OnPolicy  # noqa: E402

# name -> (algo, env, hidden sizes, seeds, envs per seed)
CASES: dict[str, tuple[str, str, tuple[int, ...], int, int]] = {
    "dqn-cartpole-64x64-1x1": ("dqn", "CartPole-v1", (64, 64), 1, 1),
    "ppo-cartpole-64x64-1x4": ("ppo", "CartPole-v1", (64, 64), 1, 4),
    "sac-pendulum-256x256-1x1": ("sac", "Pendulum-v1", (256, 256), 1, 1),
    "sac-pendulum-256x256-8x1": ("sac", "Pendulum-v1", (256, 256), 8, 1),
    "sac-halfcheetah-256x256-1x1": ("sac", "HalfCheetah-v5", (256, 256), 1, 1),
}


def stepper_of(algo: str, env: str, hidden: tuple[int, ...], seeds: int, envs: int) -> Any:
    spec = agents.get(algo)
    cfg = spec.default_config.__class__(hidden_sizes=hidden)
    run = RunConfig(env=env, steps=10_000, num_seeds=seeds, num_envs=envs, progress=False, tensorboard=False,
                    learning_starts=0)
    stepper = (OnPolicy if spec.module.KIND == "on-policy" else OffPolicy)(algo, cfg, run)
    stepper.start(None)
    return stepper


def time_calls(call: Any, calls: int) -> float:
    """Median-free single measurement: microseconds per call over `calls` calls (after one untimed call)."""
    call()
    begin = time.perf_counter()
    for _ in range(calls):
        call()
    return (time.perf_counter() - begin) / calls * 1e6


def act_case(name: str, calls: int, rounds: int) -> dict[str, Any]:
    algo, env, hidden, seeds, envs = CASES[name]
    stepper = stepper_of(algo, env, hidden, seeds, envs)
    obs = stepper.obs.reshape(seeds, envs, *stepper.obs_shape)
    mean, var = stepper.stats()
    evaluators = {e: Acting(stepper.module, stepper.cfg, stepper.agent, seeds, envs, e, False,
                            acting_keys(0, seeds)) for e in ("numpy", "jit")}
    state = {"key": stepper.key, "numpy": 0, "jit": 0}

    def per_step_key() -> None:
        action, state["key"] = stepper.policy(stepper.agent, state["key"], obs, mean, var)
        np.asarray(action)

    def evaluator(e: str) -> Any:
        acting = evaluators[e]
        acting.start(stepper.agent)

        def call() -> None:
            acting.explore(obs, mean, var, state[e])
            state[e] += 1

        return call

    paths = {"per-step-key": per_step_key, "jit": evaluator("jit"), "numpy": evaluator("numpy")}
    samples: dict[str, list[float]] = {p: [] for p in paths}
    for _ in range(rounds):
        for path, call in paths.items():
            samples[path].append(time_calls(call, calls))
    stepper.close()
    us = {p: statistics.median(v) for p, v in samples.items()}
    return {"case": name, "algo": algo, "env": env, "hidden_sizes": list(hidden), "num_seeds": seeds,
            "num_envs": envs, "macs_per_act": evaluators["numpy"].macs,
            "auto_choice": "numpy" if evaluators["numpy"].macs <= HOST_ACTING_MAX_MACS else "jit",
            "us_per_act": us, "us_per_act_rounds": samples,
            "speedup_numpy_vs_per_step_key": us["per-step-key"] / us["numpy"],
            "speedup_numpy_vs_jit": us["jit"] / us["numpy"]}


def env_limit(env_id: str, steps: int) -> dict[str, Any]:
    """Random-action steps/s of one env: through the loop's vector env (1 env, SAME_STEP) and bare."""
    vec = make_vector_env(env_id, 1, 0)
    vec.reset(seed=0)
    space = vec.single_action_space
    rng = np.random.default_rng(0)
    actions = [np.asarray([space.sample()]) for _ in range(1000)]
    begin = time.perf_counter()
    for i in range(steps):
        vec.step(actions[i % 1000])
    vector = steps / (time.perf_counter() - begin)
    vec.close()
    bare = gym.make(env_id)
    bare.reset(seed=0)
    single = [a[0] for a in actions]
    begin = time.perf_counter()
    for i in range(steps):
        _, _, terminated, truncated, _ = bare.step(single[i % 1000])
        if terminated or truncated:
            bare.reset()
    plain = steps / (time.perf_counter() - begin)
    bare.close()
    del rng
    return {"env": env_id, "steps": steps, "vector_env_steps_per_second": vector, "bare_env_steps_per_second": plain}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", default=",".join(CASES), help="comma-separated, of: " + ", ".join(CASES))
    parser.add_argument("--calls", type=int, default=1000, help="timed act calls per path per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--env-steps", type=int, default=20_000, help="steps of the env-limit measurement")
    args = parser.parse_args()
    load_start = list(os.getloadavg())
    if load_start[0] > 0.5:
        print(f"warning: load average {load_start[0]:.2f} > 0.5: the machine is busy, figures are unreliable",
              file=sys.stderr)
    results = [act_case(name, args.calls, args.rounds) for name in args.cases.split(",")]
    for r in results:
        print(f"{r['case']}: " + ", ".join(f"{p} {v:.1f} us" for p, v in r["us_per_act"].items())
              + f" (auto: {r['auto_choice']})", file=sys.stderr)
    envs = sorted({CASES[name][1] for name in args.cases.split(",")})
    limits = [env_limit(e, args.env_steps) for e in envs]
    out = {"acts": results, "env_limits": limits,
           "meta": {"date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
                    "machine": {"cpu_model": cpu_model(), "cpu_count": os.cpu_count()},
                    "python": sys.version.split()[0], "jax": jax.__version__, "numpy": np.__version__,
                    "critix_git": git_commit(), "load_average_start": load_start,
                    "load_average_end": list(os.getloadavg()), "command": " ".join([sys.executable, *sys.argv])}}
    path = Path(__file__).resolve().parent / "results" / f"act_speed-{time.strftime('%Y-%m-%d-%H%M%S')}.json"
    path.write_text(json.dumps(out, indent=2))
    print(json.dumps(out, indent=2))
    print(f"wrote {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
