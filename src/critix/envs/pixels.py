"""Environment suites beyond Gymnasium's built-ins, made on demand: MinAtar (`MinAtar/Breakout-v1` ...) and Atari
through ale-py (`ALE/Pong-v5` ...), with the standard wrappers. Both need the `pixels` extra
(`pip install critix[pixels]`).

Atari (Mnih et al. 2015; Machado et al. 2018): the base env runs with frameskip 1 and sticky actions (v5 default
0.25), then `AtariPreprocessing` (up to 30 no-op starts, frame skip 4 with a max-pool over the last two frames,
a life loss ends the episode, 84x84 greyscale), a fire reset for games that wait for FIRE after a reset
(Breakout ...), reward clipping to [-1, 1], and a stack of the last 4 frames, channels last: observations are
uint8 [84, 84, 4]. Returns logged by critix are then clipped, per-life returns.
MinAtar (Young & Tian 2019): observations are bool [10, 10, C] (stored as uint8), capped at 10,000 steps per episode.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np

from critix.types import CritixError

Wrapper = Callable[[gym.Env], gym.Env]
MINATAR_MAX_STEPS = 10_000


def _channels_last(env: gym.Env) -> gym.Env:
    space = env.observation_space
    shape = (*space.shape[1:], space.shape[0])
    new_space = gym.spaces.Box(0, 255, shape, np.uint8)
    return gym.wrappers.TransformObservation(env, lambda obs: np.moveaxis(obs, 0, -1), new_space)


class FireReset(gym.Wrapper):
    """Press FIRE (then action 2, as OpenAI Baselines does) after every reset, for games that otherwise stand
    still until the player fires (Breakout, ...). Without it an agent can spend whole episodes not starting the game.
    Games whose action set has no FIRE are left as they are."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        meanings = env.unwrapped.get_action_meanings()
        self.active = len(meanings) >= 3 and meanings[1] == "FIRE"

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        obs, info = self.env.reset(**kwargs)
        if not self.active:
            return obs, info
        for action in (1, 2):
            obs, _, terminated, truncated, info = self.env.step(action)
            if terminated or truncated:  # lost a life (or the game) while firing: start over, without a seed
                obs, info = self.env.reset()
        return obs, info


def atari_wrappers(frame_stack: int = 4) -> list[Wrapper]:
    """The standard Atari wrappers, in order (see the module docstring)."""
    return [
        lambda env: gym.wrappers.AtariPreprocessing(
            env, noop_max=30, frame_skip=4, screen_size=84, terminal_on_life_loss=True, grayscale_obs=True
        ),
        FireReset,
        lambda env: gym.wrappers.ClipReward(env, -1.0, 1.0),
        lambda env: gym.wrappers.FrameStackObservation(env, frame_stack),
        _channels_last,
    ]


def prepare(env_id: str) -> tuple[list[Wrapper], dict[str, Any]]:
    """Register the suite `env_id` belongs to and return (wrappers, make kwargs) for it; ([], {}) for other ids."""
    if env_id.startswith("MinAtar/"):
        try:
            from minatar.gym import register_envs
        except ImportError:
            raise CritixError(f"{env_id} needs the MinAtar package: pip install 'critix[pixels]'") from None
        if env_id not in gym.registry:
            register_envs()
        return [lambda env: gym.wrappers.TimeLimit(env, MINATAR_MAX_STEPS)], {}
    if env_id.startswith("ALE/"):
        try:
            import ale_py
        except ImportError:
            raise CritixError(f"{env_id} needs ale-py: pip install 'critix[pixels]'") from None
        gym.register_envs(ale_py)
        return atari_wrappers(), {"frameskip": 1}
    return [], {}
