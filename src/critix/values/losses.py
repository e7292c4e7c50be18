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


# ---- value losses of implicit offline RL: regress V(s) towards an implicit maximum of Q(s, a) over the data.
# Each takes diff = Q(s, a) - V(s) (Q held fixed) and returns the per-sample loss to minimise over V.


def expectile(diff: jax.Array, expectile: float) -> jax.Array:
    """|tau - 1(diff < 0)| * diff^2 with diff = Q - V (IQL, Kostrikov et al. 2022, #78 lineage, Eq. 5).

    tau = 0.5 is mean regression; tau -> 1 approaches the maximum of Q over the data's actions.
    """
    weight = jnp.where(diff < 0.0, 1.0 - expectile, expectile)
    return weight * jnp.square(diff)


def gumbel(diff: jax.Array, beta: float, max_clip: float | None = 7.0) -> jax.Array:
    """Gumbel regression exp(z) - z - 1, z = (Q - V) / beta (XQL, Garg et al. 2023, Eq. 9 and Sec. 5).

    The minimiser over V is beta * log E[exp(Q / beta)], a soft maximum. For stability, as in the XQL and Dual-RL
    reference code, z is clipped at `max_clip` and the loss is divided by exp(max(z over the batch, -1))
    (a stop-gradient scale: an adaptive learning rate). diff [B] -> loss [B].
    """
    z = diff / beta
    if max_clip is not None:
        z = jnp.minimum(z, max_clip)
    scale = jax.lax.stop_gradient(jnp.maximum(jnp.max(z), -1.0))
    return jnp.exp(z - scale) - (z + 1.0) * jnp.exp(-scale)


def chi_square_dual(diff: jax.Array, temperature: float) -> jax.Array:
    """f-DVL value loss for the Pearson chi-square divergence (Dual RL, Sikchi et al. 2024, #0, Sec. 6):
    lambda * f*_p(Q - V) + (1 - lambda) * V, with f*_p(y) = max(y + y^2 / 4, 0), written up to the constant
    (1 - lambda) * Q as lambda * max(diff + diff^2 / 4, 0) - (1 - lambda) * diff. lambda = `temperature`.

    Unlike the Gumbel loss it grows quadratically, not exponentially, in Q - V: no overflow, no clipping.
    """
    return temperature * jnp.maximum(diff + 0.25 * jnp.square(diff), 0.0) - (1.0 - temperature) * diff


def total_variation_dual(diff: jax.Array, temperature: float) -> jax.Array:
    """f-DVL value loss for total variation (#0, Sec. 6): lambda * max(diff, 0) - (1 - lambda) * diff."""
    return temperature * jnp.maximum(diff, 0.0) - (1.0 - temperature) * diff
