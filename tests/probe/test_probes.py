"""Every agent family through the probe environments (tests/probe/probe_envs.py): known values, known best actions.

Each run goes through the real training loop (`critix.train.modes.train`: vector envs, replay or rollouts,
terminated/truncated handling, checkpoint), then the final checkpoint is restored and the learned Q or V values
are read at the probe's observations. A value that misses its known figure names the broken piece: the critic
regression (constant), the input (observed), discounting and next observations (discounted), bootstrapping
through the time limit (truncated), the policy (action).

`VARIANTS` (one configuration per agent family) run every probe in the host and the compiled loop;
`MORE_VARIANTS` (DDPG, A2C, discrete SAC, n-step DQN, the distributional heads) run the two probes that check
targets. The offline agents (TD3+BC, CQL, IQL, XQL, f-DVL) learn the same two probes from a dataset of random
actions written in the Minari format. Each probe was checked to fail on its bug: truncation treated as termination
(in either online loop, in the n-step return, or in a dataset's transitions), and a discount applied twice.

Discount 0.5 everywhere: values settle within a few hundred updates. SAC and TQC run with a small fixed temperature,
so their soft values stay within 0.01 of the plain ones. TQC runs 3 critics of 10 quantiles and drops the top 2 per
critic (6 of 30 pooled atoms; its defaults drop 10 of 125, and their pairwise loss costs 20 times as much per update):
every probe's return is deterministic, so even the truncated target converges to the known value, and a TQC value is
the mean of its critics' atoms.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from critix import agents
from critix.agents import cql, dqn, iql, ppo, sac, sac_discrete, tqc
from critix.train import collect
from critix.data.datasets import write_dataset
from critix.train import checkpoint, offline
from critix.train.modes import make_stepper, train
from critix.train.config import RunConfig
from conftest import with_settings

from probe_envs import ACTION_TARGET, TIME_LIMIT, env_id

GAMMA = 0.5
SEEDS = 2
VALUE_TOL = 0.15
"""Allowed error of a learned value. The nearest wrong answer is 0.5 away (discounted: g vs 1), or 0.58 (truncated:
2 vs 1.42)."""

OFF_POLICY = dict(hidden_sizes=(32, 32), gamma=GAMMA, learning_starts=200, batch_size=64)
DQN = dict(OFF_POLICY, utd_ratio=1.0, q_lr=1e-3, target_update_period=20, exploration_steps=500, scalar_loss="mse")
ON_POLICY = dict(hidden_sizes=(32, 32), gamma=GAMMA, learning_rate=3e-3)
DISTRIBUTION = dict(v_min=-5.0, v_max=5.0, num_bins=51)  # covers every probe value with room


@dataclasses.dataclass(frozen=True)
class Variant:
    """An agent configuration to probe: a registry algorithm, its overrides and budget."""

    algo: str
    overrides: dict[str, Any]
    steps: int
    discrete: bool = False
    num_envs: int = 1


VARIANTS = {
    "td3": Variant("td3", dict(OFF_POLICY, target_tau=0.02), 1500),
    "sac": Variant("sac", dict(OFF_POLICY, autotune_alpha=False, init_alpha=1e-3), 1500),
    "tqc": Variant("tqc", dict(OFF_POLICY, critic_hidden_sizes=(32, 32), autotune_alpha=False, init_alpha=1e-3,
                               num_critics=3, num_quantiles=10), 1500),
    "dqn": Variant("dqn", DQN, 3000, discrete=True),
    "ppo": Variant("ppo", dict(ON_POLICY, rollout_length=64, minibatch_size=64, num_epochs=4), 8192, num_envs=4),
}
"""One configuration per agent family: every probe, host and compiled loops."""

MORE_VARIANTS = {
    "ddpg": Variant("ddpg", dict(OFF_POLICY, target_tau=0.02), 1500),
    "sac-hl-gauss": Variant("sac", dict(VARIANTS["sac"].overrides, critic_head="hl-gauss", **DISTRIBUTION), 3000),
    "sac-discrete": Variant("sac-discrete", dict(OFF_POLICY, utd_ratio=1.0, autotune_alpha=False, init_alpha=1e-3),
                            3000, discrete=True),
    "dqn-3-step": Variant("dqn", dict(DQN, n_step=3), 3000, discrete=True),
    "c51": Variant("c51", dict(DQN, **DISTRIBUTION), 6000, discrete=True),  # cross-entropy heads settle slower
    "qr-dqn": Variant("qr-dqn", dict(DQN, num_bins=25), 3000, discrete=True),
    "dqn-hl-gauss": Variant("dqn", dict(DQN, critic_head="hl-gauss", **DISTRIBUTION), 6000, discrete=True),
    "a2c": Variant("a2c", ON_POLICY, 8192, num_envs=4),
}
"""Configurations whose targets differ from their family's (n-step returns, distributional heads, no clipping):
the two probes that check targets (discounted, truncated), host loop."""


@dataclasses.dataclass
class Trained:
    """A finished probe run, restored from its final checkpoint."""

    algo: str
    cfg: Any
    agent: Any  # agent state, leading seed axis S

    @property
    def module(self) -> Any:
        return agents.get(self.algo).module

    def greedy_actions(self, obs: float) -> np.ndarray:
        """The agent's deterministic action at `obs`, per seed [S] (Box: the single action coordinate)."""
        obs_b = jnp.full((1, 1), obs, jnp.float32)
        act = jax.vmap(lambda s: self.module.act(self.cfg, s, obs_b, jax.random.PRNGKey(0), True))
        return np.asarray(act(self.agent)).reshape(SEEDS)

    def values(self, obs: float) -> np.ndarray:
        """The learned value of `obs` under the agent's own greedy policy, per seed [S]: V(obs) for PPO/A2C,
        Q(obs, a*) with a* the greedy action for the Q learners (the value bootstrapping uses; a rarely taken
        action is fitted on few samples and may lag), the minimum over a critic ensemble (TQC: the mean over its
        critics' atoms, which its actor maximises)."""
        module, cfg, obs_b = self.module, self.cfg, jnp.full((1, 1), obs, jnp.float32)
        greedy = jnp.asarray(self.greedy_actions(obs))
        if module is ppo:
            return np.asarray(jax.vmap(lambda s: ppo.value(cfg, s, s.critic_params, obs_b)[0])(self.agent))
        if module is iql:  # V(s), the expectile (or Gumbel, or f-DVL dual) of Q over the data's actions
            _, _, value = iql.networks(cfg, 1)
            return np.asarray(jax.vmap(lambda s: value.apply(s.value_params, obs_b)[0, 0])(self.agent))
        if module is dqn:
            q = jax.vmap(lambda s: dqn.q_values(cfg, s.q_params, obs_b, s.num_actions)[0])(self.agent)  # [S, A]
        elif module is sac_discrete:
            def q_of(s: Any) -> jax.Array:
                _, critic = sac_discrete.networks(cfg, s.num_actions)
                return cfg.head.value(critic.apply(s.critic_params, obs_b)).min(axis=0)[0]  # [A]

            q = jax.vmap(q_of)(self.agent)
        else:
            networks = sac.networks if module is cql else module.networks  # CQL extends SAC's networks
            over_critics = jnp.mean if module is tqc else jnp.min

            def q_at(s: Any, action: jax.Array) -> jax.Array:
                _, critic = networks(cfg, s.action_dim)
                out = critic.apply(s.critic_params, obs_b, action.reshape(1, 1))  # [E, 1, K]
                return over_critics(cfg.head.value(out), axis=0)[0]

            return np.asarray(jax.vmap(q_at)(self.agent, greedy))
        return np.asarray(q[jnp.arange(SEEDS), greedy])


