"""The sweep file of `critix sweep`, its validation and expansion into trials, and the manifest sweep.json.

A sweep file (YAML) says what to train; `critix sweep` flags can give or override every key:

    algo: sac
    env: Pendulum-v1
    steps: 10000
    seeds: [0, 1, 2]
    grid:                                  # every combination of these values is one configuration
      actor_lr,critic_lr,alpha_lr: [1.0e-4, 3.0e-4, 1.0e-3]   # tied fields: one value sets all three
    fixed: {learning_starts: 1000, eval_every: 1000}          # the same in every configuration
    search:                                # optional random search: `samples` points for each grid point
      samples: 4
      seed: 0
      space: {target_tau: {loguniform: [0.001, 0.05]}}       # uniform, loguniform, randint, choice
    seeds_per_trial: 0                     # seeds trained together (vmapped) in one trial; 0 = all of them
    scheduler: fifo                        # or asha, or {name: asha, grace_period: 2000, reduction_factor: 3}

Fields are those of the algorithm's Config (`critix list ALGO`) and the run options of `critix train`
(`RunConfig`), except the ones the sweep sets itself (SWEEP_SETS). The defaults are those `critix train ALGO --env
ENV` uses (tuned defaults included); `fixed`, then the grid and search values, override them.

Each (configuration, group of seeds) is a trial: one run folder DIR/trials/c<config>-seeds_<a>-<b>/ whose
config.json is written when the sweep is planned, trained by `critix train ALGO --resume RUN_DIR`.
DIR/sweep.json (the manifest) holds the sweep as first planned, its configurations, and every trial's status;
a trial counts as finished once its summary.json exists.
"""

from __future__ import annotations

import dataclasses
import datetime
import difflib
import itertools
import json
import re
from pathlib import Path
from typing import Any

import numpy as np

from critix import __version__, agents, validation
from critix.bench.runner import seed_ranges
from critix.files import atomic_write_json
from critix.train.config import RunConfig, config_to_json
from critix.train.config import plan_of
from critix.train.config import resolve as resolve_run
from critix.agents import common, contract
from critix.types import CritixError

KEYS = ("algo", "env", "steps", "seeds", "grid", "fixed", "search", "seeds_per_trial", "scheduler")
"""Top-level keys of a sweep file."""
SWEEP_SETS = ("env", "steps", "num_seeds", "seed", "run_dir", "progress")
"""RunConfig fields the sweep sets for every trial (so a grid or `fixed` cannot)."""
DISTRIBUTIONS = ("uniform", "loguniform", "randint", "choice")
SCHEDULERS = ("fifo", "asha")
STATUSES = ("pending", "running", "finished", "failed", "stopped")
"""Trial statuses: stopped = stopped early by the ASHA scheduler (its run folder is kept, unfinished)."""
MANIFEST = "sweep.json"
LOCK_FILE = ".lock"
"""Held by the `critix sweep` driver while it works on a sweep folder (one driver per folder)."""
FORMAT_VERSION = 1
EXAMPLE = "examples/sweeps/sac_pendulum_lr.yaml"


# ---- YAML ---------------------------------------------------------------------------------------------------------
def _yaml() -> Any:
    try:
        import yaml
    except ImportError:
        raise CritixError("sweep files are YAML: pip install 'critix[ray]' (PyYAML and Ray)") from None
    return yaml


def _loader() -> type:
    """PyYAML's SafeLoader (plain data only: mappings, lists, strings, numbers, booleans, null), reading numbers
    such as 1e-3 as floats as YAML 1.2 does (YAML 1.1, PyYAML's default, would read them as strings)."""
    yaml = _yaml()

    class Loader(yaml.SafeLoader):
        pass

    number = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$|^[-+]?\.(inf|Inf|INF)$|^\.(nan|NaN|NAN)$")
    Loader.add_implicit_resolver("tag:yaml.org,2002:float", number, list("-+0123456789."))
    return Loader


def parse_yaml(text: str, source: str) -> Any:
    """YAML text -> plain data, or CritixError naming the line and column of a syntax error."""
    yaml = _yaml()
    loader = _loader()(text)
    try:
        return loader.get_single_data()
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise CritixError(f"{source} is not valid YAML{where}: {problem}. Check the indentation and that every "
                          f"`key: value` has a space after the colon (example: {EXAMPLE})") from None
    finally:
        loader.dispose()


