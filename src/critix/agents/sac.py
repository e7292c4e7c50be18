"""Soft Actor-Critic with twin critics and automatic temperature.

Haarnoja et al. 2018, "Soft Actor-Critic: Off-Policy Maximum Entropy Deep RL with a Stochastic Actor" (SAC, #50)
and Haarnoja et al. 2018b, "Soft Actor-Critic Algorithms and Applications" (SAC v2, #53):
- critic: J_Q = E[0.5 (Q_i(s,a) - y)^2], y = r + gamma (1 - terminated) (min_i Qbar_i(s',a') - alpha log pi(a'|s'))
  (#53 Eq. 5-6, with the clipped double-Q of Fujimoto et al. 2018);
- actor: J_pi = E[alpha log pi(a~|s) - min_i Q_i(s,a~)], a~ reparameterised through tanh (#53 Eq. 7, 11);
- temperature: J(alpha) = E[-alpha (log pi(a~|s) + target_entropy)] (#53 Eq. 18), target_entropy = -dim(A).
The critic head is pluggable (`critix.values.heads`); the entropy term is folded into the reward of the target.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from functools import partial
from typing import Any

import gymnasium as gym
import jax
import jax.numpy as jnp
import optax
from flax import struct

from critix import policy_losses, validation
from critix.agents import common, configs, contract
from critix.nets.ensemble import QEnsemble
from critix.nets.policies import TanhGaussianPolicy, tanh_gaussian_sample
from critix.optim import OptimizerConfig, make_optimizer
from critix.types import Transition
from critix.values import heads, targets

NAME = "sac"
KIND = "off-policy"
RUN_DEFAULTS: dict[str, tuple[object, str]] = {
    "buffer_size": (1_000_000, "Replay capacity per seed (#53 Table 1: 1e6)."),
    "learning_starts": (5_000, "Env steps per seed with uniform random actions before updates start (CleanRL "
                               "sac_continuous_action: 5e3)."),
    "utd_ratio": (1.0, "Gradient steps per env step per seed (#53: 1)."),
}
"""Run settings (`critix.train.RunConfig` fields) this agent starts from: name -> (value, meaning and source)."""


@common.vmappable("actor_lr", "critic_lr", "alpha_lr", "gamma", "target_tau", "init_alpha")
@dataclasses.dataclass(frozen=True)
class Config(configs.Temperature, configs.CriticHead, configs.GradientClip, configs.ActorCritic):
    """SAC hyperparameters. Defaults: Haarnoja et al. 2018b (#53), Table 1, unless a field says otherwise."""

    critic_layer_norm: bool = False
    """LayerNorm in critic hidden layers (DroQ, Hiraoka et al. 2022; off in SAC)."""
    critic_dropout: float = 0.0
    """Dropout rate in critic hidden layers (DroQ uses 0.01 with UTD 20; off in SAC)."""
    target_entropy: float | None = None
    """Entropy target; None means -dim(A) (#53 Sec. 5)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        validation.check_range(self, "in [0, 1)", "critic_dropout")


class Learned(struct.PyTreeNode):
    """What a SAC agent learns: actor, critics, target critics and temperature, with their optimiser states;
    shared with discrete SAC (`critix.agents.sac_discrete`)."""

    actor_params: dict
    actor_opt_state: optax.OptState
    critic_params: dict
    critic_opt_state: optax.OptState
    target_critic_params: dict
    log_alpha: jax.Array
    alpha_opt_state: optax.OptState


class State(Learned):
    """Everything SAC learns or consumes, as arrays (leading seed axis S when vmapped)."""

    key: jax.Array
    steps: jax.Array  # gradient steps taken
    action_dim: int = struct.field(pytree_node=False)


def networks(cfg: Config, action_dim: int) -> tuple[TanhGaussianPolicy, QEnsemble]:
    actor = TanhGaussianPolicy(cfg.hidden_sizes, action_dim, cfg.activation)
    critic = QEnsemble(cfg.hidden_sizes, cfg.head.num_outputs, cfg.activation, cfg.critic_layer_norm,
                       cfg.critic_dropout, num_critics=cfg.num_critics)
    return actor, critic


def optimizers(cfg: Config) -> tuple[optax.GradientTransformation, ...]:
    actor = make_optimizer(OptimizerConfig(cfg.actor_lr, max_grad_norm=cfg.max_grad_norm))
    critic = make_optimizer(OptimizerConfig(cfg.critic_lr, max_grad_norm=cfg.max_grad_norm))
    alpha = make_optimizer(OptimizerConfig(cfg.alpha_lr))
    return actor, critic, alpha


def check_spaces(observation_space: gym.Space, action_space: gym.Space) -> None:
    common.flat_box_dims(NAME, observation_space, action_space)


def init(cfg: Config, key: jax.Array, observation_space: gym.Space, action_space: gym.Space,
         plan: contract.RunPlan | None = None) -> State:
    obs_dim, action_dim = common.flat_box_dims(NAME, observation_space, action_space)
    return init_state(cfg, key, *networks(cfg, action_dim), obs_dim, action_dim)


def init_state(cfg: Any, key: jax.Array, actor: TanhGaussianPolicy, critic: QEnsemble, obs_dim: int,
               action_dim: int) -> State:
    """A fresh SAC state for these networks: actor, critics and target copies, temperature `init_alpha`, their
    optimisers (`optimizers`); shared with TQC (`critix.agents.tqc`), whose critics are quantile critics."""
    key, actor_key, critic_key = jax.random.split(key, 3)
    obs, action = jnp.zeros((1, obs_dim)), jnp.zeros((1, action_dim))
    learned = fresh_learned(cfg, actor.init(actor_key, obs), critic.init(critic_key, obs, action))
    return State(**learned, key=key, steps=jnp.zeros((), jnp.int32), action_dim=action_dim)


def fresh_learned(cfg: Any, actor_params: dict, critic_params: dict) -> dict[str, Any]:
    """The `Learned` fields of a fresh agent with these parameters: target critics as copies, temperature
    `init_alpha`, fresh optimiser states (`optimizers`); shared with discrete SAC."""
    actor_tx, critic_tx, alpha_tx = optimizers(cfg)
    log_alpha = jnp.log(jnp.asarray(cfg.init_alpha, jnp.float32))
    return dict(**common.fresh_actor_critic(actor_params, actor_tx, critic_params, critic_tx), log_alpha=log_alpha,
                alpha_opt_state=alpha_tx.init(log_alpha))


def act(cfg: Config, state: State, obs: jax.Array, key: jax.Array, deterministic: bool) -> jax.Array:
    """obs [B, O] -> actions [B, A] in [-1, 1]: a tanh-Gaussian sample, or tanh(mean) when deterministic."""
    return contract.act_with(policy(cfg, state), state, obs, key, deterministic)


def policy(cfg: Any, state: Any) -> contract.PolicyFunctions:
    """The tanh-Gaussian actor's acting (`act`); shared with TQC and CQL, whose actor is SAC's."""
    actor = TanhGaussianPolicy(cfg.hidden_sizes, state.action_dim, cfg.activation)
    return common.tanh_gaussian_policy(actor, state.action_dim)


def update(cfg: Config, state: State, batch: Transition) -> tuple[State, common.Metrics]:
    """One gradient step of critics, actor and temperature on a batch [B, ...]."""
    head = cfg.head
    actor, critic = networks(cfg, state.action_dim)
    _, critic_tx, _ = optimizers(cfg)
    key, next_key, pi_key, drop_key, drop_key2 = jax.random.split(state.key, 5)
    alpha = jnp.exp(state.log_alpha)
    dropout = cfg.critic_dropout > 0.0  # dropout critics (DroQ) need a dropout key per forward pass
    target_rngs = {"dropout": drop_key} if dropout else {}
    critic_rngs = {"dropout": drop_key2} if dropout else {}

    # Critic: soft target from the target critics, entropy folded into the reward term.
    next_mean, next_log_std = actor.apply(state.actor_params, batch.next_obs)
    next_action, next_log_prob = tanh_gaussian_sample(next_key, next_mean, next_log_std)
    next_out = critic.apply(
        state.target_critic_params, batch.next_obs, next_action, not dropout, rngs=target_rngs
    )  # [E, B, K]
    discount_t = targets.discount(cfg.gamma, batch.terminated)
    soft_reward = batch.reward - discount_t * alpha * next_log_prob
    target = jax.lax.stop_gradient(head.target(soft_reward, discount_t, heads.select_min(head, next_out)))

    def critic_loss_fn(params: dict) -> tuple[jax.Array, jax.Array]:
        out = critic.apply(params, batch.obs, batch.action, not dropout, rngs=critic_rngs)
        return head.loss(out, target).mean(axis=-1).sum(), head.value(out).mean()

    critic_params, critic_opt_state, critic_loss, q_mean = common.gradient_step(
        critic_loss_fn, state.critic_params, state.critic_opt_state, critic_tx
    )

    # Actor and temperature: against the freshly updated critics (as in the SAC reference code).
    state, actor_metrics = actor_and_temperature_step(cfg, state, batch.obs, critic_params, pi_key, critic_rngs)
    new_state = common.with_new_critics(state, critic_params, critic_opt_state, cfg.target_tau, key=key)
    return new_state, {"critic/loss": critic_loss, "critic/q_mean": q_mean, **actor_metrics}


def actor_and_temperature_step(
    cfg: Config, state: State, obs: jax.Array, critic_params: dict, key: jax.Array, critic_rngs: dict
) -> tuple[State, common.Metrics]:
    """The actor step against `critic_params`, min over critics of Q(s, a~pi) (#53 Eq. 7), then the temperature
    step towards the target entropy (#53 Eq. 18). Returns the state with new actor and temperature; shared with
    CQL (`critix.agents.cql`), whose actor and temperature are SAC's."""
    head = cfg.head
    actor, critic = networks(cfg, state.action_dim)
    alpha = jnp.exp(state.log_alpha)
    deterministic = cfg.critic_dropout <= 0.0

    def actor_loss_fn(params: dict) -> tuple[jax.Array, jax.Array]:
        mean, log_std = actor.apply(params, obs)
        action, log_prob = tanh_gaussian_sample(key, mean, log_std)
        out = critic.apply(critic_params, obs, action, deterministic, rngs=critic_rngs)
        return policy_losses.sac_actor_loss(log_prob, head.value(out), alpha), log_prob

    return actor_and_temperature_update(cfg, state, actor_loss_fn)


def actor_and_temperature_update(
    cfg: Any, state: State, actor_loss_fn: Callable[[dict], tuple[jax.Array, jax.Array]]
) -> tuple[State, common.Metrics]:
    """One actor step on `actor_loss_fn(actor_params) -> (loss, log pi(a~|s) [B])`, then the temperature step on
    those log-probabilities, J(alpha) = E[-alpha (log pi(a~|s) + target_entropy)] (#53 Eq. 18) with
    target_entropy -dim(A) unless set. Returns the state with new actor and temperature, and their metrics; shared
    with TQC (`critix.agents.tqc`), whose actor loss averages over its quantile critics."""
    actor_tx, _, _ = optimizers(cfg)
    alpha = jnp.exp(state.log_alpha)  # the temperature the actor loss used
    actor_params, actor_opt_state, actor_loss, log_prob = common.gradient_step(
        actor_loss_fn, state.actor_params, state.actor_opt_state, actor_tx
    )
    target_entropy = -float(state.action_dim) if cfg.target_entropy is None else cfg.target_entropy
    log_alpha, alpha_opt_state, alpha_loss = temperature_step(cfg, state, policy_losses.sac_temperature_loss,
                                                              log_prob, target_entropy)
    state = state.replace(actor_params=actor_params, actor_opt_state=actor_opt_state, log_alpha=log_alpha,
                          alpha_opt_state=alpha_opt_state)
    metrics = {
        "actor/loss": actor_loss,
        "actor/entropy": -jnp.mean(log_prob),
        "alpha/value": alpha,
        "alpha/loss": alpha_loss,
    }
    return state, metrics


def temperature_step(
    cfg: Any, state: Learned, loss: Callable[[jax.Array, jax.Array, float], jax.Array], log_prob: jax.Array,
    target_entropy: float,
) -> tuple[jax.Array, optax.OptState, jax.Array]:
    """One step of log alpha towards the target entropy on `loss(log_alpha, log_prob, target_entropy)` (SAC's
    `policy_losses.sac_temperature_loss`, #53 Eq. 18; discrete SAC's, #55 Eq. 11), with Adam at `alpha_lr`; without
    `autotune_alpha` the temperature stays (loss 0). Returns (log_alpha, its optimiser state, loss)."""
    if not cfg.autotune_alpha:
        return state.log_alpha, state.alpha_opt_state, jnp.zeros(())

    def alpha_loss_fn(log_alpha: jax.Array) -> tuple[jax.Array, None]:
        return loss(log_alpha, log_prob, target_entropy), None

    alpha_tx = make_optimizer(OptimizerConfig(cfg.alpha_lr))
    log_alpha, alpha_opt_state, alpha_loss, _ = common.gradient_step(
        alpha_loss_fn, state.log_alpha, state.alpha_opt_state, alpha_tx
    )
    return log_alpha, alpha_opt_state, alpha_loss


def update_many(cfg: Config, state: State, batches: Transition) -> tuple[State, common.Metrics]:
    """K gradient steps in one `lax.scan` over batches [K, B, ...]; metrics are [K]."""
    return common.scan_updates(partial(update, cfg), state, batches)
