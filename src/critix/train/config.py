"""How a run is executed, and the config.json of its run folder.

`RunSettings` holds what every training mode shares (length, seeds, the chunk/log/eval/checkpoint schedule, the
NaN policy, outputs); `RunConfig` (runs in an environment: off-policy and on-policy host loops, compiled runs)
and `OfflineRunConfig` (runs on a dataset) add their own fields and defaults. The agent's hyperparameters live in
the agent's Config. A run's x-axis is "steps": env steps per seed (summed over that seed's envs) for runs in an
environment, gradient steps for offline runs.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
from pathlib import Path
from typing import Any, Literal

from critix import __version__, agents, validation
from critix.agents import contract
from critix.envs.gym import env_kwargs_items, parse_env_kwargs
from critix.types import CritixError

MAX_ENVS = 10_000
MAX_UTD_RATIO = 1_000.0
MAX_VIDEO_EPISODES = 100
LOOP_SETTINGS = ("learning_starts", "utd_ratio", "buffer_size", "rollout_length")
"""Run settings whose default depends on the algorithm (its RUN_DEFAULTS); agent configs before critix 0.2
held them, and config.json files of that time still load."""
OFFLINE = "offline"


def train_env_seed(seed: int) -> int:
    """Seed of a run's training envs; env i of the run (seed-major over S x N) gets this + i."""
    return seed * 1000


def eval_env_seed(seed: int) -> int:
    """Seed the evaluation envs are made with (each evaluation then resets them with `eval_seed`)."""
    return seed * 1000 + 500_000


def eval_seed(seed: int, step: int) -> int:
    """Reset seed of the evaluation at `step` of a run with base seed `seed`: every evaluation its own episodes."""
    return seed * 1000 + 900_000 + step


