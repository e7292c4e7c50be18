"""Trained agents as policies: `critix.load(RUN_DIR)` returns a `Policy` that acts on NumPy observations.

    policy = critix.load("runs/sac-Pendulum-v1-20261121-120000")        # newest valid checkpoint, seed 0
    action = policy.act(obs)                                            # one observation -> one env action
    actions = policy.act(batch, deterministic=False, key=7)             # [B, ...] -> [B, ...], sampled

Loading reads a run folder as `critix eval` and `--resume` do (config.json through `load_run_config`, checkpoints
through `critix.train.checkpoint`, the agent's own `init` for the structure the arrays go into), for every mode:
host (off- and on-policy), compiled and offline runs. It builds no environment, dataset or stepper: what acting
needs is in the run folder.
- The spaces come from the checkpoint's meta.json ("spaces"; checkpoints written before critix recorded them make
  the run's env once, or read the dataset's spaces, offline).
- The agent's parameters are one seed's slice of the checkpoint's agent arrays (`seed_index`; a compiled grid point
  picks its own members of the grid run's checkpoint).
- Observation normalisation is the run's: host runs keep running mean/var per seed in the checkpoint
  ("obs_rms"), compiled runs in the carry, and offline runs standardise with the dataset's mean and std (in
  meta.json; older checkpoints read the dataset again).
Nothing in the folder is executed: config.json and meta.json are JSON, the arrays are safetensors.

Actions are in the env's own space: Box actions rescaled from the agent's [-1, 1] to the bounds (clipped, as the
training loops step the env), Discrete indices offset by the space's `start`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np
from numpy.typing import ArrayLike

from critix import agents
from critix.envs.gym import normalize_obs
from critix.train import checkpoint
from critix.train.config import RunConfig, load_run_config, plan_of, read_config_json, resolve
from critix.types import CritixError

Mode = Literal["host", "compiled", "offline"]
AGENT_ARRAYS: dict[str, str] = {"host": "['agent']", "offline": "['agent']", "compiled": "['carry'].agent"}
"""Where each mode's stepper keeps the agent states [members, ...] in its checkpoint (their `state()`)."""
OBS_STATISTICS: dict[str, tuple[str, str]] = {"host": ("['obs_rms']['mean']", "['obs_rms']['var']"),
                                              "compiled": ("['carry'].obs_rms.mean", "['carry'].obs_rms.var")}
"""Where the running observation mean and variance [members, ...] are, for the modes that keep them."""


@dataclasses.dataclass(frozen=True)
class ObsNormalization:
    """How the run's agent saw its observations. kind "none": raw; "running": (obs - mean) / sqrt(var + 1e-8)
    clipped to [-10, 10], with the statistics the agent last acted with (`--normalize-obs` in an env);
    "dataset": (obs - mean) / std with the dataset's statistics (`--normalize-obs` offline)."""

    kind: Literal["none", "running", "dataset"]
    mean: np.ndarray | None = None
    scale: np.ndarray | None = None
    """The variance ("running") or the standard deviation ("dataset")."""

    def apply(self, obs: jax.Array) -> jax.Array:
        """Observations [B, ...] as the agent sees them (pure JAX)."""
        if self.kind == "running":
            return normalize_obs(obs, self.mean, self.scale)  # the host and compiled steppers' `prepare`
        if self.kind == "dataset":
            return (obs - self.mean) / self.scale  # the offline stepper's batches and evaluation
        return obs


