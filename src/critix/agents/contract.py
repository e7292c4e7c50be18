"""What an agent module provides, and the data path between its replay buffer and its updates.

An agent is a module, not a class. `AgentModule` is the typed contract every module in `critix.agents` meets
(the conformance harness checks it): its kind, the spaces it takes, and its pure functions. Everything optional
that changes how data reaches the agent is a hook of the agent, never an `if` in a training loop:

- `RUN_DEFAULTS`: the run settings it starts from (learning starts, update-to-data ratio, buffer size, rollout
  length) with their sources; they are fields of the run's config (`critix.train.RunConfig`), and `init` gets
  the run's `RunPlan`.
- `KIND`: "off-policy" (replay buffer), "on-policy" (rollouts: PPO, A2C) or "offline" (datasets only). Off-policy
  and offline agents train on datasets too (`--dataset`), and offline agents with `utd_ratio` fine-tune online.
- `check_spaces(observation_space, action_space)`: raise CritixError naming a space it cannot take and the fix.
- `data_path(cfg) -> DataPath` (optional): how the off-policy loops fill and sample the replay buffer. Without it
  the agent gets uniform batches [K, B, ...] through `update_many`. DQN's n-step returns sample sequences and its
  prioritized replay samples by priority with importance weights: both are `DataPath`s DQN returns.
- `policy(cfg, state) -> PolicyFunctions`: how the agent acts, as three pure pieces (what it reads from its state, the
  random numbers of one act, and the action as a function of both, written over an array namespace). `act` is
  built from them (`act_with`), and the host loops run the same pieces with NumPy for small networks
  (`critix.train.host.Acting`), so both evaluators compute one function.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from functools import partial
from types import ModuleType
from typing import Any, Literal, Protocol

import gymnasium as gym
import jax
import jax.numpy as jnp

from critix.data import replay
from critix.data.replay import ReplayBuffer
from critix.types import CritixError, Transition

Kind = Literal["off-policy", "on-policy", "offline"]
Defaults = dict[str, tuple[Any, str]]
"""An agent's `RUN_DEFAULTS`: run setting -> (value, what it means and its source)."""


@dataclasses.dataclass(frozen=True)
class RunPlan:
    """The facts of a run an agent may need at `init` (loop settings live in the run's config, not the agent's):
    DQN's epsilon schedule counts env steps from `learning_starts` at `utd_ratio`, its prioritized replay sizes
    the sum tree to `buffer_size`, PPO anneals its learning rate over the run's updates. Agents keep what they use
    as static fields of their State; the training loops build the plan from the run config."""

    steps: int = 0
    """Env steps per seed of the whole run (0: not known, e.g. an agent used outside a run)."""
    num_envs: int = 1
    learning_starts: int = 0
    utd_ratio: float = 1.0
    buffer_size: int = 1_000_000
    rollout_length: int = 1


def run_defaults(defaults: Defaults) -> dict[str, Any]:
    """The values of an agent's RUN_DEFAULTS."""
    return {name: value for name, (value, _) in defaults.items()}


def plan_or_default(plan: RunPlan | None, defaults: Defaults) -> RunPlan:
    """`plan`, or for an agent used outside a run the plan its own RUN_DEFAULTS describe."""
    return plan if plan is not None else RunPlan(**run_defaults(defaults))
Metrics = dict[str, jax.Array]
Prepare = Callable[[Transition], Transition]
"""Maps a raw batch to what the agent sees (observation normalisation); applied after sampling."""


