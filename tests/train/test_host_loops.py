"""The host loops with several envs per seed: off-policy agents keep their update ratio per env step."""

from __future__ import annotations

from pathlib import Path

import pytest

from critix import agents
from critix.train import RunConfig, train


@pytest.mark.parametrize("num_envs", [1, 4])
def test_offpolicy_num_envs_keeps_the_update_ratio_per_env_step(num_envs: int, tmp_path: Path) -> None:
    """DQN at utd 0.25 over 400 env steps per seed makes 100 gradient steps per seed, whether the 400 steps come
    from 1 env or from 4 envs stepped 100 times."""
    cfg = agents.get("dqn").default_config.__class__(hidden_sizes=(16,), batch_size=16, exploration_steps=200)
    run = RunConfig(env="CartPole-v1", steps=400, num_envs=num_envs, num_seeds=2, learning_starts=40, utd_ratio=0.25,
                    chunk_size=40, eval_every=0, eval_episodes=1, log_every=0, progress=False, tensorboard=False,
                    run_dir=str(tmp_path / "run"))
    summary = train("dqn", cfg, run)
    assert summary["steps"] == 400
    assert summary["gradient_steps"] == 100  # 0.25 x 400: the chunk reaching learning_starts trains too
