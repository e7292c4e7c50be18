"""DQN and its family in one module: double Q, dueling streams, n-step returns, target network, epsilon-greedy,
any value head (C51, QR-DQN, HL-Gauss, two-hot are `value_head` configs, flag --critic-head).

- DQN — Mnih et al. 2015, "Human-level control through deep RL": Q-learning on replayed minibatches against
  a periodically copied target network, Huber loss on the TD error, epsilon-greedy exploration.
- Double DQN — van Hasselt et al. 2016: the online network picks a' = argmax_a Q(s', a), the target network
  evaluates it (their Eq. 4).
- Dueling — Wang et al. 2016 (#221): Q = V + A - mean_a A (Eq. 9), `critix.nets.discrete.DiscreteQNetwork`.
- n-step returns — Sutton 1988; Hessel et al. 2018 (Rainbow): r_t + ... + gamma^(n-1) r_{t+n-1} + gamma^n Q(s_{t+n}).
- Heads — C51 (#217): `critic_head=c51`; QR-DQN (Dabney et al. 2018): `quantile`; classification (#7):
  `hl-gauss`, `two-hot`. The greedy action maximises the head's value (the mean of the return distribution).
The target network moves every `target_update_period` gradient steps by Polyak averaging with `target_tau`
(1.0 is DQN's hard copy).
- Prioritized replay — Schaul et al. 2016 (`prioritized=True`): the agent keeps a sum-tree of priorities over the
  replay slots in its State and samples its own batches (`register_items`, `update_prioritized`, called by the
  host loop); priorities are |TD error| for the scalar head and the per-sample loss for the others (as Rainbow).
- Pixels — `encoder` "nature" (Mnih et al. 2015) or "drq" (#63) in front of the MLP; `augmentation_pad` > 0 applies
  DrQ's random shift to obs and next_obs of every batch (#63 Sec. 3.1, with K = M = 1 as in its Atari DQN runs).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from functools import partial

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct

from typing import Any

from critix import policy_losses, validation
from critix.agents import common, configs, contract
from critix.data import prioritized as per
from critix.data.replay import ReplayBuffer
from critix.nets.encoders import ENCODERS, random_shift
from critix.nets.discrete import DiscreteQNetwork
from critix.optim import OptimizerConfig, make_optimizer
from critix.types import CritixError, Transition
from critix.values import heads, targets

NAME = "dqn"
KIND = "off-policy"
RUN_DEFAULTS: dict[str, tuple[object, str]] = {
    "buffer_size": (1_000_000, "Replay capacity per seed (SB3 DQN, Mnih et al. 2015: 1e6)."),
    "learning_starts": (100, "Env steps per seed with uniform random actions before updates start (SB3 2.x "
                             "DQN: 100)."),
    "utd_ratio": (0.25, "Gradient steps per env step per seed (SB3 DQN: train_freq 4, gradient_steps 1)."),
}
"""Run settings (`critix.train.RunConfig` fields) this agent starts from: name -> (value, meaning and source)."""
ACTIONS = "discrete"
"""The action space this agent needs (the host loop and the conformance harness read it)."""


@common.vmappable("q_lr", "gamma", "target_tau", "epsilon_start", "epsilon_end", "priority_alpha",
                   "priority_beta", "priority_eps")
@dataclasses.dataclass(frozen=True)
class Config(configs.CriticHead):
    """DQN hyperparameters. Defaults: Stable-Baselines3 2.x DQN (itself after Mnih et al. 2015) unless a field says
    otherwise; `critix.agents.tuned` holds tuned values per classic env (after RL Zoo's hyperparameter files)."""

    hidden_sizes: tuple[int, ...] = (64, 64)
    """Hidden layer sizes of the Q network (SB3 DQN MlpPolicy: [64, 64])."""
    dueling: bool = False
    """Dueling value/advantage streams (#221); off in DQN."""
    double_q: bool = True
    """Double DQN target: online argmax, target evaluation (van Hasselt et al. 2016). SB3 DQN has it off."""
    value_head: heads.HeadConfig = heads.HeadConfig(num_bins=51, scalar_loss="huber")
    """The Q network's value head (`critix.values.heads.HeadConfig`): scalar with the Huber loss (Mnih et al. 2015;
    SB3 smooth_l1), 51 atoms for c51 (#217)."""
    q_lr: float = 1e-4
    """Adam learning rate (SB3 DQN: 1e-4)."""
    q_lr_decay_steps: int = 0
    """If > 0, the learning rate decays linearly to 0 over this many gradient steps (RL Zoo's `lin_` schedules);
    0 keeps it constant (SB3)."""
    max_grad_norm: float = 10.0
    """Global gradient-norm clip (SB3 DQN: 10); 0 disables."""
    gamma: float = 0.99
    """Discount factor (SB3 DQN, Mnih et al. 2015: 0.99)."""
    n_step: int = 1
    """Steps summed in the bootstrap target (1: DQN; Rainbow uses 3)."""
    target_tau: float = 1.0
    """Polyak rate of the target update; 1.0 copies the online network (Mnih et al. 2015; SB3 tau=1)."""
    target_update_period: int = 2_500
    """Gradient steps between target updates (SB3: every 10,000 env steps at 1 update per 4 env steps = 2,500)."""
    batch_size: int = 32
    """Minibatch size (SB3 DQN, Mnih et al. 2015: 32)."""
    epsilon_start: float = 1.0
    """Exploration rate at the start of the schedule (SB3 exploration_initial_eps: 1.0)."""
    epsilon_end: float = 0.05
    """Exploration rate after `exploration_steps` (SB3 exploration_final_eps: 0.05)."""
    exploration_steps: int = 10_000
    """Env steps per seed of the linear epsilon decay (SB3: exploration_fraction 0.1 of the run; 10k of 100k)."""
    encoder: str = "mlp"
    """Observation encoder: 'mlp' for flat observations, 'nature' (Nature-CNN) or 'drq' (DrQ) for images [H, W, C]."""
    augmentation_pad: int = 0
    """DrQ random-shift padding in pixels for image observations (#63: 4 for 84x84); 0 disables augmentation."""
    prioritized: bool = False
    """Prioritized replay with a sum-tree (Schaul et al. 2016); off in DQN."""
    priority_alpha: float = 0.6
    """Priority exponent: P(j) ~ p_j^alpha (Schaul et al. 2016, proportional variant: 0.6)."""
    priority_beta: float = 0.4
    """Importance-sampling exponent, kept constant here (Schaul et al. 2016 anneal it from 0.4 to 1)."""
    priority_eps: float = 1e-6
    """Added to |TD error| so no item's priority is zero."""

    def __post_init__(self) -> None:
        super().__post_init__()
        validation.check_range(self, ">= 1", "target_update_period", "n_step")
        validation.check_range(self, ">= 0", "q_lr_decay_steps", "exploration_steps", "augmentation_pad",
                               "priority_alpha")
        validation.check_range(self, "in [0, 1]", "epsilon_start", "epsilon_end", "priority_beta")
        validation.check_range(self, "> 0", "priority_eps")
        if not (self.encoder == "mlp" or self.encoder in ENCODERS):
            raise ValueError(f"encoder must be 'mlp' or one of {sorted(ENCODERS)}, got {self.encoder!r}")
        if self.augmentation_pad and self.encoder == "mlp":
            raise ValueError("augmentation_pad needs image observations: set --encoder nature or drq")
        if self.prioritized and self.n_step > 1:
            raise ValueError("prioritized replay works with n_step 1 only; set --n-step 1 or --no-prioritized")


class State(struct.PyTreeNode):
    """Online and target Q parameters, optimiser state, the gradient-step count, a key (image augmentation) and,
    with prioritized replay, the sum-tree of replay priorities (None otherwise)."""

    q_params: dict
    opt_state: optax.OptState
    target_q_params: dict
    steps: jax.Array  # gradient steps taken
    key: jax.Array  # for image augmentation
    priorities: Any  # per.SumTree over the replay slots, or None
    num_actions: int = struct.field(pytree_node=False)
    learning_starts: int = struct.field(pytree_node=False)  # of the run: where the epsilon schedule's env steps start
    utd_ratio: float = struct.field(pytree_node=False)  # of the run: gradient steps per env step


def network(cfg: Config, num_actions: int) -> DiscreteQNetwork:
    return DiscreteQNetwork(cfg.hidden_sizes, num_actions, cfg.head.num_outputs, cfg.activation, cfg.dueling,
                            encoder=cfg.encoder)


def optimizer(cfg: Config) -> optax.GradientTransformation:
    if cfg.q_lr_decay_steps:
        schedule = OptimizerConfig(cfg.q_lr, "linear", cfg.q_lr_decay_steps, max_grad_norm=cfg.max_grad_norm)
        return make_optimizer(schedule)
    return make_optimizer(OptimizerConfig(cfg.q_lr, max_grad_norm=cfg.max_grad_norm))


def check_spaces(observation_space: gym.Space, action_space: gym.Space) -> None:
    """Flat vectors or images [H, W, C] (which need `encoder`; `init` checks the pair), and discrete actions."""
    if not (isinstance(observation_space, gym.spaces.Box) and len(observation_space.shape) == 3):
        common.check_flat_obs(NAME, observation_space)
    common.check_discrete_actions(NAME, action_space)


def check_obs(cfg: Config, observation_space: gym.Space) -> jax.Array:
    """A zero example observation [1, ...] of the space the encoder needs: flat for 'mlp', [H, W, C] for pixels."""
    is_image = isinstance(observation_space, gym.spaces.Box) and len(observation_space.shape) == 3
    if cfg.encoder == "mlp" and is_image:
        raise CritixError(f"{NAME}: image observations {observation_space.shape} need a pixel encoder: "
                          "add --encoder nature (or drq)")
    if cfg.encoder == "mlp":
        return jnp.zeros((1, common.check_flat_obs(NAME, observation_space)))
    if not is_image:
        raise CritixError(f"{NAME}: --encoder {cfg.encoder} needs image observations [H, W, C], got {observation_space}")
    return jnp.zeros((1, *observation_space.shape), jnp.uint8)


def init(cfg: Config, key: jax.Array, observation_space: gym.Space, action_space: gym.Space,
         plan: contract.RunPlan | None = None) -> State:
    plan = contract.plan_or_default(plan, RUN_DEFAULTS)
    example = check_obs(cfg, observation_space)
    num_actions = common.check_discrete_actions(NAME, action_space)
    key, init_key = jax.random.split(key)
    params = network(cfg, num_actions).init(init_key, example)
    return State(
        q_params=params,
        opt_state=optimizer(cfg).init(params),
        target_q_params=jax.tree.map(jnp.copy, params),
        steps=jnp.zeros((), jnp.int32),
        key=key,
        priorities=per.init(plan.buffer_size) if cfg.prioritized else None,
        num_actions=num_actions,
        learning_starts=plan.learning_starts,
        utd_ratio=plan.utd_ratio,
    )


def epsilon(cfg: Config, state: State, gradient_steps: jax.Array) -> jax.Array:
    """Linear epsilon schedule over env steps per seed, counted as learning_starts + gradient_steps / utd_ratio
    (the run's, kept in the state; `critix.policy_losses.linear_epsilon` with these numbers)."""
    return policy_losses.linear_epsilon(gradient_steps, state.learning_starts, state.utd_ratio, cfg.exploration_steps,
                                        cfg.epsilon_start, cfg.epsilon_end)


def q_values(cfg: Config, params: dict, obs: jax.Array, num_actions: int) -> jax.Array:
    """obs [B, O] -> Q values [B, A] (the head's expected value)."""
    return cfg.head.value(network(cfg, num_actions).apply(params, obs))


def act(cfg: Config, state: State, obs: jax.Array, key: jax.Array, deterministic: bool) -> jax.Array:
    """obs [B, O] -> actions [B] int32: greedy, or epsilon-greedy with the scheduled epsilon."""
    return contract.act_with(policy(cfg, state), state, obs, key, deterministic)


def policy(cfg: Config, state: State) -> contract.PolicyFunctions:
    """Epsilon-greedy on the head's value: the Q parameters and the scheduled epsilon; per observation one
    uniform (explore if below epsilon) and one uniform random action."""
    net, head, num_actions = network(cfg, state.num_actions), cfg.head, state.num_actions

    def params(state: State) -> dict:  # epsilon [1]: it broadcasts against the B observations of a seed
        return {"q": state.q_params["params"], "epsilon": epsilon(cfg, state, state.steps)[None]}

    def noise(key: jax.Array, batch: int) -> dict:
        explore_key, action_key = jax.random.split(key)
        return {"explore": jax.random.uniform(explore_key, (batch,)),
                "action": jax.random.randint(action_key, (batch,), 0, num_actions, jnp.int32)}

    def act_(xp: Any, params: dict, obs: Any, noise: dict | None, deterministic: bool) -> Any:
        explore = None if deterministic else noise["explore"] < params["epsilon"]
        # On the host (every env step, often one observation) the network runs only where some env acts greedily;
        # the same actions, without the forward pass in the exploring steps.
        if xp is np and explore is not None and np.count_nonzero(explore) == explore.size:
            return noise["action"]
        greedy = head.value(net.forward(xp, params["q"], obs), xp).argmax(axis=-1).astype(xp.int32)
        if explore is None or (xp is np and not np.count_nonzero(explore)):
            return greedy
        return xp.where(explore, noise["action"], greedy)

    return contract.PolicyFunctions(params, noise, act_, host=cfg.encoder == "mlp")


def bootstrap_inputs(cfg: Config, batch: Transition) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array, jax.Array]:
    """(obs, action, r_t, discount_t, next_obs) of a batch: plain [B, ...], or n-step sequences [B, n, ...]."""
    if cfg.n_step == 1:
        return batch.obs, batch.action, batch.reward, targets.discount(cfg.gamma, batch.terminated), batch.next_obs
    r_t, discount_t, last = targets.n_step_return(batch.reward, batch.terminated, batch.truncated, cfg.gamma)
    index = last.reshape(-1, 1, *([1] * (batch.next_obs.ndim - 2)))  # [B, 1, 1...] for flat or image obs
    next_obs = jnp.take_along_axis(batch.next_obs, index, axis=1)[:, 0]
    return batch.obs[:, 0], batch.action[:, 0], r_t, discount_t, next_obs


