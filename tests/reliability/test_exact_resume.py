"""Exact resume: SIGKILL a training process at random moments, resume it, and get the uninterrupted run's results.

Pendulum-v1 with fixed seeds is deterministic, and so is XLA on CPU, so a resumed run must reproduce every metrics
row (all columns but wall-clock time and steps/s) and every array of the final checkpoint bit for bit.
CI kills a few runs; the acceptance figure (20 kills across runs, SAC and TD3) is behind `-m slow`.
The other training modes (on-policy host loop, compiled runs on JAX envs, offline runs) are held to the same
standard by rewinding a finished run to a middle checkpoint and resuming it, and compiled PPO by SIGKILLs too.
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
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file

from critix.train import checkpoint

TIMING_COLUMNS = {"wall_seconds", "time/steps_per_second", "time/gradient_steps_per_second"}
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
                           rng: random.Random, start_argv: list[str] | None = None) -> int:
    """Start the run, SIGKILL it after a random delay, resume, and repeat `kills` times; then let it finish.

    start_argv: the command that starts the run (default: the tiny Pendulum run of `train_argv`).
    Returns how many kills landed while the process was still running.
    """
    landed = 0
    argv = start_argv or train_argv(algo, run_dir, steps)
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


def reference_and_wall(make_argv: Callable[[Path], list[str]], folder: Path) -> tuple[Path, float]:
    """The uninterrupted run (in folder/reference) and the wall time of a run like those the kills interrupt: a
    second, identical run, which loads the programs the first compiled (the persistent compile cache) as the killed
    runs do, so that a random delay below it lands while they still run."""
    reference = folder / "reference"
    run_to_completion(make_argv(reference))
    start = time.perf_counter()
    run_to_completion(make_argv(folder / "timed"))
    return reference, time.perf_counter() - start


@pytest.fixture(scope="module")
def sac_reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, float]:
    """An uninterrupted SAC run and the wall time of one."""
    return reference_and_wall(lambda run_dir: train_argv("sac", run_dir, 950), tmp_path_factory.mktemp("sac"))


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
    reference, wall = reference_and_wall(lambda run_dir: train_argv(algo, run_dir, 950), tmp_path)
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


# --- the other training modes --------------------------------------------------------------------------------------

QUIET = ["--no-progress", "--no-tensorboard", "--keep-checkpoints", "100"]
PPO_TINY = ["--num-seeds", "2", "--num-envs", "2", "--rollout-length", "16", "--minibatch-size", "16",
            "--num-epochs", "2", "--hidden-sizes", "16", "--eval-episodes", "2", "--log-every", "32", *QUIET]
DQN_TINY = ["--env", "CartPole-v1", "--steps", "400", "--num-seeds", "2", "--num-envs", "2", "--learning-starts",
            "100", "--chunk-size", "50", "--exploration-steps", "300", "--hidden-sizes", "16", "--batch-size", "16",
            "--checkpoint-every", "100", "--eval-every", "200", "--eval-episodes", "2", "--log-every", "100",
            "--normalize-obs", *QUIET]
MODES = {
    # on-policy host loop, CartPole (episodes of ~10-60 steps, so checkpoints fall mid-episode), both normalisations
    "ppo-host": ["ppo", "--env", "CartPole-v1", "--steps", "256", "--checkpoint-every", "64", "--eval-every", "128",
                 "--normalize-obs", "--normalize-reward", *PPO_TINY],
    "ppo-compiled": ["ppo", "--env", "gymnax:CartPole-v1", "--steps", "256", "--checkpoint-every", "64",
                     "--eval-every", "128", *PPO_TINY],
    # off-policy host loop with each acting evaluator (NumPy on the host / one compiled call per step), 2 envs/seed
    "dqn-host-numpy": ["dqn", *DQN_TINY, "--acting", "numpy"],
    "dqn-host-jit": ["dqn", *DQN_TINY, "--acting", "jit"],
    # a chunk's updates run while the next chunk acts: checkpoints hold the transitions still to be written
    "dqn-host-overlap": ["dqn", *DQN_TINY, "--acting", "numpy", "--overlap-updates"],
    "sac-host-overlap": ["sac", *TINY, "--steps", "500", "--overlap-updates", "--keep-checkpoints", "100"],
    "ppo-host-jit": ["ppo", "--env", "Pendulum-v1", "--steps", "256", "--checkpoint-every", "64", "--eval-every",
                     "128", "--normalize-obs", "--acting", "jit", *PPO_TINY],
    "sac-compiled": ["sac", "--env", "gymnax:Pendulum-v1", "--steps", "400", "--learning-starts", "100",
                     "--batch-size", "16", "--hidden-sizes", "16", "--num-seeds", "2", "--eval-episodes", "1",
                     "--checkpoint-every", "100", "--eval-every", "200", "--log-every", "100", *QUIET],
}


def rewind(run_dir: Path, keep_through_step: int) -> None:
    """Make a finished run look killed just after its checkpoint at `keep_through_step`: later checkpoints and
    the summary go; metrics rows written after it stay (a killed process leaves them), for resume to drop."""
    for ckpt in checkpoint.list_checkpoints(run_dir / "checkpoints"):
        if checkpoint.load_meta(ckpt)["step"] > keep_through_step:
            shutil.rmtree(ckpt)
    (run_dir / "summary.json").unlink()


@pytest.mark.parametrize("mode", sorted(MODES))
def test_every_mode_resumes_from_a_middle_checkpoint_exactly(mode: str, tmp_path: Path) -> None:
    from critix.cli import main

    algo, *args = MODES[mode]
    reference, resumed = tmp_path / "reference", tmp_path / "resumed"
    assert main(["train", algo, *args, "--run-dir", str(reference)]) == 0
    steps = [checkpoint.load_meta(c)["step"] for c in checkpoint.list_checkpoints(reference / "checkpoints")]
    assert len(steps) >= 3, steps
    shutil.copytree(reference, resumed)
    rewind(resumed, steps[len(steps) // 2 - 1])
    assert main(["train", algo, "--resume", str(resumed), "--no-progress"]) == 0
    assert_same_run(resumed, reference)


@pytest.mark.parametrize("acting", ["numpy", "jit", "numpy --overlap-updates"])
def test_same_seed_same_run_with_either_acting_evaluator(acting: str, tmp_path: Path) -> None:
    """Same key, same result: two runs of one command (epsilon-greedy draws, 2 seeds x 2 envs, normalised
    observations) write the same metrics and arrays, whichever evaluator computes the actions, and with the updates
    overlapping the next chunk's env steps (where their timing differs from run to run)."""
    from critix.cli import main

    argv = ["train", "dqn", *DQN_TINY, "--steps", "300", "--acting", *acting.split()]
    assert main([*argv, "--run-dir", str(tmp_path / "a")]) == 0
    assert main([*argv, "--run-dir", str(tmp_path / "b")]) == 0
    assert_same_run(tmp_path / "b", tmp_path / "a")


