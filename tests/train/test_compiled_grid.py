"""Hyperparameter grids inside one compiled run (`--grid`): parsing, run folders, and agreement with single runs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from critix import agents
from critix.cli import main
from critix.stats.runs import find_runs, load_run
from critix.train.grid import parse_grid
from critix.types import CritixError

TINY = ["--num-envs", "2", "--num-seeds", "2", "--steps", "128", "--rollout-length", "16", "--minibatch-size", "16",
        "--num-epochs", "2", "--hidden-sizes", "16", "--eval-episodes", "2", "--log-every", "64", "--no-progress",
        "--no-tensorboard"]


def ppo_config():  # noqa: ANN201
    return agents.get("ppo").default_config


def test_parse_grid_product_ties_and_member_values() -> None:
    grid = parse_grid(("learning_rate=1e-3,3e-4", "entropy_coef,value_coef=0.1,0.3"), "ppo", ppo_config())
    assert grid.fields == ("learning_rate", "entropy_coef", "value_coef")
    assert [p["learning_rate"] for p in grid.points] == [1e-3, 1e-3, 3e-4, 3e-4]  # the first flag varies slowest
    assert [p["entropy_coef"] for p in grid.points] == [p["value_coef"] for p in grid.points] == [0.1, 0.3] * 2
    values = grid.member_values(num_seeds=3)
    np.testing.assert_allclose(values["entropy_coef"], [0.1] * 3 + [0.3] * 3 + [0.1] * 3 + [0.3] * 3)
    assert grid.dirname(1) == "01_learning_rate=0.001_entropy_coef=0.3_value_coef=0.3"
    assert parse_grid((), "ppo", ppo_config()).size == 1


@pytest.mark.parametrize("spec,message", [
    ("learning_rate", "is not FIELD=V1,V2"),
    ("learnin_rate=1e-3", "did you mean learning_rate"),
    ("num_epochs=5,10", "num_epochs is not a float of ppo's program"),
    ("clip_ratio=0.1,0.2", "clip_ratio sets a shape or a branch"),
    ("learning_rate=1e-3,fast", "must be numbers"),
    ("learning_rate=1e-3,1e-3", "lists a value twice"),
    ("learning_rate=1e-3,-1", "--grid point learning_rate=-1"),
    ("learning_rate=nan", "finite"),
])
def test_parse_grid_refuses_bad_specs(spec: str, message: str) -> None:
    with pytest.raises(CritixError, match=message):
        parse_grid((spec,), "ppo", ppo_config())


def test_a_field_twice_is_refused() -> None:
    with pytest.raises(CritixError, match="names learning_rate twice"):
        parse_grid(("learning_rate=1e-3", "learning_rate=3e-4"), "ppo", ppo_config())


def test_grid_run_matches_single_runs_and_writes_a_folder_per_point(tmp_path: Path) -> None:
    """Grid point g of a grid run trains what a single run with g's values trains: same seeds, same data."""
    grid_dir = tmp_path / "grid"
    assert main(["train", "ppo", "--env", "gymnax:CartPole-v1", "--run-dir", str(grid_dir), *TINY,
                 "--grid", "learning_rate=0.01,0.001", "entropy_coef=0.0,0.05"]) == 0
    summary = json.loads((grid_dir / "summary.json").read_text())
    assert len(summary["grid"]) == 4 and len(summary["final_return"]) == 8
    assert summary["grid"][1]["point"] == {"learning_rate": 0.01, "entropy_coef": 0.05}
    assert (grid_dir / "learning_curve.png").exists() and (grid_dir / "checkpoints").is_dir()
    points = sorted((grid_dir / "grid").iterdir())
    assert [p.name for p in points][1] == "01_learning_rate=0.01_entropy_coef=0.05"
    for point in points:
        for name in ("metrics.csv", "summary.json", "config.json", "learning_curve.png"):
            assert (point / name).exists(), (point, name)
    config = json.loads((points[1] / "config.json").read_text())
    assert config["agent"]["entropy_coef"] == 0.05 and config["run"]["grid"] == []

    single = tmp_path / "single"
    assert main(["train", "ppo", "--env", "gymnax:CartPole-v1", "--run-dir", str(single), *TINY,
                 "--learning-rate", "0.01", "--entropy-coef", "0.05"]) == 0
    alone, in_grid = load_run(single, "actor/loss"), load_run(points[1], "actor/loss")
    np.testing.assert_allclose(in_grid.values, alone.values, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(json.loads((points[1] / "summary.json").read_text())["final_return"],
                               json.loads((single / "summary.json").read_text())["final_return"])
    # the points differ (so the grid values reached the program)
    assert not np.allclose(load_run(points[0], "actor/loss").values, in_grid.values)
    # plots and stats see one run per point, labelled with its values
    runs = [load_run(p) for p in find_runs([grid_dir])]
    assert sorted(r.algo for r in runs)[0] == "ppo entropy_coef=0 learning_rate=0.001"  # JSON keys are sorted

    assert main(["eval", str(grid_dir), "--episodes", "1"]) == 0
    assert main(["eval", str(points[0]), "--episodes", "1"]) == 2  # a point's folder: "give that folder"
    assert main(["train", "ppo", "--resume", str(grid_dir), "--steps", "192", "--no-progress"]) == 0
    resumed = json.loads((points[1] / "summary.json").read_text())
    assert resumed["steps"] == 192 and len(load_run(points[1]).steps) >= 2


def test_compiled_sac_grid_on_pendulum(tmp_path: Path) -> None:
    run_dir = tmp_path / "sac"
    assert main(["train", "sac", "--env", "gymnax:Pendulum-v1", "--steps", "200", "--learning-starts", "100",
                 "--batch-size", "16", "--hidden-sizes", "16", "--eval-episodes", "1", "--num-seeds", "2",
                 "--log-every", "100", "--normalize-obs", "--run-dir", str(run_dir), "--no-progress",
                 "--no-tensorboard", "--grid", "gamma=0.9,0.99", "target_tau=0.005,0.01"]) == 0
    summary = json.loads((run_dir / "summary.json").read_text())
    assert len(summary["grid"]) == 4 and all(-2000 < g["final_return_mean"] < 0 for g in summary["grid"])


@pytest.mark.parametrize("argv,message", [
    (["train", "ppo", "--env", "gymnax:CartPole-v1", "--grid", "max_grad_norm=0,0.5"], "--grid max_grad_norm"),
    (["train", "ppo", "--env", "CartPole-v1", "--grid", "learning_rate=1e-3,3e-4"], "critix sweep"),
    (["train", "ppo", "--env", "gymnax:CartPole-v1", "--grid", "rollout_length=8,16"], "is a run setting"),
    (["train", "ppo", "--env", "gymnax:CartPole-v1", "--grid", "num_epochs=2,4"], "declares vmappable"),
    (["train", "sac", "--env", "gymnax:Pendulum-v1", "--grid", "utd_ratio=1,2"], "--grid utd_ratio"),
])
def test_bad_grids_give_one_clear_error(argv: list[str], message: str, capsys) -> None:  # noqa: ANN001
    assert main([*argv, "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
