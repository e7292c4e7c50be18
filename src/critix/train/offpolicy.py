"""The off-policy host stepper: Gymnasium envs on the host, compiled update chunks, S seeds in one process.

One Gymnasium vector env holds S seeds x N envs (seed-major). A chunk steps the env `chunk_size` times (one
vmapped, jitted `act` per step; uniform random actions before `learning_starts`), then makes one compiled call
that writes the chunk's transitions into the device-resident replay buffers and runs `utd_ratio x` (the chunk's
env steps) gradient steps per seed. How an agent samples and updates is the agent's data path
(`critix.agents.contract`): uniform batches, n-step sequences, or its own sampler (prioritized replay).

With `--overlap-updates` the compiled call of a chunk is dispatched at the start of the next chunk, which then
steps the envs while XLA runs it (a second core): chunk c acts with the agent that the updates on chunks up to c-2
made, one chunk staler than without the flag. The chunk's transitions wait on the host (a second staging area)
until then, and a checkpoint saves them, so a resumed run continues exactly. XLA's CPU client runs calls in order,
so nothing in the acting path may call the device while the updates run: the chunk's random numbers are drawn
before the dispatch (`Acting.draw_ahead`, which also dispatches the next block), and NumPy acting takes the
parameters the previous call returned (every chunk call returns them beside its guard counters: `host_flat`).
(With --acting jit the first act waits for the updates: correct, but without the overlap.) The last chunk of a run
is trained before the run ends.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from critix import validation
from critix.agents import contract
from critix.data import replay
from critix.envs.gym import random_actions
from critix.train import checkpoint, guards
from critix.train.config import RunConfig, plan_of
from critix.train.host import HostStepper, Staging
from critix.train.run import Chunk
from critix.types import CritixError, Transition

DEFAULT_CHUNK = 50
"""Vector steps per chunk when --chunk-size is 0."""


class OffPolicy(HostStepper):
    """Host stepper of off-policy agents. `initial(stepper)` may change a fresh run's state (offline-to-online
    fine-tuning loads offline agents and the dataset into the buffers); `capacity` overrides the buffer size;
    warm-up actions come from numpy's stream [seed, `random_stream`] (`critix collect` keeps its own, 2)."""

    def __init__(self, algo: str, agent_cfg: Any, run: RunConfig, capacity: int | None = None,
                 initial: Callable[[OffPolicy], None] | None = None, random_stream: int = 1) -> None:
        super().__init__(algo, agent_cfg, run)
        self.initial, self.random_stream = initial, random_stream
        try:
            self._setup(agent_cfg, self.run, capacity)
        except CritixError:
            self.close()
            raise

    def _setup(self, agent_cfg: Any, run: RunConfig, capacity: int | None) -> None:
        # Images (uint8 or bool Box spaces, e.g. Atari, MinAtar) are stored compactly as uint8; the rest as float32.
        self.obs_dtype = np.uint8 if np.dtype(self.obs_space.dtype) in (np.uint8, np.bool_) else np.float32
        if run.normalize_obs and self.obs_dtype == np.uint8:
            raise CritixError("--normalize-obs is for vector observations; image observations are scaled by the encoder")
        self.data_path = contract.data_path(self.module, agent_cfg)
        self.plan = plan_of(run)
        contract.check_plan(self.module, agent_cfg, self.plan)
        self.capacity = capacity or min(self.plan.buffer_size, run.steps)
        replay.check_capacity(self.capacity, agent_cfg.batch_size)
        item_bytes = sum(np.asarray(x).nbytes for x in jax.tree.leaves(self.example()))
        validation.check_buffer_memory(self.capacity, item_bytes, run.num_seeds)
        if run.on_nan == "skip" and not self.data_path.drops_items:
            raise CritixError(f"--on-nan skip drops non-finite transitions from the replay buffer, which would break "
                              f"the order that {self.data_path.name} relies on; use --on-nan stop")
        N = self.num_envs
        self.total_vector_steps = math.ceil(run.steps / N)
        self.total_steps = self.total_vector_steps * N
        self.chunk = min(self.chunk_vector_steps(DEFAULT_CHUNK), self.total_vector_steps)
        def staging() -> Staging:
            return Staging(self.chunk, self.num_seeds * N, self.obs_shape, self.obs_dtype, self.action_shape,
                           self.action_dtype)

        self.stage = staging()  # the transitions of the chunk being stepped, or of the last one
        self.overlap = run.overlap_updates
        # --overlap-updates: the staging area the updates in flight read while the next chunk writes `stage`
        self.spare_stage = staging() if self.overlap else None
        self.pending: Pending | None = None  # --overlap-updates: `stage` holds a chunk whose updates are to run
        self.compiled_variants: set[tuple[int, int]] = set()  # (env steps, gradient steps) of train_chunk calls
        # The agent of the last training call and its acting parameters [S, P] on the host, which the call returned
        # (`Acting.flatten`) and the loop read back with its guard counters: acting need not copy them again.
        self.host_flat: tuple[Any, np.ndarray] | None = None
        self.policy_compiled = False
        self._build_functions()

    def _build_functions(self) -> None:
        cfg, module, prepare, path = self.cfg, self.module, self.prepare, self.data_path
        skip = self.run.on_nan == "skip"

        def acting_params(state):  # type: ignore[no-untyped-def]
            # NumPy acting's parameters after the call (`Acting.flatten`), read back with the guard counters
            return self.acting.flatten(state) if self.acting.evaluator == "numpy" else None

        def train_chunk(state, buffer, key, items, mean, var, num_updates):  # type: ignore[no-untyped-def]
            # guard: counts of non-finite transitions and updates in this chunk (see critix.train.guards)
            buffer, bad_items = guards.add_items(buffer, items, skip)
            guard = {"transitions": bad_items, "updates": jnp.zeros((), jnp.int32)}
            state = path.after_add(state, buffer, items.reward.shape[0])
            if num_updates == 0:
                return state, buffer, key, {}, guard, acting_params(state)
            key, sample_key = jax.random.split(key)

            def prepare_batch(b: Transition) -> Transition:
                return b.replace(obs=prepare(b.obs, mean, var), next_obs=prepare(b.next_obs, mean, var))

            state, metrics, guard["updates"] = guards.update_from_buffer(
                path, partial(module.update, cfg), state, buffer, sample_key, num_updates, self.num_envs,
                prepare_batch, skip)
            return state, buffer, key, jax.tree.map(jnp.nanmean, metrics), guard, acting_params(state)

        # --overlap-updates acts with the agent passed in while the call runs, so that argument is not donated
        donate = (1, 2) if self.overlap else (0, 1, 2)
        self.train_chunk = jax.jit(
            jax.vmap(train_chunk, in_axes=(0, 0, 0, 0, 0, 0, None)), static_argnums=6, donate_argnums=donate
        )
        # One program for every chunk where the data path allows it (`DataPath.step`): the chunk's items padded to
        # the full chunk, the item and update counts as arguments. A chunk of k steps and u updates computes what
        # `train_chunk` computes for (k, u): the first k items are written (`replay.add_masked` on a valid prefix
        # writes what `replay.add` writes), the batches are the first u of the full chunk's draw (with threefry's
        # partitionable keys a [U, B] draw begins with the [u, B] draw of the same key), and the updates after the
        # u-th are skipped by a `lax.cond`. So the chunks before learning starts and the last, shorter chunk of a
        # run compile nothing new (each such program took seconds to compile).
        # It is used when the run ends with a shorter chunk, where it saves a compile of seconds; a run whose
        # chunks all have the same length keeps the program without the masks (cheaper per call: with chunks of 4
        # env steps, 25,000 calls per 100,000 steps) beside the small write-only one of the chunks before learning
        # starts. Both compute the same values.
        step = path.step
        self.masked = (step is not None and not skip and jax.config.jax_threefry_partitionable
                       and self.total_vector_steps % self.chunk != 0)
        if not self.masked:
            return
        num_envs = self.num_envs

        def train_masked(state, buffer, key, items, mean, var, num_items, num_updates, max_updates):  # type: ignore[no-untyped-def]
            valid = jnp.arange(items.reward.shape[0]) < num_items
            bad_items = (valid & ~guards.finite_items(items)).sum()
            buffer = replay.add_masked(buffer, items, valid)
            new_key, sample_key = jax.random.split(key)

            def prepare_batch(b: Transition) -> Transition:
                return b.replace(obs=prepare(b.obs, mean, var), next_obs=prepare(b.next_obs, mean, var))

            batches = prepare_batch(path.sample(buffer, sample_key, max_updates, num_envs))
            _, shapes = jax.eval_shape(step, state, jax.tree.map(lambda x: x[0], batches))
            skipped = {name: jnp.full(s.shape, jnp.nan, s.dtype) for name, s in shapes.items()}

            def one(state, xs):  # type: ignore[no-untyped-def]
                batch, i = xs
                return jax.lax.cond(i < num_updates, step, lambda s, b: (s, skipped), state, batch)

            state, metrics = jax.lax.scan(one, state, (batches, jnp.arange(max_updates)))
            key = jnp.where(num_updates > 0, new_key, key)
            guard = {"transitions": bad_items, "updates": guards.bad_updates(state, metrics)}
            return state, buffer, key, jax.tree.map(jnp.nanmean, metrics), guard, acting_params(state)

        self.train_masked = jax.jit(
            jax.vmap(train_masked, in_axes=(0, 0, 0, 0, 0, 0, None, None, None)), static_argnums=8,
            donate_argnums=donate)

    # ---- state -----------------------------------------------------------------------------------------------
    def example(self) -> Transition:
        """One unbatched transition of this env, zero-filled: the shapes and dtypes the replay buffer stores."""
        obs = np.zeros(self.obs_shape, self.obs_dtype)
        return Transition(obs, np.zeros(self.action_shape, self.action_dtype), np.zeros((), np.float32), obs,
                          np.zeros((), bool), np.zeros((), bool))

    def fresh(self, capacity: int) -> None:
        """New agents (keys split from PRNGKey(seed)), empty buffers of `capacity`, fresh statistics."""
        agent_key, loop_key = jax.random.split(jax.random.PRNGKey(self.run.seed))
        obs_space, act_space, cfg, module = self.obs_space, self.act_space, self.cfg, self.module
        self.agent = jax.jit(jax.vmap(lambda k: module.init(cfg, k, obs_space, act_space, self.plan)))(
            jax.random.split(agent_key, self.num_seeds))
        example = self.example()
        self.buffer = jax.jit(jax.vmap(lambda _: replay.init(capacity, example)))(jnp.arange(self.num_seeds))
        self.key = jax.random.split(loop_key, self.num_seeds)
        self.vector_steps = self.updates = self.episodes = 0

    def arrays(self) -> dict[str, Any]:
        arrays = {"agent": self.agent, "buffer": self.buffer, "key": self.key,
                  "obs_rms": self.rms_arrays(self.obs_rms)}
        if self.overlap:  # the last chunk's transitions, which the next chunk writes into the buffers
            arrays["pending"] = self.stage.arrays()
        return arrays

    def start(self, restored: tuple[Path, dict[str, Any]] | None) -> int:
        self.rng = np.random.default_rng([self.run.seed, self.random_stream])  # actions before learning starts
        if restored is None:
            self.fresh(self.capacity)
            if self.initial is not None:
                self.initial(self)
            self.begin(None)
            return 0
        ckpt, meta = restored
        if self.overlap != ("pending" in meta):
            have, want = ("with", "without") if "pending" in meta else ("without", "with")
            raise CritixError(f"this checkpoint was written {have} --overlap-updates (its chunks' updates run "
                              f"{'one chunk later' if have == 'with' else 'at once'}); resume it {have} the flag, not "
                              f"{want} it")
        saved_capacity = int(meta.get("buffer_capacity", self.capacity))
        self.fresh(saved_capacity)
        arrays, _ = checkpoint.load(ckpt, self.arrays())
        self.agent, self.key = jax.device_put(arrays["agent"]), jax.device_put(arrays["key"])
        self.buffer = jax.device_put(arrays["buffer"])
        if self.capacity > saved_capacity:  # the run was extended (--steps): grow the ring, keeping its data
            self.buffer = jax.vmap(lambda b: replay.grow(b, self.capacity))(self.buffer)
        self.obs_rms = self.rms_from(arrays["obs_rms"])
        if self.overlap:
            self.stage.load(arrays["pending"])
            self.pending = None if meta["pending"] is None else Pending(**meta["pending"])
        self.restore_counters(meta)
        self.rng.bit_generator.state = meta["numpy_rng"]
        self.begin(meta)
        return self.vector_steps * self.num_envs

    def state(self) -> tuple[Any, dict[str, Any]]:
        meta = {**self.loop_meta(), "numpy_rng": self.rng.bit_generator.state, "buffer_capacity": self.buffer.capacity}
        if self.overlap:
            meta["pending"] = None if self.pending is None else dataclasses.asdict(self.pending)
        return self.arrays(), meta

    def gradient_steps(self) -> int:
        return self.updates


    def metric_names(self) -> list[str]:
        """The agent's update metrics (found by tracing its update) and the episode return."""
        cfg, module, obs_space, act_space = self.cfg, self.module, self.obs_space, self.act_space
        agent = jax.eval_shape(lambda: module.init(cfg, jax.random.PRNGKey(0), obs_space, act_space, self.plan))
        batch = jax.tree.map(lambda x: jax.ShapeDtypeStruct((*self.data_path.batch_shape, *x.shape), x.dtype),
                             self.example())
        _, metrics = jax.eval_shape(lambda s, b: module.update(cfg, s, b), agent, batch)
        return sorted(metrics) + ["train/episode_return"]

    # ---- one chunk -------------------------------------------------------------------------------------------
    def advance(self) -> Chunk:
        N, starts = self.num_envs, self.plan.learning_starts
        k_steps = min(self.chunk, self.total_vector_steps - self.vector_steps)
        learning = self.vector_steps * N >= starts
        first, end = self.vector_steps, self.vector_steps + k_steps
        acts = (end - 1) * N >= starts  # the chunk acts with the policy from some step on
        acting_from = max(first, math.ceil(starts / N))  # its first vector step that acts with the policy
        acting_agent = self.agent  # the updates below replace self.agent, not the agent this chunk acts with
        mean, var = self.stats()  # the chunk acts, and its calls normalise, with the statistics from before it
        compiling = acts and not self.policy_compiled
        bad = np.zeros(2, np.int64)  # non-finite transitions and updates reported by this chunk
        waiting: list[Any] = []
        if self.pending is not None:  # --overlap-updates: the last chunk's updates, run while this chunk acts
            # The chunk's random numbers are drawn before the dispatch, except while their first draw compiles in
            # its thread (`Acting.prefetch`): then the dispatch and its compile go first, beside that compile.
            draw_first = acts and not self.acting.prefetching
            if acts:
                self.acting.start(acting_agent, self.flat_of(acting_agent))
            if draw_first:
                self.acting.draw_ahead(acting_from, end)
            compiling |= self.dispatch(self.stage, self.pending, mean, var)
            if acts and not draw_first:
                self.acting.draw_ahead(acting_from, end)
            waiting.append((self.guard, self.acting_flat))
            self.stage, self.spare_stage = self.spare_stage, self.stage  # the call reads the spare meanwhile
        elif not self.policy_compiled:  # the policy's first random numbers (a compile) beside this chunk's work
            self.acting.prefetch(acting_from)
        self.step_chunk(k_steps, acting_agent, mean, var)
        self.policy_compiled = self.policy_compiled or acts
        steps_now = self.vector_steps * N
        chunk = Pending(k_steps, max(1, round(self.plan.utd_ratio * k_steps * N)) if steps_now >= starts else 0)
        if self.run.normalize_obs:
            items = self.stage.by_seed(k_steps, self.num_seeds).obs
            if self.run.on_nan == "stop" or np.isfinite(items).all():
                self.obs_rms.update(items.reshape(self.num_seeds, -1, *self.obs_shape))
        if self.overlap and self.vector_steps < self.total_vector_steps:
            self.pending = chunk  # dispatched by the next chunk
        else:  # without the overlap; and the last chunk of an overlapping run, which is trained before it ends
            self.pending = None
            compiling |= self.dispatch(self.stage, chunk, mean, var)
            waiting.append((self.guard, self.acting_flat))
        # Waits for the updates: the chunk's time includes them (np.asarray per array: a tenth of device_get's cost)
        done = [(np.asarray(guard["transitions"]), np.asarray(guard["updates"]),
                 None if flat is None else np.asarray(flat)) for guard, flat in waiting]
        for transitions, updates, _ in done:
            bad += [int(transitions.sum()), int(updates.sum())]
        if done:  # the last call's agent is self.agent
            self.host_flat = None if done[-1][2] is None else (self.agent, done[-1][2])
        else:
            jax.block_until_ready(self.agent)
        return Chunk(steps_now, compiling, learning, int(bad[0]), int(bad[1]))

    def step_chunk(self, k_steps: int, agent: Any, mean: np.ndarray, var: np.ndarray) -> None:
        """Step the envs `k_steps` times into `stage[:k_steps]`: uniform random actions before learning starts,
        then the policy of `agent` on observations normalised with (mean, var)."""
        S, N, starts = self.num_seeds, self.num_envs, self.plan.learning_starts
        random_steps = min(k_steps, max(0, math.ceil(starts / N) - self.vector_steps))
        for k in range(random_steps):
            self.step_envs(k, random_actions(self.rng, self.act_space, S * N))
        if random_steps < k_steps:  # acting copies the agent's parameters once (NumPy) or keeps the agent (jit)
            self.acting.start(agent, self.flat_of(agent))
        explore, step_envs = self.explore, self.step_envs
        for k in range(random_steps, k_steps):
            step_envs(k, explore(mean, var))
        self.staged = k_steps  # the chunk's host steps are stage[:k_steps] (`critix collect` records them)

    def flat_of(self, agent: Any) -> np.ndarray | None:
        """`agent`'s acting parameters on the host if its training call returned them, else None."""
        return self.host_flat[1] if self.host_flat is not None and self.host_flat[0] is agent else None

    def dispatch(self, stage: Staging, chunk: Pending, mean: np.ndarray, var: np.ndarray) -> bool:
        """Write `stage[:chunk.k_steps]` into the replay buffers and run the chunk's gradient steps on batches
        normalised with (mean, var): one compiled call, which returns before it finishes (its guard counters in
        `self.guard`, NumPy acting's parameters after it in `self.acting_flat`). Returns whether the call compiled."""
        S, N = self.num_seeds, self.num_envs
        variant = (self.chunk, 0) if self.masked else (chunk.k_steps, chunk.num_updates)
        compiling = variant not in self.compiled_variants
        self.compiled_variants.add(variant)
        if self.masked:  # the whole staging area (its rows past k_steps are masked out), the counts as arguments
            padded = jax.tree.map(lambda x: x.reshape(S, self.chunk * N, *x.shape[3:]), stage.by_seed(self.chunk, S))
            max_updates = max(1, round(self.plan.utd_ratio * self.chunk * N))
            self.agent, self.buffer, self.key, metrics, self.guard, self.acting_flat = self.train_masked(
                self.agent, self.buffer, self.key, padded, mean, var, np.int32(chunk.k_steps * N),
                np.int32(chunk.num_updates), max_updates)
        else:
            # per seed, [S, k * N, ...]: the order of the replay buffer (time-major, N envs a step)
            items = jax.tree.map(lambda x: x.reshape(S, chunk.k_steps * N, *x.shape[3:]),
                                 stage.by_seed(chunk.k_steps, S))
            self.agent, self.buffer, self.key, metrics, self.guard, self.acting_flat = self.train_chunk(
                self.agent, self.buffer, self.key, items, mean, var, chunk.num_updates)
        if chunk.num_updates:
            self.updates += chunk.num_updates
            self.train_metrics = metrics
        return compiling


@dataclasses.dataclass(frozen=True)
class Pending:
    """A chunk's transitions on their way to the replay buffers: how many vector steps, how many gradient steps."""

    k_steps: int
    num_updates: int
