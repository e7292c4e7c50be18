"""Gymnasium glue: env ids, SAME_STEP vector envs and final observations, action scaling, normalisation."""

from __future__ import annotations

import sys
from pathlib import Path

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode

from critix.agents import REGISTRY
from critix.envs.gym import (
    RunningMeanStd,
    check_env_id,
    final_observation,
    make_vector_env,
    normalize_obs,
    scale_action,
)
from critix.types import CritixError

# --- env ids ---------------------------------------------------------------------------------------------


def test_check_env_id_accepts_known_ids():
    check_env_id("Pendulum-v1")
    check_env_id("CartPole-v1")


@pytest.mark.parametrize("env_id", ["Pendulum-v2", "Pendulm-v1"])
def test_check_env_id_suggests_close_ids(env_id):
    with pytest.raises(CritixError, match=r"Did you mean .*Pendulum-v1") as err:
        check_env_id(env_id)
    assert repr(env_id) in str(err.value)


def test_check_env_id_without_close_match_points_to_the_registry():
    with pytest.raises(CritixError, match="pprint_registry"):
        check_env_id("Qqqqqqqqqqqqqqqq-v9")


def test_make_vector_env_rejects_bad_input():
    with pytest.raises(CritixError, match="Pendulum-v1"):
        make_vector_env("Pendulum-v2", 1, 0)
    with pytest.raises(CritixError, match="vectorization"):
        make_vector_env("Pendulum-v1", 1, 0, vectorization="threads")


# --- action spaces the agents cannot handle --------------------------------------------------------------


@pytest.mark.parametrize("algo", ["sac", "td3"])
def test_discrete_action_env_is_rejected_by_continuous_agents(algo):
    envs = make_vector_env("CartPole-v1", 2, 0)
    try:
        module = REGISTRY[algo].module
        with pytest.raises(CritixError, match=r"Discrete\(2\)") as err:
            module.check_spaces(envs.single_observation_space, envs.single_action_space)
        assert algo in str(err.value) and "continuous" in str(err.value)
        with pytest.raises(CritixError, match="Discrete"):
            module.init(REGISTRY[algo].default_config, jax.random.PRNGKey(0),
                        envs.single_observation_space, envs.single_action_space)
    finally:
        envs.close()


# --- SAME_STEP vector env and the final observation -------------------------------------------------------


def test_final_observation_replaces_only_finished_envs():
    obs = np.arange(6, dtype=np.float32).reshape(3, 2)  # reset obs for env 1, ongoing obs for envs 0 and 2
    done = np.array([False, True, False])
    final = np.array([None, np.array([-7.0, -8.0], np.float32), None], dtype=object)
    info = {"final_obs": final, "_final_obs": done.copy()}
    original = obs.copy()
    next_obs = final_observation(obs, done, info)
    np.testing.assert_array_equal(next_obs, [[0, 1], [-7, -8], [4, 5]])
    np.testing.assert_array_equal(obs, original)  # the loop's obs (the reset one) is not modified


def test_final_observation_without_done_is_the_obs():
    obs = np.ones((2, 3), np.float32)
    np.testing.assert_array_equal(final_observation(obs, np.zeros(2, bool), {}), obs)


def test_final_observation_requires_same_step_info():
    with pytest.raises(RuntimeError, match="SAME_STEP"):
        final_observation(np.ones((2, 3)), np.array([True, False]), {})


def test_pendulum_truncation_uses_the_real_final_observation():
    """Pendulum truncates at 200 steps: that step returns the reset obs, and the final obs in info."""
    envs = make_vector_env("Pendulum-v1", 2, seed=0)
    single = gym.make("Pendulum-v1")
    try:
        assert envs.metadata["autoreset_mode"] == AutoresetMode.SAME_STEP
        obs, _ = envs.reset(seed=0)
        single_obs, _ = single.reset(seed=0)  # the vector env seeds env 0 with seed 0
        np.testing.assert_allclose(obs[0], single_obs)
        action = np.zeros((2, 1), np.float32)
        for t in range(1, 201):
            obs, _, terminated, truncated, info = envs.step(action)
            single_obs, _, _, single_truncated, _ = single.step(action[0])
            done = terminated | truncated
            next_obs = final_observation(obs, done, info)
            if t < 200:
                assert not done.any()
                np.testing.assert_array_equal(next_obs, obs)
        assert not terminated.any() and truncated.all() and single_truncated
        # the returned obs is the reset one; the final one, where the episode really ended, is in info
        assert not np.allclose(next_obs, obs)
        np.testing.assert_allclose(next_obs[0], single_obs, rtol=1e-5, atol=1e-5)
        for i in range(2):
            np.testing.assert_array_equal(next_obs[i], info["final_obs"][i])
        # a valid Pendulum observation: (cos theta, sin theta) on the unit circle
        np.testing.assert_allclose(np.hypot(next_obs[:, 0], next_obs[:, 1]), 1.0, rtol=1e-5)
    finally:
        envs.close()
        single.close()


