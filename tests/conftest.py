"""Test session setup: CPU only, JAX's persistent compilation cache, and tiny shared fixtures.

Tests stay fast by sharing a few tiny shapes (obs 3, action 2, batch 16) so each function compiles once per
session, and by reusing compiled code across sessions through the on-disk cache in <repo>/.jax_cache.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

# Must be set before jax is imported anywhere: the tests are CPU-only and exact-reproducibility checks
# (same key -> same result) are promised on CPU.
os.environ["JAX_PLATFORMS"] = "cpu"
# The test networks are tiny, so compiling dominates: skipping LLVM's backend optimisations roughly halves
# compile times (set the flag yourself in XLA_FLAGS to override).
if "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
    flags = os.environ.get("XLA_FLAGS", "")
    os.environ["XLA_FLAGS"] = (flags + " --xla_backend_optimization_level=0").strip()

import gymnasium as gym  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from critix.types import Transition  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]

jax.config.update("jax_platforms", "cpu")
jax.config.update("jax_compilation_cache_dir", str(REPO_ROOT / ".jax_cache"))
# Runs in subprocesses (the CLI tests) keep their compile cache there too, not in ~/.cache/critix.
os.environ.setdefault("CRITIX_COMPILE_CACHE", str(REPO_ROOT / ".jax_cache"))
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)

OBS_DIM = 3
ACTION_DIM = 2
BATCH_SIZE = 16


@pytest.fixture(scope="session")
def obs_space() -> gym.spaces.Box:
    """A flat continuous observation space, shape (3,)."""
    return gym.spaces.Box(-np.inf, np.inf, (OBS_DIM,), np.float32)


@pytest.fixture(scope="session")
def act_space() -> gym.spaces.Box:
    """A continuous action space, shape (2,), bounds [-2, 2]."""
    return gym.spaces.Box(-2.0, 2.0, (ACTION_DIM,), np.float32)


def random_transition(key: jax.Array, batch_shape: tuple[int, ...] = (BATCH_SIZE,)) -> Transition:
    """A random batch of transitions [*batch_shape, ...] with obs 3, action 2 in [-1, 1], ~25% terminated."""
    k_obs, k_act, k_rew, k_next, k_term, k_trunc = jax.random.split(key, 6)
    return Transition(
        obs=jax.random.normal(k_obs, (*batch_shape, OBS_DIM)),
        action=jax.random.uniform(k_act, (*batch_shape, ACTION_DIM), minval=-1.0, maxval=1.0),
        reward=jax.random.normal(k_rew, batch_shape),
        next_obs=jax.random.normal(k_next, (*batch_shape, OBS_DIM)),
        terminated=(jax.random.uniform(k_term, batch_shape) < 0.25).astype(jnp.float32),
        truncated=(jax.random.uniform(k_trunc, batch_shape) < 0.1).astype(jnp.float32),
    )


@pytest.fixture(scope="session")
def make_transition() -> Callable[..., Transition]:
    """`make_transition(key, batch_shape=(16,))`: a random Transition batch of the shared tiny shapes."""
    return random_transition


@pytest.fixture(scope="session")
def transition_batch() -> Transition:
    """A fixed random Transition batch [16, ...] (obs 3, action 2)."""
    return random_transition(jax.random.PRNGKey(0))


def assert_trees_close(actual: Any, expected: Any, rtol: float = 1e-6, atol: float = 1e-6) -> None:
    """Same pytree structure and every leaf allclose."""
    assert jax.tree.structure(actual) == jax.tree.structure(expected)
    for a, e in zip(jax.tree.leaves(actual), jax.tree.leaves(expected), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(e), rtol=rtol, atol=atol)


def check_jit_and_vmap(
    fn: Callable[..., Any],
    cases: Sequence[tuple[Any, ...]],
    expected: Sequence[Any] | None = None,
    rtol: float = 1e-6,
    atol: float = 1e-6,
) -> list[Any]:
    """rlax's discipline: `fn` gives the same result eagerly, under jit, under vmap and under jit(vmap).

    cases: argument tuples (array pytrees, all of the same shapes); non-array arguments go in through a
    closure or functools.partial. expected: optional hand-computed outputs, one per case.
    The vmapped call stacks the cases along a new leading axis and must equal the per-case results.
    Returns the eager outputs.
    """
    eager = [fn(*args) for args in cases]
    if expected is not None:
        for out, want in zip(eager, expected, strict=True):
            assert_trees_close(out, want, rtol, atol)
    jitted = jax.jit(fn)
    for args, out in zip(cases, eager, strict=True):
        assert_trees_close(jitted(*args), out, rtol, atol)
    stacked = jax.tree.map(lambda *xs: jnp.stack([jnp.asarray(x) for x in xs]), *cases)
    want = jax.tree.map(lambda *xs: jnp.stack([jnp.asarray(x) for x in xs]), *eager)
    assert_trees_close(jax.vmap(fn)(*stacked), want, rtol, atol)
    assert_trees_close(jax.jit(jax.vmap(fn))(*stacked), want, rtol, atol)
    return eager


@pytest.fixture(scope="session")
def jit_vmap_check() -> Callable[..., list[Any]]:
    """The `check_jit_and_vmap(fn, cases, expected=None, rtol, atol)` helper as a fixture."""
    return check_jit_and_vmap


@pytest.fixture(scope="session")
def trees_close() -> Callable[..., None]:
    """The `assert_trees_close(actual, expected, rtol, atol)` helper as a fixture."""
    return assert_trees_close


def with_settings(agent_cfg: Any, run_cfg: Any, **settings: Any) -> tuple[Any, Any]:
    """(agent_cfg, run_cfg) with each setting replaced in the config that has the field (hyperparameters in the
    agent's, loop settings such as learning_starts or rollout_length in the run's)."""
    import dataclasses

    from critix.agents import common

    agent_fields = common.field_names(agent_cfg)  # value_head's critic_head, v_min ... included
    run_fields = {f.name for f in dataclasses.fields(run_cfg)}
    unknown = set(settings) - agent_fields - run_fields
    assert not unknown, f"no config has the fields {sorted(unknown)}"
    return (common.replace_fields(agent_cfg, **{k: v for k, v in settings.items() if k in agent_fields}),
            dataclasses.replace(run_cfg, **{k: v for k, v in settings.items() if k in run_fields}))
