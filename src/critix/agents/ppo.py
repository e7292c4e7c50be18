"""Proximal Policy Optimisation and advantage actor-critic (A2C), one module, two configs.

PPO (Schulman et al. 2017): the clipped surrogate L^CLIP (Eq. 7), a value loss and an entropy bonus combined as in
Eq. 9, several epochs of minibatch gradient steps over each rollout, GAE advantages (#240, Eq. 16) normalised per
minibatch. A2C is the synchronous A3C of Mnih et al. 2016 (#85, Alg. S3): one gradient step on the whole rollout
with the policy-gradient surrogate, n-step returns (GAE with lambda = 1) and an entropy bonus. A2C is exactly PPO
with one epoch, one minibatch and no clipping (at ratio 1 the unclipped surrogate's gradient is A grad log pi), so
it is `Config.a2c()` here rather than a second module: the rollout handling, networks and losses are shared.

`update(cfg, state, rollout)` consumes one `Rollout` whose transitions have time on axis 0: [T, ...] or
[T, N, ...] (N envs). The behaviour policy is the state's own policy (on-policy), so old log-probabilities and values are
recomputed from the state at the start of `update` instead of being carried in the rollout: any loop that stores
(obs, action, reward, next_obs, terminated, truncated) can train PPO, the host loop and the compiled loop alike.
`next_obs` is the real final observation where an episode ended: truncated steps bootstrap from its value.

Actions: a categorical policy for Discrete spaces (int32 indices), a diagonal Gaussian with a state-independent
log-std for Box spaces. Gaussian actions are not squashed (Schulman et al. 2017, Sec. 6.1): `act` returns raw
samples in the normalised [-1, 1] scale and the env loop clips them to the box; the update scores the raw sample.
"""

from __future__ import annotations

import dataclasses
import math
from functools import partial
from typing import Any

import flax.linen as nn
import gymnasium as gym
import jax
import jax.numpy as jnp
import optax
from flax import struct

from critix import policy_losses, validation
from critix.agents import common, configs, contract
from critix.nets.mlp import MLP
from critix.nets.policies import (
    CategoricalPolicy,
    GaussianPolicy,
    categorical_entropy,
    categorical_log_prob,
    gaussian_entropy,
    gaussian_log_prob,
)
from critix.optim import OptimizerConfig, make_optimizer
from critix.types import CritixError, Rollout, Transition
from critix.values import targets

NAME = "ppo"
KIND = "on-policy"
"""Trained by `critix.train.onpolicy` (host) or `critix.train.compiled` (JAX envs) from rollouts, not a buffer."""
RUN_DEFAULTS: dict[str, tuple[object, str]] = {
    "rollout_length": (2048, "Env steps per env in each rollout (PPO paper Table 3 horizon T; SB3 n_steps: "
                             "2048)."),
}
"""Run settings (`critix.train.RunConfig` fields) this agent starts from: name -> (value, meaning and source)."""
ACTIONS_IN_BOUNDS = False
"""Gaussian actions are raw samples; the env loop clips them to the action box."""


@common.vmappable("learning_rate", "adam_eps", "gamma", "gae_lambda", "entropy_coef", "value_coef",
                   "init_log_std")
