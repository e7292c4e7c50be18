"""TD3 and DDPG: deterministic actor-critic, one module, variants by config.

TD3 — Fujimoto et al. 2018, "Addressing Function Approximation Error in Actor-Critic Methods" (#98):
- clipped double-Q target y = r + gamma (1 - terminated) min_{i=1,2} Qbar_i(s', a'), Eq. 10;
- target policy smoothing a' = clip(pibar(s') + clip(N(0, sigma), -c, c), -1, 1), Eq. 14-15;
- delayed policy updates: actor and targets move every `policy_delay` critic steps (Sec. 5.2, Alg. 1);
- actor loss -Q_1(s, pi(s)) (deterministic policy gradient, Alg. 1).
DDPG — Lillicrap et al. 2016, "Continuous control with deep reinforcement learning" (#81): the same update with
one critic, no smoothing and no delay (Alg. 1), as `Config.ddpg()` (TD3 paper's "our DDPG" settings, Sec. 6.1).
Exploration adds Gaussian noise N(0, exploration_noise) to the actor's action (TD3 Sec. 6.1).
TD3+BC — Fujimoto & Gu 2021 (offline): the same update with a behaviour-cloning term in the actor loss,
as `Config.td3bc()` (`bc_alpha` = 2.5).
"""

from __future__ import annotations

import dataclasses
from typing import Any
from functools import partial

import gymnasium as gym
import jax
import jax.numpy as jnp
import optax
from flax import struct

from critix import policy_losses, validation
from critix.agents import common, configs, contract
from critix.nets.ensemble import QEnsemble
from critix.nets.policies import DeterministicPolicy
from critix.optim import OptimizerConfig, make_optimizer
from critix.types import Transition
from critix.values import heads, targets

NAME = "td3"
KIND = "off-policy"
RUN_DEFAULTS: dict[str, tuple[object, str]] = {
    "buffer_size": (1_000_000, "Replay capacity per seed (#98 Table 3: 1e6)."),
    "learning_starts": (5_000, "Env steps per seed with uniform random actions before updates start (CleanRL "
                               "td3_continuous_action: 25e3 for MuJoCo; 5e3 here as for SAC)."),
    "utd_ratio": (1.0, "Critic gradient steps per env step per seed (#98: 1)."),
}
"""Run settings (`critix.train.RunConfig` fields) this agent starts from: name -> (value, meaning and source)."""


