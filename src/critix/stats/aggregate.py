"""Aggregate performance over runs and tasks, with stratified bootstrap confidence intervals.

The methods of Agarwal et al. 2021, "Deep Reinforcement Learning at the Edge of the Statistical Precipice"
(NeurIPS; the `rliable` package): scores are normalised per task (see `critix.stats.normalize`), then summarised
across all runs and tasks by

- `mean`: the mean over tasks of each task's mean score (Sec. 4.3);
- `median`: the median over tasks of each task's mean score (Sec. 4.3);
- `iqm`: the interquartile mean, the mean of the middle 50% of all run x task scores (Sec. 4.3, "IQM");
- `optimality_gap`: how far scores fall short of a target, `threshold - mean(min(score, threshold))` (Sec. 4.3);
- `probability_of_improvement`: P(X > Y), the Mann-Whitney U statistic of algorithm X against Y per task,
  averaged over tasks (Sec. 4.3, Eq. in "Probability of improvement");
- `performance_profile`: the fraction of runs whose score exceeds each threshold tau (Sec. 4.2, "score
  distributions").

Each comes with a percentile confidence interval from the stratified bootstrap (Sec. 4.1): every bootstrap
replicate resamples, independently within each task, as many runs as that task has, with replacement. Tasks are
kept fixed (the variation comes from the runs), unless `task_bootstrap=True` also resamples the tasks.

Scores for one algorithm are an array [R, T] (R runs, T tasks); a score dict maps algorithm name -> [R, T] (R
may differ between algorithms; T and the task order must be the same).

Reproducibility and agreement with rliable: bootstrap indices come from numpy's legacy `RandomState(seed)`,
whose stream numpy keeps stable across versions, drawn in the order rliable draws them (rliable draws from the
global `np.random` state, one [R, T] index array per replicate, algorithms in dict order). So the results equal
rliable's `get_interval_estimates` after `np.random.seed(seed)` on the same arrays, to rounding
(tests/unit/test_stats.py checks this against the `rliable` package).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence

import numpy as np

ScoreDict = Mapping[str, np.ndarray]
"""Algorithm name -> scores [R runs, T tasks]."""

Statistic = Callable[[np.ndarray], np.ndarray]
"""Scores [..., R, T] -> one value per leading index [...] (batched over bootstrap replicates)."""

DEFAULT_REPS = 50_000  # rliable's default for aggregate metrics (Agarwal et al. 2021, Sec. 4.1)
PROFILE_REPS = 2_000  # rliable's default for performance profiles
_CHUNK_ELEMENTS = 4_000_000  # bootstrap replicates are evaluated in chunks of at most this many scores


# ---- point estimates: each takes scores [..., R, T] and reduces the last two axes -------------------------------
def mean(scores: np.ndarray) -> np.ndarray:
    """Mean over tasks of the per-task mean over runs."""
    return np.mean(np.mean(scores, axis=-2), axis=-1)


def median(scores: np.ndarray) -> np.ndarray:
    """Median over tasks of the per-task mean over runs."""
    return np.median(np.mean(scores, axis=-2), axis=-1)


def iqm(scores: np.ndarray) -> np.ndarray:
    """Interquartile mean: the 25% trimmed mean of all R*T scores (as scipy.stats.trim_mean with 0.25)."""
    flat = np.reshape(scores, (*np.shape(scores)[:-2], -1))
    n = flat.shape[-1]
    low = int(0.25 * n)
    high = n - low
    return np.mean(np.sort(flat, axis=-1)[..., low:high], axis=-1)


def optimality_gap(scores: np.ndarray, threshold: float = 1.0) -> np.ndarray:
    """threshold - mean(min(score, threshold)) over all runs and tasks: 0 when every run reaches `threshold`."""
    return threshold - np.mean(np.minimum(scores, threshold), axis=(-2, -1))


def probability_of_improvement(scores_x: np.ndarray, scores_y: np.ndarray) -> np.ndarray:
    """P(X > Y): per task, the fraction of run pairs (x, y) with x > y, ties counting 1/2 (the Mann-Whitney U
    statistic over Rx*Ry), averaged over tasks. scores_x [..., Rx, T], scores_y [..., Ry, T] -> [...]."""
    x = np.asarray(scores_x)[..., :, None, :]
    y = np.asarray(scores_y)[..., None, :, :]
    per_task = np.mean((x > y) + 0.5 * (x == y), axis=(-3, -2))
    return np.mean(per_task, axis=-1)


def score_distribution(scores: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Fraction of all run x task scores strictly above each threshold: [..., R, T], [K] -> [..., K]."""
    flat = np.reshape(scores, (*np.shape(scores)[:-2], -1))
    return np.mean(flat[..., None, :] > np.asarray(thresholds)[:, None], axis=-1)


METRICS: dict[str, Statistic] = {"iqm": iqm, "mean": mean, "median": median, "optimality_gap": optimality_gap}
"""The aggregate metrics by name, in the order reports list them."""


