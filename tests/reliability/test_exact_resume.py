"""Exact resume: SIGKILL a training process at random moments, resume it, and get the uninterrupted run's results.

Pendulum-v1 with fixed seeds is deterministic, and so is XLA on CPU, so a resumed run must reproduce every metrics
row (all columns but wall-clock time and steps/s) and every array of the final checkpoint bit for bit.
CI kills a few runs; the acceptance figure (20 kills across runs, SAC and TD3) is behind `-m slow`.
"""

from __future__ import annotations

import csv
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file

from critix.train import checkpoint

TIMING_COLUMNS = {"wall_seconds", "time/steps_per_second"}
TINY = ["--env", "Pendulum-v1", "--num-seeds", "2", "--hidden-sizes", "32", "32", "--batch-size", "32",
        "--learning-starts", "200", "--chunk-size", "25", "--eval-every", "300", "--eval-episodes", "2",
        "--checkpoint-every", "100", "--log-every", "100", "--normalize-obs", "--no-progress", "--no-tensorboard"]
CLI = [sys.executable, "-m", "critix.cli"]


def train_argv(algo: str, run_dir: Path, steps: int) -> list[str]:
    return [*CLI, "train", algo, "--steps", str(steps), "--run-dir", str(run_dir), *TINY]


def resume_argv(algo: str, run_dir: Path) -> list[str]:
    return [*CLI, "train", algo, "--resume", str(run_dir), "--no-progress"]


def metrics_rows(run_dir: Path) -> list[dict[str, str]]:
    with (run_dir / "metrics.csv").open(newline="") as f:
        return [{k: v for k, v in row.items() if k not in TIMING_COLUMNS} for row in csv.DictReader(f)]


def final_arrays(run_dir: Path) -> dict[str, np.ndarray]:
    last = checkpoint.latest(run_dir / "checkpoints")
    assert last is not None
    return load_file(last / checkpoint.STATE_FILE)


def assert_same_run(run_dir: Path, reference: Path) -> None:
    rows, want = metrics_rows(run_dir), metrics_rows(reference)
    # Training and evaluation rows of one step are separate rows, so compare the whole sequence of rows.
    assert len(rows) == len(want), f"{len(rows)} metrics rows, the uninterrupted run has {len(want)}"
    for got, expected in zip(rows, want, strict=True):
        assert got == expected
    got_arrays, want_arrays = final_arrays(run_dir), final_arrays(reference)
    assert got_arrays.keys() == want_arrays.keys()
    for name in want_arrays:
        np.testing.assert_array_equal(got_arrays[name], want_arrays[name], err_msg=name)


def assert_checkpoints_readable(run_dir: Path) -> None:
    for ckpt in checkpoint.list_checkpoints(run_dir / "checkpoints"):
        checkpoint.verify(ckpt)  # raises on any unreadable or corrupt checkpoint


def run_to_completion(argv: list[str], timeout: float = 600) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr[-3000:]


def kill_at_random_moments(algo: str, run_dir: Path, steps: int, kills: int, max_delay: float,
                           rng: random.Random) -> int:
    """Start the run, SIGKILL it after a random delay, resume, and repeat `kills` times; then let it finish.

    Returns how many kills landed while the process was still running.
    """
    landed = 0
    argv = train_argv(algo, run_dir, steps)
    for _ in range(kills):
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        time.sleep(rng.uniform(0.0, max_delay))
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            landed += 1
        _, err = proc.communicate()
        assert proc.returncode in (0, -signal.SIGKILL), err.decode()[-3000:]
        if (run_dir / "config.json").exists():
            argv = resume_argv(algo, run_dir)  # killed before config.json: start the run again
        assert_checkpoints_readable(run_dir)
        if proc.returncode == 0:
            break
    run_to_completion(argv)
    assert_checkpoints_readable(run_dir)
    return landed


@pytest.fixture(scope="module")
def sac_reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, float]:
    """An uninterrupted SAC run and its wall time."""
    run_dir = tmp_path_factory.mktemp("reference") / "sac"
    start = time.perf_counter()
    run_to_completion(train_argv("sac", run_dir, 950))
    return run_dir, time.perf_counter() - start


def test_resume_after_kills_reproduces_the_uninterrupted_run(sac_reference: tuple[Path, float], tmp_path: Path) -> None:
    reference, wall = sac_reference
    run_dir = tmp_path / "killed"
    rng = random.Random(6)
    landed = kill_at_random_moments("sac", run_dir, 950, kills=2, max_delay=0.8 * wall, rng=rng)
    assert landed >= 1
    assert_same_run(run_dir, reference)


def test_resume_falls_back_past_a_corrupt_checkpoint_mid_episode(sac_reference: tuple[Path, float],
                                                                  tmp_path: Path) -> None:
    """Deterministic variant: take the finished run, truncate its newest checkpoint (step 950) and drop the
    summary: --resume must skip the corrupt checkpoint with a warning, continue from step 900 (mid-episode:
    Pendulum episodes are 200 steps) and still reproduce the uninterrupted run."""
    reference, _ = sac_reference
    run_dir = tmp_path / "copy"
    shutil.copytree(reference, run_dir)
    older, newest = checkpoint.list_checkpoints(run_dir / "checkpoints")
    state = newest / checkpoint.STATE_FILE
    state.write_bytes(state.read_bytes()[: state.stat().st_size // 2])
    (run_dir / "summary.json").unlink()
    meta = checkpoint.load_meta(older)
    assert meta["step"] == 900 and meta["loop"]["env"] is not None
    done = subprocess.run(resume_argv("sac", run_dir), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "critix: warning: skipping checkpoint step_000000000950" in done.stderr
    assert (run_dir / "checkpoints" / "corrupt_step_000000000950").is_dir()
    assert_same_run(run_dir, reference)


@pytest.mark.slow
@pytest.mark.timeout(3600)  # about 40 process starts: 12 min each on 2 busy cores, beyond the 900 s default
@pytest.mark.parametrize("algo", ["sac", "td3"])
def test_twenty_kills_across_runs(algo: str, tmp_path: Path) -> None:
    """The acceptance test: 10 SIGKILLs per algorithm (20 in all) at random moments across runs."""
    reference = tmp_path / "reference"
    start = time.perf_counter()
    run_to_completion(train_argv(algo, reference, 950))
    wall = time.perf_counter() - start
    rng = random.Random(f"{algo}-kills")
    total = 0
    for i in range(10):  # until 10 kills have landed: a resumed run is shorter, so later kills often miss
        run_dir = tmp_path / f"killed_{i}"
        landed = kill_at_random_moments(algo, run_dir, 950, kills=4, max_delay=0.6 * wall, rng=rng)
        total += landed
        assert_same_run(run_dir, reference)
        print(f"{algo} run {i}: {landed} SIGKILLs landed, resumed to the uninterrupted run's exact metrics")
        if total >= 10:
            break
    print(f"{algo}: {total} SIGKILLs in all")
    assert total >= 10, f"only {total} kills landed before the runs finished"
