"""`critix train ALGO --dataset`, resume, offline-to-online `--init-from`, and `critix collect` errors."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import pytest

from critix.cli import main

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
from test_datasets import make_episodes, write  # noqa: E402

TINY = ["--hidden-sizes", "16", "16", "--batch-size", "8", "--chunk-size", "10", "--eval-episodes", "1",
        "--no-progress", "--no-tensorboard"]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write(tmp_path_factory.mktemp("cli") / "ds", make_episodes(4, 10))


def eval_rows(run_dir: Path) -> list[dict[str, str]]:
    with (run_dir / "metrics.csv").open(newline="") as f:
        return [r for r in csv.DictReader(f) if r["eval/return"]]


def test_offline_train_writes_the_run_folder_and_resumes(dataset, tmp_path, capsys):
    run_dir = tmp_path / "run"
    code = main(["train", "iql", "--dataset", str(dataset), "--steps", "20", "--num-seeds", "2", "--eval-every", "10",
                 "--run-dir", str(run_dir), *TINY])
    assert code == 0
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["mode"] == "offline" and summary["env"] == "Pendulum-v1" and summary["steps"] == 20
    assert len(summary["final_normalized_score"]) == 2 and summary["dataset_transitions"] == 40
    assert [r["step"] for r in eval_rows(run_dir)] == ["10", "10", "20", "20"]
    assert (run_dir / "learning_curve.png").is_file()
    assert "normalised score" in capsys.readouterr().out
    assert main(["train", "iql", "--resume", str(run_dir), "--steps", "30", "--no-progress"]) == 0
    assert json.loads((run_dir / "summary.json").read_text())["steps"] == 30
    assert [r["step"] for r in eval_rows(run_dir)][-2:] == ["30", "30"]
    capsys.readouterr()
    assert main(["eval", str(run_dir), "--episodes", "1"]) == 0
    out = capsys.readouterr().out
    result = json.loads(out[out.index("{"): out.rindex("}") + 1])
    assert len(result["return_per_seed"]) == 2 and len(result["normalized_score_per_seed"]) == 2


def test_offline_to_online_continues_with_the_dataset_in_the_buffer(dataset, tmp_path):
    offline_dir, online_dir = tmp_path / "offline", tmp_path / "online"
    assert main(["train", "cql", "--dataset", str(dataset), "--steps", "10", "--eval-every", "0",
                 "--num-sampled-actions", "2", "--run-dir", str(offline_dir), *TINY]) == 0
    code = main(["train", "cql", "--init-from", str(offline_dir), "--steps", "20", "--chunk-size", "10",
                 "--eval-episodes", "1", "--run-dir", str(online_dir), "--no-progress", "--no-tensorboard"])
    assert code == 0
    summary = json.loads((online_dir / "summary.json").read_text())
    assert summary["env"] == "Pendulum-v1" and summary["steps"] == 20 and summary["gradient_steps"] == 20
    config = json.loads((online_dir / "config.json").read_text())
    assert config["run"]["buffer_size"] >= 60  # 40 dataset transitions + 20 online steps
    assert config["agent"]["hidden_sizes"] == [16, 16]  # the offline run's agent config


@pytest.mark.parametrize("argv,message", [
    (["train", "iql", "--dataset", "/nonexistent/ds", "--steps", "10"], "no Minari dataset"),
    (["train", "iql", "--dataset", "DS", "--steps", "10", "--eval-every", "7", "--chunk-size", "5"],
     "multiple of chunk_size"),
    (["train", "iql", "--dataset", "DS", "--batch-size", "512"], "fewer than batch_size"),
    (["collect", "--env", "Pendulum-v1", "--kind", "medium"], "--out"),
    (["collect", "--env", "Pendulum-v1", "--kind", "expert", "--out", "DS"], "already exists"),
])
def test_offline_errors_exit_with_code_2(dataset, argv, message, capsys):
    argv = [str(dataset) if a == "DS" else a for a in argv]
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_collect_rejects_an_unknown_kind(capsys):
    assert main(["collect", "--env", "Pendulum-v1", "--kind", "bogus", "--out", "x"]) == 2


def test_collect_trains_a_behaviour_policy_and_writes_a_dataset(tmp_path):
    """End to end: the behaviour SAC run, its snapshots, the references, and a readable Minari-format dataset."""
    from critix.data.datasets import read_dataset

    out = tmp_path / "mountaincar-medium"  # a deterministic near-zero push already beats random actions
    assert main(["collect", "--env", "MountainCarContinuous-v0", "--kind", "medium", "--out", str(out), "--steps", "999",
                 "--train-steps", "600", "--snapshot-every", "200", "--learning-starts", "200", "--ref-episodes", "2",
                 "--no-progress"]) == 0
    data = read_dataset(out)
    assert data.metadata["ref_max_score"] > data.metadata["ref_min_score"]
    assert data.transitions().obs.shape[1:] == (2,) and len(data.returns()) >= 1
