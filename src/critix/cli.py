"""The `critix` command: train, eval, list, runs, plot, bench, sweep, export.

    critix train sac --env Pendulum-v1 --steps 20000 --num-seeds 3
    critix train td3 --resume runs/td3-Pendulum-v1-20261121-120000
    critix eval RUN_DIR --episodes 10 --video
    critix list [ALGO]
    critix runs [DIR]
    critix plot RUN_DIR... --out curves.png
    critix bench classic --algos sac,td3 --seeds 5
    critix sweep examples/sweeps/sac_pendulum_lr.yaml --out sweeps/sac-lr
    critix export RUN_DIR --out policy.onnx [--step N] [--seed-index K]

Errors in user input print one line naming the problem and the fix, and exit with code 2 (`--debug` shows the
traceback).
"""

from __future__ import annotations

import dataclasses
import json
import sys
import traceback
import warnings
from pathlib import Path
from typing import Annotated, Any, Generic, Literal, TypeVar

import tyro

from critix import agents
from critix.agents import common
from critix.references import expand
from critix.sweep.spec import ExecutionConfig
from critix.train.config import OfflineRunConfig, RunConfig, is_offline_run, load_run_config, resolve
from critix.types import CritixError

ConfigT = TypeVar("ConfigT")
EXIT_USAGE = 2


@dataclasses.dataclass(frozen=True)
class Train(Generic[ConfigT]):
    """Train an agent on a Gymnasium environment and write a run folder."""

    agent: tyro.conf.OmitArgPrefixes[ConfigT]
    run: tyro.conf.OmitArgPrefixes[RunConfig]
    resume: str | None = None
    """Continue the stopped run in this folder from its last checkpoint (its config.json is used; a different
    --steps extends or shortens the run)."""
    init_from: str | None = None
    """Offline-to-online: continue the agents of this offline run folder online in their env, the replay buffer
    seeded with its dataset (iql, xql, fdvl, cql, td3bc)."""
    debug: bool = False
    """Show full tracebacks on errors."""


@dataclasses.dataclass(frozen=True)
class Eval:
    """Evaluate the last checkpoint of a run folder with the deterministic policy."""

    run_dir: tyro.conf.Positional[str]
    """The run folder (written by `critix train`)."""
    episodes: int = 10
    """Evaluation episodes per seed."""
    seed: int = 12345
    """Seed of the evaluation envs."""
    video: bool = False
    """Also record videos of seed 0's agent into RUN_DIR/videos/eval_step_<checkpoint step>.mp4 (listed in
    summary.json; docs/watching_and_tracking.md)."""
    video_episodes: int = 1
    """Episodes to record with --video, one file each (the first ones the evaluation played)."""
    debug: bool = False
    """Show full tracebacks on errors."""


@dataclasses.dataclass(frozen=True)
class Plot:
    """Plot run folders: learning curves, aggregate-metric intervals or performance profiles (PNG and SVG)."""

    run_dirs: Annotated[tuple[str, ...], tyro.conf.Positional, tyro.conf.arg(metavar="RUN_DIR...")]
    """Run folders (written by `critix train`), or folders holding them (e.g. a `critix bench` output)."""
    out: str
    """Output file, .png or .svg (the other format is written beside it)."""
    kind: Literal["curves", "aggregate", "profile"] = "curves"
    """curves: learning curves per env; aggregate: IQM/mean/median/optimality gap with 95% intervals over the
    envs every algorithm has (scores normalised per env); profile: performance profiles of the same scores."""
    estimator: Literal["iqm", "mean"] = "iqm"
    """Learning curves: interquartile mean or mean over seeds at each evaluation step."""
    metric: str = "eval/return"
    """Learning curves: the metrics.csv column to plot."""
    reps: int | None = None
    """Bootstrap replicates (default 50,000 for aggregate, 2,000 for curves and profiles)."""
    seed: int = 0
    """Bootstrap seed."""
    debug: bool = False
    """Show full tracebacks on errors."""


