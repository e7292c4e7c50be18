"""What the two host-mode steppers share: the run's Gymnasium envs, acting, evaluation and the episode bookkeeping.

The off-policy stepper (`critix.train.offpolicy`) and the on-policy stepper (`critix.train.onpolicy`) both keep
S seeds x N envs in one Gymnasium vector env (seed-major), act with the agent's `PolicyFunctions` (`Acting`, with
optional observation normalisation), and evaluate deterministically on separate eval envs. `HostStepper` is that common
part: it holds the envs' current observations, running episode returns, the returns of finished episodes not yet
logged and the last training metrics, and saves and restores them with the envs themselves
(`critix.train.resume`) for an exact resume.

Acting (`Acting`): an env step of CartPole takes about 8 us, a compiled call about 30-350 us of dispatch and tiny
kernels, a 64x64 MLP's arithmetic a few us. So for small MLP policies the host loops evaluate the agent's policy in
NumPy (`critix.agents.contract.PolicyFunctions`: the same function the agent's `act` compiles), with the parameters copied
to the host once per chunk (the acting network changes only when a chunk's updates are applied), and the random
numbers drawn on the device NOISE_BLOCK steps at a time from keys of (seed, step). Large networks and pixel encoders
keep one compiled call per step, on the same random numbers. Either way the actions are a function of (parameters,
observations, seed, step), so a run is reproducible and resumes exactly.
"""

from __future__ import annotations

import math
import threading
from typing import Any

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np

from critix import agents
from critix.agents import contract
from critix.envs.gym import (RunningMeanStd, final_observation, make_vector_env, normalize_obs, parse_env_kwargs,
                             scale_action)
from critix.train import checkpoint
from critix.train.config import RunConfig, eval_env_seed, resolve, train_env_seed
from critix.train.evaluate import evaluate
from critix.train.resume import LoopState, restore_loop
from critix.types import CritixError, Transition


class Staging:
    """Host arrays for up to `length` vector steps of `num` envs, allocated once: what a chunk or a rollout collects
    before it goes to the device. Rewards are kept as the env returned them (float64) until `transitions`."""

    def __init__(self, length: int, num: int, obs_shape: tuple[int, ...], obs_dtype: Any,
                 action_shape: tuple[int, ...], action_dtype: Any) -> None:
        self.obs = np.zeros((length, num, *obs_shape), obs_dtype)
        self.next_obs = np.zeros_like(self.obs)
        self.action = np.zeros((length, num, *action_shape), action_dtype)
        self.reward = np.zeros((length, num), np.float64)
        self.terminated = np.zeros((length, num), bool)
        self.truncated = np.zeros((length, num), bool)

    def transitions(self, length: int) -> Transition:
        """The first `length` steps as a Transition [length, num, ...] (float32 rewards), views where possible."""
        return Transition(self.obs[:length], self.action[:length], self.reward[:length].astype(np.float32),
                          self.next_obs[:length], self.terminated[:length], self.truncated[:length])

    def arrays(self) -> dict[str, np.ndarray]:
        """The staging arrays by name (a checkpoint saves the transitions that have not reached the device yet)."""
        return {name: getattr(self, name) for name in ("obs", "next_obs", "action", "reward", "terminated", "truncated")}

    def load(self, arrays: dict[str, np.ndarray]) -> None:
        """Put back what `arrays` returned (shapes and dtypes checked by the checkpoint's template)."""
        for name, values in arrays.items():
            getattr(self, name)[...] = values

    def by_seed(self, length: int, num_seeds: int) -> Transition:
        """The first `length` steps per seed, [S, length, N, ...] for the seed-major envs (N per seed)."""
        def per_seed(x: np.ndarray) -> np.ndarray:
            return x.reshape(length, num_seeds, -1, *x.shape[2:]).swapaxes(0, 1)

        return jax.tree.map(per_seed, self.transitions(length))


