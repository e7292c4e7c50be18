"""Discrete-action agents through the CLI: run folder, n-step sampling in the host loop, tuned defaults shown and
applied, eval of a checkpoint, and a clear error (exit code 2) for a continuous-action env."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from critix.cli import main

TINY = ["--hidden-sizes", "32", "32", "--batch-size", "16", "--learning-starts", "100", "--chunk-size", "50",
        "--eval-episodes", "2", "--no-progress", "--no-tensorboard", "--buffer-size", "1000"]


@pytest.mark.parametrize("algo,extra", [("dqn", ["--n-step", "3", "--critic-head", "hl-gauss", "--num-envs", "2"]),
                                        ("sac-discrete", [])])
def test_discrete_agents_train_and_eval(algo: str, extra: list[str], tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    run_dir = tmp_path / algo
    code = main(["train", algo, "--env", "CartPole-v1", "--steps", "400", "--num-seeds", "2", "--eval-every", "0",
                 "--run-dir", str(run_dir), *TINY, *extra])
    assert code == 0
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["steps"] == 400 and len(summary["final_return"]) == 2
    assert all(r >= 8 for r in summary["final_return"])  # CartPole episodes last at least 8 steps
    config = json.loads((run_dir / "config.json").read_text())["agent"]
    if algo == "dqn":
        assert config["n_step"] == 3 and config["value_head"]["critic_head"] == "hl-gauss"
        # tuned CartPole defaults apply where no flag was given: value range and learning rate
        assert (config["value_head"]["v_min"], config["value_head"]["v_max"]) == (0.0, 100.0) and config["q_lr"] == 2.3e-3
        assert config["hidden_sizes"] == [32, 32]  # a flag wins over the tuned default
    capsys.readouterr()
    assert main(["eval", str(run_dir), "--episodes", "2"]) == 0
    assert "mean return" in capsys.readouterr().out


def test_list_shows_tuned_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", "dqn"]) == 0
    out = capsys.readouterr().out
    assert "tuned defaults per env" in out and "CartPole-v1" in out and "RL Zoo" in out


def test_dqn_on_a_continuous_env_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["train", "dqn", "--env", "Pendulum-v1", "--steps", "200", "--run-dir", str(tmp_path / "x"), *TINY])
    assert code == 2
    err = capsys.readouterr().err
    assert "discrete action space" in err and "Traceback" not in err
