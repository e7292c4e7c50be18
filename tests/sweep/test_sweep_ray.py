"""`critix sweep` on a local Ray instance (one for the whole module: Ray takes ~15 s to start): a 2 configs x 2
seeds sweep with one trial process killed and retried from its checkpoint; and a driver SIGKILLed halfway whose
rerun finishes without training any finished trial again. (Splitting seeds over trials, seeds_per_trial: 1, is
planned by the same code: tests/sweep/test_sweep_spec.py.)"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import ray

from critix.cli import main
from critix.sweep.execute import ATTEMPT_MARK, TRIAL_LOG, tune_storage

REPO = Path(__file__).resolve().parents[2]
# Tiny trials: the first checkpoint comes at env step 50, before the first update compiles, so a trial can be
# caught between its first checkpoint and its end.
SWEEP = """\
algo: sac
env: Pendulum-v1
steps: 1000
seeds: [0, 1]
grid:
  actor_lr: [1e-3, 3e-4]
fixed: {learning_starts: 50, batch_size: 16, hidden_sizes: [16, 16], eval_every: 250, eval_episodes: 1,
        checkpoint_every: 50, chunk_size: 25, tensorboard: false}
seeds_per_trial: %d
"""
WRITTEN_SUFFIXES = {".json", ".csv", ".md", ".log", ".png", ".svg", ".safetensors", ".lock", ""}


@pytest.fixture(scope="module")
def ray_address() -> Iterator[str]:
    """A local Ray instance with 2 CPUs; trial processes share the test session's compilation cache and flags."""
    saved = dict(os.environ)
    os.environ.update(JAX_COMPILATION_CACHE_DIR=str(REPO / ".jax_cache"), JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
                      JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0")
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="WARNING")
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()
        os.environ.clear()
        os.environ.update(saved)


def _train_pids(run_dir: Path) -> list[int]:
    """Processes training `run_dir` (`critix train ... --resume RUN_DIR`)."""
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            cmdline = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"--resume" in cmdline and str(run_dir).encode() in cmdline and b"train" in cmdline:
            pids.append(int(proc.name))
    return pids


def _attempts(run_dir: Path) -> list[str]:
    log = run_dir / TRIAL_LOG
    return [line for line in log.read_text().splitlines() if line.startswith(ATTEMPT_MARK)] if log.exists() else []


def _checkpointed(run_dir: Path) -> bool:
    return (run_dir / "checkpoints").is_dir() and any((run_dir / "checkpoints").glob("step_*/meta.json"))


def _check_folder(out: Path) -> dict:
    """Every trial finished, the summary written, and nothing but data files (no pickle) in the sweep folder."""
    manifest = json.loads((out / "sweep.json").read_text())
    assert all(t["status"] == "finished" for t in manifest["trials"]), manifest["trials"]
    assert "**Best configuration:" in (out / "summary.md").read_text()
    assert (out / "plots" / "final_returns.png").is_file() and (out / "plots" / "learning_curves.png").is_file()
    assert len((out / "results.csv").read_text().splitlines()) == 1 + 4  # 2 configurations x 2 seeds
    suffixes = {p.suffix for p in out.rglob("*") if p.is_file()}
    assert suffixes <= WRITTEN_SUFFIXES, suffixes
    return manifest


def test_small_sweep_retries_a_killed_trial_from_its_checkpoint(ray_address: str, tmp_path: Path) -> None:
    sweep_file = tmp_path / "sweep.yaml"
    sweep_file.write_text(SWEEP % 0)  # one trial per configuration, its 2 seeds vmapped
    out = tmp_path / "out"
    victim = out / "trials" / "c1-seeds_0-1"
    killed: list[int] = []

    def kill_once() -> None:  # SIGKILL the victim's training process after its first checkpoint
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and not killed:
            if _checkpointed(victim) and not (victim / "summary.json").exists():
                for pid in _train_pids(victim):
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
            time.sleep(0.05)

    watcher = threading.Thread(target=kill_once, daemon=True)
    watcher.start()
    assert main(["sweep", str(sweep_file), "--out", str(out), "--reps", "200"]) == 0
    watcher.join(timeout=5)
    assert killed, "the trial process was never caught mid-run"
    manifest = _check_folder(out)
    attempts = {t["id"]: t["attempts"] for t in manifest["trials"]}
    assert attempts == {"c0-seeds_0-1": 1, "c1-seeds_0-1": 2}
    marks = _attempts(victim)
    assert len(marks) == 2 and "starting" in marks[0] and "resuming from step_" in marks[1]
    assert not tune_storage(out).exists()  # Ray Tune's own files (pickles) removed