def read_sweep_file(path: Path) -> dict[str, Any]:
    """The sweep file as a mapping (keys are checked later, by `build_spec`)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise CritixError(f"cannot read the sweep file {path} ({err}); give a YAML file such as {EXAMPLE}") from None
    data = parse_yaml(text, Path(path).name)
    if not isinstance(data, dict):
        raise CritixError(f"{Path(path).name} must be a YAML mapping of keys ({', '.join(KEYS)}), got "
                          f"{type(data).__name__}; see {EXAMPLE}")
    return data


def flag_values(text: str, flag: str) -> Any:
    """The value of a `critix sweep` flag written as YAML flow (`1e-4,3e-4` is a list, `[64,64]` a list too)."""
    return parse_yaml(text, f"{flag} {text!r}")


# ---- the sweep ----------------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Scheduler:
    """How Ray Tune schedules trials: fifo runs every trial to the end; asha (asynchronous successive halving, Li
    et al. 2020) stops the worse configurations early, comparing their evaluation returns at env steps
    grace_period * reduction_factor^k."""

    name: str = "fifo"
    grace_period: int = 0
    """asha: env steps a trial runs before it can be stopped (0: steps // 9, so rungs at steps/9 and steps/3)."""
    reduction_factor: float = 3.0
    """asha: keep the best 1/reduction_factor of the trials at each rung."""


@dataclasses.dataclass(frozen=True)
class Search:
    """Random search: `samples` points drawn from `space` (key -> (distribution, arguments)) with `seed`."""

    samples: int
    seed: int
    space: dict[str, tuple[str, tuple[Any, ...]]]


@dataclasses.dataclass(frozen=True)
class SweepSpec:
    """A validated sweep: what to train. Trials follow from it; it is frozen in sweep.json on the first run."""

    algo: str
    env: str
    steps: int
    seeds: tuple[int, ...]
    grid: dict[str, tuple[Any, ...]]
    """key -> values; a key may name several fields joined by commas (tied: one value sets each)."""
    fixed: dict[str, Any]
    search: Search | None
    seeds_per_trial: int
    scheduler: Scheduler

    def to_json(self) -> dict[str, Any]:
        return json.loads(json.dumps(dataclasses.asdict(self)))


@dataclasses.dataclass(frozen=True)
class Configuration:
    """One point of the sweep: `params` (grid and search key -> value), e.g. {"actor_lr": 0.0003}."""

    index: int
    params: dict[str, Any]

    @property
    def label(self) -> str:
        return " ".join(f"{k}={format_value(v)}" for k, v in self.params.items()) or "defaults"


def format_value(value: Any) -> str:
    if isinstance(value, float):
        return format(value, ".4g")
    if isinstance(value, (tuple, list)):
        return "x".join(format_value(v) for v in value)
    return str(value)


def _type_error(source: str, key: str, want: str, value: Any) -> CritixError:
    return CritixError(f"{source}: {key} must be {want}, got {value!r} ({type(value).__name__}); see {EXAMPLE}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _config_value(value: Any) -> Any:
    """YAML lists become tuples, as config fields hold them (hidden_sizes: [256, 256] -> (256, 256))."""
    return tuple(_config_value(v) for v in value) if isinstance(value, list) else value


def field_names(algo: str) -> tuple[set[str], set[str]]:
    """(agent Config fields, RunConfig fields a sweep may set) of `algo`."""
    agent_fields = common.field_names(agents.get(algo).default_config)  # value_head's fields included
    run_fields = {f.name for f in dataclasses.fields(RunConfig)} - set(SWEEP_SETS)
    return agent_fields, run_fields


def _fields_of_key(key: Any, where: str, algo: str, source: str) -> list[str]:
    """The config fields a grid/fixed/search key names ("a" or tied "a,b"), each checked to exist."""
    if not isinstance(key, str) or not key.strip():
        raise _type_error(source, f"a key under {where}", "a config field name such as actor_lr", key)
    agent_fields, run_fields = field_names(algo)
    names = [k.strip() for k in key.split(",")]
    for name in names:
        if name in SWEEP_SETS:
            fix = "list the seeds under seeds:" if name in ("seed", "num_seeds") else f"use the top-level key {name}:"
            if name in ("run_dir", "progress"):
                fix = "the sweep sets it for every trial"
            raise CritixError(f"{source}: {where}.{key}: {name} is set by the sweep itself; {fix}")
        if name not in agent_fields | run_fields:
            close = difflib.get_close_matches(name, sorted(agent_fields | run_fields), n=3, cutoff=0.6)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise CritixError(f"{source}: {where}.{key}: {name!r} is not a field of {algo} or of the run "
                              f"options{hint} (`critix list {algo}` and `critix train {algo} --help` list them)")
    if len(set(names)) != len(names):
        raise CritixError(f"{source}: {where}.{key} names a field twice")
    return names


def _expand(params: dict[str, Any], algo: str, source: str, where: str) -> dict[str, Any]:
    """{key: value} -> {field: value} with tied keys split and YAML lists made tuples."""
    out: dict[str, Any] = {}
    for key, value in params.items():
        for name in _fields_of_key(key, where, algo, source):
            out[name] = _config_value(value)
    return out


def _int(data: dict[str, Any], key: str, source: str, low: int, default: int | None = None) -> int:
    value = data.get(key, default)
    if value is None:
        raise CritixError(f"{source}: {key} is missing; add `{key}: ...` to the sweep file or pass --{key.replace('_', '-')}")
    if not _is_int(value) or value < low:
        raise _type_error(source, key, f"an integer >= {low}", value)
    return value


def _parse_seeds(value: Any, source: str) -> tuple[int, ...]:
    if value is None:
        raise CritixError(f"{source}: seeds is missing; add e.g. `seeds: [0, 1, 2]` or pass --seeds 0,1,2")
    if not isinstance(value, list) or not value or not all(_is_int(s) and 0 <= s < 2**31 for s in value):
        raise _type_error(source, "seeds", "a non-empty list of integers in [0, 2**31), e.g. [0, 1, 2]", value)
    if len(set(value)) != len(value):
        raise CritixError(f"{source}: seeds lists a seed twice: {value}")
    return tuple(sorted(value))


def _parse_grid(value: Any, algo: str, source: str) -> dict[str, tuple[Any, ...]]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _type_error(source, "grid", "a mapping of config field -> list of values, e.g. {actor_lr: [1.0e-4, "
                          "3.0e-4]}", value)
    if not value:
        raise CritixError(f"{source}: grid is empty; give at least one field with a list of values, e.g. "
                          "`grid: {actor_lr: [1.0e-4, 3.0e-4]}`, or remove `grid:` to train one configuration "
                          "over the seeds")
    grid = {}
    for key, values in value.items():
        _fields_of_key(key, "grid", algo, source)
        if not isinstance(values, list):
            raise CritixError(f"{source}: grid.{key} must be a list of values, e.g. [{values!r}], got {values!r} "
                              f"({type(values).__name__}); to give every trial the same value, put it under fixed:")
        if not values:
            raise CritixError(f"{source}: grid.{key} is an empty list; give at least one value")
        as_json = [json.dumps(v, sort_keys=True) for v in values]
        if len(set(as_json)) != len(as_json):
            raise CritixError(f"{source}: grid.{key} lists a value twice: {values}")
        grid[key] = tuple(values)
    return grid


def _parse_search(value: Any, algo: str, source: str) -> Search | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise _type_error(source, "search", "a mapping with samples, seed and space", value)
    unknown = set(value) - {"samples", "seed", "space"}
    if unknown:
        raise CritixError(f"{source}: search has unknown keys {sorted(unknown)}; it takes samples, seed and space")
    samples = _int(value, "samples", f"{source}: search", 1)
    seed = _int(value, "seed", f"{source}: search", 0, default=0)
    space_in = value.get("space")
    if not isinstance(space_in, dict) or not space_in:
        raise _type_error(source, "search.space", "a non-empty mapping of field -> {distribution: arguments}, e.g. "
                          "{actor_lr: {loguniform: [1.0e-5, 1.0e-3]}}", space_in)
    space: dict[str, tuple[str, tuple[Any, ...]]] = {}
    for key, dist in space_in.items():
        _fields_of_key(key, "search.space", algo, source)
        where = f"{source}: search.space.{key}"
        if not isinstance(dist, dict) or len(dist) != 1 or next(iter(dist)) not in DISTRIBUTIONS:
            raise CritixError(f"{where} must be one of {{uniform: [low, high]}}, {{loguniform: [low, high]}}, "
                              f"{{randint: [low, high]}} (both ends included) or {{choice: [values]}}, got {dist!r}")
        kind, args = next(iter(dist.items()))
        if not isinstance(args, list) or not args:
            raise CritixError(f"{where}: {kind} needs a list, e.g. {kind}: [1.0e-4, 1.0e-3], got {args!r}")
        if kind != "choice":
            number = _is_int if kind == "randint" else (lambda x: isinstance(x, (int, float)) and not isinstance(x, bool))
            if len(args) != 2 or not all(number(a) for a in args) or not args[0] < args[1]:
                raise CritixError(f"{where}: {kind} needs [low, high] with low < high"
                                  f"{' (integers)' if kind == 'randint' else ''}, got {args!r}")
            if kind == "loguniform" and args[0] <= 0:
                raise CritixError(f"{where}: loguniform needs 0 < low < high, got {args!r}")
        space[key] = (kind, tuple(args))
    return Search(samples, seed, space)


def _parse_scheduler(value: Any, source: str, steps: int) -> Scheduler:
    if value is None or isinstance(value, str):
        value = {"name": value or "fifo"}
    if not isinstance(value, dict):
        raise _type_error(source, "scheduler", "fifo, asha, or {name: asha, grace_period: N, reduction_factor: R}",
                          value)
    unknown = set(value) - {"name", "grace_period", "reduction_factor"}
    if unknown:
        raise CritixError(f"{source}: scheduler has unknown keys {sorted(unknown)}; it takes name, grace_period "
                          "and reduction_factor")
    name = value.get("name", "fifo")
    if name not in SCHEDULERS:
        raise CritixError(f"{source}: scheduler must be one of {', '.join(SCHEDULERS)}, got {name!r}")
    grace = value.get("grace_period", max(1, steps // 9))
    factor = value.get("reduction_factor", 3.0)
    if not _is_int(grace) or not 1 <= grace <= steps:
        raise _type_error(source, "scheduler.grace_period", f"an integer in [1, steps={steps}]", grace)
    if not isinstance(factor, (int, float)) or isinstance(factor, bool) or not factor > 1:
        raise _type_error(source, "scheduler.reduction_factor", "a number > 1", factor)
    if name == "fifo":
        if "grace_period" in value or "reduction_factor" in value:
            raise CritixError(f"{source}: grace_period and reduction_factor are options of scheduler asha, not fifo")
        return Scheduler("fifo")
    return Scheduler(name, grace, float(factor))


def build_spec(data: dict[str, Any], source: str) -> SweepSpec:
    """Validate a sweep (from its file and flags) down to every configuration's values; one CritixError naming
    the key and the fix otherwise."""
    unknown = [k for k in data if k not in KEYS]
    if unknown:
        close = difflib.get_close_matches(str(unknown[0]), KEYS, n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise CritixError(f"{source}: unknown key {unknown[0]!r}{hint}; a sweep file takes {', '.join(KEYS)}")
    algo = data.get("algo")
    if algo is None:
        raise CritixError(f"{source}: algo is missing; add e.g. `algo: sac` or pass --algo sac")
    if not isinstance(algo, str):
        raise _type_error(source, "algo", "an algorithm name from `critix list`", algo)
    try:
        agents.get(algo)
    except CritixError as err:
        raise CritixError(f"{source}: algo: {err}") from None
    env = data.get("env")
    if env is None:
        raise CritixError(f"{source}: env is missing; add e.g. `env: Pendulum-v1` or pass --env Pendulum-v1")
    if not isinstance(env, str):
        raise _type_error(source, "env", "an environment id such as Pendulum-v1", env)
    _check_env(algo, env, source)
    steps = _int(data, "steps", source, 1)
    seeds = _parse_seeds(data.get("seeds"), source)
    grid = _parse_grid(data.get("grid"), algo, source)
    fixed_in = data.get("fixed") or {}
    if not isinstance(fixed_in, dict):
        raise _type_error(source, "fixed", "a mapping of config field -> value, e.g. {learning_starts: 1000}", fixed_in)
    for key in fixed_in:
        _fields_of_key(key, "fixed", algo, source)
    fixed = dict(fixed_in)
    search = _parse_search(data.get("search"), algo, source)
    seeds_per_trial = _int(data, "seeds_per_trial", source, 0, default=0)
    scheduler = _parse_scheduler(data.get("scheduler"), source, steps)
    spec = SweepSpec(algo, env, steps, seeds, grid, fixed, search, seeds_per_trial, scheduler)
    _check_overlaps(spec, source)
    _check_values(spec, source)
    return spec


def _check_env(algo: str, env_id: str, source: str) -> None:
    """The env exists and the algorithm can handle its spaces (the messages `critix train` would give)."""
    from critix.bench import suites
    from critix.envs.jax_envs import is_jax_env, make_jax_env

    try:
        if is_jax_env(env_id):
            env = make_jax_env(env_id)
            check = getattr(agents.get(algo).module, "check_spaces", None)
            if check is not None:
                check(env.observation_space, env.action_space)
        elif (reason := suites.compatibility(algo, env_id)) is not None:
            raise CritixError(reason)
    except CritixError as err:
        raise CritixError(f"{source}: env: {err}") from None


def _check_overlaps(spec: SweepSpec, source: str) -> None:
    seen: dict[str, str] = {}
    sections = [("grid", spec.grid), ("fixed", spec.fixed), ("search.space", spec.search.space if spec.search else {})]
    for section, mapping in sections:
        for key in mapping:
            for name in _fields_of_key(key, section, spec.algo, source):
                if name in seen:
                    raise CritixError(f"{source}: {name} is set twice (under {seen[name]} and {section}); keep one")
                seen[name] = section
    if spec.scheduler.name == "asha" and spec.seeds_per_trial not in (0, len(spec.seeds)):
        raise CritixError(f"{source}: scheduler asha compares configurations, so each one must be a single trial "
                          "with all its seeds: set seeds_per_trial: 0")


def _check_values(spec: SweepSpec, source: str) -> None:
    """Build the agent and run config of every grid value alone (so an error names its key), then of every
    configuration, as its trials will."""
    largest = max(count for _, count in seed_ranges(spec.seeds, spec.seeds_per_trial))
    for key, values in spec.grid.items():
        for value in values:
            try:
                resolve(spec, {key: value}, largest)
            except CritixError as err:
                raise CritixError(f"{source}: grid.{key} value {value!r}: {err}") from None
    for config in configurations(spec):
        try:
            run = resolve(spec, config.params, largest)[1]
        except CritixError as err:
            raise CritixError(f"{source}: configuration {config.label}: {err}") from None
        if spec.scheduler.name == "asha" and (run.eval_every or spec.steps) > spec.scheduler.grace_period:
            raise CritixError(
                f"{source}: scheduler asha compares trials from env step {spec.scheduler.grace_period} on, but they "
                f"evaluate every {run.eval_every or spec.steps} steps; set fixed: {{eval_every: "
                f"{spec.scheduler.grace_period}}} or a larger scheduler.grace_period")


def resolve(spec: SweepSpec, params: dict[str, Any], num_seeds: int = 1, first_seed: int = 0,
            run_dir: str | None = None) -> tuple[Any, RunConfig]:
    """The agent and run configs of a trial: `critix train ALGO --env ENV` defaults, then `fixed`, then params."""
    from critix.agents import tuned

    spec_default = agents.get(spec.algo).default_config
    agent_default, run_default = tuned.apply(spec.algo, spec.env, spec_default,
                                             resolve_run(spec.algo, RunConfig(env=spec.env)))
    values = {**_expand(spec.fixed, spec.algo, "", "fixed"), **_expand(params, spec.algo, "", "grid")}
    agent_fields, _ = field_names(spec.algo)
    try:
        agent_cfg = common.replace_fields(agent_default, **{k: v for k, v in values.items() if k in agent_fields})
        run = dataclasses.replace(run_default, steps=spec.steps, num_seeds=num_seeds, seed=first_seed,
                                  run_dir=run_dir, progress=False,
                                  **{k: v for k, v in values.items() if k not in agent_fields})
    except (TypeError, ValueError) as err:
        raise CritixError(str(err)) from None
    contract.check_plan(agents.get(spec.algo).module, agent_cfg, plan_of(run))  # e.g. buffer vs batch size
    return agent_cfg, run


def _sample(kind: str, args: tuple[Any, ...], rng: np.random.Generator) -> Any:
    if kind == "uniform":
        return float(rng.uniform(args[0], args[1]))
    if kind == "loguniform":
        return float(np.exp(rng.uniform(np.log(args[0]), np.log(args[1]))))
    if kind == "randint":
        return int(rng.integers(args[0], args[1], endpoint=True))
    return args[int(rng.integers(len(args)))]


def configurations(spec: SweepSpec) -> list[Configuration]:
    """Every grid combination (first key slowest), each with `search.samples` random points if there is a search."""
    keys = list(spec.grid)
    points = [dict(zip(keys, combo)) for combo in itertools.product(*(spec.grid[k] for k in keys))]
    if spec.search is not None:
        rng = np.random.default_rng(spec.search.seed)
        points = [{**point, **{k: _sample(kind, args, rng) for k, (kind, args) in spec.search.space.items()}}
                  for point in points for _ in range(spec.search.samples)]
    return [Configuration(i, params) for i, params in enumerate(points)]


@dataclasses.dataclass(frozen=True)
class ExecutionConfig:
    """Where and how the trials run (may change between invocations of the same sweep)."""

    address: str | None = None
    """Ray cluster to connect to (e.g. 10.0.0.1:6379, or "auto"); None starts a local Ray instance."""
    num_cpus: int | None = None
    """CPUs of the local Ray instance (default: all of this machine's)."""
    cpus_per_trial: float = 1.0
    """CPUs Ray reserves for each trial; its `critix train` process gets as many threads (at least 1)."""
    gpus_per_trial: float = 0.0
    """GPUs for each trial; a fraction shares a GPU (0.5: two trials per GPU, each limited to 45% of its memory)."""
    max_concurrent: int = 0
    """At most this many trials at once; 0: as many as the cluster's resources allow."""
    max_retries: int = 2
    """A trial whose process fails or dies is restarted (resuming from its last checkpoint) this many times."""
    poll_seconds: float = 5.0
    """How often a trial reads its metrics.csv to report new evaluations to Ray Tune (the ASHA scheduler)."""

    def __post_init__(self) -> None:
        validation.check_types(self)
        if self.address is not None and self.num_cpus is not None:
            raise ValueError("num_cpus sizes the local Ray instance; a cluster (--address) has its own resources")
        if self.num_cpus is not None and self.num_cpus < 1:
            raise ValueError(f"num_cpus must be >= 1, got {self.num_cpus}")
        if not self.cpus_per_trial > 0:
            raise ValueError(f"cpus_per_trial must be > 0, got {self.cpus_per_trial}")
        if self.gpus_per_trial < 0 or (self.gpus_per_trial > 1 and not float(self.gpus_per_trial).is_integer()):
            raise ValueError(f"gpus_per_trial must be a fraction in [0, 1] or a whole number, got {self.gpus_per_trial}")
        for name in ("max_concurrent", "max_retries"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not self.poll_seconds > 0:
            raise ValueError(f"poll_seconds must be > 0, got {self.poll_seconds}")


# ---- trials and the manifest --------------------------------------------------------------------------------------
@dataclasses.dataclass
class TrialRecord:
    """One trial: a configuration trained on a range of consecutive seeds in one run folder."""

    id: str
    config: int
    seeds: list[int]
    run_dir: str
    """Relative to the sweep folder."""
    status: str = "pending"
    attempts: int = 0
    """How many times a trial process was started for it (over every `critix sweep` invocation)."""
    error: str | None = None
    started_at: str | None = None
    ended_at: str | None = None


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


class Manifest:
    """DIR/sweep.json: the sweep as first planned, its configurations and the trials' statuses. The driver is its
    only writer; every write is atomic (temporary file, fsync, rename)."""

    def __init__(self, out: Path, spec: dict[str, Any], configs: list[Configuration], trials: list[TrialRecord],
                 invocations: list[dict[str, Any]]) -> None:
        self.out, self.spec, self.configs, self.trials, self.invocations = out, spec, configs, trials, invocations

    @property
    def path(self) -> Path:
        return self.out / MANIFEST

    def trial(self, trial_id: str) -> TrialRecord:
        return next(t for t in self.trials if t.id == trial_id)

    def run_dir(self, trial: TrialRecord) -> Path:
        return self.out / trial.run_dir

    def finished(self, trial: TrialRecord) -> bool:
        return (self.run_dir(trial) / "summary.json").is_file()

    def save(self) -> None:
        atomic_write_json(self.path, {
            "format": "critix-sweep", "format_version": FORMAT_VERSION, "critix_version": __version__,
            "spec": self.spec,
            "configs": [{"index": c.index, "label": c.label, "params": c.params} for c in self.configs],
            "trials": [dataclasses.asdict(t) for t in self.trials],
            "invocations": self.invocations,
        })

    @classmethod
    def load(cls, out: Path) -> Manifest:
        path = out / MANIFEST
        try:
            data = json.loads(path.read_bytes().decode("utf-8"))
            if data.get("format") != "critix-sweep" or data.get("format_version") != FORMAT_VERSION:
                raise ValueError(f"format {data.get('format')!r} version {data.get('format_version')!r}, expected "
                                 f"'critix-sweep' version {FORMAT_VERSION}")
            configs = [Configuration(int(c["index"]), dict(c["params"])) for c in data["configs"]]
            trials = [TrialRecord(**t) for t in data["trials"]]
            return cls(out, data["spec"], configs, trials, list(data["invocations"]))
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
            raise CritixError(f"{path} is unreadable ({err}); it is not a critix sweep folder or it was damaged: "
                              "use another --out folder") from None


def plan(spec: SweepSpec, out: Path) -> Manifest:
    """The manifest of a new sweep folder, or the existing one (which must hold the same sweep), with every
    trial's run folder and config.json in place and each status refreshed from its run folder."""
    out = Path(out)
    if (out / MANIFEST).exists():
        manifest = Manifest.load(out)
        if manifest.spec != spec.to_json():
            changed = sorted(k for k in set(manifest.spec) | set(spec.to_json())
                             if manifest.spec.get(k) != spec.to_json().get(k))
            raise CritixError(f"{out} holds a different sweep (it differs in: {', '.join(changed)}). Rerun the "
                              f"original sweep file to resume it (its spec is in {out / MANIFEST}), or use a new --out")
    else:
        if out.exists() and any(p.name != LOCK_FILE for p in out.iterdir()):
            raise CritixError(f"{out} exists and is not a sweep folder (no {MANIFEST}); use an empty or new --out")
        configs = configurations(spec)
        trials = [TrialRecord(f"c{c.index}-seeds_{a}-{a + n - 1}", c.index, list(range(a, a + n)),
                              f"trials/c{c.index}-seeds_{a}-{a + n - 1}")
                  for c in configs for a, n in seed_ranges(spec.seeds, spec.seeds_per_trial)]
        manifest = Manifest(out, spec.to_json(), configs, trials, [])
        manifest.save()  # first, so a folder with trials always has its manifest
    for trial in manifest.trials:
        run_dir = manifest.run_dir(trial)
        if not (run_dir / "config.json").is_file():
            agent_cfg, run = resolve(spec, manifest.configs[trial.config].params, len(trial.seeds), trial.seeds[0],
                                     str(run_dir.resolve()))
            atomic_write_json(run_dir / "config.json", config_to_json(spec.algo, agent_cfg, run))
        if manifest.finished(trial):
            trial.status = "finished"
        elif trial.status in ("running", "failed"):  # a killed driver, or a failure: the next run resumes it
            trial.status = "pending"
    manifest.save()
    return manifest


def merge_flags(data: dict[str, Any], algo: str | None = None, env: str | None = None, steps: int | None = None,
                seeds: str | None = None, grid: tuple[str, ...] = (), fixed: tuple[str, ...] = (),
                seeds_per_trial: int | None = None, scheduler: str | None = None) -> dict[str, Any]:
    """The sweep file's keys with the `critix sweep` flags given on top (--grid and --fixed key by key)."""
    merged = dict(data)
    for key, value in (("algo", algo), ("env", env), ("steps", steps), ("seeds_per_trial", seeds_per_trial)):
        if value is not None:
            merged[key] = value
    if seeds is not None:
        merged["seeds"] = flag_values(f"[{seeds}]", "--seeds")
    for flag, key, entries in (("--grid", "grid", grid), ("--fixed", "fixed", fixed)):
        if not entries:
            continue
        section = dict(merged[key]) if isinstance(merged.get(key), dict) else {}
        for entry in entries:
            name, sep, text = entry.partition("=")
            if not sep or not name.strip() or not text.strip():
                raise CritixError(f"{flag} {entry!r}: write FIELD=VALUE{'S' if key == 'grid' else ''}, e.g. "
                                  f"{flag} {'actor_lr=1e-4,3e-4' if key == 'grid' else 'learning_starts=1000'}")
            section[name.strip()] = flag_values(f"[{text}]" if key == "grid" else text, flag)
        merged[key] = section
    if scheduler is not None:
        current = merged.get("scheduler")
        merged["scheduler"] = {**current, "name": scheduler} if isinstance(current, dict) else scheduler
    return merged