def update_weighted(
    cfg: Config, state: State, batch: Transition, weights: jax.Array
) -> tuple[State, common.Metrics, jax.Array]:
    """One gradient step on a batch [B, ...] ([B, n, ...] when n_step > 1) with per-sample loss weights [B];
    also returns each sample's new priority [B] (|TD error| for the scalar head, else the sample's loss)."""
    head, net, tx = cfg.head, network(cfg, state.num_actions), optimizer(cfg)
    obs, action, r_t, discount_t, next_obs = bootstrap_inputs(cfg, batch)
    action = action.astype(jnp.int32)
    key, obs_key, next_key = jax.random.split(state.key, 3)
    if cfg.augmentation_pad:  # DrQ random shift, independent for obs and next_obs (#63 Alg. 1, K = M = 1)
        obs = random_shift(obs_key, obs, cfg.augmentation_pad)
        next_obs = random_shift(next_key, next_obs, cfg.augmentation_pad)

    next_out = net.apply(state.target_q_params, next_obs)  # [B, A, K]
    chooser = net.apply(state.q_params, next_obs) if cfg.double_q else next_out
    next_action = jnp.argmax(head.value(chooser), axis=-1)  # [B]
    next_out = jnp.take_along_axis(next_out, next_action[:, None, None], axis=1)[:, 0]  # [B, K]
    target = jax.lax.stop_gradient(head.target(r_t, discount_t, next_out))

    def loss_fn(params: dict) -> tuple[jax.Array, tuple[jax.Array, jax.Array]]:
        out = jnp.take_along_axis(net.apply(params, obs), action[:, None, None], axis=1)[:, 0]  # [B, K]
        per_sample = head.loss(out, target)  # [B]
        if isinstance(head, heads.ScalarHead):
            priority = jnp.abs(head.value(out) - target)
        else:
            priority = per_sample
        return jnp.mean(weights * per_sample), (head.value(out).mean(), priority)

    params, opt_state, loss, (q_mean, priority) = common.gradient_step(loss_fn, state.q_params, state.opt_state, tx)
    steps = state.steps + 1
    moved = common.polyak(params, state.target_q_params, cfg.target_tau)
    is_target_step = steps % cfg.target_update_period == 0
    target = jax.tree.map(lambda new, old: jnp.where(is_target_step, new, old), moved, state.target_q_params)
    new_state = state.replace(q_params=params, opt_state=opt_state, target_q_params=target, steps=steps, key=key)
    metrics = {"critic/loss": loss, "critic/q_mean": q_mean, "explore/epsilon": epsilon(cfg, state, steps)}
    return new_state, metrics, jax.lax.stop_gradient(priority)


