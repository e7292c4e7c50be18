"""Networks: MLP torso, critic ensemble and policies (tiny sizes, shared shapes)."""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.scipy.stats import norm

from critix.nets.discrete import CategoricalPolicy as DiscreteCategoricalPolicy
from critix.nets.discrete import DiscreteQNetwork
from critix.nets.ensemble import QEnsemble
from critix.nets.mlp import MLP, activation, flatten_concat, matmul
from critix.nets.policies import (
    LOG_STD_MAX,
    LOG_STD_MIN,
    BoundedGaussianPolicy,
    CategoricalPolicy,
    DeterministicPolicy,
    GaussianPolicy,
    TanhGaussianPolicy,
    tanh_gaussian_mode,
    tanh_gaussian_sample,
)

HIDDEN = (32, 32)
KEY = jax.random.PRNGKey(0)


def _x(batch: int = 8, dim: int = 5, seed: int = 1) -> jax.Array:
    return jax.random.normal(jax.random.PRNGKey(seed), (batch, dim))


# --- MLP -------------------------------------------------------------------------------------------------


def test_mlp_shapes_and_layers():
    x = _x()
    mlp = MLP(HIDDEN, 4)
    params = mlp.init(KEY, x)
    assert mlp.apply(params, x).shape == (8, 4)
    assert sorted(params["params"]) == ["Dense_0", "Dense_1", "Dense_2"]
    assert params["params"]["Dense_0"]["kernel"].shape == (5, 32)
    assert params["params"]["Dense_2"]["kernel"].shape == (32, 4)
    torso = MLP(HIDDEN)  # no output layer: the last hidden activation
    torso_params = torso.init(KEY, x)
    out = torso.apply(torso_params, x)
    assert out.shape == (8, 32)
    assert np.all(np.asarray(out) >= 0.0)  # relu
    assert sorted(torso_params["params"]) == ["Dense_0", "Dense_1"]


def test_mlp_is_the_same_under_jit_and_vmap(jit_vmap_check):
    mlp = MLP(HIDDEN, 4, layer_norm=True)
    params = mlp.init(KEY, _x())
    jit_vmap_check(partial(mlp.apply, params), [(_x(seed=s),) for s in range(3)], rtol=1e-5, atol=1e-5)


def test_mlp_layer_norm_normalises_each_hidden_layer():
    x = 100.0 * _x()  # far from unit scale before normalisation
    mlp = MLP(HIDDEN, 4, layer_norm=True)
    params = mlp.init(KEY, x)
    assert {"LayerNorm_0", "LayerNorm_1"} <= set(params["params"])
    assert "LayerNorm_0" not in MLP(HIDDEN, 4).init(KEY, x)["params"]
    _, state = mlp.apply(params, x, capture_intermediates=True)
    for name in ("LayerNorm_0", "LayerNorm_1"):
        y = np.asarray(state["intermediates"][name]["__call__"][0])
        assert y.shape == (8, 32)
        np.testing.assert_allclose(y.mean(axis=-1), 0.0, atol=1e-4)
        np.testing.assert_allclose(y.var(axis=-1), 1.0, rtol=1e-2)


def test_mlp_dropout_active_only_when_not_deterministic():
    x = _x()
    mlp = MLP(HIDDEN, 4, dropout_rate=0.5)
    params = mlp.init(KEY, x)
    k1, k2 = jax.random.split(jax.random.PRNGKey(7))
    plain = mlp.apply(params, x)  # deterministic=True by default: no dropout, no rng needed
    np.testing.assert_array_equal(mlp.apply(params, x, True, rngs={"dropout": k1}), plain)
    np.testing.assert_array_equal(mlp.apply(params, x, True, rngs={"dropout": k2}), plain)
    drop1 = mlp.apply(params, x, False, rngs={"dropout": k1})
    drop1_again = mlp.apply(params, x, False, rngs={"dropout": k1})
    drop2 = mlp.apply(params, x, False, rngs={"dropout": k2})
    np.testing.assert_array_equal(drop1, drop1_again)  # same key -> same mask
    assert not np.allclose(drop1, drop2)  # different keys -> different masks
    assert not np.allclose(drop1, plain)
    # Without dropout configured, deterministic=False changes nothing.
    no_drop = MLP(HIDDEN, 4)
    p = no_drop.init(KEY, x)
    np.testing.assert_array_equal(no_drop.apply(p, x, False, rngs={"dropout": k1}), no_drop.apply(p, x))


