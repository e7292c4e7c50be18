"""Fully compiled training on JAX-native envs: env steps and updates in one `lax.scan`, members as a vmap axis.

The run is `jit(vmap(chunk))` over its members (S seeds, or G grid points x S seeds with `--grid`), where a chunk
is a `lax.scan` over iterations of the member program `critix.train.member` (a rollout and its update for PPO and
A2C; env steps into a device replay buffer and gradient steps for off-policy agents). The host loops over chunks
through the run lifecycle (`critix.train.run`), so the progress bar, metrics.csv, TensorBoard, learning curve,
evaluation, checkpoints and summary.json are those of the host modes, and the agent modules are the same.

With a grid, each point's values enter the program as arrays, and each point gets its own run folder under
`grid/` (`critix.train.grid`).

Keys mirror the host steppers (agent and update keys split from PRNGKey(seed) the same way, the acting random
numbers of vector step t from `contract.step_key`; env keys come from a separate stream), so a deterministic env
gives the same run in both modes.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from critix import agents
from critix.agents import contract
from critix.data import replay
from critix.envs.jax_envs import JaxEnv, make_jax_env
from critix.train import checkpoint
from critix.train.config import RunConfig, plan_of, resolve
from critix.train.grid import Grid, combine_points, grid_outputs, parse_grid, write_point_configs
from critix.train.member import Member
from critix.train.run import Chunk, Output, execute
from critix.types import CritixError


class Compiled:
    """Stepper of a compiled run: the member program (`critix.train.member`) jitted and vmapped over G x S members;
    its state is the members' carry."""

    mode = "compiled"
    unit = "env step"

    def __init__(self, algo: str, agent_cfg: Any, run: RunConfig) -> None:
        run = resolve(algo, run)  # loop settings left at None: the algorithm's defaults
        self.algo, self.run, self.env_id, self.cfg = algo, run, run.env, agent_cfg
        module = agents.get(algo).module
        env: JaxEnv = make_jax_env(run.env)
        module.check_spaces(env.observation_space, env.action_space)
        on_policy = contract.kind(module) == "on-policy"
        path = None if on_policy else contract.data_path(module, agent_cfg)
        if path is not None and path.name != "uniform replay":
            raise CritixError(f"compiled mode samples single transitions uniformly; {algo} with {path.name} "
                              "(--n-step, --prioritized) must run in host mode (use the Gymnasium env id)")
        plan = plan_of(run)
        contract.check_plan(module, agent_cfg, plan)
        self.member = member = Member(env, module, agent_cfg, plan, run.steps, run.normalize_obs,
                                      run.normalize_reward, run.on_nan == "skip", run.eval_episodes)
        if not on_policy:
            replay.check_capacity(member.capacity, agent_cfg.batch_size)
        self.grid: Grid = parse_grid(run.grid, algo, agent_cfg)
        self.num_seeds = run.num_seeds
        self.num_members = self.grid.size * self.num_seeds
        self.steps_per_iteration = member.steps_per_iteration
        # Off-policy warm-up: iterations with uniform random actions and no updates (env steps < learning_starts).
        self.warmup_iterations = 0 if on_policy else math.ceil(plan.learning_starts / self.steps_per_iteration)
        self.total_iterations = math.ceil(run.steps / self.steps_per_iteration)
        self.total_steps = self.total_iterations * self.steps_per_iteration
        chunk_steps = run.chunk_size or run.log_every or self.steps_per_iteration
        self.chunk_iterations = max(1, min(self.total_iterations, math.ceil(chunk_steps / self.steps_per_iteration)))
        members = f"x{self.num_seeds} seeds" if self.grid.size == 1 else f"x{self.grid.size} grid points x{self.num_seeds} seeds"
        self.description = f"{algo} {run.env} {members} (compiled)"
        # Chunk programs, compiled ahead of time (trace, lower, compile) so that summary.json's compile_seconds is
        # compiling only and train_seconds running only: one per chunk length, phase and carry signature.
        self.executables: dict[tuple, Any] = {}
        self.chunk = jax.jit(jax.vmap(member.chunk, in_axes=(0, None, None)), static_argnums=(1, 2), donate_argnums=0)
        self.evaluate_members = jax.jit(jax.vmap(member.evaluate, in_axes=(0, None)))
        self.act_members = jax.jit(jax.vmap(member.greedy_actions))
        self.init_members = jax.jit(jax.vmap(member.init))

    # ---- runs ----------------------------------------------------------------------------------------
    def fresh(self) -> Any:
        """Fresh members: seed s of every grid point gets the same agent, acting and env keys."""
        root = jax.random.PRNGKey(self.run.seed)
        agent_key, loop_key = jax.random.split(root)
        S, G = self.num_seeds, self.grid.size
        env_keys = jax.random.split(jax.random.fold_in(root, 1), S)

        def tiled(keys: jax.Array) -> jax.Array:  # [S, 2] -> [G * S, 2]: member g * S + s gets seed s's key
            return jnp.tile(keys, (G, 1))

        hparams = {name: jnp.asarray(v) for name, v in self.grid.member_values(S).items()}
        return self.init_members(tiled(jax.random.split(agent_key, S)), tiled(jax.random.split(loop_key, S)),
                                 tiled(contract.acting_keys(self.run.seed, S)), tiled(env_keys), hparams)

    def start(self, restored: tuple[Path, dict[str, Any]] | None) -> int:
        self.carry, self.iterations, self.episodes, self.metrics = self.fresh(), 0, 0, {}
        if restored is not None:
            arrays, meta = checkpoint.load(restored[0], {"carry": self.carry})
            self.carry = jax.device_put(arrays["carry"])
            self.iterations, self.episodes = int(meta["counters"]["iterations"]), int(meta["counters"]["episodes"])
        return self.iterations * self.steps_per_iteration

    @property
    def agent(self) -> Any:
        """The members' agent states [G * S, ...]."""
        return self.carry.agent

    def advance(self) -> Chunk:
        learning = self.iterations >= self.warmup_iterations
        end = self.total_iterations if learning else self.warmup_iterations
        length = min(self.chunk_iterations, end - self.iterations)
        executable, compile_seconds = self.executable(length, learning)
        self.carry, metrics = executable(self.carry)
        metrics = jax.device_get(metrics)  # waits for the chunk
        self.iterations += length
        self.episodes += int(np.sum(metrics.pop("episode/count")))
        bad_items, bad_updates = int(np.sum(metrics.pop("guard/transitions"))), int(np.sum(metrics.pop("guard/updates")))
        self.metrics = metrics
        # Warm-up chunks (random actions, no updates) are not steady state.
        return Chunk(self.iterations * self.steps_per_iteration, False, learning, bad_items, bad_updates,
                     compile_seconds)

    compile_note = "seconds spent tracing, lowering and compiling the chunk programs (ahead of time, not running)"

    def executable(self, length: int, learning: bool) -> tuple[Any, float]:
        """The compiled chunk of `length` iterations for the current carry, and the seconds compiling it took now
        (0 when it was compiled before). A carry whose shapes or dtypes differ gets its own program, as jit would."""
        signature = (length, learning, jax.tree.structure(self.carry),
                     tuple(jax.typeof(x) for x in jax.tree.leaves(self.carry)))
        if signature in self.executables:
            return self.executables[signature], 0.0
        start = time.perf_counter()
        executable = self.chunk.lower(self.carry, length, learning).compile()
        self.executables[signature] = executable
        return executable, time.perf_counter() - start

    def train_values(self) -> dict[str, np.ndarray]:
        return {name: np.asarray(v, np.float64) for name, v in self.metrics.items()}

    def evaluate(self, seed: int) -> np.ndarray:
        """Deterministic returns [G * S, eval_episodes]."""
        return np.asarray(self.evaluate_members(self.carry, jax.random.PRNGKey(seed)))

    def greedy_actions(self, obs: np.ndarray) -> np.ndarray:
        """Deterministic agent actions [G * S, B, ...] for observations [G * S, B, O] (videos in a Gymnasium twin)."""
        return np.asarray(self.act_members(self.carry, jnp.asarray(obs, jnp.float32)))

    def state(self) -> tuple[Any, dict[str, Any]]:
        env = self.member.env
        return {"carry": self.carry}, {"counters": {"iterations": self.iterations, "episodes": self.episodes},
                                       "env": self.run.env,
                                       "spaces": checkpoint.describe_spaces(env.observation_space, env.action_space)}

    def gradient_steps(self) -> int:
        return max(0, self.iterations - self.warmup_iterations) * self.member.updates_per_iteration

    def member_labels(self) -> list[str] | None:
        """'<grid point> seed <s>' per member with a grid, else None."""
        if not self.grid.fields:
            return None
        return [f"{self.grid.label(m // self.num_seeds)} seed {m % self.num_seeds}" for m in range(self.num_members)]

    def metric_names(self) -> list[str]:
        hparams = {name: jnp.zeros((), jnp.float32) for name in self.grid.fields}
        keys = (jax.random.PRNGKey(0), jax.random.PRNGKey(1), jax.random.PRNGKey(2), jax.random.PRNGKey(3))
        carry = jax.eval_shape(lambda h: self.member.init(*keys, h), hparams)
        shapes = jax.eval_shape(lambda c: self.member.chunk(c, 1, True), carry)[1]
        return sorted(n for n in shapes if n not in ("episode/count", "guard/transitions", "guard/updates"))

    # ---- grid points: a run folder each (critix.train.grid) ------------------------------------------------
    def outputs(self, run_dir: Path) -> list[Output]:
        return grid_outputs(self.grid, self.num_seeds, run_dir)

    def write_output_configs(self, outputs: list[Output]) -> None:
        write_point_configs(self.grid, self.algo, self.cfg, self.run, outputs)

    def combine(self, summary: dict[str, Any], points: list[dict[str, Any]], run_dir: Path) -> dict[str, Any]:
        return combine_points(summary, points, run_dir, f"{self.algo} on {self.run.env}", self.num_seeds)

    def close(self) -> None:
        pass


def train(algo: str, agent_cfg: Any, run: RunConfig, resume: Path | None = None) -> dict[str, Any]:
    """Train (or resume) a compiled run on a JAX env; returns the summary also written to summary.json."""
    return execute(algo, agent_cfg, run, lambda: Compiled(algo, agent_cfg, run), resume)
