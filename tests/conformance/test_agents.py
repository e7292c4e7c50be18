"""One harness every agent in `critix.agents.REGISTRY` passes (a new registry entry is tested automatically).

Each agent runs with its default config shrunk by `dataclasses.replace` (hidden (32, 32), for the critics too
where they have their own sizes, batch 16, buffer 64) on the shared tiny spaces (obs Box (3,), action Box (2,) in
[-2, 2]; Discrete(3) for agents whose module sets `ACTIONS = "discrete"`). Compiled functions are built once per
agent (module-scoped fixture) so the whole harness compiles each agent's update only a handful of times.
"""

from __future__ import annotations

import dataclasses
from functools import partial
from typing import Any

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from critix import cli
from critix.agents import REGISTRY, configs, contract
from critix.train import checkpoint
from critix.types import CritixError, Rollout, Transition

K = 3  # batches per update_many
SEEDS = 3
BATCH = 16
NUM_ACTIONS = 3  # Discrete(3) for discrete-action agents


def is_discrete(name: str) -> bool:
    return getattr(REGISTRY[name].module, "ACTIONS", "continuous") == "discrete"


def small_config(name: str) -> Any:
    cfg = REGISTRY[name].default_config
    # Off-policy agents get a small buffer; on-policy agents (a rollout [T=B, ...] per update) small minibatches.
    # Periodic target networks move every step here, so the harness sees every parameter set change.
    small = {"hidden_sizes": (32, 32), "critic_hidden_sizes": (32, 32), "batch_size": BATCH, "buffer_size": 64,
             "learning_starts": 0, "minibatch_size": BATCH // 4, "num_epochs": 2, "target_update_period": 1}
    fields = {f.name for f in dataclasses.fields(cfg)}  # offline-only agents (bc) have no replay fields
    return dataclasses.replace(cfg, **{k: v for k, v in small.items() if k in fields})


def uses_rewards(h: Any) -> bool:
    """False for agents that learn from (obs, action) only, e.g. behaviour cloning (`USES_REWARDS = False`)."""
    return getattr(h.module, "USES_REWARDS", True)


def random_batches(key: jax.Array, leading: tuple[int, ...], discrete: bool = False) -> Transition:
    """Random transitions [*leading, B, ...] for obs 3 / action 2 (or an index < 3), about a quarter terminal."""
    k1, k2, k3, k4, k5, k6 = jax.random.split(key, 6)
    shape = (*leading, BATCH)
    if discrete:
        action = jax.random.randint(k2, shape, 0, NUM_ACTIONS, jnp.int32)
    else:
        action = jax.random.uniform(k2, (*shape, 2), minval=-1.0, maxval=1.0)
    return Transition(
        obs=jax.random.normal(k1, (*shape, 3)),
        action=action,
        reward=jax.random.normal(k3, shape),
        next_obs=jax.random.normal(k4, (*shape, 3)),
        terminated=(jax.random.uniform(k5, shape) < 0.25).astype(jnp.float32),
        truncated=(jax.random.uniform(k6, shape) < 0.25).astype(jnp.float32),
    )


@dataclasses.dataclass
class Harness:
    name: str
    module: Any
    cfg: Any
    discrete: bool
    obs_space: Any
    act_space: Any
    init: Any  # jit: key -> State
    init_seeds: Any  # jit(vmap(init)): keys [S, 2] -> State with a leading S axis
    update: Any  # jit: (state, batch) -> (state, metrics)
    update_many: Any  # jit: (state, batches [K, B, ...]) -> (state, metrics [K])
    act: Any  # jit: (state, obs, key, deterministic static) -> actions
    state: Any  # freshly initialised from PRNGKey(0)
    batch: Transition  # [B, ...]
    batches: Transition  # [K, B, ...]
    data: Any  # batch -> what `update` takes (a Rollout for on-policy agents)


@pytest.fixture(scope="module", params=sorted(REGISTRY))
def h(request, obs_space, act_space) -> Harness:
    name = request.param
    module, cfg = REGISTRY[name].module, small_config(name)
    discrete = is_discrete(name)
    if discrete:
        act_space = gym.spaces.Discrete(NUM_ACTIONS)

    def init(key: jax.Array) -> Any:
        return module.init(cfg, key, obs_space, act_space)

    init_jit = jax.jit(init)
    batches = random_batches(jax.random.PRNGKey(42), (K,), discrete)

    def data(batch: Transition) -> Any:
        """What `update` takes: a batch, or for on-policy agents a `Rollout` (here T = B steps of one env)."""
        return Rollout(batch) if contract.kind(module) == "on-policy" else batch
    return Harness(
        name=name,
        module=module,
        cfg=cfg,
        discrete=discrete,
        obs_space=obs_space,
        act_space=act_space,
        init=init_jit,
        init_seeds=jax.jit(jax.vmap(init)),
        update=jax.jit(lambda state, batch: module.update(cfg, state, data(batch))),
        update_many=jax.jit(lambda state, batches: module.update_many(cfg, state, data(batches))),
        act=jax.jit(partial(module.act, cfg), static_argnums=3),
        state=init_jit(jax.random.PRNGKey(0)),
        batch=jax.tree.map(lambda x: x[0], batches),
        batches=batches,
        data=data,
    )


def leaves_equal(a: Any, b: Any) -> bool:
    la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
    if len(la) != len(lb):
        return False
    return all(np.array_equal(np.asarray(x), np.asarray(y), equal_nan=True) for x, y in zip(la, lb))


def assert_trees_close(actual: Any, expected: Any, rtol: float = 1e-5, atol: float = 1e-6) -> None:
    assert jax.tree.structure(actual) == jax.tree.structure(expected)
    leaves = jax.tree_util.tree_leaves_with_path(actual)
    for (path, a), e in zip(leaves, jax.tree.leaves(expected), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(e), rtol=rtol, atol=atol, equal_nan=True,
                                   err_msg=jax.tree_util.keystr(path))


def params_fields(state: Any) -> list[str]:
    """The state's learnable and target parameter fields (e.g. actor_params, target_critic_params)."""
    return [f.name for f in dataclasses.fields(state) if f.name.endswith("_params")]


def take(tree: Any, i: int) -> Any:
    return jax.tree.map(lambda x: x[i], tree)


# --- config ----------------------------------------------------------------------------------------------


def test_config_is_frozen_and_hashable(h):
    """Configs are static jit arguments: frozen and hashable."""
    assert hash(h.cfg) == hash(small_config(h.name))
    with pytest.raises(dataclasses.FrozenInstanceError):
        h.cfg.gamma = 0.5  # type: ignore[misc]


def _lr_fields(cfg: Any) -> list[str]:
    return [f.name for f in dataclasses.fields(cfg) if f.name.endswith("_lr") or f.name == "learning_rate"]


@pytest.mark.parametrize(
    "field,value",
    [("gamma", 1.5), ("gamma", -0.1), ("target_tau", 0.0), ("target_tau", 1.5), ("batch_size", 0),
     ("hidden_sizes", ()), ("hidden_sizes", (32, 0)), ("hidden_sizes", (1 << 17,)), ("activation", "swish"),
     ("num_critics", 0), ("max_grad_norm", -1.0), ("gamma", "0.99")],
)
def test_invalid_config_raises(h, field, value):
    if field not in {f.name for f in dataclasses.fields(h.cfg)}:
        pytest.skip(f"{h.name} has no {field} (e.g. on-policy agents keep no replay buffer)")
    with pytest.raises(ValueError, match=field):
        dataclasses.replace(h.cfg, **{field: value})


def test_config_is_an_agent_config_with_every_flag_documented(h):
    """Every Config runs the shared checks (`configs.AgentConfig`), and every flag, inherited ones included,
    has the docstring `critix list` and --help show."""
    assert isinstance(h.cfg, configs.AgentConfig)
    undocumented = [flag for flag, _, doc in cli._flags(h.cfg) if not doc]
    assert not undocumented, f"{h.name}: flags without a docstring: {undocumented}"


def test_negative_learning_rates_raise(h):
    fields = _lr_fields(h.cfg)
    assert fields, f"{h.name} config has no learning-rate field ending in _lr"
    for field in fields:
        for value in (-1e-3, 0.0):
            with pytest.raises(ValueError, match=field):
                dataclasses.replace(h.cfg, **{field: value})


# --- init and act ----------------------------------------------------------------------------------------


def test_init(h):
    h.module.check_spaces(h.obs_space, h.act_space)  # the shared spaces are valid for every agent
    leaves = jax.tree.leaves(h.state)
    assert leaves and all(isinstance(x, jax.Array) for x in leaves)
    assert all(np.all(np.isfinite(np.asarray(x))) for x in leaves if jnp.issubdtype(x.dtype, jnp.floating))
    assert leaves_equal(h.init(jax.random.PRNGKey(0)), h.state)  # same key -> same state
    other = h.init(jax.random.PRNGKey(1))
    for field in params_fields(h.state):
        assert not leaves_equal(getattr(other, field), getattr(h.state, field)), field


@pytest.mark.parametrize("deterministic", [False, True])
def test_act_shapes_and_bounds(h, deterministic):
    obs = jax.random.normal(jax.random.PRNGKey(3), (8, 3))
    for scale in (1.0, 1e3):  # extreme observations saturate the tanh, still inside [-1, 1]
        action = np.asarray(h.act(h.state, scale * obs, jax.random.PRNGKey(0), deterministic))
        if h.discrete:  # action indices in [0, n)
            assert action.shape == (8,) and action.dtype == np.int32
            assert np.all(action >= 0) and np.all(action < NUM_ACTIONS)
            continue
        assert action.shape == (8, 2) and action.dtype == np.float32
        assert np.all(np.isfinite(action))
        if getattr(h.module, "ACTIONS_IN_BOUNDS", True):  # else raw Gaussian samples that the env loop clips
            assert np.all(action >= -1.0) and np.all(action <= 1.0)
    eager = h.module.act(h.cfg, h.state, obs, jax.random.PRNGKey(0), deterministic)
    np.testing.assert_allclose(eager, h.act(h.state, obs, jax.random.PRNGKey(0), deterministic), rtol=1e-5,
                               atol=1e-6)


def test_deterministic_act_ignores_the_key_and_stochastic_act_uses_it(h):
    obs = jax.random.normal(jax.random.PRNGKey(3), (8, 3))
    k1, k2 = jax.random.PRNGKey(1), jax.random.PRNGKey(2)
    np.testing.assert_array_equal(h.act(h.state, obs, k1, True), h.act(h.state, obs, k2, True))
    np.testing.assert_array_equal(h.act(h.state, obs, k1, False), h.act(h.state, obs, k1, False))
    assert not np.allclose(h.act(h.state, obs, k1, False), h.act(h.state, obs, k2, False))


@pytest.mark.parametrize("deterministic", [False, True])
def test_policy_in_numpy_acts_as_act(h, deterministic):
    """The agent's `PolicyFunctions` evaluated with NumPy (what the host loops run for small networks) gives `act`'s actions
    for the same parameters and random numbers, for 2 seeds at once (stacked parameters, obs [S, B, O])."""
    states = h.init_seeds(jax.random.split(jax.random.PRNGKey(5), 2))
    policy = h.module.policy(h.cfg, states)
    assert policy.host
    obs = jax.random.normal(jax.random.PRNGKey(3), (2, 8, 3))
    keys = jax.random.split(jax.random.PRNGKey(4), 2)
    want = jax.vmap(lambda s, o, k: h.act(s, o, k, deterministic))(states, obs, keys)
    params = jax.device_get(jax.vmap(policy.params)(states))
    noise = None if deterministic else jax.device_get(jax.vmap(lambda k: policy.noise(k, 8))(keys))
    got = policy.act(np, params, np.asarray(obs), noise, deterministic)
    assert isinstance(got, np.ndarray) and got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


# --- update ----------------------------------------------------------------------------------------------


def loss_names(metrics: dict) -> list[str]:
    names = [name for name in metrics if name.endswith("/loss")]
    assert names, f"no '<part>/loss' metric in {sorted(metrics)}"
    return names


def test_update_returns_finite_metrics_and_changes_params(h):
    state, metrics = h.update(h.state, h.batch)
    assert metrics, "update must return metrics"
    for name, value in metrics.items():
        assert "/" in name, f"metric {name!r} is not namespaced (e.g. 'critic/loss')"
        assert np.shape(value) == (), name
        assert not np.isinf(value), name
    assert any(np.isfinite(metrics[name]) for name in loss_names(metrics))
    changed = [f for f in params_fields(h.state) if not leaves_equal(getattr(state, f), getattr(h.state, f))]
    assert changed, "one update changed no parameters"
    assert jax.tree.structure(state) == jax.tree.structure(h.state)
    # After K steps every parameter set has moved (delayed actors and targets included) and every metric is
    # finite on average (a NaN marks a metric not computed on that step, e.g. TD3's actor loss between
    # delayed updates; the training loop averages with nanmean).
    state, metrics = h.update_many(h.state, h.batches)
    for field in params_fields(h.state):
        assert not leaves_equal(getattr(state, field), getattr(h.state, field)), f"{field} did not change"
    for name, value in metrics.items():
        assert np.shape(value) == (K,), name
        assert not np.any(np.isinf(np.asarray(value))), name
        assert np.isfinite(np.nanmean(np.asarray(value))), f"{name} is never finite: {value}"


def test_update_many_equals_sequential_updates(h):
    many_state, many_metrics = h.update_many(h.state, h.batches)
    state, metrics = h.state, []
    for i in range(K):
        state, m = h.update(state, take(h.batches, i))
        metrics.append(m)
    assert_trees_close(many_state, state)
    assert_trees_close(many_metrics, jax.tree.map(lambda *xs: jnp.stack(xs), *metrics))


def test_same_key_gives_identical_results(h):
    a = h.update_many(h.init(jax.random.PRNGKey(7)), h.batches)
    b = h.update_many(h.init(jax.random.PRNGKey(7)), h.batches)
    assert leaves_equal(a, b)
    c = h.update_many(h.init(jax.random.PRNGKey(8)), h.batches)
    assert not leaves_equal(a[0], c[0])


def test_truncation_does_not_change_the_update_but_termination_does(h):
    """Bootstrapping stops only on `terminated`; `truncated` transitions bootstrap like any other.

    On-policy agents also cut their multi-step traces at any episode end, so they are checked with one-step
    advantages (gae_lambda = 0), where truncation must not matter either."""
    if not uses_rewards(h):
        pytest.skip(f"{h.name} learns from (obs, action) only")
    update_many = h.update_many
    if hasattr(h.cfg, "gae_lambda"):
        one_step = dataclasses.replace(h.cfg, gae_lambda=0.0)
        update_many = jax.jit(lambda state, batches: h.module.update_many(one_step, state, h.data(batches)))
    flipped_trunc = h.batches.replace(truncated=1.0 - h.batches.truncated)
    assert leaves_equal(update_many(h.state, h.batches), update_many(h.state, flipped_trunc))
    flipped_term = h.batches.replace(terminated=1.0 - h.batches.terminated)
    assert not leaves_equal(update_many(h.state, h.batches)[0], update_many(h.state, flipped_term)[0])


def test_jitted_update_many_is_reusable(h):
    state, _ = h.update_many(h.state, h.batches)
    state, metrics = h.update_many(state, random_batches(jax.random.PRNGKey(5), (K,), h.discrete))
    for name in loss_names(metrics):
        assert np.isfinite(np.nanmean(np.asarray(metrics[name]))), name
    if hasattr(state, "steps"):
        assert int(state.steps) == 2 * K


def test_vmapped_seeds_equal_separate_runs(h):
    keys = jax.random.split(jax.random.PRNGKey(11), SEEDS)
    states = h.init_seeds(keys)
    for leaf, single in zip(jax.tree.leaves(states), jax.tree.leaves(h.state), strict=True):
        assert leaf.shape == (SEEDS, *single.shape)
    batches = random_batches(jax.random.PRNGKey(12), (SEEDS,), h.discrete)  # one batch per seed [S, B, ...]
    new_states, metrics = jax.jit(jax.vmap(lambda s, b: h.module.update(h.cfg, s, h.data(b))))(states, batches)
    obs = jax.random.normal(jax.random.PRNGKey(13), (SEEDS, 4, 3))
    act_keys = jax.random.split(jax.random.PRNGKey(14), SEEDS)
    vmapped_act = jax.jit(jax.vmap(partial(h.module.act, h.cfg, deterministic=False)))
    actions = vmapped_act(new_states, obs, act_keys)
    assert actions.shape == ((SEEDS, 4) if h.discrete else (SEEDS, 4, 2))
    for s in range(SEEDS):
        single = h.init(keys[s])
        assert_trees_close(take(states, s), single, rtol=0, atol=0)
        single, single_metrics = h.update(single, take(batches, s))
        assert_trees_close(take(new_states, s), single)
        assert_trees_close(take(metrics, s), single_metrics)
        want = h.act(single, obs[s], act_keys[s], False)
        np.testing.assert_allclose(actions[s], want, rtol=1e-5, atol=1e-6)
    assert not leaves_equal(take(new_states, 0), take(new_states, 1))  # seeds really differ


# --- checkpoints -----------------------------------------------------------------------------------------


def test_checkpoint_round_trip_restores_every_leaf(h, tmp_path):
    trained, _ = h.update_many(h.state, h.batches)
    ckpt = checkpoint.save(tmp_path, 3, trained, {"algo": h.name})
    template = h.init(jax.random.PRNGKey(99))  # a fresh state: structure, shapes and dtypes only
    loaded, meta = checkpoint.load(ckpt, template)
    assert meta["algo"] == h.name and meta["step"] == 3
    assert jax.tree.structure(loaded) == jax.tree.structure(trained)
    for (path, got), want in zip(jax.tree_util.tree_leaves_with_path(loaded), jax.tree.leaves(trained),
                                 strict=True):
        assert np.asarray(got).dtype == np.asarray(want).dtype, jax.tree_util.keystr(path)
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want), err_msg=jax.tree_util.keystr(path))
    # static fields come from the template and training resumes exactly
    assert leaves_equal(h.update(loaded, h.batch), h.update(trained, h.batch))