@dataclasses.dataclass(frozen=True)
class Config(configs.AgentConfig):
    """PPO hyperparameters. Defaults: Stable-Baselines3 2.x PPO defaults (which reach 500 on CartPole-v1 in 100k
    steps), which follow Schulman et al. 2017 (Table 3, MuJoCo) unless a field says otherwise."""

    hidden_sizes: tuple[int, ...] = (64, 64)
    """Hidden layers of the separate policy and value networks (PPO paper Sec. 6.1; SB3 MlpPolicy: 64x64)."""
    activation: str = "tanh"
    """Hidden activation (PPO paper Sec. 6.1 and SB3: tanh)."""
    learning_rate: float = 3e-4
    """Adam learning rate of policy and value networks together (PPO paper Table 3; SB3: 3e-4)."""
    anneal_learning_rate: bool = False
    """Decay the learning rate linearly to 0 over the run (PPO paper Sec. 6.2 for Atari; CleanRL: on; SB3: off)."""
    anneal_steps: int = 0
    """Gradient steps the annealing spans; 0: the run's gradient steps (from its --steps, --rollout-length and
    --num-envs)."""
    adam_eps: float = 1e-5
    """Adam epsilon (SB3 ActorCriticPolicy and OpenAI baselines PPO2: 1e-5)."""
    max_grad_norm: float = 0.5
    """Global gradient-norm clip (OpenAI baselines PPO2 and SB3: 0.5); 0 disables."""
    minibatch_size: int = 64
    """Transitions per minibatch (PPO paper Table 3 and SB3 batch_size: 64); 0 uses the whole rollout. A rollout
    that is not a multiple of it drops a random remainder each epoch."""
    num_epochs: int = 10
    """Passes over each rollout (PPO paper Table 3 and SB3 n_epochs: 10)."""
    gamma: float = 0.99
    """Discount factor (PPO paper Table 3)."""
    gae_lambda: float = 0.95
    """GAE lambda (#240, Eq. 16; PPO paper Table 3: 0.95); 1 gives A3C's n-step returns."""
    clip_ratio: float = 0.2
    """Surrogate clipping epsilon (PPO paper Eq. 7 and Table 3: 0.2); 0 disables clipping (A2C)."""
    value_clip_ratio: float = 0.0
    """Clip value updates to this distance from the rollout's values (OpenAI baselines PPO2); 0 disables (SB3)."""
    entropy_coef: float = 0.0
    """Entropy bonus coefficient c2 (PPO paper Eq. 9; SB3 ent_coef: 0.0)."""
    value_coef: float = 0.5
    """Value loss coefficient c1 (PPO paper Eq. 9; SB3 vf_coef: 0.5), on the mean squared error."""
    normalize_advantage: bool = True
    """Normalise advantages to zero mean and unit std per minibatch (OpenAI baselines PPO2, SB3)."""
    init_log_std: float = 0.0
    """Initial log standard deviation of the Gaussian policy (SB3 log_std_init: 0.0)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        validation.check_range(self, "> 0", "learning_rate", "adam_eps", "value_coef")
        validation.check_range(self, ">= 0", "anneal_steps", "entropy_coef")
        validation.check_range(self, ">= 0 (0: whole rollout)", "minibatch_size")
        validation.check_range(self, ">= 1", "num_epochs")
        validation.check_range(self, "in [0, 1]", "gae_lambda")
        validation.check_range(self, "in [0, 1) (0: no clipping)", "clip_ratio")
        validation.check_range(self, ">= 0 (0: no clipping)", "value_clip_ratio")

    @classmethod
    def a2c(cls) -> Config:
        """A2C: synchronous A3C (#85). Defaults from SB3's A2C (lr 7e-4, n_steps 5, gae_lambda 1, vf 0.5,
        max_grad_norm 0.5, no advantage normalisation); Adam replaces SB3's RMSprop (alpha 0.99, eps 1e-5),
        as the library has one optimiser factory."""
        return cls(
            learning_rate=7e-4, minibatch_size=0, num_epochs=1, gae_lambda=1.0, clip_ratio=0.0,
            normalize_advantage=False,
        )


class State(struct.PyTreeNode):
    """Policy and value parameters, their one optimiser state, the key and the update count."""

    actor_params: dict
    critic_params: dict
    opt_state: optax.OptState
    key: jax.Array
    steps: jax.Array  # rollouts consumed (calls of `update`)
    discrete: bool = struct.field(pytree_node=False)
    anneal_steps: int = struct.field(pytree_node=False)  # gradient steps the learning rate decays over (0: constant)
    action_dim: int = struct.field(pytree_node=False)  # number of actions (Discrete) or action dimensions (Box)


def check_spaces(observation_space: gym.Space, action_space: gym.Space) -> tuple[int, bool, int]:
    """Flat Box observations; Discrete or bounded Box actions. Returns (obs_dim, discrete, action_dim)."""
    obs_dim = common.check_flat_obs(NAME, observation_space)
    common.unsupported_actions(NAME, action_space)
    if isinstance(action_space, gym.spaces.Discrete):
        return obs_dim, True, common.check_discrete_actions(NAME, action_space)
    if isinstance(action_space, gym.spaces.Box):
        return obs_dim, False, common.check_box_actions(NAME, action_space)
    raise CritixError(f"{NAME} supports Discrete and Box action spaces, got {action_space}")


def networks(cfg: Config, discrete: bool, action_dim: int) -> tuple[nn.Module, MLP]:
    if discrete:
        actor: nn.Module = CategoricalPolicy(cfg.hidden_sizes, action_dim, cfg.activation)
    else:
        actor = GaussianPolicy(cfg.hidden_sizes, action_dim, cfg.activation, cfg.init_log_std)
    return actor, MLP(cfg.hidden_sizes, 1, cfg.activation)


def optimizer(cfg: Config, anneal_steps: int) -> optax.GradientTransformation:
    """The library's one optimiser; annealing is its linear schedule over `anneal_steps` gradient steps."""
    schedule = "linear" if cfg.anneal_learning_rate else "constant"
    return make_optimizer(OptimizerConfig(cfg.learning_rate, schedule, anneal_steps,
                                          max_grad_norm=cfg.max_grad_norm, eps=cfg.adam_eps))


