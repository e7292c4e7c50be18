"""Per-task score normalisation: (return - low) / (high - low), so 0 is a random policy and 1 a reference level.

Aggregating returns across tasks needs one scale: raw returns differ by orders of magnitude between tasks
(Agarwal et al. 2021, Sec. 2; D4RL's normalised score, Fu et al. 2020, is the same map times 100). Each task has
two reference returns:

- `low`: the mean return of a uniformly random policy, measured with `benchmarks/random_returns.py`
  (100 episodes, seed 0, gymnasium 1.4; raw file `benchmarks/results/random_returns-2026-11-21.json`);
- `high`: classic control: the "solved" level, gymnasium's registered `reward_threshold` where the env has one
  (CartPole-v1 475, Acrobot-v1 -100, MountainCarContinuous-v0 90); Pendulum-v1 has none, so -150, the level the
  RL Zoo's tuned SAC and TD3 reach (-157, -152). MuJoCo: D4RL's expert reference returns (Fu et al. 2020,
  `d4rl/infos.py` REF_MAX_SCORE, SAC experts on the v2 envs; a fixed scale here, not a claim about v5).

A normalised score above 1 beats the reference; optimality gap at threshold 1 measures the shortfall from it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import numpy as np

from critix.types import CritixError


@dataclasses.dataclass(frozen=True)
class Reference:
    """Reference returns of one task: `low` maps to 0, `high` to 1."""

    low: float
    high: float
    source: str

    def __post_init__(self) -> None:
        if not self.high > self.low:
            raise ValueError(f"reference high ({self.high}) must be greater than low ({self.low})")


_RANDOM = "random policy, benchmarks/random_returns.py"
REFERENCES: dict[str, Reference] = {
    "CartPole-v1": Reference(23.68, 475.0, f"low: {_RANDOM}; high: gymnasium reward_threshold"),
    "Acrobot-v1": Reference(-497.08, -100.0, f"low: {_RANDOM}; high: gymnasium reward_threshold"),
    "Pendulum-v1": Reference(-1207.56, -150.0, f"low: {_RANDOM}; high: RL Zoo SAC/TD3 level (-157/-152)"),
    "MountainCarContinuous-v0": Reference(-33.25, 90.0, f"low: {_RANDOM}; high: gymnasium reward_threshold"),
    "HalfCheetah-v5": Reference(-282.49, 12135.0, f"low: {_RANDOM}; high: D4RL expert (REF_MAX_SCORE)"),
    "Hopper-v5": Reference(16.67, 3234.3, f"low: {_RANDOM}; high: D4RL expert (REF_MAX_SCORE)"),
    "Walker2d-v5": Reference(1.77, 4592.3, f"low: {_RANDOM}; high: D4RL expert (REF_MAX_SCORE)"),
    "Ant-v5": Reference(-48.05, 3879.7, f"low: {_RANDOM}; high: D4RL expert (REF_MAX_SCORE)"),
}
"""Reference returns per gymnasium env id (see the module docstring for their sources)."""


def reference(task: str, references: Mapping[str, Reference] | None = None) -> Reference:
    """The reference of `task`, or a CritixError naming the tasks that have one and how to add one."""
    table = REFERENCES if references is None else references
    if task not in table:
        raise CritixError(
            f"no normalisation reference for task {task!r} (known: {', '.join(sorted(table))}); pass "
            f"references={{'{task}': Reference(low, high, source)}} or aggregate raw returns of one task only"
        )
    return table[task]


def normalize(returns: np.ndarray, ref: Reference) -> np.ndarray:
    """Raw returns (any shape) -> normalised scores: (return - low) / (high - low)."""
    return (np.asarray(returns, dtype=np.float64) - ref.low) / (ref.high - ref.low)


def normalize_tasks(returns: Mapping[str, np.ndarray],
                    references: Mapping[str, Reference] | None = None) -> np.ndarray:
    """Task -> raw returns [R] (same R for every task) -> normalised scores [R, T], tasks in mapping order."""
    if not returns:
        raise ValueError("no tasks to normalise")
    lengths = {task: np.shape(r) for task, r in returns.items()}
    if len({s for s in lengths.values()}) != 1 or len(next(iter(lengths.values()))) != 1:
        raise ValueError(f"every task needs a 1-D array with the same number of runs; got {lengths}")
    columns = [normalize(r, reference(task, references)) for task, r in returns.items()]
    return np.stack(columns, axis=1)
