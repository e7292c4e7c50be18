"""The policy, temperature, offline and exploration losses of `critix.policy_losses` against hand-computed values,
eagerly, under jit and under vmap (rlax's discipline), and the gradients each one lets through.

PPO's clipped surrogate and value loss are tested in test_ppo_pieces.py.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from critix import policy_losses as pl

LN = np.log


# --- SAC ----------------------------------------------------------------------------------------------------------


def test_sac_actor_loss_hand_values(jit_vmap_check):
    # B = 3, E = 2. min over critics: [1, -2, -0.5].
    log_prob = jnp.array([-1.0, 0.5, 2.0])
    q = jnp.array([[1.0, -2.0, 0.5], [3.0, -1.0, -0.5]])
    # alpha 0.5: 0.5 log pi - min Q = [-0.5 - 1, 0.25 + 2, 1 + 0.5] -> mean 2.25 / 3
    # alpha 2:   2 log pi - min Q   = [-2 - 1, 1 + 2, 4 + 0.5]      -> mean 4.5 / 3
    jit_vmap_check(pl.sac_actor_loss, [(log_prob, q, jnp.array(0.5)), (log_prob, q, jnp.array(2.0))],
                   [jnp.array(0.75), jnp.array(1.5)])


def test_sac_actor_gradient_reaches_log_prob_and_the_smaller_critic_only():
    log_prob = jnp.array([-1.0, 0.5, 2.0])
    q = jnp.array([[1.0, -2.0, 0.5], [3.0, -1.0, -0.5]])
    g_lp, g_q, g_alpha = jax.grad(pl.sac_actor_loss, argnums=(0, 1, 2))(log_prob, q, jnp.array(0.5))
    np.testing.assert_allclose(g_lp, np.full(3, 0.5 / 3))
    # -1/B into the critic that attains the minimum, nothing into the other (clipped double-Q).
    np.testing.assert_allclose(g_q, [[-1 / 3, -1 / 3, 0.0], [0.0, 0.0, -1 / 3]], rtol=1e-6)
    assert float(g_alpha) == 0.0  # the temperature has its own loss


def test_sac_temperature_loss_hand_values(jit_vmap_check):
    log_prob = jnp.array([-1.0, 0.5])
    # alpha 2, target -1: gap log pi + target = [-2, -0.5] -> -2 * mean = 2.5
    # alpha 1, target  1: gap [0, 1.5]                    -> -1 * mean = -0.75
    jit_vmap_check(pl.sac_temperature_loss, [(jnp.log(2.0), log_prob, -1.0), (jnp.log(1.0), log_prob, 1.0)],
                   [jnp.array(2.5), jnp.array(-0.75)], rtol=1e-6)


def test_sac_temperature_gradient_is_in_log_alpha_only_and_moves_alpha_towards_the_target():
    def grads(log_alpha: float, log_prob: list[float], target: float) -> tuple[jax.Array, jax.Array]:
        return jax.grad(pl.sac_temperature_loss, argnums=(0, 1))(jnp.log(log_alpha), jnp.array(log_prob), target)

    g_alpha, g_lp = grads(2.0, [-1.0, 0.5], -1.0)
    np.testing.assert_allclose(g_alpha, 2.5, rtol=1e-6)  # d/dlog alpha of -alpha mean(gap) = -alpha mean(gap)
    np.testing.assert_allclose(g_lp, [0.0, 0.0])  # the policy's samples are held fixed
    # Entropy -log pi = 0.5 above the target -1: a positive gradient, so descent lowers alpha ...
    assert float(grads(1.0, [-0.5], -1.0)[0]) > 0
    # ... and 2 below it: a negative gradient, descent raises alpha.
    assert float(grads(1.0, [2.0], -1.0)[0]) < 0


# --- discrete SAC -------------------------------------------------------------------------------------------------

LOG_PI = jnp.log(jnp.array([[0.5, 0.5], [0.25, 0.75]]))  # B = 2, A = 2
Q_DISCRETE = jnp.array([[[1.0, 3.0], [2.0, 0.0]], [[2.0, 1.0], [0.0, 4.0]]])  # E = 2; min: [[1, 1], [0, 0]]


def discrete_actor_reference(pi: np.ndarray, q_min: np.ndarray, alpha: float) -> float:
    return float(np.mean(np.sum(pi * (alpha * np.log(pi) - q_min), axis=-1)))


def test_sac_discrete_actor_loss_hand_values(jit_vmap_check):
    pi, q_min = np.array([[0.5, 0.5], [0.25, 0.75]]), np.array([[1.0, 1.0], [0.0, 0.0]])
    # alpha 0.5 by hand: row 0 = 0.5 ln 0.5 - 1, row 1 = 0.125 ln 0.25 + 0.375 ln 0.75.
    by_hand = 0.5 * ((0.5 * LN(0.5) - 1.0) + (0.125 * LN(0.25) + 0.375 * LN(0.75)))
    assert math.isclose(discrete_actor_reference(pi, q_min, 0.5), by_hand)
    q_flipped = -Q_DISCRETE  # min: [[-2, -3], [-2, -4]]
    want = [discrete_actor_reference(pi, q_min, 0.5), discrete_actor_reference(pi, -np.array([[2, 3], [2, 4.0]]), 2.0)]
    cases = [(LOG_PI, Q_DISCRETE, jnp.array(0.5)), (LOG_PI, q_flipped, jnp.array(2.0))]
    jit_vmap_check(pl.sac_discrete_actor_loss, cases, [jnp.array(w) for w in want], rtol=1e-6)


def test_sac_discrete_actor_gradient_is_in_the_policy_only():
    alpha = 0.5
    g_lp, g_q, g_alpha = jax.grad(pl.sac_discrete_actor_loss, argnums=(0, 1, 2))(LOG_PI, Q_DISCRETE, jnp.array(alpha))
    pi, q_min = np.exp(np.asarray(LOG_PI)), np.array([[1.0, 1.0], [0.0, 0.0]])
    # d/dlog pi_a of pi_a (alpha log pi_a - Q_a) = pi_a (alpha log pi_a - Q_a + alpha), over B = 2
    np.testing.assert_allclose(g_lp, pi * (alpha * np.log(pi) - q_min + alpha) / 2, rtol=1e-6)
    np.testing.assert_allclose(g_q, np.zeros((2, 2, 2)))  # exact expectation: no gradient into the critics
    assert float(g_alpha) == 0.0


def test_sac_discrete_temperature_loss_hand_values(jit_vmap_check):
    pi = np.array([[0.5, 0.5], [0.25, 0.75]])

    def reference(alpha: float, target: float) -> float:
        # #55 Eq. 11 as written: sum_a pi(a) [-alpha (log pi(a) + target)], mean over states
        return float(np.mean(np.sum(pi * (-alpha * (np.log(pi) + target)), axis=-1)))

    entropy = [LN(2.0), -(0.25 * LN(0.25) + 0.75 * LN(0.75))]
    assert math.isclose(reference(2.0, 0.6), -2.0 * np.mean([0.6 - h for h in entropy]))
    jit_vmap_check(pl.sac_discrete_temperature_loss, [(jnp.log(2.0), LOG_PI, 0.6), (jnp.log(0.5), LOG_PI, 0.1)],
                   [jnp.array(reference(2.0, 0.6)), jnp.array(reference(0.5, 0.1))], rtol=1e-6)


def test_sac_discrete_temperature_gradient_is_in_log_alpha_only():
    g_alpha, g_lp = jax.grad(pl.sac_discrete_temperature_loss, argnums=(0, 1))(jnp.log(2.0), LOG_PI, 0.6)
    entropy = np.array([LN(2.0), -(0.25 * LN(0.25) + 0.75 * LN(0.75))])
    np.testing.assert_allclose(g_alpha, -2.0 * np.mean(0.6 - entropy), rtol=1e-5)  # 0.055: cancellation
    np.testing.assert_allclose(g_lp, np.zeros((2, 2)))
    # Both entropies (0.69, 0.56) above a target of 0.3: descent lowers alpha; above 0.7 it raises alpha.
    assert float(jax.grad(pl.sac_discrete_temperature_loss)(0.0, LOG_PI, 0.3)) > 0
    assert float(jax.grad(pl.sac_discrete_temperature_loss)(0.0, LOG_PI, 0.7)) < 0


# --- DDPG / TD3 / TD3+BC ------------------------------------------------------------------------------------------


def test_deterministic_actor_loss_is_minus_mean_q(jit_vmap_check):
    q = jnp.array([1.0, -2.0, 4.0])
    jit_vmap_check(pl.deterministic_actor_loss, [(q,), (2.0 * q + 1.0,)], [jnp.array(-1.0), jnp.array(-3.0)])
    np.testing.assert_allclose(jax.grad(pl.deterministic_actor_loss)(q), np.full(3, -1 / 3))


Q_BC = jnp.array([1.0, -3.0])  # mean |Q| = 2, mean Q = -1
PI_BC = jnp.array([[0.5, 0.0], [0.0, -1.0]])
A_BC = jnp.array([[0.0, 0.0], [1.0, -1.0]])  # squared errors [0.25, 0, 1, 0]: mean over B and A = 0.3125


def test_td3bc_actor_loss_hand_values(jit_vmap_check):
    # alpha 2.5: lambda = 2.5 / 2 = 1.25; -1.25 * (-1) + 0.3125 = 1.5625.
    # Second case Q [2, 2]: lambda = 1.25, -1.25 * 2 = -2.5; pi = a: no BC term.
    jit_vmap_check(lambda q, pi, a: pl.td3bc_actor_loss(q, pi, a, 2.5),
                   [(Q_BC, PI_BC, A_BC), (jnp.array([2.0, 2.0]), A_BC, A_BC)],
                   [jnp.array(1.5625), jnp.array(-2.5)])


def test_td3bc_q_term_is_scale_free():
    """lambda = alpha / mean|Q| normalises the Q term: scaling every Q leaves the loss unchanged (Eq. 3-4)."""
    loss = pl.td3bc_actor_loss(Q_BC, PI_BC, A_BC, 2.5)
    np.testing.assert_allclose(pl.td3bc_actor_loss(100.0 * Q_BC, PI_BC, A_BC, 2.5), loss, rtol=1e-6)


def test_td3bc_lambda_is_a_constant_and_bc_pulls_towards_the_data():
    g_q, g_pi, g_a = jax.grad(lambda q, pi, a: pl.td3bc_actor_loss(q, pi, a, 2.5), argnums=(0, 1, 2))(
        Q_BC, PI_BC, A_BC
    )
    # -lambda / B each; differentiating through lambda would give [-0.9375, -0.3125] instead.
    np.testing.assert_allclose(g_q, [-0.625, -0.625])
    # d/dpi mean((pi - a)^2) = 2 (pi - a) / (B A)
    np.testing.assert_allclose(g_pi, [[0.25, 0.0], [-0.5, 0.0]])
    np.testing.assert_allclose(g_a, -g_pi)


# --- advantage-weighted regression (IQL, XQL, f-DVL) ---------------------------------------------------------------


def test_advantage_weights_hand_values(jit_vmap_check):
    adv = jnp.array([-1.0, 0.0, 0.5, 2.0])
    # beta 2, clip 10: exp([-2, 0, 1, 4]) = [0.135, 1, 2.718, 54.6 -> 10]
    jit_vmap_check(lambda a: pl.advantage_weights(a, 2.0, 10.0), [(adv,), (-adv,)],
                   [jnp.array([math.exp(-2), 1.0, math.e, 10.0]),
                    jnp.array([math.e**2, 1.0, math.exp(-1), math.exp(-4)])], rtol=1e-6)
    np.testing.assert_allclose(pl.advantage_weights(adv, 0.5, 100.0), np.exp(0.5 * np.asarray(adv)), rtol=1e-6)


def test_awr_loss_hand_values_and_gradient_in_the_log_likelihood_only(jit_vmap_check):
    log_prob, weight = jnp.array([-1.0, -2.0]), jnp.array([2.0, 0.5])
    # -mean(w log pi) = -mean([-2, -1]) = 1.5; second case: -mean([0.5 * -1, 2 * -2]) = 2.25
    jit_vmap_check(pl.awr_loss, [(log_prob, weight), (log_prob, weight[::-1])], [jnp.array(1.5), jnp.array(2.25)])
    g_lp, g_w = jax.grad(pl.awr_loss, argnums=(0, 1))(log_prob, weight)
    np.testing.assert_allclose(g_lp, [-1.0, -0.25])  # -w / B: raises the likelihood of high-advantage actions most
    np.testing.assert_allclose(g_w, [0.0, 0.0])


# --- CQL ------------------------------------------------------------------------------------------------------------


def cql_inputs() -> tuple[jax.Array, ...]:
    # E = 2 critics (the second shifted by +1 everywhere), N = 1 sample per proposal, B = 2 states.
    q_data = jnp.array([[1.0, 0.0], [2.0, 1.0]])
    rand_q = jnp.array([[[0.0, 1.0]], [[1.0, 2.0]]])
    pi_q = jnp.array([[[2.0, 0.0]], [[3.0, 1.0]]])
    next_q = jnp.array([[[1.0, 1.0]], [[2.0, 2.0]]])
    pi_logp, next_logp = jnp.array([[0.5, -1.0]]), jnp.array([[0.0, 0.0]])
    return q_data, rand_q, pi_q, pi_logp, next_q, next_logp


def test_cql_penalty_hand_values(jit_vmap_check):
    q_data, rand_q, pi_q, pi_logp, next_q, next_logp = cql_inputs()
    log_density = math.log(0.5)
    terms0 = [0.0 - log_density, 2.0 - 0.5, 1.0 - 0.0]
    terms1 = [1.0 - log_density, 0.0 + 1.0, 1.0 - 0.0]
    critic0 = np.mean([np.log(np.sum(np.exp(terms0))) - 1.0, np.log(np.sum(np.exp(terms1))) - 0.0])
    # Shifting a critic's Q everywhere by a constant leaves its penalty unchanged (logsumexp(x + c) - (q + c)).
    want = jnp.array([critic0, critic0])

    def penalty(q_data, rand_q, pi_q, pi_logp, next_q, next_logp):
        return pl.cql_penalty(q_data, rand_q, log_density, pi_q, pi_logp, next_q, next_logp)

    second = (q_data, rand_q, pi_q, pi_logp - 1.0, next_q, next_logp - 1.0)  # lower densities: every term +1 ...
    critic0_b = np.mean([np.log(np.exp(terms0[0]) + np.exp(terms0[1] + 1) + np.exp(terms0[2] + 1)) - 1.0,
                         np.log(np.exp(terms1[0]) + np.exp(terms1[1] + 1) + np.exp(terms1[2] + 1))])
    jit_vmap_check(penalty, [cql_inputs(), second], [want, jnp.array([critic0_b, critic0_b])], rtol=1e-6)


def test_cql_penalty_pushes_sampled_q_down_by_softmax_weight_and_data_q_up():
    q_data, rand_q, pi_q, pi_logp, next_q, next_logp = cql_inputs()
    log_density = math.log(0.5)
    grads = jax.grad(lambda *q: pl.cql_penalty(q[0], q[1], log_density, q[2], pi_logp, q[3], next_logp).sum(),
                     argnums=(0, 1, 2, 3))(q_data, rand_q, pi_q, next_q)
    np.testing.assert_allclose(grads[0], np.full((2, 2), -0.5))  # -1/B on each dataset Q
    # The sampled Q values of each (critic, state) get its importance-weighted softmax, over B = 2.
    terms = np.array([[0.0 - log_density, 2.0 - 0.5, 1.0], [1.0 - log_density, 1.0, 1.0]])  # [B, 3]
    softmax = np.exp(terms) / np.exp(terms).sum(-1, keepdims=True)
    for j, g in enumerate(grads[1:]):
        np.testing.assert_allclose(g[0, 0], softmax[:, j] / 2, rtol=1e-6)
    total = sum(np.asarray(g) for g in grads[1:])
    np.testing.assert_allclose(total, np.full((2, 1, 2), 0.5), rtol=1e-6)  # the softmax sums to one


# --- epsilon-greedy -----------------------------------------------------------------------------------------------


def test_linear_epsilon_hand_values(jit_vmap_check):
    # learning_starts 1000, utd 0.5, over 9000 env steps from 1.0 to 0.1:
    # env steps = 1000 + g / 0.5: g 0 -> 1000 (1/9 of the way), 1000 -> 3000 (1/3), 4000 -> 9000 (end), then flat.
    def eps(g):
        return pl.linear_epsilon(g, 1_000, 0.5, 9_000, 1.0, 0.1)

    steps = jnp.array([0, 1000, 4000, 10**6], jnp.int32)
    want = jnp.array([1.0 - 0.9 / 9, 1.0 - 0.9 / 3, 0.1, 0.1])
    jit_vmap_check(eps, [(steps,), (steps[::-1],)], [want, want[::-1]], rtol=1e-6)
    np.testing.assert_allclose(pl.linear_epsilon(3, 0, 1.0, 12, 0.5, 0.0), 0.375)  # plain numbers: 0.5 - 0.5 / 4
    # No decay steps: epsilon_start at env step 0, epsilon_end from the first step on.
    np.testing.assert_allclose([pl.linear_epsilon(0, 0, 1.0, 0, 1.0, 0.05), pl.linear_epsilon(1, 0, 1.0, 0, 1.0, 0.05)],
                               [1.0, 0.05], rtol=1e-6)

