"""PPO/A2C building blocks: the clipped surrogate, value clipping, policy distributions, config checks."""

from __future__ import annotations

import dataclasses

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from critix import policy_losses
from critix.agents.contract import RunPlan
from critix.agents import ppo
from critix.nets.policies import categorical_entropy, categorical_log_prob, gaussian_entropy, gaussian_log_prob
from critix.types import CritixError, Rollout, Transition


def test_ppo_clip_loss_hand_values(jit_vmap_check):
    ratio = jnp.array([0.5, 1.0, 1.5, 0.5, 1.5])
    adv = jnp.array([1.0, 2.0, 1.0, -1.0, -1.0])
    # A > 0: gains capped at 1 + eps (1.5 -> 1.2) but losses not (0.5 stays); A < 0 the mirror image.
    want = -jnp.array([0.5, 2.0, 1.2, -0.8, -1.5])
    jit_vmap_check(lambda r, a: policy_losses.ppo_clip_loss(r, a, 0.2), [(ratio, adv), (ratio, -adv)],
                   [want, jnp.array([0.8, 2.0, 1.5, -0.5, -1.2])])


def test_unclipped_surrogate_has_the_policy_gradient_at_ratio_one():
    """clip_ratio = 0 (A2C): d/dlogp of -exp(logp - logp_old) A at logp = logp_old is -A."""
    adv = jnp.array([2.0, -3.0])
    grad = jax.grad(lambda lp: policy_losses.ppo_clip_loss(jnp.exp(lp - jnp.zeros(2)), adv, 0.0).sum())(jnp.zeros(2))
    np.testing.assert_allclose(grad, -adv)
    ratio = jnp.array([1.5, 0.5])
    clipped_grad = jax.grad(lambda lp: policy_losses.ppo_clip_loss(jnp.exp(lp), adv, 0.2).sum())(jnp.log(ratio))
    np.testing.assert_allclose(clipped_grad, [0.0, 0.0])  # outside the trust region on the gaining side: no push


def test_value_clipping_is_pessimistic():
    v_old, target = jnp.array([0.0, 0.0]), jnp.array([1.0, 1.0])
    v = jnp.array([0.5, 2.0])
    np.testing.assert_allclose(policy_losses.value_regression_loss(v, v_old, target, 0.0), [0.25, 1.0])
    # clip 0.2: clipped predictions 0.2 and 0.2 -> losses 0.64, 0.64; max with unclipped.
    np.testing.assert_allclose(policy_losses.value_regression_loss(v, v_old, target, 0.2), [0.64, 1.0], rtol=1e-6)


def test_categorical_and_gaussian_densities_match_numpy():
    logits = jnp.array([[1.0, 2.0, 0.5], [0.0, 0.0, 0.0]])
    p = np.exp(np.asarray(logits)) / np.exp(np.asarray(logits)).sum(-1, keepdims=True)
    np.testing.assert_allclose(categorical_log_prob(logits, jnp.array([1, 2])), np.log([p[0, 1], p[1, 2]]), rtol=1e-6)
    np.testing.assert_allclose(categorical_entropy(logits), -(p * np.log(p)).sum(-1), rtol=1e-6)
    mean, log_std, a = jnp.array([[0.0, 1.0]]), jnp.array([0.0, np.log(2.0)]), jnp.array([[1.0, 0.0]])
    want = (-0.5 * 1.0 - 0.5 * np.log(2 * np.pi)) + (-0.5 * 0.25 - np.log(2.0) - 0.5 * np.log(2 * np.pi))
    np.testing.assert_allclose(gaussian_log_prob(mean, log_std, a), [want], rtol=1e-6)
    np.testing.assert_allclose(gaussian_entropy(log_std, (3,)), np.full(3, np.log(2 * np.pi * np.e) + np.log(2.0)),
                               rtol=1e-6)


