"""Numerical guards: find NaN/Inf in environment data, losses and parameters inside the compiled chunk.

Two policies (`RunConfig.on_nan`):
- "stop": the loop counts non-finite transitions, updates with an infinite loss, and non-finite parameters per
  chunk (one check of the state per chunk of K updates) and, if any, stops with a
  CritixError before the next checkpoint is written, so the last checkpoint on disk is the last good state;
- "skip": non-finite transitions never enter the replay buffer, and an update whose losses or new parameters are
  non-finite is discarded (the state before it is kept); both are counted in the metrics
  (`guard/skipped_transitions`, `guard/skipped_updates`). This adds one finiteness check of the state per update,
  so it is compiled in only in "skip" mode.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import jax
import jax.numpy as jnp

from critix.data import replay
from critix.types import Rollout, Transition

if TYPE_CHECKING:
    from critix.agents.contract import DataPath

Metrics = dict[str, jax.Array]
GUARD_METRICS = ("guard/skipped_transitions", "guard/skipped_updates")


def all_finite(tree: Any) -> jax.Array:
    """True iff every floating-point leaf of `tree` is finite (integer leaves, e.g. keys and counters, pass).

    The leaves of each dtype are checked as one concatenated vector: one reduction instead of one per leaf, which
    XLA:CPU compiles as a few kernels rather than about two per leaf (an agent state has dozens of leaves)."""
    by_dtype: dict[Any, list[jax.Array]] = {}
    for x in jax.tree.leaves(tree):
        x = jnp.asarray(x)
        if jnp.issubdtype(x.dtype, jnp.inexact):
            by_dtype.setdefault(x.dtype, []).append(jnp.ravel(x))
    checks = [jnp.all(jnp.isfinite(jnp.concatenate(xs))) for xs in by_dtype.values()]
    return jnp.all(jnp.stack(checks)) if checks else jnp.asarray(True)


def finite_items(items: Transition) -> jax.Array:
    """[M] True where a transition's observation, action, reward and next observation are all finite."""
    def per_item(x: jax.Array) -> jax.Array:
        finite = jnp.isfinite(x) if jnp.issubdtype(x.dtype, jnp.inexact) else jnp.ones(x.shape, bool)
        return finite.reshape(x.shape[0], -1).all(axis=1)

    return per_item(items.obs) & per_item(items.action) & per_item(items.reward) & per_item(items.next_obs)


def metrics_ok(metrics: Metrics) -> jax.Array:
    """No metric is +-Inf. NaN is not checked here: agents report NaN for "no value at this step" (TD3's actor
    loss between delayed actor updates), and a genuinely NaN loss makes NaN gradients, caught in the parameters."""
    bad = [jnp.any(jnp.isinf(m)) for m in metrics.values()]
    return ~jnp.any(jnp.stack(bad)) if bad else jnp.asarray(True)


def nonfinite_steps(metrics: Metrics) -> jax.Array:
    """Number of the K update steps (metrics [K]) in which any metric is +-Inf."""
    bad = [jnp.isinf(m) for m in metrics.values()]
    return jnp.any(jnp.stack(bad), axis=0).sum() if bad else jnp.zeros((), jnp.int32)


def add_items(buffer: Any, items: Transition, skip: bool) -> tuple[Any, jax.Array]:
    """Write `items` [M] into a replay buffer; with `skip`, non-finite ones are left out. Returns the buffer and the
    number of non-finite items."""
    valid = finite_items(items)
    buffer = replay.add_masked(buffer, items, valid) if skip else replay.add(buffer, items)
    return buffer, (~valid).sum()


def bad_updates(state: Any, metrics: Metrics) -> jax.Array:
    """For "stop": the number of the K updates (metrics [K]) with an infinite metric, at least 1 if the state after
    them is non-finite."""
    bad = nonfinite_steps(metrics)
    return jnp.where(all_finite(state), bad, jnp.maximum(bad, 1))


def skip_nonfinite_updates(
    update: Callable[[Any, Transition], tuple[Any, Metrics]], state: Any, batches: Transition
) -> tuple[Any, Metrics, jax.Array]:
    """K updates in one `lax.scan`, each discarded if its metrics or new state are non-finite.

    Returns (state, metrics [K], skipped [K] bool).
    """

    def step(state: Any, batch: Transition) -> tuple[Any, tuple[Metrics, jax.Array]]:
        new_state, metrics = update(state, batch)
        ok = metrics_ok(metrics) & all_finite(new_state)
        state = jax.tree.map(lambda new, old: jnp.where(ok, new, old), new_state, state)
        return state, (metrics, ~ok)

    state, (metrics, skipped) = jax.lax.scan(step, state, batches)
    return state, metrics, skipped


def update_from_buffer(path: DataPath, update: Callable[[Any, Transition], tuple[Any, Metrics]], state: Any,
                       buffer: Any, key: jax.Array, num_updates: int, num_envs: int,
                       prepare: Callable[[Transition], Transition], skip: bool) -> tuple[Any, Metrics, jax.Array]:
    """`num_updates` gradient steps on replay data through the agent's data path (`critix.agents.contract`),
    guarded: with `skip` each bad update is discarded (`update` is the agent's single step), else bad ones are
    counted. Returns (state, metrics [K], bad updates)."""
    if skip:
        batches = prepare(path.sample(buffer, key, num_updates, num_envs))
        state, metrics, skipped = skip_nonfinite_updates(update, state, batches)
        return state, metrics, skipped.sum()
    state, metrics = path.update(state, buffer, key, num_updates, num_envs, prepare)
    return state, metrics, bad_updates(state, metrics)


def update_on_rollout(update: Callable[[Any, Rollout], tuple[Any, Metrics]], state: Any, rollout: Transition,
                      prepare: Callable[[Transition], Transition], skip: bool
                      ) -> tuple[Any, Metrics, jax.Array, jax.Array]:
    """An on-policy update on a rollout [T, N, ...], guarded: with `skip` the state before a rollout with non-finite
    data or a non-finite update is kept. Returns (state, metrics, bad transitions, bad update (0 or 1))."""
    bad_items = (~finite_items(jax.tree.map(lambda x: x.reshape(-1, *x.shape[2:]), rollout))).sum()
    new_state, metrics = update(state, Rollout(prepare(rollout)))
    bad_update = ~(metrics_ok(metrics) & all_finite(new_state))
    if skip:
        keep = (bad_items > 0) | bad_update
        new_state = jax.tree.map(lambda new, old: jnp.where(keep, old, new), new_state, state)
    return new_state, metrics, bad_items, bad_update.astype(jnp.int32)
