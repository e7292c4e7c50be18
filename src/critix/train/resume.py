"""The host-side state of the training loop that a checkpoint must carry for an exact resume.

Besides the device pytrees (agent, replay buffer, keys: state.safetensors) and the counters, a resumed run needs
what the loop holds on the host between steps: the current observation of every env, the running episode returns,
the finished-episode returns not yet logged, the last chunk's training metrics, and the envs themselves
(`critix.envs.snapshot`). All of it is JSON in meta.json under "loop". Floats round-trip exactly through JSON.

If the envs cannot be snapshotted, the loop state records why ("env_unsupported"); a resume then starts fresh
episodes (with a warning) and is not bit-exact, but loses nothing else.
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import Any

import gymnasium as gym
import numpy as np

from critix.envs.snapshot import SnapshotUnsupported, restore_vector_env, snapshot_vector_env
from critix.types import CritixError


@dataclasses.dataclass
class LoopState:
    """obs [S*N, O] float32, episode_return [S*N] float64, recent_returns per seed, train_metrics name -> [S];
    discounted_return [S*N] float64: the on-policy loop's running discounted return for reward scaling."""

    obs: np.ndarray
    episode_return: np.ndarray
    recent_returns: list[list[float]]
    train_metrics: dict[str, np.ndarray]
    discounted_return: np.ndarray | None = None

    def to_json(self, env: gym.vector.VectorEnv) -> dict[str, Any]:
        out: dict[str, Any] = {
            "obs": self.obs.tolist(),
            "obs_dtype": str(self.obs.dtype),
            "episode_return": self.episode_return.tolist(),
            "recent_returns": [list(map(float, r)) for r in self.recent_returns],
            "train_metrics": {k: np.asarray(v).tolist() for k, v in self.train_metrics.items()},
            "train_metrics_dtype": {k: str(np.asarray(v).dtype) for k, v in self.train_metrics.items()},
        }
        if self.discounted_return is not None:
            out["discounted_return"] = self.discounted_return.tolist()
        try:
            out["env"] = snapshot_vector_env(env)
        except SnapshotUnsupported as err:
            out["env"], out["env_unsupported"] = None, str(err)
        return out


def restore_loop(loop: Any, env: gym.vector.VectorEnv, num_seeds: int, obs_shape: tuple[int, ...]) -> LoopState | None:
    """Rebuild the loop state from meta["loop"] and put the envs back; None (with a warning) if that is impossible.

    `env` must have been reset already. A malformed loop record raises CritixError.
    """
    if loop is None:
        _warn("this checkpoint has no loop state (written by an older critix)")
        return None
    try:
        obs = np.asarray(loop["obs"], dtype=loop["obs_dtype"])
        episode_return = np.asarray(loop["episode_return"], np.float64)
        recent = [[float(x) for x in r] for r in loop["recent_returns"]]
        metrics = {k: np.asarray(v, dtype=loop["train_metrics_dtype"][k]) for k, v in loop["train_metrics"].items()}
        snap = loop["env"]
        discounted = loop.get("discounted_return")
        discounted = None if discounted is None else np.asarray(discounted, np.float64)
    except (KeyError, TypeError, ValueError) as err:
        raise CritixError(f"checkpoint loop state is malformed ({err!r}); resume from an earlier checkpoint") from None
    shapes_ok = episode_return.shape == (env.num_envs,) and (discounted is None or discounted.shape == (env.num_envs,))
    if obs.shape != (env.num_envs, *obs_shape) or not shapes_ok or len(recent) != num_seeds:
        raise CritixError(
            f"checkpoint loop state holds {obs.shape[0] if obs.ndim else 0} envs of obs shape {obs.shape[1:]}, this run "
            f"has {env.num_envs} of {obs_shape}; resume with the saved --num-seeds/--num-envs"
        )
    if snap is None:
        _warn(f"the environments could not be saved ({loop.get('env_unsupported', 'unknown reason')})")
        return None
    restore_vector_env(env, snap)
    return LoopState(obs, episode_return, recent, metrics, discounted)


def _warn(reason: str) -> None:
    warnings.warn(f"{reason}; the resumed run starts fresh episodes, so it will not reproduce an uninterrupted "
                  "run exactly (nothing else is lost)", stacklevel=3)
