"""Run a sweep's trials on Ray, through Ray Tune, and keep the sweep's state in its folder.

Ray Tune places each trial (one `critix train ALGO --resume RUN_DIR` process) where the resources it asks for
(CPUs, a GPU fraction) are free, so the cluster's resources bound how many run at once; it retries a trial whose
process fails or dies (its node included) up to `max_retries` times, and critix's own resume continues the run
from its last checkpoint; the ASHA scheduler stops the worse configurations early.

The sweep's state lives in its folder, not in Ray: sweep.json (written by the driver, atomically, at every
trial event) and the run folders (a trial is finished once its summary.json exists). Ray Tune's own experiment
files (which contain pickles) go to a temporary folder that is removed afterwards; critix never reads them. So a
killed driver loses nothing: rerunning `critix sweep` skips the finished trials and resumes the others.

Each trial holds a lock on its run folder (inherited by its `critix train` process), so two processes never
train the same run folder at once, even when an old trial process is still shutting down as a new one starts.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ray
from ray import tune
from ray.exceptions import AuthenticationError

from critix.sweep.report import eval_points
from critix.sweep.spec import LOCK_FILE, ExecutionConfig, Manifest, SweepSpec, TrialRecord, now, plan
from critix.train import checkpoint, runlock
from critix.bench.runner import print_now
from critix.types import CritixError

TRIAL_LOCK_FILE = ".trial.lock"
TRIAL_LOG = "train.log"
ATTEMPT_MARK = "=== critix sweep:"
"""Starts the line train.log gets at every attempt at a trial (so the attempts can be counted from the folder)."""
LOCK_WAIT_SECONDS = 300.0


# ---- one trial, in a Ray worker -------------------------------------------------------------------------------------
def trial_env(cpus: float, gpus: float) -> dict[str, str]:
    """Environment of a trial's `critix train` process: threads matched to its CPUs, the GPU share it was given."""
    env = dict(os.environ)
    threads = str(max(1, int(cpus)))
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[name] = threads
    if int(cpus) <= 1 and "xla_cpu_multi_thread_eigen" not in env.get("XLA_FLAGS", ""):
        env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=false").strip()
    if gpus == 0:
        env["JAX_PLATFORMS"] = "cpu"  # Ray gave this trial no GPU: never touch one another trial was given
    elif gpus < 1:  # JAX would preallocate 75% of the GPU's memory and starve the trials sharing it
        env.setdefault("XLA_PYTHON_CLIENT_MEM_FRACTION", f"{0.9 * gpus:.3f}")
    return env


def last_log_line(run_dir: Path) -> str:
    """The last line `critix train` wrote to the trial's train.log (its error, when it failed)."""
    try:
        lines = (run_dir / TRIAL_LOG).read_text(errors="replace").splitlines()
    except OSError:
        return ""
    lines = [line.strip() for line in lines if line.strip() and not line.startswith(ATTEMPT_MARK)]
    return lines[-1][:500] if lines else ""


def train_trial(config: dict[str, Any]) -> None:
    """Ray Tune function trainable: train one trial with `critix train ALGO --resume RUN_DIR` in a child process
    (a fresh start when the run folder has no checkpoint yet), reporting each new evaluation to Tune."""
    trial = config["trial"]
    run_dir = Path(trial["run_dir"])
    if not (run_dir / "config.json").is_file():
        raise CritixError(f"{run_dir}/config.json is not visible on node {socket.gethostname()}: the sweep folder "
                          "must be on a filesystem every Ray node mounts (see docs/scaling.md)")
    reported = -1

    def report_new(running: bool) -> None:
        # The final evaluation is held back until the run has written its summary: a scheduler's STOP on the
        # last result would otherwise end the process before it finishes.
        nonlocal reported
        for step, value in eval_points(run_dir):
            if step > reported and not (running and step >= config["steps"]):
                tune.report({"env_steps": step, "eval_return": value})
                reported = step

    def busy() -> str:
        return f"{run_dir} is still being trained by another process after {LOCK_WAIT_SECONDS:.0f} s"

    with runlock.locked(run_dir / TRIAL_LOCK_FILE, LOCK_WAIT_SECONDS, busy) as lock_fd:
        code = 0
        if not (run_dir / "summary.json").is_file():
            command = [sys.executable, "-m", "critix.cli", "train", trial["algo"], "--resume", str(run_dir),
                       "--no-progress"]
            last = checkpoint.latest(run_dir / "checkpoints")
            start = f"resuming from {last.name}" if last is not None else "starting"
            with (run_dir / TRIAL_LOG).open("a") as log:
                log.write(f"{ATTEMPT_MARK} {now()} {start} on {socket.gethostname()}: critix train "
                          f"{' '.join(command[4:])}\n")
                log.flush()
                # The child inherits the lock: the run folder stays locked as long as it lives.
                process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                           env=trial_env(trial["cpus"], trial["gpus"]), pass_fds=(lock_fd,))
            try:
                while process.poll() is None:
                    report_new(running=True)
                    with contextlib.suppress(subprocess.TimeoutExpired):  # returns as soon as the run ends
                        process.wait(timeout=trial["poll_seconds"])
            finally:
                if process.poll() is None:
                    process.kill()
                code = process.wait()
        if code == 0:
            report_new(running=False)
    if code != 0:
        raise RuntimeError(f"critix train exited with code {code}: {last_log_line(run_dir)}")
    if reported < 0:  # finished before this attempt could read any evaluation
        tune.report({"env_steps": config["steps"], "eval_return": float("nan")})


