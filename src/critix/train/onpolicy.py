"""Host environment loop for on-policy agents (PPO, A2C): rollouts from Gymnasium vector envs, S seeds at once.

One Gymnasium vector env holds S seeds x N envs (seed-major), as in `critix.train.online`. Each iteration collects
a rollout of `rollout_length` vector steps (one vmapped, jitted `act` per step) and makes one compiled call that
trains every seed on its rollout [T, N, ...] (`update`, vmapped over seeds). Observation normalisation statistics
are frozen during a rollout and updated after it, so `update` sees the observations the policy acted on.
Run folder, metrics.csv, TensorBoard, learning curve, checkpoints and summary.json are those of the off-policy loop.
"""

from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import jax
import numpy as np

from critix import __version__, agents
from critix.envs.gym import RunningMeanStd, final_observation, make_vector_env, normalize_obs, scale_action
from critix.train import checkpoint
from critix.train.evaluate import evaluate
from critix.train.logging import MetricsLogger, plot_learning_curve
from critix.train.online import LOOP_METRICS, RunConfig, _log_train, config_to_json, default_run_dir
from critix.train.progress import Progress
from critix.types import CritixError, Transition

REWARD_CLIP = 10.0  # SB3 VecNormalize clip_reward


def prepare_config(module: Any, cfg: Any, run: RunConfig) -> Any:
    """Check the rollout fits the minibatches and fill in `anneal_steps` from the run length."""
    try:
        per_update = module.gradient_steps_per_update(cfg, cfg.rollout_length * run.num_envs)
    except ValueError as err:
        raise CritixError(str(err)) from None
    if getattr(cfg, "anneal_learning_rate", False) and cfg.anneal_steps == 0:
        iterations = math.ceil(run.steps / (cfg.rollout_length * run.num_envs))
        cfg = dataclasses.replace(cfg, anneal_steps=iterations * per_update)
    return cfg


@dataclasses.dataclass
class Runner:
    """What a run needs to continue: device pytrees and normalisation statistics (saved) and host counters."""

    agent: Any  # agent State, leading axis S
    key: jax.Array  # [S, 2] acting keys
    obs_rms: RunningMeanStd
    ret_rms: RunningMeanStd  # running variance of the discounted return, for reward scaling
    vector_steps: int = 0
    updates: int = 0
    episodes: int = 0
    wall_seconds: float = 0.0
    train_seconds: float = 0.0  # wall time of rollouts + updates, first (compiling) iteration excluded
    train_steps: int = 0  # env steps per seed counted in train_seconds
    compile_seconds: float = 0.0

    def arrays(self) -> dict[str, Any]:
        def rms(r: RunningMeanStd) -> dict[str, np.ndarray]:
            return {"mean": r.mean, "var": r.var, "count": r.count}

        return {"agent": self.agent, "key": self.key, "obs_rms": rms(self.obs_rms), "ret_rms": rms(self.ret_rms)}

    def counters(self) -> dict[str, Any]:
        fields = ("vector_steps", "updates", "episodes", "wall_seconds", "train_seconds", "train_steps",
                  "compile_seconds")
        return {f: getattr(self, f) for f in fields}