@common.vmappable("actor_lr", "critic_lr", "gamma", "target_tau", "target_noise", "target_noise_clip")
@dataclasses.dataclass(frozen=True)
class Config(configs.CriticHead, configs.GradientClip, configs.ActorCritic):
    """TD3 hyperparameters. Defaults: Fujimoto et al. 2018 (#98) and the authors' code, unless a field says otherwise."""

    critic_layer_norm: bool = False
    """LayerNorm in critic hidden layers (off in TD3)."""
    policy_delay: int = 2
    """Critic steps per actor and target update (#98 Sec. 5.2: d = 2)."""
    target_noise: float = 0.2
    """Std of the target policy smoothing noise, in [-1, 1] action units (#98 Sec. 6.1: 0.2)."""
    target_noise_clip: float = 0.5
    """Clip of the smoothing noise (#98 Sec. 6.1: 0.5)."""
    exploration_noise: float = 0.1
    """Std of the Gaussian exploration noise, in [-1, 1] action units (#98 Sec. 6.1: 0.1)."""
    bc_alpha: float = 0.0
    """TD3+BC's alpha (Fujimoto & Gu 2021, Eq. 3-4: 2.5): the actor maximises lambda Q - (pi(s) - a)^2 with
    lambda = alpha / mean|Q|, for offline data; 0 disables the behaviour-cloning term (plain TD3)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        validation.check_range(self, ">= 1", "policy_delay")
        validation.check_range(self, ">= 0", "target_noise", "target_noise_clip", "exploration_noise", "bc_alpha")

    @classmethod
    def ddpg(cls, **overrides: object) -> Config:
        """DDPG (#81) as evaluated in the TD3 paper ("our DDPG", #98 Sec. 6.1): one critic, no smoothing, no delay."""
        base = dict(num_critics=1, policy_delay=1, target_noise=0.0, target_noise_clip=0.0)
        return cls(**{**base, **overrides})  # type: ignore[arg-type]

    @classmethod
    def td3bc(cls, **overrides: object) -> Config:
        """TD3+BC (Fujimoto & Gu 2021, "A Minimalist Approach to Offline RL"): TD3 plus a BC term, alpha = 2.5."""
        return cls(**{"bc_alpha": 2.5, **overrides})  # type: ignore[arg-type]


class State(struct.PyTreeNode):
    actor_params: dict
    actor_opt_state: optax.OptState
    target_actor_params: dict
    critic_params: dict
    critic_opt_state: optax.OptState
    target_critic_params: dict
    key: jax.Array
    steps: jax.Array  # critic gradient steps taken
    action_dim: int = struct.field(pytree_node=False)


def networks(cfg: Config, action_dim: int) -> tuple[DeterministicPolicy, QEnsemble]:
    actor = DeterministicPolicy(cfg.hidden_sizes, action_dim, cfg.activation)
    critic = QEnsemble(cfg.hidden_sizes, cfg.head.num_outputs, cfg.activation, cfg.critic_layer_norm,
                       num_critics=cfg.num_critics)
    return actor, critic


def optimizers(cfg: Config) -> tuple[optax.GradientTransformation, optax.GradientTransformation]:
    actor = make_optimizer(OptimizerConfig(cfg.actor_lr, max_grad_norm=cfg.max_grad_norm))
    critic = make_optimizer(OptimizerConfig(cfg.critic_lr, max_grad_norm=cfg.max_grad_norm))
    return actor, critic


def check_spaces(observation_space: gym.Space, action_space: gym.Space) -> None:
    common.flat_box_dims(NAME, observation_space, action_space)


def init(cfg: Config, key: jax.Array, observation_space: gym.Space, action_space: gym.Space,
         plan: contract.RunPlan | None = None) -> State:
    obs_dim, action_dim = common.flat_box_dims(NAME, observation_space, action_space)
    actor, critic = networks(cfg, action_dim)
    actor_tx, critic_tx = optimizers(cfg)
    key, actor_key, critic_key = jax.random.split(key, 3)
    obs, action = jnp.zeros((1, obs_dim)), jnp.zeros((1, action_dim))
    actor_params = actor.init(actor_key, obs)
    actor_critic = common.fresh_actor_critic(actor_params, actor_tx, critic.init(critic_key, obs, action), critic_tx)
    return State(**actor_critic, target_actor_params=jax.tree.map(jnp.copy, actor_params), key=key,
                 steps=jnp.zeros((), jnp.int32), action_dim=action_dim)


def act(cfg: Config, state: State, obs: jax.Array, key: jax.Array, deterministic: bool) -> jax.Array:
    """obs [B, O] -> actions [B, A] in [-1, 1]: pi(s), plus clipped Gaussian exploration noise unless deterministic."""
    return contract.act_with(policy(cfg, state), state, obs, key, deterministic)


def policy(cfg: Config, state: State) -> contract.PolicyFunctions:
    """clip(pi(s) + exploration_noise * eps, -1, 1) with eps ~ N(0, I) [B, A] (#98 Alg. 1), or pi(s)."""
    actor, _ = networks(cfg, state.action_dim)
    action_dim = state.action_dim

    def act_(xp: Any, params: dict, obs: Any, noise: Any, deterministic: bool) -> Any:
        action = actor.forward(xp, params, obs)
        if deterministic or cfg.exploration_noise == 0.0:
            return action
        return xp.clip(action + cfg.exploration_noise * noise, -1.0, 1.0)

    return contract.PolicyFunctions(lambda state: state.actor_params["params"],
                           lambda key, batch: jax.random.normal(key, (batch, action_dim)), act_)


def update(cfg: Config, state: State, batch: Transition) -> tuple[State, common.Metrics]:
    """One critic step; every `policy_delay` steps also one actor step and the target updates (#98 Alg. 1)."""
    head = cfg.head
    actor, critic = networks(cfg, state.action_dim)
    actor_tx, critic_tx = optimizers(cfg)
    key, noise_key = jax.random.split(state.key)

    next_action = actor.apply(state.target_actor_params, batch.next_obs)
    noise = cfg.target_noise * jax.random.normal(noise_key, next_action.shape, next_action.dtype)
    noise = jnp.clip(noise, -cfg.target_noise_clip, cfg.target_noise_clip)
    next_action = jnp.clip(next_action + noise, -1.0, 1.0)
    next_out = heads.select_min(head, critic.apply(state.target_critic_params, batch.next_obs, next_action))
    discount_t = targets.discount(cfg.gamma, batch.terminated)
    target = jax.lax.stop_gradient(head.target(batch.reward, discount_t, next_out))

    def critic_loss_fn(params: dict) -> tuple[jax.Array, jax.Array]:
        out = critic.apply(params, batch.obs, batch.action)  # [E, B, K]
        return head.loss(out, target).mean(axis=-1).sum(), head.value(out).mean()

    critic_params, critic_opt_state, critic_loss, q_mean = common.gradient_step(
        critic_loss_fn, state.critic_params, state.critic_opt_state, critic_tx
    )

    def actor_loss_fn(params: dict) -> tuple[jax.Array, None]:
        action = actor.apply(params, batch.obs)
        q = head.value(critic.apply(critic_params, batch.obs, action))[0]  # Q_1 only (#98 Alg. 1)
        if cfg.bc_alpha == 0.0:
            return policy_losses.deterministic_actor_loss(q), None
        # TD3+BC (Fujimoto & Gu 2021, Eq. 3-4): lambda = alpha / mean|Q| normalises the Q term's scale.
        return policy_losses.td3bc_actor_loss(q, action, batch.action, cfg.bc_alpha), None

    def delayed_update(_: None) -> tuple[dict, optax.OptState, dict, dict, jax.Array]:
        actor_params, actor_opt_state, actor_loss, _ = common.gradient_step(
            actor_loss_fn, state.actor_params, state.actor_opt_state, actor_tx
        )
        return (
            actor_params,
            actor_opt_state,
            common.polyak(actor_params, state.target_actor_params, cfg.target_tau),
            common.polyak(critic_params, state.target_critic_params, cfg.target_tau),
            actor_loss,
        )

    def skip(_: None) -> tuple[dict, optax.OptState, dict, dict, jax.Array]:
        return (
            state.actor_params, state.actor_opt_state, state.target_actor_params, state.target_critic_params,
            jnp.full((), jnp.nan),
        )

    if cfg.policy_delay == 1:
        actor_params, actor_opt_state, target_actor, target_critic, actor_loss = delayed_update(None)
    else:
        is_actor_step = (state.steps + 1) % cfg.policy_delay == 0
        actor_params, actor_opt_state, target_actor, target_critic, actor_loss = jax.lax.cond(
            is_actor_step, delayed_update, skip, None
        )

    new_state = state.replace(
        actor_params=actor_params,
        actor_opt_state=actor_opt_state,
        target_actor_params=target_actor,
        critic_params=critic_params,
        critic_opt_state=critic_opt_state,
        target_critic_params=target_critic,
        key=key,
        steps=state.steps + 1,
    )
    return new_state, {"critic/loss": critic_loss, "critic/q_mean": q_mean, "actor/loss": actor_loss}


def update_many(cfg: Config, state: State, batches: Transition) -> tuple[State, common.Metrics]:
    """K gradient steps in one `lax.scan` over batches [K, B, ...]; metrics are [K] (actor/loss NaN on skipped steps)."""
    return common.scan_updates(partial(update, cfg), state, batches)
