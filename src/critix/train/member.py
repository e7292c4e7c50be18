"""One member of a compiled run (a seed at a grid point) as a pure JAX program: init, a chunk of iterations, eval.

The compiled stepper (`critix.train.compiled`) runs `jit(vmap(...))` of these functions over its members; nothing
here touches the host. An iteration is:
- on-policy agents (PPO, A2C): a rollout of `rollout_length` steps from N envs (an inner scan), then the agent's
  `update` on it, exactly as the host stepper `critix.train.onpolicy` does;
- off-policy agents (SAC, TD3, DDPG, DQN ...): k steps of N envs written into a device replay buffer in the carry,
  then `utd_ratio * k * N` gradient steps on sampled batches, k the fewest steps that make that count whole (1 for
  SAC's utd_ratio 1; 4 for DQN's 0.25 at 1 env). Warm-up iterations (before learning_starts) take uniform random
  actions and make no updates.

Observation normalisation and on-policy reward scaling follow the host steppers: running statistics in the carry,
frozen over an iteration's acting and update, updated from its raw observations afterwards; the buffer and the
rollouts hold raw observations. A member's grid values (`--grid`) enter as arrays in `Carry.hparams`.
"""

from __future__ import annotations

import dataclasses
import math
from functools import partial
from typing import Any

import gymnasium as gym
import jax
import jax.numpy as jnp
from flax import struct

from critix.agents import contract
from critix.data import replay
from critix.envs.gym import Moments, normalize_obs, scale_reward
from critix.envs.jax_envs import JaxEnv
from critix.train import guards
from critix.train.evaluate import evaluate_jax
from critix.train.grid import member_config
from critix.types import CritixError, Transition


class Carry(struct.PyTreeNode):
    """Everything a member carries from one iteration to the next (leading axis G x S outside the vmap)."""

    agent: Any
    env_state: Any  # [N, ...]
    obs: jax.Array  # [N, O]
    key: jax.Array  # update key (the host steppers' loop key): replay sampling
    acting_key: jax.Array  # the seed's acting key (`contract.acting_keys`): step t acts with step_key(acting_key, t)
    env_key: jax.Array
    episode_return: jax.Array  # [N]
    buffer: Any  # replay.ReplayBuffer for off-policy agents, else an empty tuple
    env_steps: jax.Array  # env steps so far (summed over the member's envs)
    obs_rms: Moments  # running observation statistics (used with --normalize-obs)
    ret_rms: Moments  # running variance of the discounted return (on-policy --normalize-reward)
    discounted_return: jax.Array  # [N]
    hparams: dict[str, jax.Array]  # the member's grid values (empty without --grid)


