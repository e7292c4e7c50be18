"""Value building blocks against hand-computed values, eagerly, under jit and under vmap (rlax style)."""

from __future__ import annotations

import dataclasses
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from critix.values import heads, losses, targets


# --- targets ---------------------------------------------------------------------------------------------


def test_discount_stops_only_on_termination(jit_vmap_check):
    terminated_t = [jnp.array([0.0, 1.0, 0.0]), jnp.array([1.0, 1.0, 0.0]), jnp.array([0.0, 0.0, 0.0])]
    expected = [jnp.array([0.9, 0.0, 0.9]), jnp.array([0.0, 0.0, 0.9]), jnp.array([0.9, 0.9, 0.9])]
    jit_vmap_check(partial(targets.discount, 0.9), [(t,) for t in terminated_t], expected)


def test_discount_accepts_boolean_flags():
    out = targets.discount(0.5, jnp.array([True, False]))
    np.testing.assert_allclose(out, [0.0, 0.5])
    assert out.dtype == jnp.float32


def test_truncated_transition_still_bootstraps(transition_batch):
    """A time-limit truncation is not a termination: its target keeps gamma * v(next_obs)."""
    batch = dataclasses.replace(
        transition_batch,
        terminated=jnp.array([0.0, 0.0, 1.0, 1.0]),
        truncated=jnp.array([0.0, 1.0, 0.0, 1.0]),
        reward=jnp.array([1.0, 1.0, 1.0, 1.0]),
    )
    v_t = jnp.array([10.0, 10.0, 10.0, 10.0])
    target = targets.td_target(batch.reward, targets.discount(0.9, batch.terminated), v_t)
    np.testing.assert_allclose(target, [10.0, 10.0, 1.0, 1.0])


def test_td_target_hand_values(jit_vmap_check):
    cases = [
        (jnp.array([1.0, 0.0]), jnp.array([0.9, 0.0]), jnp.array([2.0, 5.0])),
        (jnp.array([-1.0, 2.0]), jnp.array([0.5, 0.99]), jnp.array([4.0, -1.0])),
    ]
    expected = [jnp.array([2.8, 0.0]), jnp.array([1.0, 2.0 - 0.99])]
    jit_vmap_check(targets.td_target, cases, expected)


def test_td_target_has_no_gradient_into_bootstrap():
    grad_v = jax.grad(lambda v: targets.td_target(1.0, 0.9, v).sum())(jnp.array([1.0, 2.0]))
    np.testing.assert_array_equal(grad_v, [0.0, 0.0])
    grad_r = jax.grad(lambda r: targets.td_target(r, 0.9, jnp.ones(2)).sum())(jnp.array([1.0, 2.0]))
    np.testing.assert_array_equal(grad_r, [1.0, 1.0])


# --- losses ----------------------------------------------------------------------------------------------


def test_squared_error_hand_values(jit_vmap_check):
    cases = [
        (jnp.array([3.0, 0.0, -1.0]), jnp.array([1.0, 0.0, 1.0])),
        (jnp.array([0.5, 2.0, 1.0]), jnp.zeros(3)),
    ]
    expected = [jnp.array([2.0, 0.0, 2.0]), jnp.array([0.125, 2.0, 0.5])]
    jit_vmap_check(losses.squared_error, cases, expected)


def test_huber_hand_values(jit_vmap_check):
    # delta 1: |e| <= 1 -> 0.5 e^2; |e| > 1 -> 0.5 + (|e| - 1)
    cases = [
        (jnp.array([0.5, 2.0, -3.0, 1.0]), jnp.zeros(4)),
        (jnp.array([1.0, 1.0, 1.0, 1.0]), jnp.array([1.0, 0.0, 2.0, 11.0])),
    ]
    expected = [jnp.array([0.125, 1.5, 2.5, 0.5]), jnp.array([0.0, 0.5, 0.5, 9.5])]
    jit_vmap_check(losses.huber, cases, expected)


def test_huber_delta_hand_values(jit_vmap_check):
    # delta 2: |e| = 3 -> 0.5 * 4 + 2 * 1 = 4; |e| = 1 -> 0.5; |e| = 2 -> 2
    cases = [(jnp.array([3.0, 1.0, -2.0]), jnp.zeros(3))]
    expected = [jnp.array([4.0, 0.5, 2.0])]
    jit_vmap_check(partial(losses.huber, delta=2.0), cases * 2, expected * 2)


