"""What the two host-mode loops share: the run's Gymnasium envs, acting, evaluation and restored counters.

The off-policy loop (`critix.train.online`) and the on-policy loop (`critix.train.onpolicy`) both keep S seeds x
N envs in one Gymnasium vector env (seed-major), act with the agent module's `act` vmapped over seeds (with
optional observation normalisation), and evaluate greedily on separate eval envs. `HostSession` is that common
part; each loop's `Session` adds its own compiled training function and state.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import jax
import numpy as np

from critix import __version__, agents
from critix.envs.gym import RunningMeanStd, make_vector_env, normalize_obs
from critix.provenance import source_commit
from critix.train import checkpoint
from critix.train.evaluate import evaluate
from critix.train.logging import MetricsLogger
from critix.train.resume import LoopState
from critix.types import CritixError


class HostSession:
    """Envs, acting functions and evaluation of one host-mode run (built from configs; holds no learned state).

    Subclasses set `obs_dtype` (what observations are cast to before acting) and build their training functions.
    Runners passed to `stats`/`evaluate` have `agent` (leading seed axis S) and `obs_rms`.
    """

    obs_dtype: Any = np.float32

    def __init__(self, algo: str, agent_cfg: Any, run: Any) -> None:
        self.algo, self.cfg, self.run = algo, agent_cfg, run
        self.module = agents.get(algo).module
        self.num_seeds, self.num_envs = run.num_seeds, run.num_envs
        self.env = make_vector_env(run.env, run.num_seeds * run.num_envs, run.seed * 1000, run.vectorization)
        self.obs_space, self.act_space = self.env.single_observation_space, self.env.single_action_space
        try:
            self.module.check_spaces(self.obs_space, self.act_space)
        except CritixError:
            self.env.close()
            raise
        self.eval_env = make_vector_env(run.env, run.num_seeds * run.eval_episodes, run.seed * 1000 + 500_000)
        self.discrete = isinstance(self.act_space, gym.spaces.Discrete)
        self.obs_shape = self.obs_space.shape
        self.policy, self.greedy = self._acting_functions()

    def prepare(self, obs: jax.Array, mean: jax.Array, var: jax.Array) -> jax.Array:
        """Observations as the agent sees them: normalised with the running statistics if the run asks for it."""
        return normalize_obs(obs, mean, var) if self.run.normalize_obs else obs

    def _acting_functions(self) -> tuple[Any, Any]:
        """(policy, greedy), jitted and vmapped over seeds: policy(state, key, obs, mean, var) -> (action, key)
        samples an exploring action and advances the seed's key; greedy(state, obs, mean, var) -> action."""
        cfg, module, prepare = self.cfg, self.module, self.prepare

        def policy(state: Any, key: jax.Array, obs: jax.Array, mean: jax.Array, var: jax.Array) -> Any:
            key, act_key = jax.random.split(key)
            return module.act(cfg, state, prepare(obs, mean, var), act_key, False), key

        def greedy(state: Any, obs: jax.Array, mean: jax.Array, var: jax.Array) -> jax.Array:
            return module.act(cfg, state, prepare(obs, mean, var), jax.random.PRNGKey(0), True)

        return jax.jit(jax.vmap(policy)), jax.jit(jax.vmap(greedy))

    def stats(self, runner: Any) -> tuple[np.ndarray, np.ndarray]:
        rms: RunningMeanStd = runner.obs_rms
        return rms.mean.astype(np.float32), rms.var.astype(np.float32)

    def evaluate(self, runner: Any, seed: int) -> np.ndarray:
        """Greedy returns [S, eval_episodes], one episode per eval env."""
        mean, var = self.stats(runner)

        def act(obs: np.ndarray) -> np.ndarray:
            return np.asarray(self.greedy(runner.agent, obs.astype(self.obs_dtype), mean, var))

        return evaluate(self.eval_env, act, self.num_seeds, seed)[0]

    def evaluate_and_log(self, runner: Any, logger: MetricsLogger, step: int, start: float) -> np.ndarray:
        """Evaluate at env step `step` (its own eval seed), log eval/return(_std); returns [S, episodes]."""
        returns = self.evaluate(runner, seed=self.run.seed * 1000 + 900_000 + step)
        logger.log(step, time.perf_counter() - start, {"eval/return": returns.mean(axis=1),
                                                       "eval/return_std": returns.std(axis=1)})
        return returns

    def save_checkpoint(self, ckpt_dir: Path, step: int, runner: Any, logger: MetricsLogger, start: float,
                        loop_state: LoopState, **meta: Any) -> None:
        """Checkpoint at env step `step`: device arrays, counters, the loop state with env snapshots, and `meta`."""
        runner.wall_seconds = time.perf_counter() - start
        logger.flush()
        checkpoint.save(ckpt_dir, step, runner.arrays(),
                        {"counters": runner.counters(), "algo": self.algo, "env": self.run.env, **meta,
                         "loop": loop_state.to_json(self.env)},
                        keep=self.run.keep_checkpoints)

    def close(self) -> None:
        self.env.close()
        self.eval_env.close()


def restore_counters(runner: Any, meta: dict[str, Any]) -> Any:
    """Set the host counters a checkpoint's meta.json recorded (vector_steps, updates, wall_seconds ...)."""
    for name, value in meta["counters"].items():
        setattr(runner, name, value)
    return runner


def make_summary(
    algo: str, run: Any, final_returns: np.ndarray, steps: int, wall_seconds: float, train_steps: int,
    train_seconds: float, compile_seconds: float, gradient_steps: int, run_dir: Path, mode: str = "host",
) -> dict[str, Any]:
    """summary.json of every training mode (off-policy and on-policy host loops, compiled runs).

    final_returns: [S, episodes] of the final greedy evaluation; run: the run's RunConfig.
    """
    per_seed_final = final_returns.mean(axis=1)
    return {
        "algo": algo,
        "env": run.env,
        "mode": mode,
        "steps": steps,
        "num_seeds": run.num_seeds,
        "num_envs": run.num_envs,
        "final_return": [float(x) for x in per_seed_final],
        "final_return_mean": float(per_seed_final.mean()),
        "final_return_std": float(per_seed_final.std()),
        "eval_episodes": run.eval_episodes,
        "wall_seconds": wall_seconds,
        "steps_per_second": train_steps / train_seconds if train_seconds else None,
        "steps_per_second_note": "env steps per seed per second in steady state: compile, warm-up and eval excluded",
        "compile_seconds": compile_seconds,
        "train_seconds": train_seconds,
        "train_seconds_note": "wall time of env steps + updates after learning starts, compiling chunks excluded",
        "gradient_steps": gradient_steps,
        "critix_version": __version__,
        "critix_commit": source_commit(),
        "jax_version": jax.__version__,
        "device": str(jax.devices()[0]),
        "run_dir": str(run_dir),
    }
