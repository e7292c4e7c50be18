"""Multi-layer perceptron torso with optional LayerNorm and dropout.

Each acting network (this MLP, the policies, the discrete Q networks) also has `forward(xp, params, ...)`: the
same function as its Flax `__call__` at evaluation (no dropout), written over an array namespace `xp` (`numpy` or
`jax.numpy`) from the module's parameter tree. The host training loops run it in NumPy for small networks
(`critix.train.host.Acting`): a forward pass of a 64x64 MLP then costs a few microseconds instead of a compiled
call's dispatch. Convention of every `forward`: inputs are [..., B, F] with one batch axis B before the features,
and the parameters may carry leading axes of their own (S seeds) that broadcast against the inputs' leading axes;
tests check each `forward` against its module's `apply` (`tests/unit/test_nets.py`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

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


def _sigmoid(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):  # exp(-x) overflows to inf for very negative x: the sigmoid is then 0
        return 1.0 / (1.0 + np.exp(-x))


NUMPY_ACTIVATIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "relu": lambda x: np.maximum(x, 0.0),
    "tanh": np.tanh,
    "elu": lambda x: np.where(x > 0.0, x, np.expm1(np.minimum(x, 0.0))),
    # Flax's gelu is the tanh approximation (approximate=True)
    "gelu": lambda x: x * (0.5 * (1.0 + np.tanh(np.sqrt(2.0 / np.pi).astype(x.dtype) * (x + 0.044715 * x**3)))),
    "silu": lambda x: x * _sigmoid(x),
}
"""The activations of `ACTIVATIONS` in NumPy, for `forward` on the host."""


def activation_in(xp: Any, name: str) -> Callable[[Any], Any]:
    """The activation `name` for arrays of namespace `xp`: NumPy's transcription, or Flax's own function."""
    return NUMPY_ACTIVATIONS[name] if xp is np else ACTIVATIONS[name]


def dense(xp: Any, params: dict, x: Any) -> Any:
    """A Flax `nn.Dense` layer's function: x [..., B, I] @ kernel [..., I, O] + bias [..., O] -> [..., B, O]. In
    jax.numpy a product of one matrix by one kernel is `matmul` (the same values; a gradient XLA:CPU runs faster).
    In NumPy, one layer on the host (acting every env step) is a dot and an in-place add, which cost about half of
    matmul and a broadcast add on a few rows."""
    kernel, bias = params["kernel"], params["bias"]
    if xp is np and kernel.ndim == 2:
        y = x.dot(kernel)
        y += bias
        return y
    if xp is jnp and x.ndim == 2 and kernel.ndim == 2 and x.dtype == kernel.dtype:
        product = matmul(x, kernel)
    else:
        product = xp.matmul(x, kernel)
    return product + bias[..., None, :]


@jax.custom_vjp
def matmul(x: jax.Array, kernel: jax.Array) -> jax.Array:
    """x [B, I] @ kernel [I, O], with a backward pass whose kernel gradient x^T g XLA:CPU runs as a library dot.

    Autodiff writes the kernel gradient as a dot that contracts the batch axis of both operands, which XLA:CPU runs
    outside its fast dot library (YNNPACK), and XLA folds any transpose written around it back into the dot. Here
    the operand with fewer features is transposed behind an optimisation barrier, so the dot contracts the usual
    axes: for a PPO minibatch step of 16 seeds x 64 rows through 64x64 tanh networks on an AVX-512 CPU, the kernel
    gradients of the 64x2 logits layer take 55 us -> 10 us, of the 4x64 input layers 21 us -> 8 us and of the 64x64
    layers 115 us -> 86 us + a 16 us transpose. Other platforms (GPU, TPU) differentiate the plain product
    (`jax.lax.platform_dependent`). The forward pass and dx = g kernel^T are autodiff's."""
    return jnp.matmul(x, kernel)


def _matmul_forward(x: jax.Array, kernel: jax.Array) -> tuple[jax.Array, tuple[jax.Array, jax.Array]]:
    return jnp.matmul(x, kernel), (x, kernel)


def _matmul_backward(saved: tuple[jax.Array, jax.Array], g: jax.Array) -> tuple[jax.Array, jax.Array]:
    x, kernel = saved
    return jnp.matmul(g, kernel.T), jax.lax.platform_dependent(x, g, cpu=_kernel_gradient_cpu,
                                                                 default=lambda x, g: jnp.matmul(x.T, g))


def _kernel_gradient_cpu(x: jax.Array, g: jax.Array) -> jax.Array:
    """x^T g [I, O] for x [B, I], g [B, O], transposing the operand with fewer features."""
    barrier = jax.lax.optimization_barrier
    if x.shape[1] <= g.shape[1]:
        return jnp.matmul(barrier(x.T), g)
    return barrier(jnp.matmul(barrier(g.T), x)).T


matmul.defvjp(_matmul_forward, _matmul_backward)


def layer_norm(xp: Any, params: dict, x: Any, epsilon: float = 1e-6) -> Any:
    """A Flax `nn.LayerNorm`'s function over the last axis (its defaults: epsilon 1e-6, the fast variance)."""
    mean = xp.mean(x, axis=-1, keepdims=True)
    var = xp.maximum(xp.mean(x * x, axis=-1, keepdims=True) - mean * mean, 0.0)
    return (x - mean) / xp.sqrt(var + epsilon) * params["scale"][..., None, :] + params["bias"][..., None, :]


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

    @nn.nowrap
    def forward(self, xp: Any, params: dict, x: Any) -> Any:
        """`__call__` at evaluation (dropout off) over the array namespace `xp`; see the module docstring."""
        return mlp_forward(xp, params, x, len(self.hidden_sizes), self.output_size is not None, self.activation,
                           self.layer_norm)


def mlp_forward(xp: Any, params: dict, x: Any, num_hidden: int, output: bool, activation_name: str = "relu",
                layer_norm_on: bool = False) -> Any:
    """An `MLP`'s function from its parameters (Dense_i, LayerNorm_i), over the array namespace `xp`: `num_hidden`
    hidden layers, then the output layer if `output`. Modules that hold an MLP call this on its parameter tree."""
    act = activation_in(xp, activation_name)
    for i in range(num_hidden):
        x = dense(xp, params[f"Dense_{i}"], x)
        if layer_norm_on:
            x = layer_norm(xp, params[f"LayerNorm_{i}"], x)
        x = act(x)
    if output:
        x = dense(xp, params[f"Dense_{num_hidden}"], x)
    return x


def flatten_concat(*xs: jax.Array) -> jax.Array:
    """Concatenate inputs along the last axis (e.g. observation and action for a Q network)."""
    return jnp.concatenate(xs, axis=-1)
