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


def acting_agents(overlap: bool) -> tuple[list[int], int]:
    """A DQN run of 8 chunks of 40 env steps (learning from step 40): per chunk, the gradient steps of the agent
    the chunk acts with (from `Acting.start`, -1 for a chunk of random actions), and the run's gradient steps."""
    from critix.train.offpolicy import OffPolicy

    cfg = agents.get("dqn").default_config.__class__(hidden_sizes=(16,), batch_size=16, exploration_steps=200)
    run = RunConfig(env="CartPole-v1", steps=320, learning_starts=40, utd_ratio=0.25, chunk_size=40, acting="numpy",
                    eval_episodes=1, overlap_updates=overlap, progress=False, tensorboard=False)
    stepper = OffPolicy("dqn", cfg, run)
    seen: list[int] = []
    try:
        stepper.start(None)
        start = stepper.acting.start

        def record(agent, flat=None):  # type: ignore[no-untyped-def]
            seen.append(int(agent.steps[0]))
            start(agent, flat)

        stepper.acting.start = record  # type: ignore[method-assign]
        acted = []
        while stepper.vector_steps < stepper.total_vector_steps:
            before = len(seen)
            stepper.advance()
            acted.append(seen[-1] if len(seen) > before else -1)
        return acted, stepper.gradient_steps()
    finally:
        stepper.close()


def test_overlap_updates_acts_one_chunk_later_with_the_same_updates() -> None:
    """--overlap-updates: chunk c acts with the agent chunk c-1 acted with without the flag (the updates on chunk
    c-1 run while chunk c steps the envs), and the run makes the same gradient steps (the last chunk's included)."""
    plain, plain_updates = acting_agents(False)
    overlap, overlap_updates = acting_agents(True)
    # 10 gradient steps per 40-step chunk, from the first (which ends at learning_starts; it acts at random)
    assert plain == [-1, 10, 20, 30, 40, 50, 60, 70]
    assert overlap == [-1, 0, 10, 20, 30, 40, 50, 60]
    assert plain_updates == overlap_updates == 80


@pytest.mark.parametrize("overlap", [False, True])
def test_training_calls_return_the_acting_parameters_and_noise_drawn_ahead_is_the_same(overlap: bool) -> None:
    """NumPy acting takes its parameters from what the chunk's training call returned (no call of its own): they
    equal `Acting.flat_params` of the agent the call made. The next block's random numbers, dispatched ahead with
    --overlap-updates, equal a draw of that block made when it is needed."""
    import jax
    import numpy as np

    from critix.train.offpolicy import OffPolicy

    cfg = agents.get("dqn").default_config.__class__(hidden_sizes=(16,), batch_size=16, exploration_steps=200)
    run = RunConfig(env="CartPole-v1", steps=640, learning_starts=40, utd_ratio=0.25, chunk_size=40, acting="numpy",
                    eval_episodes=1, overlap_updates=overlap, progress=False, tensorboard=False)
    stepper = OffPolicy("dqn", cfg, run)
    try:
        stepper.start(None)
        for _ in range(12):  # 480 steps: blocks 0 and 1 of the random numbers
            stepper.advance()
        agent, flat = stepper.host_flat
        assert agent is stepper.agent
        np.testing.assert_array_equal(flat, np.asarray(stepper.acting.flat_params(stepper.agent)))
        acting = stepper.acting
        assert acting.block == 1 and (2 in acting.dispatched) == overlap  # 440-480 acts in block 1; 2 is next
        for block in (1, 2):
            got = acting.noise if block == 1 else acting._fetch(2)
            want = [x[0] for x in jax.tree.leaves(jax.device_get(acting.draw(acting.keys, np.int32(block))))]
            for a, b in zip(got, want, strict=True):
                np.testing.assert_array_equal(a, b)
    finally:
        stepper.close()
