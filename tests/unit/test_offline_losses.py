"""Offline value losses against hand-computed values, eagerly, under jit and under vmap (the CQL penalty and the
advantage weights are in test_policy_losses.py)."""

from __future__ import annotations

import math
from functools import partial

import jax.numpy as jnp
import numpy as np
import pytest

from critix.agents import cql, iql
from critix.values import losses

DIFFS = [jnp.array([-2.0, -0.5, 0.0, 1.0]), jnp.array([3.0, -1.0, 0.5, 2.0])]


def test_expectile_weights_positive_and_negative_errors(jit_vmap_check):
    # tau = 0.7: diff > 0 -> 0.7 diff^2, diff < 0 -> 0.3 diff^2
    expected = [jnp.array([0.3 * 4, 0.3 * 0.25, 0.0, 0.7]), jnp.array([0.7 * 9, 0.3, 0.7 * 0.25, 0.7 * 4])]
    jit_vmap_check(partial(losses.expectile, expectile=0.7), [(d,) for d in DIFFS], expected)


def test_expectile_half_is_mean_regression():
    np.testing.assert_allclose(losses.expectile(DIFFS[0], 0.5), 0.5 * DIFFS[0] ** 2)


def test_gumbel_loss_hand_computed(jit_vmap_check):
    def reference(diff: np.ndarray, beta: float, clip: float) -> np.ndarray:
        z = np.minimum(diff / beta, clip)
        scale = max(z.max(), -1.0)
        return np.exp(z - scale) - (z + 1.0) * np.exp(-scale)

    expected = [jnp.asarray(reference(np.asarray(d), 2.0, 1.2)) for d in DIFFS]
    jit_vmap_check(partial(losses.gumbel, beta=2.0, max_clip=1.2), [(d,) for d in DIFFS], expected, rtol=1e-5)
    # Unscaled (max z = -1 -> scale -1 ... here: one element, z = 0 -> scale 0): exp(0) - 0 - 1 = 0.
    np.testing.assert_allclose(losses.gumbel(jnp.array([0.0]), 1.0), [0.0], atol=1e-7)
    # A single z = 1 (scale 1): exp(0) - 2 exp(-1).
    np.testing.assert_allclose(losses.gumbel(jnp.array([2.0]), 2.0), [1.0 - 2.0 / math.e], rtol=1e-6)


def test_gumbel_minimiser_is_a_soft_maximum():
    """argmin_v mean(exp((q - v)/b) - (q - v)/b - 1) = b log mean exp(q / b) (XQL Eq. 9)."""
    q, beta = jnp.array([0.0, 1.0, 3.0]), 1.0
    grid = jnp.linspace(0.0, 3.0, 3001)
    loss = jnp.stack([losses.gumbel(q - v, beta, None).mean() * jnp.exp(jnp.max(jnp.minimum((q - v) / beta, 1e9)))
                      for v in grid[::10]])
    best = float(grid[::10][jnp.argmin(loss)])
    assert best == pytest.approx(float(beta * jnp.log(jnp.mean(jnp.exp(q / beta)))), abs=0.02)


def test_chi_square_and_total_variation_duals(jit_vmap_check):
    lam = 0.8
    def chi(d: float) -> float:
        return lam * max(d + d * d / 4.0, 0.0) - (1 - lam) * d

    def tv(d: float) -> float:
        return lam * max(d, 0.0) - (1 - lam) * d

    for fn, ref in ((losses.chi_square_dual, chi), (losses.total_variation_dual, tv)):
        expected = [jnp.array([ref(float(x)) for x in d]) for d in DIFFS]
        jit_vmap_check(partial(fn, temperature=lam), [(d,) for d in DIFFS], expected, rtol=1e-6)
    # chi-square's f*_p is zero below -4 and between -4 and 0 (max(y + y^2/4, 0)): only -(1 - lam) y remains there.
    np.testing.assert_allclose(losses.chi_square_dual(jnp.array([-2.0, -5.0]), 1.0), [0.0, 1.25])


@pytest.mark.parametrize("name,loss", [("expectile", "expectile"), ("gumbel", "gumbel"),
                                       ("chi_square", "chi_square_dual"), ("total_variation", "total_variation_dual")])
def test_iql_module_dispatches_the_configured_value_loss(name, loss):
    cfg = iql.Config(value_loss=name, value_temperature=0.9)
    d = DIFFS[1]
    want = {"expectile": lambda: losses.expectile(d, cfg.expectile),
            "gumbel": lambda: losses.gumbel(d, 0.9, cfg.gumbel_max_clip),
            "chi_square_dual": lambda: losses.chi_square_dual(d, 0.9),
            "total_variation_dual": lambda: losses.total_variation_dual(d, 0.9)}[loss]()
    np.testing.assert_allclose(iql.value_loss(cfg, d), want)


def test_value_loss_configs_are_validated():
    with pytest.raises(ValueError, match="value_loss"):
        iql.Config(value_loss="huber")
    with pytest.raises(ValueError, match="expectile"):
        iql.Config(expectile=1.0)
    with pytest.raises(ValueError, match="value_temperature"):
        iql.Config.fdvl(value_temperature=2.0)
    with pytest.raises(ValueError, match="cql_weight"):
        cql.Config(cql_weight=-1.0)
