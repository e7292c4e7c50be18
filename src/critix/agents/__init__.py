"""Agents: one module per algorithm family, each exporting Config, State, init, act, update, update_many.

`REGISTRY` maps a CLI algorithm name to its module and default config (variants are configs, not copies).
"""

from __future__ import annotations

import dataclasses
from types import ModuleType
from typing import Any

from critix.agents import bc, cql, dqn, iql, ppo, sac, sac_discrete, td3, tqc
from critix.types import CritixError


@dataclasses.dataclass(frozen=True)
class AgentSpec:
    name: str
    module: ModuleType
    default_config: Any
    summary: str


REGISTRY: dict[str, AgentSpec] = {
    "sac": AgentSpec("sac", sac, sac.Config(), "Soft Actor-Critic, twin critics, automatic temperature (#50, #53)"),
    "td3": AgentSpec("td3", td3, td3.Config(), "Twin Delayed DDPG (#98)"),
    "ddpg": AgentSpec("ddpg", td3, td3.Config.ddpg(), "Deep Deterministic Policy Gradient (#81), a td3 config"),
    "tqc": AgentSpec("tqc", tqc, tqc.Config(),
                     "Truncated Quantile Critics (Kuznetsov et al. 2020, not numbered in PAPERS.md), SAC-based"),
    "dqn": AgentSpec("dqn", dqn, dqn.Config(), "DQN with double Q, dueling, n-step and any value head (--critic-head)"),
    "c51": AgentSpec("c51", dqn, dqn.Config(critic_head="c51", v_min=-10.0, v_max=10.0, num_bins=51),
                     "C51 categorical DQN (#217), a dqn config"),
    "qr-dqn": AgentSpec("qr-dqn", dqn, dqn.Config(critic_head="quantile", num_bins=50),
                        "QR-DQN quantile regression DQN (Dabney et al. 2018), a dqn config"),
    "sac-discrete": AgentSpec("sac-discrete", sac_discrete, sac_discrete.Config(),
                              "Soft Actor-Critic for discrete actions (#55)"),
    # Offline RL (train with --dataset PATH; see docs/offline.md).
    "bc": AgentSpec("bc", bc, bc.Config(), "Behaviour cloning (offline baseline)"),
    "td3bc": AgentSpec("td3bc", td3, td3.Config.td3bc(), "TD3+BC, offline TD3 with a BC term (a td3 config)"),
    "cql": AgentSpec("cql", cql, cql.Config(), "Conservative Q-Learning, SAC-based, optional Lagrange (offline)"),
    "iql": AgentSpec("iql", iql, iql.Config(), "Implicit Q-Learning, expectile value loss (offline, #78 lineage)"),
    "xql": AgentSpec("xql", iql, iql.Config.xql(), "Extreme Q-Learning, Gumbel value loss (offline), an iql config"),
    "fdvl": AgentSpec("fdvl", iql, iql.Config.fdvl(), "f-DVL, Dual-RL chi-square value loss (#0, offline), an iql config"),
    "ppo": AgentSpec("ppo", ppo, ppo.Config(), "Proximal Policy Optimisation with GAE (#240), on-policy"),
    "a2c": AgentSpec("a2c", ppo, ppo.Config.a2c(), "Advantage actor-critic, synchronous A3C (#85), a ppo config"),
}


def get(name: str) -> AgentSpec:
    if name not in REGISTRY:
        raise CritixError(f"unknown algorithm {name!r}; choose one of {', '.join(sorted(REGISTRY))} (see `critix list`)")
    return REGISTRY[name]