def gradient_steps_per_update(cfg: Config, rollout_size: int) -> int:
    """Gradient steps one `update` takes on a rollout of `rollout_size` transitions (T * N)."""
    minibatch = cfg.minibatch_size or rollout_size
    if minibatch > rollout_size:
        raise ValueError(
            f"minibatch_size ({cfg.minibatch_size}) must be <= the rollout size rollout_length x num_envs "
            f"({rollout_size}); lower --minibatch-size or raise --rollout-length/--num-envs"
        )
    return cfg.num_epochs * (rollout_size // minibatch)


def check_plan(cfg: Config, plan: contract.RunPlan) -> None:
    """A rollout (rollout_length x num_envs transitions) must fill the minibatches."""
    try:
        gradient_steps_per_update(cfg, plan.rollout_length * plan.num_envs)
    except ValueError as err:
        raise CritixError(str(err)) from None


def anneal_steps(cfg: Config, plan: contract.RunPlan) -> int:
    """Gradient steps an annealed learning rate decays over: `anneal_steps`, or every update of the planned run;
    0 for a constant rate."""
    if not cfg.anneal_learning_rate:
        return 0
    if cfg.anneal_steps:
        return cfg.anneal_steps
    if plan.steps <= 0:
        raise CritixError("anneal_learning_rate needs the run's length: set anneal_steps, or train through a run")
    rollout = plan.rollout_length * plan.num_envs
    return math.ceil(plan.steps / rollout) * gradient_steps_per_update(cfg, rollout)


def init(cfg: Config, key: jax.Array, observation_space: gym.Space, action_space: gym.Space,
         plan: contract.RunPlan | None = None) -> State:
    plan = contract.plan_or_default(plan, RUN_DEFAULTS)
    decay = anneal_steps(cfg, plan)
    obs_dim, discrete, action_dim = check_spaces(observation_space, action_space)
    actor, critic = networks(cfg, discrete, action_dim)
    key, actor_key, critic_key = jax.random.split(key, 3)
    obs = jnp.zeros((1, obs_dim))
    actor_params, critic_params = actor.init(actor_key, obs), critic.init(critic_key, obs)
    return State(
        actor_params=actor_params,
        critic_params=critic_params,
        opt_state=optimizer(cfg, decay).init((actor_params, critic_params)),
        key=key,
        steps=jnp.zeros((), jnp.int32),
        discrete=discrete,
        anneal_steps=decay,
        action_dim=action_dim,
    )


def act(cfg: Config, state: State, obs: jax.Array, key: jax.Array, deterministic: bool) -> jax.Array:
    """obs [B, O] -> actions: [B] int32 (Discrete; argmax when deterministic) or [B, A] float32 (Box; the mean
    when deterministic, else a raw Gaussian sample for the loop to clip)."""
    return contract.act_with(policy(cfg, state), state, obs, key, deterministic)


def policy(cfg: Config, state: State) -> contract.PolicyFunctions:
    """Categorical sampling (Discrete), or mean + std * eps with eps ~ N(0, I) [B, A], not clipped (Box)."""
    actor, _ = networks(cfg, state.discrete, state.action_dim)
    if state.discrete:
        return common.categorical_policy(actor, state.action_dim)
    action_dim = state.action_dim

    def act_(xp: Any, params: dict, obs: Any, noise: Any, deterministic: bool) -> Any:
        mean, log_std = actor.forward(xp, params, obs)
        return mean if deterministic else mean + xp.exp(log_std)[..., None, :] * noise

    return contract.PolicyFunctions(common.actor_params,
                                    lambda key, batch: jax.random.normal(key, (batch, action_dim)), act_)


def log_prob_and_entropy(
    cfg: Config, state: State, actor_params: dict, obs: jax.Array, action: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """log pi(a|s) and the policy entropy at each observation: obs [B, O] -> ([B], [B]). The networks run as their
    `forward` functions, the values of `apply`, whose dense layers differentiate faster on CPU (`critix.nets.mlp.matmul`)."""
    actor, _ = networks(cfg, state.discrete, state.action_dim)
    if state.discrete:
        logits = actor.forward(jnp, actor_params["params"], obs)
        return categorical_log_prob(logits, action), categorical_entropy(logits)
    mean, log_std = actor.forward(jnp, actor_params["params"], obs)
    return gaussian_log_prob(mean, log_std, action), gaussian_entropy(log_std, mean.shape[:-1])


def value(cfg: Config, state: State, critic_params: dict, obs: jax.Array) -> jax.Array:
    """V(obs): [..., O] -> [...] (the critic's `forward`, as in `log_prob_and_entropy`)."""
    _, critic = networks(cfg, state.discrete, state.action_dim)
    return critic.forward(jnp, critic_params["params"], obs)[..., 0]


FORWARD_BLOCK = 512
"""Rows per block of the forward passes over a whole rollout (`rollout_forward`)."""


def rollout_forward(cfg: Config, state: State, rollout: Transition) -> tuple[jax.Array, jax.Array, jax.Array]:
    """V(obs), V(next_obs) and log pi(action|obs) of a rollout [T, ...] (or [T, N, ...]) under the state's networks.

    The rows go through the networks in blocks of FORWARD_BLOCK (a `lax.map`): the values of one pass over all rows
    (XLA may round a log-probability 1 ulp differently at another shape), without its [S, rows, 64] activations,
    which miss the caches. On CPU, for 16 seeds x 8,192 rows (a compiled PPO iteration of 2.5 s), one pass took
    292 ms and blocks take 76 ms."""
    lead = rollout.reward.shape
    rows = math.prod(lead)
    data = jax.tree.map(lambda x: x.reshape(rows, *x.shape[len(lead):]),
                        (rollout.obs, rollout.next_obs, rollout.action))

    def forward(block: tuple) -> tuple[jax.Array, jax.Array, jax.Array]:
        obs, next_obs, action = block
        log_prob, _ = log_prob_and_entropy(cfg, state, state.actor_params, obs, action)
        return (value(cfg, state, state.critic_params, obs), value(cfg, state, state.critic_params, next_obs),
                log_prob)

    whole = (rows // FORWARD_BLOCK) * FORWARD_BLOCK
    if whole == 0:
        out = forward(data)
    else:
        blocks = jax.tree.map(lambda x: x[:whole].reshape(whole // FORWARD_BLOCK, FORWARD_BLOCK, *x.shape[1:]), data)
        out = jax.tree.map(lambda x: x.reshape(whole), jax.lax.map(forward, blocks))
        if whole < rows:
            rest = forward(jax.tree.map(lambda x: x[whole:], data))
            out = jax.tree.map(lambda a, b: jnp.concatenate([a, b]), out, rest)
    return jax.tree.map(lambda x: x.reshape(lead), out)


def advantages_and_returns(
    cfg: Config, state: State, rollout: Transition, forward: tuple[jax.Array, jax.Array, jax.Array] | None = None
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """GAE advantages, lambda-returns and V(obs) of a rollout [T, ...] under the state's value network (`forward`:
    `rollout_forward`'s values, when already computed)."""
    v_tm1, v_t, _ = rollout_forward(cfg, state, rollout) if forward is None else forward
    discount_t = targets.discount(cfg.gamma, rollout.terminated)
    end_t = jnp.maximum(rollout.terminated.astype(jnp.float32), rollout.truncated.astype(jnp.float32))
    advantage = targets.gae_advantages(rollout.reward, discount_t, v_tm1, v_t, end_t, cfg.gae_lambda)
    return advantage, advantage + v_tm1, v_tm1


class Minibatch(struct.PyTreeNode):
    obs: jax.Array
    action: jax.Array
    old_log_prob: jax.Array
    old_value: jax.Array
    advantage: jax.Array
    target: jax.Array


def loss(cfg: Config, state: State, params: tuple[dict, dict], batch: Minibatch) -> tuple[jax.Array, dict]:
    """PPO's combined objective (Schulman et al. 2017, Eq. 9), negated: L^CLIP - c1 L^VF + c2 S."""
    actor_params, critic_params = params
    log_prob, entropy = log_prob_and_entropy(cfg, state, actor_params, batch.obs, batch.action)
    log_ratio = log_prob - batch.old_log_prob
    ratio = jnp.exp(log_ratio)
    advantage = batch.advantage
    if cfg.normalize_advantage:
        advantage = (advantage - advantage.mean()) / (advantage.std() + 1e-8)
    policy_loss = policy_losses.ppo_clip_loss(ratio, advantage, cfg.clip_ratio).mean()
    v = value(cfg, state, critic_params, batch.obs)
    value_loss = policy_losses.value_regression_loss(v, batch.old_value, batch.target, cfg.value_clip_ratio).mean()
    entropy = entropy.mean()
    total = policy_loss + cfg.value_coef * value_loss - cfg.entropy_coef * entropy
    aux = {
        "actor/loss": policy_loss,
        "critic/loss": value_loss,
        "actor/entropy": entropy,
        # (r - 1) - log r: an unbiased, non-negative estimate of KL(old || new) (Schulman's "approximating KL").
        "actor/approx_kl": jnp.mean((ratio - 1.0) - log_ratio),
        "actor/clip_fraction": jnp.mean((jnp.abs(ratio - 1.0) > cfg.clip_ratio).astype(jnp.float32)),
    }
    return total, aux


def update(cfg: Config, state: State, data: Rollout) -> tuple[State, common.Metrics]:
    """Consume one rollout [T, ...] (or [T, N, ...]): num_epochs passes of minibatch steps on the PPO loss."""
    rollout = data.transitions
    forward = rollout_forward(cfg, state, rollout)
    advantage, target, old_value = advantages_and_returns(cfg, state, rollout, forward)
    old_log_prob = forward[2]
    size = advantage.size
    lead = advantage.ndim  # the [T] or [T, N] axes, flattened into one sample axis
    data = Minibatch(rollout.obs, rollout.action, old_log_prob, old_value, advantage, target)
    data = jax.tree.map(lambda x: x.reshape(size, *x.shape[lead:]), data)
    num_minibatches = gradient_steps_per_update(cfg, size) // cfg.num_epochs
    minibatch = size // num_minibatches
    tx = optimizer(cfg, state.anneal_steps)
    key, epoch_key = jax.random.split(state.key)

    def minibatch_step(carry: tuple, batch: Minibatch) -> tuple[tuple, dict]:
        params, opt_state = carry
        params, opt_state, total, aux = common.gradient_step(partial(loss, cfg, state, batch=batch), params,
                                                            opt_state, tx)
        return (params, opt_state), {**aux, "loss/total": total}

    def epoch(carry: tuple, key: jax.Array) -> tuple[tuple, dict]:
        order = common.permutation(key, size)[: num_minibatches * minibatch]
        batches = jax.tree.map(lambda x: x[order].reshape(num_minibatches, minibatch, *x.shape[1:]), data)
        return jax.lax.scan(minibatch_step, carry, batches)

    params = (state.actor_params, state.critic_params)
    (params, opt_state), metrics = jax.lax.scan(
        epoch, (params, state.opt_state), jax.random.split(epoch_key, cfg.num_epochs)
    )
    metrics = jax.tree.map(jnp.mean, metrics)
    variance = jnp.var(target)
    metrics["critic/explained_variance"] = 1.0 - jnp.var(target - old_value) / jnp.maximum(variance, 1e-8)
    metrics["critic/value_mean"] = old_value.mean()
    new_state = state.replace(actor_params=params[0], critic_params=params[1], opt_state=opt_state, key=key,
                              steps=state.steps + 1)
    return new_state, metrics


def update_many(cfg: Config, state: State, rollouts: Rollout) -> tuple[State, common.Metrics]:
    """K rollouts [K, T, ...] one after the other in one `lax.scan`; metrics are [K]."""
    return common.scan_updates(partial(update, cfg), state, rollouts)