def test_huber_gradient_is_clipped_error():
    prediction = jnp.array([0.5, 3.0, -4.0, 0.0])
    grad = jax.grad(lambda p: losses.huber(p, jnp.zeros(4)).sum())(prediction)
    np.testing.assert_allclose(grad, [0.5, 1.0, -1.0, 0.0])


def test_huber_equals_squared_error_inside_delta():
    p = jnp.linspace(-0.9, 0.9, 7)
    np.testing.assert_allclose(losses.huber(p, 0.0), losses.squared_error(p, 0.0), rtol=1e-6)


# --- heads -----------------------------------------------------------------------------------------------


def test_scalar_head_value_target_loss(jit_vmap_check):
    head = heads.ScalarHead()
    assert head.num_outputs == 1
    out_t = jnp.array([[2.0], [5.0]])  # [B, K=1]
    r_t, discount_t = jnp.array([1.0, 0.0]), jnp.array([0.9, 0.0])
    np.testing.assert_allclose(head.value(out_t), [2.0, 5.0])
    jit_vmap_check(head.target, [(r_t, discount_t, out_t), (r_t + 1, discount_t, -out_t)],
                   [jnp.array([2.8, 0.0]), jnp.array([2.0 - 1.8, 1.0])])
    out_tm1, target = jnp.array([[3.0], [0.0]]), jnp.array([2.8, 0.0])
    jit_vmap_check(head.loss, [(out_tm1, target)], [jnp.array([0.5 * 0.2**2, 0.0])], atol=1e-6)


def test_scalar_head_huber_loss(jit_vmap_check):
    head = heads.ScalarHead(loss_type="huber", huber_delta=1.0)
    jit_vmap_check(head.loss, [(jnp.array([[3.0], [0.5]]), jnp.array([0.0, 0.0]))], [jnp.array([2.5, 0.125])])


def test_scalar_head_target_blocks_gradient():
    head = heads.ScalarHead()
    grad = jax.grad(lambda o: head.target(jnp.ones(2), jnp.full(2, 0.9), o).sum())(jnp.ones((2, 1)))
    np.testing.assert_array_equal(grad, np.zeros((2, 1)))


def test_invalid_heads_raise():
    with pytest.raises(ValueError, match="loss_type"):
        heads.ScalarHead(loss_type="l1")
    with pytest.raises(ValueError, match="unknown critic head"):
        heads.make_head("nope")
    assert isinstance(heads.make_head("scalar"), heads.ScalarHead)


def test_select_min_picks_per_sample_minimum(jit_vmap_check):
    head = heads.ScalarHead()
    outs = jnp.array([[[1.0], [5.0], [-2.0], [0.0]],
                      [[2.0], [3.0], [-1.0], [0.0]],
                      [[0.5], [4.0], [-3.0], [7.0]]])  # [E=3, B=4, K=1]
    expected = jnp.array([[0.5], [3.0], [-3.0], [0.0]])
    out = jit_vmap_check(partial(heads.select_min, head), [(outs,), (-outs,)],
                         [expected, jnp.array([[-2.0], [-5.0], [1.0], [-7.0]])])
    assert out[0].shape == (4, 1)
    np.testing.assert_allclose(out[0][:, 0], jnp.min(outs[..., 0], axis=0))


@dataclasses.dataclass(frozen=True)
class _MeanHead:
    """A multi-output head whose value is the mean of its K outputs (stands in for distributional heads)."""

    num_outputs: int = 3

    def value(self, out):
        return out.mean(axis=-1)


def test_select_min_keeps_whole_output_of_the_lowest_member(jit_vmap_check):
    outs = jnp.array([[[0.0, 0.0, 9.0], [1.0, 1.0, 1.0]],
                      [[1.0, 1.0, 1.0], [-5.0, 0.0, 8.0]]])  # [E=2, B=2, K=3]; values [[3, 1], [1, 1]]
    expected = jnp.array([[1.0, 1.0, 1.0], [1.0, 1.0, 1.0]])
    # sample 1 ties (1 vs 1): argmin takes the first member.
    jit_vmap_check(partial(heads.select_min, _MeanHead()), [(outs,)], [expected])
    outs2 = outs.at[1, 1].set(jnp.array([-5.0, 0.0, 4.0]))  # value -1/3 < 1
    expected2 = jnp.array([[1.0, 1.0, 1.0], [-5.0, 0.0, 4.0]])
    jit_vmap_check(partial(heads.select_min, _MeanHead()), [(outs2,)], [expected2])
