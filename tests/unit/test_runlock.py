"""One process trains a run folder at a time (`critix.train.runlock`): a second trainer is refused with who holds
the folder, the lock dies with its process (kill -9 included), and `critix train` and `critix bench` use it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from critix.cli import main
from critix.bench.report import write_report
from critix.bench import runner as bench
from critix.train import runlock
from critix.types import CritixError


def test_a_held_lock_is_refused_after_the_wait_and_released_on_exit(tmp_path: Path) -> None:
    with runlock.locked(tmp_path / ".lock", 0.0, lambda: "busy"):
        start = time.monotonic()
        with pytest.raises(CritixError, match="busy"):
            with runlock.locked(tmp_path / ".lock", 0.6, lambda: "busy"):
                pass
        assert time.monotonic() - start >= 0.6  # it waited before giving up
    with runlock.locked(tmp_path / ".lock", 0.0, lambda: "busy"):
        pass


def test_claim_records_the_holder_and_refuses_a_second_trainer(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    assert runlock.holder(run_dir) is None  # no folder yet
    with runlock.claim(run_dir) as claimed:
        assert claimed == run_dir and run_dir.is_dir()
        held = runlock.holder(run_dir)
        assert held is not None and held.startswith(f"pid {os.getpid()} on ")
        with pytest.raises(CritixError) as err:
            with runlock.claim(run_dir):
                pass
        message = str(err.value)
        assert f"{run_dir} is being trained by another process (pid {os.getpid()} on " in message
        assert "train into another --run-dir" in message
        assert runlock.holder(run_dir) is not None  # the refused claim did not release the holder's lock
    assert runlock.holder(run_dir) is None
    with runlock.claim(run_dir):  # free again once the holder is done
        pass


def test_a_killed_holder_leaves_no_stale_lock(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    code = ("import sys, time\nfrom pathlib import Path\nfrom critix.train import runlock\n"
            "with runlock.claim(Path(sys.argv[1])):\n    print('held', flush=True)\n    time.sleep(600)\n")
    proc = subprocess.Popen([sys.executable, "-c", code, str(run_dir)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
        assert runlock.holder(run_dir) == runlock.holder(run_dir) is not None
        assert f"pid {proc.pid} on " in str(runlock.holder(run_dir))
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert (run_dir / runlock.LOCK_FILE).exists()  # the file stays behind, the lock does not
    assert runlock.holder(run_dir) is None
    with runlock.claim(run_dir):
        pass


@pytest.mark.parametrize("argv", [
    ["sac", "--env", "Pendulum-v1", "--steps", "1000"],  # host off-policy loop
    ["ppo", "--env", "CartPole-v1", "--steps", "1000"],  # host on-policy loop
    ["ppo", "--env", "gymnax:CartPole-v1", "--steps", "1000"],  # compiled loop
    ["iql", "--dataset", "DATASET", "--steps", "100", "--batch-size", "8"],  # offline loop
], ids=["online", "onpolicy", "compiled", "offline"])
def test_critix_train_refuses_a_folder_another_process_is_training(argv: list[str], tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    from test_datasets import make_episodes, write

    if "DATASET" in argv:
        argv = [str(write(tmp_path / "ds", make_episodes(2, 10))) if a == "DATASET" else a for a in argv]
    run_dir = tmp_path / "run"
    with runlock.claim(run_dir):
        code = main(["train", *argv, "--run-dir", str(run_dir), "--no-progress"])
    assert code == 2
    err = capsys.readouterr().err
    assert f"critix: error: {run_dir} is being trained by another process (pid {os.getpid()}" in err
    assert not (run_dir / "config.json").exists()  # nothing was written into the held folder


def test_bench_leaves_a_run_another_process_is_training_to_it(tmp_path: Path) -> None:
    cfg = bench.BenchConfig("classic", ("sac",), seeds=2, out=str(tmp_path), tasks=("Pendulum-v1",), steps=300,
                            seeds_per_run=1, report_only=False)
    first, second = bench.plan(cfg).units
    trained: list[list[str]] = []
    log: list[str] = []
    with runlock.claim(first.path):
        assert first.progress().startswith(f"training now (pid {os.getpid()} on ")
        # How far it is: the last complete metrics row (a row being appended is left out).
        (first.path / "metrics.csv").write_text("step,seed,eval/return\n100,0,-1200\n200,0,-900\n300,0,-8")
        assert first.progress().endswith(", logged step 200 of 300")
        the_plan, failures = bench.run(cfg, trainer=trained.append, log=log.append)
        report = write_report(cfg, the_plan, failures, log.append).read_text()
    assert [argv[argv.index("--run-dir") + 1] for argv in trained] == [str(second.path)]
    assert any(f"skip sac Pendulum-v1: another process is training it (pid {os.getpid()}" in line for line in log)
    assert f"`runs/sac/Pendulum-v1_300/seeds_0-0`: training now (pid {os.getpid()} on " in report
    assert first.progress() == "not started"  # the lock went with its holder (and it never wrote config.json)


def test_last_logged_step_reads_only_the_end_of_a_long_metrics_file(tmp_path: Path) -> None:
    from critix.train.logging import last_logged_step

    path = tmp_path / "metrics.csv"
    assert last_logged_step(path) is None  # no file
    path.write_text("step,seed,eval/return\n")
    assert last_logged_step(path) is None  # header only
    rows = "".join(f"{step},{seed},{-step / 7:.6f}\n" for step in range(1000, 100_001, 1000) for seed in range(3))
    path.write_text("step,seed,eval/return\n" + rows + "101000,0,-14")  # the last row is still being written
    assert last_logged_step(path) == 100_000
