"""Train SAC or TD3 with a peer library (SB3 or SBX) and print one JSON line with its speed.

Runs ONLY inside benchmarks/peers/.venv (see install.sh); critix never imports it. Hyperparameters are
critix's SAC/TD3 defaults: actor and critics [256, 256], batch 256, buffer 1e6, lr 3e-4, gamma 0.99,
tau 0.005, one gradient step per env step, two critics; SAC learns its temperature (ent_coef "auto"),
TD3 uses policy delay 2, target noise 0.2 clipped at 0.5, and Gaussian exploration noise 0.1.

Timed: from the callback at num_timesteps == learning_starts to the end of training, i.e. the N - L env
steps after learning starts with their N - L gradient steps (the first update, which compiles SBX's jitted
functions, is inside it; `steps_per_second_after_first_update` leaves it out, as critix leaves out its
compile). Evaluation (--eval-episodes) is outside every timer.

    benchmarks/peers/.venv/bin/python benchmarks/peers/peer_sac.py --lib sb3 --algo sac --env Pendulum-v1 \
        --steps 3000 --learning-starts 1000 --seed 0
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.noise import NormalActionNoise


class LearningStartsTimer(BaseCallback):
    """Records perf_counter when num_timesteps reaches learning_starts, one step later, and at the end.

    SB3's off-policy loop steps the env, calls on_step (num_timesteps already counted), then trains when
    num_timesteps > learning_starts. So the mark at num_timesteps == L comes before the first update, and
    the mark at L + 2 comes after the first update (and one more env step).
    """

    def __init__(self, learning_starts: int) -> None:
        super().__init__(verbose=0)
        self.learning_starts = learning_starts
        self.t_start: float | None = None  # at num_timesteps == L
        self.t_warm: float | None = None  # at num_timesteps == L + 2 (first update done)
        self.steps_start = 0
        self.steps_warm = 0
        self.t_end: float | None = None

    def _on_training_start(self) -> None:
        if self.learning_starts <= 0:  # learning from the first step: time everything
            self.t_start, self.steps_start = time.perf_counter(), self.num_timesteps

    def _on_step(self) -> bool:
        if self.t_start is None and self.num_timesteps >= self.learning_starts:
            self.t_start, self.steps_start = time.perf_counter(), self.num_timesteps
        elif self.t_warm is None and self.num_timesteps >= self.learning_starts + 2:
            self.t_warm, self.steps_warm = time.perf_counter(), self.num_timesteps
        return True

    def _on_training_end(self) -> None:
        self.t_end = time.perf_counter()


def make_model(lib: str, algo: str, env: gym.Env, learning_starts: int, seed: int):  # type: ignore[no-untyped-def]
    if lib == "sb3":
        import stable_baselines3 as module
    else:
        import sbx as module
    common: dict[str, Any] = {
        "learning_rate": 3e-4,
        "buffer_size": 1_000_000,
        "learning_starts": learning_starts,
        "batch_size": 256,
        "tau": 0.005,
        "gamma": 0.99,
        "train_freq": 1,
        "gradient_steps": 1,
        "policy_kwargs": {"net_arch": [256, 256], "n_critics": 2},
        "seed": seed,
        "verbose": 0,
    }
    if lib == "sb3":
        common["device"] = "cpu"
    if algo == "sac":
        return module.SAC("MlpPolicy", env, ent_coef="auto", **common)
    n_actions = env.action_space.shape[0]
    noise = NormalActionNoise(mean=np.zeros(n_actions), sigma=0.1 * np.ones(n_actions))
    return module.TD3("MlpPolicy", env, action_noise=noise, policy_delay=2, target_policy_noise=0.2,
                      target_noise_clip=0.5, **common)


def lib_version(lib: str) -> str:
    if lib == "sb3":
        import stable_baselines3
        return stable_baselines3.__version__
    import sbx
    return sbx.__version__


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lib", choices=("sb3", "sbx"), required=True)
    parser.add_argument("--algo", choices=("sac", "td3"), default="sac")
    parser.add_argument("--env", default="Pendulum-v1")
    parser.add_argument("--steps", type=int, default=3000, help="total env steps (SB3 total_timesteps)")
    parser.add_argument("--learning-starts", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--eval-episodes", type=int, default=0,
                        help="deterministic evaluation episodes at the end (0: none); adds final_return")
    parser.add_argument("--torch-threads", type=int, default=0,
                        help="torch.set_num_threads before training (0: leave torch's default)")
    args = parser.parse_args()
    if args.steps <= args.learning_starts + 2:
        parser.error("--steps must exceed --learning-starts + 2, or nothing after learning starts is timed")

    if args.torch_threads > 0:
        torch.set_num_threads(args.torch_threads)
    t0 = time.perf_counter()
    env = gym.make(args.env)
    model = make_model(args.lib, args.algo, env, args.learning_starts, args.seed)
    timer = LearningStartsTimer(args.learning_starts)
    t_learn = time.perf_counter()
    model.learn(total_timesteps=args.steps, callback=timer, progress_bar=False)
    t_done = time.perf_counter()
    t_end = timer.t_end if timer.t_end is not None else t_done
    steps_timed = model.num_timesteps - timer.steps_start
    timed = t_end - timer.t_start
    result = {
        "lib": args.lib,
        "lib_version": lib_version(args.lib),
        "algo": args.algo,
        "env": args.env,
        "steps": int(model.num_timesteps),
        "learning_starts": args.learning_starts,
        "seed": args.seed,
        "timed_steps": int(steps_timed),
        "timed_seconds": timed,
        "steps_per_second_after_learning_starts": steps_timed / timed,
        "steps_per_second_after_first_update": (
            (model.num_timesteps - timer.steps_warm) / (t_end - timer.t_warm) if timer.t_warm else None
        ),
        "first_update_seconds": (timer.t_warm - timer.t_start) if timer.t_warm else None,
        "setup_seconds": t_learn - t0,
        "wall_seconds": t_done - t0,
        "torch_version": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "perf_counter_start": timer.t_start,  # CLOCK_MONOTONIC: comparable across processes on one machine
        "perf_counter_end": t_end,
        "python": platform.python_version(),
        "pid": os.getpid(),
    }
    if args.lib == "sbx":
        import jax
        import jaxlib
        result["jax_version"] = jax.__version__
        result["jaxlib_version"] = jaxlib.__version__
    if args.eval_episodes > 0:
        eval_env = Monitor(gym.make(args.env))
        eval_env.reset(seed=args.seed * 1000 + 500_000)
        returns, _ = evaluate_policy(model, eval_env, n_eval_episodes=args.eval_episodes, deterministic=True,
                                     return_episode_rewards=True)
        result["final_return"] = float(np.mean(returns))
        result["final_return_std"] = float(np.std(returns))
        result["eval_episodes"] = args.eval_episodes
        eval_env.close()
    env.close()
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
