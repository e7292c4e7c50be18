"""Learning tests for PPO and A2C on CartPole-v1 (random policy: about 20; the maximum: 500), and compiled SAC on
gymnax Pendulum-v1 (random: about -1200; swung up and balanced: about -150).

The quick test runs in CI (compiled PPO, 1 seed); the `slow` tests are issue 3's acceptance figures and run with
`make test-all`.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from critix import agents
from critix.train.modes import train
from critix.train.config import RunConfig
from conftest import with_settings

# RL Zoo's tuned PPO settings for CartPole-v1 (rl-baselines3-zoo hyperparams/ppo.yml), with 8 envs.
ZOO_CARTPOLE = dict(rollout_length=32, minibatch_size=256, num_epochs=20, learning_rate=1e-3,
                    anneal_learning_rate=True, gae_lambda=0.8, gamma=0.98)


def run(algo: str, env: str, tmp_path: Path, steps: int, num_seeds: int, num_envs: int, **overrides: object) -> dict:
    run_cfg = RunConfig(env=env, steps=steps, num_seeds=num_seeds, num_envs=num_envs, eval_every=0,
                        eval_episodes=10, log_every=4096, run_dir=str(tmp_path / algo), progress=False,
                        tensorboard=False)
    cfg, run_cfg = with_settings(agents.get(algo).default_config, run_cfg, **overrides)
    return train(algo, cfg, run_cfg)


def test_compiled_ppo_learns_cartpole_quickly(tmp_path: Path) -> None:
    """CI's on-policy learning test: compiled PPO, 2 seeds, 32,768 steps. Over seeds 0-5 one seed in six ends
    below 150 (2026-12-05: 119, 500, 500, 500, 500, 419; at cb88f32 with its random streams: 467, 331, 308, 136,
    500, 500), so the test asks the mean of two seeds; a random policy scores about 20."""
    summary = run("ppo", "gymnax:CartPole-v1", tmp_path, steps=32_768, num_seeds=2, num_envs=8, **ZOO_CARTPOLE)
    assert summary["final_return_mean"] >= 150, summary["final_return"]


@pytest.mark.slow
def test_ppo_cartpole_acceptance(tmp_path: Path) -> None:
    """Host PPO with its (SB3) defaults, 4 envs: mean final return over 3 seeds >= 475 after 100,000 steps."""
    summary = run("ppo", "CartPole-v1", tmp_path, steps=100_000, num_seeds=3, num_envs=4)
    assert summary["final_return_mean"] >= 475, summary["final_return"]


@pytest.mark.slow
def test_a2c_cartpole_acceptance(tmp_path: Path) -> None:
    """Host A2C with its defaults, 8 envs: mean final return over 3 seeds >= 400 after 200,000 steps."""
    summary = run("a2c", "CartPole-v1", tmp_path, steps=200_000, num_seeds=3, num_envs=8)
    assert summary["final_return_mean"] >= 400, summary["final_return"]


@pytest.mark.slow
def test_compiled_sac_gymnax_pendulum_acceptance(tmp_path: Path) -> None:
    """Compiled SAC, 8 seeds x 20,000 steps on gymnax Pendulum-v1: mean final return >= -200."""
    summary = run("sac", "gymnax:Pendulum-v1", tmp_path, steps=20_000, num_seeds=8, num_envs=1,
                  learning_starts=1_000)
    assert summary["final_return_mean"] >= -200, summary["final_return"]
