"""Value heads: how a critic's raw outputs become a value, a regression target and a loss.

Every critic in critix ends in `head.num_outputs` units and goes through one of these heads, so a
distributional or classification head (C51, quantile, HL-Gauss ...) slots in without touching an agent.
A head is a frozen dataclass (hashable, so it can live in a static `Config`). Shapes: B batch, K outputs.

The interface, for a critic output `out` of shape [..., K]:
- `value(out, xp=jnp) -> [...]`: the expected value; `xp=numpy` computes it with NumPy (the host loops' acting,
  `critix.train.host.Acting`), the same function within float rounding.
- `target(r_t, discount_t, out_t) -> T`: the regression target r_t + discount_t * Z(out_t), in the head's
  own representation (a scalar for the scalar head, a histogram or atoms for distributional heads). Agents
  fold extra terms such as SAC's entropy bonus into `r_t`.
- `loss(out_tm1, target) -> [...]`: the per-sample loss of predicting `target` with `out_tm1`.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, ClassVar, Protocol

import jax
import jax.numpy as jnp
import numpy as np

from critix.values import losses, targets


class ValueHead(Protocol):
    """What agents need from a value head."""

    @property
    def num_outputs(self) -> int: ...

    def value(self, out: jax.Array, xp: Any = jnp) -> jax.Array: ...

    def target(self, r_t: jax.Array, discount_t: jax.Array, out_t: jax.Array) -> jax.Array: ...

    def loss(self, out_tm1: jax.Array, target: jax.Array) -> jax.Array: ...


@dataclasses.dataclass(frozen=True)
class ScalarHead:
    """A single output read as the value, regressed with squared error or Huber loss."""

    loss_type: str = "mse"  # "mse" (0.5 * squared error) or "huber"
    huber_delta: float = 1.0

    def __post_init__(self) -> None:
        if self.loss_type not in ("mse", "huber"):
            raise ValueError(f"ScalarHead.loss_type must be 'mse' or 'huber', got {self.loss_type!r}")

    @property
    def num_outputs(self) -> int:
        return 1

    def value(self, out: jax.Array, xp: Any = jnp) -> jax.Array:
        return out[..., 0]

    def target(self, r_t: jax.Array, discount_t: jax.Array, out_t: jax.Array) -> jax.Array:
        return targets.td_target(r_t, discount_t, self.value(out_t))

    def loss(self, out_tm1: jax.Array, target: jax.Array) -> jax.Array:
        if self.loss_type == "huber":
            return losses.huber(self.value(out_tm1), target, self.huber_delta)
        return losses.squared_error(self.value(out_tm1), target)


def select_min(head: ValueHead, outs: jax.Array) -> jax.Array:
    """Clipped double-Q for any head: per sample, the ensemble member whose value is lowest.

    outs: [E, ..., K] -> [..., K]. For the scalar head this is the elementwise minimum over E (TD3, Eq. 10).
    """
    values = head.value(outs)  # [E, ...]
    index = jnp.argmin(values, axis=0)  # [...]
    return jnp.take_along_axis(outs, index[None, ..., None], axis=0)[0]


def expected_value(logits: jax.Array, support: jax.Array, xp: Any = jnp) -> jax.Array:
    """The mean of the categorical distribution softmax(logits) [..., K] over the values `support` [K] -> [...]."""
    if xp is np:  # jax.nn.softmax's computation: exp(x - max x) / sum
        e = np.exp(logits - np.max(logits, axis=-1, keepdims=True))
        return np.sum(e / np.sum(e, axis=-1, keepdims=True) * support, axis=-1)
    return jnp.sum(jax.nn.softmax(logits, axis=-1) * support, axis=-1)


@functools.lru_cache(maxsize=64)
def _host_support(head: Any) -> np.ndarray:
    """A head's support as a NumPy array, computed by JAX once per head (identical values on both sides)."""
    return np.asarray(head.support)


def cross_entropy(logits: jax.Array, target_probs: jax.Array) -> jax.Array:
    """-sum_k p_k log softmax(logits)_k over the last axis: the classification value loss (#7 Eq. 1, #217 Eq. 7)."""
    return -jnp.sum(target_probs * jax.nn.log_softmax(logits, axis=-1), axis=-1)