# ---- intervals --------------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Interval:
    """A point estimate with its bootstrap confidence interval [low, high]."""

    point: float
    low: float
    high: float

    def __str__(self) -> str:
        return f"{self.point:.3f} [{self.low:.3f}, {self.high:.3f}]"


@dataclasses.dataclass(frozen=True)
class Profile:
    """A performance profile: at each threshold, the fraction of runs above it, with its interval ([K] each)."""

    thresholds: np.ndarray
    fraction: np.ndarray
    low: np.ndarray
    high: np.ndarray


def check_scores(scores: np.ndarray, name: str = "scores") -> np.ndarray:
    """Scores as a float64 [R, T] array with R >= 1, T >= 1 and no NaN/inf, or a ValueError naming the problem."""
    array = np.asarray(scores, dtype=np.float64)
    if array.ndim != 2 or array.shape[0] < 1 or array.shape[1] < 1:
        raise ValueError(f"{name} must be a 2-D array [runs, tasks] with at least one of each, got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} contains NaN or inf; drop unfinished runs before aggregating")
    return array


def _check_dict(score_dict: ScoreDict) -> dict[str, np.ndarray]:
    if not score_dict:
        raise ValueError("the score dict is empty; give at least one algorithm's scores [runs, tasks]")
    checked = {name: check_scores(s, f"scores of {name!r}") for name, s in score_dict.items()}
    tasks = {a.shape[1] for a in checked.values()}
    if len(tasks) > 1:
        shapes = ", ".join(f"{n}: {a.shape}" for n, a in checked.items())
        raise ValueError(f"every algorithm needs scores on the same tasks (same T in [R, T]); got {shapes}")
    return checked


def _check_options(reps: int, confidence: float) -> None:
    if reps < 1:
        raise ValueError(f"reps (bootstrap replicates) must be >= 1, got {reps}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), e.g. 0.95, got {confidence}")


def _percentile_interval(replicates: np.ndarray, confidence: float) -> tuple[np.ndarray, np.ndarray]:
    """Percentile bootstrap interval over axis 0 (linear interpolation, as numpy and arch compute it)."""
    alpha = (1.0 - confidence) / 2
    low, high = np.percentile(replicates, [100 * alpha, 100 * (1.0 - alpha)], axis=0)
    return low, high


def _resample_indices(rng: np.random.RandomState, num_runs: int, num_tasks: int, reps: int,
                      task_bootstrap: bool) -> tuple[np.ndarray, np.ndarray]:
    """Run indices [reps, R, T] (a fresh draw of R runs within every task) and task indices [reps, 1, T]."""
    runs = np.empty((reps, num_runs, num_tasks), dtype=np.int64)
    tasks = np.broadcast_to(np.arange(num_tasks), (reps, 1, num_tasks)).copy()
    if not task_bootstrap:  # one draw of [reps, R, T] is the same stream as reps draws of [R, T]
        runs[:] = rng.randint(0, num_runs, size=(reps, num_runs, num_tasks))
        return runs, tasks
    for r in range(reps):
        runs[r] = rng.randint(0, num_runs, size=(num_runs, num_tasks))
        tasks[r, 0] = rng.randint(0, num_tasks, size=num_tasks)
    return runs, tasks