def test_checkpoint_round_trip_with_a_seed_axis(h, tmp_path):
    states = h.init_seeds(jax.random.split(jax.random.PRNGKey(21), SEEDS))
    ckpt = checkpoint.save(tmp_path, 1, states, {})
    loaded, _ = checkpoint.load(ckpt, h.init_seeds(jax.random.split(jax.random.PRNGKey(0), SEEDS)))
    assert leaves_equal(loaded, states)


@pytest.mark.parametrize("hidden_sizes", [(16, 16), (32, 32, 32)])
def test_checkpoint_into_a_different_architecture_raises(h, tmp_path, hidden_sizes):
    ckpt = checkpoint.save(tmp_path, 1, h.state, {})
    other_cfg = dataclasses.replace(h.cfg, hidden_sizes=hidden_sizes)
    # Only shapes and dtypes matter in a template: build it from eval_shape (no compile, no compute).
    shapes = jax.eval_shape(
        lambda key: h.module.init(other_cfg, key, h.obs_space, h.act_space), jax.random.PRNGKey(0)
    )
    template = jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), shapes)
    with pytest.raises(CritixError, match="config"):
        checkpoint.load(ckpt, template)


def test_module_meets_the_agent_contract(h):
    """`critix.agents.contract.AgentModule`: constants, the pure functions, and a data path where it has one."""
    assert h.module.NAME and h.module.KIND in ("off-policy", "on-policy", "offline")
    assert isinstance(h.cfg, h.module.Config)
    for name in ("check_spaces", "init", "act", "policy", "update", "update_many"):
        assert callable(getattr(h.module, name)), name
    h.module.check_spaces(h.obs_space, h.act_space)
    with pytest.raises(CritixError):  # a space no agent takes
        h.module.check_spaces(h.obs_space, gym.spaces.MultiBinary(2))
    if h.module.KIND != "on-policy":
        path = contract.data_path(h.module, h.cfg)
        assert path.batch_shape[0] == h.cfg.batch_size and callable(path.update)


