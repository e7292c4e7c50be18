"""Train d3rlpy's IQL, CQL or TD3+BC on a Minari-format dataset written by critix; print one JSON line.

Runs ONLY inside benchmarks/peers/.venv-d3rlpy (made by install_d3rlpy.sh); critix never imports it.
The dataset is read with h5py (the Minari layout of critix.data.datasets) and handed to d3rlpy as an MDPDataset.
Networks 256x256 and batch 256 as critix; every other hyperparameter is d3rlpy's default, except TD3+BC's
StandardObservationScaler (the paper's normalisation, as critix's --normalize-obs). Actions are stored in env
units: Hopper-v5 and HalfCheetah-v5 have bounds [-1, 1], so no rescaling is needed for them.

Timed: `fit` (gradient steps; no evaluation inside). Evaluation: deterministic, --eval-episodes episodes.

    benchmarks/peers/.venv-d3rlpy/bin/python benchmarks/peers/peer_offline.py --algo iql --dataset PATH --steps 10000
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import d3rlpy
import gymnasium as gym
import h5py
import numpy as np
import torch


def load(path: Path) -> tuple[d3rlpy.dataset.MDPDataset, dict]:
    data = path / "data" if (path / "data").is_dir() else path
    meta = json.loads((data / "metadata.json").read_text())
    obs, act, rew, term, trunc = [], [], [], [], []
    with h5py.File(data / "main_data.hdf5", "r") as f:
        for i in range(int(meta["total_episodes"])):
            ep = f[f"episode_{i}"]
            obs.append(ep["observations"][:-1])
            act.append(ep["actions"][()])
            rew.append(ep["rewards"][()])
            term.append(ep["terminations"][()])
            trunc.append(ep["truncations"][()])
            if not (term[-1][-1] or trunc[-1][-1]):
                trunc[-1][-1] = True  # d3rlpy needs every episode to end
    dataset = d3rlpy.dataset.MDPDataset(
        np.concatenate(obs).astype(np.float32), np.concatenate(act).astype(np.float32),
        np.concatenate(rew).astype(np.float32), np.concatenate(term).astype(np.float32),
        np.concatenate(trunc).astype(np.float32))
    return dataset, meta


def make(algo: str, seed: int) -> object:
    d3rlpy.seed(seed)
    enc = d3rlpy.models.VectorEncoderFactory([256, 256])
    common = dict(batch_size=256, actor_encoder_factory=enc, critic_encoder_factory=enc)
    if algo == "iql":
        return d3rlpy.algos.IQLConfig(value_encoder_factory=enc, **common).create(device="cpu:0")
    if algo == "cql":
        return d3rlpy.algos.CQLConfig(**common).create(device="cpu:0")
    if algo == "td3bc":
        return d3rlpy.algos.TD3PlusBCConfig(observation_scaler=d3rlpy.preprocessing.StandardObservationScaler(),
                                            **common).create(device="cpu:0")
    raise SystemExit(f"unknown algo {algo}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--algo", required=True, choices=["iql", "cql", "td3bc"])
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--steps", type=int, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--eval-episodes", type=int, default=10)
    args = parser.parse_args()
    dataset, meta = load(Path(args.dataset))
    algo = make(args.algo, args.seed)
    start = time.perf_counter()
    algo.fit(dataset, n_steps=args.steps, n_steps_per_epoch=args.steps, show_progress=False,
             save_interval=10**9, logger_adapter=d3rlpy.logging.NoopAdapterFactory())
    seconds = time.perf_counter() - start
    env_id = json.loads(meta["env_spec"])["id"]
    env = gym.make(env_id)
    returns = []
    for episode in range(args.eval_episodes):
        obs, _ = env.reset(seed=10_000 + 100 * args.seed + episode)
        done, total = False, 0.0
        while not done:
            obs, reward, terminated, truncated, _ = env.step(algo.predict(obs[None].astype(np.float32))[0])
            total += float(reward)
            done = terminated or truncated
        returns.append(total)
    ref_min, ref_max = meta.get("ref_min_score"), meta.get("ref_max_score")
    mean = float(np.mean(returns))
    print(json.dumps({
        "return_mean": mean,
        "score": None if ref_min is None else 100 * (mean - ref_min) / (ref_max - ref_min),
        "fit_seconds": seconds,
        "steps_per_second_per_seed": args.steps / seconds,
        "d3rlpy": d3rlpy.__version__,
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
    }))


if __name__ == "__main__":
    main()
