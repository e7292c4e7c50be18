"""Deterministic evaluation on separate eval envs: one episode per eval env, M envs per seed, on Gymnasium envs
(`evaluate`, host steppers) or inside a compiled program on a JAX env (`evaluate_jax`)."""

from __future__ import annotations

from collections.abc import Callable

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np

from critix.envs.gym import to_env_action
from critix.envs.jax_envs import JaxEnv

MAX_EVAL_STEPS = 1_000_000


def evaluate(
    env: gym.vector.VectorEnv,
    act: Callable[[np.ndarray], np.ndarray],
    num_seeds: int,
    seed: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Run every sub-env of `env` (S * M of them, seed-major) until each finished one episode.

    act: observations [S, M, O] -> actions [S, M, A] in [-1, 1] (Box) or [S, M] indices (Discrete).
    Returns (returns, lengths), each [S, M].
    """
    obs, _ = env.reset(seed=seed)
    total = env.num_envs
    per_seed = total // num_seeds
    returns, lengths = np.zeros(total), np.zeros(total, np.int64)
    episode_return, episode_length = np.zeros(total), np.zeros(total, np.int64)
    finished = np.zeros(total, bool)
    for _ in range(MAX_EVAL_STEPS):
        action = act(obs.reshape(num_seeds, per_seed, *obs.shape[1:]))
        obs, reward, terminated, truncated, _ = env.step(to_env_action(action, env.single_action_space, total))
        episode_return += reward
        episode_length += 1
        done = (terminated | truncated) & ~finished
        returns[done], lengths[done] = episode_return[done], episode_length[done]
        finished |= done
        episode_return[terminated | truncated] = 0.0
        episode_length[terminated | truncated] = 0
        if finished.all():
            return returns.reshape(num_seeds, per_seed), lengths.reshape(num_seeds, per_seed)
    raise RuntimeError(f"evaluation did not finish an episode in {MAX_EVAL_STEPS} steps; give the env a TimeLimit")


def evaluate_jax(env: JaxEnv, act: Callable[[jax.Array], jax.Array], key: jax.Array, episodes: int) -> jax.Array:
    """Returns [M] of one episode in each of M = `episodes` copies of `env`, traced (no host round trip).

    act: observations [M, O] -> actions [M, ...]. The scan runs `env.max_episode_steps` steps; an env's return stops
    counting at its episode's end.
    """
    key, reset_key = jax.random.split(key)
    obs, env_state = jax.vmap(env.reset)(jax.random.split(reset_key, episodes))

    def step(c: tuple, _: None) -> tuple[tuple, None]:
        obs, env_state, returns, alive, key = c
        action = act(obs)
        key, step_key = jax.random.split(key)
        obs, env_state, reward, terminated, truncated, _ = jax.vmap(env.step)(
            jax.random.split(step_key, episodes), env_state, action)
        returns = returns + jnp.where(alive, reward, 0.0)
        alive = jnp.logical_and(alive, jnp.logical_not(jnp.logical_or(terminated, truncated)))
        return (obs, env_state, returns, alive, key), None

    init = (obs, env_state, jnp.zeros(episodes), jnp.ones(episodes, bool), key)
    (_, _, returns, _, _), _ = jax.lax.scan(step, init, None, length=env.max_episode_steps)
    return returns