def test_a2c_is_a_ppo_config_with_one_full_batch_step():
    cfg = ppo.Config.a2c()
    assert (cfg.num_epochs, cfg.minibatch_size, cfg.clip_ratio, cfg.gae_lambda) == (1, 0, 0.0, 1.0)
    assert ppo.gradient_steps_per_update(cfg, 40) == 1
    assert ppo.gradient_steps_per_update(ppo.Config(), 2048 * 4) == 10 * 128


@pytest.mark.parametrize("field,value", [("gae_lambda", 1.5), ("clip_ratio", -0.1), ("num_epochs", 0),
                                         ("minibatch_size", -1), ("value_coef", 0.0),
                                         ("activation", "sigmoidish"), ("learning_rate", 0.0)])
def test_invalid_ppo_config_names_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        dataclasses.replace(ppo.Config(), **{field: value})


def test_minibatch_larger_than_the_rollout_is_a_clear_error():
    with pytest.raises(ValueError, match="minibatch_size"):
        ppo.gradient_steps_per_update(ppo.Config(minibatch_size=64), 32)
    with pytest.raises(CritixError, match="minibatch_size"):
        ppo.check_plan(ppo.Config(minibatch_size=64), RunPlan(rollout_length=16, num_envs=2))
    with pytest.raises(CritixError, match="anneal_steps"):  # outside a run nothing says how long to anneal
        ppo.init(ppo.Config(anneal_learning_rate=True), jax.random.PRNGKey(0), gym.spaces.Box(-1, 1, (3,)),
                 gym.spaces.Discrete(2))


def test_annealing_spans_the_planned_run():
    """anneal_steps 0: the learning rate decays over every gradient step of the run: 10,000 env steps over
    2 envs x 50-step rollouts = 100 rollouts of 4 epochs x (100 / 25) minibatches = 1,600 gradient steps."""
    cfg = ppo.Config(anneal_learning_rate=True, minibatch_size=25, num_epochs=4)
    plan = RunPlan(steps=10_000, num_envs=2, rollout_length=50)
    assert ppo.anneal_steps(cfg, plan) == 1_600
    assert ppo.anneal_steps(dataclasses.replace(cfg, anneal_steps=123), plan) == 123
    assert ppo.anneal_steps(dataclasses.replace(cfg, anneal_learning_rate=False), plan) == 0
    state = ppo.init(cfg, jax.random.PRNGKey(0), gym.spaces.Box(-1, 1, (3,)), gym.spaces.Discrete(2), plan)
    assert state.anneal_steps == 1_600


def test_unsupported_action_space_is_a_clear_error():
    obs = gym.spaces.Box(-1, 1, (3,))
    with pytest.raises(CritixError, match="Discrete and Box"):
        ppo.check_spaces(obs, gym.spaces.MultiBinary(3))


def test_discrete_ppo_acts_and_learns_to_prefer_the_rewarded_action():
    """A one-step bandit: action 1 pays 1, action 0 pays 0; a few PPO updates raise pi(1) well above 1/2."""
    cfg = ppo.Config(hidden_sizes=(16,), minibatch_size=16, num_epochs=4, learning_rate=1e-2)
    obs_space, act_space = gym.spaces.Box(-1, 1, (3,)), gym.spaces.Discrete(2)
    state = ppo.init(cfg, jax.random.PRNGKey(0), obs_space, act_space)
    obs = jnp.ones((32, 3))
    update = jax.jit(lambda s, r: ppo.update(cfg, s, r))
    act = jax.jit(lambda s, k: ppo.act(cfg, s, obs, k, False))
    for i in range(10):
        action = act(state, jax.random.PRNGKey(i))
        assert action.dtype == jnp.int32 and action.shape == (32,)
        done = jnp.ones(32, bool)
        rollout = Rollout(Transition(obs, action, action.astype(jnp.float32), obs, done, jnp.zeros(32, bool)))
        state, metrics = update(state, rollout)
    logits = ppo.networks(cfg, True, 2)[0].apply(state.actor_params, obs[:1])
    assert float(jax.nn.softmax(logits)[0, 1]) > 0.9
    assert int(ppo.act(cfg, state, obs[:1], jax.random.PRNGKey(0), True)[0]) == 1