# --- action scaling and observation normalisation -----------------------------------------------------------


def test_scale_action_maps_unit_box_to_bounds():
    low, high = np.array([-2.0, 0.0]), np.array([2.0, 10.0])
    np.testing.assert_allclose(scale_action(np.array([-1.0, -1.0]), low, high), low)
    np.testing.assert_allclose(scale_action(np.array([1.0, 1.0]), low, high), high)
    np.testing.assert_allclose(scale_action(np.array([0.0, 0.0]), low, high), [0.0, 5.0])
    np.testing.assert_allclose(scale_action(np.array([0.5, -0.5]), low, high), [1.0, 2.5])
    np.testing.assert_allclose(scale_action(np.array([3.0, -7.0]), low, high), [2.0, 0.0])  # clipped first
    batch = scale_action(np.array([[-1.0, 1.0], [1.0, -1.0]]), low, high)  # [N, A] broadcasts
    np.testing.assert_allclose(batch, [[-2.0, 10.0], [2.0, 0.0]])


def test_running_mean_std_matches_numpy_on_concatenated_data():
    rng = np.random.default_rng(0)
    chunks = [rng.normal(3.0, 2.0, size=(2, m, 3)) for m in (5, 7, 1, 20)]  # [S, M, O]
    chunks[0][1] += 100.0  # seed 1 gets different statistics
    rms = RunningMeanStd.create(2, (3,))
    for chunk in chunks:
        rms.update(chunk)
    data = np.concatenate(chunks, axis=1)
    np.testing.assert_allclose(rms.mean, data.mean(axis=1), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(rms.var, data.var(axis=1), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(rms.count, 33 + 1e-4)


def test_normalize_obs_hand_values(jit_vmap_check):
    obs = jnp.array([1.0, 3.0, -5.0])
    mean = jnp.array([1.0, 1.0, 0.0])
    var = jnp.array([4.0, 0.0, 0.25])
    expected = jnp.array([0.0, 10.0, -10.0])  # 2 / sqrt(1e-8) and -5 / 0.5 are clipped to +-10
    cases = [(obs, mean, var), (obs * 0.1, mean, var + 1.0)]
    expected2 = (obs * 0.1 - mean) / jnp.sqrt(var + 1.0 + 1e-8)
    jit_vmap_check(normalize_obs, cases, [expected, expected2], rtol=1e-5)
    np.testing.assert_allclose(normalize_obs(np.asarray(obs), np.asarray(mean), np.asarray(var), clip=5.0),
                               [0.0, 5.0, -5.0])


def test_running_mean_std_with_non_flat_observations():
    rng = np.random.default_rng(1)
    chunks = [rng.normal(size=(2, m, 3, 4)) for m in (5, 6)]  # [S, M, H, W]
    rms = RunningMeanStd.create(2, (3, 4))
    for chunk in chunks:
        rms.update(chunk)
    data = np.concatenate(chunks, axis=1)
    np.testing.assert_allclose(rms.mean, data.mean(axis=1), atol=1e-4)
    np.testing.assert_allclose(rms.var, data.var(axis=1), atol=1e-4)


class _ArcadeStub(gym.Env):
    """Records the actions it is sent; its action meanings decide whether a fire reset applies."""

    observation_space = gym.spaces.Box(0, 255, (2,), np.uint8)

    def __init__(self, meanings: list[str], die_on_fire: bool = False) -> None:
        self.meanings, self.die_on_fire = meanings, die_on_fire
        self.action_space = gym.spaces.Discrete(len(meanings))
        self.actions: list[int] = []
        self.resets = 0

    def get_action_meanings(self) -> list[str]:
        return self.meanings

    def reset(self, *, seed=None, options=None):
        self.resets += 1
        return np.zeros(2, np.uint8), {}

    def step(self, action):
        self.actions.append(int(action))
        dead = self.die_on_fire and self.resets == 1 and int(action) == 1
        return np.full(2, len(self.actions), np.uint8), 0.0, dead, False, {}


def test_fire_reset_presses_fire_then_2_only_for_games_that_have_fire():
    from critix.envs.pixels import FireReset

    breakout = _ArcadeStub(["NOOP", "FIRE", "RIGHT", "LEFT"])
    obs, _ = FireReset(breakout).reset(seed=0)
    assert breakout.actions == [1, 2] and obs.tolist() == [2, 2]
    no_fire = _ArcadeStub(["NOOP", "UP", "DOWN"])
    FireReset(no_fire).reset(seed=0)
    assert no_fire.actions == [] and no_fire.resets == 1
    dies = _ArcadeStub(["NOOP", "FIRE", "RIGHT"], die_on_fire=True)  # lost a life while firing: reset again
    FireReset(dies).reset(seed=0)
    assert dies.resets == 2


def test_breakout_gets_a_fire_reset():
    pytest.importorskip("ale_py")
    from critix.envs.gym import make_vector_env

    envs = make_vector_env("ALE/Breakout-v5", 1, 0)
    try:
        names = []
        env = envs.envs[0]
        while hasattr(env, "env"):
            names.append(type(env).__name__)
            env = env.env
        assert "FireReset" in names and envs.single_observation_space.shape == (84, 84, 4)
    finally:
        envs.close()


# --- --vectorization auto ---------------------------------------------------------------------------------


def test_auto_vectorization_is_async_only_for_several_slow_envs(monkeypatch):
    from critix.envs import gym as critix_gym

    assert 0.0 < critix_gym.env_step_seconds("CartPole-v1", 0) < critix_gym.ASYNC_MIN_STEP_SECONDS
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "probe"))
    import probe_envs  # noqa: F401  (registers the critix-probe/ ids: JAX envs behind a Gymnasium adapter)

    assert critix_gym.env_step_seconds("critix-probe/ConstantBox-v0", 0) == 0.0  # JAX envs are never forked
    assert critix_gym.choose_vectorization("CartPole-v1", 4, 0) == "sync"
    monkeypatch.setattr(critix_gym, "env_step_seconds", lambda env_id, seed, **kwargs: 5e-3)  # a slow env
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    assert critix_gym.choose_vectorization("CartPole-v1", 2, 0) == "async"
    assert critix_gym.choose_vectorization("CartPole-v1", 1, 0) == "sync"  # one env: nothing to overlap
    envs = make_vector_env("CartPole-v1", 1, 0, "auto")
    try:
        assert isinstance(envs, gym.vector.SyncVectorEnv)
    finally:
        envs.close()