def cmd_plot(argv: list[str]) -> int:
    from critix.stats.plots import plot_runs

    args = tyro.cli(Plot, args=argv, prog="critix plot")
    paths = plot_runs(args.run_dirs, Path(args.out), args.kind, args.estimator, args.metric, args.reps, args.seed)
    print(f"wrote {', '.join(str(p) for p in paths)}")
    return 0


@dataclasses.dataclass(frozen=True)
class Bench:
    """Run a benchmark suite (every algorithm x task x seed it lacks), resumably, and write its report."""

    suite: Annotated[str, tyro.conf.Positional, tyro.conf.arg(metavar="SUITE")]
    """Suite name: classic, mujoco (100k steps) or mujoco-300k (see critix/bench/suites.py)."""
    algos: str
    """Comma-separated algorithm names from `critix list`, e.g. sac,td3."""
    seeds: int | None = None
    """Seeds per (algorithm, task); default: the suite's (classic 5, mujoco 3)."""
    out: str | None = None
    """Output folder (run folders, report.md, plots); default benchmarks/results/<suite>."""
    tasks: str = ""
    """Comma-separated subset of the suite's envs (default: all)."""
    steps: int | None = None
    """Override the suite's budgets (smoke tests; the report marks it)."""
    seeds_per_run: int = 0
    """Seeds trained together in one process and run folder; 0 = all seeds of an (algorithm, task) at once."""
    train_args: str = ""
    """Extra `critix train` flags for every run, written with '=': --train-args="--utd-ratio 2"."""
    reps: int = 50_000
    """Bootstrap replicates for the report's intervals."""
    report_only: bool = False
    """Only (re)write the report from the finished runs."""
    debug: bool = False
    """Show full tracebacks on errors."""


def cmd_bench(argv: list[str]) -> int:
    from critix.bench.report import write_report
    from critix.bench.runner import BenchConfig, print_now, run

    args = tyro.cli(Bench, args=argv, prog="critix bench")
    cfg = BenchConfig(
        suite=args.suite, algos=tuple(a.strip() for a in args.algos.split(",") if a.strip()), seeds=args.seeds,
        out=args.out, tasks=tuple(t.strip() for t in args.tasks.split(",") if t.strip()), steps=args.steps,
        seeds_per_run=args.seeds_per_run, train_args=(args.train_args,) if args.train_args else (), reps=args.reps,
        report_only=args.report_only,
    )
    try:
        the_plan, failures = run(cfg, trainer=_train_in_process)
    except KeyboardInterrupt:
        print("critix: interrupted; rerun the same `critix bench` command to resume (finished runs are kept)",
              file=sys.stderr)
        return 130
    write_report(cfg, the_plan, failures, print_now)
    return 0


def _train_in_process(argv: list[str]) -> None:
    """A bench unit, trained through the `critix train` command itself in this process (what a user would type)."""
    try:
        code = cmd_train(argv)
    except SystemExit as exit_:  # tyro rejected a flag this algorithm's trainer does not have
        code = exit_.code if isinstance(exit_.code, int) else EXIT_USAGE
    if code != 0:
        raise CritixError(f"`critix train {' '.join(argv)}` exited with code {code}")


