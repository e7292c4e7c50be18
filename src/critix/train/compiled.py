"""Fully compiled training on JAX-native envs: env steps and updates in one `lax.scan`, seeds as a vmap axis.

The run is `jit(vmap(chunk))` over S seeds, where a chunk is a `lax.scan` over iterations:
- on-policy agents (PPO, A2C): an iteration collects a rollout of `rollout_length` steps from N envs (an inner
  scan) and calls the agent's `update` on it, exactly as the host loop `critix.train.onpolicy` does;
- off-policy agents (SAC, TD3, DDPG, DQN ...): an iteration is k steps of N envs, written into a device replay
  buffer inside the carry, then `utd_ratio * k * N` gradient steps (`update_many` on sampled batches), k the
  fewest steps that make that count whole (1 for SAC's utd_ratio 1; 4 for DQN's 0.25 at 1 env); the first
  iterations up to learning_starts take uniform random actions and make no updates.
The host loops over chunks, so the progress bar, metrics.csv, TensorBoard, learning curve, evaluation,
checkpoints and summary.json are those of the host modes. The agent modules are the same ones the host loops use.

Observation normalisation (`--normalize-obs`) and, for on-policy agents, reward scaling (`--normalize-reward`)
follow the host loops: running statistics per seed in the carry, frozen over an iteration's acting and update and
updated from its raw observations afterwards; the buffer and rollouts hold raw observations.

A hyperparameter grid (`--grid`, `critix.train.grid`) adds members to the vmapped axis: G grid points x S seeds,
each point's values entering the program as arrays. Each point then gets its own run folder under `grid/`.

Keys mirror the host on-policy loop (agent keys and acting keys split from PRNGKey(seed) the same way; env keys
come from a separate stream), so a deterministic env gives the same run in both modes.
"""

from __future__ import annotations

import math
from functools import partial
from pathlib import Path
from typing import Any

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from critix import agents
from critix.agents import contract
from critix.data import replay
from critix.envs.gym import REWARD_CLIP, Moments, normalize_obs
from critix.envs.jax_envs import JaxEnv, make_jax_env
from critix.train import checkpoint, guards
from critix.train.config import RunConfig, plan_of, resolve
from critix.train.grid import (Grid, combine_points, grid_outputs, member_config, parse_grid,
                               write_point_configs)
from critix.train.run import Chunk, Output, execute
from critix.types import CritixError, Rollout, Transition




class Carry(struct.PyTreeNode):
    """Everything a member's run carries from one iteration to the next (leading axis G x S outside the vmap)."""

    agent: Any
    env_state: Any  # [N, ...]
    obs: jax.Array  # [N, O]
    key: jax.Array  # acting key (the host loop's loop key)
    env_key: jax.Array
    episode_return: jax.Array  # [N]
    buffer: Any  # replay.ReplayBuffer for off-policy agents, else an empty tuple
    env_steps: jax.Array  # env steps per seed so far (summed over the seed's envs)
    obs_rms: Moments  # running observation statistics (used with --normalize-obs)
    ret_rms: Moments  # running variance of the discounted return (on-policy --normalize-reward)
    discounted_return: jax.Array  # [N]
    hparams: dict[str, jax.Array]  # the member's grid values (empty without --grid)


