"""Pieces every off-policy agent shares: Polyak averaging, gradient steps, scanned updates, space checks."""

from __future__ import annotations

from functools import partial

import gymnasium as gym
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from critix import agents
from critix.agents import common
from critix.types import CritixError


def test_polyak_hand_values(jit_vmap_check):
    cases = [
        ({"w": jnp.array([1.0, 2.0])}, {"w": jnp.array([0.0, 0.0])}),
        ({"w": jnp.array([-1.0, 4.0])}, {"w": jnp.array([1.0, 2.0])}),
    ]
    expected = [{"w": jnp.array([0.1, 0.2])}, {"w": jnp.array([0.8, 2.2])}]
    jit_vmap_check(partial(common.polyak, target_tau=0.1), cases, expected)
    full = common.polyak({"w": jnp.array([3.0])}, {"w": jnp.array([0.0])}, 1.0)
    np.testing.assert_allclose(full["w"], [3.0])


def test_gradient_step_hand_values(jit_vmap_check):
    tx = optax.sgd(0.1)

    def step(params):
        def loss_fn(p):
            return jnp.sum(jnp.square(p["w"])), jnp.sum(p["w"])

        new, _, loss, aux = common.gradient_step(loss_fn, params, tx.init(params), tx)
        return new, loss, aux

    cases = [({"w": jnp.array([1.0, -2.0])},), ({"w": jnp.array([0.5, 0.0])},)]
    # grad of sum(w^2) = 2w; sgd: w - 0.1 * 2w = 0.8 w
    expected = [({"w": jnp.array([0.8, -1.6])}, jnp.array(5.0), jnp.array(-1.0)),
                ({"w": jnp.array([0.4, 0.0])}, jnp.array(0.25), jnp.array(0.5))]
    jit_vmap_check(step, cases, expected)


def test_scan_updates_equals_a_python_loop():
    def update(state, batch):
        new = state * 0.5 + batch.sum()
        return new, {"loss": new**2}

    batches = jnp.arange(12.0).reshape(3, 4)
    state, metrics = common.scan_updates(update, jnp.array(1.0), batches)
    want_state, want_losses = jnp.array(1.0), []
    for batch in batches:
        want_state, m = update(want_state, batch)
        want_losses.append(m["loss"])
    np.testing.assert_allclose(state, want_state)
    assert metrics["loss"].shape == (3,)
    np.testing.assert_allclose(metrics["loss"], want_losses)


@pytest.mark.parametrize(
    "space,match",
    [
        (gym.spaces.Discrete(3), "continuous"),
        (gym.spaces.Box(-1.0, 1.0, (2, 2), np.float32), "flat action vector"),
        (gym.spaces.Box(-np.inf, np.inf, (2,), np.float32), "finite action bounds"),
        (gym.spaces.Box(np.array([-1.0, -np.inf], np.float32), np.ones(2, np.float32)), "RescaleAction"),
    ],
)
def test_check_box_actions_rejects_what_it_cannot_rescale(space, match):
    with pytest.raises(CritixError, match=match):
        common.check_box_actions("sac", space)


def test_check_box_actions_returns_the_dimension(act_space):
    assert common.check_box_actions("sac", act_space) == 2


@pytest.mark.parametrize(
    "space",
    [gym.spaces.Box(0, 255, (8, 8, 3), np.uint8), gym.spaces.Discrete(4),
     gym.spaces.Dict({"x": gym.spaces.Box(-1, 1, (2,), np.float32)})],
)
def test_check_flat_obs_rejects_non_flat_observations(space):
    with pytest.raises(CritixError, match="FlattenObservation"):
        common.check_flat_obs("td3", space)


def test_check_flat_obs_returns_the_size(obs_space):
    assert common.check_flat_obs("td3", obs_space) == 3


def test_registry_lookup():
    assert agents.get("sac").name == "sac"
    with pytest.raises(CritixError, match="unknown algorithm 'sacc'.*sac"):
        agents.get("sacc")
    for name, spec in agents.REGISTRY.items():
        assert spec.name == name
        for attr in ("Config", "State", "init", "act", "update", "update_many", "check_spaces"):
            assert hasattr(spec.module, attr), f"{name} lacks {attr}"
        assert isinstance(spec.default_config, spec.module.Config)


def test_ddpg_is_a_td3_config():
    ddpg = agents.REGISTRY["ddpg"].default_config
    assert (ddpg.num_critics, ddpg.policy_delay, ddpg.target_noise) == (1, 1, 0.0)
    assert agents.REGISTRY["ddpg"].module is agents.REGISTRY["td3"].module
    assert agents.td3.Config.ddpg(gamma=0.9).gamma == 0.9
