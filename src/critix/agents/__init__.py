"""Agents: one module per algorithm family, each exporting Config, State, init, act, update, update_many.

`REGISTRY` maps a CLI algorithm name to its module and default config (variants are configs, not copies).
"""

from __future__ import annotations

import dataclasses
from types import ModuleType
from typing import Any

from critix.agents import dqn, sac, sac_discrete, td3
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
    "dqn": AgentSpec("dqn", dqn, dqn.Config(), "DQN with double Q, dueling, n-step and any value head (--critic-head)"),
    "c51": AgentSpec("c51", dqn, dqn.Config(critic_head="c51", v_min=-10.0, v_max=10.0, num_bins=51),
                     "C51 categorical DQN (#217), a dqn config"),
    "qr-dqn": AgentSpec("qr-dqn", dqn, dqn.Config(critic_head="quantile", num_bins=50),
                        "QR-DQN quantile regression DQN (Dabney et al. 2018), a dqn config"),
    "sac-discrete": AgentSpec("sac-discrete", sac_discrete, sac_discrete.Config(),
                              "Soft Actor-Critic for discrete actions (#55)"),
}


def get(name: str) -> AgentSpec:
    if name not in REGISTRY:
        raise CritixError(f"unknown algorithm {name!r}; choose one of {', '.join(sorted(REGISTRY))} (see `critix list`)")
    return REGISTRY[name]
