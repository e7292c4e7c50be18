"""Every agent family through the probe environments (tests/probe/probe_envs.py): known values, known best actions.

Each run goes through the real training loop (`critix.train.modes.train`: vector envs, replay or rollouts,
terminated/truncated handling, checkpoint), then the final checkpoint is restored and the learned Q or V values
are read at the probe's observations. A value that misses its known figure names the broken piece: the critic
regression (constant), the input (observed), discounting and next observations (discounted), bootstrapping
through the time limit (truncated), the policy (action).

Discount 0.5 everywhere: values settle within a few hundred updates. SAC runs with a small fixed temperature, so
its soft values stay within 0.01 of the plain ones.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from critix import agents
from critix.agents import dqn, ppo, sac, td3
from critix.train import checkpoint
from critix.train.modes import make_session, train
from critix.train.online import RunConfig

from probe_envs import ACTION_TARGET, TIME_LIMIT, env_id

GAMMA = 0.5
SEEDS = 2
VALUE_TOL = 0.15
"""Allowed error of a learned value. The nearest wrong answer is 0.5 away (discounted: g vs 1), or 0.58 (truncated:
2 vs 1.42)."""

OVERRIDES: dict[str, dict[str, Any]] = {
    "td3": dict(hidden_sizes=(32, 32), gamma=GAMMA, learning_starts=200, batch_size=64, target_tau=0.02),
    "sac": dict(hidden_sizes=(32, 32), gamma=GAMMA, learning_starts=200, batch_size=64, autotune_alpha=False,
                init_alpha=1e-3),
    "dqn": dict(hidden_sizes=(32, 32), gamma=GAMMA, learning_starts=200, batch_size=64, utd_ratio=1.0,
                q_lr=1e-3, target_update_period=20, exploration_steps=500, scalar_loss="mse"),
    "ppo": dict(hidden_sizes=(32, 32), gamma=GAMMA, rollout_length=64, minibatch_size=64, num_epochs=4,
                learning_rate=3e-3),
}
STEPS = {"td3": 1500, "sac": 1500, "dqn": 3000, "ppo": 8192}
DISCRETE = {"dqn": True}
NUM_ENVS = {"ppo": 4}


@dataclasses.dataclass
class Trained:
    """A finished probe run, restored from its final checkpoint."""

    algo: str
    cfg: Any
    agent: Any  # agent state, leading seed axis S

    def greedy_actions(self, obs: float) -> np.ndarray:
        """The agent's deterministic action at `obs`, per seed [S] (Box: the single action coordinate)."""
        module = agents.get(self.algo).module
        obs_b = jnp.full((1, 1), obs, jnp.float32)
        act = jax.vmap(lambda s: module.act(self.cfg, s, obs_b, jax.random.PRNGKey(0), True))
        return np.asarray(act(self.agent)).reshape(SEEDS)

    def values(self, obs: float) -> np.ndarray:
        """The learned value of `obs` under the agent's own greedy policy, per seed [S]: V(obs) for PPO, Q(obs, a*)
        with a* the greedy action for the Q learners (the value bootstrapping uses; DQN's rarely taken action is
        fitted on few samples and may lag)."""
        obs_b = jnp.full((1, 1), obs, jnp.float32)
        greedy = jnp.asarray(self.greedy_actions(obs))
        if self.algo == "ppo":
            return np.asarray(jax.vmap(lambda s: ppo.value(self.cfg, s, s.critic_params, obs_b)[0])(self.agent))
        if self.algo == "dqn":
            q = jax.vmap(lambda s: dqn.q_values(self.cfg, s.q_params, obs_b, s.num_actions)[0])(self.agent)
            return np.asarray(q[jnp.arange(SEEDS), greedy])
        module = sac if self.algo == "sac" else td3

        def q_at(s: Any, action: jax.Array) -> jax.Array:
            _, critic = module.networks(self.cfg, s.action_dim)
            out = critic.apply(s.critic_params, obs_b, action.reshape(1, 1))  # [E, 1, K]
            return self.cfg.head.value(out).min(axis=0)[0]

        return np.asarray(jax.vmap(q_at)(self.agent, greedy))


