"""Policy and on-policy value losses as small pure functions (elementwise; the caller takes the mean)."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def ppo_clip_loss(ratio: jax.Array, advantage: jax.Array, clip_ratio: float) -> jax.Array:
    """Negated clipped surrogate of PPO (Schulman et al. 2017, Eq. 7):
    -min(r A, clip(r, 1 - eps, 1 + eps) A). clip_ratio = 0 gives the plain policy-gradient surrogate -r A, whose
    gradient at r = 1 is the A2C/REINFORCE gradient -A grad log pi (Mnih et al. 2016, #85, Alg. S3)."""
    if clip_ratio <= 0.0:
        return -ratio * advantage
    clipped = jnp.clip(ratio, 1.0 - clip_ratio, 1.0 + clip_ratio)
    return -jnp.minimum(ratio * advantage, clipped * advantage)


def value_regression_loss(
    value: jax.Array, old_value: jax.Array, target: jax.Array, clip_ratio: float
) -> jax.Array:
    """(V - G)^2, or with clip_ratio > 0 the pessimistic clipped form of OpenAI baselines' PPO2:
    max((V - G)^2, (V_old + clip(V - V_old, -c, c) - G)^2)."""
    loss = jnp.square(value - target)
    if clip_ratio <= 0.0:
        return loss
    clipped = old_value + jnp.clip(value - old_value, -clip_ratio, clip_ratio)
    return jnp.maximum(loss, jnp.square(clipped - target))
