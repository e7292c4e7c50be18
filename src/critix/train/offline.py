"""Offline training: the dataset lives on the device once; the run is compiled scan chunks, vmapped over seeds.

Each compiled call runs `chunk_size` gradient steps per seed in one `lax.scan` (every step samples a uniform
minibatch of indices into the device-resident dataset and calls the agent's `update`), for all S seeds at once
(`jax.vmap`). Between chunks the host only logs, evaluates (deterministic policy on Gymnasium eval envs, every
`eval_every` steps) and checkpoints. Run folder, metrics.csv, TensorBoard, learning curve, checkpoints and
resume work as for online runs (`critix.train.online`).

Offline-to-online (`finetune`): an offline run's agents continue in their env with the online host loop, their
replay buffers seeded with the dataset.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import math
import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from critix import __version__, agents
from critix.data import replay
from critix.data.datasets import OfflineDataset, dataset_normalized_score, read_dataset
from critix.envs.gym import make_vector_env
from critix.provenance import source_commit
from critix.train import checkpoint, online, runlock
from critix.train.evaluate import evaluate
from critix.train.logging import MetricsLogger, plot_learning_curve
from critix.train.progress import Progress
from critix.types import CritixError, Transition

MODE = "offline"
LOOP_METRICS = ("eval/return", "eval/return_std", "eval/normalized_score", "time/gradient_steps_per_second")


@dataclasses.dataclass(frozen=True)
class OfflineRunConfig:
    """How an offline run is executed (the agent's hyperparameters live in the agent's Config)."""

    dataset: str = ""
    """Minari-format dataset folder (written by `critix collect` or by minari)."""
    steps: int = 300_000
    """Gradient steps per seed."""
    num_seeds: int = 1
    """Independent seeds trained together (vmapped) on the same dataset."""
    seed: int = 0
    """Base seed: seed s uses agent and sampling keys split from PRNGKey(seed)."""
    env: str | None = None
    """Gymnasium id of the evaluation env; default: the env recorded in the dataset's metadata."""
    chunk_size: int = 5_000
    """Gradient steps per compiled call; metrics are logged once per chunk."""
    eval_every: int = 25_000
    """Evaluate every this many gradient steps (a multiple of chunk_size) and at the end; 0: only at the end."""
    eval_episodes: int = 10
    """Deterministic evaluation episodes per seed."""
    checkpoint_every: int = 0
    """Checkpoint every this many gradient steps (a multiple of chunk_size); 0: at each evaluation and the end."""
    keep_checkpoints: int = 2
    """How many recent checkpoints to keep."""
    normalize_obs: bool = False
    """Standardise observations with the dataset's mean and std (TD3+BC, Fujimoto & Gu 2021, Sec. 5)."""
    normalize_reward: bool = False
    """Scale rewards by 1000 / (max - min episode return) of the dataset (IQL on MuJoCo, Kostrikov et al. 2022)."""
    run_dir: str | None = None
    """Run folder; default runs/<algo>-offline-<dataset name>-<time>."""
    progress: bool = True
    """Show a progress bar."""
    tensorboard: bool = True
    """Write TensorBoard event files."""

    def __post_init__(self) -> None:
        for name in ("steps", "num_seeds", "chunk_size", "eval_episodes"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("eval_every", "checkpoint_every", "keep_checkpoints", "seed"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in ("eval_every", "checkpoint_every"):
            if getattr(self, name) % self.chunk_size:
                raise ValueError(f"{name} ({getattr(self, name)}) must be a multiple of chunk_size ({self.chunk_size})")


@dataclasses.dataclass
class OfflineData:
    """The dataset as the run uses it: transitions on the device, normalisation statistics, references."""

    dataset: OfflineDataset
    transitions: Transition  # device arrays [N, ...]
    obs_mean: np.ndarray
    obs_std: np.ndarray
    reward_scale: float


def load_data(run: OfflineRunConfig) -> OfflineData:
    dataset = read_dataset(run.dataset)
    data = dataset.transitions()
    reward_scale = 1.0
    if run.normalize_reward:
        returns = dataset.returns()
        spread = float(returns.max() - returns.min())
        if spread <= 0:
            raise CritixError("--normalize-reward needs episodes with different returns in the dataset")
        reward_scale = 1000.0 / spread
        data = data.replace(reward=data.reward * np.float32(reward_scale))
    if run.normalize_obs:
        mean, std = data.obs.mean(axis=0), data.obs.std(axis=0) + 1e-3  # TD3+BC reference code: std + 1e-3
    else:
        mean, std = np.zeros(data.obs.shape[1], np.float32), np.ones(data.obs.shape[1], np.float32)
    return OfflineData(dataset, jax.device_put(data), mean.astype(np.float32), std.astype(np.float32), reward_scale)


def config_to_json(algo: str, agent_cfg: Any, run: OfflineRunConfig) -> dict[str, Any]:
    return {"mode": MODE, "algo": algo, "agent": dataclasses.asdict(agent_cfg), "run": dataclasses.asdict(run),
            "critix_version": __version__}


def is_offline_run(run_dir: Path) -> bool:
    try:
        return json.loads((Path(run_dir) / "config.json").read_text()).get("mode") == MODE
    except (OSError, json.JSONDecodeError, UnicodeDecodeError, AttributeError):
        return False  # not readable as an offline run: the online loaders give the clear error


def load_run_config(run_dir: Path) -> tuple[str, Any, OfflineRunConfig]:
    path = Path(run_dir) / "config.json"
    try:
        data = json.loads(path.read_text())
        algo, agent_values, run_values = data["algo"], data["agent"], data["run"]
    except (OSError, json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as err:
        raise CritixError(f"{path} is missing or malformed ({err}); is {run_dir} a critix run folder?") from None
    spec = agents.get(algo)
    return (algo, online.config_from_dict(type(spec.default_config), agent_values),
            online.config_from_dict(OfflineRunConfig, run_values))


class OfflineSession:
    """Compiled functions, data and eval envs of one offline run (holds no learned state)."""

    def __init__(self, algo: str, agent_cfg: Any, run: OfflineRunConfig) -> None:
        if not run.dataset:
            raise CritixError("offline training needs --dataset PATH (a Minari-format dataset folder)")
        self.algo, self.cfg, self.run = algo, agent_cfg, run
        self.module = agents.get(algo).module
        self.data = load_data(run)
        dataset = self.data.dataset
        self.env_id = run.env or dataset.env_id
        if self.env_id is None:
            raise CritixError(f"{run.dataset} records no env_spec; name the evaluation env with --env ENV")
        self.obs_space, self.act_space = dataset.observation_space, dataset.action_space
        self.module.check_spaces(self.obs_space, self.act_space)
        self.num_transitions = int(self.data.transitions.reward.shape[0])
        if self.num_transitions < agent_cfg.batch_size:
            raise CritixError(f"the dataset holds {self.num_transitions} transitions, fewer than "
                              f"batch_size={agent_cfg.batch_size}; lower --batch-size or collect more data")
        self.eval_env = make_vector_env(self.env_id, run.num_seeds * run.eval_episodes, run.seed * 1000 + 500_000)
        env_obs = self.eval_env.single_observation_space
        if env_obs.shape != self.obs_space.shape or self.eval_env.single_action_space.shape != self.act_space.shape:
            self.eval_env.close()
            raise CritixError(f"{self.env_id} has observation {env_obs.shape} / action "
                              f"{self.eval_env.single_action_space.shape}, but the dataset has "
                              f"{self.obs_space.shape} / {self.act_space.shape}; pass the matching --env")
        self._build_functions()

    def _build_functions(self) -> None:
        cfg, module, n = self.cfg, self.module, self.num_transitions
        mean, std = jnp.asarray(self.data.obs_mean), jnp.asarray(self.data.obs_std)

        def train_chunk(state: Any, key: jax.Array, data: Transition, num_steps: int) -> Any:
            def step(state: Any, step_key: jax.Array) -> Any:
                index = jax.random.randint(step_key, (cfg.batch_size,), 0, n)
                batch = jax.tree.map(lambda x: x[index], data)
                batch = batch.replace(obs=(batch.obs - mean) / std, next_obs=(batch.next_obs - mean) / std)
                return module.update(cfg, state, batch)

            key, chunk_key = jax.random.split(key)
            state, metrics = jax.lax.scan(step, state, jax.random.split(chunk_key, num_steps))
            return state, key, jax.tree.map(jnp.nanmean, metrics)

        def greedy(state: Any, obs: jax.Array) -> jax.Array:
            return module.act(cfg, state, (obs - mean) / std, jax.random.PRNGKey(0), True)

        self.train_chunk = jax.jit(jax.vmap(train_chunk, in_axes=(0, 0, None, None)), static_argnums=3,
                                   donate_argnums=(0, 1))
        self.greedy = jax.jit(jax.vmap(greedy))

    def init_state(self) -> tuple[Any, jax.Array]:
        agent_key, loop_key = jax.random.split(jax.random.PRNGKey(self.run.seed))
        cfg, module, obs_space, act_space = self.cfg, self.module, self.obs_space, self.act_space
        states = jax.jit(jax.vmap(lambda k: module.init(cfg, k, obs_space, act_space)))(
            jax.random.split(agent_key, self.run.num_seeds))
        return states, jax.random.split(loop_key, self.run.num_seeds)

    def evaluate(self, states: Any, seed: int) -> np.ndarray:
        """Deterministic returns [S, eval_episodes]."""
        def act(obs: np.ndarray) -> np.ndarray:
            return np.asarray(self.greedy(states, obs.astype(np.float32)))

        return evaluate(self.eval_env, act, self.run.num_seeds, seed)[0]

    def metric_names(self) -> list[str]:
        cfg, module, obs_space, act_space = self.cfg, self.module, self.obs_space, self.act_space
        state = jax.eval_shape(lambda: module.init(cfg, jax.random.PRNGKey(0), obs_space, act_space))
        batch = jax.tree.map(lambda x: jax.ShapeDtypeStruct((cfg.batch_size, *x.shape[1:]), x.dtype),
                             self.data.transitions)
        _, metrics = jax.eval_shape(lambda s, b: module.update(cfg, s, b), state, batch)
        return sorted(metrics) + list(LOOP_METRICS)

    def normalized(self, returns: np.ndarray) -> np.ndarray:
        score = dataset_normalized_score(self.data.dataset, returns)
        return np.full(np.shape(returns), np.nan) if score is None else np.asarray(score, np.float64)

    def close(self) -> None:
        self.eval_env.close()


def default_run_dir(algo: str, dataset: str) -> Path:
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{algo}-offline-{Path(dataset).name}-{stamp}"


def train(algo: str, agent_cfg: Any, run: OfflineRunConfig, resume: Path | None = None) -> dict[str, Any]:
    """Train (or resume) an offline run; returns the summary also written to summary.json."""
    session = OfflineSession(algo, agent_cfg, run)
    try:
        with runlock.claim(online.run_folder(resume, run.run_dir, default_run_dir(algo, run.dataset))) as run_dir:
            return _train(session, run_dir, resume)
    finally:
        session.close()


def _train(session: OfflineSession, run_dir: Path, resume: Path | None) -> dict[str, Any]:
    algo, cfg, run = session.algo, session.cfg, session.run
    S = run.num_seeds
    ckpt_dir = run_dir / "checkpoints"
    counters = {"steps": 0, "wall_seconds": 0.0, "train_seconds": 0.0, "train_steps": 0, "compile_seconds": 0.0}
    states, keys = session.init_state()
    found = checkpoint.latest_valid(ckpt_dir) if resume is not None else None  # warns about corrupt ones
    if found is not None:
        arrays, meta = checkpoint.load(found[0], {"agent": states, "key": keys})
        states, keys = jax.device_put(arrays["agent"]), jax.device_put(arrays["key"])
        counters.update(meta["counters"])
    elif resume is None:
        checkpoint.atomic_write_json(run_dir / "config.json", config_to_json(algo, cfg, run))

    # Rows and TensorBoard events after the checkpoint were written by the killed process: drop them.
    purge_step = counters["steps"] + 1 if resume is not None else None
    logger = MetricsLogger(run_dir, S, session.metric_names(), run.tensorboard, purge_step=purge_step)
    logger.truncate_after(counters["steps"])
    eval_every = run.eval_every or run.steps
    ckpt_every = run.checkpoint_every or eval_every
    start = time.perf_counter() - counters["wall_seconds"]
    compiled: set[int] = set()
    final_returns: np.ndarray | None = None
    last_eval: float | None = None
    progress = Progress(run.steps, f"{algo} offline x{S} seeds", enabled=run.progress)
    progress.start(counters["steps"])
    try:
        while counters["steps"] < run.steps:
            num_steps = min(run.chunk_size, run.steps - counters["steps"])
            chunk_start = time.perf_counter()
            states, keys, metrics = session.train_chunk(states, keys, session.data.transitions, num_steps)
            jax.block_until_ready(states)
            elapsed = time.perf_counter() - chunk_start
            if num_steps in compiled:
                counters["train_seconds"] += elapsed
                counters["train_steps"] += num_steps
            else:  # the first call of a chunk length includes its compilation
                compiled.add(num_steps)
                counters["compile_seconds"] += elapsed
            prev, counters["steps"] = counters["steps"], counters["steps"] + num_steps
            step, done = counters["steps"], counters["steps"] >= run.steps
            sps = counters["train_steps"] / counters["train_seconds"] if counters["train_seconds"] else math.nan
            values = {name: np.asarray(v, np.float64) for name, v in metrics.items()}
            values["time/gradient_steps_per_second"] = np.full(S, sps)
            if step // eval_every > prev // eval_every or done:
                returns = session.evaluate(states, seed=run.seed * 1000 + 900_000 + step)
                final_returns = returns if done else None
                values.update({"eval/return": returns.mean(axis=1), "eval/return_std": returns.std(axis=1),
                               "eval/normalized_score": session.normalized(returns.mean(axis=1))})
                last_eval = float(returns.mean())
            logger.log(step, time.perf_counter() - start, values)
            if step // ckpt_every > prev // ckpt_every or done:
                counters["wall_seconds"] = time.perf_counter() - start
                logger.flush()
                checkpoint.save(ckpt_dir, step, {"agent": states, "key": keys},
                                {"counters": counters, "algo": algo, "mode": MODE, "dataset": run.dataset},
                                keep=run.keep_checkpoints)
            progress.update(step, sps, last_eval)
    finally:
        progress.stop()
        logger.close()

    counters["wall_seconds"] = time.perf_counter() - start
    if final_returns is None:  # resumed a finished run: evaluate its final policy again
        final_returns = session.evaluate(states, seed=run.seed * 1000 + 900_000 + counters["steps"])
    plot_learning_curve(run_dir / "metrics.csv", run_dir / "learning_curve.png",
                        f"{algo} offline on {Path(run.dataset).name} (x: gradient steps)")
    per_seed = final_returns.mean(axis=1)
    normalized = session.normalized(per_seed)
    data_returns = session.data.dataset.returns()
    data_norm = session.normalized(data_returns)
    summary = {
        "algo": algo,
        "mode": MODE,
        "env": session.env_id,
        "dataset": run.dataset,
        "dataset_episodes": len(data_returns),
        "dataset_transitions": session.num_transitions,
        "dataset_return_mean": float(data_returns.mean()),
        "dataset_normalized_score_mean": None if np.isnan(data_norm).all() else float(np.mean(data_norm)),
        "steps": counters["steps"],
        "num_seeds": S,
        "final_return": [float(x) for x in per_seed],
        "final_return_mean": float(per_seed.mean()),
        "final_return_std": float(per_seed.std()),
        "final_normalized_score": [float(x) for x in normalized],
        "final_normalized_score_mean": float(np.mean(normalized)),
        "eval_episodes": run.eval_episodes,
        "wall_seconds": counters["wall_seconds"],
        "gradient_steps_per_second": (counters["train_steps"] / counters["train_seconds"]
                                      if counters["train_seconds"] else None),
        "gradient_steps_per_second_note": "per seed, all S seeds vmapped in one call; compile and eval excluded",
        "compile_seconds": counters["compile_seconds"],
        "critix_version": __version__,
        "critix_commit": source_commit(),
        "jax_version": jax.__version__,
        "device": str(jax.devices()[0]),
        "run_dir": str(run_dir),
    }
    checkpoint.atomic_write_json(run_dir / "summary.json", summary)
    return summary


# ---- offline-to-online ---------------------------------------------------------------------------------------


def finetune(init_from: Path, run: online.RunConfig) -> dict[str, Any]:
    """Continue the agents of offline run `init_from` online in their env (`critix train ALGO --init-from DIR`).

    Each seed's replay buffer starts with the whole dataset (capacity: dataset + `run.steps`), the agent states
    come from the offline run's last checkpoint, and the online host loop (`critix.train.online`) does the rest.
    """
    init_from = Path(init_from)
    algo, agent_cfg, offline_run = load_run_config(init_from)
    if offline_run.normalize_obs or offline_run.normalize_reward:
        raise CritixError(f"{init_from} was trained with --normalize-obs/--normalize-reward; offline-to-online "
                          "needs the raw observation and reward scale (train offline without them)")
    last = checkpoint.latest(init_from / "checkpoints")
    if last is None:
        raise CritixError(f"{init_from} has no complete checkpoint to continue from")
    data = read_dataset(offline_run.dataset).transitions()
    env = run.env if run.env != online.RunConfig().env else (offline_run.env or _env_of(offline_run.dataset))
    S = offline_run.num_seeds
    run = dataclasses.replace(run, env=env, num_seeds=S)
    capacity = int(data.reward.shape[0]) + run.steps
    agent_cfg = dataclasses.replace(agent_cfg, buffer_size=max(agent_cfg.buffer_size, capacity))

    def init_runner(session: online.Session) -> online.Runner:
        runner = session.init_runner(capacity)
        arrays, _ = checkpoint.load(last, {"agent": runner.agent, "key": runner.key})
        items = jax.tree.map(lambda x: jnp.broadcast_to(jnp.asarray(x), (S, *x.shape)), data)
        runner.agent = jax.device_put(arrays["agent"])
        runner.buffer = jax.jit(jax.vmap(replay.add))(runner.buffer, items)
        return runner

    return online.train(algo, agent_cfg, run, init_runner=init_runner)


def _env_of(dataset: str) -> str:
    env_id = read_dataset(dataset).env_id
    if env_id is None:
        raise CritixError(f"{dataset} records no env_spec; name the env with --env ENV")
    return env_id