@dataclasses.dataclass(frozen=True)
class RunSettings:
    """What every training mode shares: length, seeds, the chunk/log/eval/checkpoint schedule, NaN policy, outputs."""

    steps: int = 20_000
    """Length of the run in steps: env steps per seed (summed over its envs), or gradient steps offline."""
    num_seeds: int = 1
    """Independent seeds trained together in this process (states and buffers get a leading seed axis)."""
    seed: int = 0
    """Base seed: agent keys are split from PRNGKey(seed); training envs get seeds from seed*1000 on."""
    chunk_size: int = 0
    """Steps per chunk, the work done between two returns to the host: logging, evaluation and checkpoints happen
    only between chunks, and the off-policy host loop applies a chunk's updates after its env steps (SB3's
    train_freq). Host loops round up to whole vector steps or rollouts. 0 picks the mode's default: 50 x num_envs
    (off-policy host), one rollout (on-policy host), log_every (compiled), 5,000 (offline)."""
    eval_every: int = 5_000
    """Evaluate every this many steps (and at the end); 0 evaluates only at the end."""
    eval_episodes: int = 10
    """Deterministic evaluation episodes per seed, on separate eval envs."""
    checkpoint_every: int = 0
    """Checkpoint every this many steps (offline: a multiple of chunk_size); 0 means at each evaluation (and always
    at the end)."""
    keep_checkpoints: int = 2
    """How many recent checkpoints to keep."""
    log_every: int = 1_000
    """Write training metrics (losses, episode returns) every this many steps; 0: after every chunk."""
    normalize_obs: bool = False
    """Normalise observations: online with a running mean/std per seed (stored raw in the buffer, normalised when
    used); offline with the dataset's mean and std (TD3+BC, Fujimoto & Gu 2021, Sec. 5)."""
    normalize_reward: bool = False
    """Online, on-policy agents: divide rewards by a running std of the discounted return, clipped to [-10, 10]
    (SB3 VecNormalize; episode returns are still logged unscaled). Offline: scale rewards by 1000 / (max - min
    episode return) of the dataset (IQL on MuJoCo, Kostrikov et al. 2022)."""
    run_dir: str | None = None
    """Run folder; default runs/<algo>-<env>-<time> (offline: runs/<algo>-offline-<dataset name>-<time>)."""
    progress: bool = True
    """Show a progress bar."""
    tensorboard: bool = True
    """Write TensorBoard event files."""
    on_nan: Literal["stop", "skip"] = "stop"
    """NaN/Inf in observations, rewards, losses or parameters: 'stop' exits with an error and keeps the last good
    checkpoint; 'skip' drops the bad transitions / updates and counts them (guard/* metrics)."""
    # Watching and tracking (critix.train.video, critix.train.tracking; docs/watching_and_tracking.md).
    video_every: int = 0
    """Record videos of deterministic evaluation episodes of seed 0's agent into RUN_DIR/videos/ (MP4; GIF where
    ffmpeg cannot run) at the first chunk end at or after every multiple of this many steps, and at the end; 0:
    none. A multiple of --eval-every films an evaluation's own first episode."""
    video_episodes: int = 1
    """Episodes per video recording, one file each."""
    track: Literal["off", "wandb"] = "off"
    """Experiment tracker that also receives the metrics, config, learning curve and videos: 'wandb' (Weights &
    Biases, pip install 'critix[wandb]'; offline into RUN_DIR/wandb unless an API key is configured)."""
    wandb_project: str = "critix"
    """W&B project of --track wandb."""
    wandb_entity: str | None = None
    """W&B entity (user or team) of --track wandb; None: the account's default."""

    def __post_init__(self) -> None:
        validation.check_types(self)
        if self.video_every < 0 or not 1 <= self.video_episodes <= MAX_VIDEO_EPISODES:
            raise ValueError(f"video_every must be >= 0 and video_episodes in [1, {MAX_VIDEO_EPISODES}], got "
                             f"{self.video_every} and {self.video_episodes}")
        for name in ("steps", "num_seeds", "eval_episodes"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("chunk_size", "log_every", "eval_every", "checkpoint_every", "keep_checkpoints", "seed"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.seed >= 2**31:
            raise ValueError(f"seed must be in [0, 2**31), got {self.seed}")


@dataclasses.dataclass(frozen=True)
class RunConfig(RunSettings):
    """A run in an environment (the agent's hyperparameters live in the agent's Config)."""

    env: str = "Pendulum-v1"
    """Gymnasium environment id (classic control and MuJoCo work out of the box); module:EnvName-v0 imports the
    module (your own env) first; gymnax:<id> or jax:<name> runs fully compiled."""
    env_kwargs: tuple[str, ...] = ()
    """Keyword arguments for gymnasium.make, KEY=VALUE each (VALUE read as JSON where it parses: 3, 0.5, true,
    [1, 2]; else a string), e.g. --env-kwargs gravity=9.81 mode=hard; the training and evaluation envs, resume and
    eval get them. In Python a dict works too."""
    num_envs: int = 1
    """Environments per seed."""
    vectorization: str = "auto"
    """Gymnasium vectorisation of the training envs: 'sync' (one process: fast envs), 'async' (one process per env:
    slow envs; such runs resume without env snapshots) or 'auto': async only for 2+ envs whose measured step takes
    1 ms or more (`critix.envs.gym.choose_vectorization`), else sync."""
    grid: tuple[str, ...] = ()
    """Compiled runs (gymnax: env ids) only: FIELD=V1,V2,... trains every value of the float agent field FIELD
    in the same jit(vmap) as the seeds (several flags: every combination); each grid point gets a run folder
    under RUN_DIR/grid/. Gymnasium envs: train a grid with `critix sweep`."""
    learning_starts: int | None = None
    """Off-policy agents: env steps per seed with uniform random actions before updates start. None: the
    algorithm's default (`critix list ALGO` shows it and its source)."""
    utd_ratio: float | None = None
    """Off-policy agents: gradient steps per env step per seed (update-to-data ratio). None: the algorithm's
    default."""
    buffer_size: int | None = None
    """Off-policy agents: replay capacity per seed (the buffer holds at most --steps). None: the algorithm's
    default."""
    rollout_length: int | None = None
    """On-policy agents: env steps per env in each rollout (PPO's horizon T). None: the algorithm's default."""
    acting: Literal["auto", "numpy", "jit"] = "auto"
    """Host loops: how actions are computed. 'numpy': the policy's forward pass in NumPy on the host, parameters
    copied after each chunk's updates (a few us per step for small MLPs); 'jit': one compiled call per step (large
    networks, pixel encoders); 'auto': numpy for MLP policies up to about 1M multiply-adds per step (all seeds and
    envs), else jit. Both compute the same actions from the same random numbers (docs/architecture.md)."""
    overlap_updates: bool = False
    """Off-policy host loops: run a chunk's gradient steps while the next chunk steps the envs (XLA on one core,
    the envs and NumPy acting on another), so that the next chunk acts with the parameters from before those updates:
    the acting network is one chunk staler than without the flag (docs/host.md). Faster where updates and env steps
    take comparable time and acting is NumPy (small MLPs); the same key still gives the same run, and resume is
    exact."""

    def __post_init__(self) -> None:
        # env_kwargs: a dict (Python) becomes KEY=JSON strings, so config.json records it; every item must parse
        if isinstance(self.env_kwargs, dict):
            object.__setattr__(self, "env_kwargs", env_kwargs_items(self.env_kwargs))
        elif isinstance(self.env_kwargs, list):
            object.__setattr__(self, "env_kwargs", tuple(self.env_kwargs))
        super().__post_init__()
        parse_env_kwargs(self.env_kwargs)
        if self.num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {self.num_envs}")
        checks = [("learning_starts", lambda v: v >= 0, ">= 0"),
                  ("utd_ratio", lambda v: 0 < v <= MAX_UTD_RATIO, f"in (0, {MAX_UTD_RATIO:g}]"),
                  ("buffer_size", lambda v: v >= 1, ">= 1"), ("rollout_length", lambda v: v >= 1, ">= 1")]
        for name, ok, valid in checks:
            value = getattr(self, name)
            if value is not None and not ok(value):
                raise ValueError(f"{name} must be {valid}, got {value!r}")
        if self.steps < self.num_envs:
            raise ValueError(f"steps ({self.steps}) must be >= num_envs ({self.num_envs})")
        for name, count in (("num_seeds * num_envs", self.num_seeds * self.num_envs),
                            ("num_seeds * eval_episodes", self.num_seeds * self.eval_episodes)):
            if count > MAX_ENVS:
                raise ValueError(f"{name} must be <= {MAX_ENVS} (envs in one process), got {count}")


@dataclasses.dataclass(frozen=True)
class OfflineRunConfig(RunSettings):
    """A run on a dataset (the agent's hyperparameters live in the agent's Config); steps are gradient steps."""

    dataset: str = ""
    """Minari-format dataset folder (written by `critix collect` or by minari)."""
    steps: int = 300_000
    """Gradient steps per seed."""
    env: str | None = None
    """Gymnasium id of the evaluation env; default: the env recorded in the dataset's metadata."""
    chunk_size: int = 5_000
    """Gradient steps per compiled call; logging, evaluation and checkpoints happen between calls."""
    eval_every: int = 25_000
    """Evaluate every this many gradient steps (a multiple of chunk_size) and at the end; 0: only at the end."""
    log_every: int = 0
    """Write training metrics every this many gradient steps; 0: after every chunk."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1 for offline runs, got {self.chunk_size}")
        for name in ("eval_every", "checkpoint_every"):
            if getattr(self, name) % self.chunk_size:
                raise ValueError(f"{name} ({getattr(self, name)}) must be a multiple of chunk_size ({self.chunk_size})")


def resolve(algo: str, run: RunSettings) -> RunSettings:
    """`run` with every loop setting left at None set to the algorithm's default (`AgentSpec.run_defaults`); raises
    CritixError for a setting the algorithm cannot take."""
    if not isinstance(run, RunConfig):
        return run
    if run.normalize_reward and contract.kind(agents.get(algo).module) != "on-policy":
        raise CritixError(f"--normalize-reward scales on-policy returns (PPO, A2C); {algo} is off-policy: drop the flag")
    defaults = {name: value for name, (value, _) in agents.get(algo).run_defaults.items()}
    missing = {name: defaults[name] for name in LOOP_SETTINGS if getattr(run, name) is None and name in defaults}
    return dataclasses.replace(run, **missing) if missing else run


def plan_of(run: RunConfig) -> contract.RunPlan:
    """The facts of a resolved run its agent may need at `init` (`critix.agents.contract.RunPlan`)."""
    known = {name: getattr(run, name) for name in LOOP_SETTINGS if getattr(run, name) is not None}
    return contract.RunPlan(steps=run.steps, num_envs=run.num_envs, **known)


# ---- config.json --------------------------------------------------------------------------------------------


def config_to_json(algo: str, agent_cfg: Any, run: RunSettings) -> dict[str, Any]:
    """The run folder's config.json: algorithm, agent and run configs (offline runs also say their mode)."""
    mode = {"mode": OFFLINE} if isinstance(run, OfflineRunConfig) else {}
    return {**mode, "algo": algo, "agent": dataclasses.asdict(agent_cfg), "run": dataclasses.asdict(run),
            "critix_version": __version__}


def config_from_dict(cls: type, values: dict[str, Any]) -> Any:
    """Rebuild a frozen config dataclass from JSON, restoring tuples and rejecting unknown fields."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    if not isinstance(values, dict):
        raise CritixError(f"config for {cls.__module__}.{cls.__name__} must be a JSON object, got {type(values).__name__}")
    nested = {name: type(f.default) for name, f in fields.items() if dataclasses.is_dataclass(f.default)}
    values = dict(values)
    for name, sub in nested.items():  # a nested config (value_head): a JSON object, or flat keys of critix 0.1
        inner = values.get(name, {})
        if not isinstance(inner, dict):
            raise CritixError(f"config field {name} must be a JSON object, got {type(inner).__name__}")
        flat = {k: values.pop(k) for k in [f.name for f in dataclasses.fields(sub)] if k in values}
        values[name] = config_from_dict(sub, {**flat, **inner})
    unknown = set(values) - set(fields)
    if unknown:
        raise CritixError(f"config has unknown fields {sorted(unknown)} for {cls.__module__}.{cls.__name__}")
    fixed = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
    try:
        return cls(**fixed)
    except (TypeError, ValueError) as err:
        raise CritixError(f"invalid config: {err}") from None


def read_config_json(run_dir: Path) -> dict[str, Any]:
    """config.json of a run folder as a JSON object, or a CritixError naming the folder."""
    path = Path(run_dir) / "config.json"
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
        if not isinstance(data, dict):
            raise TypeError(f"it holds {type(data).__name__}, not an object")
    except (OSError, ValueError, TypeError, RecursionError) as err:  # ValueError: JSON, UTF-8
        raise CritixError(f"{path} is missing or malformed ({err}); is {run_dir} a critix run folder?") from None
    return data


def is_offline_run(run_dir: Path) -> bool:
    try:
        return read_config_json(run_dir).get("mode") == OFFLINE
    except CritixError:
        return False  # not readable: the loaders give the clear error


def load_run_config(run_dir: Path) -> tuple[str, Any, Any]:
    """(algo, agent config, RunConfig or OfflineRunConfig) from a run folder's config.json."""
    data = read_config_json(run_dir)
    try:
        algo, agent_values, run_values = data["algo"], data["agent"], data["run"]
        if not isinstance(algo, str):
            raise TypeError(f"algo must be a string, got {algo!r}")
    except (KeyError, TypeError) as err:
        raise CritixError(f"{Path(run_dir) / 'config.json'} is missing or malformed ({err}); is {run_dir} a "
                          "critix run folder?") from None
    spec = agents.get(algo)
    run_cls = OfflineRunConfig if data.get("mode") == OFFLINE else RunConfig
    if isinstance(agent_values, dict) and isinstance(run_values, dict):  # loop settings written by critix 0.1
        moved = {k: agent_values[k] for k in LOOP_SETTINGS if k in agent_values}
        agent_values = {k: v for k, v in agent_values.items() if k not in moved}
        if run_cls is RunConfig:
            run_values = {**moved, **run_values}
    return algo, config_from_dict(type(spec.default_config), agent_values), config_from_dict(run_cls, run_values)


def default_run_dir(algo: str, run: RunSettings) -> Path:
    """runs/<algo>-<env>-<time>, or runs/<algo>-offline-<dataset>-<time>."""
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    if isinstance(run, OfflineRunConfig):
        return Path("runs") / f"{algo}-offline-{Path(run.dataset).name}-{stamp}"
    env = run.env.replace("/", "_").replace(":", "-")  # no separators or colons in folder names
    return Path("runs") / f"{algo}-{env}-{stamp}"


def run_folder(algo: str, run: RunSettings, resume: Path | None) -> Path:
    """The folder a run writes: the one it resumes, else --run-dir, else a new time-stamped one."""
    return Path(resume) if resume else Path(run.run_dir) if run.run_dir else default_run_dir(algo, run)
