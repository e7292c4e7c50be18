"""Policies for continuous actions in [-1, 1]: tanh-Gaussian (SAC) and deterministic (DDPG/TD3).

Environment bounds are applied outside the agent (`critix.envs.gym.scale_action`), so every policy acts
in [-1, 1]^A. Shapes: B batch, A action dimensions.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from critix.nets.mlp import MLP, dense, mlp_forward

LOG_STD_MIN = -20.0  # SAC reference implementation (Haarnoja et al. 2018) clips log-std to [-20, 2]
LOG_STD_MAX = 2.0


class ContinuousPolicy(nn.Module):
    """What the policies acting in [-1, 1]^A from an MLP torso share: the torso's hidden layers, activation
    and LayerNorm, and the action dimension A. Subclasses define `__call__`."""

    hidden_sizes: Sequence[int]
    action_dim: int
    activation: str = "relu"
    layer_norm: bool = False

    def mlp(self, output_size: int | None) -> MLP:
        """The torso, ending in `output_size` linear units (None: in the last hidden layer). Call it from
        `__call__` only: its parameters are named as if `__call__` built the MLP itself (MLP_0)."""
        return MLP(self.hidden_sizes, output_size, self.activation, self.layer_norm)

    @nn.nowrap
    def torso(self, xp: Any, params: dict, obs: Any, output: bool) -> Any:
        """`mlp`'s function over the array namespace `xp` (for `forward`), on the policy's parameters."""
        return mlp_forward(xp, params.get("MLP_0", {}), obs, len(self.hidden_sizes), output, self.activation,
                           self.layer_norm)


class TanhGaussianPolicy(ContinuousPolicy):
    """obs [B, O] -> (mean [B, A], log_std [B, A]) of the Gaussian before the tanh squashing."""

    @nn.compact
    def __call__(self, obs: jax.Array) -> tuple[jax.Array, jax.Array]:
        x = self.mlp(None)(obs)
        mean = nn.Dense(self.action_dim)(x)
        log_std = jnp.clip(nn.Dense(self.action_dim)(x), LOG_STD_MIN, LOG_STD_MAX)
        return mean, log_std

    @nn.nowrap
    def forward(self, xp: Any, params: dict, obs: Any) -> tuple[Any, Any]:
        """`__call__` over the array namespace `xp` (`critix.nets.mlp`'s module docstring)."""
        x = self.torso(xp, params, obs, False)
        return dense(xp, params["Dense_0"], x), xp.clip(dense(xp, params["Dense_1"], x), LOG_STD_MIN, LOG_STD_MAX)


class DeterministicPolicy(ContinuousPolicy):
    """obs [B, O] -> tanh(MLP(obs)) in [-1, 1]^A."""

    @nn.compact
    def __call__(self, obs: jax.Array) -> jax.Array:
        return jnp.tanh(self.mlp(self.action_dim)(obs))

    @nn.nowrap
    def forward(self, xp: Any, params: dict, obs: Any) -> Any:
        """`__call__` over the array namespace `xp` (`critix.nets.mlp`'s module docstring)."""
        return xp.tanh(self.torso(xp, params, obs, True))


def tanh_gaussian_sample(
    key: jax.Array, mean: jax.Array, log_std: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """Reparameterised sample a = tanh(mean + std * eps) and its log-density log pi(a|s), summed over A.

    The change of variables is SAC's Eq. 21 (Haarnoja et al. 2018, Appendix C), with the stable identity
    log(1 - tanh(u)^2) = 2 * (log 2 - u - softplus(-2u)).
    """
    eps = jax.random.normal(key, mean.shape, mean.dtype)
    u = mean + jnp.exp(log_std) * eps
    gaussian_log_prob = -0.5 * jnp.square(eps) - log_std - 0.5 * jnp.log(2.0 * jnp.pi)
    log_det = 2.0 * (jnp.log(2.0) - u - jax.nn.softplus(-2.0 * u))
    return jnp.tanh(u), jnp.sum(gaussian_log_prob - log_det, axis=-1)


def tanh_gaussian_mode(mean: jax.Array) -> jax.Array:
    """The deterministic (evaluation) action tanh(mean)."""
    return jnp.tanh(mean)


class BoundedGaussianPolicy(ContinuousPolicy):
    """obs [B, O] -> (mean [B, A] = tanh(MLP(obs)), log_std [A]): a Gaussian whose mean lies in [-1, 1] and whose
    log-std is a state-independent parameter, as in IQL's reference actor (Kostrikov et al. 2022, appendix;
    `tanh_squash_distribution=False`). Dataset actions at the bounds keep a finite likelihood, unlike under a
    tanh-squashed density, which suits advantage-weighted and behaviour-cloning regression."""

    @nn.compact
    def __call__(self, obs: jax.Array) -> tuple[jax.Array, jax.Array]:
        mean = jnp.tanh(self.mlp(self.action_dim)(obs))
        log_std = self.param("log_std", nn.initializers.zeros, (self.action_dim,))
        return mean, jnp.clip(log_std, -5.0, 2.0)  # IQL reference bounds on the log-std

    @nn.nowrap
    def forward(self, xp: Any, params: dict, obs: Any) -> tuple[Any, Any]:
        """`__call__` over the array namespace `xp`; log_std [..., A] keeps the parameters' leading axes."""
        mean = xp.tanh(self.torso(xp, params, obs, True))
        return mean, xp.clip(params["log_std"], -5.0, 2.0)


class CategoricalPolicy(nn.Module):
    """obs [B, O] -> logits [B, num_actions] of a categorical policy over discrete actions (PPO, A2C)."""

    hidden_sizes: Sequence[int]
    num_actions: int
    activation: str = "tanh"
    final_init_scale: float = 0.01
    """Orthogonal-init scale of the logits layer: small, so the initial policy is near uniform (PPO2 baselines)."""

    @nn.compact
    def __call__(self, obs: jax.Array) -> jax.Array:
        x = MLP(self.hidden_sizes, None, self.activation)(obs)
        return nn.Dense(self.num_actions, kernel_init=nn.initializers.orthogonal(self.final_init_scale))(x)

    @nn.nowrap
    def forward(self, xp: Any, params: dict, obs: Any) -> Any:
        """`__call__` over the array namespace `xp` (`critix.nets.mlp`'s module docstring)."""
        x = mlp_forward(xp, params.get("MLP_0", {}), obs, len(self.hidden_sizes), False, self.activation)
        return dense(xp, params["Dense_0"], x)


def categorical_sample(key: jax.Array, logits: jax.Array) -> jax.Array:
    """One action index per row of logits [B, K] -> [B] int32."""
    return jax.random.categorical(key, logits).astype(jnp.int32)


def categorical_log_prob(logits: jax.Array, action: jax.Array) -> jax.Array:
    """log pi(a|s) for logits [B, K] and integer actions [B] -> [B].

    Picked with a one-hot mask rather than `take_along_axis`: the same values, but the gradient is a select instead
    of a scatter, which XLA:CPU runs as a kernel of its own after a copy to feed it, in every PPO minibatch step
    (about 1% of a compiled PPO iteration)."""
    log_probs = jax.nn.log_softmax(logits)
    picked = action.astype(jnp.int32)[..., None] == jnp.arange(logits.shape[-1])
    return jnp.sum(jnp.where(picked, log_probs, 0.0), axis=-1)


def categorical_entropy(logits: jax.Array) -> jax.Array:
    """Entropy of each categorical distribution: logits [B, K] -> [B]."""
    log_probs = jax.nn.log_softmax(logits)
    return -jnp.sum(jnp.exp(log_probs) * log_probs, axis=-1)


class GaussianPolicy(nn.Module):
    """obs [B, O] -> (mean [B, A], log_std [A]) of a diagonal Gaussian with a state-independent log-std parameter,
    as in PPO for continuous control (Schulman et al. 2017, Sec. 6.1). Actions are not squashed: the env loop
    clips them to the action box, and the update scores the unclipped sample (as SB3 and CleanRL do)."""

    hidden_sizes: Sequence[int]
    action_dim: int
    activation: str = "tanh"
    init_log_std: float = 0.0
    final_init_scale: float = 0.01

    @nn.compact
    def __call__(self, obs: jax.Array) -> tuple[jax.Array, jax.Array]:
        x = MLP(self.hidden_sizes, None, self.activation)(obs)
        mean = nn.Dense(self.action_dim, kernel_init=nn.initializers.orthogonal(self.final_init_scale))(x)
        log_std = self.param("log_std", nn.initializers.constant(self.init_log_std), (self.action_dim,))
        return mean, log_std

    @nn.nowrap
    def forward(self, xp: Any, params: dict, obs: Any) -> tuple[Any, Any]:
        """`__call__` over the array namespace `xp`; log_std [..., A] keeps the parameters' leading axes."""
        x = mlp_forward(xp, params.get("MLP_0", {}), obs, len(self.hidden_sizes), False, self.activation)
        return dense(xp, params["Dense_0"], x), params["log_std"]


def gaussian_log_prob(mean: jax.Array, log_std: jax.Array, action: jax.Array) -> jax.Array:
    """log N(action; mean, exp(log_std)^2), summed over the action dimensions: [B, A] -> [B]."""
    z = (action - mean) * jnp.exp(-log_std)
    return jnp.sum(-0.5 * jnp.square(z) - log_std - 0.5 * jnp.log(2.0 * jnp.pi), axis=-1)


def gaussian_sample(key: jax.Array, mean: jax.Array, log_std: jax.Array) -> jax.Array:
    """A Gaussian sample clipped to the action box [-1, 1]."""
    noise = jax.random.normal(key, mean.shape, mean.dtype)
    return jnp.clip(mean + jnp.exp(log_std) * noise, -1.0, 1.0)


def gaussian_entropy(log_std: jax.Array, batch_shape: tuple[int, ...]) -> jax.Array:
    """Entropy of a diagonal Gaussian, sum over A of (0.5 log(2 pi e) + log_std), broadcast to batch_shape."""
    return jnp.broadcast_to(jnp.sum(0.5 * jnp.log(2.0 * jnp.pi * jnp.e) + log_std, axis=-1), batch_shape)