class Compiled:
    """Stepper of a compiled run: the JAX env, the agent and the compiled chunk; its state is the members' carry."""

    mode = "compiled"
    unit = "env step"

    def __init__(self, algo: str, agent_cfg: Any, run: RunConfig) -> None:
        run = resolve(algo, run)  # loop settings left at None: the algorithm's defaults
        self.algo, self.run, self.env_id = algo, run, run.env
        self.module = agents.get(algo).module
        self.on_policy = contract.kind(self.module) == "on-policy"
        if run.normalize_reward and not self.on_policy:
            raise CritixError(f"--normalize-reward scales on-policy returns (PPO, A2C); {algo} is off-policy: "
                              "drop the flag")
        self.env: JaxEnv = make_jax_env(run.env)
        self.obs_space, self.act_space = self.env.observation_space, self.env.action_space
        self.module.check_spaces(self.obs_space, self.act_space)
        self.num_seeds, self.num_envs = run.num_seeds, run.num_envs
        self.obs_shape = tuple(self.obs_space.shape)
        self.discrete = isinstance(self.act_space, gym.spaces.Discrete)
        path = None if self.on_policy else contract.data_path(self.module, agent_cfg)
        if path is not None and path.name != "uniform replay":
            raise CritixError(f"compiled mode samples single transitions uniformly; {algo} with {path.name} "
                              "(--n-step, --prioritized) must run in host mode (use the Gymnasium env id)")
        self.cfg, self.plan = agent_cfg, plan_of(run)
        contract.check_plan(self.module, agent_cfg, self.plan)
        self.grid: Grid = parse_grid(run.grid, algo, self.cfg)
        self.num_members = self.grid.size * self.num_seeds
        if self.on_policy:
            self.steps_per_iteration = self.plan.rollout_length * run.num_envs
            self.per_update = self.module.gradient_steps_per_update(self.cfg, self.steps_per_iteration)
        else:
            # One iteration = `env_steps_per_iteration` steps of the N envs, then utd_ratio x (its env steps)
            # gradient steps: with utd_ratio x N < 1 (DQN's 0.25 at 1 env), several env steps share one update
            # burst, as SB3's train_freq does; the burst length is the shortest that makes the count whole.
            self.env_steps_per_iteration = _whole_multiple(self.plan.utd_ratio * run.num_envs)
            self.steps_per_iteration = self.env_steps_per_iteration * run.num_envs
            self.updates_per_iteration = round(self.plan.utd_ratio * self.steps_per_iteration)
            self.capacity = min(self.plan.buffer_size, math.ceil(run.steps / run.num_envs) * run.num_envs)
            if self.capacity < agent_cfg.batch_size:
                raise CritixError(f"the replay buffer holds {self.capacity} transitions, fewer than batch_size="
                                  f"{agent_cfg.batch_size}; raise --steps or lower --batch-size")
        # Off-policy warm-up: iterations with uniform random actions and no updates (env steps < learning_starts).
        self.warmup_iterations = 0 if self.on_policy else math.ceil(self.plan.learning_starts / self.steps_per_iteration)
        self.total_iterations = math.ceil(run.steps / self.steps_per_iteration)
        self.total_steps = self.total_iterations * self.steps_per_iteration
        chunk_steps = run.chunk_size or run.log_every or self.steps_per_iteration
        self.chunk_iterations = max(1, min(self.total_iterations, math.ceil(chunk_steps / self.steps_per_iteration)))
        members = f"x{self.num_seeds} seeds" if self.grid.size == 1 else f"x{self.grid.size} grid points x{self.num_seeds} seeds"
        self.description = f"{algo} {run.env} {members} (compiled)"
        self.compiled: set[tuple[int, bool]] = set()
        self._build_functions()

    # ---- one member (a seed at a grid point) ---------------------------------------------------------
    def _cfg(self, carry: Carry) -> Any:
        """The agent config this member trains with: its grid values (arrays) in place of the defaults."""
        return member_config(self.cfg, carry.hparams)

    def _prepare(self, obs: jax.Array, rms: Moments) -> jax.Array:
        """Observations as the agent sees them (normalised with `rms` under --normalize-obs)."""
        return normalize_obs(obs, rms.mean, rms.var) if self.run.normalize_obs else obs

    def _prepare_batch(self, batch: Transition, rms: Moments) -> Transition:
        return batch.replace(obs=self._prepare(batch.obs, rms), next_obs=self._prepare(batch.next_obs, rms))

    def _act_random(self, key: jax.Array) -> jax.Array:
        """Uniform warm-up actions for the N envs: indices (Discrete) or points of [-1, 1]^A (Box)."""
        if self.discrete:
            return jax.random.randint(key, (self.num_envs,), 0, self.act_space.n)
        shape = (self.num_envs, *self.act_space.shape)
        return jax.random.uniform(key, shape, jnp.float32, -1.0, 1.0)

    def _env_step(self, carry: Carry, action: jax.Array) -> tuple[Carry, Transition, jax.Array, jax.Array]:
        """Step the seed's N envs; returns the carry, the transitions [N] and (finished return sum, count)."""
        env_key, step_key = jax.random.split(carry.env_key)
        obs, env_state, reward, terminated, truncated, final_obs = jax.vmap(self.env.step)(
            jax.random.split(step_key, self.num_envs), carry.env_state, action)
        transition = Transition(carry.obs, action, reward, final_obs, terminated, truncated)
        episode_return = carry.episode_return + reward
        done = jnp.logical_or(terminated, truncated)
        finished = (jnp.sum(jnp.where(done, episode_return, 0.0)), jnp.sum(done))
        carry = carry.replace(env_state=env_state, obs=obs, env_key=env_key,
                              episode_return=jnp.where(done, 0.0, episode_return),
                              env_steps=carry.env_steps + self.num_envs)
        return carry, transition, *finished

    def _init_seed(self, agent_key: jax.Array, loop_key: jax.Array, env_key: jax.Array,
                   hparams: dict[str, jax.Array]) -> Carry:
        module = self.module
        agent = module.init(member_config(self.cfg, hparams), agent_key, self.obs_space, self.act_space, self.plan)
        env_key, reset_key = jax.random.split(env_key)
        obs, env_state = jax.vmap(self.env.reset)(jax.random.split(reset_key, self.num_envs))
        buffer: Any = ()
        if not self.on_policy:
            action = jnp.zeros((), jnp.int32) if self.discrete else jnp.zeros(self.act_space.shape)
            example = Transition(jnp.zeros(self.obs_space.shape), action, jnp.zeros(()),
                                 jnp.zeros(self.obs_space.shape), jnp.zeros((), bool), jnp.zeros((), bool))
            buffer = replay.init(self.capacity, example)
        return Carry(agent, env_state, obs, loop_key, env_key, jnp.zeros(self.num_envs), buffer,
                     jnp.zeros((), jnp.int32), Moments.create(self.obs_shape), Moments.create(()),
                     jnp.zeros(self.num_envs), hparams)

    def _scale_reward(self, cfg: Any, carry: Carry, transition: Transition) -> tuple[Carry, Transition]:
        """SB3 VecNormalize's reward scaling, as the host on-policy loop does it: divide by the running std of the
        discounted return, clip to [-10, 10]; the discounted return restarts at each episode's end."""
        discounted = carry.discounted_return * cfg.gamma + transition.reward
        ret_rms = carry.ret_rms.update(discounted)
        reward = jnp.clip(transition.reward / jnp.sqrt(ret_rms.var + 1e-8), -REWARD_CLIP, REWARD_CLIP)
        done = jnp.logical_or(transition.terminated, transition.truncated)
        carry = carry.replace(ret_rms=ret_rms, discounted_return=jnp.where(done, 0.0, discounted))
        return carry, transition.replace(reward=reward)

    def _iteration_on_policy(self, carry: Carry, _: None) -> tuple[Carry, dict]:
        cfg, module = self._cfg(carry), self.module
        rms = carry.obs_rms  # frozen over the rollout and its update, as in the host loop

        def step(carry: Carry, _: None) -> tuple[Carry, tuple]:
            key, act_key = jax.random.split(carry.key)
            action = module.act(cfg, carry.agent, self._prepare(carry.obs, rms), act_key, False)
            carry, transition, ret_sum, count = self._env_step(carry.replace(key=key), action)
            if self.run.normalize_reward:
                carry, transition = self._scale_reward(cfg, carry, transition)
            return carry, (transition, ret_sum, count)

        carry, (rollout, ret_sum, count) = jax.lax.scan(step, carry, None, length=self.plan.rollout_length)
        agent, metrics = module.update(cfg, carry.agent, Rollout(self._prepare_batch(rollout, rms)))
        bad_items = (~guards.finite_items(jax.tree.map(lambda x: x.reshape(-1, *x.shape[2:]), rollout))).sum()
        bad_update = ~(guards.metrics_ok(metrics) & guards.all_finite(agent))
        if self.run.on_nan == "skip":  # keep the agent as it was before a bad rollout or a non-finite update
            keep = (bad_items > 0) | bad_update
            agent = jax.tree.map(lambda new, old: jnp.where(keep, old, new), agent, carry.agent)
        if self.run.normalize_obs:
            carry = carry.replace(obs_rms=rms.update(rollout.obs.reshape(-1, *self.obs_shape)))
        metrics = {**metrics, "episode/return_sum": ret_sum.sum(), "episode/count": count.sum(),
                   "guard/transitions": bad_items, "guard/updates": bad_update.astype(jnp.int32) * self.per_update}
        return carry.replace(agent=agent), metrics

    def _iteration_off_policy(self, learning: bool, carry: Carry, _: None) -> tuple[Carry, dict]:
        """`env_steps_per_iteration` steps of N envs into the replay buffer; with `learning`, policy actions and
        then `updates_per_iteration` gradient steps, else uniform random actions (warm-up). `learning` is static:
        the host runs warm-up chunks, then learning chunks, so no seed-batched `lax.cond` computes both branches."""
        cfg, module = self._cfg(carry), self.module
        rms = carry.obs_rms  # frozen over the iteration's steps and updates, as in the host loop

        def env_step(carry: Carry, _: None) -> tuple[Carry, tuple[jax.Array, jax.Array, jax.Array]]:
            key, act_key = jax.random.split(carry.key)
            if learning:
                action = module.act(cfg, carry.agent, self._prepare(carry.obs, rms), act_key, False)
            else:
                action = self._act_random(act_key)
            carry, transition, ret_sum, count = self._env_step(carry.replace(key=key), action)
            valid = guards.finite_items(transition)
            buffer = replay.add_masked(carry.buffer, transition, valid) if skip else replay.add(carry.buffer, transition)
            return carry.replace(buffer=buffer), (ret_sum, count, transition.obs, (~valid).sum())

        skip = self.run.on_nan == "skip"
        carry, (ret_sum, count, obs, bad_items) = jax.lax.scan(env_step, carry, None,
                                                               length=self.env_steps_per_iteration)
        if self.run.normalize_obs:
            carry = carry.replace(obs_rms=rms.update(obs.reshape(-1, *self.obs_shape)))
        metrics = {"episode/return_sum": ret_sum.sum(), "episode/count": count.sum(),
                   "guard/transitions": bad_items.sum(), "guard/updates": jnp.zeros((), jnp.int32)}
        if learning:
            key, sample_key = jax.random.split(carry.key)
            batches = self._prepare_batch(
                replay.sample_many(carry.buffer, sample_key, self.updates_per_iteration, self.cfg.batch_size), rms)
            if skip:
                agent, update_metrics, skipped = guards.skip_nonfinite_updates(partial(module.update, cfg),
                                                                               carry.agent, batches)
                metrics["guard/updates"] = skipped.sum()
            else:
                agent, update_metrics = module.update_many(cfg, carry.agent, batches)
                bad = guards.nonfinite_steps(update_metrics)
                metrics["guard/updates"] = jnp.where(guards.all_finite(agent), bad, jnp.maximum(bad, 1))
            carry = carry.replace(agent=agent, key=key)
            metrics.update(jax.tree.map(jnp.nanmean, update_metrics))
        return carry, metrics

    def _chunk(self, carry: Carry, length: int, learning: bool) -> tuple[Carry, dict]:
        if self.on_policy:
            iteration = self._iteration_on_policy
        else:
            iteration = partial(self._iteration_off_policy, learning)
        carry, metrics = jax.lax.scan(iteration, carry, None, length=length)
        ret_sum, count = metrics.pop("episode/return_sum"), metrics.pop("episode/count")
        guard = {name: metrics.pop(name).sum() for name in ("guard/transitions", "guard/updates")}
        summary = jax.tree.map(jnp.nanmean, metrics)
        summary["train/episode_return"] = jnp.where(count.sum() > 0, ret_sum.sum() / jnp.maximum(count.sum(), 1),
                                                    jnp.nan)
        summary["episode/count"] = count.sum()
        return carry, {**summary, **guard}

    def _evaluate_seed(self, carry: Carry, key: jax.Array) -> jax.Array:
        """Deterministic returns of `eval_episodes` episodes (one per eval env): [M]."""
        agent, cfg, rms = carry.agent, self._cfg(carry), carry.obs_rms
        M = self.run.eval_episodes
        key, reset_key = jax.random.split(key)
        obs, env_state = jax.vmap(self.env.reset)(jax.random.split(reset_key, M))

        def step(c: tuple, _: None) -> tuple[tuple, None]:
            obs, env_state, returns, alive, key = c
            action = self.module.act(cfg, agent, self._prepare(obs, rms), jax.random.PRNGKey(0), True)
            key, step_key = jax.random.split(key)
            obs, env_state, reward, terminated, truncated, _ = jax.vmap(self.env.step)(
                jax.random.split(step_key, M), env_state, action)
            returns = returns + jnp.where(alive, reward, 0.0)
            alive = jnp.logical_and(alive, jnp.logical_not(jnp.logical_or(terminated, truncated)))
            return (obs, env_state, returns, alive, key), None

        init = (obs, env_state, jnp.zeros(M), jnp.ones(M, bool), key)
        (_, _, returns, _, _), _ = jax.lax.scan(step, init, None, length=self.env.max_episode_steps)
        return returns

    def _build_functions(self) -> None:
        self.chunk = jax.jit(jax.vmap(self._chunk, in_axes=(0, None, None)), static_argnums=(1, 2),
                             donate_argnums=0)
        self.evaluate_seeds = jax.jit(jax.vmap(self._evaluate_seed, in_axes=(0, None)))
        self.init_seeds = jax.jit(jax.vmap(self._init_seed))

    def _example_carry(self, hparams: dict[str, Any]) -> Any:
        keys = (jax.random.PRNGKey(0), jax.random.PRNGKey(1), jax.random.PRNGKey(2))
        return jax.eval_shape(lambda h: self._init_seed(*keys, h), hparams)

    # ---- runs ----------------------------------------------------------------------------------------
    def fresh(self) -> Any:
        """Fresh members: seed s of every grid point gets the same agent, acting and env keys."""
        root = jax.random.PRNGKey(self.run.seed)
        agent_key, loop_key = jax.random.split(root)
        S, G = self.num_seeds, self.grid.size
        env_keys = jax.random.split(jax.random.fold_in(root, 1), S)

        def tiled(keys: jax.Array) -> jax.Array:  # [S, 2] -> [G * S, 2]: member g * S + s gets seed s's key
            return jnp.tile(keys, (G, 1))

        hparams = {name: jnp.asarray(v) for name, v in self.grid.member_values(S).items()}
        return self.init_seeds(tiled(jax.random.split(agent_key, S)), tiled(jax.random.split(loop_key, S)),
                               tiled(env_keys), hparams)

    def start(self, restored: tuple[Path, dict[str, Any]] | None) -> int:
        self.carry, self.iterations, self.episodes, self.metrics = self.fresh(), 0, 0, {}
        if restored is not None:
            arrays, meta = checkpoint.load(restored[0], {"carry": self.carry})
            self.carry = jax.device_put(arrays["carry"])
            self.iterations, self.episodes = int(meta["counters"]["iterations"]), int(meta["counters"]["episodes"])
        return self.iterations * self.steps_per_iteration

    @property
    def agent(self) -> Any:
        """The members' agent states [G * S, ...]."""
        return self.carry.agent

    def advance(self) -> Chunk:
        learning = self.iterations >= self.warmup_iterations
        end = self.total_iterations if learning else self.warmup_iterations
        length = min(self.chunk_iterations, end - self.iterations)
        self.carry, metrics = self.chunk(self.carry, length, learning)
        metrics = jax.device_get(metrics)  # waits for the chunk
        compiling = (length, learning) not in self.compiled  # the first call of each chunk kind compiles it
        self.compiled.add((length, learning))
        self.iterations += length
        self.episodes += int(np.sum(metrics.pop("episode/count")))
        bad_items, bad_updates = int(np.sum(metrics.pop("guard/transitions"))), int(np.sum(metrics.pop("guard/updates")))
        self.metrics = metrics
        # Warm-up chunks (random actions, no updates) are not steady state.
        return Chunk(self.iterations * self.steps_per_iteration, compiling, learning, bad_items, bad_updates)

    def train_values(self) -> dict[str, np.ndarray]:
        return {name: np.asarray(v, np.float64) for name, v in self.metrics.items()}

    def evaluate(self, seed: int) -> np.ndarray:
        """Deterministic returns [G * S, eval_episodes]."""
        return np.asarray(self.evaluate_seeds(self.carry, jax.random.PRNGKey(seed)))

    def state(self) -> tuple[Any, dict[str, Any]]:
        return {"carry": self.carry}, {"counters": {"iterations": self.iterations, "episodes": self.episodes},
                                       "env": self.run.env}

    def gradient_steps(self) -> int:
        if self.on_policy:
            return self.iterations * self.per_update
        return max(0, self.iterations - self.warmup_iterations) * self.updates_per_iteration

    def member_labels(self) -> list[str] | None:
        """'<grid point> seed <s>' per member with a grid, else None."""
        if not self.grid.fields:
            return None
        return [f"{self.grid.label(m // self.num_seeds)} seed {m % self.num_seeds}" for m in range(self.num_members)]

    def metric_names(self) -> list[str]:
        hparams = {name: jnp.zeros((), jnp.float32) for name in self.grid.fields}
        shapes = jax.eval_shape(lambda c: self._chunk(c, 1, True), self._example_carry(hparams))[1]
        return sorted(n for n in shapes if n not in ("episode/count", "guard/transitions", "guard/updates"))

    # ---- grid points: a run folder each (critix.train.grid) ------------------------------------------------
    def outputs(self, run_dir: Path) -> list[Output]:
        return grid_outputs(self.grid, self.num_seeds, run_dir)

    def write_output_configs(self, outputs: list[Output]) -> None:
        write_point_configs(self.grid, self.algo, self.cfg, self.run, outputs)

    def combine(self, summary: dict[str, Any], points: list[dict[str, Any]], run_dir: Path) -> dict[str, Any]:
        return combine_points(summary, points, run_dir, f"{self.algo} on {self.run.env}", self.num_seeds)

    def close(self) -> None:
        pass


def _whole_multiple(updates_per_env_step: float, longest: int = 1000) -> int:
    """The fewest env steps k whose update count k x `updates_per_env_step` is a whole number >= 1."""
    for k in range(1, longest + 1):
        count = updates_per_env_step * k
        if count >= 1 - 1e-9 and abs(count - round(count)) < 1e-9:
            return k
    raise CritixError(f"utd_ratio x num_envs = {updates_per_env_step} gives no whole number of gradient steps "
                      f"within {longest} env steps; choose a simpler ratio such as 0.25 or 0.5")


def train(algo: str, agent_cfg: Any, run: RunConfig, resume: Path | None = None) -> dict[str, Any]:
    """Train (or resume) a compiled run on a JAX env; returns the summary also written to summary.json."""
    return execute(algo, agent_cfg, run, lambda: Compiled(algo, agent_cfg, run), resume)