class Policy:
    """One seed of a trained agent, acting on NumPy observations (`critix.load` makes it).

    `act(obs)` takes one observation (the observation space's shape) or a batch [B, ...] and returns env actions:
    Box actions [A] / [B, A] float32 within the bounds, Discrete indices as int64 (a 0-d array / [B]).
    """

    def __init__(self, *, algo: str, config: Any, run: Any, state: Any, observation_space: gym.Space,
                 action_space: gym.Space, normalization: ObsNormalization, mode: Mode, env_id: str, run_dir: Path,
                 checkpoint_dir: Path, step: int, seed_index: int, num_seeds: int, sample_seed: int = 0) -> None:
        self.algo, self.config, self.run, self.state = algo, config, run, state
        self.observation_space, self.action_space = observation_space, action_space
        self.normalization, self.mode, self.env_id = normalization, mode, env_id
        self.run_dir, self.checkpoint_dir, self.step = run_dir, checkpoint_dir, step
        self.seed_index, self.num_seeds = seed_index, num_seeds
        self.module = agents.get(algo).module
        self.obs_shape: tuple[int, ...] = tuple(observation_space.shape or ())
        # What the steppers cast observations to before acting: uint8 images stay uint8 (the pixel encoders scale
        # them), the rest is float32.
        self.obs_dtype = np.dtype(np.uint8 if np.dtype(observation_space.dtype) in (np.uint8, np.bool_) else np.float32)
        self.discrete = isinstance(action_space, gym.spaces.Discrete)
        self._key = jax.random.PRNGKey(sample_seed)
        self._unused_key = jax.random.PRNGKey(0)  # deterministic actions take no randomness; `act` wants a key
        self._act = jax.jit(self._action, static_argnums=3)

    # ---- acting ----------------------------------------------------------------------------------------------
    def act(self, obs: ArrayLike, deterministic: bool = True, key: jax.Array | int | None = None) -> np.ndarray:
        """Env actions for one observation or a batch [B, ...].

        deterministic: the evaluation action (SAC/TQC/CQL tanh(mean), TD3 pi(s), PPO/IQL/BC the Gaussian mean,
        argmax of Q or of the logits for discrete agents); False draws the agent's exploring action (a policy sample;
        DQN: epsilon-greedy at the run's last epsilon; TD3: Gaussian noise) with `key` (a JAX key or an int seed),
        or, without one, from this policy's own key stream (seeded by `critix.load(..., sample_seed=)`).
        """
        array = np.asarray(obs)
        single = array.shape == self.obs_shape
        if not single and array.shape[1:] != self.obs_shape:
            raise CritixError(f"{self.algo} policy: observation of shape {array.shape}; it takes one observation of "
                              f"shape {self.obs_shape} or a batch [B, {', '.join(map(str, self.obs_shape))}]")
        if not np.issubdtype(array.dtype, np.number) and array.dtype != np.bool_:
            raise CritixError(f"{self.algo} policy: observations must be numbers, got dtype {array.dtype}")
        batch = (array[None] if single else array).astype(self.obs_dtype)
        if deterministic:
            key = self._unused_key
        elif key is None:
            self._key, key = jax.random.split(self._key)
        elif isinstance(key, (int, np.integer)):
            key = jax.random.PRNGKey(int(key))
        action = np.asarray(self._act(self.state, batch, key, deterministic))
        if self.discrete:
            action = action.astype(np.int64)
        return np.asarray(action[0]) if single else action

    __call__ = act

    def action_function(self) -> Callable[[jax.Array], jax.Array]:
        """The deterministic policy as one pure JAX function with the parameters and statistics inside:
        observations [B, ...] (float32, or uint8 images) -> env actions [B, A] float32 (Box, within the bounds)
        or [B] int32 (Discrete). `critix.export` converts it to ONNX."""
        state, key = self.state, self._unused_key
        return lambda obs: self._action(state, obs, key, True)

    def _action(self, state: Any, obs: jax.Array, key: jax.Array, deterministic: bool) -> jax.Array:
        action = self.module.act(self.config, state, self.normalization.apply(obs), key, deterministic)
        return env_action(action, self.action_space)

    # ---- description -----------------------------------------------------------------------------------------
    def describe(self) -> str:
        """One line: what the policy is and where it came from."""
        seeds = f"seed {self.seed_index} of {self.num_seeds}" if self.num_seeds > 1 else "its only seed"
        return (f"{self.algo} policy for {self.env_id} from {self.run_dir} (step {self.step}, {seeds}; "
                f"observations {space_text(self.observation_space)}, normalisation {self.normalization.kind}; "
                f"actions {space_text(self.action_space)})")

    def __repr__(self) -> str:
        return f"<{self.describe()}>"

    def export_onnx(self, out: str | Path, observations: ArrayLike | None = None) -> Any:
        """Write the deterministic policy as an ONNX model, checked against ONNX Runtime (`critix.export.export_onnx`;
        needs `pip install 'critix[export]'`). Returns its `ExportResult`."""
        from critix.export import export_onnx

        return export_onnx(self, out, observations)


def env_action(action: jax.Array, space: gym.Space) -> jax.Array:
    """Agent actions -> the env's: Discrete indices offset by the space's start; Box actions from [-1, 1] to
    [low, high], clipped first (`critix.envs.gym.scale_action`, in JAX)."""
    if isinstance(space, gym.spaces.Discrete):
        return action + int(space.start) if int(space.start) else action
    low, high = jnp.asarray(space.low), jnp.asarray(space.high)
    return low + 0.5 * (jnp.clip(action, -1.0, 1.0) + 1.0) * (high - low)