HOST_ACTING_MAX_MACS = 1 << 20
"""`--acting auto` evaluates the policy in NumPy when one act (all S x N envs) costs at most this many multiply-adds
(about: the policy's parameters per seed x S x N), else compiled. Measured (benchmarks/act_speed.py): a 64x64 MLP
on one observation takes ~5 us in NumPy against ~100 us for the compiled call; NumPy's advantage is its small
per-call overhead, which matters less as the arithmetic grows, while its BLAS may start threads that compete
with XLA's on a few cores (a 1024x1024 layer)."""
NOISE_BLOCK = 256
"""Vector steps of random numbers the host loops draw per device call: block b covers the run's vector steps
[256 b, 256 (b + 1))."""
ACTING_CHOICES = ("auto", "numpy", "jit")
DRAW_COMPILER_OPTIONS: dict[str, dict[str, Any]] = {"cpu": {"xla_backend_optimization_level": 0}}
"""XLA options of the noise draw by backend (`Acting`): unoptimised code on CPU, where compiling it optimised takes
longer than all the draws of a 100,000-step run."""


class Acting:
    """How a host loop computes actions from the agent's `PolicyFunctions` (`critix.agents.contract`), for S seeds x N envs.

    evaluator "numpy": `policy.act` with NumPy on parameters copied from the device by `start` (once per chunk or
    rollout, after its updates); "jit": one compiled, seed-vmapped call per step. Random numbers: `policy.noise`
    of vector step t comes from key `contract.step_key(acting key, t)` (as in a compiled run), drawn on the
    device a block of NOISE_BLOCK steps at a time; both evaluators use them, so they compute the same actions (within float rounding),
    and the actions of step t depend only on the parameters, the observations and (seed, t): chunk sizes and
    resumes do not move them.
    """

    def __init__(self, module: Any, cfg: Any, agent: Any, num_seeds: int, num_envs: int, choice: str,
                 normalize: bool, keys: jax.Array) -> None:
        self.policy: contract.PolicyFunctions = module.policy(cfg, agent)
        self.num_seeds, self.num_envs, self.normalize, self.keys = num_seeds, num_envs, normalize, keys
        per_seed = sum(math.prod(x.shape[1:]) for x in jax.tree.leaves(jax.eval_shape(jax.vmap(self.policy.params),
                                                                                            agent)))
        self.macs = per_seed * num_seeds * num_envs
        self.evaluator = choose_evaluator(choice, self.policy.host, self.macs)
        policy, prepare = self.policy, self.prepare

        def draw(key: jax.Array, block: jax.Array) -> Any:
            steps = block * NOISE_BLOCK + jnp.arange(NOISE_BLOCK, dtype=jnp.int32)
            return jax.vmap(lambda t: policy.noise(contract.step_key(key, t), num_envs))(steps)

        def act(state: Any, obs: jax.Array, noise: Any, mean: jax.Array, var: jax.Array, deterministic: bool) -> Any:
            return policy.act(jnp, policy.params(state), prepare(obs, mean, var), noise, deterministic)

        def flat_params(state: Any) -> jax.Array:  # one float32 vector, so that a copy to the host is one transfer
            return jnp.concatenate([jnp.ravel(x).astype(jnp.float32) for x in jax.tree.leaves(policy.params(state))])

        self.flatten = flat_params
        """One seed's acting parameters as one float32 vector [P] (JAX), what `start` copies to the host: a training
        call may compute it beside its updates and return it, so that `start` need not make a call of its own."""

        # keys [S, 2], block -> noise [S, BLOCK, N, ...]. Unoptimised on CPU it gives the optimised draw's bits (for
        # every family's noise: tests/unit/test_acting.py), compiles in 0.1-0.2 s against 0.3-0.7 s, and runs once
        # per NOISE_BLOCK steps (DQN's noise for one env: about 90 against 55 us, 0.1 us a step).
        self.draw = jax.jit(jax.vmap(draw, in_axes=(0, None)), compiler_options=DRAW_COMPILER_OPTIONS.get(
            jax.default_backend()))
        self.compiled_act = jax.jit(jax.vmap(act, in_axes=(0, 0, 0, 0, 0, None)), static_argnums=5)
        self.flat_params = jax.jit(jax.vmap(flat_params))
        leaves, self.params_tree = jax.tree.flatten(jax.eval_shape(jax.vmap(policy.params), agent))
        self.params_layout = [(x.shape[1:], x.dtype, math.prod(x.shape[1:])) for x in leaves]
        self.agent: Any = None
        self.params: Any = None
        self.block = -1
        self.noise: list[np.ndarray] = []
        self.ahead: dict[int, list[np.ndarray]] = {}  # blocks drawn before they are needed (`draw_ahead`)
        self.dispatched: dict[int, Any] = {}  # blocks whose draw was dispatched and not read yet (`draw_ahead`)
        self.prefetched: tuple[int, threading.Thread, list[Any]] | None = None

    def prepare(self, obs: Any, mean: Any, var: Any, xp: Any = jnp) -> Any:
        """Observations as the agent sees them: normalised with the running statistics if the run asks for it."""
        return normalize_obs(obs, mean, var, xp=xp) if self.normalize else obs

    def start(self, agent: Any, flat: np.ndarray | None = None) -> None:
        """Act with `agent` from now on (a chunk or rollout begins; its parameters are copied once for NumPy).
        `flat`: `flatten` of `agent` per seed [S, P] on the host, if the caller has it already."""
        if agent is not self.agent:
            self.agent = agent
            if self.evaluator == "numpy":
                flat = np.asarray(self.flat_params(agent)) if flat is None else flat
                leaves, offset = [], 0
                for shape, dtype, size in self.params_layout:
                    leaves.append(flat[:, offset:offset + size].reshape(-1, *shape).astype(dtype, copy=False))
                    offset += size
                # One seed: the policy on unbatched parameters (NumPy's 2-D matmul costs half its batched one)
                self.params = self.params_tree.unflatten([x[0] for x in leaves] if self.num_seeds == 1 else leaves)

    def prefetch(self, step: int) -> None:
        """Draw the random numbers of vector step `step`'s block in a background thread. The host loops call it in
        their first chunk, so that the draw's compile (about a second on 2 cores) runs beside the chunk's own work
        and compile instead of after them; `explore` takes the result. The numbers are the same either way."""
        block = step // NOISE_BLOCK
        if self.prefetched is not None or block == self.block:
            return
        out: list[Any] = []
        thread = threading.Thread(target=lambda: out.append(self.draw(self.keys, np.int32(block))), daemon=True)
        thread.start()
        self.prefetched = (block, thread, out)

    @property
    def prefetching(self) -> bool:
        """Whether a `prefetch` thread has started and its numbers have not been taken yet."""
        return self.prefetched is not None

    def draw_ahead(self, first: int, end: int) -> None:
        """Draw now the random numbers of vector steps [first, end) that are not on the host yet, so that acting
        them makes no device call: the off-policy loop calls it before it dispatches updates that run while it acts
        (`--overlap-updates`), because XLA's CPU client runs calls in order and a draw would wait for them."""
        last = (end - 1) // NOISE_BLOCK
        for block in range(first // NOISE_BLOCK, last + 1):
            if block != self.block and block not in self.ahead:
                self.ahead[block] = self._fetch(block)
        # The block after them is dispatched now and read when a later chunk needs it: it runs before the updates
        # this chunk dispatches next, and is on the host by then, so no chunk waits for a draw.
        if last + 1 not in self.ahead and last + 1 not in self.dispatched:
            self.dispatched[last + 1] = self.draw(self.keys, np.int32(last + 1))

    def _fetch(self, block: int) -> list[np.ndarray]:
        """The random numbers of `block` on the host, step-major: leaves [BLOCK, S, N, ...] (one seed with NumPy:
        [BLOCK, N, ...], as `host_act` takes them), from the prefetch thread if it drew them, else drawn now."""
        noise = self.dispatched.pop(block, None)
        if self.prefetched is not None:
            ahead, thread, out = self.prefetched
            thread.join()
            if ahead == block and out and noise is None:
                noise = out[0]
            self.prefetched = None if ahead <= block else self.prefetched
        if noise is None:
            noise = self.draw(self.keys, np.int32(block))
        leaves, self.noise_tree = jax.tree.flatten(noise)
        if self.evaluator == "numpy" and self.num_seeds == 1:
            return [np.asarray(leaf)[0] for leaf in leaves]
        return [np.moveaxis(np.asarray(leaf), 1, 0) for leaf in leaves]

    def explore(self, obs: np.ndarray, mean: np.ndarray, var: np.ndarray, step: int) -> np.ndarray:
        """Exploring actions [S, N, ...] for observations [S, N, ...] at the run's vector step `step`."""
        block, t = divmod(step, NOISE_BLOCK)
        if block != self.block:
            noise = self.ahead.pop(block, None)
            self.noise = self._fetch(block) if noise is None else noise
            self.block, self.ahead = block, {b: v for b, v in self.ahead.items() if b > block}
            self.dispatched = {b: v for b, v in self.dispatched.items() if b > block}
        noise = self.noise_tree.unflatten([leaf[t] for leaf in self.noise])
        if self.evaluator == "numpy":
            return self.host_act(obs, mean, var, noise, False)
        return np.asarray(self.compiled_act(self.agent, obs, noise, mean, var, False))

    def host_act(self, obs: np.ndarray, mean: np.ndarray, var: np.ndarray, noise: Any, deterministic: bool) -> Any:
        """`policy.act` in NumPy on the host copy of the parameters: obs [S, B, ...] -> actions [S, B, ...]; with
        one seed the parameters and `noise` have no seed axis (`start`)."""
        if self.normalize:
            obs = normalize_obs(obs, mean[:, None], var[:, None], xp=np)
        if self.num_seeds == 1:
            return self.policy.act(np, self.params, obs[0], noise, deterministic)[None]
        return self.policy.act(np, self.params, obs, noise, deterministic)

    def greedy(self, agent: Any, obs: np.ndarray, mean: np.ndarray, var: np.ndarray) -> np.ndarray:
        """Deterministic actions [S, M, ...] of `agent` for observations [S, M, ...] (evaluation)."""
        self.start(agent)
        if self.evaluator == "numpy":
            return self.host_act(obs, mean, var, None, True)
        return np.asarray(self.compiled_act(agent, obs, None, mean, var, True))


def choose_evaluator(choice: str, host: bool, macs: int) -> str:
    """The evaluator `--acting` names: "numpy" or "jit"; "auto" picks NumPy for a policy that has a NumPy form and
    costs at most `HOST_ACTING_MAX_MACS` multiply-adds per act, else the compiled call."""
    if choice not in ACTING_CHOICES:
        raise CritixError(f"acting must be one of {', '.join(ACTING_CHOICES)}, got {choice!r}")
    if choice == "numpy" and not host:
        raise CritixError("--acting numpy: this policy has no NumPy form (a pixel encoder); use --acting jit or auto")
    if choice == "auto":
        return "numpy" if host and macs <= HOST_ACTING_MAX_MACS else "jit"
    return choice


class HostStepper:
    """Envs, acting functions, evaluation and episode bookkeeping of a host-mode run.

    Subclasses set `obs_dtype` (what observations are cast to before acting), build their training functions,
    and keep their device state in `agent` (leading seed axis S) and `obs_rms`.
    """

    mode = "host"
    unit = "env step"
    obs_dtype: Any = np.float32

    def __init__(self, algo: str, agent_cfg: Any, run: RunConfig) -> None:
        run = resolve(algo, run)  # loop settings left at None: the algorithm's defaults
        self.algo, self.cfg, self.run = algo, agent_cfg, run
        self.module = agents.get(algo).module
        self.env_id = run.env
        self.num_seeds, self.num_envs = run.num_seeds, run.num_envs
        self.num_members = run.num_seeds
        self.description = f"{algo} {run.env} x{run.num_seeds} seeds"
        self.env_kwargs = env_kwargs = parse_env_kwargs(run.env_kwargs)  # also for the video env
        self.env = make_vector_env(run.env, run.num_seeds * run.num_envs, train_env_seed(run.seed), run.vectorization,
                                   env_kwargs)
        self.obs_space, self.act_space = self.env.single_observation_space, self.env.single_action_space
        self.eval_env = None
        try:
            self.module.check_spaces(self.obs_space, self.act_space)
        except CritixError:
            self.env.close()
            raise
        self.eval_env = make_vector_env(run.env, run.num_seeds * run.eval_episodes, eval_env_seed(run.seed),
                                        env_kwargs=env_kwargs)
        self.discrete = isinstance(self.act_space, gym.spaces.Discrete)
        self.obs_shape = self.obs_space.shape
        self.seed_env_shape = (self.num_seeds, self.num_envs, *self.obs_shape)  # observations as `Acting` takes them
        # Actions as the agent emits them: [A] float32 (Box) or a scalar int32 index (Discrete).
        self.action_shape: tuple[int, ...] = () if self.discrete else tuple(self.act_space.shape)
        self.action_dtype = np.int32 if self.discrete else np.float32
        self.flat_action_shape = (self.num_seeds * self.num_envs, *self.action_shape)  # actions as the envs take them
        self.zero_nan_actions = run.on_nan == "skip"
        self.policy = self._sampler()
        self.env_action = self._env_action_function()
        self.agent: Any = None
        self._acting: Acting | None = None
        self.obs_rms = RunningMeanStd.create(self.num_seeds, self.obs_shape)
        self.vector_steps = self.episodes = 0

    # ---- acting ----------------------------------------------------------------------------------------------
    def prepare(self, obs: jax.Array, mean: jax.Array, var: jax.Array) -> jax.Array:
        """Observations as the agent sees them: normalised with the running statistics if the run asks for it."""
        return normalize_obs(obs, mean, var) if self.run.normalize_obs else obs

    def _sampler(self) -> Any:
        """policy(state, key, obs, mean, var) -> (action, key), jitted and vmapped over seeds: one exploring action
        per call with the agent's own `act`, for code that samples outside the training loop (`critix collect`)."""
        cfg, module, prepare = self.cfg, self.module, self.prepare

        def policy(state: Any, key: jax.Array, obs: jax.Array, mean: jax.Array, var: jax.Array) -> Any:
            key, act_key = jax.random.split(key)
            return module.act(cfg, state, prepare(obs, mean, var), act_key, False), key

        return jax.jit(jax.vmap(policy))

    def _env_action_function(self) -> Any:
        """Agent actions [S*N, ...] -> what the vector env steps with: indices (offset by a Discrete's start), or
        [-1, 1] actions rescaled to a Box's bounds (`critix.envs.gym.scale_action`). Built once: it runs every step."""
        if self.discrete:
            start = int(self.act_space.start)
            return (lambda action: action) if start == 0 else (lambda action: action.astype(np.int64) + start)
        low, high = self.act_space.low, self.act_space.high
        return lambda action: scale_action(action, low, high)

    def explore(self, mean: np.ndarray, var: np.ndarray) -> np.ndarray:
        """The agents' exploring actions [S*N, ...] for the current observations (`Acting`)."""
        action = self.acting.explore(self.obs.reshape(self.seed_env_shape), mean, var, self.vector_steps)
        action = action.reshape(self.flat_action_shape)
        if self.zero_nan_actions and action.dtype.kind == "f":  # a non-finite observation gives a non-finite
            action = np.where(np.isfinite(action), action, np.float32(0.0))  # action: send 0 instead
        return action

    @property
    def acting(self) -> Acting:
        """The run's `Acting`, built on first use from the agent (its policy reads the state's static fields)."""
        if self._acting is None:
            self._acting = Acting(self.module, self.cfg, self.agent, self.num_seeds, self.num_envs, self.run.acting,
                                  self.run.normalize_obs, contract.acting_keys(self.run.seed, self.num_seeds))
        return self._acting

    def step_envs(self, t: int, action: np.ndarray) -> None:
        """One vector step with `action` [S*N, ...]: the episode bookkeeping, and the transition into `stage[t]`
        (its reward as `stored_reward` gives it). It runs every env step, so it does no work twice: the envs run in
        SAME_STEP autoreset mode (`make_vector_env`), whose infos hold "final_obs" exactly when an episode ended."""
        next_obs, reward, terminated, truncated, info = self.env.step(self.env_action(action))
        next_obs = next_obs.astype(self.obs_dtype, copy=False)  # vector envs return fresh arrays
        self.episode_return += reward
        stage, stored = self.stage, self.stored_reward(reward, terminated, truncated)
        stage.obs[t], stage.action[t], stage.reward[t], stage.terminated[t], stage.truncated[t] = (
            self.obs, action, stored, terminated, truncated)
        if "final_obs" in info:
            done = terminated | truncated
            self.record(done)
            stage.next_obs[t] = final_observation(next_obs, done, info)
        else:
            stage.next_obs[t] = next_obs
        self.obs = next_obs
        self.vector_steps += 1

    def stored_reward(self, reward: np.ndarray, terminated: np.ndarray, truncated: np.ndarray) -> np.ndarray:
        """The reward a transition is trained on: as the env gave it (on-policy reward scaling overrides this)."""
        return reward

    def stats(self) -> tuple[np.ndarray, np.ndarray]:
        """The observation statistics the agent acts with now, (mean, var) [S, O] float32."""
        return self.obs_rms.mean.astype(np.float32), self.obs_rms.var.astype(np.float32)

    def greedy_actions(self, obs: np.ndarray) -> np.ndarray:
        """Deterministic agent actions [S, B, ...] for observations [S, B, *obs], each seed with its statistics."""
        mean, var = self.stats()
        return np.asarray(self.acting.greedy(self.agent, obs.astype(self.obs_dtype), mean, var))

    def evaluate(self, seed: int) -> np.ndarray:
        """Deterministic returns [S, eval_episodes], one episode per eval env."""
        jax.block_until_ready(self.agent)
        return evaluate(self.eval_env, self.greedy_actions, self.num_seeds, seed)[0]

    # ---- episodes --------------------------------------------------------------------------------------------
    def begin(self, meta: dict[str, Any] | None) -> None:
        """Reset the envs (or put them back as a checkpoint's loop state left them) and the episode bookkeeping."""
        obs, _ = self.env.reset(seed=train_env_seed(self.run.seed) + self.vector_steps)
        self.obs = obs.astype(self.obs_dtype)
        self.episode_return = np.zeros(self.num_seeds * self.num_envs)
        self.discounted_return = np.zeros(self.num_seeds * self.num_envs)  # for on-policy reward scaling
        self.recent_returns: list[list[float]] = [[] for _ in range(self.num_seeds)]
        self.train_metrics: dict[str, np.ndarray] = {}
        if meta is None:
            return
        loop = restore_loop(meta.get("loop"), self.env, self.num_seeds, self.obs_shape)
        if loop is not None:  # continue mid-episode: envs, observations and accumulators as they were
            self.obs, self.episode_return, self.recent_returns, self.train_metrics = (
                loop.obs, loop.episode_return, loop.recent_returns, loop.train_metrics)
            if loop.discounted_return is not None:
                self.discounted_return = loop.discounted_return

    def record(self, done: np.ndarray) -> None:
        """File the returns of the episodes that ended ([S*N] `done`) and start them again from 0."""
        for i in np.flatnonzero(done):
            self.recent_returns[i // self.num_envs].append(float(self.episode_return[i]))
            self.episodes += 1
        self.episode_return[done] = 0.0

    def train_values(self) -> dict[str, np.ndarray]:
        """The last update's metrics and the mean return of the episodes finished since the last log, per seed."""
        values = {name: np.asarray(v, np.float64) for name, v in self.train_metrics.items()}
        values["train/episode_return"] = np.array([np.mean(r) if r else np.nan for r in self.recent_returns])
        for r in self.recent_returns:
            r.clear()
        return values

    def loop_meta(self) -> dict[str, Any]:
        """The host loop's state in a checkpoint's meta.json: counters, and the loop state with env snapshots."""
        metrics = {k: np.asarray(v) for k, v in self.train_metrics.items()}
        discounted = self.discounted_return if getattr(self, "scales_rewards", False) else None
        loop = LoopState(self.obs, self.episode_return, self.recent_returns, metrics, discounted)
        return {"counters": {"vector_steps": self.vector_steps, "updates": self.updates, "episodes": self.episodes},
                "env": self.run.env, "loop": loop.to_json(self.env),
                "spaces": checkpoint.describe_spaces(self.obs_space, self.act_space)}

    def restore_counters(self, meta: dict[str, Any]) -> None:
        counters = meta["counters"]
        self.vector_steps, self.updates, self.episodes = (
            int(counters["vector_steps"]), int(counters["updates"]), int(counters["episodes"]))

    @staticmethod
    def rms_arrays(rms: RunningMeanStd) -> dict[str, np.ndarray]:
        return {"mean": rms.mean, "var": rms.var, "count": rms.count}

    @staticmethod
    def rms_from(arrays: dict[str, np.ndarray]) -> RunningMeanStd:
        return RunningMeanStd(arrays["mean"], arrays["var"], arrays["count"])

    def chunk_vector_steps(self, default: int) -> int:
        """Vector steps per chunk: --chunk-size env steps per seed over N envs, rounded up; `default` for 0."""
        return default if self.run.chunk_size == 0 else max(1, math.ceil(self.run.chunk_size / self.num_envs))

    def close(self) -> None:
        self.env.close()
        if self.eval_env is not None:
            self.eval_env.close()

