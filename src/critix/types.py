"""Shared data types. Shapes: S seeds, E ensemble, T time, N envs, B batch, K bins."""

from __future__ import annotations

import jax
from flax import struct


class CritixError(Exception):
    """A user-facing error: one message that names the problem and the fix (CLI exit code 2)."""


@struct.dataclass
class Transition:
    """One step of experience (fields may carry leading batch axes, e.g. [B, ...]).

    `terminated` (the MDP ended: do not bootstrap) and `truncated` (a time limit cut the episode:
    bootstrap from `next_obs`, the real final observation) are kept apart everywhere.
    """

    obs: jax.Array
    action: jax.Array
    reward: jax.Array
    next_obs: jax.Array
    terminated: jax.Array
    truncated: jax.Array


Batch = Transition