def test_mlp_dropout_zeroes_about_rate_of_hidden_units():
    x = _x(batch=32)
    mlp = MLP((64,), None, activation="tanh", dropout_rate=0.5)
    params = mlp.init(KEY, x)
    out = np.asarray(mlp.apply(params, x, False, rngs={"dropout": jax.random.PRNGKey(3)}))
    zero_fraction = np.mean(out == 0.0)
    assert 0.35 < zero_fraction < 0.65


def test_activation_lookup_and_flatten_concat():
    np.testing.assert_allclose(activation("relu")(jnp.array([-1.0, 2.0])), [0.0, 2.0])
    with pytest.raises(KeyError):
        activation("nope")
    out = flatten_concat(jnp.ones((4, 3)), jnp.zeros((4, 2)))
    assert out.shape == (4, 5)
    np.testing.assert_array_equal(out[:, 3:], 0.0)


# --- QEnsemble -------------------------------------------------------------------------------------------


def _obs_act(batch: int = 8, seed: int = 2) -> tuple[jax.Array, jax.Array]:
    k1, k2 = jax.random.split(jax.random.PRNGKey(seed))
    return jax.random.normal(k1, (batch, 3)), jax.random.uniform(k2, (batch, 2), minval=-1, maxval=1)


@pytest.mark.parametrize("num_critics,num_outputs", [(1, 1), (3, 1), (2, 5)])
def test_q_ensemble_output_shape_and_param_axis(num_critics, num_outputs):
    obs, action = _obs_act()
    critic = QEnsemble(HIDDEN, num_outputs, num_critics=num_critics)
    params = critic.init(KEY, obs, action)
    out = critic.apply(params, obs, action)
    assert out.shape == (num_critics, 8, num_outputs)  # [E, B, K]
    for leaf in jax.tree.leaves(params):
        assert leaf.shape[0] == num_critics  # every parameter has a leading ensemble axis


def test_q_ensemble_members_differ():
    obs, action = _obs_act()
    critic = QEnsemble(HIDDEN, num_critics=3)
    params = critic.init(KEY, obs, action)
    out = np.asarray(critic.apply(params, obs, action))
    (inner,) = params["params"].values()  # the vmapped QNetwork
    kernels = np.asarray(inner["MLP_0"]["Dense_0"]["kernel"])  # [E, O + A, H]
    for i in range(3):
        for j in range(i + 1, 3):
            assert not np.allclose(out[i], out[j])
            assert not np.allclose(kernels[i], kernels[j])


def test_q_ensemble_member_equals_single_q_network():
    """Member e of the ensemble computes exactly a QNetwork with the e-th slice of the parameters."""
    from critix.nets.ensemble import QNetwork

    obs, action = _obs_act()
    critic = QEnsemble(HIDDEN, num_critics=2, layer_norm=True)
    params = critic.init(KEY, obs, action)
    out = critic.apply(params, obs, action)
    (inner,) = params["params"].values()
    single = QNetwork(HIDDEN, 1, layer_norm=True)
    for e in range(2):
        member = {"params": jax.tree.map(lambda x, e=e: x[e], inner)}
        np.testing.assert_allclose(single.apply(member, obs, action), out[e], rtol=1e-5, atol=1e-6)


def test_q_ensemble_under_jit_and_vmap(jit_vmap_check):
    obs, action = _obs_act()
    critic = QEnsemble(HIDDEN, num_critics=2)
    params = critic.init(KEY, obs, action)
    jit_vmap_check(partial(critic.apply, params), [_obs_act(seed=s) for s in range(3)], rtol=1e-5, atol=1e-5)


def test_q_ensemble_dropout_members_use_different_masks():
    obs, action = _obs_act()
    critic = QEnsemble(HIDDEN, num_critics=2, dropout_rate=0.5)
    params = critic.init(KEY, obs, action)
    plain = critic.apply(params, obs, action)
    d1 = critic.apply(params, obs, action, False, rngs={"dropout": jax.random.PRNGKey(1)})
    d2 = critic.apply(params, obs, action, False, rngs={"dropout": jax.random.PRNGKey(2)})
    assert d1.shape == (2, 8, 1)
    assert not np.allclose(d1, d2)
    assert not np.allclose(d1, plain)
    # Identical members with split dropout rngs would still differ: copy member 0's params into member 1.
    same = jax.tree.map(lambda x: jnp.stack([x[0], x[0]]), params)
    out = critic.apply(same, obs, action, False, rngs={"dropout": jax.random.PRNGKey(1)})
    assert not np.allclose(out[0], out[1])
    np.testing.assert_allclose(critic.apply(same, obs, action)[0], critic.apply(same, obs, action)[1])