@dataclasses.dataclass(frozen=True)
class Sweep:
    """Run a hyperparameter sweep or many-seed study as `critix train` runs on Ray, resumably, and summarise it."""

    out: str
    """Sweep folder: sweep.json (the trials and their status), trials/<id>/ run folders, summary.md, plots/."""
    sweep_file: Annotated[str | None, tyro.conf.Positional, tyro.conf.arg(metavar="SWEEP.yaml")] = None
    """Sweep file (YAML keys algo, env, steps, seeds, grid, fixed, search, seeds_per_trial, scheduler; see
    docs/scaling.md); the flags below give or override its keys."""
    algo: str | None = None
    """Algorithm from `critix list`."""
    env: str | None = None
    """Environment id."""
    steps: int | None = None
    """Environment steps per seed."""
    seeds: str | None = None
    """Comma-separated seeds, e.g. 0,1,2."""
    grid: tuple[str, ...] = ()
    """FIELD=V1,V2,... per swept field, e.g. --grid actor_lr=1e-4,3e-4 batch_size=128,256 (FIELD may be several
    fields joined by commas, which then take the same value: actor_lr,critic_lr=1e-4,3e-4)."""
    fixed: tuple[str, ...] = ()
    """FIELD=VALUE set in every configuration, e.g. --fixed learning_starts=1000 eval_every=1000."""
    seeds_per_trial: int | None = None
    """Seeds trained together (vmapped) in one trial; 0 (the default) = all seeds of a configuration at once."""
    scheduler: Literal["fifo", "asha"] | None = None
    """fifo: every trial runs to the end (default); asha: Ray Tune's ASHA stops the worse configurations early."""
    execution: tyro.conf.OmitArgPrefixes[ExecutionConfig] = ExecutionConfig()
    """Where and how the trials run (may change between runs of the same sweep)."""
    reps: int = 10_000
    """Bootstrap replicates for the summary's intervals."""
    report_only: bool = False
    """Only (re)write the summary from the sweep folder, training nothing."""
    debug: bool = False
    """Show full tracebacks on errors."""


def cmd_sweep(argv: list[str]) -> int:
    import shlex

    from critix.sweep import spec as sweep_spec
    from critix.sweep.report import write_summary

    args = tyro.cli(Sweep, args=argv, prog="critix sweep")
    out = Path(args.out)
    if args.reps < 1:
        raise CritixError(f"--reps must be >= 1, got {args.reps}")
    if args.report_only:
        manifest = sweep_spec.Manifest.load(out)
    else:
        data = sweep_spec.read_sweep_file(Path(args.sweep_file)) if args.sweep_file else {}
        data = sweep_spec.merge_flags(data, args.algo, args.env, args.steps, args.seeds, args.grid, args.fixed,
                                      args.seeds_per_trial, args.scheduler)
        spec = sweep_spec.build_spec(data, Path(args.sweep_file).name if args.sweep_file else "the sweep flags")
        try:
            from critix.sweep.execute import run_sweep
        except ImportError as err:
            raise CritixError(f"critix sweep runs its trials on Ray: pip install 'critix[ray]' ({err})") from None
        try:
            manifest = run_sweep(spec, out, args.execution, "critix sweep " + shlex.join(argv))
        except KeyboardInterrupt:
            print("critix: interrupted; rerun the same `critix sweep` command to resume (finished trials are kept)",
                  file=sys.stderr)
            return 130
    write_summary(manifest, args.reps)
    unfinished = [t.id for t in manifest.trials if t.status not in ("finished", "stopped")]
    if unfinished:
        print(f"{len(unfinished)} trial(s) not finished ({', '.join(unfinished)}); rerun the same command to resume "
              "them", file=sys.stderr)
        return 1
    return 0


