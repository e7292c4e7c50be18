"""Offline datasets in the Minari format (HDF5), read and written without the `minari` package.

On-disk layout of a dataset folder ROOT (what `minari` 0.5 writes with its HDF5 storage, so either side reads
the other's files; `minari.MinariDataset(ROOT / "data")` or `minari.load_dataset(ID)` with
`MINARI_DATASETS_PATH` pointing at the parent of ROOT):

    ROOT/data/metadata.json    dataset metadata (JSON): dataset_id, minari_version, data_format "hdf5",
                               observation_space / action_space (minari's JSON space serialisation),
                               env_spec (gymnasium EnvSpec JSON), total_episodes, total_steps,
                               ref_min_score / ref_max_score (random / expert reference returns), ...
    ROOT/data/main_data.hdf5   one group per episode, "episode_0" ... "episode_{n-1}", each holding
                               observations [T+1, O] (the last one is the real final observation),
                               actions [T, A], rewards [T], terminations [T], truncations [T], infos (group)
                               and attributes id, total_steps (and seed when known).

critix adds a "critix" entry to metadata.json (how the data was collected); minari ignores unknown keys.
Everything is data: JSON and HDF5 numeric arrays, never pickle. Writes go to a temporary folder that is renamed
into place once complete. A malformed dataset raises `CritixError` naming the file, the field and the fix.
Shapes: T steps of an episode, N transitions, O observation size, A action size.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
import jax
import numpy as np

from critix.types import CritixError, Transition

METADATA_FILE = "metadata.json"
DATA_FILE = "main_data.hdf5"
MINARI_FORMAT_VERSION = "0.5.4"
"""The minari release whose on-disk format critix writes (minari accepts datasets of 0.4.0 ... 0.5.4)."""
EPISODE_FIELDS = ("observations", "actions", "rewards", "terminations", "truncations")


@dataclasses.dataclass(frozen=True)
class Episode:
    """One episode: observations [T+1, O], actions [T, A], rewards / terminations / truncations [T]."""

    observations: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    terminations: np.ndarray
    truncations: np.ndarray
    seed: int | None = None

    @property
    def length(self) -> int:
        return int(self.rewards.shape[0])

    @property
    def episode_return(self) -> float:
        return float(np.sum(self.rewards, dtype=np.float64))


@dataclasses.dataclass(frozen=True)
class OfflineDataset:
    """A dataset in memory: its episodes, spaces and metadata (the parsed metadata.json)."""

    episodes: list[Episode]
    observation_space: gym.spaces.Box
    action_space: gym.spaces.Box
    metadata: dict[str, Any]

    @property
    def env_id(self) -> str | None:
        """The Gymnasium id the data came from (the id `critix collect` was given, e.g. a module:EnvName-v0 id;
        else from `eval_env_spec`, else `env_spec`), or None."""
        recorded = self.metadata.get("critix")
        if isinstance(recorded, dict) and isinstance(recorded.get("env"), str):
            return recorded["env"]
        for key in ("eval_env_spec", "env_spec"):
            spec = self.metadata.get(key)
            if isinstance(spec, str):
                try:
                    return str(json.loads(spec)["id"])
                except (json.JSONDecodeError, KeyError, TypeError):
                    continue
        return None

    @property
    def env_kwargs(self) -> tuple[str, ...]:
        """The gymnasium.make keyword arguments (KEY=VALUE strings) `critix collect` made the env with."""
        recorded = self.metadata.get("critix")
        items = recorded.get("env_kwargs") if isinstance(recorded, dict) else None
        return tuple(str(item) for item in items) if isinstance(items, list) else ()

    @property
    def num_steps(self) -> int:
        return sum(e.length for e in self.episodes)

    def returns(self) -> np.ndarray:
        """Undiscounted return of every episode [num_episodes]."""
        return np.array([e.episode_return for e in self.episodes])

    def transitions(self) -> Transition:
        """All steps as one Transition of numpy arrays [N, ...], actions rescaled from the env's bounds to [-1, 1].

        next_obs is observations[t + 1], so a truncated episode's last transition keeps its real final
        observation (bootstrapping through truncation needs it).
        """
        low, high = self.action_space.low, self.action_space.high
        obs = np.concatenate([e.observations[:-1] for e in self.episodes]).astype(np.float32)
        next_obs = np.concatenate([e.observations[1:] for e in self.episodes]).astype(np.float32)
        actions = np.concatenate([e.actions for e in self.episodes]).astype(np.float64)
        actions = np.clip(2.0 * (actions - low) / (high - low) - 1.0, -1.0, 1.0).astype(np.float32)
        return Transition(
            obs=obs,
            action=actions,
            reward=np.concatenate([e.rewards for e in self.episodes]).astype(np.float32),
            next_obs=next_obs,
            terminated=np.concatenate([e.terminations for e in self.episodes]).astype(np.float32),
            truncated=np.concatenate([e.truncations for e in self.episodes]).astype(np.float32),
        )


def normalized_score(episode_return: float | np.ndarray, ref_min: float, ref_max: float) -> Any:
    """D4RL's normalised score: 100 * (return - random) / (expert - random) (Fu et al. 2020, Sec. 5)."""
    if not ref_max > ref_min:
        raise CritixError(f"reference returns must satisfy expert ({ref_max}) > random ({ref_min})")
    return 100.0 * (np.asarray(episode_return) - ref_min) / (ref_max - ref_min)


