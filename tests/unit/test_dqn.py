"""DQN-family and discrete-SAC building blocks against hand-computed values: n-step returns, sequence sampling,
dueling aggregation, target-network period, epsilon schedule, double-Q, every head through the DQN update, and
discrete SAC's exact soft value."""

from __future__ import annotations

import dataclasses
from functools import partial

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from critix.agents.contract import RunPlan
from critix.agents import dqn, sac_discrete
from critix.data import replay
from critix.nets.discrete import DiscreteQNetwork
from critix.types import Transition
from critix.values.heads import HeadConfig
from critix.values import targets

OBS = gym.spaces.Box(-np.inf, np.inf, (3,), np.float32)
ACTS = gym.spaces.Discrete(3)
SMALL = dict(hidden_sizes=(32, 32), batch_size=16)


def batch(key: jax.Array, lead: tuple[int, ...] = (16,)) -> Transition:
    k1, k2, k3, k4, k5 = jax.random.split(key, 5)
    return Transition(
        obs=jax.random.normal(k1, (*lead, 3)), action=jax.random.randint(k2, lead, 0, 3, jnp.int32),
        reward=jax.random.normal(k3, lead), next_obs=jax.random.normal(k4, (*lead, 3)),
        terminated=(jax.random.uniform(k5, lead) < 0.25).astype(jnp.float32), truncated=jnp.zeros(lead),
    )


# --- n-step -----------------------------------------------------------------------------------------------------


def test_n_step_return_hand_values(jit_vmap_check):
    r = jnp.array([[1.0, 2.0, 4.0], [1.0, 2.0, 4.0], [1.0, 2.0, 4.0], [1.0, 2.0, 4.0]])
    term = jnp.array([[0.0, 0, 0], [0, 1, 0], [1, 0, 0], [0, 0, 0]])
    trunc = jnp.array([[0.0, 0, 0], [0, 0, 0], [0, 0, 0], [0, 1, 0]])
    # gamma 0.5: full 1 + 1 + 1 = 3, discount 0.125; terminated at step 1: 1 + 1 = 2, discount 0, last 1;
    # terminated at 0: 1, discount 0; truncated at step 1: 2, discount 0.25 (bootstrap from that final obs).
    expected = (jnp.array([3.0, 2.0, 1.0, 2.0]), jnp.array([0.125, 0.0, 0.0, 0.25]), jnp.array([2, 1, 0, 1]))
    jit_vmap_check(partial(targets.n_step_return, gamma=0.5), [(r, term, trunc), (r, term, trunc)],
                   [expected, expected])


def test_sample_sequences_follow_each_env_with_stride():
    """Items written time-major over N=2 envs: a sequence follows one env (stride 2) and never runs past the
    newest item, also after the ring wrapped."""
    example = Transition(obs=jnp.zeros(()), action=jnp.zeros((), jnp.int32), reward=jnp.zeros(()),
                         next_obs=jnp.zeros(()), terminated=jnp.zeros(()), truncated=jnp.zeros(()))
    buf = replay.init(10, example)
    values = jnp.arange(14.0)  # item i: time i // 2, env i % 2; 14 items in a ring of 10 -> items 4..13 kept
    items = jax.tree.map(lambda _: values, example)
    buf = replay.add(buf, items)
    seqs = replay.sample_sequences(buf, jax.random.PRNGKey(0), 4, 64, 3, 2).reward  # [4, 64, 3]
    seqs = np.asarray(seqs).reshape(-1, 3)
    np.testing.assert_array_equal(seqs[:, 1] - seqs[:, 0], 2.0)
    np.testing.assert_array_equal(seqs[:, 2] - seqs[:, 1], 2.0)
    assert seqs.min() >= 4.0 and seqs.max() <= 13.0
    assert set(np.unique(seqs[:, 0])) == set(np.arange(4.0, 10.0))  # every valid start is drawn