# --- policies --------------------------------------------------------------------------------------------


def test_tanh_gaussian_policy_shapes_and_log_std_bounds():
    obs = 1000.0 * _x(dim=3)  # extreme inputs push log_std against its clip
    policy = TanhGaussianPolicy(HIDDEN, 2)
    params = policy.init(KEY, obs)
    mean, log_std = policy.apply(params, obs)
    assert mean.shape == log_std.shape == (8, 2)
    assert np.all(np.asarray(log_std) >= LOG_STD_MIN) and np.all(np.asarray(log_std) <= LOG_STD_MAX)


def test_deterministic_policy_shapes_and_bounds():
    obs = 1000.0 * _x(dim=3)
    policy = DeterministicPolicy(HIDDEN, 2)
    params = policy.init(KEY, obs)
    action = np.asarray(policy.apply(params, obs))
    assert action.shape == (8, 2)
    assert np.all(np.abs(action) <= 1.0)


def _param_shapes(variables: dict, prefix: str = "") -> dict[str, tuple[int, ...]]:
    """Parameter path (without `prefix`) -> shape."""
    leaves = jax.tree_util.tree_leaves_with_path(variables["params"])
    return {jax.tree_util.keystr(path).removeprefix(prefix): x.shape for path, x in leaves}


def test_parameter_names_and_shapes_stay_what_checkpoints_hold():
    """Checkpoints store parameters by these names: a refactor of the networks must keep them."""
    obs, action = _x(dim=5), _x(dim=3, seed=2)
    torso = {"['MLP_0']['Dense_0']['kernel']": (5, 32), "['MLP_0']['Dense_0']['bias']": (32,),
             "['MLP_0']['Dense_1']['kernel']": (32, 32), "['MLP_0']['Dense_1']['bias']": (32,)}
    out = {"['MLP_0']['Dense_2']['kernel']": (32, 3), "['MLP_0']['Dense_2']['bias']": (3,)}
    gaussian = {"['Dense_0']['kernel']": (32, 3), "['Dense_0']['bias']": (3,),
                "['Dense_1']['kernel']": (32, 3), "['Dense_1']['bias']": (3,)}
    assert _param_shapes(TanhGaussianPolicy(HIDDEN, 3).init(KEY, obs)) == {**torso, **gaussian}
    assert _param_shapes(DeterministicPolicy(HIDDEN, 3).init(KEY, obs)) == {**torso, **out}
    assert _param_shapes(BoundedGaussianPolicy(HIDDEN, 3).init(KEY, obs)) == {**torso, **out, "['log_std']": (3,)}
    critics = QEnsemble(HIDDEN, 4, num_critics=2).init(KEY, obs, action)
    assert list(critics["params"]) == ["VmapQNetwork_0"]
    assert _param_shapes(critics, "['VmapQNetwork_0']") == {
        "['MLP_0']['Dense_0']['kernel']": (2, 8, 32), "['MLP_0']['Dense_0']['bias']": (2, 32),
        "['MLP_0']['Dense_1']['kernel']": (2, 32, 32), "['MLP_0']['Dense_1']['bias']": (2, 32),
        "['MLP_0']['Dense_2']['kernel']": (2, 32, 4), "['MLP_0']['Dense_2']['bias']": (2, 4)}


def _moderate_mean_log_std(seed: int, batch: int = 8, dim: int = 2) -> tuple[jax.Array, jax.Array]:
    k1, k2 = jax.random.split(jax.random.PRNGKey(seed))
    mean = jax.random.uniform(k1, (batch, dim), minval=-1.0, maxval=1.0)
    log_std = jax.random.uniform(k2, (batch, dim), minval=-1.0, maxval=0.5)
    return mean, log_std


