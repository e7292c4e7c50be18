"""Random-policy returns of the suite tasks: the `low` references in critix/stats/normalize.py.

    .venv/bin/python benchmarks/random_returns.py [--episodes 100] [--envs CartPole-v1,...]

Uniform random actions from the env's action space, seeded; one line per env and a JSON file in
benchmarks/results/random_returns-<date>.json.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
from pathlib import Path

import gymnasium as gym
import numpy as np

ENVS = ("CartPole-v1", "Acrobot-v1", "Pendulum-v1", "MountainCarContinuous-v0",
        "HalfCheetah-v5", "Hopper-v5", "Walker2d-v5", "Ant-v5")


def random_returns(env_id: str, episodes: int, seed: int) -> np.ndarray:
    from critix.envs import pixels

    pixels.prepare(env_id)  # registers MinAtar/ALE ids (raw envs: no Atari wrappers, so unclipped returns)
    env = gym.make(env_id)
    env.action_space.seed(seed)
    returns = np.zeros(episodes)
    for episode in range(episodes):
        env.reset(seed=seed + episode)
        done = False
        while not done:
            _, reward, terminated, truncated, _ = env.step(env.action_space.sample())
            returns[episode] += float(reward)
            done = terminated or truncated
    env.close()
    return returns


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--envs", default=",".join(ENVS))
    parser.add_argument("--out", type=Path, default=None, help="default benchmarks/results/random_returns-<date>.json")
    args = parser.parse_args()
    results = {}
    for env_id in args.envs.split(","):
        r = random_returns(env_id, args.episodes, args.seed)
        results[env_id] = {"mean": float(r.mean()), "std": float(r.std()), "episodes": args.episodes}
        print(f"{env_id}: mean {r.mean():.2f} std {r.std():.2f} over {args.episodes} episodes", flush=True)
    stamp = datetime.datetime.now(datetime.timezone.utc)
    out = args.out or Path("benchmarks/results") / f"random_returns-{stamp:%Y-%m-%d}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"date": stamp.isoformat(timespec="seconds"), "gymnasium": gym.__version__,
            "python": platform.python_version(), "seed": args.seed,
            "command": f"benchmarks/random_returns.py --episodes {args.episodes} --seed {args.seed} --envs {args.envs}"}
    out.write_text(json.dumps({"meta": meta, "returns": results}, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