# --- networks, schedule, targets ----------------------------------------------------------------------------------


def test_dueling_aggregation_mean_advantage_is_zero():
    net = DiscreteQNetwork((16, 16), num_actions=4, num_outputs=2, dueling=True)
    obs = jax.random.normal(jax.random.PRNGKey(0), (5, 3))
    params = net.init(jax.random.PRNGKey(1), obs)
    assert set(params["params"]) >= {"value", "advantage"}
    q = net.apply(params, obs)
    assert q.shape == (5, 4, 2)
    # mean_a Q(s, a) = V(s) (#221 Eq. 9): recompute V from the value stream alone
    torso = jax.nn.relu(obs @ params["params"]["MLP_0"]["Dense_0"]["kernel"] + params["params"]["MLP_0"]["Dense_0"]["bias"])
    v_params = params["params"]["value"]
    h = jax.nn.relu(torso @ v_params["Dense_0"]["kernel"] + v_params["Dense_0"]["bias"])
    v = h @ v_params["Dense_1"]["kernel"] + v_params["Dense_1"]["bias"]
    np.testing.assert_allclose(q.mean(axis=1), v, rtol=1e-5, atol=1e-5)


def test_epsilon_schedule_hand_values():
    cfg = dqn.Config(exploration_steps=9_000, epsilon_end=0.1)
    state = dqn.init(cfg, jax.random.PRNGKey(0), OBS, ACTS, RunPlan(learning_starts=1_000, utd_ratio=0.5))
    eps = jax.jit(lambda steps: dqn.epsilon(cfg, state, steps))
    # env steps = 1000 + grad_steps / 0.5: 0 -> 1000 (1/9 of the way), 1000 -> 3000 (1/3), 4000 -> 9000 (end)
    np.testing.assert_allclose(eps(jnp.array(0)), 1.0 - 0.9 / 9, rtol=1e-6)
    np.testing.assert_allclose(eps(jnp.array(1000)), 1.0 - 0.9 / 3, rtol=1e-6)
    np.testing.assert_allclose(eps(jnp.array(4000)), 0.1, rtol=1e-6)
    np.testing.assert_allclose(eps(jnp.array(10**6)), 0.1, rtol=1e-6)


def test_target_network_moves_only_every_period():
    cfg = dqn.Config(**SMALL, target_update_period=3)
    state = dqn.init(cfg, jax.random.PRNGKey(0), OBS, ACTS)
    update = jax.jit(partial(dqn.update, cfg))
    b = batch(jax.random.PRNGKey(1))
    s1, _ = update(state, b)
    s2, _ = update(s1, b)
    for a, c in zip(jax.tree.leaves(s2.target_q_params), jax.tree.leaves(state.target_q_params)):
        np.testing.assert_array_equal(a, c)
    s3, _ = update(s2, b)  # third step: hard copy (tau 1)
    for a, c in zip(jax.tree.leaves(s3.target_q_params), jax.tree.leaves(s3.q_params)):
        np.testing.assert_array_equal(a, c)


def test_double_q_changes_the_target():
    base = dqn.Config(**SMALL, target_update_period=1000)
    state = dqn.init(base, jax.random.PRNGKey(0), OBS, ACTS)
    # make online and target networks differ
    state = state.replace(target_q_params=dqn.init(base, jax.random.PRNGKey(5), OBS, ACTS).q_params)
    b = batch(jax.random.PRNGKey(1))
    _, m_double = dqn.update(base, state, b)
    _, m_single = dqn.update(dataclasses.replace(base, double_q=False), state, b)
    assert not np.isclose(m_double["critic/loss"], m_single["critic/loss"])