@dataclasses.dataclass(frozen=True)
class _SupportHead:
    """K logits of a categorical distribution over K fixed values (the `support`) in [v_min, v_max]: the value
    is the expected support value, the loss the cross-entropy to a target distribution on the same support.
    The common part of the C51, HL-Gauss and two-hot heads, which differ in their support and target."""

    v_min: float = -10.0
    v_max: float = 10.0
    num_bins: int = 51  # C51's 51 atoms (#217 Sec. 5)

    cli_name: ClassVar[str]
    """The head's name in `HEADS` (`--critic-head`), which error messages name."""

    def __post_init__(self) -> None:
        if not self.v_min < self.v_max:
            raise ValueError(f"{self.cli_name}: v_min ({self.v_min}) must be < v_max ({self.v_max}); "
                             "set --v-min/--v-max to the range of returns")
        if self.num_bins < 2:
            raise ValueError(f"{self.cli_name}: num_bins must be >= 2, got {self.num_bins}")

    @property
    def num_outputs(self) -> int:
        return self.num_bins

    @property
    def support(self) -> jax.Array:
        """The K values the logits put probability on."""
        raise NotImplementedError

    def value(self, out: jax.Array, xp: Any = jnp) -> jax.Array:
        return expected_value(out, _host_support(self) if xp is np else self.support, xp)

    def loss(self, out_tm1: jax.Array, target: jax.Array) -> jax.Array:
        return cross_entropy(out_tm1, target)


@dataclasses.dataclass(frozen=True)
class _AtomHead(_SupportHead):
    """A support of K equally spaced atoms z_k = linspace(v_min, v_max, K), both ends included (C51,
    two-hot)."""

    @property
    def atoms(self) -> jax.Array:
        return jnp.linspace(self.v_min, self.v_max, self.num_bins)

    @property
    def atom_spacing(self) -> float:
        """The distance between neighbouring atoms."""
        return (self.v_max - self.v_min) / (self.num_bins - 1)

    @property
    def support(self) -> jax.Array:
        return self.atoms


class _HistogramTarget:
    """The target of the classification heads (#7 Sec. 3.1): the scalar TD target y = r + discount * V(s'),
    turned into a distribution on the support by the head's `histogram` (y [...] -> probabilities [..., K]).
    Mixed into a `_SupportHead` subclass, after it, so that `value` is the support head's."""

    def target(self, r_t: jax.Array, discount_t: jax.Array, out_t: jax.Array) -> jax.Array:
        y = targets.td_target(r_t, discount_t, self.value(out_t))  # type: ignore[attr-defined]
        return jax.lax.stop_gradient(self.histogram(y))  # type: ignore[attr-defined]


@dataclasses.dataclass(frozen=True)
class CategoricalHead(_AtomHead):
    """C51 (Bellemare et al. 2017, #217): K logits of a distribution on fixed atoms z_k = linspace(v_min, v_max, K).

    The target is the distributional Bellman update r + discount * Z projected back onto the atoms (#217 Alg. 1;
    written as Dopamine and rlax write it, m_i = sum_j clip(1 - |clip(Tz_j) - z_i| / dz, 0, 1) p_j, which also
    handles a Tz_j that lands exactly on an atom); the loss is the cross-entropy to it (#217 Eq. 7).
    """

    cli_name: ClassVar[str] = "c51"

    def project(self, r_t: jax.Array, discount_t: jax.Array, probs_t: jax.Array) -> jax.Array:
        """Project the atoms r_t + discount_t * z with probabilities probs_t [..., K] onto z: [..., K]."""
        atoms = self.atoms
        delta = self.atom_spacing
        tz = jnp.clip(r_t[..., None] + discount_t[..., None] * atoms, self.v_min, self.v_max)  # [..., K(j)]
        weight = jnp.clip(1.0 - jnp.abs(tz[..., None, :] - atoms[:, None]) / delta, 0.0, 1.0)  # [..., K(i), K(j)]
        return jnp.sum(weight * probs_t[..., None, :], axis=-1)

    def target(self, r_t: jax.Array, discount_t: jax.Array, out_t: jax.Array) -> jax.Array:
        probs_t = jax.lax.stop_gradient(jax.nn.softmax(out_t, axis=-1))
        return self.project(jnp.asarray(r_t, jnp.float32), jnp.asarray(discount_t, jnp.float32), probs_t)


