"""Pixels end to end through the host loop (smoke tests; need the `pixels` extra, skipped without it):
DQN with the MinAtar CNN and DrQ random shifts on MinAtar Breakout (CI), and DQN with the Nature CNN on Atari
Breakout (an episode ends at the first lost life) and Pong (a whole game) through ale-py with the standard
wrappers, fire reset included (both `slow`). Checks: the run finishes, evaluation runs whole episodes, and the
replay buffer in the checkpoint holds observations as uint8."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from critix.cli import main

COMMON = ["--hidden-sizes", "32", "--batch-size", "8", "--learning-starts", "100", "--chunk-size", "50",
          "--eval-episodes", "1", "--eval-every", "0", "--no-progress", "--no-tensorboard", "--buffer-size", "400"]


def buffer_obs_dtype(run_dir: Path) -> np.dtype:
    from safetensors.numpy import load_file

    ckpt = sorted((run_dir / "checkpoints").glob("step_*"))[-1] / "state.safetensors"
    arrays = load_file(str(ckpt))
    keys = [k for k in arrays if "buffer" in k and "obs" in k]
    assert keys, sorted(arrays)[:20]
    return arrays[keys[0]].dtype


@pytest.mark.parametrize("env,extra", [
    ("MinAtar/Breakout-v1", ["--encoder", "minatar", "--augmentation-pad", "1", "--num-seeds", "2"]),
    # Slow: compiling and running the Nature CNN on CPU (12 min under load average 14 on 2 cores).
    pytest.param("ALE/Breakout-v5", ["--encoder", "nature", "--augmentation-pad", "4"], marks=pytest.mark.slow),
    # Slow: the final evaluation plays one whole Pong game (about 1,000 Nature-CNN steps): 14 min on a loaded box.
    pytest.param("ALE/Pong-v5", ["--encoder", "nature", "--augmentation-pad", "4"], marks=pytest.mark.slow),
])
def test_dqn_on_pixels_runs_end_to_end(env: str, extra: list[str], tmp_path: Path) -> None:
    pytest.importorskip("minatar" if env.startswith("MinAtar") else "ale_py")
    if env.startswith("ALE"):
        pytest.importorskip("cv2")
    run_dir = tmp_path / "run"
    code = main(["train", "dqn", "--env", env, "--steps", "300", "--run-dir", str(run_dir), *COMMON, *extra])
    assert code == 0
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["gradient_steps"] > 0 and all(np.isfinite(summary["final_return"]))
    assert buffer_obs_dtype(run_dir) == np.uint8


def test_image_observations_without_an_encoder_are_a_clear_error(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("minatar")
    code = main(["train", "dqn", "--env", "MinAtar/Breakout-v1", "--steps", "200", "--run-dir", str(tmp_path / "x"),
                 *COMMON])
    assert code == 2
    assert "--encoder" in capsys.readouterr().err
