"""Device ring replay buffer: wrap-around, sampling from the filled part only, jit, vmap over seeds."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from critix.data import replay
from critix.types import Transition


def _example() -> Transition:
    return Transition(
        obs=jnp.zeros(3), action=jnp.zeros(2), reward=jnp.zeros(()), next_obs=jnp.zeros(3),
        terminated=jnp.zeros(()), truncated=jnp.zeros(()),
    )


def _items(start: int, count: int) -> Transition:
    """`count` items whose every field encodes its item number i = start, start+1, ..."""
    i = jnp.arange(start, start + count, dtype=jnp.float32)
    return Transition(
        obs=jnp.stack([i, i + 0.1, i + 0.2], axis=-1), action=jnp.stack([-i, i], axis=-1), reward=i,
        next_obs=jnp.stack([i + 1, i + 1.1, i + 1.2], axis=-1), terminated=(i % 2 == 0).astype(jnp.float32),
        truncated=jnp.zeros_like(i),
    )


def test_init_shapes_and_dtypes():
    example = _example().replace(terminated=jnp.zeros((), jnp.bool_))
    buffer = replay.init(5, example)
    assert buffer.capacity == 5
    assert buffer.data.obs.shape == (5, 3) and buffer.data.reward.shape == (5,)
    assert buffer.data.terminated.dtype == jnp.bool_
    assert int(buffer.position) == 0 and int(buffer.size) == 0
    assert buffer.position.dtype == jnp.int32


def test_init_rejects_bad_capacity():
    with pytest.raises(ValueError, match="capacity"):
        replay.init(0, _example())


def test_add_wraps_around_the_ring():
    buffer = replay.init(5, _example())
    buffer = replay.add(buffer, _items(0, 3))
    assert (int(buffer.position), int(buffer.size)) == (3, 3)
    np.testing.assert_array_equal(buffer.data.reward, [0, 1, 2, 0, 0])
    buffer = replay.add(buffer, _items(3, 4))  # items 3..6: 3, 4 fill the end, 5, 6 overwrite slots 0, 1
    assert (int(buffer.position), int(buffer.size)) == (2, 5)
    np.testing.assert_array_equal(buffer.data.reward, [5, 6, 2, 3, 4])
    np.testing.assert_array_equal(buffer.data.action[:, 1], [5, 6, 2, 3, 4])
    np.testing.assert_allclose(buffer.data.next_obs[:, 0], [6, 7, 3, 4, 5])
    np.testing.assert_array_equal(buffer.data.terminated, [0, 1, 1, 0, 1])


def test_add_one_at_a_time_equals_add_in_chunks():
    one = replay.init(5, _example())
    for i in range(7):
        one = replay.add(one, _items(i, 1))
    chunk = replay.add(replay.add(replay.init(5, _example()), _items(0, 3)), _items(3, 4))
    for a, b in zip(jax.tree.leaves(one), jax.tree.leaves(chunk), strict=True):
        np.testing.assert_array_equal(a, b)
    assert (int(one.position), int(one.size)) == (2, 5)


def test_add_casts_to_the_stored_dtype():
    example = _example().replace(terminated=jnp.zeros((), jnp.bool_))
    buffer = replay.add(replay.init(4, example), _items(0, 2))
    assert buffer.data.terminated.dtype == jnp.bool_
    np.testing.assert_array_equal(buffer.data.terminated, [True, False, False, False])


def test_sample_draws_only_from_the_filled_part():
    buffer = replay.add(replay.init(64, _example()), _items(10, 5))  # rewards 10..14 in slots 0..4
    batch = replay.sample(buffer, jax.random.PRNGKey(0), 256)
    rewards = np.asarray(batch.reward)
    assert batch.obs.shape == (256, 3) and batch.action.shape == (256, 2)
    assert set(rewards.tolist()) == {10.0, 11.0, 12.0, 13.0, 14.0}  # all filled slots, no empty ones
    # fields of a sampled item stay together
    np.testing.assert_allclose(batch.obs[:, 0], rewards)
    np.testing.assert_allclose(batch.next_obs[:, 0], rewards + 1)


def test_sample_many_shapes_and_filled_part():
    buffer = replay.add(replay.init(16, _example()), _items(0, 3))
    batches = replay.sample_many(buffer, jax.random.PRNGKey(1), 4, 8)
    assert batches.obs.shape == (4, 8, 3) and batches.reward.shape == (4, 8)
    assert set(np.asarray(batches.reward).ravel().tolist()) <= {0.0, 1.0, 2.0}
    assert not np.array_equal(batches.reward[0], batches.reward[1])  # independent batches


def test_sample_is_deterministic_in_the_key():
    buffer = replay.add(replay.init(16, _example()), _items(0, 16))
    a = replay.sample(buffer, jax.random.PRNGKey(3), 8)
    b = replay.sample(buffer, jax.random.PRNGKey(3), 8)
    c = replay.sample(buffer, jax.random.PRNGKey(4), 8)
    np.testing.assert_array_equal(a.reward, b.reward)
    assert not np.array_equal(a.reward, c.reward)


def test_add_and_sample_under_jit():
    buffer = replay.init(5, _example())
    add = jax.jit(replay.add)
    eager = replay.add(replay.add(buffer, _items(0, 3)), _items(3, 4))
    jitted = add(add(buffer, _items(0, 3)), _items(3, 4))
    for a, b in zip(jax.tree.leaves(eager), jax.tree.leaves(jitted), strict=True):
        np.testing.assert_array_equal(a, b)
    sample = jax.jit(replay.sample, static_argnums=2)
    np.testing.assert_array_equal(sample(jitted, jax.random.PRNGKey(0), 8).reward,
                                  replay.sample(eager, jax.random.PRNGKey(0), 8).reward)
    sample_many = jax.jit(replay.sample_many, static_argnums=(2, 3))
    np.testing.assert_array_equal(sample_many(jitted, jax.random.PRNGKey(0), 2, 4).reward,
                                  replay.sample_many(eager, jax.random.PRNGKey(0), 2, 4).reward)


def test_vmap_over_a_leading_seed_axis():
    """S = 3 buffers built with jax.vmap(init), filled and sampled per seed, equal three separate buffers."""
    seeds = 3
    buffers = jax.vmap(lambda _: replay.init(5, _example()))(jnp.arange(seeds))
    assert buffers.data.obs.shape == (seeds, 5, 3) and buffers.position.shape == (seeds,)
    assert buffers.capacity == 5  # the property reads the last axis, so it survives the seed axis
    items = jax.vmap(lambda s: _items(0, 7).replace(reward=jnp.arange(7.0) + 100 * s))(jnp.arange(seeds))
    buffers = jax.jit(jax.vmap(replay.add))(buffers, items)
    np.testing.assert_array_equal(buffers.position, [2, 2, 2])
    np.testing.assert_array_equal(buffers.size, [5, 5, 5])
    keys = jax.random.split(jax.random.PRNGKey(0), seeds)
    batches = jax.jit(jax.vmap(lambda b, k: replay.sample(b, k, 8)))(buffers, keys)
    assert batches.reward.shape == (seeds, 8)
    for s in range(seeds):
        single = replay.add(replay.init(5, _example()), jax.tree.map(lambda x, s=s: x[s], items))
        np.testing.assert_array_equal(buffers.data.reward[s], single.data.reward)
        np.testing.assert_array_equal(batches.reward[s], replay.sample(single, keys[s], 8).reward)
        assert set(np.asarray(batches.reward[s]).tolist()) <= {100.0 * s + i for i in range(2, 7)}


def test_vmap_over_seeds_with_different_fill_levels():
    buffers = jax.vmap(lambda _: replay.init(8, _example()))(jnp.arange(2))
    first = jax.vmap(replay.add)(buffers, jax.vmap(lambda _: _items(0, 2))(jnp.arange(2)))
    # seed 0 adds 2 more, seed 1 keeps its 2 (add a no-op by selecting the old buffer)
    more = jax.vmap(replay.add)(first, jax.vmap(lambda _: _items(2, 2))(jnp.arange(2)))
    mixed = jax.tree.map(lambda a, b: jnp.stack([a[0], b[1]]), more, first)
    np.testing.assert_array_equal(mixed.size, [4, 2])
    keys = jax.random.split(jax.random.PRNGKey(5), 2)
    batches = jax.vmap(lambda b, k: replay.sample_many(b, k, 2, 32))(mixed, keys)
    assert set(np.asarray(batches.reward[0]).ravel().tolist()) == {0.0, 1.0, 2.0, 3.0}
    assert set(np.asarray(batches.reward[1]).ravel().tolist()) == {0.0, 1.0}


def test_add_more_items_than_capacity_at_once():
    """7 items into a ring of 5 in one call: the last 5 survive, in ring order."""
    buffer = replay.add(replay.init(5, _example()), _items(0, 7))
    assert (int(buffer.position), int(buffer.size)) == (2, 5)
    np.testing.assert_array_equal(buffer.data.reward, [5, 6, 2, 3, 4])


# --- grow (an extended run resumes into a larger ring) ----------------------------------------------------


def _contents(buffer: replay.ReplayBuffer) -> list[float]:
    return sorted(np.asarray(buffer.data.reward[: int(buffer.size)]).tolist())


def test_grow_a_partly_filled_buffer_keeps_items_and_fifo_order():
    buffer = replay.grow(replay.add(replay.init(5, _example()), _items(0, 3)), 8)
    assert buffer.capacity == 8
    assert (int(buffer.position), int(buffer.size)) == (3, 3)
    np.testing.assert_array_equal(buffer.data.reward, [0, 1, 2, 0, 0, 0, 0, 0])
    np.testing.assert_allclose(buffer.data.obs[:3, 0], [0, 1, 2])
    buffer = replay.add(buffer, _items(3, 6))  # items 3..8: 3..7 fill slots 3..7, item 8 evicts item 0
    assert _contents(buffer) == [1, 2, 3, 4, 5, 6, 7, 8]


def test_grow_keeps_every_item_of_a_full_buffer():
    full = replay.add(replay.init(5, _example()), _items(0, 7))  # items 2..6, position 2
    grown = replay.grow(full, 8)
    assert grown.capacity == 8 and int(grown.size) == 5
    assert _contents(grown) == [2, 3, 4, 5, 6]
    grown = replay.add(grown, _items(7, 3))  # fills the 3 new slots
    assert int(grown.size) == 8 and _contents(grown) == [2, 3, 4, 5, 6, 7, 8, 9]


def test_grow_a_full_buffer_keeps_fifo_eviction_order():
    full = replay.add(replay.init(5, _example()), _items(0, 7))  # slots [5, 6, 2, 3, 4]: item 2 is the oldest
    grown = replay.add(replay.grow(full, 8), _items(7, 4))  # items 7..10: 3 fill the new slots, 1 evicts
    assert _contents(grown) == [3, 4, 5, 6, 7, 8, 9, 10]  # the oldest item (2) is the one evicted


def test_grow_rejects_shrinking_and_works_under_vmap():
    with pytest.raises(ValueError, match="shrink"):
        replay.grow(replay.init(5, _example()), 4)
    buffers = jax.vmap(lambda _: replay.init(5, _example()))(jnp.arange(2))
    counts = [3, 7]  # seed 0 partly filled, seed 1 full and wrapped
    filled = jax.tree.map(
        lambda *xs: jnp.stack(xs),
        *[replay.add(jax.tree.map(lambda x, s=s: x[s], buffers), _items(0, c)) for s, c in enumerate(counts)],
    )
    grown = jax.vmap(lambda b: replay.grow(b, 8))(filled)
    assert grown.capacity == 8 and grown.data.obs.shape == (2, 8, 3)
    np.testing.assert_array_equal(grown.size, [3, 5])
    assert _contents(jax.tree.map(lambda x: x[0], grown)) == [0, 1, 2]
    assert _contents(jax.tree.map(lambda x: x[1], grown)) == [2, 3, 4, 5, 6]
