"""Behaviour cloning: maximise the likelihood of the dataset's actions, max_pi E_D[log pi(a|s)].

The offline baseline every offline method must beat (Fu et al. 2020, D4RL, Sec. 6). The policy is the Gaussian
of `critix.nets.policies.BoundedGaussianPolicy` (tanh mean, state-independent log-std), the same actor IQL trains with
advantage weights, so BC is IQL's actor loss with every weight equal to 1. It uses no reward and no critic.
"""

from __future__ import annotations

import dataclasses
from functools import partial

import gymnasium as gym
import jax
import jax.numpy as jnp
import optax
from flax import struct

from critix.agents import common, configs, contract
from critix.nets.policies import BoundedGaussianPolicy, gaussian_log_prob
from critix.optim import OptimizerConfig, make_optimizer
from critix.types import Transition

NAME = "bc"
KIND = "offline"
USES_REWARDS = False
"""BC ignores rewards and termination flags (the conformance harness skips its bootstrapping checks)."""


@common.vmappable("actor_lr")
@dataclasses.dataclass(frozen=True)
class Config(configs.GradientClip):
    """BC hyperparameters (d3rlpy 2.8 BC defaults for the learning rate; network (IQL's actor) and batch as the
    other agents)."""

    actor_lr: float = 1e-3
    """Policy learning rate (d3rlpy BCConfig: 1e-3)."""
    batch_size: int = 256
    """Minibatch size."""


class State(struct.PyTreeNode):
    actor_params: dict
    actor_opt_state: optax.OptState
    steps: jax.Array
    action_dim: int = struct.field(pytree_node=False)


def networks(cfg: Config, action_dim: int) -> BoundedGaussianPolicy:
    return BoundedGaussianPolicy(cfg.hidden_sizes, action_dim, cfg.activation)


def optimizer(cfg: Config) -> optax.GradientTransformation:
    return make_optimizer(OptimizerConfig(cfg.actor_lr, max_grad_norm=cfg.max_grad_norm))


def check_spaces(observation_space: gym.Space, action_space: gym.Space) -> None:
    common.flat_box_dims(NAME, observation_space, action_space)


def init(cfg: Config, key: jax.Array, observation_space: gym.Space, action_space: gym.Space,
         plan: contract.RunPlan | None = None) -> State:
    obs_dim, action_dim = common.flat_box_dims(NAME, observation_space, action_space)
    params = networks(cfg, action_dim).init(key, jnp.zeros((1, obs_dim)))
    return State(params, optimizer(cfg).init(params), jnp.zeros((), jnp.int32), action_dim)


def act(cfg: Config, state: State, obs: jax.Array, key: jax.Array, deterministic: bool) -> jax.Array:
    """obs [B, O] -> actions [B, A] in [-1, 1]: the Gaussian mean, or a clipped sample."""
    return contract.act_with(policy(cfg, state), state, obs, key, deterministic)


def policy(cfg: Config, state: State) -> contract.PolicyFunctions:
    """The Gaussian mean, or a sample clipped to [-1, 1] (`critix.agents.common.clipped_gaussian_policy`)."""
    return common.clipped_gaussian_policy(networks(cfg, state.action_dim), state.action_dim)


def update(cfg: Config, state: State, batch: Transition) -> tuple[State, common.Metrics]:
    """One step of negative log-likelihood on the batch's (obs, action) pairs."""
    actor = networks(cfg, state.action_dim)

    def loss_fn(params: dict) -> tuple[jax.Array, jax.Array]:
        mean, log_std = actor.apply(params, batch.obs)
        return -jnp.mean(gaussian_log_prob(mean, log_std, batch.action)), jnp.mean(jnp.square(mean - batch.action))

    params, opt_state, loss, mse = common.gradient_step(loss_fn, state.actor_params, state.actor_opt_state,
                                                        optimizer(cfg))
    new_state = state.replace(actor_params=params, actor_opt_state=opt_state, steps=state.steps + 1)
    return new_state, {"actor/loss": loss, "actor/mse": mse}


def update_many(cfg: Config, state: State, batches: Transition) -> tuple[State, common.Metrics]:
    """K gradient steps in one `lax.scan` over batches [K, B, ...]; metrics are [K]."""
    return common.scan_updates(partial(update, cfg), state, batches)
