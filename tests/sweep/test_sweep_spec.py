"""Sweep files without Ray: parsing, validation, expansion into configurations and trials, the manifest, and the
pieces a trial uses (its environment, its progress reading, its lock)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from critix.sweep import spec as sweep
from critix.types import CritixError

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "sweeps" / "sac_pendulum_lr.yaml"


def build(text: str) -> sweep.SweepSpec:
    return sweep.build_spec(sweep.parse_yaml(text, "t.yaml"), "t.yaml")


BASE = "algo: sac\nenv: Pendulum-v1\nsteps: 1000\nseeds: [0, 1]\n"


def test_the_example_sweep_expands_to_three_tied_learning_rates() -> None:
    spec = sweep.build_spec(sweep.read_sweep_file(EXAMPLE), EXAMPLE.name)
    configs = sweep.configurations(spec)
    assert [c.label for c in configs] == [f"actor_lr,critic_lr,alpha_lr={v}" for v in ("0.0001", "0.0003", "0.001")]
    agent, run = sweep.resolve(spec, configs[2].params, num_seeds=3)
    assert agent.actor_lr == agent.critic_lr == agent.alpha_lr == 1e-3
    assert (run.steps, run.num_seeds, run.eval_every, run.learning_starts, run.progress) == (10_000, 3, 1000, 1000, False)


def test_yaml_reads_exponent_numbers_as_floats_and_flags_match_the_file() -> None:
    assert sweep.parse_yaml("a: 1e-3\nb: 3E+2\nc: '1e-3'\nd: 7", "t") == {"a": 1e-3, "b": 300.0, "c": "1e-3", "d": 7}
    from_file = build(BASE + "grid: {actor_lr: [1e-4, 3e-4]}\nfixed: {hidden_sizes: [64, 64]}\n")
    from_flags = sweep.build_spec(sweep.merge_flags({}, "sac", "Pendulum-v1", 1000, "0,1", ("actor_lr=1e-4,3e-4",),
                                                    ("hidden_sizes=[64, 64]",)), "flags")
    assert from_file.to_json() == from_flags.to_json()
    # flags override the file key by key
    merged = sweep.merge_flags(sweep.parse_yaml(BASE + "grid: {actor_lr: [1e-4], batch_size: [64, 128]}", "t"),
                               steps=500, grid=("actor_lr=1e-3,3e-3",), scheduler="asha")
    assert merged["steps"] == 500 and merged["grid"] == {"actor_lr": [1e-3, 3e-3], "batch_size": [64, 128]}
    assert merged["scheduler"] == "asha"


def test_tuned_defaults_apply_unless_the_sweep_sets_the_field() -> None:
    spec = build("algo: dqn\nenv: CartPole-v1\nsteps: 1000\nseeds: [0]\ngrid: {q_lr: [1e-3]}\n")
    agent, _ = sweep.resolve(spec, {"q_lr": 1e-3})
    assert agent.hidden_sizes == (256, 256) and agent.q_lr == 1e-3  # RL Zoo CartPole settings, q_lr from the grid


def test_random_search_is_seeded_and_stays_in_its_ranges() -> None:
    text = BASE + ("grid: {batch_size: [64, 128]}\nsearch:\n  samples: 5\n  seed: 3\n  space:\n"
                   "    actor_lr: {loguniform: [1e-5, 1e-3]}\n    target_tau: {uniform: [0.001, 0.01]}\n"
                   "    num_critics: {randint: [2, 3]}\n    activation: {choice: [relu, tanh]}\n")
    first, again = sweep.configurations(build(text)), sweep.configurations(build(text))
    assert [c.params for c in first] == [c.params for c in again]
    assert len(first) == 10 and [c.params["batch_size"] for c in first] == [64] * 5 + [128] * 5
    assert all(1e-5 <= c.params["actor_lr"] <= 1e-3 and 0.001 <= c.params["target_tau"] <= 0.01 for c in first)
    assert {c.params["num_critics"] for c in first} <= {2, 3} and {c.params["activation"] for c in first} <= {"relu", "tanh"}
    other = sweep.configurations(build(text.replace("seed: 3", "seed: 4")))
    assert [c.params for c in other] != [c.params for c in first]


@pytest.mark.parametrize(("text", "message"), [
    (BASE + "grid: {actor_lr: [1e-4]}\nfixed: {actor_lr: 1e-3}\n", "actor_lr is set twice"),
    (BASE + "grid: {'actor_lr,actor_lr': [1e-4]}\n", "names a field twice"),
    (BASE + "grid: {actor_lr: [1e-4, 1e-4]}\n", "lists a value twice"),
    (BASE + "grid: {batch_size: [512]}\nfixed: {buffer_size: 100}\n", "buffer_size (100) must be >= batch_size (512)"),
    (BASE + "grid: {num_seeds: [2]}\n", "num_seeds is set by the sweep itself; list the seeds under seeds:"),
    (BASE + "scheduler: {name: asha, grace_period: 100}\n", "evaluate every 5000 steps"),
    (BASE + "scheduler: {name: asha, grace_period: 500}\nseeds_per_trial: 1\nfixed: {eval_every: 100}\n",
     "set seeds_per_trial: 0"),
    (BASE + "scheduler: {name: fifo, grace_period: 100}\n", "options of scheduler asha"),
    (BASE + "search: {samples: 2, space: {actor_lr: {normal: [0, 1]}}}\n", "search.space.actor_lr must be one of"),
    (BASE + "search: {samples: 0, space: {actor_lr: {uniform: [0.1, 1]}}}\n", "samples must be an integer >= 1"),
    (BASE + "algo: 7\n", "algo must be an algorithm name"),
    ("env: Pendulum-v1\nsteps: 10\nseeds: [0]\n", "algo is missing"),
    (BASE.replace("seeds: [0, 1]", "seeds: [0, 0]"), "seeds lists a seed twice"),
    (BASE.replace("env: Pendulum-v1", "env: CartPole-v1"), "sac needs a continuous (Box) action space"),
])
def test_bad_sweeps_name_the_key_and_the_fix(text: str, message: str) -> None:
    with pytest.raises(CritixError) as err:
        build(text)
    assert message in str(err.value) and str(err.value).startswith("t.yaml")


def test_plan_writes_every_trial_folder_and_keeps_the_sweep_it_was_made_for(tmp_path: Path) -> None:
    spec = build(BASE.replace("seeds: [0, 1]", "seeds: [0, 1, 2, 5]") + "grid: {actor_lr: [1e-4, 1e-3]}\n"
                 "seeds_per_trial: 2\n")
    manifest = sweep.plan(spec, tmp_path / "s")
    assert [t.id for t in manifest.trials] == ["c0-seeds_0-1", "c0-seeds_2-2", "c0-seeds_5-5",
                                               "c1-seeds_0-1", "c1-seeds_2-2", "c1-seeds_5-5"]
    config = json.loads((manifest.run_dir(manifest.trials[4]) / "config.json").read_text())
    assert (config["agent"]["actor_lr"], config["run"]["seed"], config["run"]["num_seeds"]) == (1e-3, 2, 1)
    assert config["run"]["run_dir"] == str((tmp_path / "s" / "trials" / "c1-seeds_2-2").resolve())

    # statuses come back from the folders: a summary means finished; running (a killed driver) means to run again
    manifest.trials[0].status, manifest.trials[1].status = "running", "stopped"
    manifest.save()
    (manifest.run_dir(manifest.trials[2]) / "summary.json").write_text("{}")
    again = sweep.plan(spec, tmp_path / "s")
    assert [t.status for t in again.trials[:4]] == ["pending", "stopped", "finished", "pending"]

    changed = build(BASE.replace("seeds: [0, 1]", "seeds: [0, 1, 2, 5]").replace("1000", "2000")
                    + "grid: {actor_lr: [1e-4, 1e-3]}\nseeds_per_trial: 2\n")
    with pytest.raises(CritixError, match="holds a different sweep .it differs in: steps"):
        sweep.plan(changed, tmp_path / "s")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("x")
    with pytest.raises(CritixError, match="is not a sweep folder"):
        sweep.plan(spec, tmp_path / "other")
    (tmp_path / "s" / sweep.MANIFEST).write_text("{not json")
    with pytest.raises(CritixError, match="is unreadable"):
        sweep.plan(spec, tmp_path / "s")


def test_trial_environment_threads_and_gpu_share(monkeypatch: pytest.MonkeyPatch) -> None:
    from critix.sweep.execute import trial_env
    from critix.sweep.spec import ExecutionConfig

    monkeypatch.delenv("XLA_PYTHON_CLIENT_MEM_FRACTION", raising=False)
    monkeypatch.setenv("XLA_FLAGS", "--xla_backend_optimization_level=0")
    cpu = trial_env(1.0, 0.0)
    assert cpu["OMP_NUM_THREADS"] == "1" and cpu["JAX_PLATFORMS"] == "cpu"
    assert cpu["XLA_FLAGS"] == "--xla_backend_optimization_level=0 --xla_cpu_multi_thread_eigen=false"
    shared = trial_env(4.0, 0.5)
    assert shared["OMP_NUM_THREADS"] == "4" and "multi_thread_eigen" not in shared["XLA_FLAGS"]
    assert shared["XLA_PYTHON_CLIENT_MEM_FRACTION"] == "0.450"
    for bad, message in (({"cpus_per_trial": 0.0}, "cpus_per_trial must be > 0"),
                         ({"gpus_per_trial": 1.5}, "gpus_per_trial must be a fraction"),
                         ({"address": "auto", "num_cpus": 2}, "num_cpus sizes the local Ray instance"),
                         ({"max_retries": -1}, "max_retries must be >= 0")):
        with pytest.raises(ValueError, match=message):
            ExecutionConfig(**bad)  # type: ignore[arg-type]


def test_eval_points_skip_a_row_being_written(tmp_path: Path) -> None:
    from critix.sweep.report import eval_points

    spec = build(BASE + "grid: {actor_lr: [1e-4]}\n")
    run_dir = sweep.plan(spec, tmp_path / "s").run_dir(sweep.plan(spec, tmp_path / "s").trials[0])
    rows = "step,seed,wall_seconds,eval/return\n100,0,1.0,-10\n100,1,1.0,-20\n200,0,2.0,-5\n"
    (run_dir / "metrics.csv").write_text(rows)
    assert eval_points(run_dir) == [(100, -15.0)]  # step 200 lacks seed 1
    (run_dir / "metrics.csv").write_text(rows + "200,1,2.0,-")
    assert eval_points(run_dir) == []  # a partial last row: wait for the writer
    (run_dir / "metrics.csv").write_text(rows + "200,1,2.0,-7\n")
    assert eval_points(run_dir) == [(100, -15.0), (200, -6.0)]


def test_summary_ranks_configurations_with_intervals(tmp_path: Path) -> None:
    from critix.sweep.report import write_summary

    spec = build(BASE.replace("seeds: [0, 1]", "seeds: [0, 1, 2]") + "grid: {actor_lr: [1e-4, 1e-3]}\n")
    manifest = sweep.plan(spec, tmp_path / "s")
    finals = {0: [-300.0, -250.0, -200.0], 1: [-900.0, -800.0, -1000.0]}
    for trial in manifest.trials:
        run_dir = manifest.run_dir(trial)
        lines = ["step,seed,wall_seconds,eval/return"]
        lines += [f"{step},{s},1.0,{finals[trial.config][s] * 2 if step == 500 else finals[trial.config][s]}"
                  for step in (500, 1000) for s in range(3)]
        (run_dir / "metrics.csv").write_text("\n".join(lines) + "\n")
        (run_dir / "summary.json").write_text(json.dumps({"final_return": finals[trial.config], "wall_seconds": 12.0}))
    manifest = sweep.plan(spec, tmp_path / "s")
    text = write_summary(manifest, reps=500, log=lambda _: None).read_text()
    assert "**Best configuration: `actor_lr=0.0001`**, mean final return -250.0 [-300.0, -200.0] over 3 seed(s)" in text
    assert "| 2 | `actor_lr=0.001` | 3 | **-900.0 [-1,000, -800.0]**" in text
    results = json.loads((tmp_path / "s" / "results.json").read_text())
    assert results["best"]["params"] == {"actor_lr": 1e-4}
    assert results["p_best_beats_runner_up"]["point"] == 1.0
    csv_rows = (tmp_path / "s" / "results.csv").read_text().splitlines()
    assert csv_rows[0] == "config,label,actor_lr,seed,final_return,trial,run_dir" and len(csv_rows) == 7
    assert all((tmp_path / "s" / "plots" / name).is_file() for name in
               ("learning_curves.png", "learning_curves.svg", "final_returns.png", "final_returns.svg"))
    assert np.isclose(results["configs"][1]["mean"]["point"], -900.0)
