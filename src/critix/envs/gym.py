"""Gymnasium vector environments for the host training loop.

Vector envs run in SAME_STEP autoreset mode: a step that ends an episode returns the reset observation and puts
the real final observation in `info["final_obs"]`, so `next_obs` can be the final one (bootstrapping through
truncation needs it) while the loop continues from the reset one. Shapes: N envs, O observation, A action.

Env ids are Gymnasium's: a registered id (`Pendulum-v1`), `module:EnvName-v0` (the module, which registers the env,
is imported first; Gymnasium's own convention), or `callable/<module>.<name>` for an env made by a Python callable
(`register_callable`). Keyword arguments go to gymnasium.make. A user env (module or callable) passes Gymnasium's
environment checker once per process before it trains; Dict and Tuple observations are flattened for every env.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import importlib
import json
import re
import sys
import warnings
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from gymnasium.vector import AutoresetMode

from critix.types import CritixError

CALLABLE_NAMESPACE = "callable"
"""Env ids `callable/<module>.<name>` name an env made by a Python callable (`register_callable`)."""
_CALLABLES: dict[str, Callable[..., gym.Env]] = {}
_CHECKED: set[str] = set()
_NOTED: set[str] = set()


# ---- env ids: Gymnasium's, `module:EnvName-v0`, and Python callables --------------------------------------------


def split_module(env_id: str) -> tuple[str | None, str]:
    """`mymodule:MyEnv-v0` -> ("mymodule", "MyEnv-v0"): Gymnasium's form for an env a module registers when it is
    imported (gymnasium.make imports the module first). Other ids -> (None, env_id)."""
    if ":" not in env_id:
        return None, env_id
    module, name = env_id.split(":", 1)
    return module, name


def is_callable_id(env_id: str) -> bool:
    return env_id.startswith(CALLABLE_NAMESPACE + "/")


def is_user_env(env_id: str) -> bool:
    """An env the user brought: a `module:EnvName-v0` id or a Python callable (not one of Gymnasium's built-ins or
    an env suite critix knows). Gymnasium's environment checker runs on these."""
    return split_module(env_id)[0] is not None or is_callable_id(env_id)


def import_env_module(env_id: str) -> None:
    """Import the module of a `module:EnvName-v0` id (it registers its envs on import); CritixError naming the
    module and the import error when it cannot be imported."""
    module, _ = split_module(env_id)
    if module is None:
        return
    if not module or not all(part.isidentifier() for part in module.split(".")):
        raise CritixError(f"environment id {env_id!r}: {module!r} is not a module name; write module:EnvName-v0, "
                          "e.g. mypackage.envs:MyEnv-v0")
    try:
        importlib.import_module(module)
    except Exception as err:  # noqa: BLE001 - any failure of the user's module is reported the same way
        raise CritixError(f"environment id {env_id!r}: cannot import module {module!r} ({type(err).__name__}: "
                          f"{err}); put the folder holding it on PYTHONPATH (or sys.path) and fix its "
                          "imports") from None


def _entry_module(spec: Any) -> str:
    entry = spec.entry_point
    return entry.split(":", 1)[0] if isinstance(entry, str) else str(getattr(entry, "__module__", ""))


def check_env_id(env_id: str) -> None:
    """Fail early, with suggestions, on an env id Gymnasium does not know (the module of a `module:EnvName-v0` id
    is imported first, as gymnasium.make does)."""
    import_env_module(env_id)
    module, name = split_module(env_id)
    if name in gym.registry:
        return
    if is_callable_id(name):
        raise CritixError(callable_missing_message(name))
    if module is not None:
        mine = [i for i, spec in gym.registry.items() if _entry_module(spec).split(".")[0] == module.split(".")[0]]
        close = difflib.get_close_matches(name, mine or list(gym.registry), n=3, cutoff=0.6)
        hint = f" Did you mean {', '.join(f'{module}:{c}' for c in close)}?" if close else ""
        registers = f"it registers {', '.join(sorted(mine))}" if mine else "it registers no environment"
        raise CritixError(f"unknown environment id {env_id!r}: module {module!r} was imported but {registers}.{hint} "
                          f"Call gymnasium.register(id={name!r}, entry_point=...) when the module is imported")
    close = difflib.get_close_matches(env_id, list(gym.registry), n=3, cutoff=0.6)
    hint = f" Did you mean {', '.join(close)}?" if close else " See `gymnasium.pprint_registry()` for the ids."
    raise CritixError(f"unknown environment id {env_id!r}.{hint} Your own env: module:EnvName-v0 (see "
                      "docs/environments.md)")


def callable_id(make_env: Callable[..., Any]) -> str:
    """The env id a run records for an env made by `make_env`: callable/<module>.<qualified name>."""
    target = make_env.func if isinstance(make_env, functools.partial) else make_env
    module = getattr(target, "__module__", None) or "unknown"
    name = getattr(target, "__qualname__", None) or type(target).__name__
    return f"{CALLABLE_NAMESPACE}/" + re.sub(r"[^\w.-]", "_", f"{module}.{name}")


