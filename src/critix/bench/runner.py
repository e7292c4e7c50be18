"""`critix bench`: run a named suite for several algorithms and seeds, resumably; the command then writes its report.

Layout of the output folder (default benchmarks/results/<suite>/):

    runs/<algo>/<env>_<steps>/seeds_<a>-<b>/   one `critix train` run folder for seeds a..b (trained together)
    report.md, scores.csv, aggregate.json, plots/   written by critix.bench.report after the runs

Every unit of work is one run folder, trained exactly as `critix train ALGO --env ENV --steps N --num-seeds K
--seed a ...` would train it (so any agent in the REGISTRY joins, whatever its training loop). A unit is
finished once its summary.json exists; rerunning the same command skips finished units, resumes unfinished ones
from their last checkpoint (`critix train --resume`), and starts the missing ones. Seed s of the suite is seed
(s - a) of the run folder whose range a..b holds it; that run uses base seed a, so seed groups never share keys
or env seeds.
"""

from __future__ import annotations

import dataclasses
import re
import shlex
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from critix import agents
from critix.bench import suites
from critix.train import checkpoint, runlock
from critix.train.logging import last_logged_step
from critix.types import CritixError

SEED_DIR = re.compile(r"^seeds_(\d+)-(\d+)$")


@dataclasses.dataclass(frozen=True)
class BenchConfig:
    """What `critix bench` runs."""

    suite: str
    algos: tuple[str, ...]
    seeds: int | None = None
    """Seeds per (algorithm, task); default: the suite's."""
    out: str | None = None
    """Output folder; default benchmarks/results/<suite>."""
    tasks: tuple[str, ...] = ()
    """Only these envs of the suite (default: all)."""
    steps: int | None = None
    """Override the suite's budgets (for smoke tests; the report says so)."""
    seeds_per_run: int = 0
    """Seeds trained together in one run folder (vmapped); 0 means all seeds of a (algorithm, task) at once."""
    train_args: tuple[str, ...] = ()
    """Extra `critix train` flags for every run (e.g. hyperparameters), appended last."""
    reps: int = 50_000
    """Bootstrap replicates for the report's intervals."""
    report_only: bool = False
    """Write the report from the finished runs without training anything."""

    def __post_init__(self) -> None:
        if not self.algos:
            raise ValueError("algos must name at least one algorithm, e.g. --algos sac,td3")
        for name, value in (("seeds", self.seeds), ("steps", self.steps)):
            if value is not None and value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        if self.seeds_per_run < 0:
            raise ValueError(f"seeds_per_run must be >= 0 (0 = all seeds in one run), got {self.seeds_per_run}")
        if self.reps < 1:
            raise ValueError(f"reps must be >= 1, got {self.reps}")

    def out_dir(self) -> Path:
        return Path(self.out) if self.out else Path("benchmarks/results") / self.suite


@dataclasses.dataclass(frozen=True)
class Unit:
    """One run folder of the suite: algorithm x task x a range of seeds."""

    algo: str
    env: str
    steps: int
    first_seed: int
    num_seeds: int
    path: Path

    @property
    def finished(self) -> bool:
        return (self.path / "summary.json").is_file()

    @property
    def started(self) -> bool:
        return (self.path / "config.json").is_file()

    @property
    def seeds(self) -> range:
        return range(self.first_seed, self.first_seed + self.num_seeds)

    def progress(self) -> str:
        """Where an unfinished run stands: training in a process now, not started, or the env step of the
        checkpoint it resumes from."""
        if (holder := runlock.holder(self.path)) is not None:
            step = last_logged_step(self.path / "metrics.csv")
            return f"training now ({holder}){'' if step is None else f', logged step {step:,} of {self.steps:,}'}"
        if not self.started:
            return "not started"
        ckpt = checkpoint.latest(self.path / "checkpoints")
        if ckpt is None:
            return "started, no checkpoint yet (resumes from the start)"
        return f"stopped; resumes from its checkpoint at step {checkpoint.step_of(ckpt):,} of {self.steps:,}"


@dataclasses.dataclass(frozen=True)
class Skipped:
    algo: str
    env: str
    reason: str


@dataclasses.dataclass
class Plan:
    suite: suites.Suite
    units: list[Unit]
    skipped: list[Skipped]
    seeds: int
    tasks: list[suites.Task]


def task_dir(out: Path, algo: str, env: str, steps: int) -> Path:
    return out / "runs" / algo / f"{env.replace('/', '_')}_{steps}"


def existing_units(folder: Path, algo: str, env: str, steps: int) -> list[Unit]:
    """Run folders already under `folder` (seeds_<a>-<b>), finished or not."""
    units = []
    if folder.is_dir():
        for child in sorted(folder.iterdir()):
            match = SEED_DIR.match(child.name)
            if match and child.is_dir():
                a, b = int(match[1]), int(match[2])
                if b >= a:
                    units.append(Unit(algo, env, steps, a, b - a + 1, child))
    return units


