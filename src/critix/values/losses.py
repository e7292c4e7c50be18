"""Elementwise regression losses for value learning (unbatched-friendly: they broadcast)."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def squared_error(prediction: jax.Array, target: jax.Array) -> jax.Array:
    """0.5 * (prediction - target)^2, the soft Q residual of SAC (Haarnoja et al. 2018, Eq. 5)."""
    return 0.5 * jnp.square(prediction - target)


def huber(prediction: jax.Array, target: jax.Array, delta: float = 1.0) -> jax.Array:
    """Huber loss: quadratic within `delta` of the target, linear outside (Mnih et al. 2015)."""
    error = jnp.abs(prediction - target)
    quadratic = jnp.minimum(error, delta)
    return 0.5 * jnp.square(quadratic) + delta * (error - quadratic)