def bootstrap_replicates(scores: np.ndarray, statistic: Statistic, reps: int, rng: np.random.RandomState,
                         task_bootstrap: bool = False) -> np.ndarray:
    """`statistic` on `reps` stratified bootstrap resamples of scores [R, T] -> [reps, ...]."""
    num_runs, num_tasks = scores.shape
    runs, tasks = _resample_indices(rng, num_runs, num_tasks, reps, task_bootstrap)
    chunk = max(1, _CHUNK_ELEMENTS // scores.size)
    out = [statistic(scores[runs[i:i + chunk], tasks[i:i + chunk]]) for i in range(0, reps, chunk)]
    return np.concatenate([np.asarray(o) for o in out], axis=0)


def interval_estimates(
    score_dict: ScoreDict,
    statistic: Statistic,
    reps: int = DEFAULT_REPS,
    confidence: float = 0.95,
    seed: int = 0,
    task_bootstrap: bool = False,
) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """For each algorithm: (point estimate, interval low, interval high) of `statistic` (each of the statistic's
    output shape). One random stream for the whole dict, algorithms in dict order (as rliable's
    get_interval_estimates after np.random.seed(seed))."""
    checked = _check_dict(score_dict)
    _check_options(reps, confidence)
    rng = np.random.RandomState(seed)
    out = {}
    for name, scores in checked.items():
        point = np.asarray(statistic(scores))
        low, high = _percentile_interval(bootstrap_replicates(scores, statistic, reps, rng, task_bootstrap),
                                         confidence)
        out[name] = (point, low, high)
    return out


def aggregate_metrics(
    score_dict: ScoreDict,
    metrics: Sequence[str] = tuple(METRICS),
    reps: int = DEFAULT_REPS,
    confidence: float = 0.95,
    seed: int = 0,
    task_bootstrap: bool = False,
) -> dict[str, dict[str, Interval]]:
    """algorithm -> metric name -> Interval, for the metrics named (see METRICS), all computed on the same
    bootstrap resamples (as rliable with one function returning every metric)."""
    unknown = [m for m in metrics if m not in METRICS]
    if unknown or not metrics:
        raise ValueError(f"unknown aggregate metrics {unknown}; choose from {', '.join(METRICS)}")
    functions = [METRICS[m] for m in metrics]

    def all_metrics(scores: np.ndarray) -> np.ndarray:
        return np.stack([f(scores) for f in functions], axis=-1)

    estimates = interval_estimates(score_dict, all_metrics, reps, confidence, seed, task_bootstrap)
    return {
        name: {m: Interval(float(point[i]), float(low[i]), float(high[i])) for i, m in enumerate(metrics)}
        for name, (point, low, high) in estimates.items()
    }


def probability_of_improvement_interval(
    scores_x: np.ndarray,
    scores_y: np.ndarray,
    reps: int = DEFAULT_REPS,
    confidence: float = 0.95,
    seed: int = 0,
) -> Interval:
    """P(X > Y) with its interval: each replicate resamples X's runs and then Y's runs independently within each
    task (rliable's StratifiedIndependentBootstrap on the pair (X, Y))."""
    x, y = _check_dict({"X": scores_x, "Y": scores_y}).values()
    _check_options(reps, confidence)
    rng = np.random.RandomState(seed)
    (rx, t), ry = x.shape, y.shape[0]
    x_idx = np.empty((reps, rx, t), dtype=np.int64)
    y_idx = np.empty((reps, ry, t), dtype=np.int64)
    for r in range(reps):  # draws interleave X then Y per replicate, so they cannot be one array draw
        x_idx[r] = rng.randint(0, rx, size=(rx, t))
        y_idx[r] = rng.randint(0, ry, size=(ry, t))
    tasks = np.arange(t)
    chunk = max(1, _CHUNK_ELEMENTS // (rx * ry * t))
    replicates = np.concatenate([
        probability_of_improvement(x[x_idx[i:i + chunk], tasks], y[y_idx[i:i + chunk], tasks])
        for i in range(0, reps, chunk)
    ])
    low, high = _percentile_interval(replicates, confidence)
    return Interval(float(probability_of_improvement(x, y)), float(low), float(high))


def performance_profile(
    score_dict: ScoreDict,
    thresholds: np.ndarray | Sequence[float],
    reps: int = PROFILE_REPS,
    confidence: float = 0.95,
    seed: int = 0,
    task_bootstrap: bool = False,
) -> dict[str, Profile]:
    """algorithm -> the fraction of run x task scores above each threshold tau, with intervals (rliable's
    create_performance_profile with score distributions)."""
    taus = np.asarray(thresholds, dtype=np.float64)
    if taus.ndim != 1 or taus.size < 1:
        raise ValueError(f"thresholds must be a non-empty 1-D list of scores, got shape {taus.shape}")
    estimates = interval_estimates(score_dict, lambda s: score_distribution(s, taus), reps, confidence, seed,
                                   task_bootstrap)
    return {name: Profile(taus, point, low, high) for name, (point, low, high) in estimates.items()}


def curve_intervals(
    values: np.ndarray,
    estimator: str = "iqm",
    reps: int = PROFILE_REPS,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Learning-curve bands: values [R runs, P points] of one task -> (estimate, low, high), each [P], with the
    estimator ('mean' or 'iqm') over runs at each point and its bootstrap interval (runs resampled together
    across points, so one replicate is one resampled set of whole curves). NaN where a point has no runs;
    points are handled one by one when some runs lack them."""
    if estimator not in ("mean", "iqm"):
        raise ValueError(f"estimator must be 'mean' or 'iqm', got {estimator!r}")
    _check_options(reps, confidence)
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 2:
        raise ValueError(f"values must be [runs, points], got shape {values.shape}")
    fn = mean if estimator == "mean" else iqm
    rng = np.random.RandomState(seed)
    num_points = values.shape[1]
    point, low, high = (np.full(num_points, np.nan) for _ in range(3))
    complete = np.all(np.isfinite(values), axis=0)
    if complete.any():  # every run has these points: resample whole curves, all points at once
        block = values[:, complete]
        idx = rng.randint(0, block.shape[0], size=(reps, block.shape[0]))
        # one task per point: scores [reps, R, 1] per point -> treat points as the batch axis
        per_point = np.moveaxis(block[idx], -1, 1)[..., None]  # [reps, P, R, 1]
        point[complete] = fn(block.T[:, :, None])
        low[complete], high[complete] = _percentile_interval(fn(per_point), confidence)
    for p in np.flatnonzero(~complete):
        runs = values[np.isfinite(values[:, p]), p]
        if runs.size == 0:
            continue
        column = runs[:, None]
        point[p] = fn(column)
        idx = rng.randint(0, runs.size, size=(reps, runs.size))
        low[p], high[p] = _percentile_interval(fn(column[idx]), confidence)
    return point, low, high
