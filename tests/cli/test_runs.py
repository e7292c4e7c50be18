"""`critix runs [DIR]`: a table (or JSON) of the run folders in a folder with their status — finished, stopped,
training now (a live process holds the lock), broken (with the reason) — and never a crash on a malformed folder."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pytest

from critix.cli import main
from critix.train import runlock
from critix.train.inventory import format_seconds, scan

TINY = ["--hidden-sizes", "32", "32", "--batch-size", "32", "--learning-starts", "100", "--chunk-size", "50",
        "--eval-episodes", "2", "--no-progress", "--no-tensorboard"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with a finished run, a stopped one (killed: no summary.json), one held by a trainer, three broken
    ones, a finished run one level down, and a folder that is no run at all."""
    root = tmp_path_factory.mktemp("runs")
    finished = root / "a-finished"
    assert main(["train", "sac", "--env", "Pendulum-v1", "--steps", "400", "--num-seeds", "2", "--eval-every", "200",
                 "--run-dir", str(finished), *TINY]) == 0
    time.sleep(0.01)
    stopped = root / "b-stopped"
    shutil.copytree(finished, stopped)
    (stopped / "summary.json").unlink()
    shutil.rmtree(max((stopped / "checkpoints").glob("step_*")))  # killed after the checkpoint at step 200
    (root / "c-training").mkdir()
    shutil.copytree(stopped, root / "c-training", dirs_exist_ok=True)
    (root / "d-broken-config").mkdir()
    (root / "d-broken-config" / "config.json").write_text('{"algo": "sac", "agent": {')  # cut short
    (root / "e-broken-summary").mkdir()
    shutil.copytree(finished, root / "e-broken-summary", dirs_exist_ok=True)
    (root / "e-broken-summary" / "summary.json").write_text("[1, 2]")
    (root / "f-only-checkpoints" / "checkpoints").mkdir(parents=True)
    shutil.copytree(finished, root / "suite" / "g-nested")
    (root / "notes").mkdir()
    (root / "notes" / "readme.txt").write_text("not a run")
    return root


def test_each_status_is_shown(runs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with runlock.claim(runs / "c-training"):  # a trainer holds the lock now
        assert main(["runs", str(runs)]) == 0
        table = capsys.readouterr().out
        assert main(["runs", str(runs), "--json"]) == 0
        listed = {row["path"]: row for row in json.loads(capsys.readouterr().out)}
    lines = {line.split()[1]: line for line in table.splitlines() if line.startswith("│") and line.split()[1] != "│"}
    expected = {"a-finished": "finished", "b-stopped": "stopped", "c-training": "training now",
                "d-broken-config": "broken", "e-broken-summary": "broken", "f-only-checkpoints": "broken",
                "suite/g-nested": "finished"}
    assert {path: row["status"] for path, row in listed.items()} == expected
    for path, status in expected.items():
        assert status in lines[path], (path, lines[path])
    assert "notes" not in listed

    done = listed["a-finished"]
    summary = json.loads((runs / "a-finished" / "summary.json").read_text())
    assert (done["algo"], done["env"], done["num_seeds"]) == ("sac", "Pendulum-v1", 2)
    assert (done["steps_done"], done["steps_planned"]) == (400, 400)
    assert done["final_return"] == pytest.approx(summary["final_return_mean"]) and done["return_source"] == "summary"
    assert done["wall_seconds"] == pytest.approx(summary["wall_seconds"])
    assert "400/400" in lines["a-finished"] and f"{summary['final_return_mean']:.1f}" in lines["a-finished"]

    stopped = listed["b-stopped"]
    assert (stopped["steps_done"], stopped["steps_planned"]) == (400, 400)  # metrics.csv got to 400
    assert stopped["return_source"] == "last eval" and stopped["final_return"] is not None
    assert "(last eval)" in lines["b-stopped"]
    assert stopped["note"] == "a resume continues from the checkpoint at step 200"

    assert listed["c-training"]["note"].startswith(f"pid {os.getpid()} on ")
    assert "config.json is missing or malformed" in listed["d-broken-config"]["note"]
    assert "summary.json is malformed" in listed["e-broken-summary"]["note"]
    assert "config.json is missing or malformed" in listed["f-only-checkpoints"]["note"]
    assert list(listed) == sorted(listed, key=lambda p: (listed[p]["started"], p))  # oldest first


def test_once_the_trainer_is_gone_the_run_is_stopped(runs: Path) -> None:
    by_path = {info.path: info for info in scan(runs)}
    assert by_path["c-training"].status == "stopped" and "step 200" in str(by_path["c-training"].note)


def test_a_run_folder_itself_and_an_empty_folder(runs: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    infos = scan(runs / "a-finished")
    assert [(i.path, i.status) for i in infos] == [(str(runs / "a-finished"), "finished")]
    assert main(["runs", str(tmp_path)]) == 0
    assert "no run folders in" in capsys.readouterr().out
    assert main(["runs", str(tmp_path / "missing")]) == 2
    assert "is not a folder" in capsys.readouterr().err


def test_unreadable_files_never_crash_the_listing(tmp_path: Path) -> None:
    run = tmp_path / "odd"
    run.mkdir()
    (run / "config.json").write_bytes(b"\xff\xfe not utf-8")
    (run / "metrics.csv").write_text("step,seed,wall_seconds,eval/return\nx,0,1,nan\n5,0,abc,\n")
    (run / "summary.json").mkdir()  # a folder where a file should be
    [info] = scan(tmp_path)
    assert info.status == "broken" and info.steps_done == 5


def test_wall_times_read_well() -> None:
    assert [format_seconds(s) for s in (None, 12.4, 185, 7440)] == ["-", "12s", "3m05s", "2h04m"]
