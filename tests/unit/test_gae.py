"""GAE and lambda-returns against a plain Python loop, with terminated and truncated steps, under jit and vmap."""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from critix.values import targets

GAMMA = 0.9


def gae_loop(reward, terminated, truncated, v_obs, v_next, gamma, lam):
    """Textbook GAE, one env, step by step (#240 Eq. 16): the trace stops at any episode end; only a terminated
    step drops its bootstrap value; a truncated step bootstraps from the value of its real final observation."""
    T = len(reward)
    adv = np.zeros(T)
    running = 0.0
    for t in reversed(range(T)):
        bootstrap = 0.0 if terminated[t] else gamma * v_next[t]
        delta = reward[t] + bootstrap - v_obs[t]
        if terminated[t] or truncated[t]:
            running = 0.0
        running = delta + gamma * lam * running
        adv[t] = running
    return adv


def random_case(seed: int, T: int = 12):
    rng = np.random.default_rng(seed)
    reward = rng.normal(size=T).astype(np.float32)
    terminated = rng.random(T) < 0.2
    truncated = (rng.random(T) < 0.2) & ~terminated
    v_obs = rng.normal(size=T).astype(np.float32)
    v_next = rng.normal(size=T).astype(np.float32)
    return reward, terminated, truncated, v_obs, v_next


def critix_gae(reward, terminated, truncated, v_obs, v_next, lam):
    discount = targets.discount(GAMMA, terminated)
    end = jnp.logical_or(terminated, truncated)
    return targets.gae_advantages(reward, discount, v_obs, v_next, end, lam)


@pytest.mark.parametrize("lam", [0.0, 0.5, 0.95, 1.0])
def test_gae_matches_a_python_loop_under_jit_and_vmap(jit_vmap_check, lam):
    cases = [tuple(jnp.asarray(x) for x in random_case(seed)) for seed in range(3)]
    expected = [jnp.asarray(gae_loop(*[np.asarray(x) for x in case], GAMMA, lam), jnp.float32) for case in cases]
    assert any(np.asarray(c[1]).any() for c in cases) and any(np.asarray(c[2]).any() for c in cases)
    jit_vmap_check(partial(critix_gae, lam=lam), cases, expected, rtol=1e-5, atol=1e-5)


def test_truncated_step_bootstraps_from_its_final_observation():
    """Step 1 ends an episode and step 2 starts the next. Truncated: A_1 = r + gamma V(final obs) (the bootstrap
    stays), and step 2's advantage does not leak into A_1; terminated: A_1 = r, no bootstrap. Lambda = 1."""
    reward = jnp.array([1.0, 1.0, 1.0])
    v_obs = jnp.array([0.0, 0.0, 0.0])
    v_next = jnp.array([5.0, 10.0, 7.0])
    no = jnp.array([False, False, False])
    at_1 = jnp.array([False, True, False])
    a2 = 1.0 + GAMMA * 7.0
    trunc = critix_gae(reward, no, at_1, v_obs, v_next, 1.0)
    a1 = 1.0 + GAMMA * 10.0
    np.testing.assert_allclose(trunc, [1.0 + GAMMA * 5.0 + GAMMA * a1, a1, a2], rtol=1e-6)
    term = critix_gae(reward, at_1, no, v_obs, v_next, 1.0)
    np.testing.assert_allclose(term, [1.0 + GAMMA * 5.0 + GAMMA * 1.0, 1.0, a2], rtol=1e-6)


def test_lambda_one_gives_n_step_returns_and_lambda_zero_one_step_targets():
    reward, terminated, truncated, v_obs, v_next = (jnp.asarray(x) for x in random_case(7))
    discount = targets.discount(GAMMA, terminated)
    end = jnp.logical_or(terminated, truncated)
    one_step = targets.lambda_returns(reward, discount, v_obs, v_next, end, 0.0)
    np.testing.assert_allclose(one_step, targets.td_target(reward, discount, v_next), rtol=1e-6, atol=1e-6)
    # lambda = 1 without episode ends (so V(next_obs_t) = V(obs_{t+1})): the discounted reward sum up to the
    # rollout end, bootstrapped there.
    never = jnp.zeros_like(end)
    v_next = jnp.concatenate([v_obs[1:], v_next[-1:]])
    returns = targets.lambda_returns(reward, targets.discount(GAMMA, never), v_obs, v_next, never, 1.0)
    T = reward.shape[0]
    want = [sum(GAMMA**k * float(reward[t + k]) for k in range(T - t)) + GAMMA ** (T - t) * float(v_next[-1])
            for t in range(T)]
    np.testing.assert_allclose(returns, want, rtol=1e-5)


def test_gae_over_time_and_env_axes_equals_per_env():
    """[T, N] inputs: envs are independent columns."""
    cols = [random_case(seed) for seed in (1, 2)]
    stacked = [jnp.stack([jnp.asarray(c[i]) for c in cols], axis=1) for i in range(5)]
    both = critix_gae(*stacked, 0.95)
    for n, case in enumerate(cols):
        np.testing.assert_allclose(both[:, n], critix_gae(*(jnp.asarray(x) for x in case), 0.95), rtol=1e-6)


def test_gae_gradient_flows_only_through_inputs_it_should():
    """lambda_returns is a target: callers stop gradients; here the function itself is differentiable in v."""
    reward, terminated, truncated, v_obs, v_next = (jnp.asarray(x) for x in random_case(3))
    grad = jax.grad(lambda v: critix_gae(reward, terminated, truncated, v, v_next, 0.9).sum())(v_obs)
    assert np.all(np.isfinite(grad))
