"""critix.stats: aggregate metrics against hand-computed cases and against the `rliable` package.

rliable draws its bootstrap indices from the global `np.random` state, so seeding it with np.random.seed(seed)
and giving critix the same seed must give the same resamples, hence the same intervals (to rounding).
"""

from __future__ import annotations

import numpy as np
import pytest

from critix.stats import aggregate as agg
from critix.stats import normalize
from critix.types import CritixError

rly = pytest.importorskip("rliable.library")
rly_metrics = pytest.importorskip("rliable.metrics")

REPS = 1_000  # the comparison is exact (same resamples), so few replicates suffice; rliable is slow (arch loop)
POI_REPS = 150  # rliable calls scipy.stats.mannwhitneyu per task and replicate: slow


def score_dict() -> dict[str, np.ndarray]:
    """Three algorithms, 5 tasks; different run counts, ties and a constant task included."""
    rng = np.random.default_rng(7)
    a = rng.normal(0.6, 0.3, (5, 5))
    b = rng.normal(0.4, 0.2, (4, 5))
    c = np.round(rng.uniform(0, 1, (6, 5)), 1)  # ties
    c[:, 2] = 0.5
    return {"A": a, "B": b, "C": c}


# ---- hand-computed cases ------------------------------------------------------------------------------------
def test_point_estimates_by_hand() -> None:
    scores = np.array([[1.0, 10.0], [2.0, 20.0], [3.0, 30.0], [4.0, 40.0]])  # [R=4, T=2]
    assert agg.mean(scores) == pytest.approx((2.5 + 25.0) / 2)
    assert agg.median(np.array([[1.0, 2.0, 9.0]])) == pytest.approx(2.0)
    # 8 scores sorted: 1 2 3 4 10 20 30 40; IQM drops the lowest 2 and highest 2 -> mean(3, 4, 10, 20)
    assert agg.iqm(scores) == pytest.approx((3 + 4 + 10 + 20) / 4)
    # optimality gap at 5: 5 - mean(min(s, 5)) = 5 - (1+2+3+4+5*4)/8
    assert agg.optimality_gap(scores, 5.0) == pytest.approx(5 - 30 / 8)
    x = np.array([[1.0], [3.0]])
    y = np.array([[2.0], [3.0]])
    # pairs (1,2) lose, (1,3) lose, (3,2) win, (3,3) tie -> (1 + 0.5) / 4
    assert agg.probability_of_improvement(x, y) == pytest.approx(0.375)
    assert agg.score_distribution(scores, np.array([0.0, 3.0, 40.0])).tolist() == [1.0, 5 / 8, 0.0]


def test_iqm_of_constant_is_the_constant_and_interval_collapses() -> None:
    out = agg.aggregate_metrics({"x": np.full((3, 2), 0.7)}, reps=100)["x"]
    for interval in out.values():
        assert interval.low == pytest.approx(interval.high)
    assert out["iqm"].point == pytest.approx(0.7)
    assert out["optimality_gap"].point == pytest.approx(0.3)


def test_interval_contains_point_and_narrows_with_more_runs() -> None:
    rng = np.random.default_rng(0)
    few = agg.aggregate_metrics({"x": rng.normal(0, 1, (3, 4))}, ["mean"], reps=2_000)["x"]["mean"]
    many = agg.aggregate_metrics({"x": rng.normal(0, 1, (60, 4))}, ["mean"], reps=2_000)["x"]["mean"]
    assert few.low <= few.point <= few.high and many.low <= many.point <= many.high
    assert many.high - many.low < (few.high - few.low) / 2


def test_same_seed_same_result_and_bad_input_is_refused() -> None:
    scores = score_dict()
    assert agg.aggregate_metrics(scores, reps=300, seed=3) == agg.aggregate_metrics(scores, reps=300, seed=3)
    assert agg.aggregate_metrics(scores, reps=300, seed=3) != agg.aggregate_metrics(scores, reps=300, seed=4)
    with pytest.raises(ValueError, match="NaN"):
        agg.aggregate_metrics({"x": np.array([[np.nan, 1.0]])})
    with pytest.raises(ValueError, match="same tasks"):
        agg.aggregate_metrics({"x": np.ones((2, 3)), "y": np.ones((2, 4))})
    with pytest.raises(ValueError, match=r"\[runs, tasks\]"):
        agg.aggregate_metrics({"x": np.ones(3)})
    with pytest.raises(ValueError, match="unknown aggregate metrics"):
        agg.aggregate_metrics({"x": np.ones((2, 2))}, ["best"])
    with pytest.raises(ValueError, match="confidence"):
        agg.aggregate_metrics({"x": np.ones((2, 2))}, confidence=95)


