"""Multi-layer perceptron torso with optional LayerNorm and dropout."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "relu": nn.relu,
    "tanh": nn.tanh,
    "elu": nn.elu,
    "gelu": nn.gelu,
    "silu": nn.silu,
}


def activation(name: str) -> Callable[[jax.Array], jax.Array]:
    """Look an activation up by name (configs hold names, not functions, so they stay hashable)."""
    return ACTIVATIONS[name]


class MLP(nn.Module):
    """Dense -> [Dropout] -> [LayerNorm] -> activation for each hidden size, then an optional output layer.

    The Dropout + LayerNorm order follows DroQ (Hiraoka et al. 2022, Fig. 1). Dropout is active only when
    `deterministic=False` and a `dropout` rng is given.
    """

    hidden_sizes: Sequence[int]
    output_size: int | None = None
    activation: str = "relu"
    layer_norm: bool = False
    dropout_rate: float = 0.0

    @nn.compact
    def __call__(self, x: jax.Array, deterministic: bool = True) -> jax.Array:
        act = activation(self.activation)
        for size in self.hidden_sizes:
            x = nn.Dense(size)(x)
            if self.dropout_rate > 0.0:
                x = nn.Dropout(self.dropout_rate, deterministic=deterministic)(x)
            if self.layer_norm:
                x = nn.LayerNorm()(x)
            x = act(x)
        if self.output_size is not None:
            x = nn.Dense(self.output_size)(x)
        return x


def flatten_concat(*xs: jax.Array) -> jax.Array:
    """Concatenate inputs along the last axis (e.g. observation and action for a Q network)."""
    return jnp.concatenate(xs, axis=-1)
