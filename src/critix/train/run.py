"""One run lifecycle for every training mode; a mode is a `Stepper` that advances its state one chunk at a time.

`execute` owns everything a run does besides training itself: the run folder and its lock, config.json, resume
from the newest valid checkpoint, truncating metrics.csv and TensorBoard at that checkpoint, the log / evaluation /
checkpoint schedule, the progress bar, compile-time accounting (`Chunk.compiled`, `Chunk.compile_seconds`), the
NaN/Inf guard, the final evaluation, the learning curve and summary.json, videos (`critix.train.video`) and the W&B
tracker (`critix.train.tracking`). The stepper only says how to start or restore its state, advances it by one
chunk, evaluates (and acts greedily, for videos), and says what to save. Modes: `offpolicy` and `onpolicy` (host
loops on Gymnasium envs),
`compiled` (JAX envs), `offline` (datasets); `critix collect` drives the off-policy stepper through the same
lifecycle with an observer.

Every step count here is the run's x-axis: env steps per seed (summed over its envs), or gradient steps offline.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import jax
import numpy as np

from critix import __version__
from critix.provenance import source_commit
from critix.train import checkpoint, compile_cache, runlock, tracking, video
from critix.train.config import RunSettings, config_to_json, eval_seed, run_folder
from critix.train.guards import GUARD_METRICS
from critix.train.logging import MetricsLogger, plot_learning_curve
from critix.train.progress import Progress
from critix.types import CritixError

LOOP_METRICS = ("time/steps_per_second", "eval/return", "eval/return_std")
COUNTERS = ("wall_seconds", "train_seconds", "train_steps", "compile_seconds", "warmup_seconds",
            "skipped_transitions", "skipped_updates")


@dataclasses.dataclass
class Chunk:
    """What one `Stepper.advance` did."""

    steps: int
    """The run's step count after the chunk."""
    compiled: bool
    """The chunk compiled code in this process on its first call, so compiling and running cannot be told apart:
    all of its time counts as compile time, none as steady state."""
    timed: bool = True
    """Steady-state work, counted in steps/s (False for warm-up chunks of random actions)."""
    bad_transitions: int = 0
    """Non-finite transitions seen in the chunk (dropped under --on-nan skip)."""
    bad_updates: int = 0
    """Gradient steps with non-finite losses or parameters (discarded under --on-nan skip)."""
    compile_seconds: float = 0.0
    """Seconds of the chunk's wall time the stepper spent compiling ahead of time (trace, lower and compile, timed
    apart from running, as the compiled stepper does): they count as compile time and the rest of the chunk as a
    chunk that compiled nothing."""


@dataclasses.dataclass
class Output:
    """A run folder some of the members log to: the run's own folder, or one per grid point of a compiled grid."""

    run_dir: Path
    members: slice
    label: str = ""
    summary: dict[str, Any] = dataclasses.field(default_factory=dict)
    """Extra fields of this folder's summary.json."""


class Stepper(Protocol):
    """A training mode: its state, advanced one chunk at a time. Built from configs; `start` creates the state."""

    mode: str
    """summary.json's "mode": host, compiled or offline."""
    unit: str
    """What a step is, in messages: "env step" or "gradient step"."""
    env_id: str
    """The env the run acts or evaluates in."""
    description: str
    """Progress bar text."""
    total_steps: int
    """The step count the run ends at (whole chunks, vector steps or rollouts: may exceed --steps)."""
    num_members: int
    """Members trained together: seeds (x grid points in a compiled grid)."""

    def metric_names(self) -> list[str]:
        """The training metric columns `train_values` returns (the lifecycle adds its own)."""
        ...

    def start(self, restored: tuple[Path, dict[str, Any]] | None) -> int:
        """Create a fresh state, or load a checkpoint (path, meta); returns the step count."""
        ...

    def advance(self) -> Chunk:
        """Train one chunk."""
        ...

    def train_values(self) -> dict[str, np.ndarray]:
        """Training metrics to log now, name -> [members]; resets what accumulates between logs."""
        ...

    def evaluate(self, seed: int) -> np.ndarray:
        """Deterministic returns [members, eval_episodes]."""
        ...

    def greedy_actions(self, obs: np.ndarray) -> np.ndarray:
        """Deterministic agent actions [members, B, ...] for observations [members, B, *obs] (videos)."""
        ...

    def state(self) -> tuple[Any, dict[str, Any]]:
        """(array pytree, JSON meta) of everything a resume needs; meta["counters"] is merged with the run's."""
        ...

    def gradient_steps(self) -> int:
        ...

    def close(self) -> None:
        ...


Observer = Callable[["Lifecycle", int, "np.ndarray | None"], None]
"""Called after every chunk with the step count and, after an evaluation, its returns [members, episodes]."""


