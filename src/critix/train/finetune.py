"""Offline-to-online fine-tuning (`critix train ALGO --init-from OFFLINE_RUN_DIR`): an offline run's agents (all
its seeds) continue in their env with the off-policy host stepper, each seed's replay buffer starting with the
whole dataset."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp

from critix.data import replay
from critix.data.datasets import read_dataset
from critix.train import checkpoint
from critix.train.config import RunConfig, load_run_config, resolve
from critix.train.offpolicy import OffPolicy
from critix.train.run import execute
from critix.types import CritixError


def finetune(init_from: Path, run: RunConfig) -> dict[str, Any]:
    """Continue the agents of offline run `init_from` online in their env (`critix train ALGO --init-from DIR`).

    Each seed's replay buffer starts with the whole dataset (capacity: dataset + `run.steps`), the agent states
    come from the offline run's last checkpoint, and the off-policy host stepper (`critix.train.offpolicy`) does the rest.
    """
    init_from = Path(init_from)
    algo, agent_cfg, offline_run = load_run_config(init_from)
    if offline_run.normalize_obs or offline_run.normalize_reward:
        raise CritixError(f"{init_from} was trained with --normalize-obs/--normalize-reward; offline-to-online "
                          "needs the raw observation and reward scale (train offline without them)")
    last = checkpoint.latest(init_from / "checkpoints")
    if last is None:
        raise CritixError(f"{init_from} has no complete checkpoint to continue from")
    data = read_dataset(offline_run.dataset).transitions()
    env = run.env if run.env != RunConfig().env else (offline_run.env or _env_of(offline_run.dataset))
    env_kwargs = run.env_kwargs
    if env != run.env and not offline_run.env and not env_kwargs:  # the dataset's env, made as the data's was
        env_kwargs = read_dataset(offline_run.dataset).env_kwargs
    S = offline_run.num_seeds
    run = resolve(algo, dataclasses.replace(run, env=env, env_kwargs=env_kwargs, num_seeds=S))
    capacity = int(data.reward.shape[0]) + run.steps
    run = dataclasses.replace(run, buffer_size=max(run.buffer_size or 0, capacity))

    def initial(stepper: OffPolicy) -> None:
        arrays, _ = checkpoint.load(last, {"agent": stepper.agent, "key": stepper.key})
        items = jax.tree.map(lambda x: jnp.broadcast_to(jnp.asarray(x), (S, *x.shape)), data)
        stepper.agent = jax.device_put(arrays["agent"])
        stepper.buffer = jax.jit(jax.vmap(replay.add))(stepper.buffer, items)

    return execute(algo, agent_cfg, run, lambda: OffPolicy(algo, agent_cfg, run, capacity, initial))


def _env_of(dataset: str) -> str:
    env_id = read_dataset(dataset).env_id
    if env_id is None:
        raise CritixError(f"{dataset} records no env_spec; name the env with --env ENV")
    return env_id