@dataclasses.dataclass(frozen=True)
class QuantileHead:
    """QR-DQN (Dabney et al. 2018, "Distributional RL with Quantile Regression"): K quantile values at the
    midpoints tau_i = (2i - 1) / 2K (their Lemma 2), regressed with the quantile Huber loss (their Eq. 10).

    The target is the K atoms r + discount * theta_j(s'); the value is their mean.
    """

    num_bins: int = 51  # K quantiles; QR-DQN uses 200 on Atari, SB3/RL Zoo 25-50 on classic control
    huber_kappa: float = 1.0  # Dabney et al. 2018, Sec. 4: kappa = 1

    def __post_init__(self) -> None:
        if self.num_bins < 1:
            raise ValueError(f"quantile: num_bins (quantiles) must be >= 1, got {self.num_bins}")
        if not self.huber_kappa > 0:
            raise ValueError(f"quantile: huber_kappa must be > 0, got {self.huber_kappa}")

    @property
    def num_outputs(self) -> int:
        return self.num_bins

    @property
    def taus(self) -> jax.Array:
        return (jnp.arange(self.num_bins, dtype=jnp.float32) + 0.5) / self.num_bins

    def value(self, out: jax.Array, xp: Any = jnp) -> jax.Array:
        return xp.mean(out, axis=-1)

    def target(self, r_t: jax.Array, discount_t: jax.Array, out_t: jax.Array) -> jax.Array:
        return targets.td_target(jnp.asarray(r_t)[..., None], jnp.asarray(discount_t)[..., None], out_t)

    def loss(self, out_tm1: jax.Array, target: jax.Array) -> jax.Array:
        """sum_i mean_j |tau_i - 1{u_ij < 0}| L_kappa(u_ij) / kappa with u_ij = target_j - theta_i (Eq. 10)."""
        u = target[..., None, :] - out_tm1[..., :, None]  # [..., K(i), K(j)]
        huber = losses.huber(u, 0.0, self.huber_kappa) / self.huber_kappa
        weight = jnp.abs(self.taus[:, None] - (u < 0.0).astype(u.dtype))
        return jnp.sum(jnp.mean(weight * huber, axis=-1), axis=-1)


@dataclasses.dataclass(frozen=True)
class HLGaussHead(_SupportHead, _HistogramTarget):
    """HL-Gauss (Farebrother et al. 2024, "Stop Regressing", #7 Sec. 3.1): K logits over equal bins of
    [v_min, v_max]; the scalar TD target y = r + discount * V(s') becomes the histogram of N(y, sigma^2) on the
    bins (probability of bin [e_i, e_{i+1}] via the normal CDF, renormalised to the range), trained with
    cross-entropy. sigma = sigma_ratio * bin width (#7 Sec. 4.1 recommends sigma / width = 0.75).
    """

    sigma_ratio: float = 0.75

    cli_name: ClassVar[str] = "hl-gauss"

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.sigma_ratio > 0:
            raise ValueError(f"hl-gauss: sigma ratio must be > 0, got {self.sigma_ratio}")

    @property
    def bin_width(self) -> float:
        return (self.v_max - self.v_min) / self.num_bins

    @property
    def centers(self) -> jax.Array:
        return self.v_min + (jnp.arange(self.num_bins, dtype=jnp.float32) + 0.5) * self.bin_width

    @property
    def support(self) -> jax.Array:
        return self.centers

    def histogram(self, y: jax.Array) -> jax.Array:
        """y [...] -> bin probabilities [..., K] of N(clip(y), sigma^2) restricted to [v_min, v_max]."""
        y = jnp.clip(y, self.v_min, self.v_max)
        edges = jnp.linspace(self.v_min, self.v_max, self.num_bins + 1)
        sigma = self.sigma_ratio * self.bin_width
        cdf = jax.scipy.special.erf((edges - y[..., None]) / (jnp.sqrt(2.0) * sigma))
        return (cdf[..., 1:] - cdf[..., :-1]) / (cdf[..., -1:] - cdf[..., :1])


