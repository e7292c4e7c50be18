"""Prioritized replay (Schaul et al. 2016) as a sum-tree pytree that lives on the device and works inside jit.

The tree is one flat array `nodes` [2P] (P a power of two >= capacity): the root is nodes[1], node i has children
2i and 2i+1, and leaf j (buffer slot j) is nodes[P + j]. Setting M priorities rewrites only the M paths to the root
(O(M log P)); sampling descends from the root (O(B log P)), both as fixed-depth array code. Item j is drawn with
probability p_j / sum_k p_k where p_j = (|delta_j| + eps)^alpha (#PER Eq. 1); the bias is corrected by importance
weights w_j = (C * P(j))^-beta / max_batch w (Sec. 3.4). Shapes: C capacity, M items, B batch.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import struct


@struct.dataclass
class SumTree:
    nodes: jax.Array  # [2P] float32: internal sums at 1..P-1, leaves at P..2P-1 (index 0 unused)
    max_priority: jax.Array  # float32 scalar: the priority given to new items

    @property
    def num_leaves(self) -> int:
        return self.nodes.shape[-1] // 2


def init(capacity: int) -> SumTree:
    """An empty tree for `capacity` slots (all priorities 0: an item is sampled only after `set_priorities`)."""
    if capacity <= 0:
        raise ValueError(f"prioritized replay capacity must be > 0, got {capacity}")
    leaves = 1 << max(0, math.ceil(math.log2(capacity)))
    return SumTree(jnp.zeros(2 * leaves, jnp.float32), jnp.ones((), jnp.float32))


def total(tree: SumTree) -> jax.Array:
    return tree.nodes[1]


def set_priorities(tree: SumTree, index: jax.Array, priority: jax.Array) -> SumTree:
    """Set the priorities of slots `index` [M] to `priority` [M] and refresh the sums on their paths to the root.

    A slot repeated in `index` gets one of its priorities; all writes to a parent then store the same sum.
    """
    num_leaves = tree.num_leaves
    node = index.astype(jnp.int32) + num_leaves
    nodes = tree.nodes.at[node].set(priority.astype(jnp.float32))
    for _ in range(num_leaves.bit_length() - 1):  # depth = log2(P) levels above the leaves
        node = node // 2
        nodes = nodes.at[node].set(nodes[2 * node] + nodes[2 * node + 1])
    return SumTree(nodes, jnp.maximum(tree.max_priority, jnp.max(priority)))


def sample(tree: SumTree, key: jax.Array, batch_size: int, size: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Stratified proportional sampling: one draw in each of B equal slices of the total (#PER Appendix B.2.1).

    Returns (slot index [B] int32, sampling probability [B]). `size` (the filled count) guards against float
    round-off walking into an empty slot.
    """
    num_leaves = tree.num_leaves
    bounds = (jnp.arange(batch_size) + jax.random.uniform(key, (batch_size,))) / batch_size
    mass = bounds * total(tree)
    node = jnp.ones((batch_size,), jnp.int32)
    for _ in range(num_leaves.bit_length() - 1):
        left = tree.nodes[2 * node]
        go_right = mass >= left
        mass = jnp.where(go_right, mass - left, mass)
        node = 2 * node + go_right.astype(jnp.int32)
    index = jnp.clip(node - num_leaves, 0, jnp.maximum(size - 1, 0))
    prob = tree.nodes[index + num_leaves] / jnp.maximum(total(tree), 1e-12)
    return index, prob


def importance_weights(prob: jax.Array, size: jax.Array, beta: float) -> jax.Array:
    """w = (size * P(j))^-beta, divided by the batch maximum so weights only scale updates down (#PER Sec. 3.4)."""
    w = jnp.power(jnp.maximum(size.astype(jnp.float32) * prob, 1e-12), -beta)
    return w / jnp.max(w)
