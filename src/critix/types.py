"""Shared data types. Shapes: S seeds, E ensemble, T time, N envs, B batch, K bins."""

from __future__ import annotations

from typing import Any

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
    extras: Any = None
    """Optional per-step data a data path adds, a pytree with the same leading axes: log-probabilities and values
    at acting time, masks, agent ids, recurrent states. None (no leaves) when unused, so buffers carry nothing."""


Batch = Transition


@struct.dataclass
class Rollout:
    """Experience in time order: on-policy rollouts [T, N, ...] (T steps of N envs) or sequences sampled from
    replay [B, T, ...], with the recurrent state each sequence starts from (None for memoryless agents).

    `time_axis` says which axis of `transitions` is time (0 for rollouts, 1 for batches of sequences).
    """

    transitions: Transition
    start_state: Any = None
    time_axis: int = struct.field(pytree_node=False, default=0)

    @property
    def length(self) -> int:
        """T, the number of time steps."""
        return int(self.transitions.reward.shape[self.time_axis])
