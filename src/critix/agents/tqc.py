"""Truncated Quantile Critics: SAC's actor and temperature, N quantile critics, a target without its top atoms.

Kuznetsov et al. 2020, "Controlling Overestimation Bias with Truncated Mixture of Continuous Distributional Quantile
Critics" (TQC; arXiv 2005.04269; docs/references.md), Sec. 3:
- critics: N networks Z_n(s, a), each M atoms theta_n^m(s, a) at the quantile midpoints tau_m = (2m - 1) / 2M;
- target: the N*M atoms of the target critics at (s', a' ~ pi(.|s')) pooled into one set (Eq. 10), sorted,
  z_(1) <= ... <= z_(NM) (Eq. 11), and only the kN smallest kept, k = M - d (d = `top_quantiles_to_drop_per_net`);
  y_i = r + gamma (1 - terminated) (z_(i) - alpha log pi(a'|s')), i = 1..kN (Eq. 12);
- critics' loss J_Z: the quantile Huber loss (kappa = 1) of each critic's M atoms against all kN target atoms y_i;
- actor: J_pi = E[alpha log pi(a~|s) - 1/(NM) sum_{n,m} theta_n^m(s, a~)], the mean over every critic and atom
  (not SAC's minimum: truncating the target already controls the overestimation);
- temperature: SAC's, J(alpha) = E[-alpha (log pi(a~|s) + target_entropy)] (#53 Eq. 18), target entropy -dim(A).
Like SAC here, the actor and temperature step after the critics, against the critics just updated.
"""

from __future__ import annotations

import dataclasses
from functools import partial

import gymnasium as gym
import jax
import jax.numpy as jnp

from critix import validation
from critix.agents import common, configs, contract, sac
from critix.nets.ensemble import QEnsemble
from critix.nets.policies import TanhGaussianPolicy, tanh_gaussian_sample
from critix.types import Transition
from critix.values import heads, targets

NAME = "tqc"
KIND = "off-policy"
RUN_DEFAULTS: dict[str, tuple[object, str]] = {
    "buffer_size": (1_000_000, "Replay capacity per seed (authors' code: ReplayBuffer max_size 1e6)."),
    "learning_starts": (256, "Env steps per seed before updates start (authors' code: updates from step batch_size "
                             "on; its first steps act with the untrained policy, critix's with uniform random "
                             "actions)."),
    "utd_ratio": (1.0, "Gradient steps per env step per seed (authors' code: 1)."),
}
"""Run settings (`critix.train.RunConfig` fields) this agent starts from: name -> (value, meaning and source)."""


@common.vmappable("actor_lr", "critic_lr", "alpha_lr", "gamma", "target_tau", "init_alpha")
@dataclasses.dataclass(frozen=True)
class Config(configs.Temperature, configs.GradientClip, configs.ActorCritic):
    """TQC hyperparameters. Defaults: the authors' code (SamsungLabs/tqc_pytorch: main.py, tqc/structures.py,
    tqc/trainer.py) for Kuznetsov et al. 2020, unless a field says otherwise."""

    hidden_sizes: tuple[int, ...] = (256, 256)
    """Hidden layer sizes of the actor (authors' code: Actor, 2 layers of 256)."""
    num_critics: int = 5
    """N, the number of quantile critics (authors' code: --n_nets 5)."""
    critic_hidden_sizes: tuple[int, ...] = (512, 512, 512)
    """Hidden layer sizes of each critic (authors' code: Critic, 3 layers of 512; small for a CPU, e.g. 256 256)."""
    num_quantiles: int = 25
    """M, the atoms (quantiles) of each critic (authors' code: --n_quantiles 25)."""
    top_quantiles_to_drop_per_net: int = 2
    """d: the target drops the d*N largest of the N*M pooled atoms (authors' code: 2; the paper tunes it per env)."""
    target_entropy: float | None = None
    """Entropy target; None means -dim(A) (authors' code: -prod(action shape))."""

    def __post_init__(self) -> None:
        super().__post_init__()
        configs.check_layer_sizes(self, "critic_hidden_sizes")
        validation.check_range(self, ">= 1", "num_quantiles")
        validation.check_range(self, f"in [0, {self.num_quantiles}) (below num_quantiles: each critic keeps an atom)",
                               "top_quantiles_to_drop_per_net")

    @property
    def head(self) -> heads.QuantileHead:
        """The critics' head: M quantile midpoints, quantile Huber loss with kappa = 1 (`critix.values.heads`)."""
        return heads.QuantileHead(num_bins=self.num_quantiles, huber_kappa=1.0)

    @property
    def num_target_atoms(self) -> int:
        """kN = (M - d) N, the atoms of the truncated target distribution."""
        return (self.num_quantiles - self.top_quantiles_to_drop_per_net) * self.num_critics


State = sac.State
"""SAC's state (actor, critics and their targets, temperature, key, steps); here the critics are N quantile critics."""


def networks(cfg: Config, action_dim: int) -> tuple[TanhGaussianPolicy, QEnsemble]:
    actor = TanhGaussianPolicy(cfg.hidden_sizes, action_dim, cfg.activation)
    critic = QEnsemble(cfg.critic_hidden_sizes, cfg.num_quantiles, cfg.activation, num_critics=cfg.num_critics)
    return actor, critic