@dataclasses.dataclass(frozen=True)
class TwoHotHead(_AtomHead, _HistogramTarget):
    """Two-hot classification (#7 Sec. 3.1; Schrittwieser et al. 2020): K logits on atoms
    z_k = linspace(v_min, v_max, K); the target y is split between its two neighbouring atoms so that the
    expected atom is exactly clip(y, v_min, v_max); cross-entropy loss.
    """

    cli_name: ClassVar[str] = "two-hot"

    def histogram(self, y: jax.Array) -> jax.Array:
        """y [...] -> two-hot probabilities [..., K] whose mean atom is clip(y)."""
        delta = self.atom_spacing
        y = jnp.clip(y, self.v_min, self.v_max)
        return jnp.clip(1.0 - jnp.abs(y[..., None] - self.atoms) / delta, 0.0, 1.0)


HEADS = {
    "scalar": ScalarHead,
    "c51": CategoricalHead,
    "quantile": QuantileHead,
    "hl-gauss": HLGaussHead,
    "two-hot": TwoHotHead,
}


def make_head(name: str, **kwargs: object) -> ValueHead:
    """Build a head from its CLI name (`--critic-head`)."""
    if name not in HEADS:
        raise ValueError(f"unknown critic head {name!r}; choose one of {sorted(HEADS)}")
    return HEADS[name](**kwargs)  # type: ignore[arg-type]


@dataclasses.dataclass(frozen=True)
class HeadConfig:
    """The value head of an agent's critics: one nested configuration (`value_head`) in every critic config. Its
    command-line flags are the field names: --critic-head, --v-min, --v-max, --num-bins, --hl-gauss-sigma,
    --scalar-loss. Each agent's default instance names its own sources (e.g. DQN's 51 bins, C51 #217)."""

    critic_head: str = "scalar"
    """Value head of the critics: scalar, c51 (#217), quantile (QR-DQN), hl-gauss or two-hot (#7)."""
    v_min: float = -100.0
    """Lowest value the c51/hl-gauss/two-hot support represents (per-env defaults in `critix.agents.tuned`)."""
    v_max: float = 100.0
    """Highest value the c51/hl-gauss/two-hot support represents (per-env defaults in `critix.agents.tuned`)."""
    num_bins: int = 101
    """Atoms/bins (c51, hl-gauss, two-hot) or quantiles (quantile) of a distributional head (#7 Sec. 4: 101)."""
    hl_gauss_sigma: float = 0.75
    """HL-Gauss smoothing sigma as a fraction of the bin width (#7 Sec. 4.1: 0.75)."""
    scalar_loss: str = "mse"
    """Loss of the scalar head: 'mse' or 'huber' (DQN's: Mnih et al. 2015, SB3 smooth_l1)."""

    def __post_init__(self) -> None:
        self.build()  # an unknown head or an impossible support fails here, naming the field

    def build(self) -> ValueHead:
        """The head this configuration describes (fields a head does not take are ignored)."""
        if self.critic_head not in HEADS:
            raise ValueError(f"unknown critic head {self.critic_head!r}; choose one of {sorted(HEADS)}")
        fields = {f.name for f in dataclasses.fields(HEADS[self.critic_head])}
        mapping = {"v_min": self.v_min, "v_max": self.v_max, "num_bins": self.num_bins,
                   "sigma_ratio": self.hl_gauss_sigma, "loss_type": self.scalar_loss}
        return make_head(self.critic_head, **{arg: value for arg, value in mapping.items() if arg in fields})


def from_config(cfg: object) -> ValueHead:
    """The head an agent config asks for in its `value_head` (or a HeadConfig itself)."""
    return (cfg if isinstance(cfg, HeadConfig) else getattr(cfg, "value_head")).build()
