"""Implicit value learning for offline RL: IQL, XQL and f-DVL, which differ only in the value loss.

A state-value V(s) is regressed towards an implicit maximum of Q(s, a) over the dataset's actions, so the critic
never queries actions outside the data:
- value:  min_V E_D[ L(Q_target(s, a) - V(s)) ], Q_target = min over the target critics;
- critic: min_Q E_D[ 0.5 (Q(s, a) - r - gamma (1 - terminated) V(s'))^2 ];
- actor (advantage-weighted regression): max_pi E_D[ exp(beta (Q_target(s, a) - V(s))) log pi(a|s) ],
  weights clipped at `max_weight`.
The value loss L (`value_loss`, from `critix.values.losses`):
- "expectile": IQL, Kostrikov et al. 2022, "Offline RL with Implicit Q-Learning", Eq. 5-7 (the backbone of #78);
- "gumbel": XQL, Garg et al. 2023, "Extreme Q-Learning", Gumbel regression, Eq. 9 (XQL-C: with a critic);
- "chi_square" / "total_variation": f-DVL, Sikchi et al. 2024, "Dual RL" (#0), Sec. 6: the f-divergence duals
  that replace XQL's exponential loss and fix its instability.
Defaults: IQL's MuJoCo settings (Kostrikov et al. 2022, Appendix B / reference code) unless a field says otherwise.
"""

from __future__ import annotations

import dataclasses
from functools import partial

import gymnasium as gym
import jax
import jax.numpy as jnp
import optax
from flax import struct

from critix import policy_losses, validation
from critix.agents import common, configs, contract
from critix.nets.ensemble import QEnsemble
from critix.nets.mlp import MLP
from critix.nets.policies import BoundedGaussianPolicy, gaussian_log_prob
from critix.optim import OptimizerConfig, make_optimizer
from critix.types import Transition
from critix.values import heads, losses, targets

NAME = "iql"
KIND = "offline"
RUN_DEFAULTS: dict[str, tuple[object, str]] = {
    "buffer_size": (1_000_000, "Replay capacity when fine-tuning online (offline runs hold the whole "
                               "dataset)."),
    "learning_starts": (0, "Env steps before updates when fine-tuning online (0: the buffer starts filled "
                           "with the dataset)."),
    "utd_ratio": (1.0, "Gradient steps per env step when fine-tuning online."),
}
"""Run settings (`critix.train.RunConfig` fields) this agent starts from: name -> (value, meaning and source)."""
VALUE_LOSSES = ("expectile", "gumbel", "chi_square", "total_variation")


@common.vmappable("actor_lr", "critic_lr", "value_lr", "gamma", "target_tau", "expectile",
                   "value_temperature", "gumbel_max_clip", "awr_temperature", "max_weight")