def cmd_train(argv: list[str]) -> int:
    from critix.train.modes import train  # offline, compiled, on-policy or off-policy host, by run, env and algo

    if not argv or argv[0].startswith("-"):
        print(USAGE % ", ".join(agents.REGISTRY))
        return 0 if argv and argv[0] in ("-h", "--help") else EXIT_USAGE
    algo, rest = argv[0], argv[1:]
    spec = agents.get(algo)
    offline = _is_offline(rest)
    if offline:
        default: Any = TrainOffline(agent=spec.default_config, run=OfflineRunConfig())
        args = tyro.cli(TrainOffline[type(spec.default_config)], args=rest, default=default,  # type: ignore[misc]
                        prog=f"critix train {algo} --dataset PATH",
                        description=f"Train {algo} offline: {expand(spec.summary)}.")
    else:
        agent_default, run_default = _tuned_defaults(algo, rest, spec.default_config)
        default = Train(agent=agent_default, run=run_default)
        args = tyro.cli(Train[type(spec.default_config)], args=rest, default=default,  # type: ignore[misc]
                        prog=f"critix train {algo}", description=f"Train {algo}: {expand(spec.summary)}.")
    if args.resume:
        _refuse_grid_point(Path(args.resume))
        saved_algo, agent_cfg, run = load_run_config(Path(args.resume))
        if saved_algo != algo:
            raise CritixError(f"--resume {args.resume} is a {saved_algo} run; use `critix train {saved_algo} --resume ...`")
        untouched = type(run)()
        if args.run.steps != untouched.steps:  # a different --steps extends or shortens the run
            run = dataclasses.replace(run, steps=args.run.steps)
        if args.run.on_nan != untouched.on_nan:  # e.g. continue a run stopped by NaN with --on-nan skip
            run = dataclasses.replace(run, on_nan=args.run.on_nan)
        run = _watching_flags(run, args.run, untouched)
        summary = train(saved_algo, agent_cfg, dataclasses.replace(run, progress=args.run.progress),
                        resume=Path(args.resume))
    elif not offline and args.init_from:
        from critix.train.finetune import finetune

        summary = finetune(Path(args.init_from), args.run)
    else:
        summary = train(algo, args.agent, args.run)
    _print_summary(summary)
    return 0


def _watching_flags(run: Any, given: Any, untouched: Any) -> Any:
    """--video-every, --video-episodes, --track and the W&B names given to a resume replace the saved ones."""
    names = ("video_every", "video_episodes", "track", "wandb_project", "wandb_entity")
    changed = {name: getattr(given, name) for name in names if getattr(given, name) != getattr(untouched, name)}
    return dataclasses.replace(run, **changed) if changed else run


@dataclasses.dataclass(frozen=True)
class TrainOffline(Generic[ConfigT]):
    """Train an agent on a Minari-format dataset (the whole run compiled, seeds vmapped) and write a run folder."""

    agent: tyro.conf.OmitArgPrefixes[ConfigT]
    run: tyro.conf.OmitArgPrefixes[OfflineRunConfig]
    resume: str | None = None
    """Continue the stopped offline run in this folder from its last checkpoint."""
    debug: bool = False
    """Show full tracebacks on errors."""


def _refuse_grid_point(run_dir: Path) -> None:
    """A grid point's folder of a compiled grid run has no checkpoints of its own: point to the run folder."""
    try:
        is_point = "grid_point" in json.loads((run_dir / "config.json").read_text())
    except (OSError, ValueError):
        return  # not a readable config: the loaders give their own error
    if is_point:
        raise CritixError(f"{run_dir} is one grid point of the compiled grid run in {run_dir.parent.parent}, whose "
                          f"checkpoints hold every point; give that folder")


def _is_offline(argv: list[str]) -> bool:
    """An offline run: --dataset given, or --resume of a folder whose config.json says mode "offline"."""
    if any(a == "--dataset" or a.startswith("--dataset=") for a in argv):
        return True
    for i, a in enumerate(argv):
        value = a.split("=", 1)[1] if a.startswith("--resume=") else argv[i + 1] if a == "--resume" and i + 1 < len(argv) else None
        if value and is_offline_run(Path(value)):
            return True
    return False


def cmd_collect(argv: list[str]) -> int:
    from critix.train.collect import CollectConfig, collect

    cfg = tyro.cli(CollectConfig, args=[a for a in argv if a != "--debug"], prog="critix collect",
                   description="Make a D4RL-style Minari-format dataset from critix agents.")
    if not cfg.out:
        raise CritixError("critix collect needs --out PATH (the dataset folder to write)")
    result = collect(cfg)[cfg.kind]
    print(json.dumps(result, indent=2))
    print(f"{cfg.kind} dataset for {cfg.env}: {result['episodes']} episodes, {result['transitions']} transitions, "
          f"mean normalised score {result['normalized_score_mean']:.1f} (random {result['ref_min_score']:.1f}, "
          f"expert {result['ref_max_score']:.1f}) -> {result['path']}")
    return 0