def train_probe(variant: Variant, probe: str, compiled: bool, tmp_path: Path) -> Trained:
    algo = variant.algo
    run = RunConfig(env=env_id(probe, variant.discrete, compiled), steps=variant.steps, num_seeds=SEEDS,
                    num_envs=variant.num_envs, eval_every=0, eval_episodes=2, log_every=variant.steps,
                    run_dir=str(tmp_path / f"{algo}-{probe}"), progress=False, tensorboard=False)
    cfg, run = with_settings(agents.get(algo).default_config, run, **variant.overrides)
    train(algo, cfg, run)
    found = checkpoint.latest_valid(Path(run.run_dir) / "checkpoints", quarantine=False)
    assert found is not None, "the run wrote no final checkpoint"
    return Trained(algo, *trained_agent(algo, cfg, run, found))


# CI runs a subset (about 5 minutes on 2 cores); `make test-all` runs every case. In CI: every family in the
# compiled loop on every probe, the host loops on the two target probes, the variants without a distributional
# head (the heads themselves are unit-tested against hand-computed cases in tests/unit/test_heads.py), and every
# offline agent on the truncated dataset.
SLOW = pytest.mark.slow
DISTRIBUTIONAL = {"sac-hl-gauss", "c51", "qr-dqn", "dqn-hl-gauss"}


