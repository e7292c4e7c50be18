"""Pixel encoders and DrQ random-shift augmentation: shapes, dtypes, determinism, and what a shift is."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from critix.nets.encoders import DrQEncoder, NatureCNN, random_shift


def images(key: jax.Array, shape: tuple[int, ...] = (3, 84, 84, 4)) -> jax.Array:
    return jax.random.randint(key, shape, 0, 256).astype(jnp.uint8)


@pytest.mark.parametrize("encoder,features", [(NatureCNN(), 512), (DrQEncoder(), 50)])
def test_encoder_shapes_and_uint8_input(encoder, features):
    x = images(jax.random.PRNGKey(0))
    params = encoder.init(jax.random.PRNGKey(1), x)
    out = jax.jit(encoder.apply)(params, x)
    assert out.shape == (3, features) and out.dtype == jnp.float32
    assert np.all(np.isfinite(np.asarray(out)))
    # uint8 input equals the same image given in [0, 1]
    np.testing.assert_allclose(encoder.apply(params, x.astype(jnp.float32) / 255.0), out, rtol=1e-5, atol=1e-5)


def test_random_shift_is_a_window_of_the_edge_padded_image():
    x = images(jax.random.PRNGKey(0), (5, 12, 10, 2))
    key = jax.random.PRNGKey(3)
    out = jax.jit(random_shift, static_argnums=2)(key, x, 4)
    assert out.shape == x.shape and out.dtype == jnp.uint8
    padded = np.pad(np.asarray(x), ((0, 0), (4, 4), (4, 4), (0, 0)), mode="edge")
    offsets = np.asarray(jax.random.randint(key, (5, 2), 0, 9))
    for b in range(5):
        i, j = offsets[b]
        np.testing.assert_array_equal(out[b], padded[b, i:i + 12, j:j + 10])
    # a zero offset (4, 4) is the identity; offsets differ per image
    assert len({tuple(o) for o in offsets}) > 1


def test_random_shift_determinism_and_pad_zero():
    x = images(jax.random.PRNGKey(0), (8, 16, 16, 1))
    a = random_shift(jax.random.PRNGKey(1), x)
    np.testing.assert_array_equal(a, random_shift(jax.random.PRNGKey(1), x))
    assert not np.array_equal(a, random_shift(jax.random.PRNGKey(2), x))
    np.testing.assert_array_equal(random_shift(jax.random.PRNGKey(1), x, 0), x)
    # under vmap over seeds: each seed's batch gets its own shifts, equal to the unbatched call
    keys = jax.random.split(jax.random.PRNGKey(4), 2)
    stacked = jnp.stack([x, x])
    out = jax.vmap(random_shift)(keys, stacked)
    np.testing.assert_array_equal(out[1], random_shift(keys[1], x))
