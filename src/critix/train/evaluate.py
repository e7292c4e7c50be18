"""Deterministic evaluation on separate eval envs: one episode per eval env, M envs per seed."""

from __future__ import annotations

from collections.abc import Callable

import gymnasium as gym
import numpy as np

from critix.envs.gym import scale_action

MAX_EVAL_STEPS = 1_000_000


def evaluate(
    env: gym.vector.VectorEnv,
    act: Callable[[np.ndarray], np.ndarray],
    num_seeds: int,
    seed: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Run every sub-env of `env` (S * M of them, seed-major) until each finished one episode.

    act: observations [S, M, O] -> actions [S, M, A] in [-1, 1]. Returns (returns, lengths), each [S, M].
    """
    obs, _ = env.reset(seed=seed)
    total = env.num_envs
    per_seed = total // num_seeds
    returns, lengths = np.zeros(total), np.zeros(total, np.int64)
    episode_return, episode_length = np.zeros(total), np.zeros(total, np.int64)
    finished = np.zeros(total, bool)
    space = env.single_action_space
    box = isinstance(space, gym.spaces.Box)  # else Discrete: integer actions go to the env as they are
    for _ in range(MAX_EVAL_STEPS):
        action = act(obs.reshape(num_seeds, per_seed, *obs.shape[1:])).reshape(total, *space.shape)
        obs, reward, terminated, truncated, _ = env.step(scale_action(action, space.low, space.high) if box else action)
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
