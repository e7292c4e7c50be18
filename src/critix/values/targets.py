"""Bootstrap targets. The discount of a step is computed here and nowhere else."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def discount(gamma: float, terminated_t: jax.Array) -> jax.Array:
    """discount_t = gamma * (1 - terminated_t): bootstrapping stops only on termination, never on truncation."""
    return gamma * (1.0 - terminated_t.astype(jnp.float32))


def td_target(r_t: jax.Array, discount_t: jax.Array, v_t: jax.Array) -> jax.Array:
    """One-step TD target r_t + discount_t * v_t, with no gradient into the bootstrap value."""
    return r_t + discount_t * jax.lax.stop_gradient(v_t)
