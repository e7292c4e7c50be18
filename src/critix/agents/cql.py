"""Conservative Q-Learning: SAC plus a penalty that pushes Q down on sampled actions and up on dataset actions.

Kumar et al. 2020, "Conservative Q-Learning for Offline Reinforcement Learning", CQL(H) (Eq. 4) with the
importance-sampled log-sum-exp of Appendix F: per critic i,
    penalty_i = E_s[ log sum_j exp(Q_i(s, a_j) - log mu(a_j | s)) ] - E_D[ Q_i(s, a) ],
with a_j drawn N times each from the uniform distribution on [-1, 1]^A, from pi(.|s) and from pi(.|s')
(density terms log 0.5^A and log pi, as in the authors' code). The critic minimises
    TD loss (SAC's soft target, #53 Eq. 5-6) + cql_weight * penalty_i,
or, with `lagrange` (the automatic variant, Eq. 5 / Appendix F), alpha' * cql_weight * (penalty_i - target_action_gap)
with alpha' >= 0 trained by gradient ascent on the same term, so the penalty settles near the gap. Actor and
temperature are SAC's (`critix.agents.sac`), whose networks, optimisers and state this module extends.
"""

from __future__ import annotations

import dataclasses
from functools import partial

import gymnasium as gym
import jax
import jax.numpy as jnp
import optax

from critix import policy_losses, validation
from critix.agents import common, contract, sac
from critix.nets.policies import tanh_gaussian_sample
from critix.optim import OptimizerConfig, make_optimizer
from critix.types import Transition
from critix.values import heads, targets

NAME = "cql"
KIND = "offline"
RUN_DEFAULTS: dict[str, tuple[object, str]] = {
    **sac.RUN_DEFAULTS,
    "learning_starts": (0, "Env steps before updates when fine-tuning online (0: the buffer starts filled "
                           "with the dataset)."),
}
"""Run settings (`critix.train.RunConfig` fields) this agent starts from: name -> (value, meaning and source)."""


@common.vmappable("actor_lr", "critic_lr", "alpha_lr", "gamma", "target_tau", "init_alpha", "cql_weight",
                   "target_action_gap", "alpha_prime_lr")
@dataclasses.dataclass(frozen=True)
class Config(sac.Config):
    """CQL hyperparameters: SAC's fields (see `critix list sac`) with CQL's defaults, plus the penalty's."""

    actor_lr: float = 1e-4
    """Actor learning rate (CQL, Kumar et al. 2020, Appendix F: 1e-4 on Gym MuJoCo)."""
    cql_weight: float = 5.0
    """alpha of CQL (the penalty's weight; the authors' code uses min_q_weight = 5 on Gym MuJoCo)."""
    num_sampled_actions: int = 10
    """Actions drawn from each of the three proposal distributions per state (authors' code: 10)."""
    lagrange: bool = False
    """Tune the penalty's multiplier automatically towards `target_action_gap` (CQL-Lagrange, Eq. 5)."""
    target_action_gap: float = 10.0
    """tau of CQL-Lagrange: the penalty value the multiplier aims for (d3rlpy's alpha_threshold default: 10)."""
    alpha_prime_lr: float = 3e-4
    """Learning rate of the Lagrange multiplier (authors' code: the critic's 3e-4)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        validation.check_range(self, ">= 0", "cql_weight")
        validation.check_range(self, ">= 1", "num_sampled_actions")
        if self.value_head.critic_head != "scalar":
            raise ValueError(f"critic_head must be 'scalar' for CQL's log-sum-exp penalty, got "
                             f"{self.value_head.critic_head!r}")


class State(sac.State):
    """SAC's state plus the Lagrange multiplier log alpha' and its optimiser state."""

    log_alpha_prime: jax.Array
    alpha_prime_opt_state: optax.OptState


def check_spaces(observation_space: gym.Space, action_space: gym.Space) -> None:
    common.flat_box_dims(NAME, observation_space, action_space)


def init(cfg: Config, key: jax.Array, observation_space: gym.Space, action_space: gym.Space,
         plan: contract.RunPlan | None = None) -> State:
    base = sac.init(cfg, key, observation_space, action_space)
    log_alpha_prime = jnp.zeros((), jnp.float32)  # alpha' = 1 at the start, as in the authors' code
    fields = {f.name: getattr(base, f.name) for f in dataclasses.fields(base)}
    return State(**fields, log_alpha_prime=log_alpha_prime,
                 alpha_prime_opt_state=make_optimizer(OptimizerConfig(cfg.alpha_prime_lr)).init(log_alpha_prime))


def act(cfg: Config, state: State, obs: jax.Array, key: jax.Array, deterministic: bool) -> jax.Array:
    """As SAC: a tanh-Gaussian sample, or tanh(mean) when deterministic."""
    return sac.act(cfg, state, obs, key, deterministic)


policy = sac.policy
"""SAC's tanh-Gaussian acting."""