class Session:
    """The compiled pieces and envs of one on-policy run (built from configs; holds no learned state)."""

    def __init__(self, algo: str, agent_cfg: Any, run: RunConfig) -> None:
        self.algo, self.run = algo, run
        self.module = agents.get(algo).module
        self.cfg = prepare_config(self.module, agent_cfg, run)
        self.num_seeds, self.num_envs = run.num_seeds, run.num_envs
        self.env = make_vector_env(run.env, run.num_seeds * run.num_envs, run.seed * 1000, run.vectorization)
        self.obs_space, self.act_space = self.env.single_observation_space, self.env.single_action_space
        try:
            self.module.check_spaces(self.obs_space, self.act_space)
        except CritixError:
            self.env.close()
            raise
        self.eval_env = make_vector_env(run.env, run.num_seeds * run.eval_episodes, run.seed * 1000 + 500_000)
        self.discrete = isinstance(self.act_space, gym.spaces.Discrete)
        self.obs_shape = self.obs_space.shape
        self.rollout_length = self.cfg.rollout_length
        self._build_functions()

    def _build_functions(self) -> None:
        cfg, module, normalize = self.cfg, self.module, self.run.normalize_obs

        def prepare(obs: jax.Array, mean: jax.Array, var: jax.Array) -> jax.Array:
            return normalize_obs(obs, mean, var) if normalize else obs

        def policy(state: Any, key: jax.Array, obs: jax.Array, mean: jax.Array, var: jax.Array) -> Any:
            key, act_key = jax.random.split(key)
            return module.act(cfg, state, prepare(obs, mean, var), act_key, False), key

        def greedy(state: Any, obs: jax.Array, mean: jax.Array, var: jax.Array) -> jax.Array:
            return module.act(cfg, state, prepare(obs, mean, var), jax.random.PRNGKey(0), True)

        def train_rollout(state: Any, rollout: Transition, mean: jax.Array, var: jax.Array) -> Any:
            rollout = rollout.replace(obs=prepare(rollout.obs, mean, var),
                                      next_obs=prepare(rollout.next_obs, mean, var))
            return module.update(cfg, state, rollout)

        self.policy = jax.jit(jax.vmap(policy))
        self.greedy = jax.jit(jax.vmap(greedy))
        self.train_rollout = jax.jit(jax.vmap(train_rollout), donate_argnums=(0,))

    def example_rollout(self) -> Transition:
        """A zero rollout [T, N, ...] of this env: the shapes and dtypes `update` trains on."""
        T, N = self.rollout_length, self.num_envs
        action = np.zeros((T, N), np.int32) if self.discrete else np.zeros((T, N, *self.act_space.shape), np.float32)
        obs = np.zeros((T, N, *self.obs_shape), np.float32)
        flags = np.zeros((T, N), bool)
        return Transition(obs, action, np.zeros((T, N), np.float32), obs, flags, flags)

    def init_runner(self) -> Runner:
        agent_key, loop_key = jax.random.split(jax.random.PRNGKey(self.run.seed))
        obs_space, act_space, cfg, module = self.obs_space, self.act_space, self.cfg, self.module
        agent = jax.jit(jax.vmap(lambda k: module.init(cfg, k, obs_space, act_space)))(
            jax.random.split(agent_key, self.num_seeds))
        return Runner(agent, jax.random.split(loop_key, self.num_seeds),
                      RunningMeanStd.create(self.num_seeds, self.obs_shape), RunningMeanStd.create(self.num_seeds, ()))

    def restore_runner(self, ckpt: Path) -> Runner:
        template = self.init_runner()
        arrays, meta = checkpoint.load(ckpt, template.arrays())

        def rms(d: dict[str, np.ndarray]) -> RunningMeanStd:
            return RunningMeanStd(d["mean"], d["var"], d["count"])

        runner = Runner(jax.device_put(arrays["agent"]), jax.device_put(arrays["key"]), rms(arrays["obs_rms"]),
                        rms(arrays["ret_rms"]))
        for name, value in meta["counters"].items():
            setattr(runner, name, value)
        return runner

    def stats(self, runner: Runner) -> tuple[np.ndarray, np.ndarray]:
        return runner.obs_rms.mean.astype(np.float32), runner.obs_rms.var.astype(np.float32)

    def evaluate(self, runner: Runner, seed: int) -> np.ndarray:
        mean, var = self.stats(runner)

        def act(obs: np.ndarray) -> np.ndarray:
            return np.asarray(self.greedy(runner.agent, obs.astype(np.float32), mean, var))

        return evaluate(self.eval_env, act, self.num_seeds, seed)[0]

    def metric_names(self) -> list[str]:
        cfg, module, obs_space, act_space = self.cfg, self.module, self.obs_space, self.act_space
        agent = jax.eval_shape(lambda: module.init(cfg, jax.random.PRNGKey(0), obs_space, act_space))
        _, metrics = jax.eval_shape(lambda s, r: module.update(cfg, s, r), agent, self.example_rollout())
        return sorted(metrics) + list(LOOP_METRICS)

    def close(self) -> None:
        self.env.close()
        self.eval_env.close()