def space_text(space: gym.Space) -> str:
    if isinstance(space, gym.spaces.Discrete):
        return f"Discrete({space.n})" + (f" starting at {space.start}" if int(space.start) else "")
    if isinstance(space, gym.spaces.Box):
        low, high = np.asarray(space.low), np.asarray(space.high)
        bounds = f" in [{low.min():g}, {high.max():g}]" if np.isfinite(low).all() and np.isfinite(high).all() else ""
        return f"Box{tuple(space.shape)} {space.dtype}{bounds}"
    return str(space)


# ---- loading ---------------------------------------------------------------------------------------------------


def load(run_dir: str | Path, step: int | None = None, seed_index: int = 0, sample_seed: int = 0) -> Policy:
    """The trained policy of a run folder (written by `critix train`, any algorithm and mode).

    step: the checkpoint to load (its env or gradient step); None takes the newest valid one (a corrupt checkpoint
    is skipped with a warning). seed_index: which of the run's seeds (0 .. num_seeds - 1). sample_seed: seed of the
    key stream that sampled actions (`act(..., deterministic=False)`) draw from when given no key.
    A compiled grid run's folder holds every grid point: give one point's folder (RUN_DIR/grid/<point>).
    Raises CritixError naming the problem and the fix (not a run folder, no checkpoint, unknown step ...).
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise CritixError(f"{run_dir} is not a folder; give a run folder written by `critix train` "
                          "(runs/<algo>-<env>-<time>)")
    data = read_config_json(run_dir)
    algo, agent_cfg, run = load_run_config(run_dir)
    run = resolve(algo, run)
    source, first_member = run_dir, 0
    if "grid_point" in data:  # a grid point's folder: its members are in the grid run's checkpoints, two levels up
        source = run_dir.parent.parent
        first_member = _grid_point_index(source, algo, data["grid_point"]) * run.num_seeds
    elif isinstance(run, RunConfig) and run.grid:
        points = sorted(p.name for p in (run_dir / "grid").iterdir()) if (run_dir / "grid").is_dir() else []
        example = run_dir / "grid" / (points[0] if points else "<point>")
        raise CritixError(f"{run_dir} is a compiled grid run of {len(points) or 'several'} grid points; load one "
                          f"point's folder, e.g. critix.load('{example}')"
                          + (f" (points: {', '.join(points)})" if points else ""))
    if not 0 <= seed_index < run.num_seeds:
        raise CritixError(f"seed_index {seed_index} is out of range: {run_dir} trained {run.num_seeds} seed(s), "
                          f"numbered 0 to {run.num_seeds - 1}")
    ckpt, meta = find_checkpoint(source / "checkpoints", step, run_dir)
    mode = run_mode(algo, run)
    module = agents.get(algo).module
    obs_space, act_space = _spaces(meta, mode, run, ckpt)
    arrays, _ = checkpoint.load_arrays(ckpt)
    member = first_member + seed_index
    plan = plan_of(run) if isinstance(run, RunConfig) else None  # offline agents are made without a run plan
    template = jax.eval_shape(lambda: module.init(agent_cfg, jax.random.PRNGKey(0), obs_space, act_space, plan))
    state = checkpoint.unflatten(template, _member_arrays(arrays, AGENT_ARRAYS[mode], member, ckpt), str(ckpt))
    return Policy(algo=algo, config=agent_cfg, run=run, state=jax.device_put(state), observation_space=obs_space,
                  action_space=act_space, normalization=_normalization(mode, run, arrays, meta, member, ckpt),
                  mode=mode, env_id=str(meta.get("env") or run.env or f"the env of {run.dataset}"), run_dir=run_dir,
                  checkpoint_dir=ckpt, step=checkpoint.step_of(ckpt), seed_index=seed_index,
                  num_seeds=run.num_seeds, sample_seed=sample_seed)


def find_checkpoint(directory: Path, step: int | None, run_dir: Path) -> tuple[Path, dict[str, Any]]:
    """The checkpoint of `step` (verified), or the newest valid one; CritixError listing what there is."""
    found = checkpoint.list_checkpoints(directory)
    if not found:
        raise CritixError(f"{run_dir} has no complete checkpoint in {directory}: a run writes one at each "
                          "evaluation and at its end; let it train (or resume it) until one is written")
    if step is None:
        latest = checkpoint.latest_valid(directory, quarantine=False)  # warns about the corrupt ones it skips
        assert latest is not None  # raises itself when none is valid
        return latest
    steps = [checkpoint.step_of(c) for c in found]
    if step not in steps:
        raise CritixError(f"{run_dir} has no checkpoint at step {step}; it has steps {', '.join(map(str, steps))} "
                          "(step=None loads the newest)")
    ckpt = found[steps.index(step)]
    return ckpt, checkpoint.verify(ckpt)


def run_mode(algo: str, run: Any) -> Mode:
    """The stepper family whose checkpoint layout the run folder has (`critix.train.modes.mode`)."""
    from critix.train.modes import mode

    chosen = mode(algo, run)
    return "host" if chosen in ("offpolicy", "onpolicy") else chosen  # type: ignore[return-value]


def _grid_point_index(grid_run: Path, algo: str, point: Any) -> int:
    """Which grid point of the compiled grid run in `grid_run` a point folder's config.json names."""
    from critix.train.grid import parse_grid

    _, cfg, run = load_run_config(grid_run)
    points = list(parse_grid(run.grid, algo, cfg).points)
    if point not in points:
        raise CritixError(f"grid point {point} is not one of the grid run's in {grid_run} ({points}); the folders "
                          "were moved or edited: load the grid point folder inside its grid run")
    return points.index(point)