def cases(target_probe: bool) -> list[Any]:
    """(variant, compiled) cases of one probe test: the families in both loops, plus MORE_VARIANTS (host) for the
    probes that check targets."""
    found = [pytest.param(VARIANTS[name], compiled, id=f"{name}-{'compiled' if compiled else 'host'}",
                          marks=() if compiled or target_probe else SLOW)
             for compiled in (False, True) for name in VARIANTS]
    if target_probe:
        found += [pytest.param(v, False, id=f"{name}-host", marks=SLOW if name in DISTRIBUTIONAL else ())
                  for name, v in MORE_VARIANTS.items()]
    return found


CASES, TARGET_CASES = cases(target_probe=False), cases(target_probe=True)


@pytest.mark.parametrize(("variant", "compiled"), CASES)
def test_constant_reward_is_learned(variant: Variant, compiled: bool, tmp_path: Path) -> None:
    trained = train_probe(variant, "constant", compiled, tmp_path)
    np.testing.assert_allclose(trained.values(1.0), 1.0, atol=VALUE_TOL)


@pytest.mark.parametrize(("variant", "compiled"), CASES)
def test_value_depends_on_the_observation(variant: Variant, compiled: bool, tmp_path: Path) -> None:
    trained = train_probe(variant, "observed", compiled, tmp_path)
    np.testing.assert_allclose(trained.values(1.0), 1.0, atol=VALUE_TOL)
    np.testing.assert_allclose(trained.values(-1.0), -1.0, atol=VALUE_TOL)


@pytest.mark.parametrize(("variant", "compiled"), TARGET_CASES)
def test_reward_is_discounted_once_per_step(variant: Variant, compiled: bool, tmp_path: Path) -> None:
    trained = train_probe(variant, "discounted", compiled, tmp_path)
    np.testing.assert_allclose(trained.values(1.0), 1.0, atol=VALUE_TOL)
    np.testing.assert_allclose(trained.values(-1.0), GAMMA, atol=VALUE_TOL)


@pytest.mark.parametrize(("variant", "compiled"), TARGET_CASES)
def test_time_limit_truncation_bootstraps(variant: Variant, compiled: bool, tmp_path: Path) -> None:
    """The endless task's value 1 / (1 - g) = 2, not the truncated returns' average 1.42 (termination's answer)."""
    trained = train_probe(variant, "truncated", compiled, tmp_path)
    as_if_terminated = np.mean([sum(GAMMA**k for k in range(n)) for n in range(1, TIME_LIMIT + 1)])
    assert abs(1 / (1 - GAMMA) - as_if_terminated) > 3 * VALUE_TOL  # the probe tells the two apart
    np.testing.assert_allclose(trained.values(1.0), 1 / (1 - GAMMA), atol=VALUE_TOL)


@pytest.mark.parametrize(("variant", "compiled"), CASES)
def test_best_action_follows_the_observation(variant: Variant, compiled: bool, tmp_path: Path) -> None:
    trained = train_probe(variant, "action", compiled, tmp_path)
    for obs in (-1.0, 1.0):
        actions = trained.greedy_actions(obs)
        if variant.discrete:
            np.testing.assert_array_equal(actions, int(obs > 0))
        else:
            np.testing.assert_allclose(actions, ACTION_TARGET * obs, atol=0.15)