def train(algo: str, agent_cfg: Any, run: RunConfig, resume: Path | None = None) -> dict[str, Any]:
    """Train (or resume) an on-policy run; returns the summary that is also written to summary.json."""
    session = Session(algo, agent_cfg, run)
    try:
        return _train(session, resume)
    finally:
        session.close()


def _train(session: Session, resume: Path | None) -> dict[str, Any]:
    algo, cfg, run = session.algo, session.cfg, session.run
    S, N, T = session.num_seeds, session.num_envs, session.rollout_length
    run_dir = Path(resume) if resume else Path(run.run_dir) if run.run_dir else default_run_dir(algo, run.env)
    ckpt_dir = run_dir / "checkpoints"
    run_dir.mkdir(parents=True, exist_ok=True)

    runner = None
    if resume is not None:
        last = checkpoint.latest(ckpt_dir)
        if last is not None:
            runner = session.restore_runner(last)
    if runner is None:
        runner = session.init_runner()
        checkpoint.atomic_write_json(run_dir / "config.json", config_to_json(algo, cfg, run))

    logger = MetricsLogger(run_dir, S, session.metric_names(), run.tensorboard)
    logger.truncate_after(runner.vector_steps * N)
    total_vector_steps = math.ceil(run.steps / (T * N)) * T  # whole rollouts
    total_steps = total_vector_steps * N
    eval_every = run.eval_every or total_steps
    ckpt_every = run.checkpoint_every or eval_every

    obs, _ = session.env.reset(seed=run.seed * 1000 + runner.vector_steps)
    obs = obs.astype(np.float32)
    episode_return = np.zeros(S * N)
    discounted_return = np.zeros(S * N)  # for reward scaling
    recent_returns: list[list[float]] = [[] for _ in range(S)]
    last_eval: np.ndarray | None = None
    final_returns: np.ndarray | None = None
    train_metrics: dict[str, Any] = {}
    start = time.perf_counter() - runner.wall_seconds
    action_shape = () if session.discrete else session.act_space.shape
    stage_obs = np.zeros((T, S * N, *session.obs_shape), np.float32)
    stage_next = np.zeros_like(stage_obs)
    stage_act = np.zeros((T, S * N, *action_shape), np.int32 if session.discrete else np.float32)
    stage_rew = np.zeros((T, S * N), np.float32)
    stage_term = np.zeros((T, S * N), bool)
    stage_trunc = np.zeros((T, S * N), bool)
    low, high = (None, None) if session.discrete else (session.act_space.low, session.act_space.high)

    progress = Progress(total_steps, f"{algo} {run.env} x{S} seeds", enabled=run.progress)
    progress.start(runner.vector_steps * N)
    try:
        while runner.vector_steps < total_vector_steps:
            iteration_start = time.perf_counter()
            mean, var = session.stats(runner)
            for t in range(T):
                action, runner.key = session.policy(runner.agent, runner.key, obs.reshape(S, N, -1), mean, var)
                action = np.asarray(action).reshape(S * N, *action_shape)
                next_obs, reward, terminated, truncated, info = session.env.step(
                    action if session.discrete else scale_action(action, low, high)
                )
                next_obs = next_obs.astype(np.float32)
                done = terminated | truncated
                stage_obs[t], stage_act[t] = obs, action
                stage_next[t] = final_observation(next_obs, done, info)
                stage_term[t], stage_trunc[t] = terminated, truncated
                episode_return += reward
                if run.normalize_reward:  # SB3 VecNormalize: scale by the std of the running discounted return
                    discounted_return = discounted_return * cfg.gamma + reward
                    runner.ret_rms.update(discounted_return.reshape(S, N))
                    scale = np.sqrt(np.repeat(runner.ret_rms.var, N) + 1e-8)
                    reward = np.clip(reward / scale, -REWARD_CLIP, REWARD_CLIP)
                    discounted_return[done] = 0.0
                stage_rew[t] = reward
                for i in np.flatnonzero(done):
                    recent_returns[i // N].append(float(episode_return[i]))
                    runner.episodes += 1
                episode_return[done] = 0.0
                obs = next_obs
                runner.vector_steps += 1

            def per_seed(x: np.ndarray) -> np.ndarray:  # [T, S*N, ...] -> [S, T, N, ...]
                return x.reshape(T, S, N, *x.shape[2:]).swapaxes(0, 1)

            rollout = Transition(per_seed(stage_obs), per_seed(stage_act), per_seed(stage_rew),
                                 per_seed(stage_next), per_seed(stage_term), per_seed(stage_trunc))
            runner.agent, train_metrics = session.train_rollout(runner.agent, rollout, mean, var)
            jax.block_until_ready(runner.agent)  # so the iteration's time includes its update
            if run.normalize_obs:
                runner.obs_rms.update(rollout.obs.reshape(S, T * N, *session.obs_shape))
            if runner.updates == 0:
                runner.compile_seconds += time.perf_counter() - iteration_start
            else:
                runner.train_seconds += time.perf_counter() - iteration_start
                runner.train_steps += T * N
            runner.updates += 1

            steps_now = runner.vector_steps * N
            prev = steps_now - T * N
            done_run = runner.vector_steps >= total_vector_steps
            if steps_now // run.log_every > prev // run.log_every or done_run:
                _log_train(logger, runner, train_metrics, recent_returns, steps_now, start)  # type: ignore[arg-type]
            if steps_now // eval_every > prev // eval_every or done_run:
                returns = session.evaluate(runner, seed=run.seed * 1000 + 900_000 + steps_now)
                last_eval = returns.mean(axis=1)
                if done_run:
                    final_returns = returns
                logger.log(steps_now, time.perf_counter() - start, {"eval/return": last_eval,
                                                                    "eval/return_std": returns.std(axis=1)})
            if steps_now // ckpt_every > prev // ckpt_every or done_run:
                runner.wall_seconds = time.perf_counter() - start
                logger.flush()
                checkpoint.save(ckpt_dir, steps_now, runner.arrays(),
                                {"counters": runner.counters(), "algo": algo, "env": run.env},
                                keep=run.keep_checkpoints)
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
                           runner.train_steps, runner.train_seconds, runner.compile_seconds,
                           runner.updates * session.module.gradient_steps_per_update(cfg, T * N), run_dir)
    checkpoint.atomic_write_json(run_dir / "summary.json", summary)
    return summary


