"""Agents: one module per algorithm family, each exporting Config, State, init, act, update, update_many.

`REGISTRY` maps a CLI algorithm name to its module and default config (variants are configs, not copies).
"""

from __future__ import annotations

import dataclasses
from types import ModuleType
from typing import Any

from critix.agents import sac, td3
from critix.agents import ppo  # on-policy (issue 3)
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
    "ppo": AgentSpec("ppo", ppo, ppo.Config(), "Proximal Policy Optimisation with GAE (#240), on-policy"),
    "a2c": AgentSpec("a2c", ppo, ppo.Config.a2c(), "Advantage actor-critic, synchronous A3C (#85), a ppo config"),
}


def get(name: str) -> AgentSpec:
    if name not in REGISTRY:
        raise CritixError(f"unknown algorithm {name!r}; choose one of {', '.join(sorted(REGISTRY))} (see `critix list`)")
    return REGISTRY[name]
