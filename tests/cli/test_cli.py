"""The `critix` command end to end: run folder contents, resume, eval, list, and clear errors (exit code 2)."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from critix.cli import main

TINY = ["--hidden-sizes", "32", "32", "--batch-size", "32", "--learning-starts", "100", "--chunk-size", "50",
        "--eval-episodes", "2", "--no-progress", "--no-tensorboard"]


def rows(run_dir: Path) -> list[dict[str, str]]:
    with (run_dir / "metrics.csv").open(newline="") as f:
        return list(csv.DictReader(f))


def test_train_writes_the_run_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_dir = tmp_path / "run"
    code = main(["train", "sac", "--env", "Pendulum-v1", "--steps", "400", "--num-seeds", "2", "--eval-every", "200",
                 "--run-dir", str(run_dir), *TINY])
    assert code == 0
    summary = json.loads((run_dir / "summary.json").read_text())
    for key in ("algo", "env", "steps", "num_seeds", "final_return", "final_return_mean", "wall_seconds",
                "steps_per_second", "critix_version"):
        assert key in summary
    assert summary["algo"] == "sac" and summary["env"] == "Pendulum-v1" and summary["steps"] == 400
    assert len(summary["final_return"]) == 2 and summary["num_seeds"] == 2
    assert summary["steps_per_second"] > 0
    config = json.loads((run_dir / "config.json").read_text())
    assert config["agent"]["hidden_sizes"] == [32, 32] and config["run"]["num_seeds"] == 2
    assert (run_dir / "learning_curve.png").stat().st_size > 1000
    assert (run_dir / "learning_curve.svg").exists()
    ckpts = sorted((run_dir / "checkpoints").glob("step_*"))
    assert ckpts and (ckpts[-1] / "state.safetensors").exists() and (ckpts[-1] / "meta.json").exists()
    eval_rows = [r for r in rows(run_dir) if r["eval/return"]]
    assert {(r["step"], r["seed"]) for r in eval_rows} == {(s, k) for s in ("200", "400") for k in ("0", "1")}
    assert "final evaluation return" in capsys.readouterr().out


def test_tensorboard_events_are_written(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    args = [a for a in TINY if a != "--no-tensorboard"]
    assert main(["train", "td3", "--env", "Pendulum-v1", "--steps", "200", "--run-dir", str(run_dir), *args]) == 0
    assert list((run_dir / "tb" / "seed_0").glob("events.out.tfevents.*"))


def test_resume_extends_a_finished_run_without_duplicate_rows(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    base = ["--env", "Pendulum-v1", "--eval-every", "200", "--normalize-obs", "--run-dir", str(run_dir), *TINY]
    assert main(["train", "ddpg", "--steps", "400", *base]) == 0
    assert main(["train", "ddpg", "--resume", str(run_dir), "--steps", "600", "--no-progress"]) == 0
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["steps"] == 600
    keys = [(r["step"], r["seed"]) for r in rows(run_dir) if r["eval/return"]]
    assert len(keys) == len(set(keys)) and ("600", "0") in keys
    from critix.train import checkpoint

    state = checkpoint.latest(run_dir / "checkpoints")
    assert state is not None and state.name.endswith("600")
    from safetensors.numpy import load_file

    count = load_file(state / "state.safetensors")["['obs_rms']['count']"]
    assert count[0] > 600  # normalisation statistics survived the resume and kept counting


def test_eval_and_list(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_dir = tmp_path / "run"
    assert main(["train", "sac", "--env", "Pendulum-v1", "--steps", "200", "--run-dir", str(run_dir), *TINY]) == 0
    capsys.readouterr()
    assert main(["eval", str(run_dir), "--episodes", "2"]) == 0
    out = capsys.readouterr().out
    result = json.loads(out[: out.rindex("}") + 1])
    assert len(result["return_per_seed"]) == 1 and result["episodes_per_seed"] == 2
    assert main(["list"]) == 0
    listing = capsys.readouterr().out
    assert "sac" in listing and "td3" in listing and "ddpg" in listing and "--target-tau" in listing


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "sac", "--env", "Pendulum-v9"], "unknown environment id 'Pendulum-v9'"),
        (["train", "sac", "--env", "CartPole-v1"], "continuous (Box) action space"),
        (["train", "td3", "--gamma", "1.5"], "gamma must be in [0, 1]"),
        (["train", "sac", "--target-tau", "0"], "target_tau must be in (0, 1]"),
        (["train", "sac", "--batch-size", "512", "--buffer-size", "100"], "buffer_size (100) must be >= batch_size (512)"),
        (["train", "ppo9"], "unknown algorithm 'ppo9'"),
        (["train", "sac", "--resume", "/nonexistent/run"], "config.json is missing or malformed"),
        (["eval", "/nonexistent/run"], "config.json is missing or malformed"),
        (["train", "sac", "--steps", "0"], "steps must be >= 1"),
    ],
)
def test_bad_input_gives_one_clear_error(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err


def test_cli_process_exit_codes(tmp_path: Path) -> None:
    exe = [sys.executable, "-m", "critix.cli"]
    ok = subprocess.run([*exe, "train", "sac", "--help"], capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0 and "--target-tau" in ok.stdout and "(default: 0.005)" in ok.stdout
    bad = subprocess.run([*exe, "train", "sac", "--env", "NoSuchEnv-v0"], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "unknown environment id" in bad.stderr and "Traceback" not in bad.stderr


def test_killed_run_resumes_from_its_last_checkpoint(tmp_path: Path) -> None:
    """SIGKILL mid-run, then --resume: the run finishes and metrics rows are neither lost nor duplicated."""
    run_dir = tmp_path / "run"
    argv = [sys.executable, "-m", "critix.cli", "train", "sac", "--env", "Pendulum-v1", "--steps", "3000",
            "--eval-every", "500", "--run-dir", str(run_dir), *TINY]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        done = [p for p in (run_dir / "checkpoints").glob("step_*") if (p / "meta.json").exists()]
        if any(int(p.name.split("_")[1]) >= 1000 for p in done):
            break
        time.sleep(0.2)
    assert proc.poll() is None, "the run ended before it could be killed; raise --steps"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    resumed = subprocess.run(
        [sys.executable, "-m", "critix.cli", "train", "sac", "--resume", str(run_dir), "--no-progress"],
        capture_output=True, text=True, timeout=600,
    )
    assert resumed.returncode == 0, resumed.stderr
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["steps"] == 3000
    eval_steps = [int(r["step"]) for r in rows(run_dir) if r["eval/return"]]
    assert eval_steps == list(range(500, 3001, 500))