def cmd_eval(argv: list[str]) -> int:
    import numpy as np

    from critix.train import checkpoint
    from critix.train.modes import make_stepper

    args = tyro.cli(Eval, args=argv, prog="critix eval")
    run_dir = Path(args.run_dir)
    _refuse_grid_point(run_dir)
    algo, agent_cfg, run = load_run_config(run_dir)
    found = checkpoint.latest_valid(run_dir / "checkpoints", quarantine=False)  # skips corrupt ones, warning
    if found is None:
        raise CritixError(f"{run_dir} has no complete checkpoint in {run_dir / 'checkpoints'}")
    if args.video:  # MuJoCo picks its OpenGL backend when the envs import it
        from critix.train.video import prepare_backend

        prepare_backend(getattr(run, "env", None))
    stepper = make_stepper(algo, agent_cfg, dataclasses.replace(run, eval_episodes=args.episodes))
    videos: list[str] = []
    try:
        stepper.start(found)
        returns = stepper.evaluate(args.seed)
        labels = getattr(stepper, "member_labels", lambda: None)()  # a compiled grid run: G points x S seeds
        normalized = stepper.normalized(returns.mean(axis=1)) if hasattr(stepper, "normalized") else None
        if args.video:
            from critix.train.video import record_checkpoint

            videos = record_checkpoint(stepper, run_dir, found[0].name, args.seed, args.episodes, args.video_episodes)
    finally:
        stepper.close()
    per_seed = returns.mean(axis=1)
    result = {
        "run_dir": str(run_dir),
        "checkpoint": found[0].name,
        "episodes_per_seed": args.episodes,
        "return_per_seed": [float(x) for x in per_seed],
        "return_mean": float(per_seed.mean()),
        "return_std_over_episodes": [float(x) for x in returns.std(axis=1)],
    }
    if normalized is not None:  # offline runs: D4RL-normalised with the dataset's references
        result["normalized_score_per_seed"] = [float(x) for x in normalized]
    if labels:
        result["member_labels"] = labels
    if args.video:
        result["videos"] = videos
    print(json.dumps(result, indent=2))
    print(f"{algo} on {stepper.env_id}: mean return {per_seed.mean():.1f} over {len(per_seed)} seed(s) "
          f"(per seed: {', '.join(f'{x:.1f}' for x in per_seed)}; min {np.min(returns):.1f}, max {np.max(returns):.1f})")
    return 0


@dataclasses.dataclass(frozen=True)
class Export:
    """Export a run's trained policy to ONNX: the deterministic action with the run's observation normalisation and
    action rescaling inside, checked against ONNX Runtime before the file is written (pip install 'critix[export]')."""

    run_dir: tyro.conf.Positional[str]
    """The run folder (written by `critix train`; a compiled grid run: one grid point's folder)."""
    out: str
    """The ONNX file to write, e.g. policy.onnx."""
    step: int | None = None
    """The checkpoint's step; default: the newest valid checkpoint."""
    seed_index: int = 0
    """Which of the run's seeds to export (0 .. num_seeds - 1)."""
    debug: bool = False
    """Show full tracebacks on errors."""


@dataclasses.dataclass(frozen=True)
class Runs:
    """List the run folders in a folder: algorithm, env, steps done/planned, final return, status, wall time."""

    dir: Annotated[str, tyro.conf.Positional, tyro.conf.arg(metavar="DIR")] = "runs"
    """The folder holding the run folders (searched up to three levels down)."""
    json: bool = False
    """Print the list as JSON instead of a table."""
    debug: bool = False
    """Show full tracebacks on errors."""


