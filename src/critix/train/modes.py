"""Which training loop runs a (algorithm, env) pair: the env id and the agent choose the mode.

- `gymnax:<id>` (and `jax:<name>`) env ids run fully compiled (`critix.train.compiled`): rollout and update
  in one `lax.scan`;
- on-policy agents (PPO, A2C) on Gymnasium envs run the rollout loop `critix.train.onpolicy`;
- off-policy agents on Gymnasium envs run the replay loop `critix.train.online`.
Every mode writes the same run folder, so `critix eval` and `--resume` dispatch here too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from critix import agents
from critix.envs.jax_envs import is_jax_env
from critix.train.online import RunConfig
from critix.types import CritixError


def mode(algo: str, env_id: str) -> str:
    """'compiled', 'onpolicy' or 'online'."""
    if is_jax_env(env_id):
        return "compiled"
    return "onpolicy" if getattr(agents.get(algo).module, "ON_POLICY", False) else "online"


def _chosen(algo: str, run: RunConfig) -> str:
    chosen = mode(algo, run.env)
    if run.grid and chosen != "compiled":
        raise CritixError(f"--grid trains a hyperparameter grid inside one compiled run, which needs a JAX env id "
                          f"(e.g. gymnax:CartPole-v1); {run.env} runs on the host: train its grid with `critix "
                          f"sweep --grid ...` (docs/scaling.md)")
    return chosen


def train(algo: str, agent_cfg: Any, run: RunConfig, resume: Path | None = None) -> dict[str, Any]:
    """Train (or resume) a run in the mode its algorithm and env id choose."""
    chosen = _chosen(algo, run)
    if chosen == "compiled":
        from critix.train import compiled

        return compiled.train(algo, agent_cfg, run, resume)
    if chosen == "onpolicy":
        from critix.train import onpolicy

        return onpolicy.train(algo, agent_cfg, run, resume)
    from critix.train import online

    return online.train(algo, agent_cfg, run, resume)


def make_session(algo: str, agent_cfg: Any, run: RunConfig) -> Any:
    """The Session (envs + compiled functions; `restore_runner`, `evaluate`, `close`) of the run's mode."""
    chosen = _chosen(algo, run)
    if chosen == "compiled":
        from critix.train import compiled

        return compiled.Session(algo, agent_cfg, run)
    if chosen == "onpolicy":
        from critix.train import onpolicy

        return onpolicy.Session(algo, agent_cfg, run)
    from critix.train import online

    return online.Session(algo, agent_cfg, run)
