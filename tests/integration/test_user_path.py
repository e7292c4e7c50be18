"""A new user's path, end to end: train, `critix.load`, act on one observation and on a batch, export to ONNX, and
the same actions from ONNX Runtime within 1e-5, for SAC, PPO, DQN (C51 head) and IQL (on a tiny dataset).

Runs are tiny (a few hundred env steps, 16-unit networks): the point is the path, not the learning. The ONNX
models are checked on observations the env itself produces, besides the check `critix export` makes on its own.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import onnxruntime as ort  # the test extra includes the export extra
import pytest

import critix
from critix.cli import main

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
from test_datasets import make_episodes, write  # noqa: E402

QUIET = ["--eval-episodes", "1", "--eval-every", "0", "--no-progress", "--no-tensorboard"]
RUNS = {
    # algo: (training flags, env id); every run saves one checkpoint, at its end
    "sac": (["--env", "Pendulum-v1", "--steps", "200", "--num-seeds", "2", "--learning-starts", "100",
             "--hidden-sizes", "16", "16", "--batch-size", "16", "--normalize-obs"], "Pendulum-v1"),
    "ppo": (["--env", "Pendulum-v1", "--steps", "128", "--num-envs", "2", "--rollout-length", "32",
             "--minibatch-size", "32", "--num-epochs", "1", "--hidden-sizes", "16", "16", "--normalize-obs"],
            "Pendulum-v1"),
    "dqn": (["--env", "CartPole-v1", "--steps", "200", "--learning-starts", "100", "--hidden-sizes", "16", "16",
             "--batch-size", "16", "--critic-head", "c51", "--v-min", "0", "--v-max", "100", "--num-bins", "11"],
            "CartPole-v1"),
    "iql": (["--steps", "20", "--chunk-size", "10", "--hidden-sizes", "16", "16", "--batch-size", "8",
             "--normalize-obs"], "Pendulum-v1"),
}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny Pendulum dataset in the Minari format (4 episodes of 10 steps), as `critix collect` writes them."""
    return write(tmp_path_factory.mktemp("user-path") / "pendulum-tiny", make_episodes(4, 10))


def env_observations(env_id: str, count: int, seed: int = 0) -> np.ndarray:
    """`count` observations [count, O] of random-action episodes of the env."""
    env = gym.make(env_id)
    obs, _ = env.reset(seed=seed)
    env.action_space.seed(seed)
    found = []
    while len(found) < count:
        found.append(obs)
        obs, _, terminated, truncated, _ = env.step(env.action_space.sample())
        if terminated or truncated:
            obs, _ = env.reset()
    env.close()
    return np.asarray(found, np.float32)


@pytest.mark.parametrize("algo", list(RUNS))
def test_train_load_act_export_and_onnx_runtime_agree(algo: str, dataset: Path, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    flags, env_id = RUNS[algo]
    run_dir = tmp_path / f"{algo}-run"
    offline = ["--dataset", str(dataset)] if algo == "iql" else []
    assert main(["train", algo, *offline, *flags, *QUIET, "--run-dir", str(run_dir)]) == 0

    policy = critix.load(run_dir)
    space = gym.make(env_id).action_space
    assert policy.algo == algo and policy.env_id == env_id and policy.seed_index == 0
    assert policy.action_space == space
    obs = env_observations(env_id, 32)
    one = policy.act(obs[0])  # a single observation -> one action of the env's space
    batch = policy.act(obs)  # a batch -> one action per row
    assert space.contains(one.astype(space.dtype) if isinstance(space, gym.spaces.Box) else one)
    assert batch.shape == (32, *space.shape) and all(space.contains(a) for a in batch.astype(space.dtype))
    np.testing.assert_allclose(batch[0], one, atol=1e-6)  # XLA may sum a batch's products in another order
    sampled = policy.act(obs, deterministic=False, key=1)
    np.testing.assert_array_equal(sampled, policy.act(obs, deterministic=False, key=1))  # same key, same sample

    out = tmp_path / f"{algo}.onnx"
    capsys.readouterr()
    assert main(["export", str(run_dir), "--out", str(out)]) == 0  # checks ONNX Runtime itself before writing
    printed = capsys.readouterr().out
    report = json.loads(printed[printed.index("{"): printed.rindex("}") + 1])
    assert report["max_abs_diff"] <= 1e-5 and report["observations_checked"] > 0
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    onnx_actions = session.run(["action"], {"obs": obs})[0]
    difference = np.max(np.abs(onnx_actions.astype(np.float64) - batch.astype(np.float64)))
    print(f"{algo}: max |ONNX Runtime - critix| over {len(obs)} env observations = {difference:.3g}")
    assert difference <= 1e-5
    if isinstance(space, gym.spaces.Discrete):
        np.testing.assert_array_equal(onnx_actions, batch)