def update(cfg: Config, state: State, batch: Transition) -> tuple[State, common.Metrics]:
    """One gradient step on a uniformly sampled batch [B, ...] ([B, n, ...] when n_step > 1)."""
    state, metrics, _ = update_weighted(cfg, state, batch, jnp.ones(batch.reward.shape[:1]))
    return state, metrics


def update_many(cfg: Config, state: State, batches: Transition) -> tuple[State, common.Metrics]:
    """K gradient steps in one `lax.scan` over batches [K, B, ...]; metrics are [K]."""
    return common.scan_updates(partial(update, cfg), state, batches)


# --- data paths: uniform, n-step sequences, prioritized replay ------------------------------------------------


def data_path(cfg: Config) -> contract.DataPath:
    """How the replay buffer feeds this agent: by priority (`prioritized`), as n-step sequences, or uniformly."""
    if cfg.prioritized:
        return contract.DataPath(
            "prioritized replay", (cfg.batch_size,),
            update=lambda state, buffer, key, num_updates, num_envs, prepare: update_prioritized(
                cfg, state, buffer, key, num_updates, prepare),
            after_add=partial(register_items, cfg), drops_items=False)
    if cfg.n_step > 1:
        return contract.sequences(partial(update_many, cfg), cfg.batch_size, cfg.n_step, partial(update, cfg))
    return contract.uniform(partial(update_many, cfg), cfg.batch_size, partial(update, cfg))


