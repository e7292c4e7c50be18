"""The gymnax adapter keeps `terminated` and `truncated` apart and returns the real final observation."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from critix.envs import jax_envs
from critix.types import CritixError


def rollout(env: jax_envs.JaxEnv, action: jax.Array, steps: int) -> tuple:
    obs, state = env.reset(jax.random.PRNGKey(0))

    def step(carry: tuple, key: jax.Array) -> tuple:
        obs, state = carry
        next_obs, state, reward, terminated, truncated, final_obs = env.step(key, state, action)
        return (next_obs, state), (obs, next_obs, final_obs, reward, terminated, truncated)

    return jax.jit(lambda: jax.lax.scan(step, (obs, state), jax.random.split(jax.random.PRNGKey(1), steps))[1])()


def test_pendulum_time_limit_is_truncation_with_the_final_observation():
    env = jax_envs.make_jax_env("gymnax:Pendulum-v1")
    assert env.max_episode_steps == 200 and env.observation_space.shape == (3,)
    obs, next_obs, final_obs, reward, terminated, truncated = rollout(env, jnp.zeros(1), 205)
    assert not np.any(terminated)
    assert np.flatnonzero(truncated).tolist() == [199]
    # The step that truncates returns the reset observation, and the true last one as final_obs.
    assert not np.allclose(next_obs[199], final_obs[199])
    np.testing.assert_allclose(obs[200], next_obs[199])
    live = np.arange(205) != 199
    np.testing.assert_allclose(next_obs[live], final_obs[live])
    assert reward.dtype == jnp.float32


def test_cartpole_falling_pole_is_termination_not_truncation():
    env = jax_envs.make_jax_env("gymnax:CartPole-v1")
    *_, terminated, truncated = rollout(env, jnp.asarray(1), 60)  # always push right: falls in ~10 steps
    assert np.any(terminated) and not np.any(truncated)


def test_box_actions_are_mapped_from_the_unit_box_and_clipped():
    env = jax_envs.make_jax_env("gymnax:Pendulum-v1")  # torque bounds [-2, 2]
    np.testing.assert_allclose(env.env_action(jnp.array([-1.0, 0.0, 0.5, 3.0])), [-2.0, 0.0, 1.0, 2.0])


def test_minatar_observations_are_flattened():
    env = jax_envs.make_jax_env("gymnax:Breakout-MinAtar")
    obs, _ = env.reset(jax.random.PRNGKey(0))
    assert obs.shape == env.observation_space.shape == (400,)


@pytest.mark.parametrize("env_id,message", [("gymnax:CartPol-v1", "Did you mean gymnax:CartPole-v1"),
                                            ("jax:Nothing", "unknown JAX env"), ("CartPole-v1", "not a JAX env")])
def test_unknown_ids_are_clear_errors(env_id, message):
    with pytest.raises(CritixError, match=message):
        jax_envs.make_jax_env(env_id)
