"""Experiment tracking (`--track wandb`): Weights & Biases receives what the run folder receives.

A `WandbTracker` is one more sink of `critix.train.logging.MetricsLogger` (every metrics.csv row, under the same
names and steps), plus the run folder's config.json, the learning curve, the videos and summary.json's final
figures. It keeps one W&B run per seed, grouped by the run folder, as TensorBoard keeps one folder per seed: the
names stay those of metrics.csv and W&B draws the group's seeds together.

- The W&B files live in RUN_DIR/wandb/; `RUN_DIR/wandb/critix.json` keeps the W&B run ids, so a resumed run
  continues the same W&B runs (resume="allow"). Rows the killed process had logged after the checkpoint are already
  in W&B; W&B keeps those and ignores the resumed run's repeats of steps it has (critix resumes exactly, so they
  hold the same values).
- Mode: WANDB_MODE if set; else online where an API key is configured (WANDB_API_KEY, or `wandb login`'s
  ~/.netrc entry), else offline, with no network, to upload later with `wandb sync` (the log line says how).
"""

from __future__ import annotations

import json
import math
import netrc
import os
import secrets
import sys
import urllib.parse
from pathlib import Path
from typing import Any

import numpy as np

from critix.files import atomic_write_json
from critix.types import CritixError

STATE_FILE = "critix.json"
FOLDER = "wandb"
INSTALL = "pip install 'critix[wandb]'"


def require_wandb() -> Any:
    """The wandb module, or a CritixError naming the extra to install."""
    try:
        import wandb
    except ImportError as err:
        raise CritixError(f"--track wandb needs the wandb package: {INSTALL} ({err})") from None
    return wandb


def has_api_key() -> bool:
    """A W&B API key is configured: WANDB_API_KEY, an identity token file, or `wandb login`'s netrc entry."""
    if os.environ.get("WANDB_API_KEY") or os.environ.get("WANDB_IDENTITY_TOKEN_FILE"):
        return True
    host = urllib.parse.urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname or ""
    path = os.environ.get("NETRC") or os.path.join(os.path.expanduser("~"), ".netrc")
    try:
        return netrc.netrc(path).authenticators(host) is not None
    except (OSError, netrc.NetrcParseError):
        return False


def wandb_mode() -> str:
    """WANDB_MODE if set, else "online" with an API key and "offline" without."""
    return os.environ.get("WANDB_MODE") or ("online" if has_api_key() else "offline")


class WandbTracker:
    """The W&B runs of one run folder (one per seed), as a sink of metrics, media and the summary."""

    def __init__(self, run_dir: Path, num_seeds: int, group: str, project: str, entity: str | None,
                 config: dict[str, Any]) -> None:
        wandb = require_wandb()
        self.run_dir, self.folder = Path(run_dir), Path(run_dir) / FOLDER
        self.folder.mkdir(parents=True, exist_ok=True)
        state = self._state(num_seeds, group, project, entity)
        self.mode = wandb_mode()
        # No stdout capture (the progress bar), no system metrics, and our own log line instead of W&B's.
        settings = wandb.Settings(console="off", x_disable_stats=True, silent=True)
        self.runs: list[Any] = []
        try:
            for seed, run_id in enumerate(state["ids"]):
                self.runs.append(wandb.init(
                    project=state["project"], entity=state["entity"], group=state["group"],
                    name=f"{state['group']} seed {seed}", id=run_id, resume="allow", dir=str(self.run_dir),
                    mode=self.mode, reinit="create_new", config={**config, "seed": seed}, settings=settings))
        except Exception as err:  # wandb raises its own types (UsageError, CommError ...)
            self.close(failed=True)
            raise CritixError(f"W&B could not start its run in {self.folder} ({type(err).__name__}: {err}); check "
                              "WANDB_* settings, or set WANDB_MODE=offline to log without network") from None
        print(self.note(), file=sys.stderr)

    def _state(self, num_seeds: int, group: str, project: str, entity: str | None) -> dict[str, Any]:
        """RUN_DIR/wandb/critix.json: the W&B run ids of this folder (new ones for a fresh run)."""
        path = self.folder / STATE_FILE
        try:
            state = json.loads(path.read_text())
            if isinstance(state, dict) and isinstance(state.get("ids"), list) and len(state["ids"]) == num_seeds:
                return state
        except (OSError, ValueError):
            pass
        prefix = secrets.token_hex(4)
        state = {"project": project, "entity": entity, "group": group,
                 "ids": [f"{prefix}-{seed}" for seed in range(num_seeds)]}
        atomic_write_json(path, state)
        return state

    def note(self) -> str:
        if self.mode == "offline":
            why = "WANDB_MODE=offline" if os.environ.get("WANDB_MODE") else "no API key configured"
            return (f"critix: W&B logs offline into {self.folder} ({why}); upload it later with "
                    f"`wandb sync {self.folder}/offline-run-*`")
        return f"critix: W&B logs {self.mode} into {self.folder} ({len(self.runs)} runs, one per seed)"

    def log(self, step: int, per_seed: dict[str, np.ndarray]) -> None:
        """One metrics.csv step: metric name -> [S]; non-finite values are left out (empty cells in the CSV)."""
        for seed, run in enumerate(self.runs):
            values = {name: float(np.asarray(v)[seed]) for name, v in per_seed.items()}
            values = {name: v for name, v in values.items() if math.isfinite(v)}
            if values:
                run.log(values, step=step)

    def log_video(self, seed: int, path: Path, step: int, episode: int = 0) -> None:
        """A video of seed `seed`'s agent, as W&B media ("video", "video_episode_1" ...)."""
        import wandb

        key = "video" if episode == 0 else f"video_episode_{episode}"
        self.runs[seed].log({key: wandb.Video(str(path), format=path.suffix.lstrip("."))}, step=step)

    def log_image(self, key: str, path: Path, step: int) -> None:
        """An image of the whole run (the learning curve) in every seed's W&B run."""
        import wandb

        for run in self.runs:
            run.log({key: wandb.Image(str(path))}, step=step)

    def log_summary(self, summary: dict[str, Any]) -> None:
        """summary.json's scalar fields under their names, and "final_return" as the seed's own."""
        for seed, run in enumerate(self.runs):
            for key, value in summary.items():
                if isinstance(value, (int, float, str)):
                    run.summary[key] = value
            finals = summary.get("final_return")
            if isinstance(finals, list) and seed < len(finals):
                run.summary["final_return"] = finals[seed]

    def close(self, failed: bool = False) -> None:
        for run in self.runs:
            run.finish(exit_code=1 if failed else 0)
        self.runs = []


def close_all(trackers: list[WandbTracker], failed: bool) -> None:
    """Finish every tracker's W&B runs, then end W&B's session in this process unless the caller has a W&B run of
    its own going (`wandb.run`): W&B completes the files in RUN_DIR/wandb only when its session ends (else at
    exit), and a run folder is complete when `train` returns."""
    for tracker in trackers:
        tracker.close(failed)
    if trackers:
        import wandb

        if wandb.run is None:
            wandb.teardown()
