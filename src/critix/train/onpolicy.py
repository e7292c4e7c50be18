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

import jax
import numpy as np

from critix import agents
from critix.envs.gym import REWARD_CLIP, RunningMeanStd, final_observation, scale_action
from critix.train import checkpoint, runlock
from critix.train.logging import MetricsLogger, plot_learning_curve
from critix.train.online import (LOOP_METRICS, RunConfig, _log_train, config_to_json, default_run_dir,
                                 run_folder)
from critix.train.host import HostSession, make_summary, restore_counters
from critix.train.progress import Progress
from critix.train.resume import LoopState, restore_loop
from critix.types import CritixError, Transition



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


class Session(HostSession):
    """The compiled pieces and envs of one on-policy run (built from configs; holds no learned state)."""

    def __init__(self, algo: str, agent_cfg: Any, run: RunConfig) -> None:
        super().__init__(algo, prepare_config(agents.get(algo).module, agent_cfg, run), run)
        self.rollout_length = self.cfg.rollout_length
        cfg, module, prepare = self.cfg, self.module, self.prepare

        def train_rollout(state: Any, rollout: Transition, mean: jax.Array, var: jax.Array) -> Any:
            rollout = rollout.replace(obs=prepare(rollout.obs, mean, var),
                                      next_obs=prepare(rollout.next_obs, mean, var))
            return module.update(cfg, state, rollout)

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
        return restore_counters(runner, meta)

    def metric_names(self) -> list[str]:
        cfg, module, obs_space, act_space = self.cfg, self.module, self.obs_space, self.act_space
        agent = jax.eval_shape(lambda: module.init(cfg, jax.random.PRNGKey(0), obs_space, act_space))
        _, metrics = jax.eval_shape(lambda s, r: module.update(cfg, s, r), agent, self.example_rollout())
        return sorted(metrics) + list(LOOP_METRICS)


def train(algo: str, agent_cfg: Any, run: RunConfig, resume: Path | None = None) -> dict[str, Any]:
    """Train (or resume) an on-policy run; returns the summary that is also written to summary.json."""
    session = Session(algo, agent_cfg, run)
    try:
        with runlock.claim(run_folder(resume, run.run_dir, default_run_dir(algo, run.env))) as run_dir:
            return _train(session, run_dir, resume)
    finally:
        session.close()


def _train(session: Session, run_dir: Path, resume: Path | None) -> dict[str, Any]:
    algo, cfg, run = session.algo, session.cfg, session.run
    S, N, T = session.num_seeds, session.num_envs, session.rollout_length
    ckpt_dir = run_dir / "checkpoints"

    runner, meta = None, None
    if resume is not None:
        found = checkpoint.latest_valid(ckpt_dir)  # the newest checkpoint that verifies (warns about bad ones)
        if found is not None:
            last, meta = found
            runner = session.restore_runner(last)
    if runner is None:
        runner = session.init_runner()
        checkpoint.atomic_write_json(run_dir / "config.json", config_to_json(algo, cfg, run))

    # Rows and TensorBoard events after the checkpoint were written by the killed process: drop them.
    purge_step = runner.vector_steps * N + 1 if resume is not None else None
    logger = MetricsLogger(run_dir, S, session.metric_names(), run.tensorboard, purge_step=purge_step)
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
    if meta is not None:  # continue mid-episode: envs, observations and accumulators as they were
        loop = restore_loop(meta.get("loop"), session.env, S, session.obs_shape)
        if loop is not None:
            obs, episode_return, recent_returns, train_metrics = (
                loop.obs, loop.episode_return, loop.recent_returns, loop.train_metrics)
            if loop.discounted_return is not None:
                discounted_return = loop.discounted_return
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
                returns = session.evaluate_and_log(runner, logger, steps_now, start)
                last_eval = returns.mean(axis=1)
                if done_run:
                    final_returns = returns
            if steps_now // ckpt_every > prev // ckpt_every or done_run:
                loop_state = LoopState(obs, episode_return, recent_returns,
                                       {k: np.asarray(v) for k, v in train_metrics.items()}, discounted_return)
                session.save_checkpoint(ckpt_dir, steps_now, runner, logger, start, loop_state)
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
