"""Offline agents learn from a small Pendulum dataset: half near-expert episodes, half uniform random ones.

The near-expert episodes come from a hand-written energy-pumping + PD swing-up controller (about -130 return;
uniform random actions score about -1200), with Gaussian action noise, so no behaviour agent needs training.
The dataset's mean normalised score is about 50; an offline agent that learns should beat it clearly, and a
broken one (wrong signs, no bootstrapping, no advantage weighting) stays near the random half or the average.
"""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

from critix import agents
from critix.data.datasets import Episode, write_dataset
from critix.train import offline

ENV = "Pendulum-v1"
SMALL = dict(hidden_sizes=(64, 64))


def swing_up(obs: np.ndarray) -> np.ndarray:
    """Energy pumping (E = theta_dot^2 / 2 + 15 cos theta, upright E = 15) far from the top, PD near it."""
    cos, sin, theta_dot = obs
    if cos > 0.95:
        torque = -(10.0 * np.arctan2(sin, cos) + 2.0 * theta_dot)
    else:
        energy = 0.5 * theta_dot**2 + 15.0 * cos
        torque = 2.0 * np.sign(theta_dot * (15.0 - energy)) if abs(theta_dot) > 1e-3 else 2.0
    return np.clip(np.array([torque], np.float32), -2.0, 2.0)


def make_pendulum_dataset(path: Path, episodes_per_policy: int = 10, noise: float = 0.5, seed: int = 0) -> Path:
    env = gym.make(ENV)
    rng = np.random.default_rng(seed)
    episodes, returns = [], {"expert": [], "random": []}
    for kind in ("expert", "random"):
        for i in range(episodes_per_policy):
            obs, _ = env.reset(seed=seed * 1000 + i + (0 if kind == "expert" else 500))
            observations, actions, rewards, terms, truncs = [obs], [], [], [], []
            done = False
            while not done:
                if kind == "expert":
                    action = np.clip(swing_up(obs) + noise * rng.normal(size=1), -2.0, 2.0).astype(np.float32)
                else:
                    action = rng.uniform(-2.0, 2.0, size=1).astype(np.float32)
                obs, reward, terminated, truncated, _ = env.step(action)
                observations.append(obs)
                actions.append(action)
                rewards.append(reward)
                terms.append(terminated)
                truncs.append(truncated)
                done = terminated or truncated
            episodes.append(Episode(np.array(observations), np.array(actions), np.array(rewards), np.array(terms),
                                    np.array(truncs)))
            returns[kind].append(float(np.sum(rewards)))
    return write_dataset(path, episodes, env.observation_space, env.action_space, "critix/pendulum/mixed-v0",
                         env_id=ENV, ref_min_score=float(np.mean(returns["random"])),
                         ref_max_score=-130.0, critix_info={"kind": "expert-noise+random, test"})


@pytest.fixture(scope="module")
def pendulum_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_pendulum_dataset(tmp_path_factory.mktemp("offline") / "pendulum-mixed")


def train(algo: str, dataset: Path, run_dir: Path, steps: int, **agent: object) -> dict:
    cfg = type(agents.get(algo).default_config)
    cfg_value = agents.get(algo).default_config
    import dataclasses

    cfg_value = dataclasses.replace(cfg_value, **{**SMALL, **agent})
    assert isinstance(cfg_value, cfg)
    run = offline.OfflineRunConfig(dataset=str(dataset), steps=steps, num_seeds=2, chunk_size=steps // 2,
                                   eval_every=0, eval_episodes=5, run_dir=str(run_dir), progress=False,
                                   tensorboard=False)
    return offline.train(algo, cfg_value, run)


@pytest.mark.slow
@pytest.mark.parametrize("algo,steps", [("iql", 6000), ("td3bc", 6000), ("cql", 4000), ("fdvl", 6000)])
def test_offline_agents_beat_the_dataset_average(pendulum_dataset, tmp_path, algo, steps):
    summary = train(algo, pendulum_dataset, tmp_path / algo, steps)
    data_score = summary["dataset_normalized_score_mean"]
    assert 40 < data_score < 60
    scores = summary["final_normalized_score"]
    assert min(scores) > data_score + 20, (algo, scores, data_score)


def test_iql_learns_quickly_from_the_mixed_dataset(pendulum_dataset, tmp_path):
    """The CI representative: IQL with a small budget already beats the dataset's average clearly."""
    summary = train("iql", pendulum_dataset, tmp_path / "iql", 3000, batch_size=128)
    assert summary["steps"] == 3000 and len(summary["final_return"]) == 2
    assert np.mean(summary["final_normalized_score"]) > summary["dataset_normalized_score_mean"] + 20
