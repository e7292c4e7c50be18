"""Critic ensembles: E independent Q networks evaluated in one vmapped call."""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax

from critix.nets.mlp import MLP, flatten_concat


class QNetwork(nn.Module):
    """Q(s, a) -> [..., num_outputs] raw head outputs (see `critix.values.heads`)."""

    hidden_sizes: Sequence[int]
    num_outputs: int = 1
    activation: str = "relu"
    layer_norm: bool = False
    dropout_rate: float = 0.0

    @nn.compact
    def __call__(self, obs: jax.Array, action: jax.Array, deterministic: bool = True) -> jax.Array:
        mlp = MLP(self.hidden_sizes, self.num_outputs, self.activation, self.layer_norm, self.dropout_rate)
        return mlp(flatten_concat(obs, action), deterministic)


class QEnsemble(QNetwork):
    """E critics with separate parameters (leading axis E), one batched computation: [B, ...] -> [E, B, K]."""

    num_critics: int = 2

    @nn.compact
    def __call__(self, obs: jax.Array, action: jax.Array, deterministic: bool = True) -> jax.Array:
        ensemble = nn.vmap(
            QNetwork,
            variable_axes={"params": 0},
            split_rngs={"params": True, "dropout": True},
            in_axes=None,
            out_axes=0,
            axis_size=self.num_critics,
        )
        critics = ensemble(
            self.hidden_sizes, self.num_outputs, self.activation, self.layer_norm, self.dropout_rate
        )
        return critics(obs, action, deterministic)
