"""The on-policy host stepper (PPO, A2C): rollouts from Gymnasium vector envs, S seeds at once.

One Gymnasium vector env holds S seeds x N envs (seed-major), as in `critix.train.offpolicy`. A chunk is one or
more rollouts (`--chunk-size` env steps, rounded up to whole rollouts); each collects `rollout_length` vector
steps (one vmapped, jitted `act` per step) and makes one compiled call that trains every seed on its rollout
[T, N, ...] (`update`, vmapped over seeds). Observation normalisation statistics are frozen during a rollout and
updated after it, so `update` sees the observations the policy acted on.

NaN/Inf guard: a rollout holding a non-finite transition, or an update whose losses or new parameters are
non-finite, is counted; under --on-nan skip that rollout's update is discarded (the agent keeps its state).

First chunk: the update program is the run's largest compile (2-3 s of CPU for PPO on CartPole-v1, most of it
XLA's code generation, which releases the GIL). The first chunk compiles it ahead of time in a background thread
(`_compile_update_ahead`) while the acting noise draw compiles and the first rollout is collected, and waits for it
only when the update is due. The chunk is still the compiling chunk, so all of its wall time counts as
compile time; the update program and its results are the ones the plain first call would have compiled.
"""

from __future__ import annotations

import math
import threading
from functools import partial
from pathlib import Path
from typing import Any

import jax
import numpy as np

from critix.agents import contract
from critix.envs.gym import REWARD_CLIP
from critix.train import checkpoint, guards
from critix.train.config import RunConfig, plan_of
from critix.train.host import HostStepper, Staging
from critix.train.run import Chunk
from critix.types import Rollout, Transition


