"""Pixel encoders and image augmentation. Images are [B, H, W, C] (channels last; stacked frames are channels),
stored as uint8 and scaled to [0, 1] inside the encoder.

- `NatureCNN`: the DQN torso of Mnih et al. 2015 (Methods, "Model architecture"): 32 8x8/4, 64 4x4/2, 64 3x3/1
  convolutions with ReLU, then a 512-unit dense layer.
- `DrQEncoder`: the encoder of DrQ (Kostrikov et al. 2020, #63, Appendix; after SAC-AE): 32 3x3 filters, stride 2
  then three times stride 1, ReLU, then a 50-unit dense layer with LayerNorm and tanh.
- `MinAtarCNN`: the small network of the MinAtar paper (Young & Tian 2019) for 10x10 inputs.
- `random_shift`: DrQ's augmentation (#63 Sec. 3.1): pad each image by `pad` pixels replicating the border, then
  crop a random H x W window (a shift of up to +-pad pixels), independently per image.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp


def to_unit_range(images: jax.Array) -> jax.Array:
    """uint8 [0, 255] -> float32 [0, 1]; float inputs are assumed to be scaled already."""
    if jnp.issubdtype(images.dtype, jnp.integer):
        return images.astype(jnp.float32) / 255.0
    return images.astype(jnp.float32)


class NatureCNN(nn.Module):
    """images [B, H, W, C] -> features [B, 512] (Mnih et al. 2015)."""

    features: int = 512

    @nn.compact
    def __call__(self, images: jax.Array) -> jax.Array:
        x = to_unit_range(images)
        x = nn.relu(nn.Conv(32, (8, 8), strides=(4, 4), padding="VALID")(x))
        x = nn.relu(nn.Conv(64, (4, 4), strides=(2, 2), padding="VALID")(x))
        x = nn.relu(nn.Conv(64, (3, 3), strides=(1, 1), padding="VALID")(x))
        x = x.reshape(*x.shape[:-3], -1)
        return nn.relu(nn.Dense(self.features)(x))


class DrQEncoder(nn.Module):
    """images [B, H, W, C] -> features [B, 50] (#63 Appendix: 4 conv layers of 32 filters, dense 50, LayerNorm, tanh)."""

    features: int = 50
    filters: int = 32

    @nn.compact
    def __call__(self, images: jax.Array) -> jax.Array:
        x = to_unit_range(images)
        x = nn.relu(nn.Conv(self.filters, (3, 3), strides=(2, 2), padding="VALID")(x))
        for _ in range(3):
            x = nn.relu(nn.Conv(self.filters, (3, 3), strides=(1, 1), padding="VALID")(x))
        x = x.reshape(*x.shape[:-3], -1)
        return jnp.tanh(nn.LayerNorm()(nn.Dense(self.features)(x)))


class MinAtarCNN(nn.Module):
    """images [B, 10, 10, C] -> features: one 16-filter 3x3 stride-1 convolution with ReLU, flattened (the MinAtar
    DQN network of Young & Tian 2019, Sec. 4, before its 128-unit hidden layer, which the agent's MLP provides)."""

    filters: int = 16

    @nn.compact
    def __call__(self, images: jax.Array) -> jax.Array:
        x = nn.relu(nn.Conv(self.filters, (3, 3), strides=(1, 1), padding="VALID")(to_unit_range(images)))
        return x.reshape(*x.shape[:-3], -1)


ENCODERS = {"nature": NatureCNN, "drq": DrQEncoder, "minatar": MinAtarCNN}


def random_shift(key: jax.Array, images: jax.Array, pad: int = 4) -> jax.Array:
    """DrQ random shift (#63 Sec. 3.1, pad 4 for 84x84): images [B, H, W, C] -> [B, H, W, C], same dtype.

    Each image is padded by `pad` pixels (border replicated) and cropped at an independent uniform offset in
    [0, 2 pad]^2. pad 0 returns the images unchanged.
    """
    if pad == 0:
        return images
    batch, height, width, channels = images.shape
    padded = jnp.pad(images, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="edge")
    offsets = jax.random.randint(key, (batch, 2), 0, 2 * pad + 1)

    def crop(image: jax.Array, offset: jax.Array) -> jax.Array:
        return jax.lax.dynamic_slice(image, (offset[0], offset[1], 0), (height, width, channels))

    return jax.vmap(crop)(padded, offsets)
