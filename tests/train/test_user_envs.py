"""Your own environment: a module critix does not know (tests/assets/my_critix_envs.py) trains from the command line
(`--env my_critix_envs:Reach-v0`, with `--env-kwargs`) and from Python (`train(..., env=callable)`); Dict
observations are flattened; spaces no algorithm takes and bad module names give one clear error; Gymnasium's
environment checker runs on user envs with its warnings shown."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import gymnasium as gym
import pytest

from critix.agents import ppo, sac
from critix.cli import main
from critix.envs import gym as gym_envs
from critix.train import RunConfig, train
from critix.train.config import config_to_json, load_run_config
from critix.types import CritixError

ASSETS = Path(__file__).resolve().parents[1] / "assets"
TINY = ["--hidden-sizes", "32", "32", "--batch-size", "32", "--learning-starts", "100", "--chunk-size", "50",
        "--eval-episodes", "2", "--no-progress", "--no-tensorboard"]


@pytest.fixture()
def user_module(monkeypatch: pytest.MonkeyPatch) -> object:
    """The user's module, importable as it would be from their project folder."""
    monkeypatch.syspath_prepend(str(ASSETS))
    import my_critix_envs

    return my_critix_envs


def tiny_sac() -> sac.Config:
    return dataclasses.replace(sac.Config(), hidden_sizes=(32, 32), batch_size=32)