def execute(algo: str, agent_cfg: Any, run: RunSettings, make_stepper: Callable[[], Any],
            resume: Path | None = None, observers: tuple[Observer, ...] = ()) -> dict[str, Any]:
    """Train (or resume) a run with the stepper `make_stepper` builds; returns the summary (also summary.json).

    The stepper is built before the run folder is claimed, so invalid input fails before anything is written."""
    if run.video_every:  # MuJoCo picks its OpenGL backend when the envs import it
        video.prepare_backend(getattr(run, "env", None))
    cache_dir = compile_cache.enable()  # before anything compiles
    cache_start = compile_cache.counts()
    stepper = make_stepper()
    recorder = None
    try:
        if run.track == "wandb":
            tracking.require_wandb()
        # Videos: the render env is made, and one frame rendered, before the folder is claimed.
        recorder = video.Recorder.for_stepper(stepper, run.video_episodes) if run.video_every else None
        with runlock.claim(run_folder(algo, run, resume)) as run_dir:
            lifecycle = Lifecycle(algo, agent_cfg, run, stepper, run_dir, resume)
            lifecycle.observers.extend(observers)
            lifecycle.recorder = recorder
            lifecycle.cache_state = (cache_dir, cache_start)
            return lifecycle.train()
    finally:
        if recorder is not None:
            recorder.close()
        stepper.close()