class OnPolicy(HostStepper):
    """Host stepper of on-policy agents."""

    scales_rewards = True

    def __init__(self, algo: str, agent_cfg: Any, run: RunConfig) -> None:
        super().__init__(algo, agent_cfg, run)
        run = self.run  # resolved: loop settings left at None hold the algorithm's defaults
        self.plan = plan_of(run)
        try:
            contract.check_plan(self.module, agent_cfg, self.plan)
        except Exception:
            self.close()
            raise
        self.rollout_length = T = self.plan.rollout_length
        self.total_vector_steps = math.ceil(run.steps / (T * run.num_envs)) * T  # whole rollouts
        self.total_steps = self.total_vector_steps * run.num_envs
        self.rollouts_per_chunk = max(1, math.ceil(run.chunk_size / (T * run.num_envs)))
        self.per_update = self.module.gradient_steps_per_update(self.cfg, T * run.num_envs)
        self.stage = Staging(T, self.num_seeds * run.num_envs, self.obs_shape, np.float32, self.action_shape,
                             self.action_dtype)
        self.compiled = False
        self.update_compile: threading.Thread | None = None
        self.update_lowered = threading.Event()
        cfg, module, prepare, skip = self.cfg, self.module, self.prepare, run.on_nan == "skip"

        def train_rollout(state: Any, rollout: Transition, mean: jax.Array, var: jax.Array) -> Any:
            def prepared(r: Transition) -> Transition:
                return r.replace(obs=prepare(r.obs, mean, var), next_obs=prepare(r.next_obs, mean, var))

            state, metrics, bad_items, bad_update = guards.update_on_rollout(partial(module.update, cfg), state,
                                                                             rollout, prepared, skip)
            return state, metrics, {"transitions": bad_items, "updates": bad_update}

        self.train_rollout = jax.jit(jax.vmap(train_rollout), donate_argnums=(0,))

    # ---- state -----------------------------------------------------------------------------------------------
    def example_rollout(self) -> Transition:
        """A zero rollout [T, N, ...] of this env: the shapes and dtypes `update` trains on."""
        T, N = self.rollout_length, self.num_envs
        obs = np.zeros((T, N, *self.obs_shape), np.float32)
        flags = np.zeros((T, N), bool)
        return Transition(obs, np.zeros((T, N, *self.action_shape), self.action_dtype), np.zeros((T, N), np.float32),
                          obs, flags, flags)

    def fresh(self) -> None:
        agent_key, loop_key = jax.random.split(jax.random.PRNGKey(self.run.seed))
        obs_space, act_space, cfg, module = self.obs_space, self.act_space, self.cfg, self.module
        self.agent = jax.jit(jax.vmap(lambda k: module.init(cfg, k, obs_space, act_space, self.plan)))(
            jax.random.split(agent_key, self.num_seeds))
        self.key = jax.random.split(loop_key, self.num_seeds)  # checkpointed; acting draws from contract.acting_keys
        self.ret_rms = type(self.obs_rms).create(self.num_seeds, ())
        self.vector_steps = self.updates = self.episodes = 0

    def arrays(self) -> dict[str, Any]:
        return {"agent": self.agent, "key": self.key, "obs_rms": self.rms_arrays(self.obs_rms),
                "ret_rms": self.rms_arrays(self.ret_rms)}

    def start(self, restored: tuple[Path, dict[str, Any]] | None) -> int:
        self.fresh()
        if restored is not None:
            arrays, meta = checkpoint.load(restored[0], self.arrays())
            self.agent, self.key = jax.device_put(arrays["agent"]), jax.device_put(arrays["key"])
            self.obs_rms, self.ret_rms = self.rms_from(arrays["obs_rms"]), self.rms_from(arrays["ret_rms"])
            self.restore_counters(meta)
        self.begin(None if restored is None else restored[1])
        return self.vector_steps * self.num_envs

    def state(self) -> tuple[Any, dict[str, Any]]:
        return self.arrays(), self.loop_meta()

    def gradient_steps(self) -> int:
        return self.updates * self.per_update


    def metric_names(self) -> list[str]:
        cfg, module, obs_space, act_space = self.cfg, self.module, self.obs_space, self.act_space
        agent = jax.eval_shape(lambda: module.init(cfg, jax.random.PRNGKey(0), obs_space, act_space, self.plan))
        _, metrics = jax.eval_shape(lambda s, r: module.update(cfg, s, Rollout(r)), agent, self.example_rollout())
        return sorted(metrics) + ["train/episode_return"]

    # ---- one chunk -------------------------------------------------------------------------------------------
    def advance(self) -> Chunk:
        compiling, bad = not self.compiled, np.zeros(2, np.int64)
        if compiling:
            self._compile_update_ahead()
        for _ in range(min(self.rollouts_per_chunk, (self.total_vector_steps - self.vector_steps) // self.rollout_length)):
            bad += self._rollout_and_update()
        self.compiled = True
        return Chunk(self.vector_steps * self.num_envs, compiling, True, int(bad[0]), int(bad[1]) * self.per_update)

    def _compile_update_ahead(self) -> None:
        """Start compiling `train_rollout` for this run's arguments in a background thread. `jit`'s
        `lower(...).compile()` fills the same cache its call looks up, so the first update then runs the program
        compiled here; XLA compiles without the GIL, beside the acting compile and the rollout's env steps. Tracing
        and lowering hold the GIL: the first rollout's env steps wait for them (`update_lowered`), while the acting
        noise draw compiles (`Acting.prefetch`), as they are the start of the chunk's longest path. Only shapes and
        dtypes are read: the rollout is zeros shaped as `stage.by_seed`'s views."""
        T, S = self.rollout_length, self.num_seeds
        mean, var = self.stats()
        args = (self.agent, jax.tree.map(np.zeros_like, self.stage.by_seed(T, S)), mean, var)

        def compile_update() -> None:
            try:
                lowered = self.train_rollout.lower(*args)
                self.update_lowered.set()
                lowered.compile()
            except Exception:  # the first update's own call compiles again and raises it where it belongs
                pass
            finally:
                self.update_lowered.set()

        self.update_compile = threading.Thread(target=compile_update, name="critix-update-compile", daemon=True)
        self.update_compile.start()

    def _await_update_compile(self) -> None:
        """Wait for the ahead-of-time compile of the update, if one is running, so the program compiles once."""
        if self.update_compile is not None:
            self.update_compile.join()
            self.update_compile = None

    def stored_reward(self, reward: np.ndarray, terminated: np.ndarray, truncated: np.ndarray) -> np.ndarray:
        """With --normalize-reward, SB3 VecNormalize's scaling by the std of the running discounted return."""
        if not self.run.normalize_reward:
            return reward
        S, N = self.num_seeds, self.num_envs
        self.discounted_return = self.discounted_return * self.cfg.gamma + reward
        self.ret_rms.update(self.discounted_return.reshape(S, N))
        scaled = np.clip(reward / np.sqrt(np.repeat(self.ret_rms.var, N) + 1e-8), -REWARD_CLIP, REWARD_CLIP)
        self.discounted_return[terminated | truncated] = 0.0
        return scaled

    def _rollout_and_update(self) -> np.ndarray:
        run, S, N, T = self.run, self.num_seeds, self.num_envs, self.rollout_length
        mean, var = self.stats()
        self.acting.start(self.agent)
        if self.update_compile is not None:  # the first rollout: see _compile_update_ahead
            self.acting.prefetch(self.vector_steps)
            self.update_lowered.wait()
        for t in range(T):
            self.step_envs(t, self.explore(mean, var))
        rollout = self.stage.by_seed(T, S)
        self._await_update_compile()
        self.agent, metrics, guard = self.train_rollout(self.agent, rollout, mean, var)
        self.train_metrics = metrics
        jax.block_until_ready(self.agent)  # so the chunk's time includes its update
        if run.normalize_obs and (run.on_nan == "stop" or np.isfinite(rollout.obs).all()):
            self.obs_rms.update(rollout.obs.reshape(S, T * N, *self.obs_shape))
        self.updates += 1
        guard = jax.device_get(guard)
        return np.array([np.sum(guard["transitions"]), np.sum(guard["updates"])])