def test_a_user_module_trains_from_the_command_line_with_env_kwargs(tmp_path: Path) -> None:
    """What a user types: the module is on PYTHONPATH, the env id names it; eval rebuilds the env from config.json."""
    run_dir = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ASSETS), os.environ.get("PYTHONPATH", "")])}
    exe = [sys.executable, "-m", "critix.cli"]
    trained = subprocess.run(
        [*exe, "train", "sac", "--env", "my_critix_envs:Reach-v0", "--env-kwargs", "size=3", "episode_length=5",
         "--steps", "300", "--eval-every", "150", "--run-dir", str(run_dir), *TINY],
        capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr
    config = json.loads((run_dir / "config.json").read_text())
    assert config["run"]["env"] == "my_critix_envs:Reach-v0"
    assert config["run"]["env_kwargs"] == ["size=3", "episode_length=5"]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert 0.0 < summary["final_return"][0] <= 5.0  # 5-step episodes (the kwarg), reward <= 1 per step
    # eval rebuilds the env with its kwargs (size 3: the checkpoint's networks fit no other size)
    evaluated = subprocess.run([*exe, "eval", str(run_dir), "--episodes", "2"], capture_output=True, text=True,
                               timeout=600, env=env, cwd=tmp_path)
    assert evaluated.returncode == 0, evaluated.stderr
    result = json.loads(evaluated.stdout[: evaluated.stdout.rindex("}") + 1])
    assert 0.0 < result["return_mean"] <= 5.0


def test_env_kwargs_reach_the_env(user_module: object) -> None:
    kwargs = gym_envs.parse_env_kwargs(["size=4", "episode_length=7", "action_bound=0.5"])
    envs = gym_envs.make_vector_env("my_critix_envs:Reach-v0", 2, 0, env_kwargs=kwargs)
    try:
        assert envs.single_observation_space.shape == (4,)
        assert [e.unwrapped.episode_length for e in envs.envs] == [7, 7]
        assert float(envs.single_action_space.high[0]) == 0.5
    finally:
        envs.close()


def test_env_kwargs_parse_as_json_literals_else_strings() -> None:
    parsed = gym_envs.parse_env_kwargs(["g=9.81", "n=3", "on=true", "off=null", "xs=[1, 2]", "mode=hard", 'name="x"',
                                        "eq=a=b"])
    assert parsed == {"g": 9.81, "n": 3, "on": True, "off": None, "xs": [1, 2], "mode": "hard", "name": "x",
                      "eq": "a=b"}
    for bad in (["novalue"], ["=3"], ["1x=2"], ["a=1", "a=2"]):
        with pytest.raises(ValueError, match="env_kwargs"):
            gym_envs.parse_env_kwargs(bad)


def test_a_dict_of_env_kwargs_is_recorded_and_rebuilt(tmp_path: Path) -> None:
    """RunConfig takes a dict in Python; config.json records KEY=JSON strings that give the same kwargs back."""
    run = RunConfig(env_kwargs={"gravity": 9.81, "mode": "hard", "flags": [1, 2], "label": "3"})
    assert run.env_kwargs == ("gravity=9.81", 'mode="hard"', "flags=[1, 2]", 'label="3"')
    assert gym_envs.parse_env_kwargs(run.env_kwargs) == {"gravity": 9.81, "mode": "hard", "flags": [1, 2], "label": "3"}
    (tmp_path / "config.json").write_text(json.dumps(config_to_json("sac", sac.Config(), run)))
    assert load_run_config(tmp_path)[2].env_kwargs == run.env_kwargs
    with pytest.raises(ValueError, match="JSON data"):
        RunConfig(env_kwargs={"rng": object()})


def test_a_callable_env_trains_from_python_and_resumes_only_with_it(tmp_path: Path, user_module: object,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    make_reach = user_module.make_reach  # type: ignore[attr-defined]
    run = RunConfig(steps=200, learning_starts=100, chunk_size=50, eval_episodes=2, progress=False,
                    tensorboard=False, run_dir=str(tmp_path / "run"), env_kwargs={"episode_length": 5})
    summary = train("sac", tiny_sac(), run, env=make_reach)
    name = "callable/my_critix_envs.make_reach"
    assert summary["env"] == name and 0.0 < summary["final_return"][0] <= 5.0
    saved = load_run_config(tmp_path / "run")[2]
    assert saved.env == name and saved.env_kwargs == ("episode_length=5",)

    with pytest.warns(UserWarning, match="environments could not be saved"):  # a user env: not snapshotted
        resumed = train("sac", tiny_sac(), dataclasses.replace(saved, steps=300), resume=tmp_path / "run",
                        env=make_reach)
    assert resumed["steps"] == 300
    with pytest.raises(CritixError, match="resume it with the callable it was trained on"):
        train("sac", tiny_sac(), saved, resume=tmp_path / "run", env=user_module.Reach)  # type: ignore[attr-defined]

    # another process (here: the callable forgotten) cannot rebuild it from config.json: one clear message
    monkeypatch.delitem(gym.registry, name)
    monkeypatch.delitem(gym_envs._CALLABLES, name)
    with pytest.raises(CritixError, match="passing the same callable again"):
        train("sac", tiny_sac(), saved, resume=tmp_path / "run")


def test_dict_observations_train_after_flattening(tmp_path: Path, user_module: object,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """On-policy host mode, with a note that says what was flattened."""
    cfg = dataclasses.replace(ppo.Config(), hidden_sizes=(16, 16), minibatch_size=16, num_epochs=1)
    run = RunConfig(env="my_critix_envs:DictReach-v0", env_kwargs={"episode_length": 8}, steps=64, num_envs=2,
                    rollout_length=16, eval_episodes=2, progress=False, tensorboard=False, run_dir=str(tmp_path / "r"))
    summary = train("ppo", cfg, run)
    assert summary["steps"] == 64 and 0.0 < summary["final_return"][0] <= 8.0
    assert "Dict observations; they are flattened to a Box of 4 values" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "sac", "--env", "no_such_module_xyz:MyEnv-v0"],
         "cannot import module 'no_such_module_xyz' (ModuleNotFoundError"),
        (["train", "sac", "--env", "my_critix_envs:Rech-v0"], "Did you mean my_critix_envs:Reach-v0"),
        (["train", "sac", "--env", "my_critix_envs:MultiDiscreteReach-v0"],
         "sac cannot take MultiDiscrete actions (MultiDiscrete([3 3])); critix algorithms take Discrete and Box "
         "actions: wrap the env so it takes one Discrete(9) index"),
        (["train", "ppo", "--env", "my_critix_envs:MultiDiscreteReach-v0"], "ppo cannot take MultiDiscrete actions"),
        (["train", "dqn", "--env", "my_critix_envs:MultiDiscreteReach-v0"], "dqn cannot take MultiDiscrete actions"),
        (["train", "sac", "--env", "my_critix_envs:UnseededReach-v0"],
         "fails Gymnasium's environment checker (gymnasium.utils.env_checker.check_env): Using `env.reset(seed=123)` "
         "is non-deterministic"),
        (["train", "sac", "--env", "my_critix_envs:Reach-v0", "--env-kwargs", "colour=1"],
         "could not be made with the env kwargs {'colour': 1}"),
        (["train", "sac", "--env", "Pendulum-v1", "--env-kwargs", "colour=1"],
         "Pendulum-v1 does not take the env kwargs colour"),
        (["train", "ppo", "--env", "gymnax:CartPole-v1", "--env-kwargs", "a=1"], "drop --env-kwargs"),
    ],
)
def test_bad_user_envs_give_one_clear_error(argv: list[str], message: str, user_module: object,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_a_module_that_fails_to_import_is_named_with_its_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "broken_envs_mod.py").write_text("raise RuntimeError('the simulator licence expired')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert main(["train", "sac", "--env", "broken_envs_mod:Env-v0"]) == 2
    err = capsys.readouterr().err
    assert "cannot import module 'broken_envs_mod' (RuntimeError: the simulator licence expired)" in err
    assert "Traceback" not in err


def test_the_exit_code_of_a_bad_module_in_a_process() -> None:
    bad = subprocess.run([sys.executable, "-m", "critix.cli", "train", "sac", "--env", "no_such_module_xyz:E-v0"],
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "cannot import module 'no_such_module_xyz'" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_the_env_checker_runs_once_on_user_envs_with_its_warnings(user_module: object) -> None:
    kwargs = {"action_bound": 2.0}  # Gymnasium's checker recommends [-1, 1] action bounds
    with pytest.warns(UserWarning, match="environment checker.* on my_critix_envs:Reach-v0: For Box action spaces"):
        gym_envs.make_vector_env("my_critix_envs:Reach-v0", 1, 0, env_kwargs=kwargs).close()
    with warnings.catch_warnings(record=True) as caught:  # once per process: not again for the eval envs
        warnings.simplefilter("always")
        gym_envs.make_vector_env("my_critix_envs:Reach-v0", 1, 0, env_kwargs=kwargs).close()
    assert not [w for w in caught if "environment checker" in str(w.message)]
    assert gym_envs.is_user_env("my_critix_envs:Reach-v0") and gym_envs.is_user_env("callable/m.f")
    assert not gym_envs.is_user_env("Pendulum-v1") and not gym_envs.is_user_env("ALE/Pong-v5")


def test_collect_and_offline_training_use_the_user_env_and_its_kwargs(tmp_path: Path, user_module: object) -> None:
    """`critix collect` on a module:EnvName-v0 id with env kwargs; the dataset records both, so an offline run
    evaluates in the same env."""
    out = tmp_path / "data"
    assert main(["collect", "--env", "my_critix_envs:Reach-v0", "--env-kwargs", "size=3", "episode_length=10",
                 "--kind", "expert", "--out", str(out), "--steps", "100", "--train-steps", "400", "--snapshot-every",
                 "200", "--learning-starts", "100", "--ref-episodes", "2", "--no-progress"]) == 0
    metadata = json.loads((out / "data" / "metadata.json").read_text())
    assert metadata["critix"]["env"] == "my_critix_envs:Reach-v0"
    assert json.loads(metadata["env_spec"])["kwargs"] == {"size": 3, "episode_length": 10}
    assert json.loads(metadata["env_spec"])["entry_point"] == "my_critix_envs:Reach"
    assert main(["train", "td3bc", "--dataset", str(out), "--steps", "100", "--chunk-size", "50", "--eval-every",
                 "100", "--batch-size", "32", "--hidden-sizes", "32", "32", "--eval-episodes", "2", "--no-progress",
                 "--no-tensorboard", "--run-dir", str(tmp_path / "offline")]) == 0
    summary = json.loads((tmp_path / "offline" / "summary.json").read_text())
    assert summary["env"] == "my_critix_envs:Reach-v0" and 0.0 < summary["final_return"][0] <= 10.0


def test_a_callable_must_be_callable() -> None:
    with pytest.raises(CritixError, match="callable returning a gymnasium.Env"):
        train("sac", tiny_sac(), RunConfig(steps=10), env="Pendulum-v1")  # type: ignore[arg-type]


def test_a_user_env_with_env_kwargs_and_dict_observations_is_filmed(tmp_path: Path, user_module: object) -> None:
    """The video env is made as the training envs are: the module's id, the run's env kwargs, Dict observations
    flattened; the frames come from the env's own render (one per step plus the first)."""
    import imageio.v2 as imageio

    run_dir = tmp_path / "run"
    assert main(["train", "sac", "--env", "my_critix_envs:DictReach-v0", "--env-kwargs", "episode_length=7",
                 "--steps", "200", "--eval-every", "200", "--video-every", "200", "--run-dir", str(run_dir),
                 *TINY]) == 0
    (video,) = json.loads((run_dir / "summary.json").read_text())["videos"]
    reader = imageio.get_reader(str(run_dir / video))
    assert reader.count_frames() == 7 + 1  # episode_length from --env-kwargs, not the default 20
    assert reader.get_data(0).shape[:2] == (16, 32)