# --- offline agents: the probes' transitions as a dataset -----------------------------------------------------

OFFLINE = dict(hidden_sizes=(32, 32), gamma=GAMMA, batch_size=64)
OFFLINE_VARIANTS = {
    "td3bc": Variant("td3bc", dict(OFFLINE, target_tau=0.02), 2000),
    "cql": Variant("cql", dict(OFFLINE, autotune_alpha=False, init_alpha=1e-3), 2000),
    "iql": Variant("iql", OFFLINE, 2000),
    "xql": Variant("xql", OFFLINE, 2000),
    "fdvl": Variant("fdvl", OFFLINE, 2000),
}
"""Offline agents: `steps` gradient steps on 2,000 transitions of uniformly random actions."""


def probe_dataset(probe: str, root: Path, transitions: int = 2000, seed: int = 0) -> Path:
    """A Minari-format dataset of the Box probe `probe` under uniformly random actions, recorded by the rollout
    that `critix collect` uses (truncated episodes keep their final observation)."""
    name, rng = env_id(probe, False, compiled=False), np.random.default_rng(seed)
    episodes = collect.rollout(name, lambda obs: rng.uniform(-1.0, 1.0, (len(obs), 1)).astype(np.float32),
                               steps=transitions, episodes=0, seed=seed)
    env = gym.make(name)
    return write_dataset(root, episodes, env.observation_space, env.action_space, f"critix/probe-{probe}/random-v0",
                         env_id=name)


def train_offline_probe(variant: Variant, probe: str, tmp_path: Path) -> Trained:
    algo = variant.algo
    cfg, _ = with_settings(agents.get(algo).default_config, RunConfig(),  # loop settings only matter online
                           **variant.overrides)
    run = offline.OfflineRunConfig(dataset=str(probe_dataset(probe, tmp_path / "data")), steps=variant.steps,
                                   num_seeds=SEEDS, chunk_size=variant.steps, eval_every=0, eval_episodes=2,
                                   run_dir=str(tmp_path / f"{algo}-{probe}"), progress=False, tensorboard=False)
    offline.train(algo, cfg, run)
    found = checkpoint.latest_valid(Path(run.run_dir) / "checkpoints", quarantine=False)
    assert found is not None, "the run wrote no final checkpoint"
    return Trained(algo, *trained_agent(algo, cfg, run, found))


def trained_agent(algo: str, cfg: Any, run: Any, found: tuple[Path, dict]) -> tuple[Any, Any]:
    """(the agent config the run trained with, its agents [S, ...]) from the run's final checkpoint."""
    stepper = make_stepper(algo, cfg, run)
    try:
        stepper.start(found)
    finally:
        stepper.close()
    return stepper.cfg, stepper.agent


OFFLINE_CASES = [pytest.param(v, id=name) for name, v in OFFLINE_VARIANTS.items()]


@pytest.mark.parametrize("variant", [pytest.param(v, id=name, marks=() if name in ("td3bc", "iql") else SLOW)
                                     for name, v in OFFLINE_VARIANTS.items()])
def test_offline_reward_is_discounted_once_per_step(variant: Variant, tmp_path: Path) -> None:
    trained = train_offline_probe(variant, "discounted", tmp_path)
    np.testing.assert_allclose(trained.values(1.0), 1.0, atol=VALUE_TOL)
    np.testing.assert_allclose(trained.values(-1.0), GAMMA, atol=VALUE_TOL)


@pytest.mark.parametrize("variant", OFFLINE_CASES)
def test_offline_truncated_episodes_bootstrap(variant: Variant, tmp_path: Path) -> None:
    """A dataset's time-limit truncations (D4RL's `timeouts`) are not terminations: the value is 2, not 1.42."""
    trained = train_offline_probe(variant, "truncated", tmp_path)
    np.testing.assert_allclose(trained.values(1.0), 1 / (1 - GAMMA), atol=VALUE_TOL)
