"""Hyperparameter grids inside one compiled run: every grid point trains its seeds in the same `jit(vmap)`.

`critix train ppo --env gymnax:CartPole-v1 --num-seeds 4 --grid learning_rate=1e-4,3e-4,1e-3` trains 3 x 4
members in one compiled program. The varying fields enter the program as arrays (one value per member), so only
float hyperparameters that the agent uses as numbers can vary: learning rates, discounts, clip ratios,
coefficients. A field that sets a shape or a branch of the program (sizes, counts, switches) cannot; those
configurations are separate programs, which `critix sweep` trains.

Member m of the run is grid point m // S, seed m % S: every grid point trains the same S seeds (the same
initialisations, env and acting keys), so two points differ only in their hyperparameters.
"""

from __future__ import annotations

import dataclasses
import difflib
import itertools
import math
import re
from pathlib import Path
from typing import Any

import jax
import numpy as np

from critix.stats.runs import point_label
from critix.files import atomic_write_json
from critix.train.config import RunConfig, config_to_json
from critix.train.run import Output
from critix.types import CritixError

RUN_FIELDS = {f.name for f in dataclasses.fields(RunConfig)}
EXAMPLE = "e.g. --grid learning_rate=1e-4,3e-4 gae_lambda=0.9,0.95 (tied fields: actor_lr,critic_lr=1e-4,3e-4)"


@dataclasses.dataclass(frozen=True)
class Grid:
    """The grid points of a compiled run: `points[g]` maps each varying field to its value at point g."""

    fields: tuple[str, ...] = ()
    points: tuple[dict[str, float], ...] = ({},)

    @property
    def size(self) -> int:
        return len(self.points)

    def label(self, g: int) -> str:
        return point_label(self.points[g])

    def dirname(self, g: int) -> str:
        """A folder name for point g, e.g. `01_learning_rate=0.0003`."""
        return f"{g:02d}_" + re.sub(r"[^A-Za-z0-9_.=+-]", "_", point_label(self.points[g], sep="_"))

    def member_values(self, num_seeds: int) -> dict[str, np.ndarray]:
        """field -> float32 [G * S]: the value each member trains with (member m is point m // S)."""
        return {name: np.repeat(np.asarray([p[name] for p in self.points], np.float32), num_seeds)
                for name in self.fields}


def parse_grid(specs: tuple[str, ...], algo: str, cfg: Any) -> Grid:
    """`--grid` flags (FIELD=V1,V2,... each; several flags make the product, the first flag slowest) -> Grid.

    Checks that each field is a float field of the agent's config and that every point is a valid config."""
    if not specs:
        return Grid()
    fields = {f.name for f in dataclasses.fields(cfg)}
    axes: list[list[dict[str, float]]] = []
    seen: set[str] = set()
    for spec in specs:
        if "=" not in spec:
            raise CritixError(f"--grid {spec!r} is not FIELD=V1,V2,...; {EXAMPLE}")
        key, text = spec.split("=", 1)
        names = [n.strip() for n in key.split(",")]
        for name in names:
            if name in RUN_FIELDS:
                raise CritixError(f"--grid {name}: {name} is a run setting, which fixes the structure of the compiled "
                                  "program (how many env steps and updates make one iteration, sizes), so it cannot "
                                  "vary inside one run; train its values as separate runs (`critix sweep`)")
            if name not in fields:
                close = difflib.get_close_matches(name, sorted(fields), n=3, cutoff=0.6)
                hint = f"; did you mean {', '.join(close)}?" if close else ""
                raise CritixError(f"--grid: {name!r} is not a field of {algo}{hint} (`critix list {algo}` lists them)")
            vmappable = getattr(type(cfg), "VMAPPABLE", ())
            if name not in vmappable:
                kind = "is not a float" if not isinstance(getattr(cfg, name), float) else "sets a shape or a branch"
                raise CritixError(
                    f"--grid {name}: {name} {kind} of {algo}'s program, and only the hyperparameters {algo} declares "
                    f"vmappable can vary inside one compiled run: {', '.join(vmappable) or 'none'}; train its values "
                    f"as separate runs, e.g. with `critix sweep`")
            if name in seen:
                raise CritixError(f"--grid names {name} twice; give each field one --grid flag")
            seen.add(name)
        try:
            values = [float(v) for v in text.split(",") if v.strip()]
        except ValueError:
            raise CritixError(f"--grid {spec!r}: the values must be numbers; {EXAMPLE}") from None
        if not values:
            raise CritixError(f"--grid {spec!r} lists no values; {EXAMPLE}")
        if not all(math.isfinite(v) for v in values):
            raise CritixError(f"--grid {spec!r}: values must be finite numbers")
        if len(set(values)) != len(values):
            raise CritixError(f"--grid {spec!r} lists a value twice")
        axes.append([{name: v for name in names} for v in values])
    points = tuple({k: v for part in combo for k, v in part.items()} for combo in itertools.product(*axes))
    grid = Grid(tuple(name for axis in axes for name in axis[0]), points)
    for g in range(grid.size):
        try:
            dataclasses.replace(cfg, **grid.points[g])  # the agent's own validation of every point
        except (CritixError, ValueError, TypeError) as err:
            raise CritixError(f"--grid point {grid.label(g)}: {err}") from None
    return grid


