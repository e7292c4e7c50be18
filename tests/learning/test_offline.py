"""Offline agents learn from a small Pendulum dataset: half near-expert episodes, half uniform random ones.

The near-expert episodes come from a hand-written energy-pumping + PD swing-up controller (about -130 return;
uniform random actions score about -1200), with Gaussian action noise, so no behaviour agent needs training.
The dataset's mean normalised score is about 46; an offline agent that learns should beat it clearly, and a
broken one (wrong signs, no bootstrapping, no advantage weighting) stays near the random half or the average.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

from critix import agents
from critix.data.datasets import Episode, write_dataset
from critix.train import offline

ENV = "Pendulum-v1"
SMALL = dict(hidden_sizes=(64, 64))
RANDOM_RETURN = -1207.6  # mean return of uniform random actions on Pendulum-v1 (100 episodes, seeds 0-99)


def swing_up(obs: np.ndarray) -> np.ndarray:
    """Energy pumping (E = theta_dot^2 / 2 + 15 cos theta, upright E = 15) far from the top, PD near it."""
    cos, sin, theta_dot = obs
    if cos > 0.95:
        torque = -(10.0 * np.arctan2(sin, cos) + 2.0 * theta_dot)
    else:
        energy = 0.5 * theta_dot**2 + 15.0 * cos
        torque = 2.0 * np.sign(theta_dot * (15.0 - energy)) if abs(theta_dot) > 1e-3 else 2.0
    return np.clip(np.array([torque], np.float32), -2.0, 2.0)


def make_pendulum_dataset(path: Path, episodes_per_policy: int = 10, noise: float = 0.5, seed: int = 0,
                          kinds: tuple[str, ...] = ("expert", "random")) -> Path:
    env = gym.make(ENV)
    rng = np.random.default_rng(seed)
    episodes, returns = [], {"expert": [], "random": []}
    for kind in kinds:
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
                         env_id=ENV, ref_min_score=RANDOM_RETURN,
                         ref_max_score=-130.0, critix_info={"kind": "expert-noise+random, test"})


@pytest.fixture(scope="module")
def pendulum_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_pendulum_dataset(tmp_path_factory.mktemp("offline") / "pendulum-mixed")


def train(algo: str, dataset: Path, run_dir: Path, steps: int, **agent: object) -> dict:
    cfg = dataclasses.replace(agents.get(algo).default_config, **{**SMALL, **agent})
    run = offline.OfflineRunConfig(dataset=str(dataset), steps=steps, num_seeds=2, chunk_size=steps // 2,
                                   eval_every=0, eval_episodes=10, run_dir=str(run_dir), progress=False,
                                   tensorboard=False, normalize_obs=algo == "td3bc")
    return offline.train(algo, cfg, run)


def test_bc_recovers_the_expert_from_expert_data(tmp_path):
    """The CI representative: dataset -> device -> compiled scan -> evaluation -> normalised score, end to end.

    BC on the noisy controller's episodes alone reaches most of its score; a broken pipeline (actions not
    rescaled to [-1, 1], observations and actions misaligned, wrong normalisation) does not.
    """
    dataset = make_pendulum_dataset(tmp_path / "expert", episodes_per_policy=10, kinds=("expert",))
    summary = train("bc", dataset, tmp_path / "bc", 3000)
    assert summary["dataset_normalized_score_mean"] > 90
    assert min(summary["final_normalized_score"]) > 70, summary["final_normalized_score"]


@pytest.mark.slow
@pytest.mark.parametrize("algo", ["iql", "td3bc", "cql", "fdvl", "xql"])
def test_offline_agents_beat_the_dataset_average_and_bc(pendulum_dataset, tmp_path, algo):
    """Half expert, half random data: BC lands near the dataset's average (about 46); offline RL must beat it.

    The critics need about 25k steps to propagate Pendulum's values (gamma 0.99, target_tau 0.005); measured for
    IQL on 2026-11-21: 86 and 89 after 30k steps (BC: 33 and 58 after 3k steps, near the average).
    """
    summary = train(algo, pendulum_dataset, tmp_path / algo, 30_000)
    data_score = summary["dataset_normalized_score_mean"]
    assert 40 < data_score < 60
    assert np.mean(summary["final_normalized_score"]) > data_score + 25, (algo, summary["final_normalized_score"])