def register_items(cfg: Config, state: State, buffer: ReplayBuffer, num_items: int) -> State:
    """Give the `num_items` items just written to `buffer` the highest priority seen so far (#PER Alg. 1 line 6)."""
    capacity = buffer.data.reward.shape[0]
    index = (buffer.position - num_items + jnp.arange(num_items)) % capacity
    tree = state.priorities
    return state.replace(priorities=per.set_priorities(tree, index, jnp.full((num_items,), tree.max_priority)))


def update_prioritized(
    cfg: Config,
    state: State,
    buffer: ReplayBuffer,
    key: jax.Array,
    num_updates: int,
    prepare: Callable[[Transition], Transition] = lambda b: b,
) -> tuple[State, common.Metrics]:
    """`num_updates` gradient steps, each on a batch drawn by priority, with importance weights; the sampled
    items' priorities are refreshed after each step (#PER Alg. 1). `prepare` maps a raw batch (e.g. normalises
    observations). Metrics are [K]."""

    def step(state: State, step_key: jax.Array) -> tuple[State, common.Metrics]:
        index, prob = per.sample(state.priorities, step_key, cfg.batch_size, buffer.size)
        batch = prepare(jax.tree.map(lambda x: x[index], buffer.data))
        weights = per.importance_weights(prob, buffer.size, cfg.priority_beta)
        state, metrics, priority = update_weighted(cfg, state, batch, weights)
        tree = per.set_priorities(state.priorities, index, jnp.power(priority + cfg.priority_eps, cfg.priority_alpha))
        return state.replace(priorities=tree), metrics

    return jax.lax.scan(step, state, jax.random.split(key, num_updates))