def train_probe(algo: str, probe: str, compiled: bool, tmp_path: Path) -> Trained:
    cfg = dataclasses.replace(agents.get(algo).default_config, **OVERRIDES[algo])
    run = RunConfig(env=env_id(probe, DISCRETE.get(algo, False), compiled), steps=STEPS[algo], num_seeds=SEEDS,
                    num_envs=NUM_ENVS.get(algo, 1), eval_every=0, eval_episodes=2, log_every=STEPS[algo],
                    run_dir=str(tmp_path / f"{algo}-{probe}"), progress=False, tensorboard=False)
    train(algo, cfg, run)
    found = checkpoint.latest_valid(Path(run.run_dir) / "checkpoints", quarantine=False)
    assert found is not None, "the run wrote no final checkpoint"
    session = make_session(algo, cfg, run)
    try:
        runner = session.restore_runner(found[0])
    finally:
        session.close()
    agent = runner.carry.agent if compiled else runner.agent
    return Trained(algo, session.cfg, agent)


ALGOS = ["td3", "sac", "dqn", "ppo"]
CASES = [pytest.param(algo, compiled, id=f"{algo}-{'compiled' if compiled else 'host'}")
         for compiled in (False, True) for algo in ALGOS]


@pytest.mark.parametrize(("algo", "compiled"), CASES)
def test_constant_reward_is_learned(algo: str, compiled: bool, tmp_path: Path) -> None:
    trained = train_probe(algo, "constant", compiled, tmp_path)
    np.testing.assert_allclose(trained.values(0.0), 1.0, atol=VALUE_TOL)


@pytest.mark.parametrize(("algo", "compiled"), CASES)
def test_value_depends_on_the_observation(algo: str, compiled: bool, tmp_path: Path) -> None:
    trained = train_probe(algo, "observed", compiled, tmp_path)
    np.testing.assert_allclose(trained.values(1.0), 1.0, atol=VALUE_TOL)
    np.testing.assert_allclose(trained.values(-1.0), -1.0, atol=VALUE_TOL)


@pytest.mark.parametrize(("algo", "compiled"), CASES)
def test_reward_is_discounted_once_per_step(algo: str, compiled: bool, tmp_path: Path) -> None:
    trained = train_probe(algo, "discounted", compiled, tmp_path)
    np.testing.assert_allclose(trained.values(1.0), 1.0, atol=VALUE_TOL)
    np.testing.assert_allclose(trained.values(0.0), GAMMA, atol=VALUE_TOL)


@pytest.mark.parametrize(("algo", "compiled"), CASES)
def test_time_limit_truncation_bootstraps(algo: str, compiled: bool, tmp_path: Path) -> None:
    """The endless task's value 1 / (1 - g) = 2, not the truncated returns' average 1.42 (termination's answer)."""
    trained = train_probe(algo, "truncated", compiled, tmp_path)
    as_if_terminated = np.mean([sum(GAMMA**k for k in range(n)) for n in range(1, TIME_LIMIT + 1)])
    assert abs(1 / (1 - GAMMA) - as_if_terminated) > 3 * VALUE_TOL  # the probe tells the two apart
    np.testing.assert_allclose(trained.values(0.0), 1 / (1 - GAMMA), atol=VALUE_TOL)


@pytest.mark.parametrize(("algo", "compiled"), CASES)
def test_best_action_follows_the_observation(algo: str, compiled: bool, tmp_path: Path) -> None:
    trained = train_probe(algo, "action", compiled, tmp_path)
    for obs in (-1.0, 1.0):
        actions = trained.greedy_actions(obs)
        if DISCRETE.get(algo, False):
            np.testing.assert_array_equal(actions, int(obs > 0))
        else:
            np.testing.assert_allclose(actions, ACTION_TARGET * obs, atol=0.15)