class Lifecycle:
    """One run of a stepper in a claimed run folder."""

    def __init__(self, algo: str, agent_cfg: Any, run: RunSettings, stepper: Any, run_dir: Path,
                 resume: Path | None) -> None:
        self.algo, self.agent_cfg, self.run, self.stepper = algo, agent_cfg, run, stepper
        self.run_dir, self.resume = run_dir, resume
        self.ckpt_dir = run_dir / "checkpoints"
        self.counters: dict[str, Any] = {name: 0 for name in COUNTERS}
        self.counters.update(wall_seconds=0.0, train_seconds=0.0, compile_seconds=0.0, warmup_seconds=0.0)
        self.observers: list[Observer] = []
        self.recorder: video.Recorder | None = None
        self.cache_state: tuple[Path | None, dict[str, int]] = (None, compile_cache.counts())
        """The compile cache directory and the hit/miss counts when the run began (summary.json's compile_cache)."""
        self.trackers: list[Any] = []

    # ---- the run ---------------------------------------------------------------------------------------------
    def train(self) -> dict[str, Any]:
        try:
            summary = self._train()
        except BaseException:
            tracking.close_all(self.trackers, failed=True)
            raise
        tracking.close_all(self.trackers, failed=False)
        return summary

    def _train(self) -> dict[str, Any]:
        stepper, run = self.stepper, self.run
        found = checkpoint.latest_valid(self.ckpt_dir) if self.resume is not None else None  # warns about bad ones
        steps = stepper.start(found)
        if found is not None:
            saved = found[1].get("counters", {})
            self.counters.update({k: saved[k] for k in COUNTERS if k in saved})
        outputs = getattr(stepper, "outputs", lambda d: [Output(d, slice(0, stepper.num_members))])(self.run_dir)
        if found is None:
            checkpoint.atomic_write_json(self.run_dir / "config.json", config_to_json(self.algo, self.agent_cfg, run))
            if hasattr(stepper, "write_output_configs"):
                stepper.write_output_configs(outputs)
        # Rows and TensorBoard events after the checkpoint were written by the killed process: drop them.
        purge_step = steps + 1 if self.resume is not None else None
        columns = stepper.metric_names() + list(LOOP_METRICS) + list(getattr(stepper, "eval_metric_names", []))
        columns += list(GUARD_METRICS) if run.on_nan == "skip" else []
        loggers = []
        for out in outputs:
            out.run_dir.mkdir(parents=True, exist_ok=True)
            video.truncate_after(out.run_dir, steps)  # videos the killed process took after the checkpoint
            tracker = self._tracker(out) if run.track == "wandb" else None
            logger = MetricsLogger(out.run_dir, out.members.stop - out.members.start, sorted(set(columns)),
                                   run.tensorboard, purge_step=purge_step, tracker=tracker)
            logger.truncate_after(steps)
            loggers.append(logger)
        self.outputs, self.loggers = outputs, loggers

        total = stepper.total_steps
        eval_every, log_every = run.eval_every or total, run.log_every
        ckpt_every = run.checkpoint_every or eval_every
        self.start = time.perf_counter() - self.counters["wall_seconds"]
        final_returns: np.ndarray | None = None
        last_eval: float | None = None
        progress = Progress(total, stepper.description, enabled=run.progress)
        progress.start(steps)
        try:
            while steps < total:
                chunk_start = time.perf_counter()
                chunk = stepper.advance()
                elapsed = time.perf_counter() - chunk_start
                compiling = min(chunk.compile_seconds, elapsed)  # compiled ahead of time, timed apart
                self.counters["compile_seconds"] += compiling
                if chunk.compiled:
                    self.counters["compile_seconds"] += elapsed - compiling
                elif chunk.timed:
                    self.counters["train_seconds"] += elapsed - compiling
                    self.counters["train_steps"] += chunk.steps - steps
                else:
                    self.counters["warmup_seconds"] += elapsed - compiling
                prev, steps = steps, chunk.steps
                self._guard(chunk)
                done = steps >= total
                values: dict[str, np.ndarray] = {}
                if (log_every == 0 or steps // log_every > prev // log_every) or done:
                    values.update(self._train_values())
                returns = None
                if steps // eval_every > prev // eval_every or done:
                    returns = stepper.evaluate(eval_seed(run.seed, steps))
                    values.update(self._eval_values(returns))
                    last_eval = max(float(returns[o.members].mean()) for o in outputs)
                    final_returns = returns if done else None
                if values:
                    self._log(steps, values)
                if run.video_every and (steps // run.video_every > prev // run.video_every or done):
                    self._record(steps)
                for observe in self.observers:
                    observe(self, steps, returns)
                if steps // ckpt_every > prev // ckpt_every or done:
                    self._save(steps)
                sps = self.steps_per_second()
                progress.update(steps, sps if sps is not None else float("nan"), last_eval)
        finally:
            progress.stop()
            for logger in loggers:
                logger.close()
        self.counters["wall_seconds"] = time.perf_counter() - self.start
        if final_returns is None:  # resumed a run that had already finished: evaluate its final policy again
            final_returns = stepper.evaluate(eval_seed(run.seed, steps))
        return self._finish(steps, final_returns)

    # ---- pieces ----------------------------------------------------------------------------------------------
    def steps_per_second(self) -> float | None:
        """Steady-state steps per second per member: compile, warm-up and evaluation excluded."""
        seconds = self.counters["train_seconds"]
        return self.counters["train_steps"] / seconds if seconds else None

    def _guard(self, chunk: Chunk) -> None:
        """--on-nan stop: raise before any row or checkpoint of the bad chunk is written; skip: count."""
        if not (chunk.bad_transitions or chunk.bad_updates):
            return
        if self.run.on_nan == "stop":
            raise CritixError(nan_message(chunk, self.ckpt_dir, getattr(self.stepper, "unit", "step")))
        self.counters["skipped_transitions"] += chunk.bad_transitions
        self.counters["skipped_updates"] += chunk.bad_updates

    def _train_values(self) -> dict[str, np.ndarray]:
        members = self.stepper.num_members
        values = {name: np.asarray(v, np.float64) for name, v in self.stepper.train_values().items()}
        sps = self.steps_per_second()
        values["time/steps_per_second"] = np.full(members, np.nan if sps is None else sps)
        if self.run.on_nan == "skip":  # running totals, summed over members
            for name, counter in zip(GUARD_METRICS, ("skipped_transitions", "skipped_updates")):
                values[name] = np.full(members, float(self.counters[counter]))
        return values

    def _eval_values(self, returns: np.ndarray) -> dict[str, np.ndarray]:
        values = {"eval/return": returns.mean(axis=1), "eval/return_std": returns.std(axis=1)}
        if hasattr(self.stepper, "eval_values"):
            values.update(self.stepper.eval_values(returns))
        return values

    def _log(self, step: int, values: dict[str, np.ndarray]) -> None:
        wall = time.perf_counter() - self.start
        for out, logger in zip(self.outputs, self.loggers):
            logger.log(step, wall, {k: np.asarray(v)[out.members] for k, v in values.items()})

    def _tracker(self, out: Output) -> tracking.WandbTracker:
        """The W&B runs of an output folder, with its config.json; grouped by the folder's path."""
        group = out.run_dir.resolve().relative_to(self.run_dir.resolve().parent).as_posix()
        config = json.loads((out.run_dir / "config.json").read_text())
        tracker = tracking.WandbTracker(out.run_dir, out.members.stop - out.members.start, group,
                                        self.run.wandb_project, self.run.wandb_entity, config)
        self.trackers.append(tracker)
        return tracker

    def _record(self, steps: int) -> None:
        """Videos of each output's first member, from the evaluation seed of this step (`critix.train.video`)."""
        assert self.recorder is not None
        videos = self.recorder.record(self.stepper, [o.members.start for o in self.outputs],
                                      [o.run_dir for o in self.outputs], video.training_name(steps),
                                      eval_seed(self.run.seed, steps), self.run.eval_episodes)
        for logger, recorded in zip(self.loggers, videos):
            for clip in recorded if logger.tracker is not None else ():
                logger.tracker.log_video(0, clip.path, steps, clip.episode)

    def _save(self, step: int) -> None:
        self.counters["wall_seconds"] = time.perf_counter() - self.start
        for logger in self.loggers:
            logger.flush()
        arrays, meta = self.stepper.state()
        meta = {**meta, "counters": {**meta.get("counters", {}), **self.counters}, "algo": self.algo}
        checkpoint.save(self.ckpt_dir, step, arrays, meta, keep=self.run.keep_checkpoints)

    def _finish(self, steps: int, final_returns: np.ndarray) -> dict[str, Any]:
        stepper, summaries = self.stepper, []
        for out, logger in zip(self.outputs, self.loggers):
            title = f"{self.algo} on {stepper.env_id}" + (f" ({out.label})" if out.label else "")
            plotted = plot_learning_curve(out.run_dir / "metrics.csv", out.run_dir / "learning_curve.png",
                                          getattr(stepper, "plot_title", title))
            summary = self.summary(final_returns[out.members], steps, out.run_dir,
                                   {**out.summary, "videos": video.listed(out.run_dir)})
            checkpoint.atomic_write_json(out.run_dir / "summary.json", summary)
            summaries.append(summary)
            if logger.tracker is not None:
                if plotted:
                    logger.tracker.log_image("learning_curve", out.run_dir / "learning_curve.png", steps)
                logger.tracker.log_summary(summary)
        if len(self.outputs) == 1:
            return summaries[0]
        summary = stepper.combine(self.summary(final_returns, steps, self.run_dir), summaries, self.run_dir)
        checkpoint.atomic_write_json(self.run_dir / "summary.json", summary)
        return summary

    def summary(self, final_returns: np.ndarray, steps: int, run_dir: Path,
                extra: dict[str, Any] | None = None) -> dict[str, Any]:
        """summary.json of every mode. final_returns: [members, episodes] of the final deterministic evaluation."""
        stepper, run, c = self.stepper, self.run, self.counters
        per_member = final_returns.mean(axis=1)
        summary = {
            "algo": self.algo,
            "env": stepper.env_id,
            "mode": stepper.mode,
            "steps": steps,
            "num_seeds": run.num_seeds,
            "final_return": [float(x) for x in per_member],
            "final_return_mean": float(per_member.mean()),
            "final_return_std": float(per_member.std()),
            "eval_episodes": run.eval_episodes,
            "wall_seconds": c["wall_seconds"],
            "steps_per_second": self.steps_per_second(),
            "steps_per_second_note": getattr(stepper, "steps_note", "env steps per seed per second in steady state: "
                                                                    "compile, warm-up and eval excluded"),
            "compile_seconds": c["compile_seconds"],
            "compile_seconds_note": getattr(stepper, "compile_note", "wall time of the first call of each compiled "
                                                                      "chunk kind (compile and run)"),
            "train_seconds": c["train_seconds"],
            "train_seconds_note": "wall time of the chunks counted in steps_per_second",
            "warmup_seconds": c["warmup_seconds"],
            "warmup_seconds_note": "wall time of the warm-up chunks (random actions before learning starts) that "
                                   "compiled nothing: compile + train + warm-up seconds is the whole run's stepping",
            "gradient_steps": stepper.gradient_steps(),
            "skipped_transitions": c["skipped_transitions"],
            "skipped_updates": c["skipped_updates"],
            "critix_version": __version__,
            "critix_commit": source_commit(),
            "jax_version": jax.__version__,
            "device": str(jax.devices()[0]),
            "run_dir": str(run_dir),
        }
        cache_dir, start = self.cache_state
        summary["compile_cache"] = {"dir": None if cache_dir is None else str(cache_dir),
                                    **{k: v - start[k] for k, v in compile_cache.counts().items()}}
        if hasattr(stepper, "summary_values"):
            summary.update(stepper.summary_values(final_returns))
        summary.update(extra or {})
        return summary


def nan_message(chunk: Chunk, ckpt_dir: Path, unit: str) -> str:
    last = checkpoint.latest(ckpt_dir)
    found = []
    if chunk.bad_transitions:
        found.append(f"{chunk.bad_transitions} transition(s) with NaN/Inf observations or rewards (check the "
                     "environment or dataset)")
    if chunk.bad_updates:
        found.append(f"{chunk.bad_updates} update(s) with NaN/Inf losses or parameters (lower the learning rates, "
                     "set --max-grad-norm, or scale the rewards)")
    kept = f"the last good checkpoint, {last}, is kept" if last else "no checkpoint had been written yet"
    return (f"non-finite values in the chunk ending at {unit} {chunk.steps}: {'; '.join(found)}. Stopped; {kept}. "
            "Pass --on-nan skip to drop such transitions and updates and count them instead.")