def callable_missing_message(env_id: str) -> str:
    name = env_id[len(CALLABLE_NAMESPACE) + 1:]
    return (f"{env_id!r} is an environment made by the Python callable {name}, which critix cannot rebuild from "
            f"config.json: resume or evaluate this run from Python, passing the same callable again, e.g. "
            f"critix.train.train(algo, agent_cfg, run, resume=RUN_DIR, env={name.rsplit('.', 1)[-1]}). To use the "
            "command line, register the env in a module and train with --env module:EnvName-v0")


def register_callable(make_env: Callable[..., gym.Env]) -> str:
    """Make `make_env` (a callable returning a gymnasium.Env: a class or a function; it receives the run's env
    kwargs) an env id in this process, `callable_id(make_env)`; returns the id."""
    if not callable(make_env) or isinstance(make_env, str):
        raise CritixError(f"env must be a callable returning a gymnasium.Env (an Env class or a function), got "
                          f"{make_env!r}; for a registered env give its id in RunConfig.env")
    env_id = callable_id(make_env)
    if _CALLABLES.get(env_id) is not make_env:  # new, or the same name for another object (an edited function)
        gym.registry.pop(env_id, None)
        gym.register(id=env_id, entry_point=make_env)
        _CALLABLES[env_id] = make_env
        _CHECKED.difference_update({key for key in _CHECKED if key.startswith(env_id + " ")})
    return env_id


# ---- env kwargs ------------------------------------------------------------------------------------------------


def parse_env_kwargs(items: Iterable[str]) -> dict[str, Any]:
    """KEY=VALUE strings -> gymnasium.make keyword arguments; a VALUE is read as JSON where it parses (3, 0.5,
    true, null, [1, 2], {"a": 1}, "text"), else kept as a string. ValueError names a malformed item."""
    kwargs: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key.isidentifier():
            raise ValueError(f"env_kwargs items must be KEY=VALUE with KEY a Python identifier, got {item!r} "
                             "(e.g. --env-kwargs gravity=9.81 mode=hard)")
        if key in kwargs:
            raise ValueError(f"env_kwargs sets {key!r} twice")
        try:
            kwargs[key] = json.loads(raw)
        except ValueError:
            kwargs[key] = raw
    return kwargs


def env_kwargs_items(kwargs: Mapping[str, Any]) -> tuple[str, ...]:
    """A dict of env kwargs as the KEY=VALUE strings a RunConfig stores (values JSON); ValueError for a value that
    is not JSON data (config.json must rebuild the env)."""
    items = []
    for key, value in kwargs.items():
        try:
            text = json.dumps(value, allow_nan=False)
        except (TypeError, ValueError):
            raise ValueError(f"env_kwargs[{key!r}] must be JSON data (numbers, strings, booleans, None, lists, "
                             f"dicts) so config.json can rebuild the env, got {type(value).__name__}; build other "
                             "objects inside the env from plain arguments") from None
        items.append(f"{key}={text}")
    return tuple(items)


# ---- making envs -----------------------------------------------------------------------------------------------


def _note(message: str) -> None:
    """A one-line note on stderr, once per process."""
    if message not in _NOTED:
        _NOTED.add(message)
        print(f"critix: note: {message}", file=sys.stderr, flush=True)


def flatten_observations(env: gym.Env, env_id: str = "") -> gym.Env:
    """Dict and Tuple observations -> one flat Box (gymnasium.wrappers.FlattenObservation, with a note); other
    envs unchanged. Spaces that cannot be flattened are left for the agent's space check to refuse."""
    space = env.observation_space
    if not isinstance(space, (gym.spaces.Dict, gym.spaces.Tuple)):
        return env
    try:
        flat = gym.wrappers.FlattenObservation(env)
    except (NotImplementedError, TypeError, ValueError):
        return env
    _note(f"{env_id or 'the environment'} has {type(space).__name__} observations; they are flattened to a Box of "
          f"{flat.observation_space.shape[0]} values (gymnasium.wrappers.FlattenObservation)")
    return flat


def check_user_env(env_id: str, env_kwargs: Mapping[str, Any] | None = None) -> None:
    """Run Gymnasium's environment checker (gymnasium.utils.env_checker.check_env) once per process on a user env
    (its id already checked), showing its warnings; CritixError when the env fails it."""
    from gymnasium.utils.env_checker import check_env

    kwargs = dict(env_kwargs or {})
    key = f"{env_id} {json.dumps(kwargs, sort_keys=True, default=str)}"
    if key in _CHECKED:
        return
    _CHECKED.add(key)
    name = "Gymnasium's environment checker (gymnasium.utils.env_checker.check_env)"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            env = gym.make(env_id, disable_env_checker=True, **kwargs)
        except TypeError as err:
            made_with = f" with the env kwargs {kwargs}" if kwargs else ""
            raise CritixError(f"{env_id} could not be made{made_with} ({err}); fix --env-kwargs or the env") from None
        try:
            check_env(env.unwrapped, skip_render_check=True)  # training does not render
        except (AssertionError, TypeError, AttributeError) as err:
            raise CritixError(f"{env_id} fails {name}: {str(err).strip() or type(err).__name__}; fix the env "
                              "(https://gymnasium.farama.org/introduction/create_custom_env/)") from None
        finally:
            env.close()
    for message in dict.fromkeys(_plain(w.message) for w in caught):
        warnings.warn(f"{name} on {env_id}: {message}", UserWarning, stacklevel=2)