def make_summary(
    algo: str, run: RunConfig, final_returns: np.ndarray, steps: int, wall_seconds: float, train_steps: int,
    train_seconds: float, compile_seconds: float, gradient_steps: int, run_dir: Path, mode: str = "host",
) -> dict[str, Any]:
    """summary.json, with the keys of the off-policy loop's summary (final_returns: [S, episodes])."""
    per_seed_final = final_returns.mean(axis=1)
    return {
        "algo": algo,
        "env": run.env,
        "mode": mode,
        "steps": steps,
        "num_seeds": run.num_seeds,
        "num_envs": run.num_envs,
        "final_return": [float(x) for x in per_seed_final],
        "final_return_mean": float(per_seed_final.mean()),
        "final_return_std": float(per_seed_final.std()),
        "eval_episodes": run.eval_episodes,
        "wall_seconds": wall_seconds,
        "steps_per_second": train_steps / train_seconds if train_seconds else None,
        "steps_per_second_note": "env steps per seed per second, first (compiling) iteration and eval excluded",
        "compile_seconds": compile_seconds,
        "train_seconds": train_seconds,
        "train_seconds_note": "wall time of env steps + updates after the first (compiling) iteration or chunk",
        "gradient_steps": gradient_steps,
        "critix_version": __version__,
        "jax_version": jax.__version__,
        "device": str(jax.devices()[0]),
        "run_dir": str(run_dir),
    }