@pytest.mark.parametrize("head", ["scalar", "c51", "quantile", "hl-gauss", "two-hot"])
def test_every_head_fits_a_fixed_batch(head):
    """Any head through DQN: on one repeated batch of terminal transitions the loss falls and Q(s, a) approaches r
    (classification losses cannot fall below the entropy of their target histogram, so no ratio is asserted)."""
    cfg = dqn.Config(**SMALL, value_head=HeadConfig(head, v_min=-5.0, v_max=5.0, num_bins=11), q_lr=1e-2, dueling=True,
                     target_update_period=1)
    state = dqn.init(cfg, jax.random.PRNGKey(0), OBS, ACTS)
    b = batch(jax.random.PRNGKey(2)).replace(terminated=jnp.ones(16))  # targets are the rewards
    batches = jax.tree.map(lambda x: jnp.stack([x] * 60), b)
    state, metrics = jax.jit(partial(dqn.update_many, cfg))(state, batches)
    loss = np.asarray(metrics["critic/loss"])
    assert np.all(np.isfinite(loss)) and loss[-5:].mean() < loss[:5].mean(), loss
    q = dqn.q_values(cfg, state.q_params, b.obs, 3)[jnp.arange(16), b.action]
    assert np.mean(np.abs(np.asarray(q) - np.asarray(b.reward))) < 0.5


def test_n_step_update_uses_the_sequence():
    cfg = dqn.Config(**SMALL, n_step=3)
    state = dqn.init(cfg, jax.random.PRNGKey(0), OBS, ACTS)
    seq = batch(jax.random.PRNGKey(3), (16, 3))
    new, metrics = jax.jit(partial(dqn.update, cfg))(state, seq)
    assert np.isfinite(metrics["critic/loss"])
    # the 3rd step's reward matters unless an earlier step ended the episode
    changed = seq.replace(reward=seq.reward.at[:, 2].add(10.0), terminated=jnp.zeros((16, 3)))
    same = seq.replace(terminated=jnp.zeros((16, 3)))
    a = dqn.update(cfg, state, same)[1]["critic/loss"]
    b = dqn.update(cfg, state, changed)[1]["critic/loss"]
    assert not np.isclose(a, b)


def test_invalid_dqn_config_names_the_field():
    for field, value in [("n_step", 0), ("target_update_period", 0), ("epsilon_end", 1.5), ("q_lr", 0.0)]:
        with pytest.raises(ValueError, match=field):
            dqn.Config(**{field: value})


def test_dqn_rejects_continuous_actions():
    from critix.types import CritixError

    with pytest.raises(CritixError, match="discrete action space"):
        dqn.check_spaces(OBS, gym.spaces.Box(-1, 1, (2,)))


# --- discrete SAC -------------------------------------------------------------------------------------------------


def test_discrete_soft_state_value_hand_values(jit_vmap_check):
    log_pi = jnp.log(jnp.array([[0.5, 0.5], [1.0, 1e-30]]))
    q = jnp.array([[1.0, 3.0], [2.0, -7.0]])
    # row 0: 0.5 (1 + 0.5 ln 2) + 0.5 (3 + 0.5 ln 2) = 2 + 0.5 ln 2 (alpha 0.5); row 1: 2
    jit_vmap_check(lambda lp, qq: sac_discrete.soft_state_value(lp, qq, 0.5), [(log_pi, q)],
                   [jnp.array([2.0 + 0.5 * np.log(2.0), 2.0])], atol=1e-5)


def test_discrete_sac_temperature_follows_the_entropy_target():
    """alpha falls while the policy is more random than the target, rises when it is less (#55 Eq. 11)."""
    cfg = sac_discrete.Config(**SMALL, target_entropy_ratio=0.5, alpha_lr=0.05)
    state = sac_discrete.init(cfg, jax.random.PRNGKey(0), OBS, ACTS)  # near-uniform policy: entropy ~ log 3
    b = batch(jax.random.PRNGKey(1))
    new, metrics = jax.jit(partial(sac_discrete.update, cfg))(state, b)
    assert metrics["actor/entropy"] > 0.5 * np.log(3) and new.log_alpha < state.log_alpha
    cfg_high = dataclasses.replace(cfg, target_entropy_ratio=1.0)
    peaked = state.replace(actor_params=jax.tree.map(lambda x: 30.0 * x, state.actor_params))
    new, metrics = jax.jit(partial(sac_discrete.update, cfg_high))(peaked, b)
    assert metrics["actor/entropy"] < np.log(3) and new.log_alpha > peaked.log_alpha


