"""Pieces the agents share: Polyak averaging, gradient steps, scanned updates, space checks, config checks."""

from __future__ import annotations

import re
from functools import partial

import gymnasium as gym
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from critix import agents, cli, validation
from critix.agents import bc, common, cql, dqn, ppo, sac, sac_discrete, tqc
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


@pytest.mark.parametrize(
    "value,valid,ok",
    [(0.0, "in [0, 1]", True), (1.0, "in [0, 1]", True), (1.5, "in [0, 1]", False), (0.0, "in (0, 1]", False),
     (1.0, "in (0, 1]", True), (1.0, "in [0, 1)", False), (0.5, "in (0, 1)", True), (0, ">= 0", True),
     (-1, ">= 0", False), (0.0, "> 0", False), (1e-9, "> 0", True), (0, ">= 1", False),
     (0, ">= 0 (0: whole rollout)", True), (1.0, "in [0, 1) (0: no clipping)", False),
     (float("nan"), "> 0", False)],
)
def test_within_reads_a_range_as_its_message_writes_it(value, valid, ok):
    assert validation.within(value, valid) is ok


def test_check_range_names_the_first_field_out_of_range():
    cfg = sac.Config()
    validation.check_range(cfg, "in [0, 1]", "gamma", "target_tau")
    with pytest.raises(ValueError, match=r"^target_tau must be > 0.01, got 0.005$"):
        validation.check_range(cfg, "> 0.01", "gamma", "target_tau")


@pytest.mark.parametrize(
    "make,field,message",
    [(lambda: dqn.Config(target_tau=0.0), "target_tau", "in (0, 1]"),  # dqn declares target_tau itself
     (lambda: ppo.Config(gamma=1.5), "gamma", "in [0, 1]"),
     (lambda: bc.Config(batch_size=0), "batch_size", ">= 1"),
     (lambda: ppo.Config(max_grad_norm=-0.5), "max_grad_norm", ">= 0"),
     (lambda: dqn.Config(q_lr=0.0), "q_lr", "> 0"),
     (lambda: sac_discrete.Config(init_alpha=0.0), "init_alpha", "> 0"),
     (lambda: tqc.Config(critic_hidden_sizes=()), "critic_hidden_sizes", "non-empty"),
     (lambda: ppo.Config(activation="swish"), "activation", "one of")],
)
def test_shared_checks_apply_wherever_a_field_is_declared(make, field, message):
    with pytest.raises(ValueError, match=re.escape(f"{field} must be {message}")):
        make()


def test_inherited_fields_keep_defaults_and_redeclared_ones_their_own_source():
    """An agent inherits the shared fields and redeclares one only where its default or source differs; the
    docs `critix list` shows come from the class that declares the field."""
    assert [m.Config().batch_size for m in (sac, sac_discrete, dqn)] == [256, 64, 32]
    assert tqc.Config().num_critics == 5 and cql.Config().actor_lr == 1e-4
    docs = cli._field_docs(sac_discrete.Config)
    assert "#55 Table 1: 64" in docs["batch_size"] and docs["gamma"] == "Discount factor."
    assert "authors' code" in cli._field_docs(tqc.Config)["hidden_sizes"]


def test_with_new_critics_moves_the_target_critics_and_counts_the_step():
    state = sac_discrete.State(
        actor_params={"w": jnp.array(0.0)}, actor_opt_state=(), critic_params={"w": jnp.array(1.0)},
        critic_opt_state=(), target_critic_params={"w": jnp.array(0.0)}, log_alpha=jnp.array(0.0),
        alpha_opt_state=(), steps=jnp.array(3), num_actions=2,
    )
    new = common.with_new_critics(state, {"w": jnp.array(2.0)}, ("opt",), 0.25, log_alpha=jnp.array(-1.0))
    np.testing.assert_allclose(new.target_critic_params["w"], 0.5)  # 0.25 * 2 + 0.75 * 0
    assert (float(new.critic_params["w"]), new.critic_opt_state, int(new.steps)) == (2.0, ("opt",), 4)
    assert float(new.log_alpha) == -1.0
    assert new.actor_params is state.actor_params


def test_fresh_actor_critic_copies_the_critics_into_distinct_target_buffers():
    tx = optax.sgd(0.1)
    critic = {"w": jnp.ones(2)}
    fields = common.fresh_actor_critic({"a": jnp.zeros(1)}, tx, critic, tx)
    assert set(fields) == {"actor_params", "actor_opt_state", "critic_params", "critic_opt_state",
                           "target_critic_params"}
    np.testing.assert_array_equal(fields["target_critic_params"]["w"], critic["w"])
    assert fields["target_critic_params"]["w"] is not critic["w"]


@pytest.mark.parametrize(
    "check,space,match",
    [(common.check_box_actions, gym.spaces.Discrete(3), "sac needs a continuous \\(Box\\) action space.*dqn"),
     (common.check_discrete_actions, gym.spaces.Box(-1.0, 1.0, (2,), np.float32),
      "sac needs a discrete action space.*continuous-control algorithm"),
     (common.check_discrete_actions, gym.spaces.Discrete(3, start=1), "starting at 0, got start=1")],
)
def test_action_space_checks_name_the_way_out(check, space, match):
    with pytest.raises(CritixError, match=match):
        check("sac", space)