class AgentModule(Protocol):
    """The functions and constants of an agent module (`critix.agents.sac` ...). S seeds are a vmap axis outside."""

    NAME: str
    KIND: Kind
    Config: type

    def check_spaces(self, observation_space: gym.Space, action_space: gym.Space) -> None: ...

    def init(self, cfg: Any, key: jax.Array, observation_space: gym.Space, action_space: gym.Space,
             plan: RunPlan | None = None) -> Any: ...

    def act(self, cfg: Any, state: Any, obs: jax.Array, key: jax.Array, deterministic: bool) -> jax.Array:
        """obs [B, ...] -> actions [B, A] in [-1, 1] (Box) or [B] int32 indices (Discrete)."""
        ...

    def policy(self, cfg: Any, state: Any) -> PolicyFunctions:
        """`act` in pieces (`PolicyFunctions`); reads only static fields of `state`, which may carry a leading seed
        axis."""
        ...

    def update(self, cfg: Any, state: Any, batch: Transition) -> tuple[Any, Metrics]:
        """One gradient step (off-policy, offline: a batch [B, ...]; on-policy: a rollout [T, N, ...])."""
        ...


@dataclasses.dataclass(frozen=True)
class PolicyFunctions:
    """How an agent acts, in three pure pieces that a compiled call (`act_with`, `jax.numpy`) and the host loops'
    NumPy evaluator (`critix.train.host.Acting`) both run, so the two compute one function:

    - `params(state) -> pytree` (JAX): every array acting reads from the state (network parameters, DQN's current
      epsilon). The host loops compute it after each chunk's updates and copy it to the host.
    - `noise(key, batch) -> pytree` (JAX): the random numbers of one act on `batch` observations (uniforms, normal
      or Gumbel draws). The host loops draw a chunk's worth at once.
    - `act(xp, params, obs, noise, deterministic) -> actions`: obs [..., B, O] (prepared: normalised if the run
      asks) -> actions [..., B, A] float32 in [-1, 1] (Box; PPO's raw Gaussian samples may leave it) or [..., B]
      int32 indices (Discrete), over the array namespace `xp` (`numpy` or `jax.numpy`); `noise` is None when
      `deterministic`. Leading axes of `params` (S seeds) broadcast against those of `obs` and `noise`, the
      convention of `critix.nets.mlp`'s `forward` functions.
    - `host`: whether `act` can run in NumPy (False for pixel encoders, which have no NumPy transcription).
    """

    params: Callable[[Any], Any]
    noise: Callable[[jax.Array, int], Any]
    act: Callable[[Any, Any, Any, Any, bool], Any]
    host: bool = True


ACTING_STREAM = 19
"""`fold_in` constant that separates the acting keys from the agents' and the updates' keys of the same seed."""


def acting_keys(seed: int, num_seeds: int) -> jax.Array:
    """The S seeds' acting keys [S, 2]: a function of the run's base seed only, so a resumed run has them without a
    checkpoint. Host and compiled runs share them (`step_key`)."""
    return jax.random.split(jax.random.fold_in(jax.random.PRNGKey(seed), ACTING_STREAM), num_seeds)


def step_key(acting_key: jax.Array, vector_step: jax.Array | int) -> jax.Array:
    """The key of a seed's exploring act at vector step t (0, 1, ... over the run): `fold_in(acting key, t)`.
    `policy.noise(step_key(k, t), N)` are that step's random numbers in every mode (the host loops draw a block of
    steps in one call, a compiled member one step at a time), so chunk sizes, resumes and the mode do not move
    them."""
    return jax.random.fold_in(acting_key, vector_step)


def act_with(policy: PolicyFunctions, state: Any, obs: jax.Array, key: jax.Array, deterministic: bool) -> jax.Array:
    """An agent's `act(cfg, state, obs, key, deterministic)` from its `PolicyFunctions`, in JAX: obs [B, ...] ->
    actions."""
    noise = None if deterministic else policy.noise(key, obs.shape[0])
    return policy.act(jnp, policy.params(state), obs, noise, deterministic)


