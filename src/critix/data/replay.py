"""Device-resident ring replay buffer: a pytree, sampled inside jit, vmappable over seeds.

All functions are pure. To train S seeds, build the buffer with `jax.vmap(init...)` (or `init_stacked`) and
vmap `add`/`sample` over the leading seed axis. Shapes: C capacity, M items added, B batch, K updates.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

from critix.types import Transition


@struct.dataclass
class ReplayBuffer:
    """`data` holds arrays of shape [C, ...]; `position` is the next write index, `size` the filled count."""

    data: Transition
    position: jax.Array  # int32 scalar
    size: jax.Array  # int32 scalar

    @property
    def capacity(self) -> int:
        """Items the ring holds (the last axis of `reward`, so it also works with leading seed axes)."""
        return self.data.reward.shape[-1]


def init(capacity: int, example: Transition) -> ReplayBuffer:
    """An empty buffer of `capacity` items shaped like the unbatched `example` transition."""
    if capacity <= 0:
        raise ValueError(f"replay capacity must be > 0, got {capacity}")
    data = jax.tree.map(lambda x: jnp.zeros((capacity, *jnp.shape(x)), jnp.asarray(x).dtype), example)
    return ReplayBuffer(data, jnp.zeros((), jnp.int32), jnp.zeros((), jnp.int32))


def add(buffer: ReplayBuffer, items: Transition) -> ReplayBuffer:
    """Write M items (leading axis M) at the ring position, overwriting the oldest once full."""
    capacity = buffer.data.reward.shape[0]
    num_items = items.reward.shape[0]
    index = (buffer.position + jnp.arange(num_items)) % capacity
    data = jax.tree.map(lambda store, x: store.at[index].set(x.astype(store.dtype)), buffer.data, items)
    return ReplayBuffer(
        data,
        (buffer.position + num_items) % capacity,
        jnp.minimum(buffer.size + num_items, capacity),
    )


def grow(buffer: ReplayBuffer, capacity: int) -> ReplayBuffer:
    """A larger ring holding the same items, oldest first, so the oldest is still overwritten first."""
    if capacity < buffer.capacity:
        raise ValueError(f"cannot shrink a replay buffer from {buffer.capacity} to {capacity}")
    # A full ring's oldest item sits at `position`; rotate it to slot 0. A ring that is not full starts at 0.
    shift = jnp.where(buffer.size == buffer.capacity, buffer.position, 0)
    data = jax.tree.map(
        lambda x: jnp.zeros((capacity, *x.shape[1:]), x.dtype).at[: x.shape[0]].set(jnp.roll(x, -shift, axis=0)),
        buffer.data,
    )
    # Next write goes right after the newest item; `% capacity` also makes it a fresh array, not an alias of size.
    return ReplayBuffer(data, buffer.size % capacity, buffer.size)


def sample(buffer: ReplayBuffer, key: jax.Array, batch_size: int) -> Transition:
    """Uniformly sample `batch_size` items with replacement from the filled part: [B, ...]."""
    index = jax.random.randint(key, (batch_size,), 0, jnp.maximum(buffer.size, 1))
    return jax.tree.map(lambda x: x[index], buffer.data)


def sample_many(buffer: ReplayBuffer, key: jax.Array, num_batches: int, batch_size: int) -> Transition:
    """K independent uniform batches in one gather: [K, B, ...] (the input of an agent's `update_many`)."""
    index = jax.random.randint(key, (num_batches, batch_size), 0, jnp.maximum(buffer.size, 1))
    return jax.tree.map(lambda x: x[index], buffer.data)


def sample_sequences(
    buffer: ReplayBuffer, key: jax.Array, num_batches: int, batch_size: int, length: int, stride: int
) -> Transition:
    """K batches of `length` consecutive steps of one env: [K, B, length, ...] (input of n-step targets).

    The host loop writes each chunk time-major over its N envs, so the next step of the env behind item i is
    item i + N (`stride`). Starts are drawn uniformly among items whose `length - 1` successors are written.
    """
    capacity = buffer.data.reward.shape[0]
    span = (length - 1) * stride
    oldest = (buffer.position - buffer.size) % capacity
    offset = jax.random.randint(key, (num_batches, batch_size), 0, jnp.maximum(buffer.size - span, 1))
    index = (oldest + offset)[..., None] + stride * jnp.arange(length)  # [K, B, length]
    return jax.tree.map(lambda x: x[index % capacity], buffer.data)
