"""Learning tests: real agents on Pendulum-v1 with return thresholds that a broken agent misses.

A random policy scores about -1200 on Pendulum-v1 and a do-nothing policy about -1100 to -1300; a policy that
swings up and balances scores about -150. The quick test runs in CI; the `slow` tests are the foundation's
acceptance criterion (3 seeds, 15,000 steps, mean final return >= -200) and TQC's (2 seeds, 10,000 steps, >= -400),
and run with `make test-all`.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from critix import agents
from critix.train import RunConfig, train
from conftest import with_settings


def run(algo: str, tmp_path: Path, steps: int, num_seeds: int, **overrides: object) -> dict:
    spec = agents.get(algo)
    import dataclasses

    run_cfg = RunConfig(env="Pendulum-v1", steps=steps, num_seeds=num_seeds, eval_every=0, eval_episodes=10,
                        run_dir=str(tmp_path / algo), progress=False, tensorboard=False)
    cfg, run_cfg = with_settings(spec.default_config, run_cfg, **overrides)
    return train(algo, cfg, run_cfg)


def test_td3_learns_pendulum_quickly(tmp_path: Path) -> None:
    """CI's representative learning test: TD3, 1 seed, 8,000 steps (reaches about -120 here)."""
    summary = run("td3", tmp_path, steps=8_000, num_seeds=1, learning_starts=1_000)
    assert summary["final_return_mean"] >= -400, summary["final_return"]


@pytest.mark.slow
@pytest.mark.parametrize("algo", ["sac", "td3", "ddpg"])
def test_pendulum_acceptance(algo: str, tmp_path: Path) -> None:
    """Mean final evaluation return over 3 seeds >= -200 after 15,000 env steps (default networks)."""
    summary = run(algo, tmp_path, steps=15_000, num_seeds=3, learning_starts=1_000)
    assert summary["final_return_mean"] >= -200, summary["final_return"]


@pytest.mark.slow
def test_tqc_learns_pendulum(tmp_path: Path) -> None:
    """TQC, mean final evaluation return over 2 seeds >= -400 after 10,000 env steps (measured -176.2: -207.6, -144.8;
    6 minutes on 2 cores under the tests' unoptimised XLA backend, 2 minutes from the CLI).

    The paper's critics (5 x 3 layers of 512) cost about 20 times more per update on a CPU than the 2 critics of
    256 x 256 run here (25 quantiles, the top 2 per critic dropped: SB3-contrib's defaults); the probes (tests/probe)
    are TQC's CI-sized check."""
    summary = run("tqc", tmp_path, steps=10_000, num_seeds=2, learning_starts=1_000, critic_hidden_sizes=(256, 256),
                  num_critics=2)
    assert summary["final_return_mean"] >= -400, summary["final_return"]