def cmd_export(argv: list[str]) -> int:
    from critix.export import export_onnx
    from critix.policy import load, space_text

    args = tyro.cli(Export, args=argv, prog="critix export")
    policy = load(args.run_dir, step=args.step, seed_index=args.seed_index)
    result = export_onnx(policy, args.out)
    print(json.dumps({**result.to_json(), "algo": policy.algo, "env": policy.env_id, "step": policy.step,
                      "seed_index": policy.seed_index, "num_seeds": policy.num_seeds}, indent=2))
    seeds = (f"seed {policy.seed_index} of {policy.num_seeds}, --seed-index picks another" if policy.num_seeds > 1
             else "its only seed")
    print(f"exported the {policy.algo} policy of {policy.run_dir} (step {policy.step}; {seeds}) to {result.path}: "
          f"input obs {list(result.input_shape)} raw observations, output action {list(result.output_shape)} "
          f"{result.output_dtype} for {space_text(policy.action_space)}; ONNX Runtime matches critix within "
          f"{result.max_abs_diff:.2g} on {result.observations_checked} observations")
    return 0


def cmd_runs(argv: list[str]) -> int:
    from rich.console import Console
    from rich.table import Table

    from critix.train.inventory import format_seconds, scan

    args = tyro.cli(Runs, args=argv, prog="critix runs")
    infos = scan(Path(args.dir))
    if args.json:
        print(json.dumps([dataclasses.asdict(info) for info in infos], indent=2))
        return 0
    console = Console(width=None if sys.stdout.isatty() else 200)  # piped: whole lines, for grep
    if not infos:
        console.print(f"no run folders in {args.dir}")
        return 0
    colors = {"finished": "green", "training now": "cyan", "stopped": "yellow", "broken": "red"}
    table = Table(title=f"runs in {args.dir} (oldest first)", title_justify="left")
    table.add_column("run", overflow="fold")
    table.add_column("algo")
    table.add_column("env", overflow="fold")
    for column in ("steps", "return"):
        table.add_column(column, justify="right", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("wall", justify="right", no_wrap=True)
    table.add_column("started", no_wrap=True)
    notes = any(info.note for info in infos)
    if notes:
        table.add_column("note", overflow="fold")
    for info in infos:
        done = "-" if info.steps_done is None else f"{info.steps_done:,}"
        planned = "-" if info.steps_planned is None else f"{info.steps_planned:,}"
        value = "-" if info.final_return is None else f"{info.final_return:.1f}"
        if info.return_source == "last eval":
            value += " (last eval)"
        started = "-" if info.started is None else info.started[5:16].replace("T", " ")  # MM-DD HH:MM
        row = [info.path, info.algo or "-", info.env or "-", f"{done}/{planned}", value,
               f"[{colors[info.status]}]{info.status}[/]", format_seconds(info.wall_seconds), started]
        table.add_row(*row, *([info.note or ""] if notes else []))
    console.print(table)
    return 0


def cmd_list(argv: list[str]) -> int:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    names = [a for a in argv if not a.startswith("-")] or list(agents.REGISTRY)
    for name in names:
        spec = agents.get(name)
        table = Table(title=f"{name}: {expand(spec.summary)}", title_justify="left")
        table.add_column("flag")
        table.add_column("default")
        table.add_column("meaning (source of the default)")
        vmappable = {f"--{name.replace('_', '-')}" for name in getattr(type(spec.default_config), "VMAPPABLE", ())}
        for flag, value, doc in _flags(spec.default_config):  # (grid): may vary inside one compiled run, --grid
            table.add_row(flag + (" (grid)" if flag in vmappable else ""), repr(value), expand(doc))
        for setting, (value, meaning) in spec.run_defaults.items():  # run flags whose default is this algorithm's
            table.add_row(f"--{setting.replace('_', '-')} (run)", repr(value), expand(meaning))
        console.print(table)
        _print_tuned(console, name)
    console.print("Run flags (all algorithms): see `critix train sac --help`.")
    return 0


def _env_from_argv(argv: list[str]) -> str:
    """The --env value on a command line (tuned defaults depend on it), or RunConfig's default env."""
    for i, arg in enumerate(argv):
        if arg == "--env" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--env="):
            return arg.split("=", 1)[1]
    return RunConfig().env


def _tuned_defaults(algo: str, argv: list[str], agent_cfg: Any) -> tuple[Any, RunConfig]:
    """Agent and run defaults for `critix train ALGO`: the tuned settings of ALGO on --env, if any (flags win)."""
    from critix.agents import tuned

    env_id = _env_from_argv(argv)
    return tuned.apply(algo, env_id, agent_cfg, resolve(algo, RunConfig(env=env_id)))


def _flag(name: str, value: Any) -> str:
    """The command-line spelling of setting `name` to `value` (booleans as --x / --no-x, tuples space-separated)."""
    flag = name.replace("_", "-")
    if isinstance(value, bool):
        return f"--{flag}" if value else f"--no-{flag}"
    return f"--{flag} {' '.join(map(str, value)) if isinstance(value, tuple) else value}"


def _print_tuned(console: Any, algo: str) -> None:
    from rich.table import Table

    from critix.agents import tuned

    envs = sorted(set(tuned.TUNED.get(algo, {})) | set(tuned.ENV_VALUE_RANGES))
    entries = {env: tuned.tuned(algo, env) for env in envs}
    fields = common.field_names(agents.get(algo).default_config)
    table = Table(title=f"{algo}: tuned defaults per env (used unless a flag overrides them)", title_justify="left")
    table.add_column("env")
    table.add_column("settings")
    table.add_column("source")
    for env, entry in entries.items():
        if entry is None:
            continue
        items = {k: v for k, v in entry.agent.items() if k in fields}
        if not items and not entry.run:
            continue
        settings = " ".join(_flag(k, v) for k, v in {**items, **entry.run}.items())
        table.add_row(env, settings, expand(entry.source))
    if table.row_count:
        console.print(table)


def _flags(cfg: Any) -> list[tuple[str, Any, str]]:
    """(flag, default, doc) of every field of a config, the fields of a nested config (`value_head`) in its place
    with their own flags, as tyro parses them."""
    docs, rows = _field_docs(type(cfg)), []
    for field in dataclasses.fields(cfg):
        value = getattr(cfg, field.name)
        if dataclasses.is_dataclass(value):
            rows += _flags(value)
        else:
            rows.append((f"--{field.name.replace('_', '-')}", value, docs.get(field.name, "")))
    return rows


def _field_docs(cls: type) -> dict[str, str]:
    """Attribute docstrings of a dataclass (the string literal right after each field)."""
    import ast
    import inspect
    import textwrap

    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    body = tree.body[0].body  # type: ignore[attr-defined]
    docs = {}
    for base in cls.__bases__:  # inherited fields (e.g. cql.Config extends sac.Config) keep their docs
        if dataclasses.is_dataclass(base):
            docs.update(_field_docs(base))
    for stmt, nxt in zip(body, body[1:]):
        if isinstance(stmt, ast.AnnAssign) and isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant):
            docs[stmt.target.id] = " ".join(str(nxt.value.value).split())  # type: ignore[union-attr]
    return docs


