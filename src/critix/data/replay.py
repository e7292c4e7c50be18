"""Device-resident ring replay buffer: a pytree, sampled inside jit, vmappable over seeds.

All functions are pure. To train S seeds, build the buffer with `jax.vmap(init...)` (or `init_stacked`) and
vmap `add`/`sample` over the leading seed axis. Shapes: C capacity, M items added, B batch, K updates.
"""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from safetensors import SafetensorError, safe_open
from safetensors.numpy import save as st_save

from critix.types import CritixError, Transition

FIELDS = ("obs", "action", "reward", "next_obs", "terminated", "truncated")


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


def check_capacity(capacity: int, batch_size: int) -> None:
    """Raise CritixError if a buffer of `capacity` (the smaller of buffer_size and the run's steps) cannot fill one
    batch."""
    if capacity < batch_size:
        raise CritixError(f"the replay buffer holds {capacity} transitions (min of buffer_size and steps), fewer than "
                          f"batch_size={batch_size}; raise --buffer-size or --steps, or lower --batch-size")


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


def add_masked(buffer: ReplayBuffer, items: Transition, valid: jax.Array) -> ReplayBuffer:
    """Write only the items where `valid` [M] is True, in order and contiguously (used to drop non-finite data)."""
    capacity = buffer.data.reward.shape[0]
    valid = valid.astype(jnp.int32)
    offset = jnp.cumsum(valid) - 1
    # Invalid items get the out-of-range index `capacity`, which mode="drop" discards.
    index = jnp.where(valid > 0, (buffer.position + offset) % capacity, capacity)
    data = jax.tree.map(lambda store, x: store.at[index].set(x.astype(store.dtype), mode="drop"), buffer.data, items)
    num_items = valid.sum()
    return ReplayBuffer(data, (buffer.position + num_items) % capacity, jnp.minimum(buffer.size + num_items, capacity))


REPLAY_FORMAT = "critix-replay"
REPLAY_VERSION = 1


def save(path: str | Path, buffer: ReplayBuffer) -> None:
    """Write one (unbatched) buffer as a data-only safetensors file, atomically (temp file, fsync, rename)."""
    from critix.files import atomic_write_bytes

    arrays = {name: np.asarray(getattr(buffer.data, name)) for name in FIELDS}
    arrays["position"], arrays["size"] = np.asarray(buffer.position), np.asarray(buffer.size)
    metadata = {"format": REPLAY_FORMAT, "version": str(REPLAY_VERSION)}
    atomic_write_bytes(Path(path), st_save(arrays, metadata=metadata))


def load(path: str | Path) -> ReplayBuffer:
    """Read a file written by `save`, checking every field; never executes code (safetensors, no pickle)."""
    path = Path(path)
    try:
        with safe_open(str(path), framework="numpy") as f:
            metadata = f.metadata() or {}
            arrays = {name: f.get_tensor(name) for name in f.keys()}  # noqa: SIM118 (safe_open is not a dict)
    except (OSError, SafetensorError, ValueError) as err:
        raise CritixError(f"{path} is not a critix replay buffer file (safetensors expected: {err})") from None
    if metadata.get("format") != REPLAY_FORMAT:
        raise CritixError(f"{path} is a safetensors file but not a critix replay buffer (format "
                          f"{metadata.get('format')!r}); write it with critix.data.replay.save")
    if metadata.get("version") != str(REPLAY_VERSION):
        raise CritixError(f"{path} has replay format version {metadata.get('version')!r}; this critix reads "
                          f"{REPLAY_VERSION}")
    missing = [name for name in (*FIELDS, "position", "size") if name not in arrays]
    if missing:
        raise CritixError(f"{path} lacks the replay fields {missing}")
    capacity = arrays["reward"].shape[0] if arrays["reward"].ndim == 1 else -1
    for name in FIELDS:
        array = arrays[name]
        if array.ndim < 1 or array.shape[0] != capacity or array.dtype.kind not in "biuf":
            raise CritixError(f"{path}: field {name} has shape {array.shape} {array.dtype}; every field needs the "
                              f"leading capacity axis of reward ({capacity}) and a numeric dtype")
    if capacity < 1:
        raise CritixError(f"{path}: reward must have shape [capacity >= 1], got {arrays['reward'].shape}")
    position, size = arrays["position"], arrays["size"]
    for name, value, high in (("position", position, capacity - 1), ("size", size, capacity)):
        if value.shape != () or value.dtype != np.int32 or not 0 <= int(value) <= high:
            raise CritixError(f"{path}: {name} must be an int32 scalar in [0, {high}], got {value!r}")
    data = Transition(**{name: jnp.asarray(arrays[name]) for name in FIELDS})
    return ReplayBuffer(data, jnp.asarray(position), jnp.asarray(size))
