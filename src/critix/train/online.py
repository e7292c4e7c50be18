"""Host environment loop for off-policy agents, with compiled update chunks and S seeds in one process.

One Gymnasium vector env holds S seeds x N envs (seed-major). Each iteration steps the env `chunk_size` times
(one vmapped, jitted `act` per step), then makes one compiled call that writes the chunk's transitions into
the device-resident replay buffers and runs `utd_ratio * chunk_size * N` gradient steps per seed (`update_many`,
a `lax.scan`, vmapped over seeds). Agent states, buffers and keys carry a leading seed axis S.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import math
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any, Literal

import jax
import jax.numpy as jnp
import numpy as np

from critix import __version__, agents, validation
from critix.data import replay
from critix.envs.gym import (RunningMeanStd, final_observation, random_actions,
                              to_env_action)
from critix.train import checkpoint, guards, runlock
from critix.train.host import HostSession, make_summary, restore_counters
from critix.train.logging import MetricsLogger, plot_learning_curve
from critix.train.progress import Progress
from critix.train.resume import LoopState, restore_loop
from critix.types import CritixError, Transition


MAX_ENVS = 10_000


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """How a run is executed (the agent's hyperparameters live in the agent's Config)."""

    env: str = "Pendulum-v1"
    """Gymnasium environment id (classic control and MuJoCo work out of the box)."""
    steps: int = 20_000
    """Environment steps per seed (summed over that seed's envs), as SB3's total_timesteps."""
    num_seeds: int = 1
    """Independent seeds trained together in this process (states and buffers get a leading seed axis)."""
    num_envs: int = 1
    """Environments per seed."""
    seed: int = 0
    """Base seed: seed s of the run uses agent key split from PRNGKey(seed) and env seed seed*1000 + s*N + i."""
    chunk_size: int = 50
    """Vector-env steps between compiled update calls (updates per call = utd_ratio * chunk_size * num_envs)."""
    eval_every: int = 5_000
    """Evaluate every this many env steps per seed (and at the end); 0 evaluates only at the end."""
    eval_episodes: int = 10
    """Deterministic evaluation episodes per seed, on separate eval envs."""
    checkpoint_every: int = 0
    """Checkpoint every this many env steps per seed; 0 means at each evaluation (and always at the end)."""
    keep_checkpoints: int = 2
    """How many recent checkpoints to keep."""
    log_every: int = 1_000
    """Write training metrics (losses, episode returns) every this many env steps per seed."""
    normalize_obs: bool = False
    """Normalise observations with running mean/std per seed (stored raw in the buffer, normalised when used)."""
    normalize_reward: bool = False
    """On-policy agents: divide rewards by a running std of the discounted return, clipped to [-10, 10]
    (SB3 VecNormalize); episode returns are still logged unscaled."""
    vectorization: str = "sync"
    """Gymnasium vectorisation: 'sync' (fast envs) or 'async' (one process per env, for slow envs)."""
    run_dir: str | None = None
    """Run folder; default runs/<algo>-<env>-<time>."""
    progress: bool = True
    """Show a progress bar."""
    tensorboard: bool = True
    """Write TensorBoard event files."""
    on_nan: Literal["stop", "skip"] = "stop"
    """NaN/Inf in observations, rewards, losses or parameters: 'stop' exits with an error and keeps the last good
    checkpoint; 'skip' drops the bad transitions / updates and counts them (guard/* metrics)."""
    grid: tuple[str, ...] = ()
    """Compiled runs (gymnax: env ids) only: FIELD=V1,V2,... trains every value of the float agent field FIELD
    in the same jit(vmap) as the seeds (several flags: every combination); each grid point gets a run folder
    under RUN_DIR/grid/. Gymnasium envs: train a grid with `critix sweep`."""

    def __post_init__(self) -> None:
        validation.check_types(self)
        positive = ("steps", "num_seeds", "num_envs", "chunk_size", "eval_episodes", "log_every")
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("eval_every", "checkpoint_every", "keep_checkpoints", "seed"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.steps < self.num_envs:
            raise ValueError(f"steps ({self.steps}) must be >= num_envs ({self.num_envs})")
        if self.seed >= 2**31:
            raise ValueError(f"seed must be in [0, 2**31), got {self.seed}")
        for name, count in (("num_seeds * num_envs", self.num_seeds * self.num_envs),
                            ("num_seeds * eval_episodes", self.num_seeds * self.eval_episodes)):
            if count > MAX_ENVS:
                raise ValueError(f"{name} must be <= {MAX_ENVS} (envs in one process), got {count}")


@dataclasses.dataclass
class Runner:
    """Everything a run needs to continue: device pytrees (saved in state.safetensors) and host counters."""

    agent: Any  # agent State, leading axis S
    buffer: replay.ReplayBuffer  # leading axis S
    key: jax.Array  # [S, 2] loop keys (acting and sampling)
    obs_rms: RunningMeanStd
    vector_steps: int = 0
    updates: int = 0
    episodes: int = 0
    wall_seconds: float = 0.0
    train_seconds: float = 0.0  # wall time of env steps + updates after learning started (steady state)
    train_steps: int = 0  # env steps per seed counted in train_seconds
    compile_seconds: float = 0.0
    skipped_transitions: int = 0  # non-finite transitions kept out of the buffer (on_nan="skip")
    skipped_updates: int = 0  # gradient steps discarded for non-finite losses or parameters (on_nan="skip")

    def arrays(self) -> dict[str, Any]:
        rms = {"mean": self.obs_rms.mean, "var": self.obs_rms.var, "count": self.obs_rms.count}
        return {"agent": self.agent, "buffer": self.buffer, "key": self.key, "obs_rms": rms}

    def counters(self) -> dict[str, Any]:
        fields = ("vector_steps", "updates", "episodes", "wall_seconds", "train_seconds", "train_steps",
                  "compile_seconds", "skipped_transitions", "skipped_updates")
        return {f: getattr(self, f) for f in fields}


LOOP_METRICS = ("train/episode_return", "time/steps_per_second", "eval/return", "eval/return_std")


def config_to_json(algo: str, agent_cfg: Any, run: RunConfig) -> dict[str, Any]:
    return {"algo": algo, "agent": dataclasses.asdict(agent_cfg), "run": dataclasses.asdict(run),
            "critix_version": __version__}


def config_from_dict(cls: type, values: dict[str, Any]) -> Any:
    """Rebuild a frozen config dataclass from JSON, restoring tuples and rejecting unknown fields."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    if not isinstance(values, dict):
        raise CritixError(f"config for {cls.__module__}.{cls.__name__} must be a JSON object, got {type(values).__name__}")
    unknown = set(values) - set(fields)
    if unknown:
        raise CritixError(f"config has unknown fields {sorted(unknown)} for {cls.__module__}.{cls.__name__}")
    fixed = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
    try:
        return cls(**fixed)
    except (TypeError, ValueError) as err:
        raise CritixError(f"invalid config: {err}") from None


def load_run_config(run_dir: Path) -> tuple[str, Any, RunConfig]:
    path = Path(run_dir) / "config.json"
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
        algo, agent_values, run_values = data["algo"], data["agent"], data["run"]
        if not isinstance(algo, str):
            raise TypeError(f"algo must be a string, got {algo!r}")
    except (OSError, ValueError, KeyError, TypeError, RecursionError) as err:  # ValueError: JSON, UTF-8
        raise CritixError(f"{path} is missing or malformed ({err}); is {run_dir} a critix run folder?") from None
    spec = agents.get(algo)
    return algo, config_from_dict(type(spec.default_config), agent_values), config_from_dict(RunConfig, run_values)


def default_run_dir(algo: str, env_id: str) -> Path:
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{algo}-{env_id.replace('/', '_')}-{stamp}"


def run_folder(resume: Path | None, run_dir: str | None, default: Path) -> Path:
    """The folder a run writes: the one it resumes, else --run-dir, else `default` (a new time-stamped one)."""
    return Path(resume) if resume else Path(run_dir) if run_dir else default


class Session(HostSession):
    """The compiled pieces and envs of one off-policy run (built from configs; holds no learned state)."""

    def __init__(self, algo: str, agent_cfg: Any, run: RunConfig) -> None:
        super().__init__(algo, agent_cfg, run)
        try:
            self._setup(agent_cfg, run)
        except CritixError:
            self.close()
            raise

    def _setup(self, agent_cfg: Any, run: RunConfig) -> None:
        # Actions as the agent emits and the buffer stores them: [A] float32 (Box) or a scalar int32 index (Discrete).
        self.action_shape: tuple[int, ...] = () if self.discrete else tuple(self.act_space.shape)
        self.action_dtype = np.int32 if self.discrete else np.float32
        self.low, self.high = getattr(self.act_space, "low", None), getattr(self.act_space, "high", None)  # Box only
        self.action_dim = int(np.prod(self.action_shape))  # 1 for a Discrete index
        # Images (uint8 or bool Box spaces, e.g. Atari, MinAtar) are stored compactly as uint8; the rest as float32.
        self.obs_dtype = np.uint8 if np.dtype(self.obs_space.dtype) in (np.uint8, np.bool_) else np.float32
        if run.normalize_reward:
            raise CritixError(f"--normalize-reward scales on-policy returns (PPO, A2C); {self.algo} is off-policy: "
                              "drop the flag")
        if run.normalize_obs and self.obs_dtype == np.uint8:
            raise CritixError("--normalize-obs is for vector observations; image observations are scaled by the encoder")
        self.n_step = int(getattr(agent_cfg, "n_step", 1))  # n-step agents sample runs of n consecutive steps
        self.capacity = min(agent_cfg.buffer_size, run.steps)
        if self.capacity < agent_cfg.batch_size:
            raise CritixError(
                f"the replay buffer holds {self.capacity} transitions (min of buffer_size and steps), fewer than "
                f"batch_size={agent_cfg.batch_size}; raise --steps or lower --batch-size"
            )
        item_bytes = sum(np.asarray(x).nbytes for x in jax.tree.leaves(self.example()))
        validation.check_buffer_memory(self.capacity, item_bytes, run.num_seeds)
        self.updates_per_chunk = max(1, round(agent_cfg.utd_ratio * run.chunk_size * run.num_envs))
        self._build_functions()

    # ---- compiled functions -------------------------------------------------------------------------
    def _build_functions(self) -> None:
        cfg, module, prepare = self.cfg, self.module, self.prepare
        skip = self.run.on_nan == "skip"
        prioritized = bool(getattr(cfg, "prioritized", False))  # the agent samples its own batches by priority
        if skip and (prioritized or self.n_step > 1):
            raise CritixError(
                "--on-nan skip drops non-finite transitions from the replay buffer, which would break the order "
                "that n-step returns and prioritized replay rely on; use --on-nan stop with n_step > 1 or "
                "prioritized replay"
            )

        def train_chunk(state, buffer, key, items, mean, var, num_updates):  # type: ignore[no-untyped-def]
            # guard: counts of non-finite transitions and updates in this chunk (see critix.train.guards)
            valid = guards.finite_items(items)
            guard = {"transitions": (~valid).sum(), "updates": jnp.zeros((), jnp.int32)}
            buffer = replay.add_masked(buffer, items, valid) if skip else replay.add(buffer, items)
            if prioritized:
                state = module.register_items(cfg, state, buffer, items.reward.shape[0])
            if num_updates == 0:
                return state, buffer, key, {}, guard
            key, sample_key = jax.random.split(key)
            if prioritized:
                def prepare_batch(b: Transition) -> Transition:
                    return b.replace(obs=prepare(b.obs, mean, var), next_obs=prepare(b.next_obs, mean, var))

                state, metrics = module.update_prioritized(cfg, state, buffer, sample_key, num_updates, prepare_batch)
                bad = guards.nonfinite_steps(metrics)
                guard["updates"] = jnp.where(guards.all_finite(state), bad, jnp.maximum(bad, 1))
                return state, buffer, key, jax.tree.map(jnp.nanmean, metrics), guard
            if self.n_step > 1:
                batches = replay.sample_sequences(buffer, sample_key, num_updates, cfg.batch_size, self.n_step,
                                                  self.num_envs)
            else:
                batches = replay.sample_many(buffer, sample_key, num_updates, cfg.batch_size)
            batches = batches.replace(obs=prepare(batches.obs, mean, var), next_obs=prepare(batches.next_obs, mean, var))
            if skip:
                state, metrics, skipped = guards.skip_nonfinite_updates(partial(module.update, cfg), state, batches)
                guard["updates"] = skipped.sum()
            else:
                state, metrics = module.update_many(cfg, state, batches)
                bad = guards.nonfinite_steps(metrics)
                guard["updates"] = jnp.where(guards.all_finite(state), bad, jnp.maximum(bad, 1))
            return state, buffer, key, jax.tree.map(jnp.nanmean, metrics), guard

        self.train_chunk = jax.jit(
            jax.vmap(train_chunk, in_axes=(0, 0, 0, 0, 0, 0, None)), static_argnums=6, donate_argnums=(0, 1, 2)
        )

    # ---- state -------------------------------------------------------------------------------------
    def example(self) -> Transition:
        """One unbatched transition of this env, zero-filled: the shapes and dtypes the replay buffer stores."""
        return Transition(
            obs=np.zeros(self.obs_shape, self.obs_dtype),
            action=np.zeros(self.action_shape, self.action_dtype),
            reward=np.zeros((), np.float32),
            next_obs=np.zeros(self.obs_shape, self.obs_dtype),
            terminated=np.zeros((), bool),
            truncated=np.zeros((), bool),
        )

    def init_runner(self, capacity: int | None = None) -> Runner:
        root = jax.random.PRNGKey(self.run.seed)
        agent_key, loop_key = jax.random.split(root)
        agent_keys = jax.random.split(agent_key, self.num_seeds)
        loop_keys = jax.random.split(loop_key, self.num_seeds)
        obs_space, act_space, cfg, module = self.obs_space, self.act_space, self.cfg, self.module
        agent = jax.jit(jax.vmap(lambda k: module.init(cfg, k, obs_space, act_space)))(agent_keys)
        example = self.example()
        capacity = capacity or self.capacity
        buffer = jax.jit(jax.vmap(lambda _: replay.init(capacity, example)))(jnp.arange(self.num_seeds))
        return Runner(agent, buffer, loop_keys, RunningMeanStd.create(self.num_seeds, self.obs_shape))

    def restore_runner(self, ckpt: Path) -> Runner:
        saved_capacity = int(checkpoint.load_meta(ckpt).get("buffer_capacity", self.capacity))
        template = self.init_runner(saved_capacity)
        arrays, meta = checkpoint.load(ckpt, template.arrays())
        rms = RunningMeanStd(arrays["obs_rms"]["mean"], arrays["obs_rms"]["var"], arrays["obs_rms"]["count"])
        buffer = jax.device_put(arrays["buffer"])
        if self.capacity > saved_capacity:  # the run was extended (--steps): grow the ring, keeping its data
            buffer = jax.vmap(lambda b: replay.grow(b, self.capacity))(buffer)
        runner = Runner(jax.device_put(arrays["agent"]), buffer, jax.device_put(arrays["key"]), rms)
        return restore_counters(runner, meta)

    def metric_names(self) -> list[str]:
        """Every column the run logs: the agent's update metrics (found by tracing `update`) and the loop's."""
        cfg, module, obs_space, act_space = self.cfg, self.module, self.obs_space, self.act_space
        agent = jax.eval_shape(lambda: module.init(cfg, jax.random.PRNGKey(0), obs_space, act_space))
        lead = (cfg.batch_size,) if self.n_step == 1 else (cfg.batch_size, self.n_step)
        batch = jax.tree.map(lambda x: jax.ShapeDtypeStruct((*lead, *x.shape), x.dtype), self.example())
        _, metrics = jax.eval_shape(lambda s, b: module.update(cfg, s, b), agent, batch)
        guard = list(guards.GUARD_METRICS) if self.run.on_nan == "skip" else []
        return sorted(metrics) + list(LOOP_METRICS) + guard



def train(algo: str, agent_cfg: Any, run: RunConfig, resume: Path | None = None,
          init_runner: Callable[[Session], Runner] | None = None) -> dict[str, Any]:
    """Train (or resume) a run; returns the summary that is also written to summary.json.

    init_runner: builds the starting agents and buffers of a new run (default `Session.init_runner`); offline-to-
    online fine-tuning (`critix.train.offline.finetune`) passes one that loads offline agents and the dataset.
    """
    session = Session(algo, agent_cfg, run)
    try:
        with runlock.claim(run_folder(resume, run.run_dir, default_run_dir(algo, run.env))) as run_dir:
            return _train(session, run_dir, resume, init_runner)
    finally:
        session.close()


def _train(session: Session, run_dir: Path, resume: Path | None,
           init_runner: Callable[[Session], Runner] | None = None) -> dict[str, Any]:
    algo, cfg, run = session.algo, session.cfg, session.run
    S, N = session.num_seeds, session.num_envs
    ckpt_dir = run_dir / "checkpoints"
    rng = np.random.default_rng([run.seed, 1])

    runner, meta = None, None
    if resume is not None:
        found = checkpoint.latest_valid(ckpt_dir)  # the newest checkpoint that verifies (warns about bad ones)
        if found is not None:
            last, meta = found
            runner = session.restore_runner(last)
            rng.bit_generator.state = meta["numpy_rng"]
    if runner is None:
        runner = init_runner(session) if init_runner is not None else session.init_runner()
        checkpoint.atomic_write_json(run_dir / "config.json", config_to_json(algo, cfg, run))

    # Rows and TensorBoard events after the checkpoint were written by the killed process: drop them.
    purge_step = runner.vector_steps * N + 1 if resume is not None else None
    logger = MetricsLogger(run_dir, S, session.metric_names(), run.tensorboard, purge_step=purge_step)
    logger.truncate_after(runner.vector_steps * N)
    total_vector_steps = math.ceil(run.steps / N)
    eval_every = run.eval_every or run.steps
    ckpt_every = run.checkpoint_every or eval_every

    obs, _ = session.env.reset(seed=run.seed * 1000 + runner.vector_steps)
    obs = obs.astype(session.obs_dtype)
    episode_return = np.zeros(S * N)
    recent_returns: list[list[float]] = [[] for _ in range(S)]
    last_eval: np.ndarray | None = None
    final_returns: np.ndarray | None = None
    train_metrics: dict[str, np.ndarray] = {}
    if meta is not None:  # continue mid-episode: envs, observations and return accumulators as they were
        loop = restore_loop(meta.get("loop"), session.env, S, session.obs_shape)
        if loop is not None:
            obs, episode_return, recent_returns, train_metrics = (
                loop.obs, loop.episode_return, loop.recent_returns, loop.train_metrics)
    start = time.perf_counter() - runner.wall_seconds
    K = min(run.chunk_size, total_vector_steps)
    stage_obs = np.zeros((K, S * N, *session.obs_shape), session.obs_dtype)
    stage_next = np.zeros_like(stage_obs)
    stage_act = np.zeros((K, S * N, *session.action_shape), session.action_dtype)
    stage_rew = np.zeros((K, S * N), np.float32)
    stage_term = np.zeros((K, S * N), bool)
    stage_trunc = np.zeros((K, S * N), bool)

    # Chunks that compile something in this process (a new train_chunk variant, or the first policy call) count
    # as compile time, not steady state; a resumed process compiles again.
    compiled_variants: set[tuple[int, int]] = set()  # (env steps, gradient steps) of the train_chunk calls
    policy_compiled = False
    progress = Progress(run.steps, f"{algo} {run.env} x{S} seeds", enabled=run.progress)
    progress.start(runner.vector_steps * N)
    try:
        while runner.vector_steps < total_vector_steps:
            chunk_start = time.perf_counter()
            k_steps = min(K, total_vector_steps - runner.vector_steps)
            learning = runner.vector_steps * N >= cfg.learning_starts
            mean, var = session.stats(runner)
            used_policy = False
            for k in range(k_steps):
                if runner.vector_steps * N < cfg.learning_starts:
                    action = random_actions(rng, session.act_space, S * N)
                else:
                    used_policy = True
                    action, runner.key = session.policy(runner.agent, runner.key, obs.reshape(S, N, *session.obs_shape),
                                                        mean, var)
                    action = np.asarray(action).reshape(S * N, *session.action_shape)
                    if run.on_nan == "skip" and action.dtype.kind == "f":  # a non-finite observation gives a
                        action = np.where(np.isfinite(action), action, np.float32(0.0))  # non-finite action: send 0
                next_obs, reward, terminated, truncated, info = session.env.step(
                    to_env_action(action, session.act_space, S * N)
                )
                next_obs = next_obs.astype(session.obs_dtype)
                done = terminated | truncated
                stage_obs[k], stage_act[k], stage_rew[k] = obs, action, reward
                stage_next[k] = final_observation(next_obs, done, info)
                stage_term[k], stage_trunc[k] = terminated, truncated
                episode_return += reward
                for i in np.flatnonzero(done):
                    recent_returns[i // N].append(float(episode_return[i]))
                    runner.episodes += 1
                episode_return[done] = 0.0
                obs = next_obs
                runner.vector_steps += 1

            def per_seed(x: np.ndarray) -> np.ndarray:  # [k, S*N, ...] -> [S, k*N, ...]
                x = x[:k_steps].reshape(k_steps, S, N, *x.shape[2:]).swapaxes(0, 1)
                return x.reshape(S, k_steps * N, *x.shape[3:])

            items = Transition(per_seed(stage_obs), per_seed(stage_act), per_seed(stage_rew),
                               per_seed(stage_next), per_seed(stage_term), per_seed(stage_trunc))
            if run.normalize_obs and (run.on_nan == "stop" or np.isfinite(items.obs).all()):
                runner.obs_rms.update(items.obs)
            steps_now = runner.vector_steps * N
            num_updates = 0
            if steps_now >= cfg.learning_starts:
                num_updates = max(1, round(cfg.utd_ratio * k_steps * N))
            compiling = (k_steps, num_updates) not in compiled_variants or (used_policy and not policy_compiled)
            compiled_variants.add((k_steps, num_updates))
            policy_compiled = policy_compiled or used_policy
            runner.agent, runner.buffer, runner.key, metrics, guard = session.train_chunk(
                runner.agent, runner.buffer, runner.key, items, mean, var, num_updates
            )
            guard = jax.device_get(guard)  # one transfer for both counters
            bad_items, bad_updates = int(np.sum(guard["transitions"])), int(np.sum(guard["updates"]))
            if bad_items or bad_updates:
                if run.on_nan == "stop":  # before any log row or checkpoint of the bad chunk is written
                    raise CritixError(_nan_message(steps_now, bad_items, bad_updates, ckpt_dir))
                runner.skipped_transitions += bad_items
                runner.skipped_updates += bad_updates
            if num_updates:
                runner.updates += num_updates
                train_metrics = metrics
                # Wait for the updates so the chunk's time includes them (the next act would wait anyway);
                # without this the last chunk before an evaluation or the end would go uncounted.
                jax.block_until_ready(runner.agent)
            if compiling:
                runner.compile_seconds += time.perf_counter() - chunk_start
            elif learning:
                runner.train_seconds += time.perf_counter() - chunk_start
                runner.train_steps += k_steps * N

            prev = steps_now - k_steps * N
            done_run = runner.vector_steps >= total_vector_steps
            if steps_now // run.log_every > prev // run.log_every or done_run:
                _log_train(logger, runner, train_metrics, recent_returns, steps_now, start)
            if steps_now // eval_every > prev // eval_every or done_run:
                jax.block_until_ready(runner.agent)
                returns = session.evaluate_and_log(runner, logger, steps_now, start)
                last_eval = returns.mean(axis=1)
                if done_run:
                    final_returns = returns
            if steps_now // ckpt_every > prev // ckpt_every or done_run:
                loop_state = LoopState(obs, episode_return, recent_returns,
                                       {k: np.asarray(v) for k, v in train_metrics.items()})
                session.save_checkpoint(ckpt_dir, steps_now, runner, logger, start, loop_state,
                                        numpy_rng=rng.bit_generator.state, buffer_capacity=runner.buffer.capacity)
            sps = runner.train_steps / runner.train_seconds if runner.train_seconds else float("nan")
            progress.update(steps_now, sps, None if last_eval is None else float(np.mean(last_eval)))
    finally:
        progress.stop()
        logger.close()

    runner.wall_seconds = time.perf_counter() - start
    if final_returns is None:  # resumed a run that had already finished: evaluate its final policy again
        final_returns = session.evaluate(runner, seed=run.seed * 1000 + 900_000 + runner.vector_steps * N)
    plot_learning_curve(run_dir / "metrics.csv", run_dir / "learning_curve.png", f"{algo} on {run.env}")
    summary = make_summary(algo, run, final_returns, runner.vector_steps * N, runner.wall_seconds,
                           runner.train_steps, runner.train_seconds, runner.compile_seconds, runner.updates, run_dir)
    summary["skipped_transitions"] = runner.skipped_transitions
    summary["skipped_updates"] = runner.skipped_updates
    checkpoint.atomic_write_json(run_dir / "summary.json", summary)
    return summary


def _log_train(
    logger: MetricsLogger,
    runner: Runner,
    metrics: dict[str, Any],
    recent_returns: list[list[float]],
    step: int,
    start: float,
) -> None:
    values = {name: np.asarray(v, np.float64) for name, v in metrics.items()}
    values["train/episode_return"] = np.array([np.mean(r) if r else np.nan for r in recent_returns])
    sps = runner.train_steps / runner.train_seconds if runner.train_seconds else np.nan
    values["time/steps_per_second"] = np.full(len(recent_returns), sps)
    if guards.GUARD_METRICS[0] in logger.columns:  # on_nan="skip": running totals, summed over seeds
        values["guard/skipped_transitions"] = np.full(len(recent_returns), float(runner.skipped_transitions))
        values["guard/skipped_updates"] = np.full(len(recent_returns), float(runner.skipped_updates))
    for r in recent_returns:
        r.clear()
    logger.log(step, time.perf_counter() - start, values)


def _nan_message(step: int, bad_items: int, bad_updates: int, ckpt_dir: Path) -> str:
    last = checkpoint.latest(ckpt_dir)
    found = []
    if bad_items:
        found.append(f"{bad_items} transition(s) with NaN/Inf observations or rewards (check the environment)")
    if bad_updates:
        found.append(f"{bad_updates} update(s) with NaN/Inf losses or parameters (lower the learning rates, set "
                     "--max-grad-norm, or scale the rewards)")
    kept = f"the last good checkpoint, {last}, is kept" if last else "no checkpoint had been written yet"
    return (f"non-finite values in the chunk ending at env step {step}: {'; '.join(found)}. Stopped; {kept}. "
            "Pass --on-nan skip to drop such transitions and updates and count them instead.")
