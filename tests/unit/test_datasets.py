"""Minari-format dataset IO: round trips (critix <-> critix, critix -> minari, minari -> critix) and malformed files."""

from __future__ import annotations

import json
from pathlib import Path

import gymnasium as gym
import h5py
import numpy as np
import pytest

from critix.data import datasets
from critix.data.datasets import Episode, OfflineDataset, read_dataset, write_dataset
from critix.types import CritixError

ENV = "Pendulum-v1"


def make_episodes(num: int = 3, length: int = 7, seed: int = 0) -> list[Episode]:
    """Random Pendulum-shaped episodes: the last one truncated, the others terminated."""
    rng = np.random.default_rng(seed)
    episodes = []
    for i in range(num):
        term = np.zeros(length, bool)
        trunc = np.zeros(length, bool)
        (trunc if i == num - 1 else term)[-1] = True
        episodes.append(Episode(
            observations=rng.normal(size=(length + 1, 3)).astype(np.float32),
            actions=rng.uniform(-2, 2, size=(length, 1)).astype(np.float32),
            rewards=rng.normal(size=length),
            terminations=term,
            truncations=trunc,
            seed=i,
        ))
    return episodes


def write(path: Path, episodes: list[Episode] | None = None, **kwargs: object) -> Path:
    env = gym.make(ENV)
    return write_dataset(path, episodes or make_episodes(), env.observation_space, env.action_space,
                         "critix/pendulum/test-v0", env_id=ENV, ref_min_score=-1200.0, ref_max_score=-150.0,
                         critix_info={"kind": "test"}, **kwargs)  # type: ignore[arg-type]


def test_round_trip_keeps_every_array_and_the_metadata(tmp_path):
    episodes = make_episodes()
    root = write(tmp_path / "ds", episodes)
    loaded = read_dataset(root)
    assert len(loaded.episodes) == len(episodes)
    for got, want in zip(loaded.episodes, episodes, strict=True):
        for field in datasets.EPISODE_FIELDS:
            np.testing.assert_allclose(getattr(got, field), getattr(want, field), rtol=1e-6)
        assert got.seed == want.seed
    assert loaded.env_id == ENV
    assert loaded.metadata["ref_min_score"] == -1200.0 and loaded.metadata["critix"] == {"kind": "test"}
    assert read_dataset(root / "data").num_steps == 21  # the data folder itself works too


def test_transitions_rescale_actions_and_keep_final_observations(tmp_path):
    episodes = make_episodes()
    data = read_dataset(write(tmp_path / "ds", episodes)).transitions()
    assert data.obs.shape == (21, 3) and data.action.shape == (21, 1)
    np.testing.assert_allclose(data.action[:7, 0], episodes[0].actions[:, 0] / 2.0, rtol=1e-6)  # [-2, 2] -> [-1, 1]
    np.testing.assert_allclose(data.next_obs[6], episodes[0].observations[7])  # final observation of episode 0
    np.testing.assert_allclose(data.obs[7], episodes[1].observations[0])  # next episode starts fresh
    np.testing.assert_array_equal(data.terminated[[6, 13, 20]], [1.0, 1.0, 0.0])
    np.testing.assert_array_equal(data.truncated[[6, 13, 20]], [0.0, 0.0, 1.0])


def test_normalized_score_is_d4rls():
    assert datasets.normalized_score(-675.0, -1200.0, -150.0) == pytest.approx(50.0)
    np.testing.assert_allclose(datasets.normalized_score(np.array([-1200.0, -150.0]), -1200.0, -150.0), [0, 100])
    with pytest.raises(CritixError, match="expert"):
        datasets.normalized_score(0.0, 1.0, 1.0)


def test_write_refuses_to_overwrite_unless_asked(tmp_path):
    write(tmp_path / "ds")
    with pytest.raises(CritixError, match="already exists"):
        write(tmp_path / "ds")
    write(tmp_path / "ds", make_episodes(2), overwrite=True)
    assert len(read_dataset(tmp_path / "ds").episodes) == 2
    assert [p.name for p in tmp_path.iterdir()] == ["ds"]  # no temporary folder left behind


def test_a_critix_dataset_opens_with_minaris_loader(tmp_path, monkeypatch):
    minari = pytest.importorskip("minari")
    episodes = make_episodes()
    root = write(tmp_path / "critix" / "pendulum" / "test-v0", episodes)
    dataset = minari.MinariDataset(root / "data")
    assert dataset.total_episodes == 3 and dataset.total_steps == 21
    assert dataset.env_spec.id == ENV
    episode = dataset[2]
    np.testing.assert_allclose(episode.observations, episodes[2].observations)
    np.testing.assert_allclose(episode.actions, episodes[2].actions)
    np.testing.assert_array_equal(episode.truncations, episodes[2].truncations)
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    loaded = minari.load_dataset("critix/pendulum/test-v0")
    np.testing.assert_allclose(loaded[0].rewards, episodes[0].rewards)


