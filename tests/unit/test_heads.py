"""Distributional and classification value heads against hand-computed cases, eagerly, under jit and vmap.

Every head keeps the one interface (value / target / loss, `select_min`); these tests check what each head's
target means: a two-hot or HL-Gauss target's value recovers the scalar target, the C51 projection conserves
probability mass and matches Bellemare et al.'s worked split between neighbouring atoms, and the quantile Huber
loss has the asymmetric gradient of quantile regression.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from critix.values import heads

DISTRIBUTIONAL = ["c51", "quantile", "hl-gauss", "two-hot"]


def make(name: str) -> heads.ValueHead:
    return heads.make_head(name, v_min=-10.0, v_max=10.0, num_bins=11) if name != "quantile" else heads.make_head(
        name, num_bins=11)


# --- C51 ---------------------------------------------------------------------------------------------------


def test_c51_projection_hand_values(jit_vmap_check):
    head = heads.CategoricalHead(v_min=0.0, v_max=4.0, num_bins=5)  # atoms 0 1 2 3 4
    probs = jnp.array([0.0, 1.0, 0.0, 0.0, 0.0])  # all mass on z = 1
    # r = 0.5, discount 1: Tz = 1.5 -> half on atom 1, half on atom 2
    # r = 1, discount 0.5: Tz = 1.5 for z=1 too. r = 10: clipped to 4. Terminal (discount 0), r = 2.25: 3/4 on 2.
    cases = [(jnp.array([0.5, 1.0]), jnp.array([1.0, 0.5]), jnp.stack([probs, probs])),
             (jnp.array([10.0, 2.25]), jnp.array([1.0, 0.0]), jnp.stack([probs, probs]))]
    expected = [jnp.array([[0, 0.5, 0.5, 0, 0], [0, 0.5, 0.5, 0, 0]]),
                jnp.array([[0, 0, 0, 0, 1.0], [0, 0, 0.75, 0.25, 0]])]
    jit_vmap_check(head.project, cases, expected)


def test_c51_projection_conserves_mass_and_shrinks_toward_reward():
    head = heads.CategoricalHead(v_min=-10.0, v_max=10.0, num_bins=51)
    key1, key2, key3 = jax.random.split(jax.random.PRNGKey(0), 3)
    logits = 3.0 * jax.random.normal(key1, (64, 51))
    r = 8.0 * jax.random.normal(key2, (64,))
    discount = jax.random.uniform(key3, (64,))
    target = jax.jit(head.target)(r, discount, logits)
    assert target.shape == (64, 51)
    assert np.all(np.asarray(target) >= 0.0)
    np.testing.assert_allclose(target.sum(-1), 1.0, atol=1e-5)
    # Inside the support the projection preserves the mean: E[target] = r + discount * E[Z] (clipped cases aside).
    want = r + discount * head.value(logits)
    inside = np.asarray(jnp.all(jnp.abs(r[:, None] + discount[:, None] * head.atoms) <= 10.0, axis=-1))
    assert inside.sum() > 10
    got = jnp.sum(target * head.atoms, axis=-1)
    np.testing.assert_allclose(np.asarray(got)[inside], np.asarray(want)[inside], atol=1e-4)


def test_c51_target_of_a_delta_has_that_value():
    """The value of the (log of the) projected target of a terminal reward is that reward: a one-hot/two-hot case."""
    head = heads.CategoricalHead(v_min=-5.0, v_max=5.0, num_bins=11)
    r = jnp.array([-5.0, -2.3, 0.0, 1.0, 4.99])
    target = head.target(r, jnp.zeros(5), jnp.zeros((5, 11)))
    np.testing.assert_allclose(head.value(jnp.log(target + 1e-30)), r, atol=1e-5)


# --- HL-Gauss and two-hot ------------------------------------------------------------------------------------


def test_two_hot_hand_values_and_value_recovers_target(jit_vmap_check):
    head = heads.TwoHotHead(v_min=0.0, v_max=4.0, num_bins=5)
    cases = [(jnp.array([1.25, 4.0, 7.0]),), (jnp.array([0.0, 2.5, -1.0]),)]
    expected = [jnp.array([[0, 0.75, 0.25, 0, 0], [0, 0, 0, 0, 1], [0, 0, 0, 0, 1]]),
                jnp.array([[1.0, 0, 0, 0, 0], [0, 0, 0.5, 0.5, 0], [1.0, 0, 0, 0, 0]])]
    jit_vmap_check(head.histogram, cases, expected)
    y = jnp.linspace(0.0, 4.0, 17)
    np.testing.assert_allclose(head.value(jnp.log(head.histogram(y) + 1e-30)), y, atol=1e-5)


def test_hl_gauss_histogram_is_a_distribution_whose_value_recovers_the_target(jit_vmap_check):
    head = heads.HLGaussHead(v_min=-10.0, v_max=10.0, num_bins=21)  # bin width 20/21, sigma 0.75 width
    y = jnp.array([-3.3, 0.0, 0.4, 2.0, 6.1])
    (probs,) = jit_vmap_check(head.histogram, [(y,), (-y,)])[:1]
    np.testing.assert_allclose(probs.sum(-1), 1.0, atol=1e-5)
    assert np.all(np.asarray(probs) >= 0.0)
    # A Gaussian well inside the range: the histogram mean is y (discretisation error << a bin width).
    np.testing.assert_allclose(jnp.sum(probs * head.centers, -1), y, atol=2e-3 * head.bin_width)
    np.testing.assert_allclose(head.value(jnp.log(probs)), y, atol=2e-3 * head.bin_width)
    # Hand value: y at a bin centre puts Phi(0.5/0.75) - Phi(-0.5/0.75) = 0.495 of the mass in that bin.
    centre = head.histogram(head.centers[10:11])[0]
    np.testing.assert_allclose(centre[10], 0.4950, atol=1e-3)
    np.testing.assert_allclose(centre[9], centre[11], atol=1e-6)


def test_hl_gauss_clips_out_of_range_targets_without_nan():
    head = heads.HLGaussHead(v_min=-1.0, v_max=1.0, num_bins=10)
    probs = head.histogram(jnp.array([-1e6, 1e6, jnp.inf]))
    assert np.all(np.isfinite(np.asarray(probs)))
    np.testing.assert_allclose(probs.sum(-1), 1.0, atol=1e-5)
    assert probs[0, 0] > probs[0, 1] and probs[1, -1] > probs[1, -2]


@pytest.mark.parametrize("name", ["c51", "hl-gauss", "two-hot"])
def test_classification_loss_is_minimised_by_the_target(name):
    """Cross-entropy: its gradient at logits = log(target) is zero, and softmax(logits) -> target by descent."""
    head = make(name)
    target = head.target(jnp.array([3.2, -4.0]), jnp.array([0.0, 0.0]), jnp.zeros((2, 11)))
    grad = jax.grad(lambda o: head.loss(o, target).sum())(jnp.log(target + 1e-12))
    np.testing.assert_allclose(grad, 0.0, atol=1e-5)
    g0 = jax.grad(lambda o: head.loss(o, target).sum())(jnp.zeros((2, 11)))
    np.testing.assert_allclose(g0, jax.nn.softmax(jnp.zeros((2, 11))) - target, atol=1e-6)


# --- quantile ------------------------------------------------------------------------------------------------


def test_quantile_loss_hand_values(jit_vmap_check):
    head = heads.QuantileHead(num_bins=2)  # taus 0.25, 0.75
    # theta = [0, 0], one target atom set [1, -3]: u = [[1, -3], [1, -3]] per quantile row.
    # huber(1) = 0.5, huber(-3) = 2.5. Row tau=0.25: (0.25*0.5 + 0.75*2.5)/2 = 1.0; row 0.75: (0.75*0.5+0.25*2.5)/2 = 0.5
    cases = [(jnp.zeros((1, 2)), jnp.array([[1.0, -3.0]]))]
    jit_vmap_check(head.loss, cases * 2, [jnp.array([1.5])] * 2)


def test_quantile_loss_gradient_is_the_asymmetric_quantile_step():
    """Far from the target (|u| > kappa) d loss / d theta_i = (1{u < 0} - tau_i), the quantile-regression gradient."""
    head = heads.QuantileHead(num_bins=4)
    theta = jnp.array([[-50.0, -50.0, 50.0, 50.0]])
    target = jnp.zeros((1, 1)).repeat(4, axis=-1)
    grad = jax.grad(lambda t: head.loss(t, target).sum())(theta)
    taus = np.array([0.125, 0.375, 0.625, 0.875])
    np.testing.assert_allclose(grad[0], [-taus[0], -taus[1], 1 - taus[2], 1 - taus[3]], atol=1e-6)
    # Gradient descent on the loss finds the quantiles of the target atoms (here uniform on 0..99).
    samples = jnp.arange(100.0)[None]
    theta = jnp.zeros((1, 4))
    step = jax.jit(lambda t: t - 2.0 * jax.grad(lambda x: head.loss(x, samples).sum())(t))
    for _ in range(400):
        theta = step(theta)
    np.testing.assert_allclose(theta[0], np.quantile(np.arange(100.0), taus), atol=1.5)


def test_quantile_target_and_value(jit_vmap_check):
    head = heads.QuantileHead(num_bins=3)
    out_t = jnp.array([[1.0, 2.0, 6.0]])
    jit_vmap_check(head.target, [(jnp.array([1.0]), jnp.array([0.5]), out_t)], [jnp.array([[1.5, 2.0, 4.0]])])
    np.testing.assert_allclose(head.value(out_t), [3.0])


# --- all heads -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", DISTRIBUTIONAL)
def test_head_interface_shapes_jit_vmap_and_select_min(name, jit_vmap_check):
    head = make(name)
    assert head.num_outputs == 11
    k1, k2, k3 = jax.random.split(jax.random.PRNGKey(1), 3)
    outs = jax.random.normal(k1, (2, 4, 11))  # [E, B, K]
    r, d = jax.random.normal(k2, (4,)), jnp.full((4,), 0.9)

    def target_and_loss(outs, r, d):
        target = head.target(r, d, heads.select_min(head, outs))
        return target, head.loss(outs, target), head.value(outs)

    target, loss, value = jit_vmap_check(target_and_loss, [(outs, r, d), (-outs, r + 1.0, d)], rtol=1e-5,
                                         atol=1e-5)[0]
    assert target.shape == (4, 11) and loss.shape == (2, 4) and value.shape == (2, 4)
    assert np.all(np.isfinite(np.asarray(loss)))
    # select_min kept the ensemble member with the lower value per sample
    chosen = head.value(heads.select_min(head, outs))
    np.testing.assert_allclose(chosen, jnp.min(value, axis=0), rtol=1e-6)
    # no gradient flows into the bootstrap outputs
    grad = jax.grad(lambda o: head.target(r, d, o).sum())(outs[0])
    np.testing.assert_array_equal(grad, 0.0)


def test_head_config_builds_the_head_it_names():
    cfg = heads.HeadConfig("hl-gauss", v_min=-3.0, v_max=7.0, num_bins=5, hl_gauss_sigma=0.5)
    assert heads.from_config(cfg) == cfg.build() == heads.HLGaussHead(-3.0, 7.0, 5, 0.5)
    assert dataclasses.replace(cfg, critic_head="quantile").build() == heads.QuantileHead(num_bins=5)
    assert dataclasses.replace(cfg, critic_head="scalar").build() == heads.ScalarHead()
    assert dataclasses.replace(cfg, critic_head="scalar", scalar_loss="huber").build() == heads.ScalarHead("huber")
    with pytest.raises(ValueError, match="unknown critic head 'gauss'"):
        heads.HeadConfig("gauss")


@pytest.mark.parametrize("kwargs,match", [(dict(v_min=1.0, v_max=1.0), "v_min"), (dict(num_bins=1), "num_bins")])
@pytest.mark.parametrize("name", ["c51", "hl-gauss", "two-hot"])
def test_invalid_supports_raise(name, kwargs, match):
    with pytest.raises(ValueError, match=match):
        heads.make_head(name, **kwargs)


def test_sac_and_td3_take_any_head_by_config():
    from critix.agents import sac, td3

    cfg = sac.Config(value_head=heads.HeadConfig("hl-gauss", v_min=-100.0, v_max=100.0))
    assert cfg.head == heads.HLGaussHead(-100.0, 100.0, 101, 0.75)
    assert td3.Config(value_head=heads.HeadConfig("c51", num_bins=21)).head.num_outputs == 21
    with pytest.raises(ValueError, match="v_min"):
        sac.Config(value_head=heads.HeadConfig("two-hot", v_min=5.0, v_max=0.0))
