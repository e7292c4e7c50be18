"""Training: one run lifecycle (`run.py`) and a stepper per mode; `train` picks the mode of a run.

    from critix.train import RunConfig, train
    summary = train("sac", sac.Config(), RunConfig(env="Pendulum-v1", steps=20_000, num_seeds=3))
"""

from critix.train.config import OfflineRunConfig, RunConfig
from critix.train.modes import train

__all__ = ["OfflineRunConfig", "RunConfig", "train"]