def test_normalize() -> None:
    ref = normalize.Reference(-100.0, 100.0, "test")
    np.testing.assert_allclose(normalize.normalize([-100.0, 0.0, 300.0], ref), [0.0, 0.5, 2.0])
    table = normalize.normalize_tasks({"CartPole-v1": np.array([23.68, 475.0])})
    np.testing.assert_allclose(table, [[0.0], [1.0]])
    with pytest.raises(CritixError, match="no normalisation reference"):
        normalize.normalize_tasks({"NoSuchEnv-v0": np.array([1.0])})
    with pytest.raises(ValueError, match="greater than low"):
        normalize.Reference(1.0, 1.0, "bad")


# ---- against rliable -----------------------------------------------------------------------------------------
def rliable_aggregate(scores: np.ndarray) -> np.ndarray:
    return np.array([
        rly_metrics.aggregate_iqm(scores),
        rly_metrics.aggregate_mean(scores),
        rly_metrics.aggregate_median(scores),
        rly_metrics.aggregate_optimality_gap(scores),
    ])


@pytest.mark.parametrize("task_bootstrap", [False, True])
def test_aggregate_metrics_match_rliable(task_bootstrap: bool) -> None:
    scores = score_dict()
    np.random.seed(11)
    points, intervals = rly.get_interval_estimates(scores, rliable_aggregate, reps=REPS,
                                                   task_bootstrap=task_bootstrap)
    ours = agg.aggregate_metrics(scores, ["iqm", "mean", "median", "optimality_gap"], reps=REPS, seed=11,
                                 task_bootstrap=task_bootstrap)
    for name in scores:
        got = ours[name]
        for i, metric in enumerate(("iqm", "mean", "median", "optimality_gap")):
            assert got[metric].point == pytest.approx(points[name][i], abs=1e-6)
            assert got[metric].low == pytest.approx(intervals[name][0, i], abs=1e-6), (name, metric)
            assert got[metric].high == pytest.approx(intervals[name][1, i], abs=1e-6), (name, metric)


def test_probability_of_improvement_matches_rliable() -> None:
    scores = score_dict()
    for x, y in (("A", "B"), ("C", "A")):
        np.random.seed(5)
        pair = {f"{x},{y}": (scores[x], scores[y])}
        points, intervals = rly.get_interval_estimates(
            pair, lambda a, b: np.array([rly_metrics.probability_of_improvement(a, b)]), reps=POI_REPS)
        ours = agg.probability_of_improvement_interval(scores[x], scores[y], reps=POI_REPS, seed=5)
        assert ours.point == pytest.approx(points[f"{x},{y}"][0], abs=1e-6)
        assert ours.low == pytest.approx(intervals[f"{x},{y}"][0, 0], abs=1e-6)
        assert ours.high == pytest.approx(intervals[f"{x},{y}"][1, 0], abs=1e-6)


def test_performance_profile_matches_rliable() -> None:
    scores = score_dict()
    taus = np.linspace(-0.2, 1.2, 15)
    np.random.seed(2)
    profiles, cis = rly.create_performance_profile(scores, taus, reps=500)
    ours = agg.performance_profile(scores, taus, reps=500, seed=2)
    for name in scores:
        np.testing.assert_allclose(ours[name].fraction, profiles[name], atol=1e-6)
        np.testing.assert_allclose(ours[name].low, cis[name][0], atol=1e-6)
        np.testing.assert_allclose(ours[name].high, cis[name][1], atol=1e-6)


def test_curve_intervals_match_per_point_bootstrap() -> None:
    """Bands from whole-curve resampling equal rliable's IQM interval computed on the same resamples."""
    rng = np.random.default_rng(1)
    curves = rng.normal(0, 1, (5, 4))  # 5 runs, 4 evaluation points
    point, low, high = agg.curve_intervals(curves, "iqm", reps=300, seed=9)
    # rliable with runs x points as runs x "tasks" and a per-point IQM: one [R, P] draw per replicate, whereas
    # curve_intervals draws one run index per run and replicate (whole curves): same point estimates, and
    # intervals that agree only statistically. So compare the point estimate exactly and the interval loosely.
    for p in range(4):
        assert point[p] == pytest.approx(rly_metrics.aggregate_iqm(curves[:, p:p + 1]))
        assert low[p] <= point[p] <= high[p]
    ragged = curves.copy()
    ragged[3:, 3] = np.nan  # two runs lack the last point
    point_r, low_r, high_r = agg.curve_intervals(ragged, "mean", reps=300)
    assert point_r[3] == pytest.approx(curves[:3, 3].mean())
    assert low_r[3] <= point_r[3] <= high_r[3]