def _print_summary(summary: dict[str, Any]) -> None:
    sps = summary.get("steps_per_second")
    if summary["mode"] == "offline":
        norm, data_norm = summary["final_normalized_score_mean"], summary["dataset_normalized_score_mean"]
        print(f"{summary['algo']} offline on {summary['dataset']} ({summary['env']}): final evaluation return "
              f"{summary['final_return_mean']:.1f} (per seed: {', '.join(f'{x:.1f}' for x in summary['final_return'])}), "
              f"normalised score {norm:.1f} (dataset mean {'-' if data_norm is None else f'{data_norm:.1f}'}); "
              f"{summary['steps']} gradient steps, {sps or 0:.0f} steps/s per seed; run folder {summary['run_dir']}")
        return
    if "grid" in summary:  # a compiled grid run: one line per grid point
        from critix.train.grid import point_label

        for g, point in enumerate(summary["grid"]):
            values = point_label(point["point"])
            best = "  <- best" if g == summary["grid_best"] else ""
            print(f"  {values}: final evaluation return {point['final_return_mean']:.1f} "
                  f"(per seed: {', '.join(f'{x:.1f}' for x in point['final_return'])}){best}")
    print(
        f"{summary['algo']} on {summary['env']}: final evaluation return {summary['final_return_mean']:.1f} "
        f"(per seed: {', '.join(f'{x:.1f}' for x in summary['final_return'])}) after {summary['steps']} steps; "
        f"{'-' if sps is None else f'{sps:.0f}'} steps/s per seed; run folder {summary['run_dir']}"
    )