@pytest.mark.parametrize("env_id", ["CartPole-v1", "Pendulum-v1"])
def test_same_step_vector_env_steps_as_gymnasiums_sync_vector_env(env_id):
    """make_vector_env's sync envs (`SameStepVectorEnv`, a shorter `step`) return what Gymnasium's SyncVectorEnv
    returns in SAME_STEP mode: observations, rewards, flags, infos (final_obs where an episode ended), autoreset."""
    from critix.envs.gym import SameStepVectorEnv

    ours = make_vector_env(env_id, 3, 0, "sync")
    theirs = gym.make_vec(env_id, num_envs=3, vectorization_mode="sync",
                          vector_kwargs={"autoreset_mode": AutoresetMode.SAME_STEP})
    assert type(ours) is SameStepVectorEnv and isinstance(ours, gym.vector.SyncVectorEnv)
    try:
        np.testing.assert_array_equal(ours.reset(seed=5)[0], theirs.reset(seed=5)[0])
        ours.action_space.seed(1)
        ended = 0
        for _ in range(600):
            action = ours.action_space.sample()
            got, want = ours.step(action), theirs.step(action)
            for x, y in zip(got[:4], want[:4], strict=True):
                assert x.dtype == y.dtype
                np.testing.assert_array_equal(x, y)
            assert got[4].keys() == want[4].keys()
            if "final_obs" in got[4]:
                ended += 1
                np.testing.assert_array_equal(got[4]["_final_obs"], want[4]["_final_obs"])
                for u, v in zip(got[4]["final_obs"], want[4]["final_obs"], strict=True):
                    assert (u is None and v is None) or np.array_equal(u, v)
            np.testing.assert_array_equal(ours._autoreset_envs, theirs._autoreset_envs)
        assert ended > 0
    finally:
        ours.close()
        theirs.close()
