"""Videos of evaluation episodes (`--video-every`, `critix eval --video`): files that read back with the episode's
frames, listed in summary.json, in every mode, kept exact across a resume, and clear errors where none can be made.

A video holds the episode's first frame and one per step (length + 1 frames). The expected lengths come from
outside the video code: CartPole pays 1 per step, so an evaluation episode's length is its return in metrics.csv
(with one evaluation episode, the video's episode is that one); Pendulum's episodes are cut at 200 steps.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import gymnasium as gym
import imageio.v2 as imageio
import numpy as np
import pytest

from critix.cli import main
from critix.train import video
from critix.types import CritixError

TINY = ["--hidden-sizes", "32", "32", "--batch-size", "32", "--learning-starts", "100", "--chunk-size", "100",
        "--no-progress", "--no-tensorboard"]


def frames(path: Path) -> int:
    return imageio.get_reader(str(path)).count_frames()


def eval_returns(run_dir: Path) -> dict[int, float]:
    """step -> eval/return of seed 0, from metrics.csv."""
    with (run_dir / "metrics.csv").open(newline="") as f:
        return {int(r["step"]): float(r["eval/return"]) for r in csv.DictReader(f)
                if r["eval/return"] and r["seed"] == "0"}


def test_training_videos_have_the_evaluation_episodes_frames(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    assert main(["train", "dqn", "--env", "CartPole-v1", "--steps", "600", "--eval-every", "200", "--eval-episodes",
                 "1", "--video-every", "400", "--run-dir", str(run_dir), *TINY]) == 0
    names = ["videos/step_000000000400.mp4", "videos/step_000000000600.mp4"]  # the multiple of 400, and the end
    assert json.loads((run_dir / "summary.json").read_text())["videos"] == names
    returns = eval_returns(run_dir)
    for name in names:
        step = int(Path(name).stem.split("_")[1])
        assert frames(run_dir / name) == returns[step] + 1, name  # CartPole: length = return


def test_eval_video_records_episodes_and_lists_them(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_dir = tmp_path / "run"
    assert main(["train", "sac", "--env", "Pendulum-v1", "--steps", "200", "--num-seeds", "2", "--run-dir",
                 str(run_dir), *TINY]) == 0
    assert json.loads((run_dir / "summary.json").read_text())["videos"] == []
    capsys.readouterr()
    assert main(["eval", str(run_dir), "--episodes", "2", "--video", "--video-episodes", "2"]) == 0
    out = capsys.readouterr().out
    result = json.loads(out[out.index("{"): out.rindex("}") + 1])
    names = ["videos/eval_step_000000000200.mp4", "videos/eval_step_000000000200_episode_1.mp4"]
    assert result["videos"] == names
    assert json.loads((run_dir / "summary.json").read_text())["videos"] == names
    for name in names:
        assert frames(run_dir / name) == 201  # Pendulum-v1's TimeLimit: 200 steps


def test_resume_neither_duplicates_nor_loses_videos(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    base = ["--env", "CartPole-v1", "--eval-every", "200", "--eval-episodes", "1", "--video-every", "200",
            "--run-dir", str(run_dir), *TINY]
    assert main(["train", "dqn", "--steps", "400", *base]) == 0
    videos = run_dir / "videos"
    first = (videos / "step_000000000200.mp4").read_bytes()
    # A process killed after its video at 400 and before that checkpoint: the video (here torn) and a temporary
    # file are there, the checkpoint is not.
    import shutil

    shutil.rmtree(run_dir / "checkpoints" / "step_000000000400")
    (videos / "step_000000000400.mp4").write_bytes(b"torn")
    (videos / ".step_000000000600.abc.tmp.mp4").write_bytes(b"partial")
    assert main(["train", "dqn", "--resume", str(run_dir), "--steps", "600", "--no-progress"]) == 0
    names = ["videos/step_000000000200.mp4", "videos/step_000000000400.mp4", "videos/step_000000000600.mp4"]
    assert sorted(p.name for p in videos.iterdir()) == [Path(n).name for n in names]
    assert json.loads((run_dir / "summary.json").read_text())["videos"] == names
    assert (videos / "step_000000000200.mp4").read_bytes() == first  # before the checkpoint: kept as it was
    returns = eval_returns(run_dir)
    for name in names:
        assert frames(run_dir / name) == returns[int(Path(name).stem.split("_")[1])] + 1


def test_offline_runs_record_videos_in_their_evaluation_env(tmp_path: Path) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
    from test_datasets import make_episodes, write

    dataset = write(tmp_path / "ds", make_episodes(4, 10))  # Pendulum-v1 transitions
    run_dir = tmp_path / "run"
    assert main(["train", "bc", "--dataset", str(dataset), "--steps", "20", "--chunk-size", "10", "--eval-every",
                 "10", "--video-every", "20", "--hidden-sizes", "16", "16", "--batch-size", "8", "--eval-episodes",
                 "1", "--run-dir", str(run_dir), "--no-progress", "--no-tensorboard"]) == 0
    assert json.loads((run_dir / "summary.json").read_text())["videos"] == ["videos/step_000000000020.mp4"]
    assert frames(run_dir / "videos" / "step_000000000020.mp4") == 201


# --- the recorder on its own, with a stand-in stepper ----------------------------------------------------------

class Still:
    """A stepper stand-in whose agent always sends the middle action (0 for Box envs, `n // 2` for Discrete)."""

    def __init__(self, env_id: str, num_members: int = 2) -> None:
        env = gym.make(env_id)
        self.env_id, self.num_members = env_id, num_members
        self.obs_space, self.act_space = env.observation_space, env.action_space
        self.seen: list[np.ndarray] = []

    def greedy_actions(self, obs: np.ndarray) -> np.ndarray:
        self.seen.append(obs)
        if isinstance(self.act_space, gym.spaces.Discrete):
            return np.full(obs.shape[:2], self.act_space.n // 2, np.int32)
        return np.zeros((*obs.shape[:2], *self.act_space.shape), np.float32)


def play(env_id: str, seed: int, action: Any) -> int:
    """Length of an episode of `env_id` from reset(seed) with a constant env action, without rendering."""
    env = gym.make(env_id)
    env.reset(seed=seed)
    for length in range(1, 100_000):
        _, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            return length
    raise AssertionError("no end")


def test_recorder_plays_a_member_from_the_evaluation_seed(tmp_path: Path) -> None:
    stepper = Still("CartPole-v1", num_members=3)
    recorder = video.Recorder.for_stepper(stepper, episodes=2)
    try:
        (clips,) = recorder.record(stepper, [1], [tmp_path], "step_000000000007", seed=100, eval_episodes=4)
    finally:
        recorder.close()
    assert [c.path.name for c in clips] == ["step_000000000007.mp4", "step_000000000007_episode_1.mp4"]
    assert all(obs.shape == (3, 1, 4) for obs in stepper.seen)  # every member asked, member 1 used
    for k, clip in enumerate(clips):  # member 1's k-th evaluation env is reset with seed + 1 * 4 + k
        assert clip.length == play("CartPole-v1", 100 + 4 + k, 1) == clip.episode_return
        assert frames(clip.path) == clip.length + 1


def test_gif_when_ffmpeg_cannot_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from PIL import Image

    monkeypatch.setattr(video, "ffmpeg_available", lambda: False)
    stepper = Still("Pendulum-v1", num_members=1)
    with pytest.warns(UserWarning, match="GIF"):
        recorder = video.Recorder.for_stepper(stepper, episodes=1)
    try:
        ((clip,),) = recorder.record(stepper, [0], [tmp_path], "step_000000000001", seed=0, eval_episodes=1)
    finally:
        recorder.close()
    assert clip.path.suffix == ".gif" and clip.length == 200
    with Image.open(clip.path) as gif:  # Pillow merges identical frames, adding their durations
        durations = []
        for i in range(gif.n_frames):
            gif.seek(i)
            durations.append(gif.info["duration"])
    assert gif.n_frames > 1 and sum(durations) == (clip.length + 1) * 30  # Pendulum renders at 30 fps: 30 ms


def test_compiled_run_is_filmed_in_its_gymnasium_twin(tmp_path: Path) -> None:
    from critix.agents import ppo
    from critix.train.compiled import Compiled
    from critix.train.config import RunConfig

    run = RunConfig(env="gymnax:CartPole-v1", steps=64, num_seeds=2, rollout_length=16, eval_episodes=1)
    stepper = Compiled("ppo", ppo.Config(hidden_sizes=(16,), minibatch_size=16), run)
    stepper.start(None)
    recorder = video.Recorder.for_stepper(stepper, episodes=1)
    try:
        assert recorder.render_id == "CartPole-v1"
        ((clip,),) = recorder.record(stepper, [1], [tmp_path], "step_000000000064", seed=5, eval_episodes=1)
    finally:
        recorder.close()
    assert 1 <= clip.length <= 500 and frames(clip.path) == clip.length + 1


def test_mujoco_video_or_the_reason_it_cannot_be_made(tmp_path: Path) -> None:
    """MuJoCo renders off-screen where EGL (or OSMesa) works; where not, the error names what to install."""
    try:
        video.prepare_backend("InvertedPendulum-v5")
        recorder = video.Recorder.for_stepper(Still("InvertedPendulum-v5", num_members=1), episodes=1)
    except CritixError as err:
        assert "apt-get install" in str(err) and "MUJOCO_GL" in str(err)
        pytest.skip(f"this machine cannot render MuJoCo off-screen: {err}")
    try:
        ((clip,),) = recorder.record(Still("InvertedPendulum-v5", 1), [0], [tmp_path], "step_1", seed=3,
                                     eval_episodes=1)
    finally:
        recorder.close()
    assert clip.length == play("InvertedPendulum-v5", 3, np.zeros(1)) and frames(clip.path) == clip.length + 1
    assert imageio.get_reader(str(clip.path)).get_data(0).std() > 0  # a picture, not a blank frame


def test_a_jax_env_without_a_twin_is_refused() -> None:
    with pytest.raises(CritixError, match="twin.*gymnax:Pendulum-v1"):
        video.render_env_id("gymnax:Breakout-MinAtar")
    assert video.render_env_id("gymnax:Pendulum-v1") == "Pendulum-v1"


def test_a_broken_mujoco_backend_stops_before_the_run_folder_with_the_fix(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    env = {**os.environ, "MUJOCO_GL": "no-such-backend"}
    proc = subprocess.run([sys.executable, "-m", "critix.cli", "train", "td3", "--env", "Hopper-v5", "--steps", "100",
                           "--video-every", "100", "--run-dir", str(run_dir), "--no-progress"],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert "MUJOCO_GL=no-such-backend" in proc.stderr and "apt-get install libegl1" in proc.stderr
    assert not run_dir.exists()


def test_video_settings_are_checked() -> None:
    from critix.train.config import RunConfig

    with pytest.raises(ValueError, match="video_episodes"):
        RunConfig(video_episodes=0)
    with pytest.raises(ValueError, match="video_every"):
        RunConfig(video_every=-1)
