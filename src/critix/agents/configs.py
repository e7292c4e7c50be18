"""Field blocks the agent Configs share, and the checks every agent Config runs.

Every agent's Config is an `AgentConfig` (MLP hidden layers and activation) and inherits the blocks it has:
`ActorCritic` (critic ensemble, learning rates, discount, target rate, minibatch), `GradientClip`,
`CriticHead` (the critics' value head) and `Temperature` (the entropy temperature of the SAC family). An agent
redeclares a field only where its default, or the source of its default, differs from what its class docstring
names ("Defaults: ... unless a field says otherwise"). `critix list` and the command-line help read each field's
docstring from the class that declares it. Fields come in `dataclasses` order: AgentConfig's, then those of the
blocks from the last base listed to the first, then the agent's own.

`AgentConfig.__post_init__` checks the field types, then the range of every field several agents share, wherever
it is declared (`SHARED_RANGES`, and every learning rate `*_lr`); an agent's `__post_init__` calls it first and
then checks its own fields.
"""

from __future__ import annotations

import dataclasses

from critix import validation
from critix.nets.mlp import ACTIVATIONS
from critix.values import heads

MAX_HIDDEN_SIZE = 1 << 16
SHARED_RANGES = {
    "gamma": "in [0, 1]",
    "target_tau": "in (0, 1]",
    "batch_size": ">= 1",
    "num_critics": ">= 1",
    "max_grad_norm": ">= 0",
    "init_alpha": "> 0",
}
"""Valid ranges of fields that several agents declare, by field name (the learning rates `*_lr` must be > 0)."""


def check_layer_sizes(cfg: object, *names: str) -> None:
    """Each field `names` of `cfg` is a non-empty tuple of hidden layer sizes in [1, MAX_HIDDEN_SIZE]."""
    for name in names:
        sizes = getattr(cfg, name)
        if not (len(sizes) >= 1 and 1 <= min(sizes) <= max(sizes) <= MAX_HIDDEN_SIZE):
            raise ValueError(f"{name} must be non-empty, each in [1, {MAX_HIDDEN_SIZE}], got {sizes!r}")


@dataclasses.dataclass(frozen=True)
class AgentConfig:
    """What every agent's networks have: MLP hidden layers and their activation."""

    hidden_sizes: tuple[int, ...] = (256, 256)
    """Hidden layer sizes of every network of the agent."""
    activation: str = "relu"
    """Hidden activation."""

    def __post_init__(self) -> None:
        validation.check_types(self)  # field types first, so the range checks below compare numbers
        check_layer_sizes(self, "hidden_sizes")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {self.activation!r}")
        names = [f.name for f in dataclasses.fields(self)]
        for name in names:
            if name in SHARED_RANGES:
                validation.check_range(self, SHARED_RANGES[name], name)
        validation.check_range(self, "> 0", *[name for name in names if name.endswith("_lr")])


@dataclasses.dataclass(frozen=True)
class ActorCritic(AgentConfig):
    """An actor and a critic ensemble learning from minibatches, with Polyak-averaged target critics."""

    num_critics: int = 2
    """Critic ensemble size; targets use the minimum over the critics (clipped double-Q, Fujimoto et al. 2018)."""
    actor_lr: float = 3e-4
    """Actor learning rate."""
    critic_lr: float = 3e-4
    """Critic learning rate."""
    gamma: float = 0.99
    """Discount factor."""
    target_tau: float = 0.005
    """Polyak rate of the target networks."""
    batch_size: int = 256
    """Minibatch size."""


@dataclasses.dataclass(frozen=True)
class GradientClip(AgentConfig):
    """A global gradient-norm clip on the networks' optimisers."""

    max_grad_norm: float = 0.0
    """Global gradient-norm clip of each network's optimiser; 0 disables."""


@dataclasses.dataclass(frozen=True)
class CriticHead(AgentConfig):
    """A pluggable value head for the critics (`critix.values.heads`), flag --critic-head and its options."""

    value_head: heads.HeadConfig = heads.HeadConfig()
    """The critics' value head (`critix.values.heads.HeadConfig`; #7 Sec. 4: 101 bins, sigma 0.75 bin widths)."""

    @property
    def head(self) -> heads.ValueHead:
        return heads.from_config(self)


@dataclasses.dataclass(frozen=True)
class Temperature(AgentConfig):
    """The learned entropy temperature alpha of maximum-entropy agents (SAC, #50, #53)."""

    alpha_lr: float = 3e-4
    """Temperature learning rate."""
    init_alpha: float = 1.0
    """Initial temperature (SB3, CleanRL and the TQC authors' code start at 1.0)."""
    autotune_alpha: bool = True
    """Learn the temperature against the entropy target (#53 Sec. 5); False keeps `init_alpha` fixed (#50)."""
