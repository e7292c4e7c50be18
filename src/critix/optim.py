"""The one optimiser factory of critix: Adam(W) with global-norm clipping and a learning-rate schedule."""

from __future__ import annotations

import dataclasses

import optax


@dataclasses.dataclass(frozen=True)
class OptimizerConfig:
    """How one network is optimised."""

    learning_rate: float = 3e-4
    """Peak learning rate (3e-4: SAC, Haarnoja et al. 2018, Table 1; TD3, Fujimoto et al. 2018, author code)."""
    schedule: str = "constant"
    """'constant', 'linear' (decay to 0 over `total_steps`) or 'cosine'."""
    total_steps: int = 0
    """Gradient steps the schedule spans (needed by 'linear' and 'cosine')."""
    warmup_steps: int = 0
    """Linear warm-up from 0 before the schedule."""
    max_grad_norm: float = 0.0
    """Clip the global gradient norm to this value (optax.clip_by_global_norm); 0 disables clipping."""
    weight_decay: float = 0.0
    """Decoupled weight decay (AdamW, Loshchilov & Hutter 2019); 0 gives plain Adam."""
    eps: float = 1e-8
    """Adam epsilon (Kingma & Ba 2015 default)."""

    def __post_init__(self) -> None:
        # A compiled hyperparameter grid (critix.train.grid) passes the learning rate as a traced array; its values
        # were validated as numbers before tracing, so only a Python number is checked here.
        if isinstance(self.learning_rate, (int, float)) and not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate}")
        if self.schedule not in ("constant", "linear", "cosine"):
            raise ValueError(f"schedule must be 'constant', 'linear' or 'cosine', got {self.schedule!r}")
        if self.schedule != "constant" and self.total_steps <= 0:
            raise ValueError(f"schedule {self.schedule!r} needs total_steps > 0")
        if self.max_grad_norm < 0 or self.weight_decay < 0 or self.warmup_steps < 0:
            raise ValueError("max_grad_norm, weight_decay and warmup_steps must be >= 0")


def make_schedule(cfg: OptimizerConfig) -> optax.Schedule:
    """Learning rate as a function of the gradient step."""
    decay_steps = max(cfg.total_steps - cfg.warmup_steps, 1)
    if cfg.schedule == "linear":
        main = optax.linear_schedule(cfg.learning_rate, 0.0, decay_steps)
    elif cfg.schedule == "cosine":
        main = optax.cosine_decay_schedule(cfg.learning_rate, decay_steps)
    else:
        main = optax.constant_schedule(cfg.learning_rate)
    if cfg.warmup_steps == 0:
        return main
    warmup = optax.linear_schedule(0.0, cfg.learning_rate, cfg.warmup_steps)
    return optax.join_schedules([warmup, main], [cfg.warmup_steps])


def make_optimizer(cfg: OptimizerConfig) -> optax.GradientTransformation:
    """Global-norm clipping (never element-wise `optax.clip`), then Adam or AdamW on the schedule."""
    lr: float | optax.Schedule = cfg.learning_rate if cfg.schedule == "constant" and not cfg.warmup_steps else make_schedule(cfg)
    if cfg.weight_decay > 0:
        adam = optax.adamw(lr, eps=cfg.eps, weight_decay=cfg.weight_decay)
    else:
        adam = optax.adam(lr, eps=cfg.eps)
    if cfg.max_grad_norm > 0:
        return optax.chain(optax.clip_by_global_norm(cfg.max_grad_norm), adam)
    return adam