def _member_arrays(arrays: dict[str, np.ndarray], prefix: str, member: int, ckpt: Path) -> dict[str, np.ndarray]:
    """The arrays under `prefix` (path strings as `checkpoint.flatten` writes them), without the prefix, at
    member `member` of their leading axis."""
    selected = {name[len(prefix):]: array for name, array in arrays.items() if name.startswith(prefix)}
    if not selected:
        raise CritixError(f"checkpoint {ckpt} holds no agent arrays under {prefix}; it was written by another mode "
                          "or another critix: load it with the critix that wrote it")
    members = next(iter(selected.values())).shape[0]
    if not all(a.ndim >= 1 and a.shape[0] == members for a in selected.values()) or member >= members:
        raise CritixError(f"checkpoint {ckpt} holds {members} member(s) of the agent; member {member} was asked for "
                          "(config.json and the checkpoint disagree: was the folder edited?)")
    return {name: array[member] for name, array in selected.items()}


def _spaces(meta: dict[str, Any], mode: Mode, run: Any, ckpt: Path) -> tuple[gym.Space, gym.Space]:
    """The agent's spaces: recorded in meta.json, or (older checkpoints) from the run's dataset or env, made once."""
    if "spaces" in meta:
        return checkpoint.spaces_from(meta["spaces"], str(ckpt))
    if mode == "offline":
        from critix.data.datasets import read_dataset

        dataset = read_dataset(run.dataset)
        return dataset.observation_space, dataset.action_space
    if mode == "compiled":
        from critix.envs.jax_envs import make_jax_env

        jax_env = make_jax_env(run.env)
        return jax_env.observation_space, jax_env.action_space
    from critix.envs.gym import make_vector_env

    env = make_vector_env(run.env, 1, 0)  # the stepper's own construction, so wrappers give the same spaces
    try:
        return env.single_observation_space, env.single_action_space
    finally:
        env.close()


def _normalization(mode: Mode, run: Any, arrays: dict[str, np.ndarray], meta: dict[str, Any], member: int,
                   ckpt: Path) -> ObsNormalization:
    if not run.normalize_obs:
        return ObsNormalization("none")
    if mode == "offline":
        if "obs_mean" in meta:
            mean, std = meta["obs_mean"], meta["obs_std"]
        else:  # checkpoints before critix recorded the statistics: the dataset's again, as the run computed them
            from critix.data.datasets import load_training_data

            data = load_training_data(run.dataset, True, False)
            mean, std = data.obs_mean, data.obs_std
        return ObsNormalization("dataset", np.asarray(mean, np.float32), np.asarray(std, np.float32))
    mean_name, var_name = OBS_STATISTICS[mode]
    if mean_name not in arrays or var_name not in arrays:
        raise CritixError(f"checkpoint {ckpt} lacks the observation statistics {mean_name}; it was not written by "
                          "a run with --normalize-obs of this critix")
    # float32, as the host steppers' `stats()` hand them to the agent
    return ObsNormalization("running", arrays[mean_name][member].astype(np.float32),
                            arrays[var_name][member].astype(np.float32))
