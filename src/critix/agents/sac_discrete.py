"""Soft Actor-Critic for discrete actions (Christodoulou 2019, #55).

With a categorical policy every expectation over actions is an exact sum, so no reparameterisation is needed:
- critic: y = r + gamma (1 - terminated) sum_a' pi(a'|s') [min_i Qbar_i(s', a') - alpha log pi(a'|s')]
  (#55 Eq. 10, the soft state value of Eq. 3 computed exactly), regressed by each Q_i(s, a);
- actor: J_pi = E_s[ sum_a pi(a|s) (alpha log pi(a|s) - min_i Q_i(s, a)) ] (#55 Eq. 12);
- temperature: J(alpha) = E_s[ sum_a pi(a|s) (-alpha (log pi(a|s) + target_entropy)) ] (#55 Eq. 11), with
  target_entropy = target_entropy_ratio * log |A| (#55 Sec. 4: 0.98 of the maximum entropy).
Any value head works: the exact expected soft value y is computed as a scalar and handed to the head as a target
(`head.target(y, 0, .)`), so classification heads get the histogram of y; C51/quantile heads then learn a
point-mass target rather than a distributional Bellman update.
"""

from __future__ import annotations

import dataclasses
from functools import partial

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from critix import policy_losses, validation
from critix.agents import common, configs, contract, sac
from critix.nets.discrete import CategoricalPolicy, DiscreteQEnsemble
from critix.types import Transition
from critix.values import targets

NAME = "sac-discrete"
KIND = "off-policy"
RUN_DEFAULTS: dict[str, tuple[object, str]] = {
    "buffer_size": (1_000_000, "Replay capacity per seed (#55 Table 1: 1e6)."),
    "learning_starts": (20_000, "Env steps per seed with uniform random actions before updates start (#55 "
                                "Table 1: 20,000)."),
    "utd_ratio": (0.25, "Gradient steps per env step per seed (#55 Table 1: one update every 4 steps)."),
}
"""Run settings (`critix.train.RunConfig` fields) this agent starts from: name -> (value, meaning and source)."""
ACTIONS = "discrete"
"""The action space this agent needs (the host loop and the conformance harness read it)."""


@common.vmappable("actor_lr", "critic_lr", "alpha_lr", "gamma", "target_tau", "init_alpha",
                   "target_entropy_ratio")
@dataclasses.dataclass(frozen=True)
class Config(configs.Temperature, configs.CriticHead, configs.GradientClip, configs.ActorCritic):
    """Discrete SAC hyperparameters. Defaults: #55 Table 1 (Atari; critics regressed with the MSE of Eq. 10)
    unless a field says otherwise; the hidden layers and target_tau are SAC's (#53 Table 1: 2 x 256 for vector
    observations, tau 0.005; #55 copies the target every 8,000 steps on Atari)."""

    batch_size: int = 64
    """Minibatch size (#55 Table 1: 64)."""
    autotune_alpha: bool = True
    """Learn the temperature against the entropy target (#55 Eq. 11); False keeps `init_alpha` fixed."""
    target_entropy_ratio: float = 0.98
    """Entropy target as a fraction of the maximum entropy log |A| (#55 Sec. 4: 0.98)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        validation.check_range(self, "in (0, 1]", "target_entropy_ratio")


class State(sac.Learned):
    """SAC's learned parts (`sac.Learned`: actor, critics, target critics, temperature), the step count and the
    number of actions."""

    steps: jax.Array  # gradient steps taken
    num_actions: int = struct.field(pytree_node=False)


def networks(cfg: Config, num_actions: int) -> tuple[CategoricalPolicy, DiscreteQEnsemble]:
    actor = CategoricalPolicy(cfg.hidden_sizes, num_actions, cfg.activation)
    critic = DiscreteQEnsemble(cfg.hidden_sizes, num_actions, cfg.num_critics, cfg.head.num_outputs, cfg.activation)
    return actor, critic


optimizers = sac.optimizers
"""SAC's: Adam for actor and critics (with `max_grad_norm`) and for the temperature."""


def check_spaces(observation_space: gym.Space, action_space: gym.Space) -> None:
    common.check_flat_obs(NAME, observation_space)
    common.check_discrete_actions(NAME, action_space)


def init(cfg: Config, key: jax.Array, observation_space: gym.Space, action_space: gym.Space,
         plan: contract.RunPlan | None = None) -> State:
    obs_dim = common.check_flat_obs(NAME, observation_space)
    num_actions = common.check_discrete_actions(NAME, action_space)
    actor, critic = networks(cfg, num_actions)
    actor_key, critic_key = jax.random.split(key)
    obs = jnp.zeros((1, obs_dim))
    learned = sac.fresh_learned(cfg, actor.init(actor_key, obs), critic.init(critic_key, obs))
    return State(**learned, steps=jnp.zeros((), jnp.int32), num_actions=num_actions)


