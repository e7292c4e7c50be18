"""Checkpoint integrity: checksums catch truncated and edited files, the loader falls back to the previous good
checkpoint, format versions are named in errors, interrupted writes leave nothing half-valid."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode

from critix.envs.snapshot import SnapshotUnsupported, restore_vector_env, snapshot_vector_env
from critix.train import checkpoint
from critix.train.logging import MetricsLogger
from critix.types import CritixError


def tree(scale: float) -> dict:
    return {"w": np.full((4, 3), scale, np.float32), "n": np.array(int(scale), np.int32)}


def two_checkpoints(directory: Path) -> tuple[Path, Path]:
    old = checkpoint.save(directory, 100, tree(1.0), {"note": "old"}, keep=3)
    new = checkpoint.save(directory, 200, tree(2.0), {"note": "new"}, keep=3)
    return old, new


def test_truncated_state_falls_back_to_the_previous_checkpoint(tmp_path: Path) -> None:
    old, new = two_checkpoints(tmp_path)
    state = new / checkpoint.STATE_FILE
    state.write_bytes(state.read_bytes()[:-7])
    with pytest.raises(CritixError, match="is corrupt"):
        checkpoint.verify(new)
    with pytest.warns(UserWarning, match="skipping checkpoint step_000000000200"):
        found = checkpoint.latest_valid(tmp_path)
    assert found is not None and found[0] == old and found[1]["note"] == "old"
    assert (tmp_path / "corrupt_step_000000000200").is_dir()  # moved aside, kept for inspection
    assert checkpoint.list_checkpoints(tmp_path) == [old]
    loaded, _ = checkpoint.load(old, tree(0.0))
    np.testing.assert_array_equal(loaded["w"], tree(1.0)["w"])


def test_bit_flip_and_edited_metadata_are_detected(tmp_path: Path) -> None:
    _, new = two_checkpoints(tmp_path)
    state = new / checkpoint.STATE_FILE
    raw = bytearray(state.read_bytes())
    raw[-1] ^= 0x01  # same size, one bit different
    state.write_bytes(bytes(raw))
    with pytest.raises(CritixError, match="checksum mismatch"):
        checkpoint.load(new, tree(0.0))
    meta_path = new / checkpoint.META_FILE
    meta = json.loads(meta_path.read_text())
    meta["step"] = 999
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(CritixError, match="does not match its checksum"):
        checkpoint.load_meta(new)


@pytest.mark.parametrize(
    ("version", "message"),
    [(3, "written by critix 9.9.9; this critix .* reads formats 1-2. Upgrade critix to 9.9.9 or newer"),
     (0, "written by critix 9.9.9; this critix .* reads formats 1-2. Load it with critix 9.9.9"),
     ("2", "no integer format_version"),
     (None, "no integer format_version")],
)
def test_format_versions_are_named(tmp_path: Path, version: object, message: str) -> None:
    ckpt = checkpoint.save(tmp_path, 1, tree(1.0), {})
    meta = json.loads((ckpt / checkpoint.META_FILE).read_text())
    meta["format_version"], meta["critix_version"] = version, "9.9.9"
    (ckpt / checkpoint.META_FILE).write_text(json.dumps(meta))
    with pytest.raises(CritixError, match=message):
        checkpoint.load(ckpt, tree(0.0))


def test_format_1_checkpoints_still_load_unverified(tmp_path: Path) -> None:
    ckpt = checkpoint.save(tmp_path, 5, tree(3.0), {"counters": {}})
    meta = json.loads((ckpt / checkpoint.META_FILE).read_text())
    for key in ("files", checkpoint.META_CHECKSUM):  # what critix 0.1.0 (format 1) wrote
        del meta[key]
    meta["format_version"] = 1
    (ckpt / checkpoint.META_FILE).write_text(json.dumps(meta))
    with pytest.warns(UserWarning, match="has format 1 .* no checksums"):
        loaded, meta = checkpoint.load(ckpt, tree(0.0))
    np.testing.assert_array_equal(loaded["w"], tree(3.0)["w"])


def test_no_readable_checkpoint_is_an_error_naming_each_problem(tmp_path: Path) -> None:
    old, new = two_checkpoints(tmp_path)
    for ckpt in (old, new):
        (ckpt / checkpoint.STATE_FILE).write_bytes(b"\x00")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(CritixError, match="no readable checkpoint .*step_000000000200.*step_000000000100"):
            checkpoint.latest_valid(tmp_path)


def test_interrupted_saves_leave_no_valid_looking_checkpoint(tmp_path: Path) -> None:
    old, _ = two_checkpoints(tmp_path)
    # A kill after state.safetensors but before meta.json: an incomplete folder, and a stray temp file.
    partial = tmp_path / "step_000000000300"
    partial.mkdir()
    (partial / checkpoint.STATE_FILE).write_bytes(b"partial")
    (partial / ".meta.json.abc.tmp").write_bytes(b"{")
    assert [p.name for p in checkpoint.list_checkpoints(tmp_path)] == ["step_000000000100", "step_000000000200"]
    # The resumed run saves step 300 again: the temp file goes, the folder becomes a complete checkpoint.
    checkpoint.save(tmp_path, 300, tree(3.0), {}, keep=2)
    assert not list(partial.glob(".*.tmp"))
    assert [p.name for p in checkpoint.list_checkpoints(tmp_path)] == ["step_000000000200", "step_000000000300"]
    assert not old.exists()
    checkpoint.verify(partial)
    # An incomplete folder older than the newest save is removed by pruning.
    (tmp_path / "step_000000000250").mkdir()
    checkpoint.save(tmp_path, 400, tree(4.0), {}, keep=2)
    assert not (tmp_path / "step_000000000250").exists()


def test_metrics_truncation_drops_rows_after_the_checkpoint_and_a_partial_row(tmp_path: Path) -> None:
    logger = MetricsLogger(tmp_path, 2, ["loss"], tensorboard=False)
    for step in (100, 200, 300):
        logger.log(step, 1.0, {"loss": np.array([0.5, 0.25])})
    with (tmp_path / "metrics.csv").open("a") as f:
        f.write("3")  # a kill in the middle of appending the row of step 3xx
    logger.truncate_after(200)
    lines = (tmp_path / "metrics.csv").read_text().splitlines()
    assert lines[0] == "step,seed,wall_seconds,loss"
    assert [line.split(",")[:2] for line in lines[1:]] == [["100", "0"], ["100", "1"], ["200", "0"], ["200", "1"]]


def make(env_id: str, n: int = 2, mode: str = "sync") -> gym.vector.VectorEnv:
    return gym.make_vec(env_id, num_envs=n, vectorization_mode=mode,
                        vector_kwargs={"autoreset_mode": AutoresetMode.SAME_STEP})


@pytest.mark.parametrize("env_id", ["Pendulum-v1", "CartPole-v1", "MountainCarContinuous-v0", "Hopper-v5"])
def test_env_snapshot_continues_bit_identically(env_id: str) -> None:
    """Through JSON and into a fresh env reset with another seed: the next 300 steps (resets included) match."""
    a = make(env_id)
    a.reset(seed=1)
    a.action_space.seed(0)
    actions = [a.action_space.sample() for _ in range(400)]
    for action in actions[:100]:
        a.step(action)
    snap = json.loads(json.dumps(snapshot_vector_env(a)))
    expected = [a.step(action) for action in actions[100:]]
    b = make(env_id)
    b.reset(seed=12345)
    restore_vector_env(b, snap)
    got = [b.step(action) for action in actions[100:]]
    dones = 0
    for (o1, r1, te1, tr1, _), (o2, r2, te2, tr2, _) in zip(expected, got, strict=True):
        np.testing.assert_array_equal(o1, o2)
        np.testing.assert_array_equal(r1, r2)
        np.testing.assert_array_equal(te1 | tr1, te2 | tr2)
        dones += int(np.sum(te1 | tr1))
    if env_id in ("Pendulum-v1", "CartPole-v1"):
        assert dones > 0  # the comparison covered episode ends and the env's own random resets


class OpaqueEnv(gym.Env):
    """An env critix knows nothing about."""

    observation_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
    action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)

    def reset(self, *, seed=None, options=None):  # noqa: ANN001, ANN201
        super().reset(seed=seed)
        return np.zeros(2, np.float32), {}

    def step(self, action):  # noqa: ANN001, ANN201
        return np.zeros(2, np.float32), 0.0, False, False, {}


def test_env_snapshot_refuses_what_it_cannot_capture() -> None:
    gym.register("critix-test/Opaque-v0", entry_point=OpaqueEnv, max_episode_steps=10)
    opaque = make("critix-test/Opaque-v0", 1)
    opaque.reset(seed=0)
    with pytest.raises(SnapshotUnsupported, match="neither a classic-control nor a MuJoCo env"):
        snapshot_vector_env(opaque)
    pendulum = make("Pendulum-v1", 2)
    pendulum.reset(seed=0)
    snap = snapshot_vector_env(pendulum)
    other = make("Pendulum-v1", 3)
    other.reset(seed=0)
    with pytest.raises(CritixError, match="holds 2 envs; this run has 3"):
        restore_vector_env(other, snap)
    cartpole = make("CartPole-v1", 2)
    cartpole.reset(seed=0)
    with pytest.raises(CritixError, match="is of 'Pendulum-v1', this run uses 'CartPole-v1'"):
        restore_vector_env(cartpole, snap)


def test_unsupported_envs_resume_with_fresh_episodes_and_a_warning() -> None:
    from critix.train.resume import LoopState, restore_loop

    gym.register("critix-test/Opaque-v1", entry_point=OpaqueEnv, max_episode_steps=10)
    env = make("critix-test/Opaque-v1", 2)
    obs, _ = env.reset(seed=0)
    loop = LoopState(obs, np.array([1.5, -2.0]), [[3.0], []], {"critic/loss": np.array([0.25], np.float32)})
    record = json.loads(json.dumps(loop.to_json(env)))
    assert record["env"] is None and "neither a classic-control nor a MuJoCo env" in record["env_unsupported"]
    with pytest.warns(UserWarning, match="could not be saved .* starts fresh episodes"):
        assert restore_loop(record, env, 2, (2,)) is None
    with pytest.raises(CritixError, match="loop state holds 2 envs"):
        restore_loop(record, env, 2, (5,))
    with pytest.raises(CritixError, match="loop state is malformed"):
        restore_loop({"obs": "x"}, env, 2, (2,))


def test_metrics_csv_left_empty_by_a_kill_gets_its_header(tmp_path: Path) -> None:
    (tmp_path / "metrics.csv").write_text("")  # killed between creating the file and writing the header
    logger = MetricsLogger(tmp_path, 1, ["loss"], tensorboard=False)
    logger.truncate_after(0)
    logger.log(100, 1.0, {"loss": np.array([0.5])})
    assert (tmp_path / "metrics.csv").read_text().splitlines() == ["step,seed,wall_seconds,loss", "100,0,1,0.5"]
