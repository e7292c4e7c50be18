"""Agents: one module per algorithm family, each exporting Config, State, init, act, update, update_many.

`REGISTRY` maps a CLI algorithm name to its module and default config (variants are configs, not copies).
"""

from __future__ import annotations

import dataclasses
from types import ModuleType
from typing import Any

from critix.agents import bc, cql, dqn, iql, ppo, sac, sac_discrete, td3, tqc
from critix.types import CritixError
from critix.values.heads import HeadConfig


@dataclasses.dataclass(frozen=True)
class AgentSpec:
    name: str
    module: ModuleType
    default_config: Any
    summary: str
    variant_run_defaults: dict[str, tuple[Any, str]] = dataclasses.field(default_factory=dict)
    """Run settings where this variant departs from its module's RUN_DEFAULTS: name -> (value, source)."""

    @property
    def run_defaults(self) -> dict[str, tuple[Any, str]]:
        """The run settings (learning starts, update ratio, buffer size, rollout length) this algorithm starts
        from unless the command line sets them: name -> (value, meaning and source)."""
        return {**getattr(self.module, "RUN_DEFAULTS", {}), **self.variant_run_defaults}


REGISTRY: dict[str, AgentSpec] = {
    "sac": AgentSpec("sac", sac, sac.Config(), "Soft Actor-Critic, twin critics, automatic temperature (#50, #53)"),
    "td3": AgentSpec("td3", td3, td3.Config(), "Twin Delayed DDPG (#98)"),
    "ddpg": AgentSpec("ddpg", td3, td3.Config.ddpg(), "Deep Deterministic Policy Gradient (#81), a td3 config"),
    "tqc": AgentSpec("tqc", tqc, tqc.Config(),
                     "Truncated Quantile Critics (Kuznetsov et al. 2020, not numbered in PAPERS.md), SAC-based"),
    "dqn": AgentSpec("dqn", dqn, dqn.Config(), "DQN with double Q, dueling, n-step and any value head (--critic-head)"),
    "c51": AgentSpec("c51", dqn, dqn.Config(value_head=HeadConfig("c51", v_min=-10.0, v_max=10.0, num_bins=51)),
                     "C51 categorical DQN (#217), a dqn config"),
    "qr-dqn": AgentSpec("qr-dqn", dqn, dqn.Config(value_head=HeadConfig("quantile", num_bins=50)),
                        "QR-DQN quantile regression DQN (Dabney et al. 2018), a dqn config"),
    "sac-discrete": AgentSpec("sac-discrete", sac_discrete, sac_discrete.Config(),
                              "Soft Actor-Critic for discrete actions (#55)"),
    # Offline RL (train with --dataset PATH; see docs/offline.md).
    "bc": AgentSpec("bc", bc, bc.Config(), "Behaviour cloning (offline baseline)"),
    "td3bc": AgentSpec("td3bc", td3, td3.Config.td3bc(), "TD3+BC, offline TD3 with a BC term (a td3 config)",
                       {"learning_starts": (0, "Env steps before updates when fine-tuning online (0: the buffer "
                                               "starts filled with the dataset).")}),
    "cql": AgentSpec("cql", cql, cql.Config(), "Conservative Q-Learning, SAC-based, optional Lagrange (offline)"),
    "iql": AgentSpec("iql", iql, iql.Config(), "Implicit Q-Learning, expectile value loss (offline, #78 lineage)"),
    "xql": AgentSpec("xql", iql, iql.Config.xql(), "Extreme Q-Learning, Gumbel value loss (offline), an iql config"),
    "fdvl": AgentSpec("fdvl", iql, iql.Config.fdvl(), "f-DVL, Dual-RL chi-square value loss (#0, offline), an iql config"),
    "ppo": AgentSpec("ppo", ppo, ppo.Config(), "Proximal Policy Optimisation with GAE (#240), on-policy"),
    "a2c": AgentSpec("a2c", ppo, ppo.Config.a2c(), "Advantage actor-critic, synchronous A3C (#85), a ppo config",
                     {"rollout_length": (5, "Env steps per env in each rollout (SB3 A2C n_steps: 5).")}),
}


def get(name: str) -> AgentSpec:
    if name not in REGISTRY:
        raise CritixError(f"unknown algorithm {name!r}; choose one of {', '.join(sorted(REGISTRY))} (see `critix list`)")
    return REGISTRY[name]