def test_declared_vmappable_fields_enter_the_program_only_as_numbers(h):
    """Every field the Config declares vmappable (`--grid` varies them inside one compiled program) traces through
    init, act and update as an array; the Config round-trips as a pytree whose leaves are exactly those fields."""
    from critix.train.grid import member_config

    declared = type(h.cfg).VMAPPABLE
    assert declared and all(isinstance(getattr(h.cfg, name), float) for name in declared)
    leaves, treedef = jax.tree_util.tree_flatten(h.cfg)
    assert leaves == [getattr(h.cfg, name) for name in declared]
    assert jax.tree_util.tree_unflatten(treedef, leaves) == h.cfg
    errors = (jax.errors.ConcretizationTypeError, jax.errors.TracerBoolConversionError,
              jax.errors.TracerIntegerConversionError, jax.errors.TracerArrayConversionError)
    obs = jnp.zeros((BATCH, 3))
    for name in declared:
        def program(value: jax.Array) -> Any:
            cfg = member_config(h.cfg, {name: value})
            state = h.module.init(cfg, jax.random.PRNGKey(0), h.obs_space, h.act_space)
            h.module.act(cfg, state, obs, jax.random.PRNGKey(1), False)
            return h.module.update(cfg, state, h.data(h.batch))

        try:
            jax.eval_shape(program, jnp.float32(getattr(h.cfg, name)))
        except errors as err:
            raise AssertionError(f"{h.name} declares {name} vmappable, but it is not a plain number: {err}") from None
