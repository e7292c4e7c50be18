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
from typing import Any

import jax
import jax.numpy as jnp

from critix.types import Transition

Metrics = dict[str, jax.Array]
GUARD_METRICS = ("guard/skipped_transitions", "guard/skipped_updates")


def all_finite(tree: Any) -> jax.Array:
    """True iff every floating-point leaf of `tree` is finite (integer leaves, e.g. keys and counters, pass)."""
    leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree) if jnp.issubdtype(jnp.asarray(x).dtype, jnp.inexact)]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.asarray(True)


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