@dataclasses.dataclass(frozen=True, eq=False)
class Member:
    """The program of one member: the JAX env, the agent module and config, and the run's iteration sizes."""

    env: JaxEnv
    module: Any
    cfg: Any
    plan: contract.RunPlan
    steps: int
    normalize_obs: bool
    normalize_reward: bool
    skip_nonfinite: bool
    eval_episodes: int

    @property
    def on_policy(self) -> bool:
        return contract.kind(self.module) == "on-policy"

    @property
    def env_steps_per_iteration(self) -> int:
        """Steps of the N envs per iteration: a rollout, or the fewest steps whose update count is whole."""
        return self.plan.rollout_length if self.on_policy else _whole_multiple(self.plan.utd_ratio * self.plan.num_envs)

    @property
    def steps_per_iteration(self) -> int:
        return self.env_steps_per_iteration * self.plan.num_envs

    @property
    def updates_per_iteration(self) -> int:
        """Gradient steps an iteration makes once learning."""
        if self.on_policy:
            return self.module.gradient_steps_per_update(self.cfg, self.steps_per_iteration)
        return round(self.plan.utd_ratio * self.steps_per_iteration)

    @property
    def capacity(self) -> int:
        """Replay capacity: the buffer size, or the whole run where that is smaller."""
        N = self.plan.num_envs
        return min(self.plan.buffer_size, math.ceil(self.steps / N) * N)

    def prepare(self, obs: jax.Array, rms: Moments) -> jax.Array:
        """Observations as the agent sees them (normalised with `rms` under --normalize-obs)."""
        return normalize_obs(obs, rms.mean, rms.var) if self.normalize_obs else obs

    def prepare_batch(self, batch: Transition, rms: Moments) -> Transition:
        return batch.replace(obs=self.prepare(batch.obs, rms), next_obs=self.prepare(batch.next_obs, rms))

    def init(self, agent_key: jax.Array, loop_key: jax.Array, acting_key: jax.Array, env_key: jax.Array,
             hparams: dict[str, jax.Array]) -> Carry:
        env, N = self.env, self.plan.num_envs
        agent = self.module.init(member_config(self.cfg, hparams), agent_key, env.observation_space,
                                 env.action_space, self.plan)
        env_key, reset_key = jax.random.split(env_key)
        obs, env_state = jax.vmap(env.reset)(jax.random.split(reset_key, N))
        buffer: Any = () if self.on_policy else replay.init(self.capacity, _example(env))
        obs_shape = tuple(env.observation_space.shape)
        return Carry(agent, env_state, obs, loop_key, acting_key, env_key, jnp.zeros(N), buffer, jnp.zeros((), jnp.int32),
                     Moments.create(obs_shape), Moments.create(()), jnp.zeros(N), hparams)

    def env_step(self, carry: Carry, action: jax.Array) -> tuple[Carry, Transition, jax.Array, jax.Array]:
        """Step the member's N envs; returns the carry, the transitions [N] and (finished return sum, count)."""
        N = self.plan.num_envs
        env_key, step_key = jax.random.split(carry.env_key)
        obs, env_state, reward, terminated, truncated, final_obs = jax.vmap(self.env.step)(
            jax.random.split(step_key, N), carry.env_state, action)
        transition = Transition(carry.obs, action, reward, final_obs, terminated, truncated)
        episode_return = carry.episode_return + reward
        done = jnp.logical_or(terminated, truncated)
        carry = carry.replace(env_state=env_state, obs=obs, env_key=env_key,
                              episode_return=jnp.where(done, 0.0, episode_return), env_steps=carry.env_steps + N)
        return carry, transition, jnp.sum(jnp.where(done, episode_return, 0.0)), jnp.sum(done)

    def act(self, cfg: Any, carry: Carry, rms: Moments, learning: bool) -> jax.Array:
        """The agent's exploring actions for the N envs, or uniform warm-up actions (Discrete indices or [-1, 1]^A),
        with the random numbers of the member's vector step (`contract.step_key`, as the host loops draw them)."""
        key = contract.step_key(carry.acting_key, carry.env_steps // self.plan.num_envs)
        if learning:
            return self.module.act(cfg, carry.agent, self.prepare(carry.obs, rms), key, False)
        space, N = self.env.action_space, self.plan.num_envs
        if isinstance(space, gym.spaces.Discrete):
            return jax.random.randint(key, (N,), 0, space.n)
        return jax.random.uniform(key, (N, *space.shape), jnp.float32, -1.0, 1.0)

    def on_policy_iteration(self, carry: Carry, _: None) -> tuple[Carry, dict]:
        cfg, rms = member_config(self.cfg, carry.hparams), carry.obs_rms  # statistics frozen over the iteration

        def step(carry: Carry, _: None) -> tuple[Carry, tuple]:
            carry, transition, ret_sum, count = self.env_step(carry, self.act(cfg, carry, rms, True))
            if self.normalize_reward:
                ret_rms, discounted, reward = scale_reward(carry.ret_rms, carry.discounted_return, transition, cfg.gamma)
                carry, transition = carry.replace(ret_rms=ret_rms, discounted_return=discounted), transition.replace(
                    reward=reward)
            return carry, (transition, ret_sum, count)

        carry, (rollout, ret_sum, count) = jax.lax.scan(step, carry, None, length=self.plan.rollout_length)
        agent, metrics, bad_items, bad_update = guards.update_on_rollout(
            partial(self.module.update, cfg), carry.agent, rollout, partial(self.prepare_batch, rms=rms),
            self.skip_nonfinite)
        if self.normalize_obs:
            carry = carry.replace(obs_rms=rms.update(rollout.obs.reshape(-1, *rollout.obs.shape[2:])))
        metrics = {**metrics, "episode/return_sum": ret_sum.sum(), "episode/count": count.sum(),
                   "guard/transitions": bad_items,
                   "guard/updates": bad_update * self.updates_per_iteration}
        return carry.replace(agent=agent), metrics

    def off_policy_iteration(self, learning: bool, carry: Carry, _: None) -> tuple[Carry, dict]:
        """Env steps into the replay buffer (policy actions if `learning`, else uniform warm-up actions), then, if
        `learning`, the iteration's gradient steps. `learning` is static: the stepper runs warm-up chunks, then
        learning chunks, so no seed-batched `lax.cond` computes both branches."""
        cfg, rms = member_config(self.cfg, carry.hparams), carry.obs_rms  # statistics frozen over the iteration

        def env_step(carry: Carry, _: None) -> tuple[Carry, tuple[jax.Array, jax.Array, jax.Array, jax.Array]]:
            carry, transition, ret_sum, count = self.env_step(carry, self.act(cfg, carry, rms, learning))
            buffer, bad = guards.add_items(carry.buffer, transition, self.skip_nonfinite)
            return carry.replace(buffer=buffer), (ret_sum, count, transition.obs, bad)

        carry, (ret_sum, count, obs, bad_items) = jax.lax.scan(env_step, carry, None,
                                                               length=self.env_steps_per_iteration)
        if self.normalize_obs:
            carry = carry.replace(obs_rms=rms.update(obs.reshape(-1, *obs.shape[2:])))
        metrics = {"episode/return_sum": ret_sum.sum(), "episode/count": count.sum(),
                   "guard/transitions": bad_items.sum(), "guard/updates": jnp.zeros((), jnp.int32)}
        if learning:
            key, sample_key = jax.random.split(carry.key)
            agent, update_metrics, metrics["guard/updates"] = guards.update_from_buffer(
                contract.data_path(self.module, cfg), partial(self.module.update, cfg), carry.agent, carry.buffer,
                sample_key, self.updates_per_iteration, self.plan.num_envs, partial(self.prepare_batch, rms=rms),
                self.skip_nonfinite)
            carry = carry.replace(agent=agent, key=key)
            metrics.update(jax.tree.map(jnp.nanmean, update_metrics))
        return carry, metrics

    def chunk(self, carry: Carry, length: int, learning: bool) -> tuple[Carry, dict]:
        """`length` iterations in one `lax.scan`; returns the mean of their metrics and the chunk's episode and
        guard counts."""
        iteration = self.on_policy_iteration if self.on_policy else partial(self.off_policy_iteration, learning)
        carry, metrics = jax.lax.scan(iteration, carry, None, length=length)
        ret_sum, count = metrics.pop("episode/return_sum"), metrics.pop("episode/count")
        guard = {name: metrics.pop(name).sum() for name in ("guard/transitions", "guard/updates")}
        summary = jax.tree.map(jnp.nanmean, metrics)
        summary["train/episode_return"] = jnp.where(count.sum() > 0, ret_sum.sum() / jnp.maximum(count.sum(), 1),
                                                    jnp.nan)
        summary["episode/count"] = count.sum()
        return carry, {**summary, **guard}

    def greedy_actions(self, carry: Carry, obs: jax.Array) -> jax.Array:
        """The member's deterministic actions [B, ...] for observations [B, O], normalised with its statistics."""
        cfg = member_config(self.cfg, carry.hparams)
        return self.module.act(cfg, carry.agent, self.prepare(obs, carry.obs_rms), jax.random.PRNGKey(0), True)

    def evaluate(self, carry: Carry, key: jax.Array) -> jax.Array:
        """Deterministic returns of `eval_episodes` episodes (one per eval env): [M]."""
        return evaluate_jax(self.env, lambda obs: self.greedy_actions(carry, obs), key, self.eval_episodes)


def _example(env: JaxEnv) -> Transition:
    """One zero transition of `env`: the shapes and dtypes the replay buffer stores."""
    obs = jnp.zeros(env.observation_space.shape)
    discrete = isinstance(env.action_space, gym.spaces.Discrete)
    action = jnp.zeros((), jnp.int32) if discrete else jnp.zeros(env.action_space.shape)
    return Transition(obs, action, jnp.zeros(()), obs, jnp.zeros((), bool), jnp.zeros((), bool))


def _whole_multiple(updates_per_env_step: float, longest: int = 1000) -> int:
    """The fewest env steps k whose update count k x `updates_per_env_step` is a whole number >= 1."""
    for k in range(1, longest + 1):
        count = updates_per_env_step * k
        if count >= 1 - 1e-9 and abs(count - round(count)) < 1e-9:
            return k
    raise CritixError(f"utd_ratio x num_envs = {updates_per_env_step} gives no whole number of gradient steps "
                      f"within {longest} env steps; choose a simpler ratio such as 0.25 or 0.5")
