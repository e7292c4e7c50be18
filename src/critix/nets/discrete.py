"""Networks for discrete actions: Q networks with one output set per action (optionally dueling, #221),
their ensembles, and a categorical policy. Shapes: B batch, A actions, K head outputs, E ensemble.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from critix.nets.encoders import ENCODERS
from critix.nets.mlp import MLP, dense, mlp_forward


class DiscreteQNetwork(nn.Module):
    """obs [B, O] (or images [B, H, W, C] with a pixel `encoder`) -> raw head outputs [B, A, K] for every action.

    dueling: separate value V [B, 1, K] and advantage A [B, A, K] streams after the shared torso, combined as
    Q = V + (A - mean_a A) per head output (Wang et al. 2016, #221 Eq. 9); for distributional heads the
    aggregation acts on each atom's logit or quantile, as in Rainbow (Hessel et al. 2018).
    """

    hidden_sizes: Sequence[int]
    num_actions: int
    num_outputs: int = 1
    activation: str = "relu"
    dueling: bool = False
    layer_norm: bool = False
    encoder: str = "mlp"  # "mlp" (flat observations), or a pixel encoder of `critix.nets.encoders.ENCODERS`

    @nn.compact
    def __call__(self, obs: jax.Array) -> jax.Array:
        if self.encoder != "mlp":
            obs = ENCODERS[self.encoder]()(obs)
        torso_sizes = self.hidden_sizes[:-1] if self.dueling else self.hidden_sizes
        x = MLP(torso_sizes, None, self.activation, self.layer_norm)(obs)
        if not self.dueling:
            out = nn.Dense(self.num_actions * self.num_outputs)(x)
            return out.reshape(*out.shape[:-1], self.num_actions, self.num_outputs)
        # Dueling: the last hidden layer is split into two streams of that width (#221 Sec. 3, Fig. 1).
        value = MLP(self.hidden_sizes[-1:], self.num_outputs, self.activation, self.layer_norm, name="value")(x)
        adv = MLP(self.hidden_sizes[-1:], self.num_actions * self.num_outputs, self.activation, self.layer_norm,
                  name="advantage")(x)
        adv = adv.reshape(*adv.shape[:-1], self.num_actions, self.num_outputs)
        return value[..., None, :] + adv - jnp.mean(adv, axis=-2, keepdims=True)

    @nn.nowrap
    def forward(self, xp: Any, params: dict, obs: Any) -> Any:
        """`__call__` over the array namespace `xp` (`critix.nets.mlp`'s module docstring). Pixel encoders have no
        NumPy transcription: with them this is `apply` (JAX only; the host loops run them compiled)."""
        if self.encoder != "mlp":
            if xp is not jnp:
                raise ValueError(f"DiscreteQNetwork.forward has no NumPy {self.encoder!r} encoder; use jax.numpy")
            return self.apply({"params": params}, obs)
        num_torso = len(self.hidden_sizes) - (1 if self.dueling else 0)
        x = mlp_forward(xp, params.get("MLP_0", {}), obs, num_torso, False, self.activation, self.layer_norm)
        if not self.dueling:
            out = dense(xp, params["Dense_0"], x)
            return out.reshape(*out.shape[:-1], self.num_actions, self.num_outputs)
        value = mlp_forward(xp, params["value"], x, 1, True, self.activation, self.layer_norm)
        adv = mlp_forward(xp, params["advantage"], x, 1, True, self.activation, self.layer_norm)
        adv = adv.reshape(*adv.shape[:-1], self.num_actions, self.num_outputs)
        return value[..., None, :] + adv - xp.mean(adv, axis=-2, keepdims=True)


class DiscreteQEnsemble(nn.Module):
    """E discrete Q networks with separate parameters, one batched computation: obs [B, O] -> [E, B, A, K]."""

    hidden_sizes: Sequence[int]
    num_actions: int
    num_critics: int = 2
    num_outputs: int = 1
    activation: str = "relu"
    dueling: bool = False

    @nn.compact
    def __call__(self, obs: jax.Array) -> jax.Array:
        ensemble = nn.vmap(
            DiscreteQNetwork,
            variable_axes={"params": 0},
            split_rngs={"params": True},
            in_axes=None,
            out_axes=0,
            axis_size=self.num_critics,
        )
        return ensemble(self.hidden_sizes, self.num_actions, self.num_outputs, self.activation, self.dueling)(obs)


class CategoricalPolicy(nn.Module):
    """obs [B, O] -> logits [B, A] of a categorical policy over A actions."""

    hidden_sizes: Sequence[int]
    num_actions: int
    activation: str = "relu"

    @nn.compact
    def __call__(self, obs: jax.Array) -> jax.Array:
        return MLP(self.hidden_sizes, self.num_actions, self.activation)(obs)

    @nn.nowrap
    def forward(self, xp: Any, params: dict, obs: Any) -> Any:
        """`__call__` over the array namespace `xp` (`critix.nets.mlp`'s module docstring)."""
        return mlp_forward(xp, params.get("MLP_0", {}), obs, len(self.hidden_sizes), True, self.activation)