@pytest.mark.parametrize("n", [1, 2, 7, 64, 1000, 8192])
def test_permutation_is_a_permutation_and_deterministic(n):
    from critix.agents.common import permutation

    perms = jax.jit(jax.vmap(lambda k: permutation(k, n)))(jax.random.split(jax.random.PRNGKey(n), 4))
    assert perms.dtype == jnp.int32 and perms.shape == (4, n)
    assert (np.sort(np.asarray(perms), axis=1) == np.arange(n)).all()
    again = jax.vmap(lambda k: permutation(k, n))(jax.random.split(jax.random.PRNGKey(n), 4))
    np.testing.assert_array_equal(perms, again)


def test_permutation_is_uniform():
    """Every one of the 24 orders of 4 elements is about equally likely (200,000 draws: chi-square, 23 degrees of
    freedom, far below its 0.1% tail of 49.7), and every element lands in every position as often."""
    from critix.agents.common import permutation

    perms = np.asarray(jax.jit(jax.vmap(lambda k: permutation(k, 4)))(jax.random.split(jax.random.PRNGKey(0), 200_000)))
    codes = perms @ np.array([64, 16, 4, 1])
    counts = np.unique(codes, return_counts=True)[1]
    assert len(counts) == 24
    expected = len(perms) / 24
    assert ((counts - expected) ** 2 / expected).sum() < 49.7
    positions = np.stack([(perms == e).mean(axis=0) for e in range(4)])
    np.testing.assert_allclose(positions, 0.25, atol=0.005)


def test_categorical_log_prob_picks_the_action_and_has_its_gradient():
    """The one-hot pick gives log_softmax at the action, and its gradient the softmax's one-hot minus probabilities."""
    logits = jnp.array([[0.3, -1.2, 2.0], [1.0, 1.0, -0.5]])
    action = jnp.array([2, 0])
    np.testing.assert_allclose(categorical_log_prob(logits, action),
                               jax.nn.log_softmax(logits)[jnp.arange(2), action], rtol=1e-6)
    grad = jax.grad(lambda x: categorical_log_prob(x, action).sum())(logits)
    np.testing.assert_allclose(grad, jax.nn.one_hot(action, 3) - jax.nn.softmax(logits), rtol=1e-5, atol=1e-6)


def test_rollout_forward_in_blocks_matches_one_pass():
    """`rollout_forward` (blocks of FORWARD_BLOCK rows, plus a remainder) gives the values and log-probabilities of
    one pass over all rows, to float rounding."""
    obs_space, act_space = gym.spaces.Box(-1.0, 1.0, (3,), np.float32), gym.spaces.Discrete(3)
    cfg = ppo.Config(hidden_sizes=(16,))
    state = ppo.init(cfg, jax.random.PRNGKey(0), obs_space, act_space)
    T, N = ppo.FORWARD_BLOCK + 37, 3  # blocks and a remainder
    keys = jax.random.split(jax.random.PRNGKey(1), 3)
    obs = jax.random.normal(keys[0], (T, N, 3))
    rollout = Transition(obs, jax.random.randint(keys[1], (T, N), 0, 3), jnp.zeros((T, N)),
                         jax.random.normal(keys[2], (T, N, 3)), jnp.zeros((T, N), bool), jnp.zeros((T, N), bool))
    v, v_next, log_prob = jax.jit(lambda s, r: ppo.rollout_forward(cfg, s, r))(state, rollout)
    assert v.shape == v_next.shape == log_prob.shape == (T, N)
    np.testing.assert_allclose(v, ppo.value(cfg, state, state.critic_params, rollout.obs), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(v_next, ppo.value(cfg, state, state.critic_params, rollout.next_obs), rtol=1e-5,
                               atol=1e-6)
    want, _ = ppo.log_prob_and_entropy(cfg, state, state.actor_params, rollout.obs, rollout.action)
    np.testing.assert_allclose(log_prob, want, rtol=1e-5, atol=1e-6)