def update(cfg: Config, state: State, batch: Transition) -> tuple[State, common.Metrics]:
    """One CQL step: conservative critics, then SAC's actor and temperature, then the Polyak update."""
    head = heads.ScalarHead()
    actor, critic = sac.networks(cfg, state.action_dim)
    _, critic_tx, _ = sac.optimizers(cfg)
    alpha_prime_tx = make_optimizer(OptimizerConfig(cfg.alpha_prime_lr))
    key, next_key, pi_key, rand_key, cql_key, cql_next_key = jax.random.split(state.key, 6)
    alpha = jnp.exp(state.log_alpha)
    alpha_prime = jnp.clip(jnp.exp(state.log_alpha_prime), 0.0, 1e6)
    N, (B, A) = cfg.num_sampled_actions, batch.action.shape

    # SAC's soft TD target.
    next_mean, next_log_std = actor.apply(state.actor_params, batch.next_obs)
    next_action, next_log_prob = tanh_gaussian_sample(next_key, next_mean, next_log_std)
    next_out = critic.apply(state.target_critic_params, batch.next_obs, next_action)
    discount_t = targets.discount(cfg.gamma, batch.terminated)
    soft_reward = batch.reward - discount_t * alpha * next_log_prob
    target = jax.lax.stop_gradient(head.target(soft_reward, discount_t, heads.select_min(head, next_out)))

    # Proposal actions for the log-sum-exp, fixed (no gradient into the actor): [N, B, A] and log-densities [N, B].
    rand_actions = jax.random.uniform(rand_key, (N, B, A), minval=-1.0, maxval=1.0)
    rand_log_density = A * jnp.log(0.5)
    mean, log_std = actor.apply(state.actor_params, batch.obs)
    pi_actions, pi_log_prob = tanh_gaussian_sample(cql_key, jnp.broadcast_to(mean, (N, B, A)),
                                                   jnp.broadcast_to(log_std, (N, B, A)))
    next_pi_actions, next_pi_log_prob = tanh_gaussian_sample(
        cql_next_key, jnp.broadcast_to(next_mean, (N, B, A)), jnp.broadcast_to(next_log_std, (N, B, A))
    )
    sampled = jax.lax.stop_gradient(jnp.concatenate([rand_actions, pi_actions, next_pi_actions], axis=0))  # [3N,B,A]
    pi_log_prob, next_pi_log_prob = jax.lax.stop_gradient((pi_log_prob, next_pi_log_prob))
    obs_tiled = jnp.broadcast_to(batch.obs, (3 * N, *batch.obs.shape))

    def critic_loss_fn(params: dict) -> tuple[jax.Array, tuple[jax.Array, jax.Array]]:
        out = critic.apply(params, batch.obs, batch.action)  # [E, B, 1]
        td_loss = head.loss(out, target).mean(axis=-1).sum()
        q_sampled = critic.apply(params, obs_tiled, sampled)[..., 0]  # [E, 3N, B]
        penalty = policy_losses.cql_penalty(head.value(out), q_sampled[:, :N], rand_log_density, q_sampled[:, N:2 * N],
                                            pi_log_prob, q_sampled[:, 2 * N:], next_pi_log_prob)  # [E]
        if cfg.lagrange:
            conservative = alpha_prime * cfg.cql_weight * (penalty - cfg.target_action_gap)
        else:
            conservative = cfg.cql_weight * penalty
        return td_loss + conservative.sum(), (head.value(out).mean(), penalty)

    critic_params, critic_opt_state, critic_loss, (q_mean, penalty) = common.gradient_step(
        critic_loss_fn, state.critic_params, state.critic_opt_state, critic_tx
    )

    if cfg.lagrange:  # gradient ascent on alpha' (descent on the negated Lagrangian term)
        gap = jax.lax.stop_gradient(penalty - cfg.target_action_gap)

        def alpha_prime_loss_fn(log_alpha_prime: jax.Array) -> tuple[jax.Array, None]:
            return -jnp.mean(jnp.clip(jnp.exp(log_alpha_prime), 0.0, 1e6) * cfg.cql_weight * gap), None

        log_alpha_prime, alpha_prime_opt_state, alpha_prime_loss, _ = common.gradient_step(
            alpha_prime_loss_fn, state.log_alpha_prime, state.alpha_prime_opt_state, alpha_prime_tx
        )
    else:
        log_alpha_prime, alpha_prime_opt_state = state.log_alpha_prime, state.alpha_prime_opt_state
        alpha_prime_loss = jnp.zeros(())

    # Actor and temperature: SAC's (#53 Eq. 7, 18), against the updated critics.
    state, actor_metrics = sac.actor_and_temperature_step(cfg, state, batch.obs, critic_params, pi_key, {})
    new_state = common.with_new_critics(state, critic_params, critic_opt_state, cfg.target_tau, key=key,
                                        log_alpha_prime=log_alpha_prime, alpha_prime_opt_state=alpha_prime_opt_state)
    metrics = {
        "critic/loss": critic_loss,
        "critic/q_mean": q_mean,
        "critic/cql_penalty": penalty.mean(),
        **actor_metrics,
        "alpha_prime/value": alpha_prime,
        "alpha_prime/loss": alpha_prime_loss,
    }
    return new_state, metrics


def update_many(cfg: Config, state: State, batches: Transition) -> tuple[State, common.Metrics]:
    """K gradient steps in one `lax.scan` over batches [K, B, ...]; metrics are [K]."""
    return common.scan_updates(partial(update, cfg), state, batches)
