"""Train PPO with a peer library (SB3 or SBX) on a Gymnasium env and print one JSON line with its speed.

Runs ONLY inside benchmarks/peers/.venv (see install.sh); critix never imports it. Hyperparameters are the
libraries' PPO defaults (which critix's PPO defaults copy): n_steps 2048, batch 64, 10 epochs, lr 3e-4, gamma 0.99,
GAE lambda 0.95, clip 0.2, no entropy bonus, value coef 0.5, max grad norm 0.5, 64x64 tanh networks.
Timed: the whole `learn()` call (env steps and updates; SBX's compile included), evaluation outside it.

    benchmarks/peers/.venv/bin/python benchmarks/peers/peer_ppo.py --lib sb3 --env CartPole-v1 --steps 100000
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
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lib", choices=["sb3", "sbx"], required=True)
    parser.add_argument("--env", default="CartPole-v1")
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--num-envs", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--eval-episodes", type=int, default=10)
    parser.add_argument("--torch-threads", type=int, default=0)
    args = parser.parse_args()
    if args.torch_threads:
        torch.set_num_threads(args.torch_threads)
    if args.lib == "sb3":
        from stable_baselines3 import PPO
    else:
        from sbx import PPO
    env = make_vec_env(args.env, n_envs=args.num_envs, seed=args.seed)
    # SB3 defaults, with the 64x64 tanh policy and value nets spelled out for SBX (whose default is the same).
    model = PPO("MlpPolicy", env, seed=args.seed, verbose=0, device="cpu") if args.lib == "sb3" else \
        PPO("MlpPolicy", env, seed=args.seed, verbose=0)
    start = time.perf_counter()
    model.learn(total_timesteps=args.steps)
    seconds = time.perf_counter() - start
    eval_env = gym.make(args.env)
    mean, std = evaluate_policy(model, eval_env, n_eval_episodes=args.eval_episodes, deterministic=True)
    print(json.dumps({
        "lib": args.lib, "lib_version": version("stable-baselines3" if args.lib == "sb3" else "sbx-rl"),
        "env": args.env, "steps": int(model.num_timesteps), "num_envs": args.num_envs, "learn_seconds": seconds,
        "steps_per_second": model.num_timesteps / seconds, "final_return": float(mean),
        "final_return_std": float(std), "torch": torch.__version__, "python": platform.python_version(),
        "numpy": np.__version__,
    }))


if __name__ == "__main__":
    main()