def member_config(cfg: Any, values: dict[str, Any]) -> Any:
    """The config one member of a compiled grid trains with: `cfg` with its declared vmappable leaves
    (`critix.agents.common.vmappable`) replaced by `values` (traced arrays inside the program). parse_grid has
    validated every point as a concrete config beforehand."""
    if not values:
        return cfg
    leaves, treedef = jax.tree_util.tree_flatten(cfg)
    names = type(cfg).VMAPPABLE
    return jax.tree_util.tree_unflatten(treedef, [values.get(name, leaf) for name, leaf in zip(names, leaves)])


# ---- run folders of a grid run (the compiled stepper's outputs) ----------------------------------------------------


def grid_outputs(grid: Grid, num_seeds: int, run_dir: Path) -> list[Output]:
    """The run folder itself without a grid; with one, a run folder per grid point under run_dir/grid/."""
    S = num_seeds
    if not grid.fields:
        return [Output(run_dir, slice(0, S))]
    return [Output(run_dir / "grid" / grid.dirname(g), slice(g * S, (g + 1) * S), grid.label(g),
                   {"grid_point": grid.points[g]}) for g in range(grid.size)]


def write_point_configs(grid: Grid, algo: str, cfg: Any, run: RunConfig, outputs: list[Output]) -> None:
    """Each grid point's folder gets the concrete config it trains with (its checkpoints are the parent's)."""
    if not grid.fields:
        return
    for g, out in enumerate(outputs):
        out.run_dir.mkdir(parents=True, exist_ok=True)
        point_run = dataclasses.replace(run, grid=(), run_dir=str(out.run_dir))
        atomic_write_json(out.run_dir / "config.json", {
            **config_to_json(algo, dataclasses.replace(cfg, **grid.points[g]), point_run),
            "grid_point": grid.points[g],
            "note": "one grid point of the compiled run in ../..; its checkpoints are there: "
                    "`critix eval` and `--resume` take that folder"})


def combine_points(summary: dict[str, Any], points: list[dict[str, Any]], run_dir: Path, title: str,
                   num_seeds: int) -> dict[str, Any]:
    """The grid run's own summary (every member) with one entry per grid point, and its curves plot."""
    from critix.stats.plots import plot_learning_curves
    from critix.stats.runs import load_run

    plot_learning_curves([load_run(Path(p["run_dir"])) for p in points], run_dir / "learning_curve.png",
                         title=f"{title}: grid points, IQM over {num_seeds} seeds, 95% bootstrap interval")
    best = max(range(len(points)), key=lambda g: points[g]["final_return_mean"])
    return {**summary,
            "grid": [{"point": p["grid_point"], "final_return": p["final_return"],
                      "final_return_mean": p["final_return_mean"], "final_return_std": p["final_return_std"],
                      "run_dir": p["run_dir"]} for p in points],
            "grid_best": best,
            "final_return_note": "per member: grid point g, seed s is member g * num_seeds + s"}
