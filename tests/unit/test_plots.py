"""critix.stats plots and `critix plot` on hand-written run folders (no training needed)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from critix.cli import main
from critix.stats import aggregate, plots
from critix.stats.runs import final_returns, find_runs, load_run, merge_curves, score_table


def write_run(folder: Path, algo: str, env: str, finals: list[float], finished: bool = True) -> Path:
    """A run folder as `critix train` writes it: config.json, metrics.csv (long format), summary.json."""
    folder.mkdir(parents=True)
    seeds = len(finals)
    (folder / "config.json").write_text(json.dumps({"algo": algo, "agent": {}, "run": {"env": env, "num_seeds": seeds,
                                                                                        "seed": 0, "steps": 3000}}))
    with (folder / "metrics.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["step", "seed", "wall_seconds", "critic/loss", "eval/return"])
        for step in (1000, 2000, 3000):
            for seed, final in enumerate(finals):
                writer.writerow([step - 500, seed, 1.0, 0.5, ""])  # a training row: no eval value
                writer.writerow([step, seed, 2.0, "", f"{final * step / 3000:.6g}"])
    if finished:
        (folder / "summary.json").write_text(json.dumps({"final_return": finals, "wall_seconds": 10.0,
                                                         "steps_per_second": 100.0}))
    return folder


@pytest.fixture
def runs_root(tmp_path: Path) -> Path:
    root = tmp_path / "results"
    write_run(root / "sac-pend", "sac", "Pendulum-v1", [-150.0, -200.0, -300.0])
    write_run(root / "td3-pend", "td3", "Pendulum-v1", [-180.0, -400.0])
    write_run(root / "td3-pend-more", "td3", "Pendulum-v1", [-170.0])
    write_run(root / "sac-mcc", "sac", "MountainCarContinuous-v0", [90.0, -1.0, 93.0])
    write_run(root / "td3-mcc", "td3", "MountainCarContinuous-v0", [-0.5, 92.0, 91.0])
    write_run(root / "sac-unfinished", "sac", "Pendulum-v1", [-1000.0], finished=False)
    return root


def test_runs_are_read_merged_and_normalised(runs_root: Path) -> None:
    paths = find_runs([runs_root])
    assert len(paths) == 6
    runs = [load_run(p) for p in paths]
    td3 = [r for r in runs if r.algo == "td3" and r.env == "Pendulum-v1"]
    steps, values = merge_curves(td3)
    assert steps.tolist() == [1000, 2000, 3000] and values.shape == (3, 3)
    finals = final_returns(runs)
    assert sorted(finals["td3"]["Pendulum-v1"].tolist()) == [-400.0, -180.0, -170.0]
    assert finals["sac"]["Pendulum-v1"].size == 3  # the unfinished run is left out
    table, tasks = score_table(finals)
    assert sorted(tasks) == ["MountainCarContinuous-v0", "Pendulum-v1"]
    assert table["sac"].shape == (3, 2) and table["td3"].shape == (3, 2)
    pend = tasks.index("Pendulum-v1")
    assert table["sac"][0, pend] == pytest.approx((-150.0 + 1207.56) / (-150.0 + 1207.56))


def test_plot_functions_write_png_and_svg(runs_root: Path, tmp_path: Path) -> None:
    runs = [load_run(p) for p in find_runs([runs_root])]
    written = plots.plot_learning_curves(runs, tmp_path / "curves.png", "mean", reps=200)
    assert [p.suffix for p in written] == [".png", ".svg"]
    table, _ = score_table(final_returns(runs))
    results = aggregate.aggregate_metrics(table, reps=200)
    written += plots.plot_aggregate_intervals(results, tmp_path / "aggregate.svg")
    profiles = aggregate.performance_profile(table, plots.profile_thresholds(table), reps=200)
    written += plots.plot_performance_profiles(profiles, tmp_path / "profile.png")
    for path in written:
        assert path.stat().st_size > 2000, path
    assert (tmp_path / "aggregate.png").exists()


def test_learning_curves_mark_unfinished_runs(runs_root: Path, tmp_path: Path) -> None:
    import matplotlib

    runs = [load_run(p) for p in find_runs([runs_root])]
    with matplotlib.rc_context({"svg.fonttype": "none"}):  # text as text, so the legend can be read back
        plots.plot_learning_curves(runs, tmp_path / "curves.png", "mean", reps=200)
    svg = (tmp_path / "curves.svg").read_text()
    assert "sac (4 seeds, unfinished)" in svg  # Pendulum: a finished 3-seed run pooled with an unfinished one
    assert "sac (3 seeds)" in svg and "td3 (3 seeds)" in svg


@pytest.mark.parametrize("kind", ["curves", "aggregate", "profile"])
def test_plot_command(kind: str, runs_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / f"{kind}.png"
    assert main(["plot", str(runs_root), "--out", str(out), "--kind", kind, "--reps", "200"]) == 0
    assert out.stat().st_size > 2000 and out.with_suffix(".svg").exists()
    assert "wrote" in capsys.readouterr().out


def test_plot_command_errors_exit_2(runs_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "empty").mkdir()
    assert main(["plot", str(tmp_path / "empty"), "--out", str(tmp_path / "x.png")]) == 2
    assert "holds no run folder" in capsys.readouterr().err
    assert main(["plot", str(runs_root), "--out", str(tmp_path / "x.pdf")]) == 2
    assert ".png or .svg" in capsys.readouterr().err
    assert main(["plot", str(runs_root), "--out", str(tmp_path / "x.png"), "--metric", "nope"]) == 2
    assert "no column 'nope'" in capsys.readouterr().err


def test_curve_estimator_bands_cover_the_estimate() -> None:
    values = np.array([[0.0, 1.0, 2.0], [1.0, 2.0, 3.0], [2.0, 3.0, 10.0], [3.0, 4.0, 5.0]])
    point, low, high = aggregate.curve_intervals(values, "iqm", reps=500)
    np.testing.assert_allclose(point, [1.5, 2.5, 4.0])  # IQM of 4 runs = mean of the middle two
    assert np.all(low <= point) and np.all(point <= high)
