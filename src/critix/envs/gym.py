"""Gymnasium vector environments for the host training loop.

Vector envs run in SAME_STEP autoreset mode: a step that ends an episode returns the reset observation and puts
the real final observation in `info["final_obs"]`, so `next_obs` can be the final one (bootstrapping through
truncation needs it) while the loop continues from the reset one. Shapes: N envs, O observation, A action.
"""

from __future__ import annotations

import dataclasses
import difflib
from typing import Any

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from gymnasium.vector import AutoresetMode

from critix.types import CritixError


def check_env_id(env_id: str) -> None:
    """Fail early, with suggestions, on an env id Gymnasium does not know."""
    if env_id in gym.registry:
        return
    close = difflib.get_close_matches(env_id, list(gym.registry), n=3, cutoff=0.6)
    hint = f" Did you mean {', '.join(close)}?" if close else " See `gymnasium.pprint_registry()` for the ids."
    raise CritixError(f"unknown environment id {env_id!r}.{hint}")


def make_vector_env(env_id: str, num_envs: int, seed: int, vectorization: str = "sync") -> gym.vector.VectorEnv:
    """N copies of `env_id` in SAME_STEP autoreset mode; `seed` seeds the action space (the caller resets the
    envs with `env.reset(seed=...)`, which seeds sub-env i with seed + i).

    vectorization: "sync" (one process, lowest overhead for fast envs), "async" (one process per env) or "auto"
    (`choose_vectorization`: async only for N >= 2 envs whose measured step takes ASYNC_MIN_STEP_SECONDS or more).
    """
    from critix.envs import pixels

    wrappers, make_kwargs = pixels.prepare(env_id)  # MinAtar and Atari: registration and standard wrappers
    check_env_id(env_id)
    if vectorization not in ("auto", "sync", "async"):
        raise CritixError(f"vectorization must be 'auto', 'sync' or 'async', got {vectorization!r}")
    if vectorization == "auto":
        vectorization = choose_vectorization(env_id, num_envs, seed)
    try:
        envs = gym.make_vec(
            env_id,
            num_envs=num_envs,
            vectorization_mode=vectorization,
            vector_kwargs={"autoreset_mode": AutoresetMode.SAME_STEP},
            wrappers=wrappers or None,
            **make_kwargs,
        )
    except gym.error.DependencyNotInstalled as err:
        raise CritixError(f"environment {env_id!r} needs an extra dependency: {err}") from None
    if type(envs) is gym.vector.SyncVectorEnv and SameStepVectorEnv.takes(envs):
        envs.__class__ = SameStepVectorEnv  # the same object and state, with the shorter `step` (below)
    envs.action_space.seed(seed)
    return envs


