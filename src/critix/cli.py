"""The `critix` command: train, eval, list.

    critix train sac --env Pendulum-v1 --steps 20000 --num-seeds 3
    critix train td3 --resume runs/td3-Pendulum-v1-20261121-120000
    critix eval RUN_DIR --episodes 10
    critix list [ALGO]

Errors in user input print one line naming the problem and the fix, and exit with code 2 (`--debug` shows the
traceback).
"""

from __future__ import annotations

import dataclasses
import json
import sys
import traceback
from pathlib import Path
from typing import Any, Generic, TypeVar

import tyro

from critix import agents
from critix.train.offline import OfflineRunConfig
from critix.train.online import RunConfig
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
    debug: bool = False
    """Show full tracebacks on errors."""


def cmd_train(argv: list[str]) -> int:
    from critix.train.online import load_run_config, train

    if not argv or argv[0].startswith("-"):
        print(USAGE % ", ".join(agents.REGISTRY))
        return 0 if argv and argv[0] in ("-h", "--help") else EXIT_USAGE
    algo, rest = argv[0], argv[1:]
    if _is_offline(rest):
        return cmd_train_offline(algo, rest)
    spec = agents.get(algo)
    default = Train(agent=spec.default_config, run=RunConfig())
    args = tyro.cli(Train[type(spec.default_config)], args=rest, default=default,  # type: ignore[misc]
                    prog=f"critix train {algo}", description=f"Train {algo}: {spec.summary}.")
    if args.resume:
        saved_algo, agent_cfg, run = load_run_config(Path(args.resume))
        if saved_algo != algo:
            raise CritixError(f"--resume {args.resume} is a {saved_algo} run; use `critix train {saved_algo} --resume ...`")
        if args.run.steps != RunConfig().steps:
            run = dataclasses.replace(run, steps=args.run.steps)
        summary = train(saved_algo, agent_cfg, dataclasses.replace(run, progress=args.run.progress),
                        resume=Path(args.resume))
    elif args.init_from:
        from critix.train.offline import finetune

        summary = finetune(Path(args.init_from), args.run)
    else:
        summary = train(algo, args.agent, args.run)
    _print_summary(summary)
    return 0


@dataclasses.dataclass(frozen=True)
class TrainOffline(Generic[ConfigT]):
    """Train an agent on a Minari-format dataset (the whole run compiled, seeds vmapped) and write a run folder."""

    agent: tyro.conf.OmitArgPrefixes[ConfigT]
    run: tyro.conf.OmitArgPrefixes[OfflineRunConfig]
    resume: str | None = None
    """Continue the stopped offline run in this folder from its last checkpoint."""
    debug: bool = False
    """Show full tracebacks on errors."""


def _is_offline(argv: list[str]) -> bool:
    """An offline run: --dataset given, or --resume of a folder whose config.json says mode "offline"."""
    from critix.train.offline import is_offline_run

    if any(a == "--dataset" or a.startswith("--dataset=") for a in argv):
        return True
    for i, a in enumerate(argv):
        value = a.split("=", 1)[1] if a.startswith("--resume=") else argv[i + 1] if a == "--resume" and i + 1 < len(argv) else None
        if value and is_offline_run(Path(value)):
            return True
    return False


def cmd_train_offline(algo: str, argv: list[str]) -> int:
    from critix.train.offline import load_run_config, train

    spec = agents.get(algo)
    default = TrainOffline(agent=spec.default_config, run=OfflineRunConfig())
    args = tyro.cli(TrainOffline[type(spec.default_config)], args=argv, default=default,  # type: ignore[misc]
                    prog=f"critix train {algo} --dataset PATH", description=f"Train {algo} offline: {spec.summary}.")
    if args.resume:
        saved_algo, agent_cfg, run = load_run_config(Path(args.resume))
        if saved_algo != algo:
            raise CritixError(f"--resume {args.resume} is a {saved_algo} run; use `critix train {saved_algo} --resume ...`")
        if args.run.steps != OfflineRunConfig().steps:
            run = dataclasses.replace(run, steps=args.run.steps)
        summary = train(saved_algo, agent_cfg, dataclasses.replace(run, progress=args.run.progress),
                        resume=Path(args.resume))
    else:
        summary = train(algo, args.agent, args.run)
    norm, data_norm = summary["final_normalized_score_mean"], summary["dataset_normalized_score_mean"]
    print(
        f"{algo} offline on {summary['dataset']} ({summary['env']}): final evaluation return "
        f"{summary['final_return_mean']:.1f} (per seed: {', '.join(f'{x:.1f}' for x in summary['final_return'])}), "
        f"normalised score {norm:.1f} (dataset mean {'-' if data_norm is None else f'{data_norm:.1f}'}); "
        f"{summary['steps']} gradient steps, {summary['gradient_steps_per_second'] or 0:.0f} steps/s per seed; "
        f"run folder {summary['run_dir']}"
    )
    return 0