def dataset_normalized_score(dataset: OfflineDataset, episode_return: float | np.ndarray) -> Any:
    """Normalised score against the dataset's recorded references, or None when it has none."""
    ref_min, ref_max = dataset.metadata.get("ref_min_score"), dataset.metadata.get("ref_max_score")
    if ref_min is None or ref_max is None:
        return None
    return normalized_score(episode_return, float(ref_min), float(ref_max))


# ---- spaces (minari's JSON serialisation of a Box) --------------------------------------------------------


def serialize_box(space: gym.spaces.Box) -> str:
    return json.dumps({"type": "Box", "dtype": str(space.dtype), "shape": list(space.shape),
                       "low": space.low.tolist(), "high": space.high.tolist()})


def deserialize_box(text: Any, what: str, path: Path) -> gym.spaces.Box:
    try:
        data = json.loads(text) if isinstance(text, str) else text
        kind = data["type"]
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise CritixError(f"{path}: {what} is not a serialised Gymnasium space ({err})") from None
    if kind != "Box":
        raise CritixError(
            f"{path}: {what} is a {kind} space; critix's offline agents read flat Box spaces only. "
            "Flatten the observations (gymnasium.wrappers.FlattenObservation) when collecting the data."
        )
    try:
        dtype = np.dtype(data["dtype"])
        shape = tuple(int(x) for x in data["shape"])
        low = np.asarray(data["low"], dtype).reshape(shape)
        high = np.asarray(data["high"], dtype).reshape(shape)
    except (KeyError, TypeError, ValueError) as err:
        raise CritixError(f"{path}: {what} Box is malformed ({err})") from None
    if len(shape) != 1:
        raise CritixError(f"{path}: {what} has shape {shape}; critix's offline agents need flat vectors")
    return gym.spaces.Box(low, high, shape, dtype)


# ---- writing -----------------------------------------------------------------------------------------------


def env_spec_json(env_id: str, env_kwargs: dict[str, Any] | None = None) -> str | None:
    """Gymnasium EnvSpec JSON of `env_id` for the metadata (minari rebuilds the env from it): the env kwargs merged
    into its kwargs, a `module:EnvName-v0` id's module imported and a callable entry point written "module:name";
    None for a spec that JSON cannot hold."""
    from critix.envs.gym import check_env_id, split_module

    check_env_id(env_id)
    spec = gym.spec(split_module(env_id)[1])
    entry = spec.entry_point
    if callable(entry):
        entry = f"{entry.__module__}:{entry.__qualname__}"
    try:
        return dataclasses.replace(spec, entry_point=entry, kwargs={**spec.kwargs, **(env_kwargs or {})}).to_json()
    except (TypeError, ValueError):
        return None