def seed_ranges(seeds: Sequence[int], size: int) -> list[tuple[int, int]]:
    """(first seed, count) of each run of consecutive `seeds` (sorted), cut into pieces of at most `size` (0 = no
    limit): the seed groups trained together in one run folder."""
    out: list[tuple[int, int]] = []
    for s in sorted(seeds):
        if out and s == out[-1][0] + out[-1][1] and (size == 0 or out[-1][1] < size):
            out[-1] = (out[-1][0], out[-1][1] + 1)
        else:
            out.append((s, 1))
    return out


def plan(cfg: BenchConfig) -> Plan:
    """Which units exist, which are missing, and which (algorithm, task) pairs cannot run."""
    suite = suites.get(cfg.suite)
    for algo in cfg.algos:
        agents.get(algo)  # unknown names fail here, before anything runs
    tasks = [suite.task(env) for env in cfg.tasks] if cfg.tasks else list(suite.tasks)
    if cfg.steps is not None:
        tasks = [dataclasses.replace(t, steps=cfg.steps) for t in tasks]
    seeds = cfg.seeds or suite.seeds
    out = cfg.out_dir()
    units: list[Unit] = []
    skipped: list[Skipped] = []
    for algo in cfg.algos:
        for task in tasks:
            reason = suites.compatibility(algo, task.env)
            if reason is not None:
                skipped.append(Skipped(algo, task.env, reason))
                continue
            folder = task_dir(out, algo, task.env, task.steps)
            have = existing_units(folder, algo, task.env, task.steps)
            covered = {s for u in have for s in u.seeds}
            units.extend(u for u in have if u.first_seed < seeds)
            for first, count in seed_ranges([s for s in range(seeds) if s not in covered], cfg.seeds_per_run):
                path = folder / f"seeds_{first}-{first + count - 1}"
                units.append(Unit(algo, task.env, task.steps, first, count, path))
    return Plan(suite, units, skipped, seeds, tasks)


def train_command(unit: Unit, suite: suites.Suite, extra: Sequence[str]) -> list[str]:
    """The `critix train` arguments of a unit (what a user would type to reproduce it)."""
    if unit.started:
        return [unit.algo, "--resume", str(unit.path), "--no-progress"]
    eval_every = max(1, unit.steps // suite.evaluations)
    return [unit.algo, "--env", unit.env, "--steps", str(unit.steps), "--num-seeds", str(unit.num_seeds),
            "--seed", str(unit.first_seed), "--eval-every", str(eval_every),
            "--eval-episodes", str(suite.eval_episodes), "--run-dir", str(unit.path), "--no-progress",
            "--no-tensorboard", *extra]


def print_now(message: str) -> None:
    """Print and flush: a suite or a sweep runs for hours, and its log must reach a file or pipe as it happens."""
    print(message, flush=True)


def run(cfg: BenchConfig, trainer: Callable[[list[str]], None],
        log: Callable[[str], None] = print_now) -> tuple[Plan, dict[Path, str]]:
    """Run every missing unit of the suite; returns the plan and the units that failed (run folder -> error), what
    `critix.bench.report.write_report` makes the report of.

    trainer(argv) trains one unit from the arguments of `critix train` (`critix bench` passes the command itself,
    run in its process; it raises CritixError when the run fails).

    A unit that fails (bad flags for that algorithm, a diverging run ...) is reported and the suite goes on;
    Ctrl-C stops the suite, and the same command resumes it."""
    the_plan = plan(cfg)
    out = cfg.out_dir()
    out.mkdir(parents=True, exist_ok=True)
    extra = [a for arg in cfg.train_args for a in shlex.split(arg)]
    todo = [u for u in the_plan.units if not u.finished]
    done = len(the_plan.units) - len(todo)
    for skip in the_plan.skipped:
        log(f"skip {skip.algo} on {skip.env}: {skip.reason}")
    log(f"suite {the_plan.suite.name}: {len(the_plan.units)} runs ({done} finished, {len(todo)} to run), "
        f"{len(the_plan.skipped)} (algorithm, task) pairs skipped; output {out}")
    failures: dict[Path, str] = {}
    if not cfg.report_only:
        for i, unit in enumerate(todo, 1):
            # Another `critix bench` of the same suite may share the work: leave its runs to it.
            if (holder := runlock.holder(unit.path)) is not None:
                log(f"[{i}/{len(todo)}] skip {unit.algo} {unit.env}: another process is training it ({holder})")
                continue
            if unit.finished:
                log(f"[{i}/{len(todo)}] skip {unit.algo} {unit.env}: another process finished it")
                continue
            if unit.path.is_dir() and not unit.started:  # created but killed before config.json: start afresh
                shutil.rmtree(unit.path)
            argv = train_command(unit, the_plan.suite, extra)
            verb = "resume" if unit.started else "train"
            log(f"[{i}/{len(todo)}] {verb} {unit.algo} {unit.env} seeds {unit.seeds.start}-{unit.seeds.stop - 1}: "
                f"critix train {' '.join(argv)}")
            start = time.perf_counter()
            try:
                trainer(argv)
            except (CritixError, ValueError) as err:
                failures[unit.path] = str(err)
                log(f"  failed: {err}")
                continue
            log(f"  done in {time.perf_counter() - start:.0f} s")
    return the_plan, failures