def trial_name(trial: Any) -> str:
    """Ray Tune's name for a trial: the sweep's trial id."""
    return str(trial.config["trial"]["id"])


# ---- the driver ------------------------------------------------------------------------------------------------------
class ManifestCallback(tune.Callback):
    """Keeps sweep.json up to date from Ray Tune's trial events, and logs them."""

    def __init__(self, manifest: Manifest, log: Callable[[str], None]) -> None:
        self.manifest, self.log = manifest, log

    def _record(self, trial: Any) -> TrialRecord:
        return self.manifest.trial(trial.config["trial"]["id"])

    def on_trial_start(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        record = self._record(trial)
        record.status, record.attempts = "running", record.attempts + 1
        record.started_at = record.started_at or now()
        self.manifest.save()
        label = self.manifest.configs[record.config].label
        self.log(f"start {record.id} ({label}, seeds {record.seeds[0]}-{record.seeds[-1]}), attempt {record.attempts}")

    def on_trial_result(self, iteration: int, trials: list[Any], trial: Any, result: dict[str, Any],
                        **info: Any) -> None:
        self.log(f"  {self._record(trial).id}: env step {result['env_steps']}, evaluation return "
                 f"{result['eval_return']:.1f}")

    def on_trial_recover(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        record = self._record(trial)
        record.error = last_log_line(self.manifest.run_dir(record)) or "its process died"
        self.manifest.save()
        self.log(f"  {record.id} failed ({record.error}); retrying from its last checkpoint")

    def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        record = self._record(trial)
        record.status, record.ended_at = "failed", now()
        record.error = last_log_line(self.manifest.run_dir(record)) or "its process died"
        self.manifest.save()
        self.log(f"  {record.id} failed after {record.attempts} attempt(s): {record.error}")

    def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        record = self._record(trial)
        record.status = "finished" if self.manifest.finished(record) else "stopped"
        record.ended_at, record.error = now(), None
        self.manifest.save()
        self.log(f"  {record.id} {'finished' if record.status == 'finished' else 'stopped early by ASHA'}")


def _scheduler(spec: SweepSpec) -> Any:
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

    if spec.scheduler.name == "fifo":
        return FIFOScheduler()
    return ASHAScheduler(time_attr="env_steps", metric="eval_return", mode="max", max_t=spec.steps,
                         grace_period=spec.scheduler.grace_period, reduction_factor=spec.scheduler.reduction_factor)


def _connect(execution: ExecutionConfig) -> bool:
    """Start or join Ray; True if this call started it (and so must shut it down)."""
    if ray.is_initialized():  # e.g. a test or a notebook that started Ray itself
        return False
    num_cpus = None if execution.address else execution.num_cpus or os.cpu_count() or 1
    try:
        # "local": a new instance for this sweep, even where `ray start` left a cluster (which ray.init() would join)
        ray.init(address=execution.address or "local", num_cpus=num_cpus, include_dashboard=False,
                 log_to_driver=False, logging_level=logging.WARNING)
    except (ConnectionError, AuthenticationError) as err:
        raise CritixError(f"cannot join the Ray cluster at {execution.address}: {err}. Is `ray start --head` running "
                          "there, with the same Ray version and token (docs/scaling.md)? On a machine of the "
                          "cluster, --address auto finds it") from None
    return True


def _check_resources(execution: ExecutionConfig) -> int:
    """The cluster can run at least one trial; returns how many can run at once."""
    have = ray.cluster_resources()
    cpus, gpus = have.get("CPU", 0.0), have.get("GPU", 0.0)
    if execution.cpus_per_trial > cpus:
        raise CritixError(f"each trial asks for {execution.cpus_per_trial:g} CPUs but the Ray cluster has {cpus:g}; "
                          "lower --cpus-per-trial or add machines")
    if execution.gpus_per_trial > gpus:
        raise CritixError(f"each trial asks for {execution.gpus_per_trial:g} GPUs but the Ray cluster has {gpus:g}; "
                          "lower --gpus-per-trial (0 trains on CPUs) or add GPU machines")
    slots = int(cpus // execution.cpus_per_trial)
    if execution.gpus_per_trial:
        slots = min(slots, int(gpus // execution.gpus_per_trial))
    return min(slots, execution.max_concurrent) if execution.max_concurrent else slots


def run_sweep(spec: SweepSpec, out: Path, execution: ExecutionConfig, command: str,
              log: Callable[[str], None] = print_now) -> Manifest:
    """Plan the sweep in `out` (or pick it up where it stopped) and train every unfinished trial on Ray; returns
    the manifest. Trials stopped early by ASHA stay stopped; failed ones are retried by the next invocation."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    def busy() -> str:
        return f"another `critix sweep` is running on {out}; wait for it to end or stop it first"

    with runlock.locked(out / LOCK_FILE, 0.0, busy):
        manifest = plan(spec, out)
        todo = [t for t in manifest.trials if t.status not in ("finished", "stopped")]
        done = len(manifest.trials) - len(todo)
        log(f"sweep {spec.algo} on {spec.env}: {len(manifest.configs)} configurations x {len(spec.seeds)} seeds in "
            f"{len(manifest.trials)} trials ({done} finished or stopped, {len(todo)} to run); folder {out}")
        invocation: dict[str, Any] = {"command": command, "started_at": now(), "trials_to_run": len(todo)}
        manifest.invocations.append(invocation)
        manifest.save()
        start = time.perf_counter()
        if todo:
            started = _connect(execution)
            try:
                slots = _check_resources(execution)
                where = execution.address or f"a local Ray instance ({ray.cluster_resources().get('CPU', 0):g} CPUs)"
                log(f"Ray {ray.__version__} on {where}: up to {slots} trials at once, {execution.cpus_per_trial:g} "
                    f"CPU(s) and {execution.gpus_per_trial:g} GPU(s) each")
                _fit(spec, manifest, todo, execution, log)
            finally:
                if started:
                    ray.shutdown()
        for trial in manifest.trials:  # the run folders are the truth (e.g. a trial finished as Tune stopped)
            if manifest.finished(trial):
                trial.status = "finished"
        invocation.update(ended_at=now(), wall_seconds=round(time.perf_counter() - start, 1))
        manifest.save()
    return manifest


def tune_storage(out: Path) -> Path:
    """Where Ray Tune keeps its experiment state for the sweep in `out`: a temporary folder (outside the sweep
    folder: it holds pickles), one per sweep folder, so a rerun removes what a killed driver left."""
    digest = hashlib.sha256(str(Path(out).resolve()).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"critix-sweep-tune-{digest}"


def _fit(spec: SweepSpec, manifest: Manifest, todo: list[TrialRecord], execution: ExecutionConfig,
         log: Callable[[str], None]) -> None:
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # Tune's console tables off: ManifestCallback logs instead
    os.environ.setdefault("TUNE_WARN_THRESHOLD_S", "10")  # Tune's "took 0.6 s" notices: noise at a few results/min
    payloads = [{"id": t.id, "run_dir": str(manifest.run_dir(t).resolve()), "algo": spec.algo,
                 "cpus": execution.cpus_per_trial, "gpus": execution.gpus_per_trial,
                 "poll_seconds": execution.poll_seconds} for t in todo]
    storage = tune_storage(manifest.out)
    shutil.rmtree(storage, ignore_errors=True)  # left by a killed driver of this sweep
    try:
        tuner = tune.Tuner(
            tune.with_resources(train_trial, {"cpu": execution.cpus_per_trial, "gpu": execution.gpus_per_trial}),
            param_space={"trial": tune.grid_search(payloads), "steps": spec.steps},
            # reuse_actors: the next trial runs in the finished one's worker process (no new process and imports)
            tune_config=tune.TuneConfig(scheduler=_scheduler(spec), max_concurrent_trials=execution.max_concurrent
                                        or None, reuse_actors=True, trial_name_creator=trial_name,
                                        trial_dirname_creator=trial_name),
            run_config=tune.RunConfig(name="critix-sweep", storage_path=str(storage), verbose=0,
                                      failure_config=tune.FailureConfig(max_failures=execution.max_retries),
                                      callbacks=[ManifestCallback(manifest, log)]),
        )
        tuner.fit()
    finally:
        shutil.rmtree(storage, ignore_errors=True)
