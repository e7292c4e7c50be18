"""Numerical guards: NaN/Inf from the environment or in the losses stops a run cleanly or is skipped and counted."""

from __future__ import annotations

import json
from pathlib import Path

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from gymnasium.envs.classic_control.pendulum import PendulumEnv
from safetensors.numpy import load_file

from critix.cli import main
from critix.data import replay
from critix.train import checkpoint, guards
from critix.stats.runs import read_metrics
from critix.types import Transition


class FaultyPendulum(gym.Wrapper):
    """Pendulum whose observation is NaN at env step `nan_obs_at` and whose rewards are scaled by
    `reward_scale` from step `huge_rewards_from` on (1e30 overflows the float32 critic loss to Inf)."""

    def __init__(self, nan_obs_at: int = -1, huge_rewards_from: int = -1, reward_scale: float = 1e30) -> None:
        super().__init__(PendulumEnv())
        self.t, self.nan_obs_at, self.huge_from, self.scale = 0, nan_obs_at, huge_rewards_from, reward_scale

    def step(self, action):  # noqa: ANN001, ANN201
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.t += 1
        if self.t == self.nan_obs_at:
            obs = np.full_like(obs, np.nan)
        if 0 <= self.huge_from <= self.t:
            reward = reward * self.scale
        return obs, reward, terminated, truncated, info


gym.register("critix-test/NaNObsPendulum-v0", entry_point=lambda: FaultyPendulum(nan_obs_at=160),
             max_episode_steps=200)
gym.register("critix-test/HugeRewardPendulum-v0", entry_point=lambda: FaultyPendulum(huge_rewards_from=160),
             max_episode_steps=200)
gym.register("critix-test/FaultyPendulum-v0",
             entry_point=lambda: FaultyPendulum(nan_obs_at=130, huge_rewards_from=260), max_episode_steps=200)

ARGS = ["--steps", "300", "--hidden-sizes", "32", "32", "--batch-size", "32", "--learning-starts", "100",
        "--chunk-size", "25", "--eval-every", "300", "--checkpoint-every", "50", "--log-every", "50", "--eval-episodes", "2",
        "--no-progress", "--no-tensorboard"]


@pytest.mark.parametrize(
    ("env_id", "message"),
    [("critix-test/NaNObsPendulum-v0", "transition(s) with NaN/Inf observations or rewards"),
     ("critix-test/HugeRewardPendulum-v0", "update(s) with NaN/Inf losses or parameters")],
)
def test_on_nan_stop_keeps_the_last_good_checkpoint(env_id: str, message: str, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    run_dir = tmp_path / "run"
    assert main(["train", "sac", "--env", env_id, "--run-dir", str(run_dir), *ARGS]) == 2
    err = capsys.readouterr().err
    assert "non-finite values in the chunk ending at env step 175" in err and message in err
    assert "step_000000000150, is kept" in err and "--on-nan skip" in err and "Traceback" not in err
    last = checkpoint.latest(run_dir / "checkpoints")
    assert last is not None and last.name == "step_000000000150"
    checkpoint.verify(last)
    arrays = load_file(last / checkpoint.STATE_FILE)
    assert all(np.isfinite(a).all() for a in arrays.values() if a.dtype.kind == "f")
    assert read_metrics(run_dir / "metrics.csv")["step"].max() == 150  # nothing logged from the bad chunk


def test_on_nan_skip_drops_and_counts(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    assert main(["train", "sac", "--env", "critix-test/FaultyPendulum-v0", "--on-nan", "skip",
                 "--run-dir", str(run_dir), *ARGS]) == 0
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["skipped_transitions"] == 2  # the NaN observation is next_obs of one transition, obs of the next
    assert summary["skipped_updates"] > 0  # every update once rewards are 1e30
    assert summary["skipped_updates"] < summary["gradient_steps"]  # ... and only those
    metrics = read_metrics(run_dir / "metrics.csv")
    assert np.nanmax(metrics["guard/skipped_transitions"]) == 2
    assert np.nanmax(metrics["guard/skipped_updates"]) == summary["skipped_updates"]
    arrays = load_file(checkpoint.latest(run_dir / "checkpoints") / checkpoint.STATE_FILE)
    params = {k: v for k, v in arrays.items() if k.startswith("['agent']") and v.dtype.kind == "f"}
    assert params and all(np.isfinite(v).all() for v in params.values())
    assert np.isfinite(arrays["['buffer'].data.obs"]).all() and np.isfinite(arrays["['buffer'].data.next_obs"]).all()


def test_add_masked_writes_only_valid_items_in_order() -> None:
    example = Transition(np.zeros(2, np.float32), np.zeros(1, np.float32), np.zeros((), np.float32),
                         np.zeros(2, np.float32), np.zeros((), bool), np.zeros((), bool))
    buffer = replay.init(4, example)
    items = jax.tree.map(lambda x: jnp.stack([jnp.full(x.shape, i, x.dtype) for i in range(1, 6)]), example)
    valid = jnp.array([True, False, True, True, True])
    out = jax.jit(replay.add_masked)(buffer, items, valid)
    # items 1, 3, 4 and 5 are kept, contiguously from the ring position; item 2 is dropped
    np.testing.assert_array_equal(out.data.reward, [1, 3, 4, 5])
    assert int(out.size) == 4 and int(out.position) == 0
    again = jax.jit(replay.add_masked)(out, items, jnp.array([False, True, False, False, False]))
    np.testing.assert_array_equal(again.data.reward, [2, 3, 4, 5])  # wraps: overwrites the oldest
    assert int(again.size) == 4 and int(again.position) == 1


def test_skip_nonfinite_updates_keeps_the_previous_state() -> None:
    def update(state: dict, batch: jax.Array) -> tuple[dict, dict]:
        new = {"w": state["w"] + batch, "n": state["n"] + 1}
        return new, {"loss": jnp.sum(new["w"])}

    state = {"w": jnp.zeros(2), "n": jnp.zeros((), jnp.int32)}
    batches = jnp.array([[1.0, 1.0], [jnp.inf, 0.0], [jnp.nan, 0.0], [2.0, 2.0]])
    out, metrics, skipped = jax.jit(lambda s, b: guards.skip_nonfinite_updates(update, s, b))(state, batches)
    np.testing.assert_array_equal(skipped, [False, True, True, False])
    np.testing.assert_array_equal(out["w"], [3.0, 3.0])
    assert int(out["n"]) == 2
    assert metrics["loss"].shape == (4,)
    assert not bool(guards.all_finite({"a": jnp.array([1.0, jnp.nan]), "k": jnp.array([1], jnp.uint32)}))
    assert bool(guards.all_finite({"a": jnp.ones(2), "k": jnp.array([1], jnp.uint32)}))
    assert int(guards.nonfinite_steps({"a": jnp.array([0.0, jnp.inf, jnp.nan]), "b": jnp.array([jnp.inf, 0, 0])})) == 2
