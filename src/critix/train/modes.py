"""Which stepper trains a run: the run's config, its env id and the agent's kind choose the mode.

- an `OfflineRunConfig` (`--dataset`) trains on a dataset (`critix.train.offline`);
- `gymnax:<id>` (and `jax:<name>`) env ids run fully compiled (`critix.train.compiled`): rollout and update
  in one `lax.scan`;
- on-policy agents (PPO, A2C) on Gymnasium envs run the rollout stepper `critix.train.onpolicy`;
- every other agent on a Gymnasium env runs the replay stepper `critix.train.offpolicy`.
Every mode runs on the one lifecycle (`critix.train.run`) and writes the same run folder, so `critix eval` and
`--resume` dispatch here too.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

from critix import agents
from critix.agents import contract
from critix.envs.gym import register_callable
from critix.envs.jax_envs import is_jax_env
from critix.train.config import OfflineRunConfig, RunConfig, RunSettings, read_config_json, resolve
from critix.train.run import execute
from critix.types import CritixError


def mode(algo: str, run: RunSettings) -> str:
    """'offline', 'compiled', 'onpolicy' or 'offpolicy'."""
    if isinstance(run, OfflineRunConfig):
        return "offline"
    assert isinstance(run, RunConfig)
    if is_jax_env(run.env):
        if run.env_kwargs:
            raise CritixError(f"--env-kwargs go to gymnasium.make; {run.env} is a JAX env of the compiled mode, "
                              "made without them: drop --env-kwargs (or register a JaxEnv with its settings, "
                              "docs/environments.md)")
        chosen = "compiled"
    else:
        chosen = "onpolicy" if contract.kind(agents.get(algo).module) == "on-policy" else "offpolicy"
    if run.overlap_updates and chosen != "offpolicy":
        where = f"{run.env} runs compiled" if chosen == "compiled" else f"{algo} is on-policy"
        raise CritixError(f"--overlap-updates overlaps an off-policy host loop's updates with its env steps; {where}: "
                          f"drop the flag")
    if chosen == "compiled":
        return chosen
    if run.grid:
        raise CritixError(f"--grid trains a hyperparameter grid inside one compiled run, which needs a JAX env id "
                          f"(e.g. gymnax:CartPole-v1); {run.env} runs on the host: train its grid with `critix "
                          f"sweep --grid ...` (docs/scaling.md)")
    return chosen


def make_stepper(algo: str, agent_cfg: Any, run: RunSettings) -> Any:
    """The stepper of the run's mode (envs, data and compiled functions; `start` creates its state). Loop settings
    left at None take the algorithm's defaults."""
    run = resolve(algo, run)
    chosen = mode(algo, run)
    if chosen == "offline":
        from critix.train.offline import Offline

        return Offline(algo, agent_cfg, run)  # type: ignore[arg-type]
    if chosen == "compiled":
        from critix.train.compiled import Compiled

        return Compiled(algo, agent_cfg, run)  # type: ignore[arg-type]
    if chosen == "onpolicy":
        from critix.train.onpolicy import OnPolicy

        return OnPolicy(algo, agent_cfg, run)  # type: ignore[arg-type]
    from critix.train.offpolicy import OffPolicy

    return OffPolicy(algo, agent_cfg, run)  # type: ignore[arg-type]


def train(algo: str, agent_cfg: Any, run: RunSettings, resume: Path | None = None,
          env: Callable[..., Any] | None = None) -> dict[str, Any]:
    """Train (or resume from `resume`, a run folder) in the mode the run and algorithm choose; returns the summary
    that is also written to summary.json.

    env: an environment critix does not know, as a callable returning a gymnasium.Env (an Env class or a
    function; it receives `run.env_kwargs`). The run records it as `callable/<module>.<name>` in `run.env`;
    resuming it needs the same callable passed again (config.json cannot rebuild it)."""
    if env is not None:
        run = with_callable_env(run, env, resume)
    run = resolve(algo, run)  # config.json records the loop settings the run used
    mode(algo, run)  # refuses an impossible combination before anything is built
    return execute(algo, agent_cfg, run, lambda: make_stepper(algo, agent_cfg, run), resume)


def with_callable_env(run: RunSettings, env: Callable[..., Any], resume: Path | None) -> RunConfig:
    """`run` training on the env `env` makes (registered as callable/<module>.<name> in this process); a resumed
    run must have been trained on the same callable."""
    if not isinstance(run, RunConfig):
        raise CritixError("env=callable is for runs in an environment (RunConfig); an offline run evaluates in the "
                          "env of its dataset, named with OfflineRunConfig.env")
    if is_jax_env(run.env):
        raise CritixError(f"env=callable makes a Gymnasium env for the host loops; {run.env} is a JAX env id. A "
                          "JAX env of your own: critix.envs.jax_envs.register(name, factory), then env='jax:<name>'")
    env_id = register_callable(env)
    if resume is not None:
        saved = read_config_json(Path(resume)).get("run", {})
        recorded = saved.get("env") if isinstance(saved, dict) else None
        if recorded != env_id:
            raise CritixError(f"{resume} was trained on {recorded!r}, not on {env_id!r}: resume it with the callable "
                              f"it was trained on")
    return dataclasses.replace(run, env=env_id)
