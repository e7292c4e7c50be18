"""Every training mode has every lifecycle feature: the NaN/Inf guard (--on-nan stop|skip), --chunk-size with one
meaning, and the progress bar. The modes differ only in their stepper; these tests run the same checks on each.

Exact resume after SIGKILL for every mode is in test_exact_resume.py; the off-policy host loop's guard against
NaN observations and huge rewards is in test_nan_guards.py.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file

from critix.cli import main
from critix.train import checkpoint
from critix.stats.runs import read_metrics

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
from test_datasets import make_episodes, write  # noqa: E402

QUIET = ["--no-progress", "--no-tensorboard"]
PPO_TINY = ["--num-seeds", "2", "--num-envs", "2", "--rollout-length", "16", "--minibatch-size", "16",
            "--num-epochs", "2", "--hidden-sizes", "16", "--eval-episodes", "1"]
SAC_TINY = ["--num-seeds", "2", "--hidden-sizes", "16", "--batch-size", "16", "--learning-starts", "64",
            "--eval-episodes", "1"]
# mode -> (algo, its args with DATASET standing for a dataset path, the field that holds its learning rate)
MODES = {
    "offpolicy": ("sac", ["--env", "Pendulum-v1", "--steps", "256", *SAC_TINY], "critic_lr"),
    "onpolicy": ("ppo", ["--env", "CartPole-v1", "--steps", "256", *PPO_TINY], "learning_rate"),
    "compiled": ("ppo", ["--env", "gymnax:CartPole-v1", "--steps", "256", *PPO_TINY], "learning_rate"),
    "offline": ("iql", ["--dataset", "DATASET", "--steps", "64", "--num-seeds", "2", "--hidden-sizes", "16", "16",
                        "--batch-size", "8", "--eval-episodes", "1"], "critic_lr"),
}


def argv_of(mode: str, tmp_path: Path, *extra: str) -> tuple[str, list[str]]:
    algo, args, _ = MODES[mode]
    if "DATASET" in args:
        dataset = tmp_path / "ds"
        if not dataset.exists():
            write(dataset, make_episodes(4, 10))
        args = [str(dataset) if a == "DATASET" else a for a in args]
    return algo, [*args, *extra]


@pytest.mark.parametrize("mode", sorted(MODES))
def test_chunk_size_means_steps_between_returns_to_the_host(mode: str, tmp_path: Path) -> None:
    """--chunk-size C with --log-every 0 logs once per chunk: at every multiple of C (env steps per seed, or
    gradient steps offline), rounded up to whole rollouts where a mode needs them (PPO here: 16 x 2 envs = 32)."""
    chunk, total = (16, 64) if mode == "offline" else (64, 256)
    algo, argv = argv_of(mode, tmp_path, "--chunk-size", str(chunk), "--log-every", "0", "--eval-every", "0", *QUIET)
    run_dir = tmp_path / "run"
    assert main(["train", algo, *argv, "--run-dir", str(run_dir)]) == 0
    metrics = read_metrics(run_dir / "metrics.csv")
    logged = sorted(set(metrics["step"].astype(int)))  # --eval-every 0: the only evaluation is at the end
    assert logged == list(range(chunk, total + 1, chunk))


@pytest.mark.parametrize("mode", sorted(MODES))
def test_on_nan_stop_stops_before_writing_the_bad_chunk(mode: str, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    """A learning rate of 1e30 makes the parameters overflow in the first update chunk: every mode stops with the
    message that names the problem and the fix, writes no checkpoint or metrics row of that chunk, exits 2."""
    _, _, lr_field = MODES[mode]
    algo, argv = argv_of(mode, tmp_path, f"--{lr_field.replace('_', '-')}", "1e30", *QUIET)
    run_dir = tmp_path / "run"
    assert main(["train", algo, *argv, "--run-dir", str(run_dir)]) == 2
    err = capsys.readouterr().err
    assert "non-finite values in the chunk ending at" in err and "update(s) with NaN/Inf losses or parameters" in err
    assert "--on-nan skip" in err and "Traceback" not in err
    assert checkpoint.latest(run_dir / "checkpoints") is None
    assert not (run_dir / "summary.json").exists()


@pytest.mark.parametrize("mode", sorted(MODES))
def test_on_nan_skip_discards_and_counts_bad_updates(mode: str, tmp_path: Path) -> None:
    """Under --on-nan skip the same run finishes: every non-finite update is discarded and counted, and the saved
    agent stays finite."""
    _, _, lr_field = MODES[mode]
    algo, argv = argv_of(mode, tmp_path, f"--{lr_field.replace('_', '-')}", "1e30", "--on-nan", "skip", *QUIET)
    run_dir = tmp_path / "run"
    assert main(["train", algo, *argv, "--run-dir", str(run_dir)]) == 0
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["skipped_updates"] > 0
    metrics = read_metrics(run_dir / "metrics.csv")
    assert np.nanmax(metrics["guard/skipped_updates"]) == summary["skipped_updates"]
    arrays = load_file(checkpoint.latest(run_dir / "checkpoints") / checkpoint.STATE_FILE)
    params = {k: v for k, v in arrays.items() if "agent" in k and "params" in k and v.dtype.kind == "f"}
    assert params and all(np.isfinite(v).all() for v in params.values())


@pytest.mark.parametrize("mode", sorted(MODES))
def test_every_mode_shows_the_progress_bar(mode: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")  # rich shortens the bar's columns to fit the console
    algo, argv = argv_of(mode, tmp_path, "--no-tensorboard")
    assert main(["train", algo, *argv, "--run-dir", str(tmp_path / "run")]) == 0
    out = capsys.readouterr().out
    total = "64/64" if mode == "offline" else "256/256"
    assert total in out and "steps/s" in out and f"{algo} " in out


def test_loop_settings_left_unset_take_the_algorithms_defaults(tmp_path: Path) -> None:
    """A RunConfig built in Python leaves learning_starts & co. at None: every stepper, and config.json, hold the
    algorithm's RUN_DEFAULTS (DQN: 100 and 0.25; A2C: rollouts of 5), not some generic value."""
    from critix import agents
    from critix.train.config import RunConfig
    from critix.train.modes import make_stepper, train

    stepper = make_stepper("dqn", agents.get("dqn").default_config, RunConfig(env="CartPole-v1", steps=1000))
    try:
        assert (stepper.plan.learning_starts, stepper.plan.utd_ratio) == (100, 0.25)
    finally:
        stepper.close()
    run = RunConfig(env="CartPole-v1", steps=40, num_envs=2, eval_every=0, eval_episodes=1, progress=False,
                    tensorboard=False, run_dir=str(tmp_path / "a2c"))
    train("a2c", agents.get("a2c").default_config, run)
    saved = json.loads((tmp_path / "a2c" / "config.json").read_text())["run"]
    assert saved["rollout_length"] == 5 and saved["learning_starts"] is None
