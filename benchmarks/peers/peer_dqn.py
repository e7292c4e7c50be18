"""Train DQN with a peer library (SB3 or SBX) on a Gymnasium env and print one JSON line with its speed.

Runs ONLY inside benchmarks/peers/.venv (see install.sh); critix never imports it. Hyperparameters: SB3 2.9.2's
DQN defaults, every one passed explicitly (the flags below default to them) so that SBX, whose own defaults differ
(target_update_interval 1000, 256x256 network, no gradient clipping), runs the same algorithm:
learning_rate 1e-4 (Adam, eps 1e-8), buffer_size 1e6, learning_starts 100, batch_size 32, tau 1.0, gamma 0.99,
train_freq 4, gradient_steps 1, target_update_interval 10,000, exploration_fraction 0.1 (of --steps),
exploration_initial_eps 1.0, exploration_final_eps 0.05, max_grad_norm 10, MlpPolicy 64x64 ReLU, Huber loss,
no double Q, one env. SBX gets the gradient clipping through its `optimizer_class` policy kwarg
(optax.clip_by_global_norm before Adam, as SB3's clip_grad_norm_ before its step).

Timed: the whole `learn()` call (every env step and update; SBX's jit compiles included), the figure the DQN
speed target uses. Also reported: from the first env step after the first update (num_timesteps =
learning_starts + train_freq + 1, after SB3's first `train` at learning_starts + train_freq) to the end, the
steady-state figure that leaves out SBX's compile. Evaluation (--eval-episodes, deterministic) is outside both.

    benchmarks/peers/.venv/bin/python benchmarks/peers/peer_dqn.py --lib sb3 --env CartPole-v1 --steps 100000
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from importlib.metadata import version

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.monitor import Monitor


class StepTimer(BaseCallback):
    """perf_counter at the first on_step with num_timesteps >= `mark` (called after SB3 counted the step)."""

    def __init__(self, mark: int) -> None:
        super().__init__(verbose=0)
        self.mark = mark
        self.t_mark: float | None = None
        self.steps_mark = 0

    def _on_step(self) -> bool:
        if self.t_mark is None and self.num_timesteps >= self.mark:
            self.t_mark, self.steps_mark = time.perf_counter(), self.num_timesteps
        return True


def clipped_adam(learning_rate: float, max_grad_norm: float):  # type: ignore[no-untyped-def]
    """SBX optimizer_class: global-norm clipping, then Adam (SB3 DQN: clip_grad_norm_(max_grad_norm), Adam)."""
    import optax

    return optax.chain(optax.clip_by_global_norm(max_grad_norm), optax.adam(learning_rate))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lib", choices=["sb3", "sbx"], required=True)
    parser.add_argument("--env", default="CartPole-v1")
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--eval-episodes", type=int, default=10)
    parser.add_argument("--torch-threads", type=int, default=0)
    parser.add_argument("--learning-rate", type=float, default=1e-4)
    parser.add_argument("--buffer-size", type=int, default=1_000_000)
    parser.add_argument("--learning-starts", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--tau", type=float, default=1.0)
    parser.add_argument("--gamma", type=float, default=0.99)
    parser.add_argument("--train-freq", type=int, default=4)
    parser.add_argument("--gradient-steps", type=int, default=1)
    parser.add_argument("--target-update-interval", type=int, default=10_000)
    parser.add_argument("--exploration-fraction", type=float, default=0.1)
    parser.add_argument("--exploration-initial-eps", type=float, default=1.0)
    parser.add_argument("--exploration-final-eps", type=float, default=0.05)
    parser.add_argument("--max-grad-norm", type=float, default=10.0)
    parser.add_argument("--hidden-sizes", type=int, nargs=2, default=[64, 64])
    args = parser.parse_args()
    if args.torch_threads:
        torch.set_num_threads(args.torch_threads)
    common = dict(
        learning_rate=args.learning_rate, buffer_size=args.buffer_size, learning_starts=args.learning_starts,
        batch_size=args.batch_size, tau=args.tau, gamma=args.gamma, train_freq=args.train_freq,
        gradient_steps=args.gradient_steps, target_update_interval=args.target_update_interval,
        exploration_fraction=args.exploration_fraction, exploration_initial_eps=args.exploration_initial_eps,
        exploration_final_eps=args.exploration_final_eps, seed=args.seed, verbose=0,
    )
    env = make_vec_env(args.env, n_envs=1, seed=args.seed)
    if args.lib == "sb3":
        from stable_baselines3 import DQN

        model = DQN("MlpPolicy", env, max_grad_norm=args.max_grad_norm, device="cpu",
                    policy_kwargs={"net_arch": list(args.hidden_sizes), "activation_fn": torch.nn.ReLU}, **common)
    else:
        import flax.linen as nn
        from sbx import DQN

        if args.hidden_sizes[0] != args.hidden_sizes[1]:
            raise SystemExit("SBX's DQN network has two hidden layers of one width")
        model = DQN("MlpPolicy", env, policy_kwargs={
            "net_arch": list(args.hidden_sizes), "activation_fn": nn.relu, "optimizer_class": clipped_adam,
            "optimizer_kwargs": {"max_grad_norm": args.max_grad_norm}}, **common)
    timer = StepTimer(args.learning_starts + args.train_freq + 1)
    start = time.perf_counter()
    model.learn(total_timesteps=args.steps, callback=timer)
    end = time.perf_counter()
    seconds = end - start
    eval_env = Monitor(gym.make(args.env))
    eval_env.reset(seed=args.seed * 1000 + 500_000)
    mean, std = evaluate_policy(model, eval_env, n_eval_episodes=args.eval_episodes, deterministic=True)
    result = {
        "lib": args.lib, "lib_version": version("stable-baselines3" if args.lib == "sb3" else "sbx-rl"),
        "env": args.env, "steps": int(model.num_timesteps), "seed": args.seed, "learn_seconds": seconds,
        "steps_per_second": model.num_timesteps / seconds,
        "steps_per_second_steady": ((model.num_timesteps - timer.steps_mark) / (end - timer.t_mark)
                                    if timer.t_mark is not None and model.num_timesteps > timer.steps_mark else None),
        "steady_from_step": timer.steps_mark, "seconds_to_steady": (timer.t_mark - start) if timer.t_mark else None,
        "gradient_steps": int(model._n_updates),
        "final_return": float(mean), "final_return_std": float(std), "eval_episodes": args.eval_episodes,
        "hyperparameters": {k: v for k, v in vars(args).items() if k not in ("lib", "env", "steps", "seed",
                                                                           "eval_episodes", "torch_threads")},
        "torch": torch.__version__, "torch_threads": torch.get_num_threads(), "python": platform.python_version(),
        "numpy": np.__version__, "gymnasium": version("gymnasium"),
    }
    if args.lib == "sbx":
        result["jax"], result["jaxlib"] = version("jax"), version("jaxlib")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