@dataclasses.dataclass(frozen=True)
class Config(configs.ActorCritic):
    """IQL / XQL / f-DVL hyperparameters. Defaults: IQL's (Kostrikov et al. 2022, MuJoCo locomotion; the value
    network has the same hidden layers, and value and actor read the minimum of the target critics) unless a field
    says otherwise."""

    value_lr: float = 3e-4
    """Value learning rate (IQL: 3e-4)."""
    actor_lr_decay_steps: int = 0
    """Cosine-decay the actor learning rate to 0 over this many steps (IQL decays over its 1M steps); 0 = constant."""
    value_loss: str = "expectile"
    """'expectile' (IQL), 'gumbel' (XQL) or 'chi_square' / 'total_variation' (f-DVL, #0)."""
    expectile: float = 0.7
    """Expectile tau of the IQL value loss (IQL: 0.7 on MuJoCo)."""
    value_temperature: float = 2.0
    """XQL's Gumbel beta (XQL: 2 on most MuJoCo tasks) or f-DVL's lambda (Dual-RL code: 1.0 on locomotion)."""
    gumbel_max_clip: float = 7.0
    """Clip of (Q - V) / beta in the Gumbel loss (XQL reference code: 7)."""
    awr_temperature: float = 3.0
    """Inverse temperature beta of the advantage weights exp(beta * A) (IQL: 3 on MuJoCo)."""
    max_weight: float = 100.0
    """Clip of the advantage weights (IQL reference code: 100)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.value_loss not in VALUE_LOSSES:
            raise ValueError(f"value_loss must be one of {VALUE_LOSSES}, got {self.value_loss!r}")
        validation.check_range(self, "in (0, 1)", "expectile")
        validation.check_range(self, "> 0", "value_temperature", "gumbel_max_clip", "awr_temperature", "max_weight")
        if self.value_loss in ("chi_square", "total_variation") and self.value_temperature > 1:
            raise ValueError(f"value_temperature (f-DVL's lambda) must be in (0, 1], got {self.value_temperature}")
        validation.check_range(self, ">= 0", "actor_lr_decay_steps")

    @classmethod
    def xql(cls, **overrides: object) -> Config:
        """XQL-C (Garg et al. 2023): Gumbel regression, beta = 2."""
        return cls(**{"value_loss": "gumbel", "value_temperature": 2.0, **overrides})  # type: ignore[arg-type]

    @classmethod
    def fdvl(cls, **overrides: object) -> Config:
        """f-DVL (#0): Pearson chi-square dual, lambda = 1 (Dual-RL locomotion settings)."""
        return cls(**{"value_loss": "chi_square", "value_temperature": 1.0, **overrides})  # type: ignore[arg-type]


class State(struct.PyTreeNode):
    actor_params: dict
    actor_opt_state: optax.OptState
    critic_params: dict
    critic_opt_state: optax.OptState
    target_critic_params: dict
    value_params: dict
    value_opt_state: optax.OptState
    key: jax.Array
    steps: jax.Array
    action_dim: int = struct.field(pytree_node=False)


def networks(cfg: Config, action_dim: int) -> tuple[BoundedGaussianPolicy, QEnsemble, MLP]:
    actor = BoundedGaussianPolicy(cfg.hidden_sizes, action_dim, cfg.activation)
    critic = QEnsemble(cfg.hidden_sizes, activation=cfg.activation, num_critics=cfg.num_critics)
    value = MLP(cfg.hidden_sizes, 1, cfg.activation)
    return actor, critic, value


def optimizers(cfg: Config) -> tuple[optax.GradientTransformation, ...]:
    decay = cfg.actor_lr_decay_steps
    actor = make_optimizer(OptimizerConfig(cfg.actor_lr, "cosine" if decay else "constant", decay))
    return actor, make_optimizer(OptimizerConfig(cfg.critic_lr)), make_optimizer(OptimizerConfig(cfg.value_lr))


def value_loss(cfg: Config, diff: jax.Array) -> jax.Array:
    """The configured implicit-maximum loss of diff = Q - V, per sample."""
    if cfg.value_loss == "expectile":
        return losses.expectile(diff, cfg.expectile)
    if cfg.value_loss == "gumbel":
        return losses.gumbel(diff, cfg.value_temperature, cfg.gumbel_max_clip)
    if cfg.value_loss == "chi_square":
        return losses.chi_square_dual(diff, cfg.value_temperature)
    return losses.total_variation_dual(diff, cfg.value_temperature)


def check_spaces(observation_space: gym.Space, action_space: gym.Space) -> None:
    common.flat_box_dims(NAME, observation_space, action_space)


def init(cfg: Config, key: jax.Array, observation_space: gym.Space, action_space: gym.Space,
         plan: contract.RunPlan | None = None) -> State:
    obs_dim, action_dim = common.flat_box_dims(NAME, observation_space, action_space)
    actor, critic, value = networks(cfg, action_dim)
    actor_tx, critic_tx, value_tx = optimizers(cfg)
    key, actor_key, critic_key, value_key = jax.random.split(key, 4)
    obs, action = jnp.zeros((1, obs_dim)), jnp.zeros((1, action_dim))
    actor_critic = common.fresh_actor_critic(actor.init(actor_key, obs), actor_tx,
                                             critic.init(critic_key, obs, action), critic_tx)
    value_params = value.init(value_key, obs)
    return State(**actor_critic, value_params=value_params, value_opt_state=value_tx.init(value_params), key=key,
                 steps=jnp.zeros((), jnp.int32), action_dim=action_dim)


def act(cfg: Config, state: State, obs: jax.Array, key: jax.Array, deterministic: bool) -> jax.Array:
    """obs [B, O] -> actions [B, A] in [-1, 1]: the Gaussian mean, or a clipped sample."""
    return contract.act_with(policy(cfg, state), state, obs, key, deterministic)


def policy(cfg: Config, state: State) -> contract.PolicyFunctions:
    """The Gaussian mean, or a sample clipped to [-1, 1] (`critix.agents.common.clipped_gaussian_policy`)."""
    return common.clipped_gaussian_policy(networks(cfg, state.action_dim)[0], state.action_dim)


def update(cfg: Config, state: State, batch: Transition) -> tuple[State, common.Metrics]:
    """Value, actor and critic steps in the IQL reference order, then the Polyak update of the target critics."""
    head = heads.ScalarHead()
    actor, critic, value = networks(cfg, state.action_dim)
    actor_tx, critic_tx, value_tx = optimizers(cfg)
    q_target = jnp.min(critic.apply(state.target_critic_params, batch.obs, batch.action)[..., 0], axis=0)  # [B]

    def value_loss_fn(params: dict) -> tuple[jax.Array, jax.Array]:
        v = value.apply(params, batch.obs)[..., 0]
        return value_loss(cfg, q_target - v).mean(), v.mean()

    value_params, value_opt_state, v_loss, v_mean = common.gradient_step(
        value_loss_fn, state.value_params, state.value_opt_state, value_tx
    )

    v = value.apply(value_params, batch.obs)[..., 0]
    weights = policy_losses.advantage_weights(q_target - v, cfg.awr_temperature, cfg.max_weight)  # [B]

    def actor_loss_fn(params: dict) -> tuple[jax.Array, jax.Array]:
        mean, log_std = actor.apply(params, batch.obs)
        return policy_losses.awr_loss(gaussian_log_prob(mean, log_std, batch.action), weights), None

    actor_params, actor_opt_state, actor_loss, _ = common.gradient_step(
        actor_loss_fn, state.actor_params, state.actor_opt_state, actor_tx
    )

    next_v = value.apply(value_params, batch.next_obs)  # [B, 1]
    target = jax.lax.stop_gradient(head.target(batch.reward, targets.discount(cfg.gamma, batch.terminated), next_v))

    def critic_loss_fn(params: dict) -> tuple[jax.Array, jax.Array]:
        out = critic.apply(params, batch.obs, batch.action)  # [E, B, 1]
        return head.loss(out, target).mean(axis=-1).sum(), head.value(out).mean()

    critic_params, critic_opt_state, critic_loss, q_mean = common.gradient_step(
        critic_loss_fn, state.critic_params, state.critic_opt_state, critic_tx
    )
    new_state = common.with_new_critics(state, critic_params, critic_opt_state, cfg.target_tau,
                                        actor_params=actor_params, actor_opt_state=actor_opt_state,
                                        value_params=value_params, value_opt_state=value_opt_state)
    metrics = {
        "critic/loss": critic_loss,
        "critic/q_mean": q_mean,
        "value/loss": v_loss,
        "value/v_mean": v_mean,
        "actor/loss": actor_loss,
        "actor/weight_mean": weights.mean(),
    }
    return new_state, metrics


def update_many(cfg: Config, state: State, batches: Transition) -> tuple[State, common.Metrics]:
    """K gradient steps in one `lax.scan` over batches [K, B, ...]; metrics are [K]."""
    return common.scan_updates(partial(update, cfg), state, batches)