def test_tanh_gaussian_log_prob_matches_change_of_variables():
    """log pi(a) = sum_A [log N(u; mean, std) - log(1 - tanh(u)^2)], a = tanh(u) (SAC Eq. 21)."""
    key = jax.random.PRNGKey(11)
    mean, log_std = _moderate_mean_log_std(3)
    action, log_prob = tanh_gaussian_sample(key, mean, log_std)
    eps = jax.random.normal(key, mean.shape, mean.dtype)  # the same reparameterisation noise
    u = mean + jnp.exp(log_std) * eps
    np.testing.assert_allclose(action, jnp.tanh(u), rtol=1e-6, atol=1e-6)
    expected = jnp.sum(norm.logpdf(u, mean, jnp.exp(log_std)) - jnp.log(1.0 - jnp.tanh(u) ** 2), axis=-1)
    assert log_prob.shape == (8,)
    np.testing.assert_allclose(log_prob, expected, rtol=1e-4, atol=1e-4)
    # The same density, with the Jacobian from autodiff instead of the closed form.
    dtanh = jax.vmap(jax.vmap(jax.grad(jnp.tanh)))(u)
    numeric = jnp.sum(norm.logpdf(u, mean, jnp.exp(log_std)) - jnp.log(dtanh), axis=-1)
    np.testing.assert_allclose(log_prob, numeric, rtol=1e-4, atol=1e-4)


def test_tanh_gaussian_density_integrates_to_one_and_matches_samples():
    """1-D: the densities exp(log pi(a)) the sampler reports integrate to ~1 over (-1, 1) and their running
    integral follows the empirical CDF of the samples (the log-prob is the density of the samples drawn)."""
    n = 4000
    mean, log_std = jnp.full((n, 1), 0.3), jnp.full((n, 1), -0.5)
    action, log_prob = tanh_gaussian_sample(jax.random.PRNGKey(4), mean, log_std)
    order = np.argsort(np.asarray(action[:, 0]))
    a = np.asarray(action[order, 0], np.float64)
    density = np.exp(np.asarray(log_prob[order], np.float64))
    cdf = np.concatenate([[0.0], np.cumsum(0.5 * (density[1:] + density[:-1]) * np.diff(a))])
    np.testing.assert_allclose(cdf[-1], 1.0, atol=0.01)  # tails beyond the extreme samples are tiny
    empirical = (np.arange(n) + 0.5) / n
    assert np.max(np.abs(cdf - empirical)) < 0.03  # Kolmogorov-Smirnov distance


def test_tanh_gaussian_sample_bounds_and_stability():
    mean = jnp.array([[-30.0, 30.0], [0.0, 25.0], [5.0, -5.0]])
    log_std = jnp.array([[2.0, 2.0], [-20.0, -20.0], [0.0, 0.0]])
    for seed in range(3):
        action, log_prob = tanh_gaussian_sample(jax.random.PRNGKey(seed), mean, log_std)
        assert np.all(np.abs(np.asarray(action)) <= 1.0)
        assert np.all(np.isfinite(np.asarray(log_prob)))  # the stable identity, not log(1 - tanh^2) = -inf


def test_tanh_gaussian_sample_keys_and_jit_vmap(jit_vmap_check):
    mean, log_std = _moderate_mean_log_std(5)
    a1, _ = tanh_gaussian_sample(jax.random.PRNGKey(1), mean, log_std)
    a2, _ = tanh_gaussian_sample(jax.random.PRNGKey(2), mean, log_std)
    assert not np.allclose(a1, a2)
    cases = [(jax.random.PRNGKey(s), *_moderate_mean_log_std(s)) for s in range(3)]
    jit_vmap_check(tanh_gaussian_sample, cases, rtol=1e-5, atol=1e-5)


def test_tanh_gaussian_mode_hand_values(jit_vmap_check):
    cases = [(jnp.array([0.0, 1.0, -2.0]),), (jnp.array([100.0, -100.0, 0.5]),)]
    expected = [jnp.array([0.0, 0.7615942, -0.9640276]), jnp.array([1.0, -1.0, 0.46211716])]
    jit_vmap_check(tanh_gaussian_mode, cases, expected)


# --- forward: each acting network's NumPy / jax.numpy transcription against its Flax module -------------------