def cmd_collect(argv: list[str]) -> int:
    from critix.data.collect import CollectConfig, collect

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
    from critix.train.online import Session, load_run_config

    args = tyro.cli(Eval, args=argv, prog="critix eval")
    run_dir = Path(args.run_dir)
    if _is_offline(["--resume", str(run_dir)]):
        return _eval_offline(run_dir, args.episodes, args.seed)
    algo, agent_cfg, run = load_run_config(run_dir)
    ckpt = checkpoint.latest(run_dir / "checkpoints")
    if ckpt is None:
        raise CritixError(f"{run_dir} has no complete checkpoint in {run_dir / 'checkpoints'}")
    session = Session(algo, agent_cfg, dataclasses.replace(run, eval_episodes=args.episodes))
    try:
        runner = session.restore_runner(ckpt)
        returns = session.evaluate(runner, seed=args.seed)
    finally:
        session.close()
    per_seed = returns.mean(axis=1)
    result = {
        "run_dir": str(run_dir),
        "checkpoint": ckpt.name,
        "episodes_per_seed": args.episodes,
        "return_per_seed": [float(x) for x in per_seed],
        "return_mean": float(per_seed.mean()),
        "return_std_over_episodes": [float(x) for x in returns.std(axis=1)],
    }
    print(json.dumps(result, indent=2))
    print(f"{algo} on {run.env}: mean return {per_seed.mean():.1f} over {len(per_seed)} seed(s) "
          f"(per seed: {', '.join(f'{x:.1f}' for x in per_seed)}; min {np.min(returns):.1f}, max {np.max(returns):.1f})")
    return 0


def _eval_offline(run_dir: Path, episodes: int, seed: int) -> int:
    """`critix eval` of an offline run: its last checkpoint in the dataset's env, normalised with its references."""
    from critix.train import checkpoint
    from critix.train.offline import OfflineSession, load_run_config

    algo, agent_cfg, run = load_run_config(run_dir)
    ckpt = checkpoint.latest(run_dir / "checkpoints")
    if ckpt is None:
        raise CritixError(f"{run_dir} has no complete checkpoint in {run_dir / 'checkpoints'}")
    session = OfflineSession(algo, agent_cfg, dataclasses.replace(run, eval_episodes=episodes))
    try:
        states, keys = session.init_state()
        arrays, _ = checkpoint.load(ckpt, {"agent": states, "key": keys})
        returns = session.evaluate(arrays["agent"], seed=seed)
    finally:
        session.close()
    per_seed = returns.mean(axis=1)
    result = {"run_dir": str(run_dir), "checkpoint": ckpt.name, "episodes_per_seed": episodes,
              "return_per_seed": [float(x) for x in per_seed], "return_mean": float(per_seed.mean()),
              "normalized_score_per_seed": [float(x) for x in session.normalized(per_seed)]}
    print(json.dumps(result, indent=2))
    return 0


def cmd_list(argv: list[str]) -> int:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    names = [a for a in argv if not a.startswith("-")] or list(agents.REGISTRY)
    for name in names:
        spec = agents.get(name)
        table = Table(title=f"{name}: {spec.summary}", title_justify="left")
        table.add_column("flag")
        table.add_column("default")
        table.add_column("meaning (source of the default)")
        docs = _field_docs(type(spec.default_config))
        for field in dataclasses.fields(spec.default_config):
            value = getattr(spec.default_config, field.name)
            table.add_row(f"--{field.name.replace('_', '-')}", repr(value), docs.get(field.name, ""))
        console.print(table)
    console.print("Run flags (all algorithms): see `critix train sac --help`.")
    return 0


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
    print(
        f"{summary['algo']} on {summary['env']}: final evaluation return {summary['final_return_mean']:.1f} "
        f"(per seed: {', '.join(f'{x:.1f}' for x in summary['final_return'])}) after {summary['steps']} steps; "
        f"{'-' if sps is None else f'{sps:.0f}'} steps/s per seed; run folder {summary['run_dir']}"
    )


USAGE = """usage: critix {train,eval,list} ...

  critix train ALGO --env ENV [--steps N] [--num-seeds S] ...   train (ALGO: %s)
  critix train ALGO --resume RUN_DIR                          continue a stopped run
  critix eval RUN_DIR [--episodes N]                          evaluate a run's last checkpoint
  critix list [ALGO]                                          algorithms and their hyperparameters
  critix collect --env ENV --kind KIND --out PATH [--steps N]   make a D4RL-style offline dataset
  critix train ALGO --dataset PATH [--steps N] [--num-seeds S]  train offline (bc td3bc cql iql xql fdvl)
  critix train ALGO --init-from OFFLINE_RUN_DIR [--steps N]     continue an offline agent online

`critix train ALGO --help` documents every flag with its default and the default's source.
"""


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    commands = {"train": cmd_train, "eval": cmd_eval, "list": cmd_list, "collect": cmd_collect}
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in commands:
        print(USAGE % ", ".join(agents.REGISTRY), file=sys.stderr if argv and argv[0] not in ("-h", "--help") else sys.stdout)
        return 0 if argv and argv[0] in ("-h", "--help") else EXIT_USAGE
    debug = "--debug" in argv
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


if __name__ == "__main__":
    sys.exit(main())
