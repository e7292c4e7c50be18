"""JAX-native environments for the fully compiled mode: a gymnax adapter with `terminated` and `truncated` apart.

Env ids choose the mode: `gymnax:CartPole-v1` (any id in `gymnax.registered_envs`) runs through `JaxEnv`, and
`jax:<name>` ids name envs registered here with `register` (e.g. test envs). A `JaxEnv` is pure: `reset` and `step`
are jit-able and vmap-able, so a whole training run can be one `lax.scan`.

gymnax 0.0.9 reports one `done` (termination or time limit) and auto-resets, dropping the final observation.
The adapter instead calls the env's own `step_env` and `reset_env`, and splits the flags: `truncated` is the time
limit (`state.time >= max_steps_in_episode`), `terminated` the env's natural end (its `is_terminal` evaluated with
the clock at 0). It returns the real final observation next to the reset one, as the host loop's SAME_STEP
autoreset does. Observations are flattened to one vector (MinAtar's [10, 10, C] grids feed MLPs directly).
Box actions arrive in [-1, 1] (the agents' scale) and are clipped and mapped to the env's bounds here.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np

from critix.types import CritixError

GYMNAX_PREFIX = "gymnax:"
JAX_PREFIX = "jax:"
_REGISTRY: dict[str, Callable[[], JaxEnv]] = {}


def is_jax_env(env_id: str) -> bool:
    return env_id.startswith((GYMNAX_PREFIX, JAX_PREFIX))


def register(name: str, factory: Callable[[], JaxEnv]) -> None:
    """Make `jax:<name>` build `factory()` (a `JaxEnv`)."""
    _REGISTRY[name] = factory


@dataclasses.dataclass(frozen=True, eq=False)
class JaxEnv:
    """A pure, single (unbatched) environment; vmap `reset`/`step` for N envs."""

    name: str
    observation_space: gym.spaces.Box
    action_space: gym.spaces.Space
    max_episode_steps: int
    reset_fn: Callable[[jax.Array], tuple[jax.Array, Any]]
    """key -> (flat obs [O], env state)"""
    step_fn: Callable[[jax.Array, Any, jax.Array], tuple[jax.Array, Any, jax.Array, jax.Array, jax.Array]]
    """(key, state, env action) -> (flat obs, state, reward, terminated, truncated), no auto-reset"""

    def reset(self, key: jax.Array) -> tuple[jax.Array, Any]:
        return self.reset_fn(key)

    def env_action(self, action: jax.Array) -> jax.Array:
        """Agent action -> env action: Box actions from [-1, 1] to [low, high] (clipped); Discrete unchanged."""
        if isinstance(self.action_space, gym.spaces.Box):
            low, high = jnp.asarray(self.action_space.low), jnp.asarray(self.action_space.high)
            return low + 0.5 * (jnp.clip(action, -1.0, 1.0) + 1.0) * (high - low)
        return action

    def step(self, key: jax.Array, state: Any, action: jax.Array) -> tuple:
        """One step with auto-reset; returns (obs, state, reward, terminated, truncated, final_obs)."""
        step_key, reset_key = jax.random.split(key)
        final_obs, next_state, reward, terminated, truncated = self.step_fn(step_key, state, self.env_action(action))
        reset_obs, reset_state = self.reset_fn(reset_key)
        done = jnp.logical_or(terminated, truncated)
        state = jax.tree.map(lambda r, s: jnp.where(done, r, s), reset_state, next_state)
        obs = jnp.where(done, reset_obs, final_obs)
        return obs, state, reward.astype(jnp.float32), terminated, truncated, final_obs


def _to_gym_space(space: Any, flat: bool = False) -> gym.spaces.Space:
    if hasattr(space, "n"):
        return gym.spaces.Discrete(int(space.n))
    shape = tuple(space.shape)
    low = np.broadcast_to(np.asarray(space.low, np.float32), shape)
    high = np.broadcast_to(np.asarray(space.high, np.float32), shape)
    if flat:
        low, high, shape = low.reshape(-1), high.reshape(-1), (int(np.prod(shape)),)
    return gym.spaces.Box(low, high, shape, np.float32)


def make_gymnax(name: str) -> JaxEnv:
    """Wrap gymnax env `name` (e.g. "CartPole-v1", "Breakout-MinAtar")."""
    try:
        import gymnax
    except ImportError as err:
        raise CritixError(f"gymnax env ids need gymnax: pip install 'critix[jax-envs]' ({err})") from None
    if name not in gymnax.registered_envs:
        close = difflib.get_close_matches(name, gymnax.registered_envs, n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(GYMNAX_PREFIX + c for c in close)}?" if close else ""
        raise CritixError(f"unknown gymnax environment {name!r}.{hint} Known: {', '.join(gymnax.registered_envs)}")
    env, params = gymnax.make(name)

    def reset_fn(key: jax.Array) -> tuple[jax.Array, Any]:
        obs, state = env.reset_env(key, params)
        # Strong dtypes: some resets build weakly typed leaves (Pendulum's last_u) that `step_env` returns strongly
        # typed, which would make a compiled chunk's output carry differ from its input (and recompile).
        state = jax.tree.map(lambda x: jnp.asarray(x, dtype=jnp.asarray(x).dtype), state)
        return jnp.asarray(obs, jnp.float32).reshape(-1), state

    def step_fn(key: jax.Array, state: Any, action: jax.Array) -> tuple:
        obs, next_state, reward, _, _ = env.step_env(key, state, action, params)
        truncated = next_state.time >= params.max_steps_in_episode
        terminated = env.is_terminal(next_state.replace(time=0), params)  # the natural end, time limit aside
        return jnp.asarray(obs, jnp.float32).reshape(-1), next_state, jnp.asarray(reward), terminated, truncated

    return JaxEnv(
        name=GYMNAX_PREFIX + name,
        observation_space=_to_gym_space(env.observation_space(params), flat=True),  # type: ignore[arg-type]
        action_space=_to_gym_space(env.action_space(params)),
        max_episode_steps=int(params.max_steps_in_episode),
        reset_fn=reset_fn,
        step_fn=step_fn,
    )


def make_jax_env(env_id: str) -> JaxEnv:
    """`gymnax:<id>` or `jax:<registered name>` -> JaxEnv."""
    if env_id.startswith(GYMNAX_PREFIX):
        return make_gymnax(env_id[len(GYMNAX_PREFIX):])
    if env_id.startswith(JAX_PREFIX):
        name = env_id[len(JAX_PREFIX):]
        if name not in _REGISTRY:
            raise CritixError(f"unknown JAX env {env_id!r}; registered: {sorted(_REGISTRY) or 'none'}")
        return _REGISTRY[name]()
    raise CritixError(f"{env_id!r} is not a JAX env id; use gymnax:<id> (e.g. gymnax:CartPole-v1)")


class GymnasiumAdapter(gym.Env):
    """A `JaxEnv` stepped on the host as a Gymnasium env (one env, numpy in and out), e.g. to run the same env in
    host mode and compiled mode. Box actions are taken in the env's own bounds, as Gymnasium envs take them."""

    def __init__(self, env: JaxEnv) -> None:
        self.env = env
        self.observation_space = env.observation_space
        self.action_space = env.action_space
        self._key = jax.random.PRNGKey(0)
        self._state: Any = None
        self._reset = jax.jit(env.reset_fn)
        self._step = jax.jit(env.step_fn)

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        if seed is not None:
            self._key = jax.random.PRNGKey(seed)
        self._key, key = jax.random.split(self._key)
        obs, self._state = self._reset(key)
        return np.asarray(obs), {}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        self._key, key = jax.random.split(self._key)
        obs, self._state, reward, terminated, truncated = self._step(key, self._state, jnp.asarray(action))
        return np.asarray(obs), float(reward), bool(terminated), bool(truncated), {}