class SameStepVectorEnv(gym.vector.SyncVectorEnv):
    """Gymnasium's SyncVectorEnv in SAME_STEP autoreset mode with a shorter `step`, for Box observations and Box
    or Discrete actions (what the host loops run): the same transitions, infos and autoreset state, without the
    generic space iteration, concatenation and deep copy, which cost 2-3x a CartPole step (15 vs 30 us per env
    step measured on 2 cores; the bare env: 10 us). `make_vector_env` gives its sync envs this class."""

    @staticmethod
    def takes(envs: gym.vector.SyncVectorEnv) -> bool:
        return (envs.autoreset_mode == AutoresetMode.SAME_STEP
                and isinstance(envs.single_observation_space, gym.spaces.Box)
                and isinstance(envs.single_action_space, (gym.spaces.Box, gym.spaces.Discrete)))

    def step(self, actions: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        infos: dict[str, Any] = {}
        obs_out, rewards, terminations, truncations = (self._observations, self._rewards, self._terminations,
                                                       self._truncations)
        for i, env in enumerate(self.envs):
            obs, rewards[i], terminated, truncated, info = env.step(actions[i])
            terminations[i], truncations[i] = terminated, truncated
            if terminated or truncated:  # SAME_STEP: report the final observation, continue from a reset one
                infos = self._add_info(infos, {"final_obs": obs, "final_info": info}, i)
                obs, info = env.reset()
            if info:
                infos = self._add_info(infos, info, i)
            obs_out[i] = obs
        self._autoreset_envs = terminations | truncations
        return obs_out.copy(), rewards.copy(), terminations.copy(), truncations.copy(), infos


def scale_action(action: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """Map an action in [-1, 1] to the box [low, high]: low + (a + 1) / 2 * (high - low)."""
    return low + 0.5 * (np.clip(action, -1.0, 1.0) + 1.0) * (high - low)


def final_observation(obs: np.ndarray, done: np.ndarray, info: dict) -> np.ndarray:
    """next_obs for the replay buffer: the real final observation where an episode ended, else `obs`."""
    if not done.any():
        return obs
    if "final_obs" not in info:
        raise RuntimeError("vector env did not report final_obs; it must run in SAME_STEP autoreset mode")
    next_obs = obs.copy()
    for i in np.flatnonzero(info["_final_obs"]):
        next_obs[i] = info["final_obs"][i]
    return next_obs


REWARD_CLIP = 10.0  # SB3 VecNormalize's clip_reward: scaled rewards are clipped to [-10, 10]


def combine_moments(mean: Any, var: Any, count: Any, batch_mean: Any, batch_var: Any, batch_count: Any) -> tuple:
    """Mean, variance and count of two samples merged (Chan et al. 1979, the parallel update of the moments).

    Pure array arithmetic, so it serves numpy (the host loops) and JAX (compiled runs) alike; `count` and
    `batch_count` must broadcast against `mean`."""
    delta = batch_mean - mean
    total = count + batch_count
    new_mean = mean + delta * (batch_count / total)
    m2 = var * count + batch_var * batch_count + delta**2 * (count * batch_count / total)
    return new_mean, m2 / total, total


@dataclasses.dataclass
class RunningMeanStd:
    """Running mean and variance of observations, per seed: arrays [S, O] (host loops, numpy, float64)."""

    mean: np.ndarray
    var: np.ndarray
    count: np.ndarray  # [S]

    @classmethod
    def create(cls, num_seeds: int, shape: tuple[int, ...]) -> RunningMeanStd:
        return cls(
            np.zeros((num_seeds, *shape), np.float64),
            np.ones((num_seeds, *shape), np.float64),
            np.full((num_seeds,), 1e-4, np.float64),
        )

    def update(self, x: np.ndarray) -> None:
        """x: [S, M, *obs_shape] new observations for each seed."""
        per_seed = (slice(None),) + (None,) * (self.mean.ndim - 1)  # broadcast [S] over the obs axes
        self.mean, self.var, _ = combine_moments(self.mean, self.var, self.count[per_seed], x.mean(axis=1),
                                                 x.var(axis=1), x.shape[1])
        self.count = self.count + x.shape[1]


class Moments(struct.PyTreeNode):
    """Running mean and variance of one seed inside a compiled run (JAX arrays; vmapped over seeds outside)."""

    mean: jax.Array
    var: jax.Array
    count: jax.Array  # scalar

    @classmethod
    def create(cls, shape: tuple[int, ...]) -> Moments:
        """The same start as RunningMeanStd: mean 0, variance 1, count 1e-4."""
        return cls(jnp.zeros(shape), jnp.ones(shape), jnp.full((), 1e-4))

    def update(self, x: jax.Array) -> Moments:
        """x: [M, *shape] new samples."""
        mean, var, count = combine_moments(self.mean, self.var, self.count, x.mean(axis=0), x.var(axis=0),
                                           x.shape[0])
        return Moments(mean, var, count)


def scale_reward(ret_rms: Moments, discounted: jax.Array, transition: Any, gamma: Any) -> tuple[Moments, jax.Array,
                                                                                          jax.Array]:
    """SB3 VecNormalize's reward scaling in JAX: divide by the running std of the discounted return, clip to
    [-REWARD_CLIP, REWARD_CLIP]; the discounted return restarts at each episode's end.

    Returns (updated statistics, discounted returns [N], scaled rewards [N]).
    """
    discounted = discounted * gamma + transition.reward
    ret_rms = ret_rms.update(discounted)
    reward = jnp.clip(transition.reward / jnp.sqrt(ret_rms.var + 1e-8), -REWARD_CLIP, REWARD_CLIP)
    done = jnp.logical_or(transition.terminated, transition.truncated)
    return ret_rms, jnp.where(done, 0.0, discounted), reward


def normalize_obs(obs: jax.Array, mean: jax.Array, var: jax.Array, clip: float = 10.0, xp: Any = jnp) -> jax.Array:
    """(obs - mean) / sqrt(var + 1e-8), clipped to [-clip, clip] (SB3 VecNormalize's defaults); `xp=numpy` computes
    it on the host (the host loops' NumPy acting)."""
    return xp.clip((obs - mean) / xp.sqrt(var + 1e-8), -clip, clip)


def random_actions(rng: np.random.Generator, space: gym.Space, num: int) -> np.ndarray:
    """`num` uniform random agent actions: [num, A] in [-1, 1] for a Box, [num] int32 indices for a Discrete."""
    if isinstance(space, gym.spaces.Discrete):
        return rng.integers(0, int(space.n), num).astype(np.int32)
    return rng.uniform(-1.0, 1.0, (num, *space.shape)).astype(np.float32)


def to_env_action(action: np.ndarray, space: gym.Space, num_envs: int) -> np.ndarray:
    """Agent actions for `num_envs` envs -> what the vector env steps with: indices [N] for a Discrete (offset by
    its `start`), the [-1, 1] actions rescaled to the bounds for a Box ([N, A])."""
    if isinstance(space, gym.spaces.Discrete):
        return np.asarray(action).reshape(num_envs).astype(np.int64) + int(space.start)
    return scale_action(np.asarray(action).reshape(num_envs, -1), space.low, space.high)


# ---- choosing the vectorisation by measured env cost ----------------------------------------------------------

ASYNC_MIN_STEP_SECONDS = 1e-3
"""`--vectorization auto` runs N >= 2 envs in worker processes when one env step takes at least this long. Measured
on 2 cores (benchmarks/act_speed.py's notes in docs/benchmarks.md): Gymnasium's AsyncVectorEnv adds about 130-250
us per env per vector step (pipes, pickling), and at most min(N, cores) steps run at once, so envs of CartPole's
(8 us), Pendulum's (30 us) or HalfCheetah's (70 us) cost are fastest in one process; async pays only for envs
around a millisecond a step (large MuJoCo models, emulators with frame skip). Async envs cannot be snapshotted, so
a resumed async run starts fresh episodes (docs/reliability.md); their workers are forked, so envs that compute
with JAX (critix's `jax:` adapters) always stay sync."""


def env_step_seconds(env_id: str, seed: int, budget_seconds: float = 0.1, max_steps: int = 100) -> float:
    """Seconds one step of `env_id` takes with random actions: the fastest of up to `max_steps` timed steps (within
    about `budget_seconds`), i.e. the env's own cost without what other processes on the machine add; measured on a
    throwaway 1-env sync vector env. Returns 0 for envs computed by JAX (`critix.envs.jax_envs.GymnasiumAdapter`),
    which must stay in the training process: a forked worker process cannot use JAX."""
    import time

    from critix.envs.jax_envs import GymnasiumAdapter

    env = make_vector_env(env_id, 1, seed, "sync")
    try:
        if isinstance(env.envs[0].unwrapped, GymnasiumAdapter):
            return 0.0
        env.reset(seed=seed)
        times: list[float] = []
        begin = time.perf_counter()
        while len(times) < max_steps and (time.perf_counter() - begin < budget_seconds or len(times) < 3):
            action = env.action_space.sample()
            t = time.perf_counter()
            env.step(action)
            times.append(time.perf_counter() - t)
        return min(times)
    finally:
        env.close()


def choose_vectorization(env_id: str, num_envs: int, seed: int) -> str:
    """"sync" or "async" for N = `num_envs` copies of `env_id`: async only when N >= 2, the machine has 2 or more
    cores and one step takes at least ASYNC_MIN_STEP_SECONDS (`env_step_seconds`). Either way the envs return the
    same transitions, so the choice changes speed, never results."""
    import os

    if num_envs < 2 or (os.cpu_count() or 1) < 2:
        return "sync"
    return "async" if env_step_seconds(env_id, seed) >= ASYNC_MIN_STEP_SECONDS else "sync"