def test_offline_run_resumes_from_a_middle_checkpoint_exactly(tmp_path: Path) -> None:
    from critix.cli import main

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
    from test_datasets import make_episodes, write

    dataset = write(tmp_path / "ds", make_episodes(4, 10))
    reference, resumed = tmp_path / "reference", tmp_path / "resumed"
    assert main(["train", "iql", "--dataset", str(dataset), "--steps", "60", "--num-seeds", "2", "--eval-every", "30",
                 "--checkpoint-every", "10", "--chunk-size", "10", "--hidden-sizes", "16", "16", "--batch-size", "8",
                 "--eval-episodes", "1", "--run-dir", str(reference), *QUIET]) == 0
    shutil.copytree(reference, resumed)
    rewind(resumed, 20)
    assert main(["train", "iql", "--resume", str(resumed), "--no-progress"]) == 0
    assert_same_run(resumed, reference)


def offline_argv(dataset: Path, run_dir: Path) -> list[str]:
    return [*CLI, "train", "iql", "--dataset", str(dataset), "--steps", "600", "--num-seeds", "2", "--eval-every",
            "200", "--checkpoint-every", "50", "--chunk-size", "50", "--hidden-sizes", "16", "16", "--batch-size", "8",
            "--eval-episodes", "1", "--run-dir", str(run_dir), *QUIET]


@pytest.mark.parametrize("mode", ["ppo-host", "ppo-compiled", "offline"])
def test_every_mode_resumes_exactly_after_sigkills(mode: str, tmp_path: Path) -> None:
    """kill -9 at random moments and --resume: the on-policy host, compiled and offline modes reproduce the
    uninterrupted run exactly (the off-policy host mode: test_resume_after_kills_reproduces_the_uninterrupted_run)."""
    if mode == "offline":
        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
        from test_datasets import make_episodes, write

        dataset = write(tmp_path / "ds", make_episodes(4, 10))
        algo, start = "iql", lambda run_dir: offline_argv(dataset, run_dir)
    else:
        algo, *args = MODES[mode]
        start = lambda run_dir: [*CLI, "train", algo, *args, "--run-dir", str(run_dir)]  # noqa: E731
    reference, wall = reference_and_wall(start, tmp_path)
    run_dir = tmp_path / "killed"
    landed = kill_at_random_moments(algo, run_dir, 0, kills=2, max_delay=0.9 * wall, rng=random.Random(mode),
                                    start_argv=start(run_dir))
    assert landed >= 1
    assert_same_run(run_dir, reference)
