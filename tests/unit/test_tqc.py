"""TQC's pieces against hand-computed and independently computed values (Kuznetsov et al. 2020, Sec. 3).

The truncated mixture pools the critics' atoms before it drops the largest (not per critic); the critic loss and
target of one `tqc.update` equal a NumPy transcription of the paper's target atoms y_i (Eq. 12) and quantile Huber
loss; the actor's objective averages the critics instead of taking their minimum.
"""

from __future__ import annotations

import dataclasses
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from critix.agents import tqc
from critix.nets.policies import tanh_gaussian_sample


def test_truncated_mixture_pools_the_critics_before_dropping(jit_vmap_check):
    # Critic 0 is far above critic 1: pooled truncation (d=1, N=2) drops critic 0's two largest atoms,
    # whereas truncating each critic would have dropped 5 and 0.3.
    atoms = jnp.array([[[1.0, 5.0, 3.0]], [[0.1, 0.3, 0.2]]])  # [N=2, B=1, M=3]
    jit_vmap_check(partial(tqc.truncated_mixture, drop_per_net=1), [(atoms,)],
                   [jnp.array([[0.1, 0.2, 0.3, 1.0]])])
    np.testing.assert_allclose(tqc.truncated_mixture(atoms, 0), [[0.1, 0.2, 0.3, 1.0, 3.0, 5.0]])


def test_config_checks_the_atoms_to_drop():
    assert tqc.Config(num_critics=5, num_quantiles=25, top_quantiles_to_drop_per_net=2).num_target_atoms == 115
    with pytest.raises(ValueError, match="top_quantiles_to_drop_per_net"):
        tqc.Config(num_quantiles=3, top_quantiles_to_drop_per_net=3)
    with pytest.raises(ValueError, match="critic_hidden_sizes"):
        tqc.Config(critic_hidden_sizes=())


def reference_target_and_loss(cfg, state, batch):
    """Eq. 10-12 and the quantile Huber loss in NumPy, written as in the authors' code (mean over batch, critics,
    quantiles and target atoms)."""
    actor, critic = tqc.networks(cfg, state.action_dim)
    _, next_key, _ = jax.random.split(state.key, 3)
    mean, log_std = actor.apply(state.actor_params, batch.next_obs)
    next_action, next_log_prob = tanh_gaussian_sample(next_key, mean, log_std)
    next_z = np.asarray(critic.apply(state.target_critic_params, batch.next_obs, next_action))  # [N, B, M]
    n, b, m = next_z.shape
    pooled = np.sort(next_z.transpose(1, 0, 2).reshape(b, n * m), axis=-1)
    kept = pooled[:, : n * m - cfg.top_quantiles_to_drop_per_net * n]
    alpha = float(np.exp(state.log_alpha))
    not_done = 1.0 - np.asarray(batch.terminated)[:, None]
    y = np.asarray(batch.reward)[:, None] + not_done * cfg.gamma * (kept - alpha * np.asarray(next_log_prob)[:, None])
    z = np.asarray(critic.apply(state.critic_params, batch.obs, batch.action)).transpose(1, 0, 2)  # [B, N, M]
    delta = y[:, None, None, :] - z[:, :, :, None]  # [B, N, M, kN]
    huber = np.where(np.abs(delta) > 1, np.abs(delta) - 0.5, 0.5 * delta**2)
    tau = (np.arange(m) + 0.5) / m
    loss = np.mean(np.abs(tau[None, None, :, None] - (delta < 0)) * huber)
    return y, loss


def test_update_matches_the_papers_target_and_loss(obs_space, act_space, transition_batch):
    cfg = dataclasses.replace(tqc.Config(), hidden_sizes=(16, 16), critic_hidden_sizes=(16, 16), num_critics=3,
                              num_quantiles=5, top_quantiles_to_drop_per_net=2, init_alpha=0.3)
    state = tqc.init(cfg, jax.random.PRNGKey(0), obs_space, act_space)
    # Move the target critics away from the critics so that the two are really told apart.
    state = state.replace(target_critic_params=jax.tree.map(lambda x: 1.5 * x + 0.01, state.target_critic_params))
    y, loss = reference_target_and_loss(cfg, state, transition_batch)
    _, metrics = jax.jit(partial(tqc.update, cfg))(state, transition_batch)
    assert y.shape == (16, cfg.num_target_atoms)
    np.testing.assert_allclose(metrics["critic/target_mean"], y.mean(), rtol=1e-5, atol=1e-6)
    # critix sums over quantiles and critics where the authors' code averages: a constant factor N * M.
    np.testing.assert_allclose(metrics["critic/loss"], cfg.num_critics * cfg.num_quantiles * loss, rtol=1e-5)


def test_actor_maximises_the_mean_over_critics_and_atoms(obs_space, act_space, transition_batch):
    """With a zero temperature the actor loss is -E[mean_{n,m} Z], not the minimum over critics."""
    cfg = dataclasses.replace(tqc.Config(), hidden_sizes=(16, 16), critic_hidden_sizes=(16, 16), num_critics=3,
                              num_quantiles=5, autotune_alpha=False, init_alpha=1e-30)
    state = tqc.init(cfg, jax.random.PRNGKey(1), obs_space, act_space)
    key = jax.random.PRNGKey(2)
    _, metrics = tqc.actor_and_temperature_step(cfg, state, transition_batch.obs, state.critic_params, key)
    actor, critic = tqc.networks(cfg, state.action_dim)
    action, _ = tanh_gaussian_sample(key, *actor.apply(state.actor_params, transition_batch.obs))
    z = critic.apply(state.critic_params, transition_batch.obs, action)  # [N, B, M]
    np.testing.assert_allclose(metrics["actor/loss"], -jnp.mean(z), rtol=1e-5, atol=1e-6)
    assert not np.isclose(metrics["actor/loss"], -jnp.mean(jnp.min(z.mean(axis=-1), axis=0)), rtol=1e-3)