def write_dataset(
    root: str | Path,
    episodes: Sequence[Episode],
    observation_space: gym.spaces.Box,
    action_space: gym.spaces.Box,
    dataset_id: str,
    env_id: str | None = None,
    ref_min_score: float | None = None,
    ref_max_score: float | None = None,
    num_episodes_average_score: int | None = None,
    algorithm_name: str | None = None,
    description: str | None = None,
    critix_info: dict[str, Any] | None = None,
    overwrite: bool = False,
    env_kwargs: dict[str, Any] | None = None,
) -> Path:
    """Write `episodes` as a Minari-format dataset folder `root` (atomically: temp folder, then rename)."""
    import h5py

    root = Path(root)
    if root.exists() and not overwrite:
        raise CritixError(f"{root} already exists; choose another --out or delete it first")
    if not episodes:
        raise CritixError("a dataset needs at least one episode")
    for i, episode in enumerate(episodes):
        _check_episode(episode, i, observation_space, action_space, root)
    metadata: dict[str, Any] = {
        "dataset_id": dataset_id,
        "minari_version": MINARI_FORMAT_VERSION,
        "data_format": "hdf5",
        "jpeg_encoding": False,
        "observation_space": serialize_box(observation_space),
        "action_space": serialize_box(action_space),
        "total_episodes": len(episodes),
        "total_steps": int(sum(e.length for e in episodes)),
    }
    if env_id is not None:
        spec = env_spec_json(env_id, env_kwargs)
        if spec is not None:
            metadata["env_spec"] = spec
    optional = {"ref_min_score": ref_min_score, "ref_max_score": ref_max_score,
                "num_episodes_average_score": num_episodes_average_score, "algorithm_name": algorithm_name,
                "description": description, "critix": critix_info}
    metadata.update({k: v for k, v in optional.items() if v is not None})

    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=root.parent, prefix=f".{root.name}.", suffix=".tmp"))
    try:
        data_dir = tmp / "data"
        data_dir.mkdir()
        with h5py.File(data_dir / DATA_FILE, "w", track_order=True) as f:
            for i, episode in enumerate(episodes):
                group = f.create_group(f"episode_{i}")
                group.attrs["id"] = i
                group.attrs["total_steps"] = episode.length
                if episode.seed is not None:
                    group.attrs["seed"] = int(episode.seed)
                group.create_dataset("observations", data=episode.observations.astype(observation_space.dtype))
                group.create_dataset("actions", data=episode.actions.astype(action_space.dtype))
                group.create_dataset("rewards", data=np.asarray(episode.rewards, np.float64))
                group.create_dataset("terminations", data=np.asarray(episode.terminations, bool))
                group.create_dataset("truncations", data=np.asarray(episode.truncations, bool))
                group.create_group("infos")
        metadata["dataset_size"] = round((data_dir / DATA_FILE).stat().st_size / 1e6, 1)
        (data_dir / METADATA_FILE).write_text(json.dumps(metadata))
        for name in (DATA_FILE, METADATA_FILE):
            fd = os.open(data_dir / name, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        if root.exists():
            shutil.rmtree(root)
        os.replace(tmp, root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return root


def _check_episode(episode: Episode, index: int, obs_space: gym.spaces.Box, act_space: gym.spaces.Box,
                   source: Path) -> None:
    """Shapes and finiteness of one episode; raises CritixError naming the episode and the field."""
    where = f"{source}: episode_{index}"
    T = np.shape(episode.rewards)[0] if np.ndim(episode.rewards) == 1 else -1
    if T < 1:
        raise CritixError(f"{where}: rewards must be a non-empty vector [T], got shape {np.shape(episode.rewards)}")
    expected = {
        "observations": (T + 1, *obs_space.shape),
        "actions": (T, *act_space.shape),
        "rewards": (T,),
        "terminations": (T,),
        "truncations": (T,),
    }
    for field, shape in expected.items():
        got = np.shape(getattr(episode, field))
        if got != shape:
            raise CritixError(
                f"{where}: {field} has shape {got}, expected {shape} (observations hold T+1 entries, the last "
                "being the final observation; the other fields T). Re-create the dataset with matching arrays."
            )
    for field in ("observations", "actions", "rewards"):
        values = np.asarray(getattr(episode, field))
        if not np.issubdtype(values.dtype, np.number):
            raise CritixError(f"{where}: {field} has non-numeric dtype {values.dtype}")
        if not np.all(np.isfinite(values)):
            bad = int(np.argwhere(~np.isfinite(values).reshape(values.shape[0], -1).all(axis=1))[0, 0])
            raise CritixError(
                f"{where}: {field} has a NaN or infinite value at step {bad}; drop or repair that episode"
            )


# ---- reading -----------------------------------------------------------------------------------------------


def data_dir_of(root: str | Path) -> Path:
    """The folder holding metadata.json: ROOT/data, or ROOT itself when given the data folder."""
    root = Path(root)
    if (root / "data" / METADATA_FILE).is_file():
        return root / "data"
    if (root / METADATA_FILE).is_file():
        return root
    raise CritixError(
        f"no Minari dataset at {root}: expected {root / 'data' / METADATA_FILE} and {DATA_FILE} beside it. "
        "Make one with `critix collect --env ENV --kind medium --out PATH`, or pass a Minari dataset folder "
        "(e.g. ~/.minari/datasets/D4RL/hopper/medium-v0)."
    )


def read_metadata(root: str | Path) -> dict[str, Any]:
    path = data_dir_of(root) / METADATA_FILE
    try:
        metadata = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CritixError(f"{path} is not valid JSON ({err}); the dataset is damaged, re-create it") from None
    if not isinstance(metadata, dict):
        raise CritixError(f"{path} must hold a JSON object")
    return metadata


def read_dataset(root: str | Path) -> OfflineDataset:
    """Read and validate a Minari-format dataset folder (ROOT or ROOT/data)."""
    import h5py

    data_dir = data_dir_of(root)
    metadata = read_metadata(root)
    meta_path = data_dir / METADATA_FILE
    for key in ("data_format", "observation_space", "action_space", "total_episodes", "total_steps"):
        if key not in metadata:
            raise CritixError(f"{meta_path} lacks the key {key!r}; it is not a complete Minari dataset")
    if metadata["data_format"] != "hdf5":
        raise CritixError(
            f"{meta_path}: data_format is {metadata['data_format']!r}; critix reads the 'hdf5' format. "
            "Convert it with minari (minari.create_dataset_from_buffers(..., data_format='hdf5'))."
        )
    obs_space = deserialize_box(metadata["observation_space"], "observation_space", meta_path)
    act_space = deserialize_box(metadata["action_space"], "action_space", meta_path)
    if not (np.all(np.isfinite(act_space.low)) and np.all(np.isfinite(act_space.high))):
        raise CritixError(f"{meta_path}: action_space needs finite bounds to rescale actions to [-1, 1]")
    try:
        num_episodes, total_steps = int(metadata["total_episodes"]), int(metadata["total_steps"])
    except (TypeError, ValueError):
        raise CritixError(f"{meta_path}: total_episodes and total_steps must be integers") from None

    h5_path = data_dir / DATA_FILE
    if not h5_path.is_file():
        raise CritixError(f"{h5_path} is missing; the dataset is incomplete")
    episodes = []
    try:
        with h5py.File(h5_path, "r") as f:
            for i in range(num_episodes):
                name = f"episode_{i}"
                if name not in f or not isinstance(f[name], h5py.Group):
                    raise CritixError(
                        f"{h5_path}: {name} is missing but metadata.json says total_episodes={num_episodes}"
                    )
                group = f[name]
                arrays = {}
                for field in EPISODE_FIELDS:
                    if field not in group or not isinstance(group[field], h5py.Dataset):
                        raise CritixError(
                            f"{h5_path}: {name} lacks the dataset {field!r} (Minari episodes hold "
                            f"{', '.join(EPISODE_FIELDS)})"
                        )
                    arrays[field] = group[field][()]
                seed = group.attrs.get("seed")
                episode = Episode(seed=None if seed is None else int(seed), **arrays)
                _check_episode(episode, i, obs_space, act_space, h5_path)
                episodes.append(episode)
    except OSError as err:  # truncated or not an HDF5 file
        raise CritixError(f"{h5_path} cannot be read as HDF5 ({err}); the file is truncated or damaged") from None
    steps = sum(e.length for e in episodes)
    if steps != total_steps:
        raise CritixError(f"{meta_path}: total_steps is {total_steps} but the episodes hold {steps} steps")
    if not episodes:
        raise CritixError(f"{root}: the dataset has no episodes")
    return OfflineDataset(episodes, obs_space, act_space, metadata)


@dataclasses.dataclass
class OfflineData:
    """The dataset as the run uses it: transitions on the device, normalisation statistics, references."""

    dataset: OfflineDataset
    transitions: Transition  # device arrays [N, ...]
    obs_mean: np.ndarray
    obs_std: np.ndarray
    reward_scale: float


def load_training_data(path: str | Path, normalize_obs: bool, normalize_reward: bool) -> OfflineData:
    """A dataset as an offline run trains on it: transitions on the device, with observation statistics
    (`normalize_obs`: TD3+BC's standardisation) and rewards scaled by 1000 / return spread (`normalize_reward`)."""
    dataset = read_dataset(path)
    data = dataset.transitions()
    reward_scale = 1.0
    if normalize_reward:
        returns = dataset.returns()
        spread = float(returns.max() - returns.min())
        if spread <= 0:
            raise CritixError("--normalize-reward needs episodes with different returns in the dataset")
        reward_scale = 1000.0 / spread
        data = data.replace(reward=data.reward * np.float32(reward_scale))
    if normalize_obs:
        mean, std = data.obs.mean(axis=0), data.obs.std(axis=0) + 1e-3  # TD3+BC reference code: std + 1e-3
    else:
        mean, std = np.zeros(data.obs.shape[1], np.float32), np.ones(data.obs.shape[1], np.float32)
    return OfflineData(dataset, jax.device_put(data), mean.astype(np.float32), std.astype(np.float32), reward_scale)