def _plain(message: Warning | str) -> str:
    """A Gymnasium logger warning without its colour codes and "WARN:" prefix."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(message)).strip()
    return text.removeprefix("WARN:").strip()


def make_env(env_id: str, env_kwargs: Mapping[str, Any] | None = None) -> gym.Env:
    """One env of `env_id` as the training loops see it (Dict and Tuple observations flattened); for space checks."""
    from critix.envs import pixels

    wrappers, make_kwargs = pixels.prepare(env_id)
    check_env_id(env_id)
    env = _call_make(env_id, env_kwargs, lambda: gym.make(env_id, **{**make_kwargs, **(env_kwargs or {})}))
    for wrapper in wrappers:
        env = wrapper(env)
    return flatten_observations(env, env_id)


def _call_make(env_id: str, env_kwargs: Mapping[str, Any] | None, make: Callable[[], Any]) -> Any:
    """`make()`, with Gymnasium's errors for a missing dependency or a keyword the env does not take as CritixError."""
    try:
        return make()
    except gym.error.DependencyNotInstalled as err:
        raise CritixError(f"environment {env_id!r} needs an extra dependency: {err}") from None
    except TypeError as err:
        if env_kwargs and "argument" in str(err):
            raise CritixError(f"{env_id} does not take the env kwargs {', '.join(env_kwargs)} ({err}); fix "
                              "--env-kwargs") from None
        raise


def make_vector_env(env_id: str, num_envs: int, seed: int, vectorization: str = "sync",
                    env_kwargs: Mapping[str, Any] | None = None) -> gym.vector.VectorEnv:
    """N copies of `env_id` in SAME_STEP autoreset mode; `seed` seeds the action space (the caller resets the
    envs with `env.reset(seed=...)`, which seeds sub-env i with seed + i).

    vectorization: "sync" (one process, lowest overhead for fast envs), "async" (one process per env) or "auto"
    (`choose_vectorization`: async only for N >= 2 envs whose measured step takes ASYNC_MIN_STEP_SECONDS or more).
    env_kwargs: keyword arguments for gymnasium.make. Dict and Tuple observations are flattened; a user env
    (`module:EnvName-v0`, a callable) first passes Gymnasium's environment checker, once per process.
    """
    from critix.envs import pixels

    wrappers, make_kwargs = pixels.prepare(env_id)  # MinAtar and Atari: registration and standard wrappers
    check_env_id(env_id)
    if vectorization not in ("auto", "sync", "async"):
        raise CritixError(f"vectorization must be 'auto', 'sync' or 'async', got {vectorization!r}")
    kwargs = {**make_kwargs, **(env_kwargs or {})}
    if is_user_env(env_id):
        check_user_env(env_id, env_kwargs)
        kwargs["disable_env_checker"] = True  # the full checker has run; the passive one would repeat its warnings
    if vectorization == "auto":
        vectorization = choose_vectorization(env_id, num_envs, seed, env_kwargs)
    envs = _call_make(env_id, env_kwargs, lambda: gym.make_vec(
        env_id,
        num_envs=num_envs,
        vectorization_mode=vectorization,
        vector_kwargs={"autoreset_mode": AutoresetMode.SAME_STEP},
        wrappers=[*wrappers, functools.partial(flatten_observations, env_id=env_id)],
        **kwargs,
    ))
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


def env_step_seconds(env_id: str, seed: int, budget_seconds: float = 0.1, max_steps: int = 100,
                     env_kwargs: Mapping[str, Any] | None = None) -> float:
    """Seconds one step of `env_id` takes with random actions: the fastest of up to `max_steps` timed steps (within
    about `budget_seconds`), i.e. the env's own cost without what other processes on the machine add; measured on a
    throwaway 1-env sync vector env. Returns 0 for envs computed by JAX (`critix.envs.jax_envs.GymnasiumAdapter`),
    which must stay in the training process: a forked worker process cannot use JAX."""
    import time

    from critix.envs.jax_envs import GymnasiumAdapter

    env = make_vector_env(env_id, 1, seed, "sync", env_kwargs)
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


def choose_vectorization(env_id: str, num_envs: int, seed: int, env_kwargs: Mapping[str, Any] | None = None) -> str:
    """"sync" or "async" for N = `num_envs` copies of `env_id`: async only when N >= 2, the machine has 2 or more
    cores and one step takes at least ASYNC_MIN_STEP_SECONDS (`env_step_seconds`). Either way the envs return the
    same transitions, so the choice changes speed, never results."""
    import os

    if num_envs < 2 or (os.cpu_count() or 1) < 2:
        return "sync"
    return "async" if env_step_seconds(env_id, seed, env_kwargs=env_kwargs) >= ASYNC_MIN_STEP_SECONDS else "sync"