optimizers = sac.optimizers
"""SAC's: Adam for actor and critics (with `max_grad_norm`) and for the temperature."""


def check_spaces(observation_space: gym.Space, action_space: gym.Space) -> None:
    common.flat_box_dims(NAME, observation_space, action_space)


def init(cfg: Config, key: jax.Array, observation_space: gym.Space, action_space: gym.Space,
         plan: contract.RunPlan | None = None) -> State:
    obs_dim, action_dim = common.flat_box_dims(NAME, observation_space, action_space)
    return sac.init_state(cfg, key, *networks(cfg, action_dim), obs_dim, action_dim)


def act(cfg: Config, state: State, obs: jax.Array, key: jax.Array, deterministic: bool) -> jax.Array:
    """obs [B, O] -> actions [B, A] in [-1, 1]: a tanh-Gaussian sample, or tanh(mean) when deterministic."""
    return contract.act_with(policy(cfg, state), state, obs, key, deterministic)


policy = sac.policy
"""SAC's tanh-Gaussian acting (TQC's actor is SAC's)."""


def truncated_mixture(atoms: jax.Array, drop_per_net: int) -> jax.Array:
    """The critics' atoms [N, ..., M] pooled per sample (Eq. 10), sorted ascending (Eq. 11), the largest
    drop_per_net * N dropped: [..., (M - drop_per_net) N]."""
    num_critics, num_quantiles = atoms.shape[0], atoms.shape[-1]
    pooled = jnp.moveaxis(atoms, 0, -2).reshape(*atoms.shape[1:-1], num_critics * num_quantiles)
    return jnp.sort(pooled, axis=-1)[..., : (num_quantiles - drop_per_net) * num_critics]


def update(cfg: Config, state: State, batch: Transition) -> tuple[State, common.Metrics]:
    """One gradient step of critics, actor and temperature on a batch [B, ...]."""
    head = cfg.head
    actor, critic = networks(cfg, state.action_dim)
    _, critic_tx, _ = optimizers(cfg)
    key, next_key, pi_key = jax.random.split(state.key, 3)
    alpha = jnp.exp(state.log_alpha)

    # Target atoms y_i (Eq. 10-12): the truncated mixture of the target critics at (s', a'), the entropy term
    # folded into the reward as in SAC.
    next_mean, next_log_std = actor.apply(state.actor_params, batch.next_obs)
    next_action, next_log_prob = tanh_gaussian_sample(next_key, next_mean, next_log_std)
    next_atoms = critic.apply(state.target_critic_params, batch.next_obs, next_action)  # [N, B, M]
    kept = truncated_mixture(next_atoms, cfg.top_quantiles_to_drop_per_net)  # [B, kN]
    discount_t = targets.discount(cfg.gamma, batch.terminated)
    soft_reward = batch.reward - discount_t * alpha * next_log_prob
    target = jax.lax.stop_gradient(head.target(soft_reward, discount_t, kept))  # [B, kN]

    def critic_loss_fn(params: dict) -> tuple[jax.Array, jax.Array]:
        # Each critic's M atoms against all kN target atoms: head.loss sums over atoms and averages over targets
        # (QR-DQN's Eq. 10), a constant multiple of TQC's 1/(kNM) normalisation; summed over critics.
        atoms = critic.apply(params, batch.obs, batch.action)  # [N, B, M]
        return head.loss(atoms, target).mean(axis=-1).sum(), jnp.mean(atoms)

    critic_params, critic_opt_state, critic_loss, q_mean = common.gradient_step(
        critic_loss_fn, state.critic_params, state.critic_opt_state, critic_tx
    )

    state, actor_metrics = actor_and_temperature_step(cfg, state, batch.obs, critic_params, pi_key)
    new_state = common.with_new_critics(state, critic_params, critic_opt_state, cfg.target_tau, key=key)
    metrics = {"critic/loss": critic_loss, "critic/q_mean": q_mean, "critic/target_mean": jnp.mean(target)}
    return new_state, {**metrics, **actor_metrics}


def actor_and_temperature_step(
    cfg: Config, state: State, obs: jax.Array, critic_params: dict, key: jax.Array
) -> tuple[State, common.Metrics]:
    """The actor step against `critic_params`, alpha log pi - the mean of Z(s, a~pi) over all N critics and M atoms
    (TQC Sec. 3, J_pi), then SAC's temperature step (`sac.actor_and_temperature_update`, #53 Eq. 18)."""
    actor, critic = networks(cfg, state.action_dim)
    alpha = jnp.exp(state.log_alpha)

    def actor_loss_fn(params: dict) -> tuple[jax.Array, jax.Array]:
        mean, log_std = actor.apply(params, obs)
        action, log_prob = tanh_gaussian_sample(key, mean, log_std)
        q = jnp.mean(critic.apply(critic_params, obs, action), axis=(0, -1))  # [B]
        return jnp.mean(alpha * log_prob - q), log_prob

    return sac.actor_and_temperature_update(cfg, state, actor_loss_fn)


def update_many(cfg: Config, state: State, batches: Transition) -> tuple[State, common.Metrics]:
    """K gradient steps in one `lax.scan` over batches [K, B, ...]; metrics are [K]."""
    return common.scan_updates(partial(update, cfg), state, batches)
