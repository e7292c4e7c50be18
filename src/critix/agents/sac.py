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
from functools import partial
from typing import Any

import gymnasium as gym
import jax
import jax.numpy as jnp
import optax
from flax import struct

from critix import policy_losses
from critix.agents import common, contract
from critix.nets.ensemble import QEnsemble
from critix.nets.policies import TanhGaussianPolicy, tanh_gaussian_mode, tanh_gaussian_sample
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
class Config:
    """SAC hyperparameters. Defaults: Haarnoja et al. 2018b (#53), Table 1, unless a field says otherwise."""

    hidden_sizes: tuple[int, ...] = (256, 256)
    """Hidden layer sizes of actor and critics (#53 Table 1: 2 layers of 256)."""
    activation: str = "relu"
    """Hidden activation (#53 Table 1: ReLU)."""
    num_critics: int = 2
    """Critic ensemble size; the target uses the minimum over critics (#53 Sec. 5, clipped double-Q)."""
    value_head: heads.HeadConfig = heads.HeadConfig()
    """The critics' value head (`critix.values.heads.HeadConfig`; #7 Sec. 4: 101 bins, sigma 0.75 bin widths)."""
    critic_layer_norm: bool = False
    """LayerNorm in critic hidden layers (DroQ, Hiraoka et al. 2022; off in SAC)."""
    critic_dropout: float = 0.0
    """Dropout rate in critic hidden layers (DroQ uses 0.01 with UTD 20; off in SAC)."""
    actor_lr: float = 3e-4
    """Actor learning rate (#53 Table 1)."""
    critic_lr: float = 3e-4
    """Critic learning rate (#53 Table 1)."""
    alpha_lr: float = 3e-4
    """Temperature learning rate (#53 Table 1)."""
    max_grad_norm: float = 0.0
    """Global gradient-norm clip for actor and critic; 0 disables (SAC clips nothing)."""
    gamma: float = 0.99
    """Discount factor (#53 Table 1)."""
    target_tau: float = 0.005
    """Polyak rate of the target critics (#53 Table 1)."""
    batch_size: int = 256
    """Minibatch size (#53 Table 1)."""
    init_alpha: float = 1.0
    """Initial temperature (SB3 and CleanRL start at 1.0)."""
    autotune_alpha: bool = True
    """Learn the temperature against `target_entropy` (#53 Sec. 5); False keeps `init_alpha` fixed (#50)."""
    target_entropy: float | None = None
    """Entropy target; None means -dim(A) (#53 Sec. 5)."""

    def __post_init__(self) -> None:
        common.check_common(self)
        if not 0.0 <= self.critic_dropout < 1.0:
            raise ValueError(f"critic_dropout must be in [0, 1), got {self.critic_dropout}")
        if not self.init_alpha > 0:
            raise ValueError(f"init_alpha must be > 0, got {self.init_alpha}")

    @property
    def head(self) -> heads.ValueHead:
        return heads.from_config(self)


class State(struct.PyTreeNode):
    """Everything SAC learns or consumes, as arrays (leading seed axis S when vmapped)."""

    actor_params: dict
    actor_opt_state: optax.OptState
    critic_params: dict
    critic_opt_state: optax.OptState
    target_critic_params: dict
    log_alpha: jax.Array
    alpha_opt_state: optax.OptState
    key: jax.Array
    steps: jax.Array  # gradient steps taken
    action_dim: int = struct.field(pytree_node=False)


def networks(cfg: Config, action_dim: int) -> tuple[TanhGaussianPolicy, QEnsemble]:
    actor = TanhGaussianPolicy(cfg.hidden_sizes, action_dim, cfg.activation)
    critic = QEnsemble(
        cfg.hidden_sizes, cfg.num_critics, cfg.head.num_outputs, cfg.activation,
        cfg.critic_layer_norm, cfg.critic_dropout,
    )
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
    actor_tx, critic_tx, alpha_tx = optimizers(cfg)
    key, actor_key, critic_key = jax.random.split(key, 3)
    obs, action = jnp.zeros((1, obs_dim)), jnp.zeros((1, action_dim))
    actor_params = actor.init(actor_key, obs)
    critic_params = critic.init(critic_key, obs, action)
    log_alpha = jnp.log(jnp.asarray(cfg.init_alpha, jnp.float32))
    return State(
        actor_params=actor_params,
        actor_opt_state=actor_tx.init(actor_params),
        critic_params=critic_params,
        critic_opt_state=critic_tx.init(critic_params),
        target_critic_params=jax.tree.map(jnp.copy, critic_params),  # distinct buffers (donation)
        log_alpha=log_alpha,
        alpha_opt_state=alpha_tx.init(log_alpha),
        key=key,
        steps=jnp.zeros((), jnp.int32),
        action_dim=action_dim,
    )


