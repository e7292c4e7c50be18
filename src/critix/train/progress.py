"""A rich progress bar showing env steps per seed, steps/s and the latest evaluation return."""

from __future__ import annotations

import math

from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.progress import Progress as RichProgress


class Progress:
    def __init__(self, total: int, description: str, enabled: bool = True) -> None:
        self.enabled = enabled
        self.total = total
        self.description = description
        self._bar: RichProgress | None = None
        self._task = None

    def start(self, completed: int) -> None:
        if not self.enabled:
            return
        self._bar = RichProgress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[sps]} steps/s"),
            TextColumn("eval {task.fields[ret]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
        )
        self._bar.start()
        self._task = self._bar.add_task(self.description, total=self.total, completed=completed, sps="-", ret="-")

    def update(self, completed: int, steps_per_second: float, eval_return: float | None) -> None:
        if self._bar is None:
            return
        sps = "-" if not math.isfinite(steps_per_second) else f"{steps_per_second:,.0f}"
        ret = "-" if eval_return is None else f"{eval_return:.1f}"
        self._bar.update(self._task, completed=completed, sps=sps, ret=ret)

    def stop(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