def test_a_minari_dataset_opens_in_critix(tmp_path, monkeypatch):
    minari = pytest.importorskip("minari")
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    env = minari.DataCollector(gym.make(ENV, max_episode_steps=6))
    rewards = []
    for seed in range(3):
        env.reset(seed=seed)
        done = False
        while not done:
            _, reward, terminated, truncated, _ = env.step(env.action_space.sample())
            rewards.append(reward)
            done = terminated or truncated
    env.create_dataset("test/pendulum/random-v0", algorithm_name="random", author="critix tests",
                       author_email="tests@critix", code_permalink="none", description="test data",
                       ref_min_score=-1200.0, ref_max_score=-150.0, eval_env=ENV)
    env.close()
    loaded = read_dataset(tmp_path / "test" / "pendulum" / "random-v0")
    assert isinstance(loaded, OfflineDataset)
    assert len(loaded.episodes) == 3 and loaded.num_steps == 18
    np.testing.assert_allclose(np.concatenate([e.rewards for e in loaded.episodes]), rewards, rtol=1e-6)
    assert loaded.env_id == ENV
    assert loaded.episodes[0].truncations[-1] and not loaded.episodes[0].terminations.any()
    assert datasets.dataset_normalized_score(loaded, -675.0) == pytest.approx(50.0)


# --- malformed files ----------------------------------------------------------------------------------------


def test_missing_folder_names_the_fix(tmp_path):
    with pytest.raises(CritixError, match="critix collect"):
        read_dataset(tmp_path / "nothing")


def edit_h5(root: Path, edit) -> None:  # type: ignore[no-untyped-def]
    with h5py.File(root / "data" / datasets.DATA_FILE, "a") as f:
        edit(f)


@pytest.mark.parametrize("case,match", [
    ("missing_key", "lacks the dataset 'rewards'"),
    ("wrong_shape", "actions has shape"),
    ("nan", "NaN"),
    ("missing_episode", "episode_2 is missing"),
])
def test_malformed_hdf5_gives_a_clear_error(tmp_path, case, match):
    root = write(tmp_path / "ds")

    def edit(f: h5py.File) -> None:
        if case == "missing_key":
            del f["episode_1/rewards"]
        elif case == "wrong_shape":
            del f["episode_0/actions"]
            f["episode_0/actions"] = np.zeros((6, 1), np.float32)
        elif case == "nan":
            f["episode_1/observations"][3, 0] = np.nan
        else:
            del f["episode_2"]

    edit_h5(root, edit)
    with pytest.raises(CritixError, match=match):
        read_dataset(root)


def test_truncated_hdf5_file_gives_a_clear_error(tmp_path):
    root = write(tmp_path / "ds")
    path = root / "data" / datasets.DATA_FILE
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CritixError, match="truncated or damaged"):
        read_dataset(root)


@pytest.mark.parametrize("change,match", [
    ({"data_format": "arrow"}, "data_format"),
    ({"total_steps": 99}, "total_steps is 99"),
    ({"observation_space": json.dumps({"type": "Discrete", "n": 3})}, "Box"),
    ({"action_space": None}, "action_space"),
])
def test_malformed_metadata_gives_a_clear_error(tmp_path, change, match):
    root = write(tmp_path / "ds")
    path = root / "data" / datasets.METADATA_FILE
    metadata = json.loads(path.read_text())
    for key, value in change.items():
        if value is None:
            del metadata[key]
        else:
            metadata[key] = value
    path.write_text(json.dumps(metadata))
    with pytest.raises(CritixError, match=match):
        read_dataset(root)


def test_writing_nan_or_misshapen_episodes_is_refused(tmp_path):
    bad = make_episodes()
    bad[1].rewards[2] = np.nan
    with pytest.raises(CritixError, match="rewards has a NaN"):
        write(tmp_path / "ds", bad)
    short = make_episodes()
    short[0] = Episode(short[0].observations[:-1], short[0].actions, short[0].rewards, short[0].terminations,
                       short[0].truncations)
    with pytest.raises(CritixError, match="observations has shape"):
        write(tmp_path / "ds2", short)
    assert not (tmp_path / "ds").exists() and not (tmp_path / "ds2").exists()
