"""A user's own environments, unknown to critix: what a user writes in their project (tests put this folder on
sys.path / PYTHONPATH and train with `--env my_critix_envs:Reach-v0`).

Every env pays (1 + a_0) / 2 in [0, 1] per step for its first action value, so the best policy pushes it to the top
of its bound; episodes last `episode_length` steps. Importing the module registers the envs with Gymnasium.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np


class Reach(gym.Env):
    """Observations [size] (the step count as a fraction, then noise), actions [size] in [-bound, bound]."""

    metadata: dict[str, Any] = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(self, size: int = 2, episode_length: int = 20, action_bound: float = 1.0,
                 render_mode: str | None = None) -> None:
        self.size, self.episode_length, self.render_mode = size, episode_length, render_mode
        self.observation_space = gym.spaces.Box(-1.0, 1.0, (size,), np.float32)
        self.action_space = gym.spaces.Box(-action_bound, action_bound, (size,), np.float32)
        self.t = 0

    def _obs(self) -> np.ndarray:
        obs = self.np_random.uniform(-1.0, 1.0, self.size).astype(np.float32)
        obs[0] = self.t / self.episode_length
        return obs

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self.t = 0
        return self._obs(), {}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict]:
        self.t += 1
        reward = float((1.0 + np.clip(action[0], -1.0, 1.0)) / 2.0)
        return self._obs(), reward, False, self.t >= self.episode_length, {}

    def render(self) -> np.ndarray:
        """A 16 x 32 frame whose white bar grows with the step count (for video tests)."""
        frame = np.zeros((16, 32, 3), np.uint8)
        frame[:, : 1 + 31 * self.t // self.episode_length] = 255
        return frame


class DictReach(Reach):
    """Reach with Dict observations: {"progress": Box [1], "mode": Discrete(3)}; critix flattens them to [4]."""

    def __init__(self, episode_length: int = 20, render_mode: str | None = None) -> None:
        super().__init__(1, episode_length, render_mode=render_mode)
        self.observation_space = gym.spaces.Dict(
            {"progress": gym.spaces.Box(0.0, 1.0, (1,), np.float32), "mode": gym.spaces.Discrete(3)})

    def _obs(self) -> dict[str, Any]:  # type: ignore[override]
        return {"progress": np.array([self.t / self.episode_length], np.float32),
                "mode": int(self.np_random.integers(3))}


class MultiDiscreteReach(Reach):
    """Reach with MultiDiscrete([3, 3]) actions, which no critix algorithm takes."""

    def __init__(self) -> None:
        super().__init__(2)
        self.action_space = gym.spaces.MultiDiscrete([3, 3])

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict]:
        return super().step(np.asarray(action, np.float32) - 1.0)


class UnseededReach(Reach):
    """Reach whose observations ignore the reset seed (numpy's global generator): Gymnasium's checker refuses it."""

    def _obs(self) -> np.ndarray:
        return np.random.uniform(-1.0, 1.0, self.size).astype(np.float32)


def make_reach(**kwargs: Any) -> gym.Env:
    """A factory, as a user passes it to `critix.train.train(..., env=make_reach)`."""
    return Reach(**kwargs)


gym.register(id="Reach-v0", entry_point=Reach)
gym.register(id="DictReach-v0", entry_point=DictReach)
gym.register(id="MultiDiscreteReach-v0", entry_point=MultiDiscreteReach)
gym.register(id="UnseededReach-v0", entry_point=UnseededReach)