def act(cfg: Config, state: State, obs: jax.Array, key: jax.Array, deterministic: bool) -> jax.Array:
    """obs [B, O] -> actions [B, A] in [-1, 1]: a tanh-Gaussian sample, or tanh(mean) when deterministic."""
    return policy_action(networks(cfg, state.action_dim)[0], state, obs, key, deterministic)


def policy_action(actor: TanhGaussianPolicy, state: State, obs: jax.Array, key: jax.Array,
                  deterministic: bool) -> jax.Array:
    """The tanh-Gaussian actor's action (`act`); shared with TQC, whose actor is SAC's."""
    mean, log_std = actor.apply(state.actor_params, obs)
    if deterministic:
        return tanh_gaussian_mode(mean)
    return tanh_gaussian_sample(key, mean, log_std)[0]


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
    new_state = state.replace(
        critic_params=critic_params,
        critic_opt_state=critic_opt_state,
        target_critic_params=common.polyak(critic_params, state.target_critic_params, cfg.target_tau),
        key=key,
        steps=state.steps + 1,
    )
    return new_state, {"critic/loss": critic_loss, "critic/q_mean": q_mean, **actor_metrics}


def actor_and_temperature_step(
    cfg: Config, state: State, obs: jax.Array, critic_params: dict, key: jax.Array, critic_rngs: dict
) -> tuple[State, common.Metrics]:
    """The actor step against `critic_params`, min over critics of Q(s, a~pi) (#53 Eq. 7), then the temperature
    step towards the target entropy (#53 Eq. 18). Returns the state with new actor and temperature; shared with
    CQL (`critix.agents.cql`), whose actor and temperature are SAC's."""
    head = cfg.head
    actor, critic = networks(cfg, state.action_dim)
    actor_tx, _, _ = optimizers(cfg)
    alpha = jnp.exp(state.log_alpha)
    deterministic = cfg.critic_dropout <= 0.0

    def actor_loss_fn(params: dict) -> tuple[jax.Array, jax.Array]:
        mean, log_std = actor.apply(params, obs)
        action, log_prob = tanh_gaussian_sample(key, mean, log_std)
        out = critic.apply(critic_params, obs, action, deterministic, rngs=critic_rngs)
        return policy_losses.sac_actor_loss(log_prob, head.value(out), alpha), log_prob

    actor_params, actor_opt_state, actor_loss, log_prob = common.gradient_step(
        actor_loss_fn, state.actor_params, state.actor_opt_state, actor_tx
    )
    log_alpha, alpha_opt_state, alpha_loss = temperature_step(cfg, state, log_prob)
    state = state.replace(actor_params=actor_params, actor_opt_state=actor_opt_state, log_alpha=log_alpha,
                          alpha_opt_state=alpha_opt_state)
    metrics = {
        "actor/loss": actor_loss,
        "actor/entropy": -jnp.mean(log_prob),
        "alpha/value": alpha,
        "alpha/loss": alpha_loss,
    }
    return state, metrics


def temperature_step(cfg: Config, state: State, log_prob: jax.Array) -> tuple[jax.Array, optax.OptState, jax.Array]:
    """The temperature step towards the target entropy, J(alpha) = E[-alpha (log pi(a~|s) + target_entropy)]
    (#53 Eq. 18), from the actor's log pi(a~|s) [B]; returns (log_alpha, its optimiser state, loss). Reads only
    `alpha_lr`, `autotune_alpha`, `target_entropy` and the state's `log_alpha`, `alpha_opt_state`, `action_dim`:
    shared with TQC (`critix.agents.tqc`), whose temperature is SAC's."""
    if not cfg.autotune_alpha:
        return state.log_alpha, state.alpha_opt_state, jnp.zeros(())
    target_entropy = -float(state.action_dim) if cfg.target_entropy is None else cfg.target_entropy

    def alpha_loss_fn(log_alpha: jax.Array) -> tuple[jax.Array, None]:
        return policy_losses.sac_temperature_loss(log_alpha, log_prob, target_entropy), None

    alpha_tx = make_optimizer(OptimizerConfig(cfg.alpha_lr))
    log_alpha, alpha_opt_state, alpha_loss, _ = common.gradient_step(
        alpha_loss_fn, state.log_alpha, state.alpha_opt_state, alpha_tx
    )
    return log_alpha, alpha_opt_state, alpha_loss


def update_many(cfg: Config, state: State, batches: Transition) -> tuple[State, common.Metrics]:
    """K gradient steps in one `lax.scan` over batches [K, B, ...]; metrics are [K]."""
    return common.scan_updates(partial(update, cfg), state, batches)
