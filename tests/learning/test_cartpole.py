"""Learning tests on CartPole-v1 for the DQN family and discrete SAC, with the tuned per-env defaults.

A random policy scores about 22 on CartPole-v1; the maximum is 500. The quick DQN test runs in CI; the `slow`
tests are the acceptance figures of issue 4 (3 seeds, 50,000 steps: >= 475 for dqn/c51/qr-dqn/HL-Gauss DQN,
>= 400 for discrete SAC) and SAC with the HL-Gauss head on Pendulum-v1 (20,000 steps, >= -200).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from critix import agents
from critix.agents import tuned
from critix.train import RunConfig, train
from conftest import with_settings


def run(algo: str, env: str, tmp_path: Path, steps: int, num_seeds: int, **overrides: object) -> dict:
    cfg, run_cfg = tuned.apply(algo, env, agents.get(algo).default_config, RunConfig(env=env))
    cfg, run_cfg = with_settings(cfg, run_cfg, **overrides)
    run_cfg = dataclasses.replace(run_cfg, steps=steps, num_seeds=num_seeds, eval_every=0, eval_episodes=10,
                                  run_dir=str(tmp_path / algo), progress=False, tensorboard=False)
    return train(algo, cfg, run_cfg)


def test_dqn_learns_cartpole_quickly(tmp_path: Path) -> None:
    """CI's representative DQN test: tuned defaults, 1 seed, 12,000 steps (a random policy scores ~22)."""
    summary = run("dqn", "CartPole-v1", tmp_path, steps=12_000, num_seeds=1)
    assert summary["final_return_mean"] >= 100, summary["final_return"]


@pytest.mark.slow
@pytest.mark.parametrize("algo,overrides", [("dqn", {}), ("c51", {}), ("qr-dqn", {}),
                                            ("dqn", {"critic_head": "hl-gauss"})])
def test_cartpole_acceptance(algo: str, overrides: dict, tmp_path: Path) -> None:
    summary = run(algo, "CartPole-v1", tmp_path, steps=50_000, num_seeds=3, **overrides)
    assert summary["final_return_mean"] >= 475, summary["final_return"]


@pytest.mark.slow
def test_sac_discrete_cartpole_acceptance(tmp_path: Path) -> None:
    summary = run("sac-discrete", "CartPole-v1", tmp_path, steps=50_000, num_seeds=3)
    assert summary["final_return_mean"] >= 400, summary["final_return"]


@pytest.mark.slow
def test_sac_hl_gauss_pendulum_acceptance(tmp_path: Path) -> None:
    summary = run("sac", "Pendulum-v1", tmp_path, steps=20_000, num_seeds=3, critic_head="hl-gauss",
                  learning_starts=1_000)
    assert summary["final_return_mean"] >= -200, summary["final_return"]