def test_killed_driver_rerun_finishes_without_redoing_finished_trials(ray_address: str, tmp_path: Path) -> None:
    sweep_file = tmp_path / "sweep.yaml"
    sweep_file.write_text(SWEEP % 0)  # two trials (one per configuration), each training its 2 seeds vmapped
    out = tmp_path / "out"
    argv = ["sweep", str(sweep_file), "--out", str(out), "--reps", "200", "--max-concurrent", "1"]
    trials = [out / "trials" / "c0-seeds_0-1", out / "trials" / "c1-seeds_0-1"]
    with (tmp_path / "driver.log").open("w") as log:
        driver = subprocess.Popen([sys.executable, "-m", "critix.cli", *argv, "--address", ray_address],
                                  stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 300
        finished: list[Path] = []
        while time.monotonic() < deadline and driver.poll() is None:
            finished = [t for t in trials if (t / "summary.json").exists()]
            if finished and any(_checkpointed(t) and t not in finished for t in trials):
                break
            time.sleep(0.05)
        assert driver.poll() is None, (tmp_path / "driver.log").read_text()
        assert len(finished) == 1, "no trial was caught mid-run"
        driver.send_signal(signal.SIGKILL)
        driver.wait()
    finally:
        if driver.poll() is None:
            driver.kill()
    done = finished[0]
    before = {p.relative_to(done): p.stat().st_mtime_ns for p in done.rglob("*") if p.is_file()}
    interrupted = next(t for t in trials if t != done)
    deadline = time.monotonic() + 120
    while _train_pids(interrupted) and time.monotonic() < deadline:  # Ray ends the dead driver's trials
        time.sleep(0.5)
    assert not _train_pids(interrupted), "the killed driver's trial process outlived it"

    assert main(argv) == 0  # the rerun, on the same (shared) Ray instance
    manifest = _check_folder(out)
    after = {p.relative_to(done): p.stat().st_mtime_ns for p in done.rglob("*") if p.is_file()}
    assert after == before  # not one file of the finished trial was touched
    assert len(_attempts(done)) == 1
    marks = _attempts(interrupted)
    assert len(marks) == 2 and "resuming from step_" in marks[-1]
    assert {t["id"]: t["attempts"] for t in manifest["trials"]} == {done.name: 1, interrupted.name: 2}
    first, second = manifest["invocations"]
    assert "ended_at" not in first and second["trials_to_run"] == 1  # the killed invocation never ended
    assert not tune_storage(out).exists()  # the rerun removed what the killed driver left


@pytest.mark.slow
def test_asha_stops_configurations_early_and_lets_the_others_finish(ray_address: str, tmp_path: Path) -> None:
    """ASHA on 4 configurations, rungs at env steps 100, 200 and 400 of 600: whatever it decides, a stopped trial
    never finished, a trial that reached the end is finished (its last result waits for its summary), and the
    first configuration through every rung finishes."""
    sweep_file = tmp_path / "sweep.yaml"
    sweep_file.write_text((SWEEP % 0).replace("steps: 1000", "steps: 600").replace("eval_every: 250", "eval_every: 100")
                          .replace("actor_lr: [1e-3, 3e-4]", "actor_lr,critic_lr: [3e-3, 1e-3, 1e-4, 1e-5]")
                          + "scheduler: {name: asha, grace_period: 100, reduction_factor: 2}\n")
    out = tmp_path / "out"
    assert main(["sweep", str(sweep_file), "--out", str(out), "--reps", "200"]) == 0
    manifest = json.loads((out / "sweep.json").read_text())
    statuses = {t["id"]: t["status"] for t in manifest["trials"]}
    assert set(statuses.values()) <= {"finished", "stopped"} and "finished" in statuses.values(), statuses
    for trial in manifest["trials"]:
        run_dir = out / trial["run_dir"]
        assert (run_dir / "summary.json").exists() == (trial["status"] == "finished")
    summary = (out / "summary.md").read_text()
    assert all(f"| {tid} |" in summary and status in summary for tid, status in statuses.items())