# --- prioritized replay --------------------------------------------------------------------------------------------


def test_sum_tree_sums_and_samples_in_proportion():
    from critix.data import prioritized as per

    tree = per.init(5)  # 8 leaves
    assert tree.nodes.shape == (16,)
    tree = jax.jit(per.set_priorities)(tree, jnp.array([0, 1, 2, 3, 4]), jnp.array([1.0, 0.0, 3.0, 4.0, 2.0]))
    np.testing.assert_allclose(per.total(tree), 10.0)
    np.testing.assert_allclose(tree.nodes[2], 8.0)  # leaves 0-3
    tree = per.set_priorities(tree, jnp.array([3, 3]), jnp.array([6.0, 6.0]))  # repeated slot
    np.testing.assert_allclose(per.total(tree), 12.0)
    assert float(tree.max_priority) == 6.0
    index, prob = jax.jit(per.sample, static_argnums=2)(tree, jax.random.PRNGKey(0), 12_000, jnp.array(5))
    counts = np.bincount(np.asarray(index), minlength=5) / 12_000
    np.testing.assert_allclose(counts, [1 / 12, 0.0, 3 / 12, 6 / 12, 2 / 12], atol=0.01)
    np.testing.assert_allclose(prob, np.array([1, 0, 3, 6, 2])[np.asarray(index)] / 12.0, rtol=1e-6)
    w = per.importance_weights(jnp.array([0.5, 0.25]), jnp.array(4), 1.0)
    np.testing.assert_allclose(w, [0.5, 1.0])  # (4 * 0.5)^-1 = 0.5, (4 * 0.25)^-1 = 1, over max 1


def test_prioritized_dqn_trains_through_the_host_loop(tmp_path):
    from critix.train import RunConfig, train

    cfg = dqn.Config(hidden_sizes=(32, 32), batch_size=16, prioritized=True)
    summary = train("dqn", cfg, RunConfig(env="CartPole-v1", steps=300, num_seeds=2, eval_every=0, eval_episodes=2,
                                         run_dir=str(tmp_path / "per"), progress=False, tensorboard=False,
                                         buffer_size=500, learning_starts=100, utd_ratio=0.5))
    assert summary["gradient_steps"] > 0 and len(summary["final_return"]) == 2


def test_n_step_bootstrap_picks_next_obs_of_the_last_counted_step_for_images():
    cfg = dqn.Config(n_step=2)
    next_obs = jnp.arange(4 * 2 * 3.0).reshape(4, 2, 3, 1, 1) * jnp.ones((4, 2, 3, 2, 1))  # images [B, n, H, W, C]
    seq = Transition(obs=jnp.zeros((4, 2, 3, 2, 1)), action=jnp.zeros((4, 2), jnp.int32), reward=jnp.ones((4, 2)),
                     next_obs=next_obs, terminated=jnp.zeros((4, 2)).at[0, 0].set(1.0), truncated=jnp.zeros((4, 2)))
    _, _, r_t, discount_t, chosen = dqn.bootstrap_inputs(cfg, seq)
    assert chosen.shape == (4, 3, 2, 1)
    np.testing.assert_array_equal(chosen[0], next_obs[0, 0])  # ended at step 0
    np.testing.assert_array_equal(chosen[1], next_obs[1, 1])
    np.testing.assert_allclose(r_t, [1.0, 1.99, 1.99, 1.99], rtol=1e-6)
    np.testing.assert_allclose(discount_t, [0.0, 0.9801, 0.9801, 0.9801], rtol=1e-6)