def soft_state_value(log_pi: jax.Array, q: jax.Array, alpha: jax.Array) -> jax.Array:
    """V(s) = sum_a pi(a|s) [Q(s, a) - alpha log pi(a|s)], exactly (#55 Eq. 3): log_pi, q [B, A] -> [B].

    The actor minimises its negative (#55 Eq. 12): `critix.policy_losses.sac_discrete_actor_loss`.
    """
    return jnp.sum(jnp.exp(log_pi) * (q - alpha * log_pi), axis=-1)


def act(cfg: Config, state: State, obs: jax.Array, key: jax.Array, deterministic: bool) -> jax.Array:
    """obs [B, O] -> actions [B] int32: a sample of the categorical policy, or its mode when deterministic."""
    return contract.act_with(policy(cfg, state), state, obs, key, deterministic)


def policy(cfg: Config, state: State) -> contract.PolicyFunctions:
    """Categorical sampling from the actor's logits (`critix.agents.common.categorical_policy`)."""
    return common.categorical_policy(networks(cfg, state.num_actions)[0], state.num_actions)


def update(cfg: Config, state: State, batch: Transition) -> tuple[State, common.Metrics]:
    """One gradient step of critics, actor and temperature on a batch [B, ...]."""
    head = cfg.head
    actor, critic = networks(cfg, state.num_actions)
    actor_tx, critic_tx, _ = optimizers(cfg)
    alpha = jnp.exp(state.log_alpha)
    action = batch.action.astype(jnp.int32)

    # Critic: exact soft state value of s' under the current policy (#55 Eq. 3, 10).
    next_log_pi = jax.nn.log_softmax(actor.apply(state.actor_params, batch.next_obs), axis=-1)  # [B, A]
    next_q = jnp.min(head.value(critic.apply(state.target_critic_params, batch.next_obs)), axis=0)  # [B, A]
    next_v = soft_state_value(next_log_pi, next_q, alpha)  # [B]
    y = targets.td_target(batch.reward, targets.discount(cfg.gamma, batch.terminated), next_v)
    target = jax.lax.stop_gradient(head.target(y, jnp.zeros_like(y), jnp.zeros((*y.shape, head.num_outputs))))

    def critic_loss_fn(params: dict) -> tuple[jax.Array, jax.Array]:
        out = critic.apply(params, batch.obs)  # [E, B, A, K]
        out = jnp.take_along_axis(out, action[None, :, None, None], axis=2)[:, :, 0]  # [E, B, K]
        return head.loss(out, target).mean(axis=-1).sum(), head.value(out).mean()

    critic_params, critic_opt_state, critic_loss, q_mean = common.gradient_step(
        critic_loss_fn, state.critic_params, state.critic_opt_state, critic_tx
    )

    # Actor: exact expectation over actions against the updated critics (#55 Eq. 12).
    q = head.value(critic.apply(critic_params, batch.obs))  # [E, B, A]

    def actor_loss_fn(params: dict) -> tuple[jax.Array, jax.Array]:
        log_pi = jax.nn.log_softmax(actor.apply(params, batch.obs), axis=-1)
        return policy_losses.sac_discrete_actor_loss(log_pi, q, alpha), log_pi

    actor_params, actor_opt_state, actor_loss, log_pi = common.gradient_step(
        actor_loss_fn, state.actor_params, state.actor_opt_state, actor_tx
    )

    # Temperature (#55 Eq. 11): the policy's expected log-probability against the entropy target.
    entropy = -jnp.sum(jnp.exp(log_pi) * log_pi, axis=-1)  # [B]
    target_entropy = cfg.target_entropy_ratio * float(np.log(state.num_actions))
    log_alpha, alpha_opt_state, alpha_loss = sac.temperature_step(
        cfg, state, policy_losses.sac_discrete_temperature_loss, log_pi, target_entropy
    )

    new_state = common.with_new_critics(state, critic_params, critic_opt_state, cfg.target_tau,
                                        actor_params=actor_params, actor_opt_state=actor_opt_state,
                                        log_alpha=log_alpha, alpha_opt_state=alpha_opt_state)
    metrics = {
        "critic/loss": critic_loss,
        "critic/q_mean": q_mean,
        "actor/loss": actor_loss,
        "actor/entropy": jnp.mean(entropy),
        "alpha/value": alpha,
        "alpha/loss": alpha_loss,
    }
    return new_state, metrics


def update_many(cfg: Config, state: State, batches: Transition) -> tuple[State, common.Metrics]:
    """K gradient steps in one `lax.scan` over batches [K, B, ...]; metrics are [K]."""
    return common.scan_updates(partial(update, cfg), state, batches)
