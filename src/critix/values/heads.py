"""Value heads: how a critic's raw outputs become a value, a regression target and a loss.

Every critic in critix ends in `head.num_outputs` units and goes through one of these heads, so a
distributional or classification head (C51, quantile, HL-Gauss ...) slots in without touching an agent.
A head is a frozen dataclass (hashable, so it can live in a static `Config`). Shapes: B batch, K outputs.

The interface, for a critic output `out` of shape [..., K]:
- `value(out) -> [...]`: the expected value.
- `target(r_t, discount_t, out_t) -> T`: the regression target r_t + discount_t * Z(out_t), in the head's
  own representation (a scalar for the scalar head, a histogram or atoms for distributional heads). Agents
  fold extra terms such as SAC's entropy bonus into `r_t`.
- `loss(out_tm1, target) -> [...]`: the per-sample loss of predicting `target` with `out_tm1`.
"""

from __future__ import annotations

import dataclasses
from typing import Protocol

import jax
import jax.numpy as jnp

from critix.values import losses, targets


class ValueHead(Protocol):
    """What agents need from a value head."""

    @property
    def num_outputs(self) -> int: ...

    def value(self, out: jax.Array) -> jax.Array: ...

    def target(self, r_t: jax.Array, discount_t: jax.Array, out_t: jax.Array) -> jax.Array: ...

    def loss(self, out_tm1: jax.Array, target: jax.Array) -> jax.Array: ...


@dataclasses.dataclass(frozen=True)
class ScalarHead:
    """A single output read as the value, regressed with squared error or Huber loss."""

    loss_type: str = "mse"  # "mse" (0.5 * squared error) or "huber"
    huber_delta: float = 1.0

    def __post_init__(self) -> None:
        if self.loss_type not in ("mse", "huber"):
            raise ValueError(f"ScalarHead.loss_type must be 'mse' or 'huber', got {self.loss_type!r}")

    @property
    def num_outputs(self) -> int:
        return 1

    def value(self, out: jax.Array) -> jax.Array:
        return out[..., 0]

    def target(self, r_t: jax.Array, discount_t: jax.Array, out_t: jax.Array) -> jax.Array:
        return targets.td_target(r_t, discount_t, self.value(out_t))

    def loss(self, out_tm1: jax.Array, target: jax.Array) -> jax.Array:
        if self.loss_type == "huber":
            return losses.huber(self.value(out_tm1), target, self.huber_delta)
        return losses.squared_error(self.value(out_tm1), target)


def select_min(head: ValueHead, outs: jax.Array) -> jax.Array:
    """Clipped double-Q for any head: per sample, the ensemble member whose value is lowest.

    outs: [E, ..., K] -> [..., K]. For the scalar head this is the elementwise minimum over E (TD3, Eq. 10).
    """
    values = head.value(outs)  # [E, ...]
    index = jnp.argmin(values, axis=0)  # [...]
    return jnp.take_along_axis(outs, index[None, ..., None], axis=0)[0]


HEADS = {"scalar": ScalarHead}


def make_head(name: str, **kwargs: object) -> ValueHead:
    """Build a head from its CLI name (`--critic-head`)."""
    if name not in HEADS:
        raise ValueError(f"unknown critic head {name!r}; choose one of {sorted(HEADS)}")
    return HEADS[name](**kwargs)  # type: ignore[arg-type]
