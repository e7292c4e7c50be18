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


def n_step_return(
    r_t: jax.Array, terminated_t: jax.Array, truncated_t: jax.Array, gamma: float
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Collapse n consecutive steps [..., n] of one env into one n-step transition (Sutton & Barto 2018, Eq. 7.1).

    The sum stops at the first step m whose episode ended (terminated or truncated). Returns
    (sum_{j<=m} gamma^j r_j [...], discount gamma^(m+1) * (1 - terminated_m) [...], m [...] int32): bootstrap
    from next_obs of step m, which after a truncation is the real final observation.
    """
    done = jnp.logical_or(terminated_t.astype(bool), truncated_t.astype(bool))
    n = r_t.shape[-1]
    # alive_j = 1 while no earlier step ended the episode (step 0 always counts).
    ended_before = jnp.cumsum(done.astype(jnp.int32), axis=-1) - done.astype(jnp.int32)
    alive = (ended_before == 0).astype(jnp.float32)
    powers = gamma ** jnp.arange(n, dtype=jnp.float32)
    last = jnp.sum(alive, axis=-1).astype(jnp.int32) - 1
    terminated_last = jnp.take_along_axis(terminated_t.astype(jnp.float32), last[..., None], axis=-1)[..., 0]
    discount_n = gamma ** (last.astype(jnp.float32) + 1.0) * (1.0 - terminated_last)
    return jnp.sum(alive * powers * r_t, axis=-1), discount_n, last
