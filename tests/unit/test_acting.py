"""Acting in NumPy equals acting in JAX: every agent family's `PolicyFunctions` (critix.agents.contract) evaluated with
NumPy on the host gives, for the same parameters and the same random numbers, the actions of the agent's jitted
act as it was written before the NumPy path existed (Flax `apply` and `jax.random` samplers, written out here as
the reference), for S = 2 seeds at once; and the host loops' `Acting` gives the same actions with either evaluator.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from critix.agents import bc, dqn, iql, ppo, sac, sac_discrete, td3, tqc
from critix.agents.contract import RunPlan
from critix.nets.policies import TanhGaussianPolicy, categorical_sample, gaussian_sample, tanh_gaussian_sample
from critix.agents.contract import acting_keys, step_key
from critix.train.host import HOST_ACTING_MAX_MACS, NOISE_BLOCK, Acting, choose_evaluator
from critix.types import CritixError
from critix.values.heads import HeadConfig

OBS = gym.spaces.Box(-np.inf, np.inf, (3,), np.float32)
BOX = gym.spaces.Box(-2.0, 2.0, (2,), np.float32)
DISCRETE = gym.spaces.Discrete(4)
S, B = 2, 5
SMALL = {"hidden_sizes": (16, 16)}


def dqn_reference(cfg: Any, state: Any, obs: jax.Array, key: jax.Array, deterministic: bool) -> jax.Array:
    """DQN's epsilon-greedy act before the PolicyFunctions pieces (critix 0.x): Flax apply, the head's value, two draws."""
    q = cfg.head.value(dqn.network(cfg, state.num_actions).apply(state.q_params, obs))
    greedy = jnp.argmax(q, axis=-1).astype(jnp.int32)
    if deterministic:
        return greedy
    explore_key, action_key = jax.random.split(key)
    explore = jax.random.uniform(explore_key, greedy.shape) < dqn.epsilon(cfg, state, state.steps)
    return jnp.where(explore, jax.random.randint(action_key, greedy.shape, 0, state.num_actions, jnp.int32), greedy)


def tanh_gaussian_reference(cfg: Any, state: Any, obs: jax.Array, key: jax.Array, deterministic: bool) -> jax.Array:
    actor = TanhGaussianPolicy(cfg.hidden_sizes, state.action_dim, cfg.activation)  # SAC's and TQC's actor
    mean, log_std = actor.apply(state.actor_params, obs)
    return jnp.tanh(mean) if deterministic else tanh_gaussian_sample(key, mean, log_std)[0]


def td3_reference(cfg: Any, state: Any, obs: jax.Array, key: jax.Array, deterministic: bool) -> jax.Array:
    action = td3.networks(cfg, state.action_dim)[0].apply(state.actor_params, obs)
    if deterministic:
        return action
    return jnp.clip(action + cfg.exploration_noise * jax.random.normal(key, action.shape), -1.0, 1.0)


def ppo_reference(cfg: Any, state: Any, obs: jax.Array, key: jax.Array, deterministic: bool) -> jax.Array:
    actor, _ = ppo.networks(cfg, state.discrete, state.action_dim)
    if state.discrete:
        logits = actor.apply(state.actor_params, obs)
        return jnp.argmax(logits, axis=-1).astype(jnp.int32) if deterministic else categorical_sample(key, logits)
    mean, log_std = actor.apply(state.actor_params, obs)
    return mean if deterministic else mean + jnp.exp(log_std) * jax.random.normal(key, mean.shape)


def sac_discrete_reference(cfg: Any, state: Any, obs: jax.Array, key: jax.Array, deterministic: bool) -> jax.Array:
    logits = sac_discrete.networks(cfg, state.num_actions)[0].apply(state.actor_params, obs)
    if deterministic:
        return jnp.argmax(logits, axis=-1).astype(jnp.int32)
    return jax.random.categorical(key, logits, axis=-1).astype(jnp.int32)


def bounded_gaussian_reference(networks: Callable[..., Any]) -> Callable[..., jax.Array]:
    def act(cfg: Any, state: Any, obs: jax.Array, key: jax.Array, deterministic: bool) -> jax.Array:
        actor = networks(cfg, state.action_dim)
        mean, log_std = (actor[0] if isinstance(actor, tuple) else actor).apply(state.actor_params, obs)
        return mean if deterministic else gaussian_sample(key, mean, log_std)

    return act


# name -> (agent module, config, action space, the reference act)
FAMILIES: dict[str, tuple[Any, Any, gym.Space, Callable[..., jax.Array]]] = {
    "dqn": (dqn, dqn.Config(**SMALL), DISCRETE, dqn_reference),
    "dqn-dueling-c51": (dqn, dqn.Config(**SMALL, dueling=True, value_head=HeadConfig("c51", -10.0, 10.0, 11)),
                        DISCRETE, dqn_reference),
    "qr-dqn": (dqn, dqn.Config(**SMALL, value_head=HeadConfig("quantile", num_bins=7)), DISCRETE, dqn_reference),
    "dqn-hl-gauss": (dqn, dqn.Config(**SMALL, value_head=HeadConfig("hl-gauss", -5.0, 5.0, 9)), DISCRETE,
                     dqn_reference),
    "sac": (sac, sac.Config(**SMALL), BOX, tanh_gaussian_reference),
    "tqc": (tqc, tqc.Config(**SMALL), BOX, tanh_gaussian_reference),
    "td3": (td3, td3.Config(**SMALL), BOX, td3_reference),
    "ppo-discrete": (ppo, ppo.Config(**SMALL), DISCRETE, ppo_reference),
    "ppo-gaussian": (ppo, ppo.Config(**SMALL, init_log_std=-0.3), BOX, ppo_reference),
    "a2c-discrete": (ppo, dataclasses.replace(ppo.Config.a2c(), **SMALL), DISCRETE, ppo_reference),
    "sac-discrete": (sac_discrete, sac_discrete.Config(**SMALL), DISCRETE, sac_discrete_reference),
    "iql": (iql, iql.Config(**SMALL), BOX, bounded_gaussian_reference(iql.networks)),
    "bc": (bc, bc.Config(**SMALL), BOX, bounded_gaussian_reference(bc.networks)),
}


def agents_of(module: Any, cfg: Any, act_space: gym.Space) -> Any:
    """S agents with distinct, perturbed parameters (so that no output is at an init symmetry); DQN's epsilon at
    0.5, so that both the greedy and the random branch are taken."""
    plan = RunPlan(steps=1000, learning_starts=0, utd_ratio=1.0)
    state = jax.vmap(lambda k: module.init(cfg, k, OBS, act_space, plan))(jax.random.split(jax.random.PRNGKey(0), S))
    leaves, tree = jax.tree.flatten(state)
    keys = jax.random.split(jax.random.PRNGKey(1), len(leaves))
    leaves = [x + 0.3 * jax.random.normal(k, x.shape) if x.dtype == jnp.float32 else x
              for x, k in zip(leaves, keys, strict=True)]
    state = jax.tree.unflatten(tree, leaves)
    if module is dqn:  # epsilon = 0.5 halfway through a 100-step schedule from 1.0 to 0.0 (see the test)
        state = state.replace(steps=jnp.full((S,), 50, jnp.int32))
    return state


@pytest.mark.parametrize("name", sorted(FAMILIES))
@pytest.mark.parametrize("deterministic", [False, True])
def test_numpy_acting_equals_the_jitted_act_for_the_same_parameters_and_random_numbers(name: str,
                                                                                         deterministic: bool) -> None:
    module, cfg, act_space, reference = FAMILIES[name]
    if module is dqn:
        cfg = dataclasses.replace(cfg, epsilon_start=1.0, epsilon_end=0.0, exploration_steps=100)
    state = agents_of(module, cfg, act_space)
    policy = module.policy(cfg, state)
    obs = 2.0 * jax.random.normal(jax.random.PRNGKey(2), (S, B, 3))
    keys = jax.random.split(jax.random.PRNGKey(3), S)

    want = jax.jit(jax.vmap(lambda s, o, k: reference(cfg, s, o, k, deterministic)))(state, obs, keys)
    agent_act = jax.jit(jax.vmap(lambda s, o, k: module.act(cfg, s, o, k, deterministic)))(state, obs, keys)
    params = jax.device_get(jax.vmap(policy.params)(state))
    noise = None if deterministic else jax.device_get(jax.vmap(lambda k: policy.noise(k, B))(keys))
    host = policy.act(np, params, np.asarray(obs), noise, deterministic)

    assert isinstance(host, np.ndarray) and host.dtype == want.dtype and host.shape == want.shape
    np.testing.assert_array_equal(agent_act, want)  # act is the reference, bit for bit
    if want.dtype == jnp.int32:
        np.testing.assert_array_equal(host, want)
        if module is dqn and not deterministic:  # both branches of epsilon-greedy were taken
            assert np.asarray(params["epsilon"]) == pytest.approx([0.5] * S)
            assert np.any(noise["explore"] < 0.5) and np.any(noise["explore"] >= 0.5)
    else:
        np.testing.assert_allclose(host, want, rtol=1e-5, atol=1e-5)


def test_policies_say_whether_they_have_a_numpy_form() -> None:
    pixels = dqn.Config(encoder="minatar", hidden_sizes=(16,))
    images = gym.spaces.Box(0, 1, (10, 10, 4), np.uint8)
    state = dqn.init(pixels, jax.random.PRNGKey(0), images, DISCRETE)
    assert not dqn.policy(pixels, state).host
    assert dqn.policy(dqn.Config(), dqn.init(dqn.Config(), jax.random.PRNGKey(0), OBS, DISCRETE)).host


def test_auto_picks_numpy_for_small_mlps_and_jit_for_large_or_pixel_policies() -> None:
    assert choose_evaluator("auto", True, 64 * 64) == "numpy"
    assert choose_evaluator("auto", True, HOST_ACTING_MAX_MACS + 1) == "jit"
    assert choose_evaluator("auto", False, 100) == "jit"
    assert choose_evaluator("jit", True, 100) == "jit"
    assert choose_evaluator("numpy", True, 10**9) == "numpy"
    with pytest.raises(CritixError, match="no NumPy form"):
        choose_evaluator("numpy", False, 100)


@pytest.mark.parametrize("name", ["dqn-dueling-c51", "sac", "ppo-gaussian"])
def test_both_evaluators_of_the_host_loops_act_alike(name: str) -> None:
    """`Acting` with NumPy and with the compiled call: the same actions over steps that cross a block of random
    numbers (normalised observations; N = 3 envs per seed), and the same greedy actions."""
    module, cfg, act_space, _ = FAMILIES[name]
    state = agents_of(module, cfg, act_space)
    N = 3
    host, compiled = (Acting(module, cfg, state, S, N, e, True, acting_keys(7, S)) for e in ("numpy", "jit"))
    assert (host.evaluator, compiled.evaluator) == ("numpy", "jit")
    mean = np.asarray(jax.random.normal(jax.random.PRNGKey(4), (S, 3)), np.float32)
    var = np.asarray(jax.random.uniform(jax.random.PRNGKey(5), (S, 3), minval=0.5, maxval=2.0), np.float32)
    for acting in (host, compiled):
        acting.start(state)
    for step in (0, 1, NOISE_BLOCK - 1, NOISE_BLOCK, 5 * NOISE_BLOCK + 3):
        obs = np.asarray(3.0 * jax.random.normal(jax.random.PRNGKey(10 + step), (S, N, 3)), np.float32)
        a, b = host.explore(obs, mean, var, step), compiled.explore(obs, mean, var, step)
        assert a.shape == b.shape == (S, N, *act_space.shape) and a.dtype == b.dtype
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(host.greedy(state, obs, mean, var), compiled.greedy(state, obs, mean, var),
                               rtol=1e-5, atol=1e-5)


def test_random_numbers_are_a_function_of_seed_and_step() -> None:
    """The noise of vector step t does not depend on which steps were acted before (chunks, resumes): a fresh
    `Acting` asked for step t directly draws what one that walked there draws; another seed draws other numbers."""
    module, cfg, act_space, _ = FAMILIES["sac"]
    state = agents_of(module, cfg, act_space)
    obs, mean, var = np.zeros((S, 1, 3), np.float32), np.zeros((S, 3), np.float32), np.ones((S, 3), np.float32)
    walked = Acting(module, cfg, state, S, 1, "numpy", False, acting_keys(0, S))
    walked.start(state)
    for step in range(NOISE_BLOCK + 2):
        action = walked.explore(obs, mean, var, step)
    fresh = Acting(module, cfg, state, S, 1, "numpy", False, acting_keys(0, S))
    fresh.start(state)
    np.testing.assert_array_equal(fresh.explore(obs, mean, var, NOISE_BLOCK + 1), action)
    other = Acting(module, cfg, state, S, 1, "numpy", False, acting_keys(1, S))
    other.start(state)
    assert not np.allclose(other.explore(obs, mean, var, NOISE_BLOCK + 1), action)
    assert not np.allclose(action[0], action[1])  # seeds draw apart
    # What a compiled member computes at that step: the agent's own `act` with `step_key(acting key, t)`.
    member = jax.vmap(lambda st, k: module.act(cfg, st, jnp.zeros((1, 3)), step_key(k, NOISE_BLOCK + 1), False))
    np.testing.assert_allclose(np.asarray(member(state, acting_keys(0, S))), action, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_the_noise_draw_gives_the_same_bits_as_an_optimised_compile(name: str) -> None:
    """`Acting.draw` is compiled with `DRAW_COMPILER_OPTIONS` (unoptimised on CPU, a faster compile): its random
    numbers are bit for bit those of the same draw compiled with XLA's default optimisation, which is what a
    compiled run's in-scan draw uses, for every family's noise (uniform, integer, normal and Gumbel draws)."""
    module, cfg, act_space, _ = FAMILIES[name]
    state = agents_of(module, cfg, act_space)
    acting = Acting(module, cfg, state, S, 3, "numpy", False, acting_keys(11, S))
    optimised = jax.jit(acting.draw.__wrapped__)  # the same function, without the options
    for block in (0, 7):
        got, want = acting.draw(acting.keys, np.int32(block)), optimised(acting.keys, np.int32(block))
        for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