@dataclasses.dataclass(frozen=True)
class DataPath:
    """How an off-policy agent's updates get their data from a replay buffer (inside the compiled chunk).

    `sample(buffer, key, K, num_envs)` draws the batches of K plain updates; `update(state, buffer, key, K,
    num_envs, prepare)` runs K gradient steps on the buffer (metrics [K]); `after_add(state, buffer, M)` runs
    after M items were written (a prioritized sampler gives them priorities). `batch_shape` is the leading shape
    of one update's batch; `drops_items` says whether the buffer may skip non-finite items (--on-nan skip)
    without breaking what the sampler relies on.
    """

    name: str
    batch_shape: tuple[int, ...]
    update: Callable[[Any, ReplayBuffer, jax.Array, int, int, Prepare], tuple[Any, Metrics]]
    sample: Callable[[ReplayBuffer, jax.Array, int, int], Transition] | None = None
    """Plain batches [K, ...] for `update`'s pieces run one by one (--on-nan skip); None if the path has none."""
    after_add: Callable[[Any, ReplayBuffer, int], Any] = lambda state, buffer, num_items: state
    drops_items: bool = True
    step: Callable[[Any, Transition], tuple[Any, Metrics]] | None = None
    """One plain update on one batch, if `update` is exactly K of them in a `lax.scan` over `sample`'s batches and
    `after_add` does nothing: the host loop then compiles one program for every chunk, with the chunk's item and
    update counts as arguments (the last, shorter chunk and the chunks before learning starts reuse it)."""


UpdateMany = Callable[[Any, Transition], tuple[Any, Metrics]]
"""An agent's `update_many` with its config bound: (state, batches [K, ...]) -> (state, metrics [K])."""
Step = Callable[[Any, Transition], tuple[Any, Metrics]]
"""An agent's single `update` with its config bound: (state, batch [B, ...]) -> (state, metrics)."""


def uniform(update_many: UpdateMany, batch_size: int, step: Step | None = None) -> DataPath:
    """Uniform minibatches [K, B, ...] through the agent's `update_many` (one `lax.scan`); `step`: the agent's
    single update, if `update_many` is a plain `lax.scan` of it (`DataPath.step`)."""

    def sample(buffer: ReplayBuffer, key: jax.Array, num_updates: int, num_envs: int) -> Transition:
        return replay.sample_many(buffer, key, num_updates, batch_size)

    def update(state: Any, buffer: ReplayBuffer, key: jax.Array, num_updates: int, num_envs: int,
               prepare: Prepare) -> tuple[Any, Metrics]:
        return update_many(state, prepare(sample(buffer, key, num_updates, num_envs)))

    return DataPath("uniform replay", (batch_size,), update, sample, step=step)


def sequences(update_many: UpdateMany, batch_size: int, length: int, step: Step | None = None) -> DataPath:
    """Batches of `length` consecutive steps of one env [K, B, length, ...] (n-step returns), through `update_many`.
    Consecutive steps must stay consecutive in the buffer, so no item may be dropped."""

    def sample(buffer: ReplayBuffer, key: jax.Array, num_updates: int, num_envs: int) -> Transition:
        return replay.sample_sequences(buffer, key, num_updates, batch_size, length, num_envs)

    def update(state: Any, buffer: ReplayBuffer, key: jax.Array, num_updates: int, num_envs: int,
               prepare: Prepare) -> tuple[Any, Metrics]:
        return update_many(state, prepare(sample(buffer, key, num_updates, num_envs)))

    return DataPath(f"{length}-step sequences", (batch_size, length), update, sample, drops_items=False, step=step)


def check_plan(module: ModuleType, cfg: Any, plan: RunPlan) -> None:
    """Raise CritixError if the run cannot feed the agent (PPO: a rollout must fill its minibatches): the agent's
    own `check_plan` hook, if it has one."""
    batch_size = getattr(cfg, "batch_size", None)
    if kind(module) != "on-policy" and batch_size is not None and plan.buffer_size < batch_size:
        raise CritixError(f"buffer_size ({plan.buffer_size}) must be >= batch_size ({batch_size}); raise "
                          "--buffer-size or lower --batch-size")
    hook = getattr(module, "check_plan", None)
    if hook is not None:
        hook(cfg, plan)


def kind(module: ModuleType) -> Kind:
    return module.KIND


def data_path(module: ModuleType, cfg: Any) -> DataPath:
    """The agent's own data path (`module.data_path(cfg)`), else uniform replay."""
    own = getattr(module, "data_path", None)
    return own(cfg) if own is not None else uniform(partial(module.update_many, cfg), cfg.batch_size)