USAGE = """usage: critix {train,eval,list,plot,bench,sweep} ...

  critix train ALGO --env ENV [--steps N] [--num-seeds S] ...   train (ALGO: %s)
  critix train ALGO --resume RUN_DIR                          continue a stopped run
  critix eval RUN_DIR [--episodes N] [--video]                evaluate a run's last checkpoint (and film it)
  critix list [ALGO]                                          algorithms and their hyperparameters
  critix runs [DIR] [--json]                                  the run folders in DIR (default runs): status, return
  critix plot RUN_DIR... --out FILE [--kind curves|aggregate|profile]   learning curves, aggregate intervals
  critix bench SUITE --algos A,B [--seeds N] [--out DIR]      run a benchmark suite (resumable) and its report
  critix sweep SWEEP.yaml --out DIR [--address RAY]           a sweep on Ray (resumable) and its summary
  critix export RUN_DIR --out policy.onnx [--step N]          the trained policy as ONNX (pip install 'critix[export]')
  critix collect --env ENV --kind KIND --out PATH [--steps N]   make a D4RL-style offline dataset
  critix train ALGO --dataset PATH [--steps N] [--num-seeds S]  train offline (bc td3bc cql iql xql fdvl)
  critix train ALGO --init-from OFFLINE_RUN_DIR [--steps N]     continue an offline agent online

`critix train ALGO --help` documents every flag with its default and the default's source.
"""


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    commands = {"train": cmd_train, "eval": cmd_eval, "list": cmd_list, "collect": cmd_collect}
    commands["plot"] = cmd_plot
    commands["bench"] = cmd_bench
    commands["sweep"] = cmd_sweep
    commands["export"] = cmd_export
    commands["runs"] = cmd_runs
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in commands:
        print(USAGE % ", ".join(agents.REGISTRY), file=sys.stderr if argv and argv[0] not in ("-h", "--help") else sys.stdout)
        return 0 if argv and argv[0] in ("-h", "--help") else EXIT_USAGE
    debug = "--debug" in argv
    format_warning = warnings.formatwarning
    if not debug:  # warnings (e.g. a corrupt checkpoint skipped on resume) as one line each
        warnings.formatwarning = lambda message, *_args, **_kwargs: f"critix: warning: {message}\n"
    try:
        return commands[argv[0]](argv[1:])
    except (CritixError, ValueError) as err:  # ValueError: config validation
        if debug:
            traceback.print_exc()
        print(f"critix: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except SystemExit as exit_:  # tyro reports parse and config errors itself (exit code 2)
        return exit_.code if isinstance(exit_.code, int) else EXIT_USAGE
    except KeyboardInterrupt:
        print("critix: interrupted; resume with `critix train ALGO --resume RUN_DIR`", file=sys.stderr)
        return 130
    finally:
        warnings.formatwarning = format_warning


if __name__ == "__main__":
    sys.exit(main())