FORWARD_NETS = {
    "mlp-relu": lambda: MLP(HIDDEN, 4),
    "mlp-layer-norm-gelu": lambda: MLP(HIDDEN, 4, "gelu", layer_norm=True),
    "mlp-torso-silu": lambda: MLP(HIDDEN, None, "silu"),
    "mlp-elu-tanh": lambda: MLP((32,), 3, "elu"),
    "mlp-tanh": lambda: MLP((32,), 3, "tanh"),
    "tanh-gaussian": lambda: TanhGaussianPolicy(HIDDEN, 3),
    "deterministic": lambda: DeterministicPolicy(HIDDEN, 3),
    "bounded-gaussian": lambda: BoundedGaussianPolicy(HIDDEN, 3),
    "gaussian": lambda: GaussianPolicy(HIDDEN, 3, init_log_std=-0.5),
    "categorical": lambda: CategoricalPolicy(HIDDEN, 4),
    "discrete-categorical": lambda: DiscreteCategoricalPolicy(HIDDEN, 4),
    "q-network-c51": lambda: DiscreteQNetwork(HIDDEN, 3, 5),
    "q-network-dueling": lambda: DiscreteQNetwork(HIDDEN, 3, 5, dueling=True),
    "q-network-dueling-no-torso": lambda: DiscreteQNetwork((32,), 3, 1, dueling=True),
    "tanh-gaussian-linear": lambda: TanhGaussianPolicy((), 3),
}


@pytest.mark.parametrize("name", sorted(FORWARD_NETS))
def test_forward_is_the_modules_function_in_numpy_and_jax(name: str) -> None:
    """`forward(np, ...)` equals `apply` within float32 rounding; `forward(jnp, ...)` compiles to the same values;
    with parameters stacked over S = 3 seeds and inputs [S, B, O] it equals the seed-vmapped `apply`."""
    net, x = FORWARD_NETS[name](), _x(seed=2)
    params = net.init(KEY, x)
    p = params["params"]
    want = net.apply(params, x)
    host = net.forward(np, jax.device_get(p), np.asarray(x))
    compiled = jax.jit(lambda p, x: net.forward(jnp, p, x))(p, x)
    for w, h, c in zip(jax.tree.leaves(want), jax.tree.leaves(host), jax.tree.leaves(compiled), strict=True):
        assert isinstance(h, np.ndarray) and h.dtype == np.float32 and h.shape == w.shape
        np.testing.assert_allclose(h, w, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(c, w, rtol=1e-6, atol=1e-6)
    stacked = jax.vmap(lambda k: net.init(k, x))(jax.random.split(KEY, 3))
    xs = jnp.stack([_x(seed=s) for s in range(3)])
    want = jax.vmap(net.apply)(stacked, xs)
    host = net.forward(np, jax.device_get(stacked["params"]), np.asarray(xs))
    for w, h in zip(jax.tree.leaves(want), jax.tree.leaves(host), strict=True):
        np.testing.assert_allclose(h, w, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("features", [(5, 32), (32, 32), (32, 3), (32, 1)])
def test_matmul_gradients_are_autodiffs(features: tuple[int, int]) -> None:
    """`matmul`'s custom backward pass (transposes behind optimisation barriers on CPU) gives the gradients of the
    plain product, alone and vmapped over seeds as the compiled runs call it (to float32 rounding: the dots sum in
    another order)."""
    fan_in, fan_out = features
    x, kernel = _x(8, fan_in), jax.random.normal(KEY, (fan_in, fan_out))
    g = jax.random.normal(jax.random.PRNGKey(3), (8, fan_out))

    def grads(product):
        return jax.grad(lambda x, k: jnp.sum(g * jnp.tanh(product(x, k))), argnums=(0, 1))

    np.testing.assert_array_equal(matmul(x, kernel), jnp.matmul(x, kernel))
    for got, want in zip(jax.jit(grads(matmul))(x, kernel), grads(jnp.matmul)(x, kernel), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    xs, kernels = jnp.stack([x, 2 * x]), jnp.stack([kernel, -kernel])
    vmapped = jax.jit(jax.vmap(grads(matmul)))(xs, kernels)
    for got, want in zip(vmapped, jax.vmap(grads(jnp.matmul))(xs, kernels), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_pixel_q_network_forward_applies_the_module_in_jax_only() -> None:
    net = DiscreteQNetwork((16,), 3, encoder="minatar")
    images = jnp.zeros((2, 10, 10, 4), jnp.uint8)
    params = net.init(KEY, images)
    np.testing.assert_array_equal(net.forward(jnp, params["params"], images), net.apply(params, images))
    with pytest.raises(ValueError, match="no NumPy"):
        net.forward(np, jax.device_get(params["params"]), np.asarray(images))
