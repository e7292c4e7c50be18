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


def gae_advantages(
    r_t: jax.Array,
    discount_t: jax.Array,
    v_tm1: jax.Array,
    v_t: jax.Array,
    end_t: jax.Array,
    gae_lambda: float,
) -> jax.Array:
    """Generalised advantage estimates over a rollout, time on axis 0: [T, ...] -> [T, ...].

    GAE (Schulman et al. 2016, #240, Eq. 16): A_t = sum_l (gamma lambda)^l delta_{t+l}, computed backwards as
    A_t = delta_t + gamma lambda (1 - end_t) A_{t+1} with delta_t = r_t + discount_t v_t - v_tm1 (Eq. 10).

    Each step carries its own bootstrap value: v_tm1 = V(obs_t), v_t = V(next_obs_t), where next_obs_t is the real
    final observation when the episode ended at t. So `terminated` and `truncated` stay apart:
    - discount_t = gamma * (1 - terminated_t) (see `discount`): only termination drops the bootstrap;
    - end_t = terminated_t | truncated_t: any episode end stops the trace, since step t+1 belongs to a new episode.
    A truncated step thus bootstraps from the value of its final observation. The last step of the rollout
    bootstraps from V(next_obs_{T-1}). With gae_lambda = 1 this is the A3C n-step return minus v_tm1 (#85,
    Alg. S3: returns up to the rollout end, bootstrapped there); with gae_lambda = 0 the one-step TD error.
    """
    delta_t = r_t + discount_t * v_t - v_tm1
    # gamma lambda (1 - end_t): discount_t equals gamma wherever end_t is 0, so no separate gamma is needed.
    continue_t = gae_lambda * discount_t * (1.0 - end_t.astype(jnp.float32))

    def backward(advantage_tp1: jax.Array, inputs: tuple[jax.Array, jax.Array]) -> tuple[jax.Array, jax.Array]:
        delta, cont = inputs
        advantage = delta + cont * advantage_tp1
        return advantage, advantage

    _, advantages = jax.lax.scan(backward, jnp.zeros_like(delta_t[0]), (delta_t, continue_t), reverse=True)
    return advantages


def lambda_returns(
    r_t: jax.Array,
    discount_t: jax.Array,
    v_tm1: jax.Array,
    v_t: jax.Array,
    end_t: jax.Array,
    gae_lambda: float,
) -> jax.Array:
    """TD(lambda) returns G_t^lambda = A_t^GAE + V(obs_t) (#240, Sec. 3 and 5): the value-function target.

    gae_lambda = 1 gives the n-step returns of A3C (#85) up to the rollout end; gae_lambda = 0 one-step targets.
    """
    return gae_advantages(r_t, discount_t, v_tm1, v_t, end_t, gae_lambda) + v_tm1
