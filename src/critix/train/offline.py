"""The offline stepper: the dataset lives on the device once; a chunk is one compiled scan, vmapped over seeds.

Each chunk runs `chunk_size` gradient steps per seed in one `lax.scan` (every step samples a uniform minibatch of
indices into the device-resident dataset and calls the agent's `update`), for all S seeds at once (`jax.vmap`).
Between chunks the lifecycle (`critix.train.run`) logs, evaluates (deterministic policy on Gymnasium eval envs)
and checkpoints. NaN/Inf: the dataset's transitions are checked once at load; an update with non-finite losses or
parameters stops the run, or under --on-nan skip is discarded and counted.

Offline-to-online fine-tuning is `critix.train.finetune`.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from critix import agents
from critix.data.datasets import dataset_normalized_score, load_training_data
from critix.envs.gym import make_vector_env, parse_env_kwargs
from critix.train import checkpoint, guards
from critix.train.config import OfflineRunConfig, eval_env_seed
from critix.train.evaluate import evaluate
from critix.train.run import Chunk, execute
from critix.types import CritixError, Transition


class Offline:
    """Stepper of an offline run: compiled update chunks on the device-resident dataset, and the eval envs."""

    mode = "offline"
    unit = "gradient step"
    steps_note = "gradient steps per seed per second, all S seeds vmapped in one call; compile and eval excluded"
    eval_metric_names = ("eval/normalized_score",)

    def __init__(self, algo: str, agent_cfg: Any, run: OfflineRunConfig) -> None:
        if not run.dataset:
            raise CritixError("offline training needs --dataset PATH (a Minari-format dataset folder)")
        self.algo, self.cfg, self.run = algo, agent_cfg, run
        self.module = agents.get(algo).module
        self.data = load_training_data(run.dataset, run.normalize_obs, run.normalize_reward)
        dataset = self.data.dataset
        env_id = run.env or dataset.env_id
        if env_id is None:
            raise CritixError(f"{run.dataset} records no env_spec; name the evaluation env with --env ENV")
        self.env_id, self.num_members, self.total_steps = env_id, run.num_seeds, run.steps
        self.description = f"{algo} offline x{run.num_seeds} seeds"
        self.plot_title = f"{algo} offline on {Path(run.dataset).name} (x: gradient steps)"
        self.obs_space, self.act_space = dataset.observation_space, dataset.action_space
        self.module.check_spaces(self.obs_space, self.act_space)
        self.num_transitions = int(self.data.transitions.reward.shape[0])
        if self.num_transitions < agent_cfg.batch_size:
            raise CritixError(f"the dataset holds {self.num_transitions} transitions, fewer than "
                              f"batch_size={agent_cfg.batch_size}; lower --batch-size or collect more data")
        bad = int((~guards.finite_items(self.data.transitions)).sum())
        if bad:
            raise CritixError(f"{run.dataset} holds {bad} transition(s) with NaN/Inf observations, actions or "
                              "rewards; clean the dataset (offline runs train on every transition)")
        # the env the data was collected in (also for the video env)
        self.env_kwargs = env_kwargs = {} if run.env else parse_env_kwargs(dataset.env_kwargs)
        self.eval_env = make_vector_env(env_id, run.num_seeds * run.eval_episodes, eval_env_seed(run.seed),
                                        env_kwargs=env_kwargs)
        env_obs = self.eval_env.single_observation_space
        if env_obs.shape != self.obs_space.shape or self.eval_env.single_action_space.shape != self.act_space.shape:
            self.eval_env.close()
            raise CritixError(f"{env_id} has observation {env_obs.shape} / action "
                              f"{self.eval_env.single_action_space.shape}, but the dataset has "
                              f"{self.obs_space.shape} / {self.act_space.shape}; pass the matching --env")
        self.compiled: set[int] = set()
        self._build_functions()

    def _build_functions(self) -> None:
        cfg, module, n, skip = self.cfg, self.module, self.num_transitions, self.run.on_nan == "skip"
        mean, std = jnp.asarray(self.data.obs_mean), jnp.asarray(self.data.obs_std)

        def train_chunk(state: Any, key: jax.Array, data: Transition, num_steps: int) -> Any:
            def sample(step_key: jax.Array) -> Transition:
                index = jax.random.randint(step_key, (cfg.batch_size,), 0, n)
                batch = jax.tree.map(lambda x: x[index], data)
                return batch.replace(obs=(batch.obs - mean) / std, next_obs=(batch.next_obs - mean) / std)

            key, chunk_key = jax.random.split(key)
            step_keys = jax.random.split(chunk_key, num_steps)
            if skip:
                state, metrics, skipped = guards.skip_nonfinite_updates(
                    partial(module.update, cfg), state, jax.vmap(sample)(step_keys))
                bad = skipped.sum()
            else:
                state, metrics = jax.lax.scan(lambda s, k: module.update(cfg, s, sample(k)), state, step_keys)
                bad = guards.bad_updates(state, metrics)
            return state, key, jax.tree.map(jnp.nanmean, metrics), bad

        def greedy(state: Any, obs: jax.Array) -> jax.Array:
            return module.act(cfg, state, (obs - mean) / std, jax.random.PRNGKey(0), True)

        self.train_chunk = jax.jit(jax.vmap(train_chunk, in_axes=(0, 0, None, None)), static_argnums=3,
                                   donate_argnums=(0, 1))
        self.greedy = jax.jit(jax.vmap(greedy))

    def start(self, restored: tuple[Path, dict[str, Any]] | None) -> int:
        agent_key, loop_key = jax.random.split(jax.random.PRNGKey(self.run.seed))
        cfg, module, obs_space, act_space = self.cfg, self.module, self.obs_space, self.act_space
        self.agent = jax.jit(jax.vmap(lambda k: module.init(cfg, k, obs_space, act_space)))(
            jax.random.split(agent_key, self.run.num_seeds))
        self.key, self.steps, self.metrics = jax.random.split(loop_key, self.run.num_seeds), 0, {}
        if restored is not None:
            arrays, meta = checkpoint.load(restored[0], {"agent": self.agent, "key": self.key})
            self.agent, self.key = jax.device_put(arrays["agent"]), jax.device_put(arrays["key"])
            self.steps = int(meta["counters"]["steps"])
        return self.steps

    def advance(self) -> Chunk:
        num_steps = min(self.run.chunk_size, self.run.steps - self.steps)
        self.agent, self.key, self.metrics, bad = self.train_chunk(self.agent, self.key, self.data.transitions,
                                                                   num_steps)
        jax.block_until_ready(self.agent)
        compiling = num_steps not in self.compiled  # the first call of a chunk length includes its compilation
        self.compiled.add(num_steps)
        self.steps += num_steps
        return Chunk(self.steps, compiling, bad_updates=int(np.sum(jax.device_get(bad))))

    def train_values(self) -> dict[str, np.ndarray]:
        return {name: np.asarray(v, np.float64) for name, v in self.metrics.items()}

    def greedy_actions(self, obs: np.ndarray) -> np.ndarray:
        """Deterministic agent actions [S, B, ...] for observations [S, B, *obs] (normalised as in training)."""
        return np.asarray(self.greedy(self.agent, obs.astype(np.float32)))

    def evaluate(self, seed: int) -> np.ndarray:
        """Deterministic returns [S, eval_episodes]."""
        return evaluate(self.eval_env, self.greedy_actions, self.run.num_seeds, seed)[0]

    def eval_values(self, returns: np.ndarray) -> dict[str, np.ndarray]:
        return {"eval/normalized_score": self.normalized(returns.mean(axis=1))}

    def state(self) -> tuple[Any, dict[str, Any]]:
        # The dataset's observation statistics and the spaces, so `critix.load` acts without the dataset or env.
        return {"agent": self.agent, "key": self.key}, {
            "counters": {"steps": self.steps}, "mode": "offline", "dataset": self.run.dataset, "env": self.env_id,
            "spaces": checkpoint.describe_spaces(self.obs_space, self.act_space),
            "obs_mean": np.ravel(self.data.obs_mean).tolist(), "obs_std": np.ravel(self.data.obs_std).tolist()}

    def gradient_steps(self) -> int:
        return self.steps

    def metric_names(self) -> list[str]:
        cfg, module, obs_space, act_space = self.cfg, self.module, self.obs_space, self.act_space
        state = jax.eval_shape(lambda: module.init(cfg, jax.random.PRNGKey(0), obs_space, act_space))
        batch = jax.tree.map(lambda x: jax.ShapeDtypeStruct((cfg.batch_size, *x.shape[1:]), x.dtype),
                             self.data.transitions)
        _, metrics = jax.eval_shape(lambda s, b: module.update(cfg, s, b), state, batch)
        return sorted(metrics)

    def normalized(self, returns: np.ndarray) -> np.ndarray:
        score = dataset_normalized_score(self.data.dataset, returns)
        return np.full(np.shape(returns), np.nan) if score is None else np.asarray(score, np.float64)

    def summary_values(self, final_returns: np.ndarray) -> dict[str, Any]:
        """The dataset and D4RL-normalised scores in summary.json."""
        normalized = self.normalized(final_returns.mean(axis=1))
        data_returns = self.data.dataset.returns()
        data_norm = self.normalized(data_returns)
        return {
            "dataset": self.run.dataset,
            "dataset_episodes": len(data_returns),
            "dataset_transitions": self.num_transitions,
            "dataset_return_mean": float(data_returns.mean()),
            "dataset_normalized_score_mean": None if np.isnan(data_norm).all() else float(np.mean(data_norm)),
            "final_normalized_score": [float(x) for x in normalized],
            "final_normalized_score_mean": float(np.mean(normalized)),
        }

    def close(self) -> None:
        self.eval_env.close()


def train(algo: str, agent_cfg: Any, run: OfflineRunConfig, resume: Path | None = None) -> dict[str, Any]:
    """Train (or resume) an offline run; returns the summary also written to summary.json."""
    return execute(algo, agent_cfg, run, lambda: Offline(algo, agent_cfg, run), resume)
