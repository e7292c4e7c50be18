"""Where critix's host DQN loop spends its time per env step (diagnostic for issue 4's 3x-SB3 target).

Builds the same off-policy stepper (`critix.train.offpolicy.OffPolicy`) as `benchmarks/dqn_speed.py` runs (SB3's DQN defaults on CartPole-v1,
chunk 4 (`--chunk-size`), UTD 0.25, 1 seed, 1 env), compiles its functions, then replays the body of its `advance`
(`--steps` env steps after `--warmup` untimed ones) with a timer around each part:
- act: `session.acting.explore(...)` (`--acting numpy`: the policy in NumPy; `jit`: one compiled call on
  pre-drawn random numbers; `per-step-key`: critix's acting before issue 19, one jitted call that also draws its
  random numbers) and `np.asarray` of its action;
- env: Gymnasium's SyncVectorEnv.step (1 CartPole) with the action converted by `to_env_action`;
- bookkeeping: final_observation, the staging-array writes and the episode-return accounting;
- chunk prep (per chunk): `session.stats`, the per-seed reshape into a Transition;
- update (per chunk): `session.train_chunk` (buffer write + 1 gradient step), the two guard counters read back
  with int(np.sum(...)), block_until_ready;
(act and update also in process CPU time, all threads: wall well above CPU time is waiting, e.g. for a core on
a loaded machine or for XLA's worker threads to wake), and, as floors, a jitted no-op round trip (dispatch +
transfer of one small array) and the env step alone. It also counts the kernels XLA launches per call of the act
and update functions. The loop copy mirrors offpolicy.py at the commit this file was written against; it measures,
it does not train for results. Figures are microseconds per env step (per-chunk parts divided by the chunk size).
The JSON goes to stdout and to benchmarks/results/dqn_loop_breakdown-<date>.json, with commit, machine and load.

    .venv/bin/python benchmarks/dqn_loop_breakdown.py --steps 4000
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import sys
import time
from pathlib import Path

import jax
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from dqn_speed import SB3_DQN, critix_dqn_config  # noqa: E402
from sac_speed import cpu_model, git_commit  # noqa: E402

from critix.agents import common, dqn  # noqa: E402
from critix.envs.gym import final_observation, to_env_action  # noqa: E402
from critix.train.config import RunConfig  # noqa: E402
from critix.train.offpolicy import OffPolicy  # noqa: E402
from critix.types import Transition  # noqa: E402


def kernel_count(compiled: object) -> int:
    """Top-level ops of a compiled executable's entry computation that run as kernels (fusions, dots, copies ...;
    parameters, tuples, constants and bitcasts left out): how many pieces XLA's CPU runtime launches per call."""
    text = compiled.as_text()  # type: ignore[attr-defined]
    entry = text[text.index("ENTRY"):]
    entry = entry[: entry.index("\n}\n")]
    ops = [m.group(1) for line in entry.splitlines()[1:] if (m := re.search(r"= \S+ ([a-z\-]+)\(", line))]
    passive = {"parameter", "tuple", "get-tuple-element", "constant", "bitcast"}
    return sum(op not in passive for op in ops)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=4000, help="timed env steps")
    parser.add_argument("--warmup", type=int, default=400, help="untimed env steps first (compiles everything)")
    parser.add_argument("--chunk-size", type=int, default=SB3_DQN["train_freq"], help="env steps per update call")
    parser.add_argument("--acting", choices=("numpy", "jit", "per-step-key"), default="numpy",
                        help="the host loop's Acting with NumPy or one compiled call per step, or the acting of "
                             "critix before issue 19 (one jitted act per step drawing its own random numbers)")
    args = parser.parse_args()
    total = args.warmup + args.steps
    agent_fields, run_fields = critix_dqn_config(SB3_DQN, 100_000, args.chunk_size)
    cfg = common.replace_fields(dqn.Config(), **agent_fields)
    run = RunConfig(env="CartPole-v1", steps=total, eval_every=0, progress=False, tensorboard=False,
                    acting="jit" if args.acting == "per-step-key" else args.acting,
                    **{**run_fields, "learning_starts": 0})  # act with the policy from the first step
    session = OffPolicy("dqn", cfg, run)
    session.fresh(session.capacity)
    runner = session  # the stepper holds the agents, buffers and keys
    S, N, K = 1, 1, run.chunk_size
    obs, _ = session.env.reset(seed=0)
    obs = obs.astype(np.float32)
    episode_return = np.zeros(S * N)
    recent_returns: list[float] = []
    stage_obs = np.zeros((K, S * N, *session.obs_shape), np.float32)
    stage_next = np.zeros_like(stage_obs)
    stage_act = np.zeros((K, S * N), np.int32)
    stage_rew = np.zeros((K, S * N), np.float32)
    stage_term = np.zeros((K, S * N), bool)
    stage_trunc = np.zeros((K, S * N), bool)
    parts = dict.fromkeys(("act", "env", "bookkeeping", "chunk_prep", "update"), 0.0)
    cpu = dict.fromkeys(("act", "update"), 0.0)  # process CPU time (all threads) inside those two parts
    clock, cpu_clock = time.perf_counter, time.process_time
    steps_done, timed_steps, t_loop = 0, 0, 0.0
    while steps_done < total:
        timing = steps_done >= args.warmup
        t_chunk = clock()
        t0 = clock()
        mean, var = session.stats()
        session.acting.start(runner.agent)  # NumPy: the parameters copied once per chunk
        prep = clock() - t0
        for k in range(K):
            t0, c0 = clock(), cpu_clock()
            if args.acting == "per-step-key":
                action, runner.key = session.policy(runner.agent, runner.key, obs.reshape(S, N, *session.obs_shape),
                                                    mean, var)
            else:
                action = session.acting.explore(obs.reshape(S, N, *session.obs_shape), mean, var, steps_done + k)
            action = np.asarray(action).reshape(S * N)
            t1, c1 = clock(), cpu_clock()
            next_obs, reward, terminated, truncated, info = session.env.step(to_env_action(action, session.act_space,
                                                                                           S * N))
            t2 = clock()
            next_obs = next_obs.astype(np.float32)
            done = terminated | truncated
            stage_obs[k], stage_act[k], stage_rew[k] = obs, action, reward
            stage_next[k] = final_observation(next_obs, done, info)
            stage_term[k], stage_trunc[k] = terminated, truncated
            episode_return += reward
            for i in np.flatnonzero(done):
                recent_returns.append(float(episode_return[i]))
            episode_return[done] = 0.0
            obs = next_obs
            t3 = clock()
            if timing:
                parts["act"] += t1 - t0
                cpu["act"] += c1 - c0
                parts["env"] += t2 - t1
                parts["bookkeeping"] += t3 - t2
        t0 = clock()

        def per_seed(x: np.ndarray) -> np.ndarray:
            x = x[:K].reshape(K, S, N, *x.shape[2:]).swapaxes(0, 1)
            return x.reshape(S, K * N, *x.shape[3:])

        items = Transition(per_seed(stage_obs), per_seed(stage_act), per_seed(stage_rew), per_seed(stage_next),
                           per_seed(stage_term), per_seed(stage_trunc))
        t1, c1 = clock(), cpu_clock()
        runner.agent, runner.buffer, runner.key, metrics, guard, _ = session.train_chunk(
            runner.agent, runner.buffer, runner.key, items, mean, var, max(1, round(run.utd_ratio * K * N)))
        int(np.sum(guard["transitions"])), int(np.sum(guard["updates"]))
        jax.block_until_ready(runner.agent)
        t2, c2 = clock(), cpu_clock()
        steps_done += K
        if timing:
            parts["chunk_prep"] += prep + (t1 - t0)
            parts["update"] += t2 - t1
            cpu["update"] += c2 - c1
            timed_steps += K
            t_loop += clock() - t_chunk

    # Kernels per call of the two compiled functions the loop calls, and of the greedy part of the act alone.
    mean, var = session.stats()
    obs3 = obs.reshape(S, N, *session.obs_shape)
    greedy = jax.jit(jax.vmap(lambda state, o: dqn.act(cfg, state, o, jax.random.PRNGKey(0), True)))
    kernels = {
        "act (session.policy, epsilon-greedy)": kernel_count(
            session.policy.lower(runner.agent, runner.key, obs3, mean, var).compile()),
        "act, greedy part only": kernel_count(greedy.lower(runner.agent, obs3).compile()),
        "update chunk (session.train_chunk, 1 gradient step)": kernel_count(session.train_chunk.lower(
            runner.agent, runner.buffer, runner.key, items, mean, var, max(1, round(run.utd_ratio * K * N))).compile()),
    }

    # Floors: a jitted no-op round trip on a [1, 1, 4] observation, and the env step alone.
    noop = jax.jit(lambda x: x + 1.0)
    x = np.zeros((1, 1, 4), np.float32)
    np.asarray(noop(x))
    t0 = clock()
    for _ in range(args.steps):
        np.asarray(noop(x))
    noop_us = (clock() - t0) / args.steps * 1e6
    actions = np.zeros(1, np.int64)
    t0 = clock()
    for i in range(args.steps):
        actions[0] = i % 2
        session.env.step(actions)
    env_us = (clock() - t0) / args.steps * 1e6
    session.close()

    per_step = {name: seconds / timed_steps * 1e6 for name, seconds in parts.items()}
    loop_us = t_loop / timed_steps * 1e6
    result = {
        "timed_steps": timed_steps, "chunk_size": K, "acting": args.acting, "us_per_env_step": per_step,
        "us_per_env_step_loop_total": loop_us, "steps_per_second": 1e6 / loop_us,
        "untimed_remainder_us": loop_us - sum(per_step.values()),
        "cpu_us_per_env_step": {name: seconds / timed_steps * 1e6 for name, seconds in cpu.items()},
        "kernels_per_call": kernels,
        "floor_jit_noop_roundtrip_us": noop_us, "floor_env_step_us": env_us, "episodes": len(recent_returns),
        "meta": {"date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"), "jax": jax.__version__,
                 "cpu_model": cpu_model(), "cpu_count": os.cpu_count(), "critix_git": git_commit(),
                 "xla_flags": os.environ.get("XLA_FLAGS", ""), "load_average_at_end": list(os.getloadavg()),
                 "command": " ".join([sys.executable, *sys.argv])},
    }
    out = Path(__file__).resolve().parent / "results" / f"dqn_loop_breakdown-{time.strftime('%Y-%m-%d-%H%M%S')}.json"
    out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
