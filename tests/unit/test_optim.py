"""The one optimiser factory: global-norm clipping (never element-wise), schedules, AdamW, config checks."""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from critix.optim import OptimizerConfig, make_optimizer, make_schedule

# With Adam's eps far above |g|, one Adam step is -lr * g_hat / (|g_hat| + eps) ~= -(lr / eps) * g_hat:
# the update is proportional to the (possibly clipped) gradient itself, so clipping becomes visible.
LINEAR_ADAM = dict(learning_rate=1e6, eps=1e6)


def _first_update(cfg: OptimizerConfig, grads: dict) -> dict:
    params = jax.tree.map(jnp.zeros_like, grads)
    tx = make_optimizer(cfg)
    updates, _ = tx.update(grads, tx.init(params), params)
    return updates


GRADS_NORM_10 = {"a": jnp.array([6.0, 0.0]), "b": jnp.array([[8.0]])}  # global norm sqrt(36 + 64) = 10


def test_clip_by_global_norm_scales_the_whole_gradient():
    updates = _first_update(OptimizerConfig(max_grad_norm=1.0, **LINEAR_ADAM), GRADS_NORM_10)
    # clipped gradient g * 1 / 10 = {a: [0.6, 0], b: [[0.8]]}; Adam step ~= -g_clipped
    np.testing.assert_allclose(updates["a"], [-0.6, 0.0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(updates["b"], [[-0.8]], rtol=1e-5)
    norm = optax.tree.norm(updates)
    np.testing.assert_allclose(norm, 1.0, rtol=1e-5)


def test_clipping_is_not_element_wise():
    """Element-wise clipping (optax.clip, a silent bug in a peer) gives [-1, 0], [[-1]]: direction lost."""
    updates = _first_update(OptimizerConfig(max_grad_norm=1.0, **LINEAR_ADAM), GRADS_NORM_10)
    elementwise = {"a": jnp.array([-1.0, 0.0]), "b": jnp.array([[-1.0]])}
    assert not np.allclose(updates["b"], elementwise["b"], atol=0.05)
    ratio = np.asarray(updates["b"])[0, 0] / np.asarray(updates["a"])[0]
    np.testing.assert_allclose(ratio, 8.0 / 6.0, rtol=1e-5)  # the gradient's direction is kept


def test_small_gradients_are_not_clipped():
    grads = {"a": jnp.array([0.3, 0.0]), "b": jnp.array([[0.4]])}  # norm 0.5 < 1
    updates = _first_update(OptimizerConfig(max_grad_norm=1.0, **LINEAR_ADAM), grads)
    np.testing.assert_allclose(updates["a"], [-0.3, 0.0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(updates["b"], [[-0.4]], rtol=1e-5)


def test_no_clipping_when_disabled():
    updates = _first_update(OptimizerConfig(max_grad_norm=0.0, **LINEAR_ADAM), GRADS_NORM_10)
    np.testing.assert_allclose(updates["a"], [-6.0, 0.0], rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(updates["b"], [[-8.0]], rtol=1e-4)


def test_adam_first_step_hand_values():
    """With the default eps, Adam's first step is -lr * sign(g) (bias-corrected m / sqrt(v) = g / |g|)."""
    updates = _first_update(OptimizerConfig(learning_rate=0.1), {"a": jnp.array([3.0, -0.5, 0.0])})
    np.testing.assert_allclose(updates["a"], [-0.1, 0.1, 0.0], rtol=1e-5, atol=1e-7)


def test_weight_decay_is_decoupled():
    """AdamW with zero gradient: update = -lr * weight_decay * param (Loshchilov & Hutter 2019)."""
    tx = make_optimizer(OptimizerConfig(learning_rate=0.1, weight_decay=0.5))
    params = {"w": jnp.array([2.0, -4.0])}
    updates, _ = tx.update({"w": jnp.zeros(2)}, tx.init(params), params)
    np.testing.assert_allclose(updates["w"], [-0.1, 0.2], rtol=1e-5)
    plain = make_optimizer(OptimizerConfig(learning_rate=0.1))
    updates, _ = plain.update({"w": jnp.zeros(2)}, plain.init(params), params)
    np.testing.assert_allclose(updates["w"], [0.0, 0.0])


def test_optimizer_step_is_the_same_under_jit_and_vmap(jit_vmap_check):
    cfg = OptimizerConfig(learning_rate=0.01, max_grad_norm=1.0, schedule="cosine", total_steps=10)
    tx = make_optimizer(cfg)

    def two_steps(params, grads):
        state = tx.init(params)
        for _ in range(2):
            updates, state = tx.update(grads, state, params)
            params = optax.apply_updates(params, updates)
        return params

    cases = [({"w": jnp.full(3, float(s))}, {"w": jnp.array([3.0, -4.0, 0.5 * s])}) for s in range(3)]
    jit_vmap_check(two_steps, cases, rtol=1e-5, atol=1e-6)


# --- schedules -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "cfg,steps,expected",
    [
        (OptimizerConfig(learning_rate=0.5), [0, 10, 1000], [0.5, 0.5, 0.5]),
        (OptimizerConfig(learning_rate=1.0, schedule="linear", total_steps=10), [0, 5, 10, 20],
         [1.0, 0.5, 0.0, 0.0]),
        (OptimizerConfig(learning_rate=1.0, schedule="cosine", total_steps=10), [0, 5, 10, 20],
         [1.0, 0.5, 0.0, 0.0]),
        (OptimizerConfig(learning_rate=1.0, schedule="cosine", total_steps=12), [3],
         [0.5 * (1 + math.cos(math.pi / 4))]),
        (OptimizerConfig(learning_rate=1.0, schedule="linear", total_steps=10, warmup_steps=4),
         [0, 2, 4, 7, 10], [0.0, 0.5, 1.0, 0.5, 0.0]),
        (OptimizerConfig(learning_rate=2.0, schedule="constant", warmup_steps=4), [0, 1, 4, 100],
         [0.0, 0.5, 2.0, 2.0]),
        (OptimizerConfig(learning_rate=1.0, schedule="cosine", total_steps=14, warmup_steps=4),
         [2, 4, 9, 14], [0.5, 1.0, 0.5, 0.0]),
    ],
    ids=["constant", "linear", "cosine", "cosine-quarter", "warmup-linear", "warmup-constant",
         "warmup-cosine"],
)
def test_schedule_values(cfg, steps, expected, jit_vmap_check):
    schedule = make_schedule(cfg)
    cases = [(jnp.asarray(s),) for s in steps]
    jit_vmap_check(lambda s: jnp.asarray(schedule(s), jnp.float32), cases, [jnp.float32(e) for e in expected],
                   atol=1e-6)


def test_optimizer_follows_its_schedule():
    """Adam steps with constant gradient 1 and eps >> 1 are ~ -lr_t / eps: they trace the schedule."""
    cfg = OptimizerConfig(learning_rate=1e6, eps=1e6, schedule="linear", total_steps=6, warmup_steps=2)
    tx = make_optimizer(cfg)
    params = jnp.zeros(())
    state = tx.init(params)
    sizes = []
    for _ in range(6):
        updates, state = tx.update(jnp.ones(()), state, params)
        sizes.append(-float(updates))
    np.testing.assert_allclose(sizes, [0.0, 0.5, 1.0, 0.75, 0.5, 0.25], rtol=1e-4, atol=1e-6)


# --- config checks ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides,match",
    [
        (dict(learning_rate=0.0), "learning_rate"),
        (dict(learning_rate=-1e-3), "learning_rate"),
        (dict(learning_rate=float("nan")), "learning_rate"),
        (dict(schedule="exponential"), "schedule"),
        (dict(schedule="linear", total_steps=0), "total_steps"),
        (dict(schedule="cosine"), "total_steps"),
        (dict(max_grad_norm=-1.0), "max_grad_norm"),
        (dict(weight_decay=-0.1), "weight_decay"),
        (dict(warmup_steps=-1), "warmup_steps"),
    ],
)
def test_invalid_optimizer_config_raises(overrides, match):
    with pytest.raises(ValueError, match=match):
        OptimizerConfig(**overrides)
    with pytest.raises(ValueError, match=match):
        dataclasses.replace(OptimizerConfig(), **overrides)


def test_optimizer_config_is_frozen_and_hashable():
    cfg = OptimizerConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.learning_rate = 1.0  # type: ignore[misc]
    assert hash(cfg) == hash(OptimizerConfig())
