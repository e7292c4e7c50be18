"""D4RL-style datasets from critix agents, for any Gymnasium env with Box spaces (`critix collect`).

One behaviour run trains an online agent (SAC by default) and snapshots its policy every `snapshot_every` env
steps, recording every episode it plays. From that run (Fu et al. 2020, D4RL, Sec. 4, "Gym-MuJoCo"):
- random:        uniform random actions;
- expert:        the best snapshot (highest deterministic evaluation return), actions sampled from its policy;
- medium:        the first snapshot whose evaluation return reaches a third of the way from the random to the
                 expert return (normalised score 33; D4RL: "about 1/3 of the expert"), actions sampled;
- medium-replay: every episode the behaviour run played until the medium snapshot (its replay buffer);
- medium-expert: medium and expert data, equally many of each.
The reference returns stored in the metadata are the mean return of uniform random actions (`ref_min_score`) and
the expert snapshot's deterministic evaluation return (`ref_max_score`), both over `ref_episodes` episodes, so
scores normalise as D4RL's: 100 * (return - random) / (expert - random).
"""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import jax
import numpy as np

from critix import agents
from critix.data.datasets import Episode, normalized_score, write_dataset
from critix.envs.gym import final_observation, make_vector_env, parse_env_kwargs, scale_action
from critix.train.config import RunConfig, resolve
from critix.train.evaluate import evaluate
from critix.train.offpolicy import OffPolicy
from critix.train.run import Lifecycle, execute
from critix.types import CritixError

KINDS = ("random", "medium", "expert", "medium-replay", "medium-expert")


@dataclasses.dataclass(frozen=True)
class CollectConfig:
    """What to collect and how the behaviour policies are trained."""

    env: str = "Pendulum-v1"
    """Gymnasium environment id (module:EnvName-v0 imports the module first)."""
    env_kwargs: tuple[str, ...] = ()
    """Keyword arguments for gymnasium.make, KEY=VALUE each (as `critix train --env-kwargs`); the dataset records
    them, and offline runs evaluate in the env made with them."""
    kind: str = "medium"
    """Dataset kind: random, medium, expert, medium-replay or medium-expert (D4RL's)."""
    out: str = ""
    """Output dataset folder (Minari format; must not exist unless --overwrite)."""
    steps: int = 0
    """Transitions to collect (whole episodes, so slightly more); medium-expert collects this many of each.
    Default when neither --steps nor --episodes is given: 100,000."""
    episodes: int = 0
    """Episodes to collect instead of --steps (medium-expert: this many of each)."""
    train_steps: int = 100_000
    """Env steps of the behaviour agent's training run (the expert is its best snapshot)."""
    snapshot_every: int = 5_000
    """Evaluate and snapshot the behaviour policy every this many env steps."""
    learning_starts: int = 5_000
    """Random-action env steps before the behaviour agent starts learning."""
    algo: str = "sac"
    """Online agent that trains the behaviour policies."""
    ref_episodes: int = 10
    """Episodes for the random and expert reference returns (and each snapshot's evaluation)."""
    seed: int = 0
    """Seed of training, rollouts and references."""
    dataset_id: str | None = None
    """Minari dataset id stored in the metadata; default critix/<env>/<kind>-v0."""
    overwrite: bool = False
    """Replace an existing --out folder."""
    progress: bool = True
    """Show progress."""

    def __post_init__(self) -> None:
        parse_env_kwargs(self.env_kwargs)  # ValueError naming a malformed item
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {self.kind!r}")
        if self.steps < 0 or self.episodes < 0:
            raise ValueError("steps and episodes must be >= 0")
        if self.steps and self.episodes:
            raise ValueError("give either --steps or --episodes, not both")
        for name in ("train_steps", "snapshot_every", "ref_episodes"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.learning_starts < 0:
            raise ValueError(f"learning_starts must be >= 0, got {self.learning_starts}")
        if self.snapshot_every > self.train_steps:
            raise ValueError(f"snapshot_every ({self.snapshot_every}) must be <= train_steps ({self.train_steps})")

    @property
    def size(self) -> tuple[int, int]:
        """(steps, episodes) to collect per policy."""
        return (self.steps or (0 if self.episodes else 100_000)), self.episodes


class EpisodeRecorder:
    """Accumulates vector-env steps into whole `Episode`s, one open episode per sub-env."""

    def __init__(self, obs: np.ndarray) -> None:
        self.current: list[dict[str, list[Any]]] = [self._empty(o) for o in obs]

    @staticmethod
    def _empty(first_obs: np.ndarray) -> dict[str, list[Any]]:
        return {"observations": [first_obs], "actions": [], "rewards": [], "terminations": [], "truncations": []}

    def step(self, action: np.ndarray, reward: np.ndarray, terminated: np.ndarray, truncated: np.ndarray,
             next_obs: np.ndarray, final_obs: np.ndarray) -> list[Episode]:
        """Record one step of every sub-env; returns the episodes that ended on it."""
        finished = []
        for i, episode in enumerate(self.current):
            episode["actions"].append(action[i])
            episode["rewards"].append(reward[i])
            episode["terminations"].append(bool(terminated[i]))
            episode["truncations"].append(bool(truncated[i]))
            episode["observations"].append(final_obs[i])
            if terminated[i] or truncated[i]:
                finished.append(Episode(**{k: np.asarray(v) for k, v in episode.items()}))
                self.current[i] = self._empty(next_obs[i])
        return finished


@dataclasses.dataclass
class Behaviour:
    """What a behaviour run leaves: its played episodes (with the env step each ended at) and policy snapshots."""

    session: OffPolicy
    episodes: list[tuple[int, Episode]]
    snapshots: list[tuple[int, float, Any]]  # (env step, deterministic eval return, agent state [1, ...])
    random_return: float

    @property
    def expert(self) -> tuple[int, float, Any]:
        return max(self.snapshots, key=lambda s: s[1])

    def medium(self) -> tuple[int, float, Any]:
        """First snapshot at a third of the way from random to expert (else the one closest to it)."""
        target = self.random_return + (self.expert[1] - self.random_return) / 3.0
        for snapshot in self.snapshots:
            if snapshot[1] >= target:
                return snapshot
        return min(self.snapshots, key=lambda s: abs(s[1] - target))


def random_return(env_id: str, episodes: int, seed: int, env_kwargs: dict[str, Any] | None = None) -> float:
    """Mean return of uniform random actions over `episodes` episodes (D4RL's random reference)."""
    env = make_vector_env(env_id, episodes, seed, env_kwargs=env_kwargs)
    rng = np.random.default_rng(seed)
    try:
        shape = env.single_action_space.shape
        returns, _ = evaluate(env, lambda obs: rng.uniform(-1, 1, (*obs.shape[:2], *shape)), 1, seed)
    finally:
        env.close()
    return float(returns.mean())


def train_behaviour(cfg: CollectConfig) -> Behaviour:
    """Train the behaviour agent on one env with the off-policy stepper, recording every episode it plays and
    snapshotting its policy at each evaluation (every `snapshot_every` env steps). The run folder is temporary."""
    spec = agents.get(cfg.algo)
    agent_cfg = spec.default_config
    run = resolve(cfg.algo, RunConfig(
        env=cfg.env, env_kwargs=cfg.env_kwargs, steps=cfg.train_steps, seed=cfg.seed, eval_every=cfg.snapshot_every,
        eval_episodes=cfg.ref_episodes,
        checkpoint_every=cfg.train_steps, keep_checkpoints=1, progress=False, tensorboard=False,
        learning_starts=cfg.learning_starts))
    stepper = OffPolicy(cfg.algo, agent_cfg, run, random_stream=2)
    played: list[tuple[int, Episode]] = []
    snapshots: list[tuple[int, float, Any]] = []
    recorder: list[EpisodeRecorder] = []

    def observe(lifecycle: Lifecycle, step: int, returns: np.ndarray | None) -> None:
        """Record the chunk's steps as episodes; at an evaluation, keep the policy with its return."""
        k_steps, stage = stepper.staged, stepper.stage  # this chunk's steps: stage[:k_steps] (1 env)
        if not recorder:
            recorder.append(EpisodeRecorder(stage.obs[0].copy()))
        first = step - k_steps
        for k in range(k_steps):  # copies: the stage is overwritten by the next chunk
            next_obs = stage.obs[k + 1] if k + 1 < k_steps else stepper.obs
            ended = recorder[0].step(stepper.env_action(stage.action[k].copy()), stage.reward[k].copy(),
                                     stage.terminated[k].copy(), stage.truncated[k].copy(), next_obs.copy(),
                                     stage.next_obs[k].copy())
            played.extend((first + k + 1, e) for e in ended)
        if returns is not None:
            snapshots.append((step, float(returns.mean()), jax.device_get(stepper.agent)))
            if cfg.progress:
                print(f"collect: behaviour {cfg.algo} on {cfg.env}, step {step}: eval return {returns.mean():.1f}")

    with tempfile.TemporaryDirectory(prefix="critix-behaviour-") as folder:
        execute(cfg.algo, agent_cfg, dataclasses.replace(run, run_dir=folder), lambda: stepper,
                observers=(observe,))
    rand = random_return(cfg.env, cfg.ref_episodes, cfg.seed * 1000 + 700_000, parse_env_kwargs(cfg.env_kwargs))
    return Behaviour(stepper, played, snapshots, rand)


def rollout(env_id: str, act: Callable[[np.ndarray], np.ndarray], steps: int, episodes: int, seed: int,
            num_envs: int = 4, env_kwargs: dict[str, Any] | None = None) -> list[Episode]:
    """Whole episodes of `act` (obs [N, O] -> actions [N, A] in [-1, 1]) until `steps` transitions or `episodes`."""
    env = make_vector_env(env_id, num_envs, seed, env_kwargs=env_kwargs)
    low, high = env.single_action_space.low, env.single_action_space.high
    try:
        obs, _ = env.reset(seed=seed)
        recorder = EpisodeRecorder(obs)
        collected: list[Episode] = []
        while (sum(e.length for e in collected) < steps) if steps else (len(collected) < episodes):
            env_action = scale_action(act(obs.astype(np.float32)), low, high)
            next_obs, reward, terminated, truncated, info = env.step(env_action)
            final = final_observation(next_obs, terminated | truncated, info)
            collected += recorder.step(env_action, reward, terminated, truncated, next_obs, final)
            obs = next_obs
    finally:
        env.close()
    return collected if steps else collected[:episodes]


def policy_actor(behaviour: Behaviour, agent: Any, seed: int) -> Callable[[np.ndarray], np.ndarray]:
    """The snapshot's stochastic policy as a host function (D4RL samples from its behaviour policies)."""
    session = behaviour.session
    key = jax.random.PRNGKey(seed)[None]
    state = {"key": key}
    zeros = np.zeros((1, *session.obs_shape), np.float32)
    ones = np.ones((1, *session.obs_shape), np.float32)

    def act(obs: np.ndarray) -> np.ndarray:
        action, state["key"] = session.policy(agent, state["key"], obs[None], zeros, ones)
        return np.asarray(action)[0]

    return act


def build_episodes(behaviour: Behaviour, kind: str, steps: int, episodes: int, seed: int) -> list[Episode]:
    env_id, env_kwargs = behaviour.session.run.env, parse_env_kwargs(behaviour.session.run.env_kwargs)
    medium, expert = behaviour.medium(), behaviour.expert

    def play(act: Callable[[np.ndarray], np.ndarray], play_seed: int) -> list[Episode]:
        return rollout(env_id, act, steps, episodes, play_seed, env_kwargs=env_kwargs)

    if kind == "random":
        rng = np.random.default_rng(seed)
        dim = int(behaviour.session.act_space.shape[0])
        return play(lambda obs: rng.uniform(-1, 1, (obs.shape[0], dim)), seed)
    if kind == "medium":
        return play(policy_actor(behaviour, medium[2], seed), seed)
    if kind == "expert":
        return play(policy_actor(behaviour, expert[2], seed), seed)
    if kind == "medium-replay":
        replayed = [e for ended, e in behaviour.episodes if ended <= medium[0]]
        if not replayed:
            raise CritixError("the behaviour run finished no episode before reaching the medium level; "
                              "raise --train-steps or lower --snapshot-every")
        return replayed
    return play(policy_actor(behaviour, medium[2], seed), seed) + play(policy_actor(behaviour, expert[2], seed + 1),
                                                                       seed + 1)


def collect(cfg: CollectConfig, kinds: Sequence[str] | None = None,
            outs: dict[str, str] | None = None) -> dict[str, dict[str, Any]]:
    """Train one behaviour run, then write a dataset per kind (default: cfg.kind to cfg.out).

    Returns, per kind, a summary: path, episodes, transitions, references and the data's mean normalised score.
    """
    kinds = list(kinds or [cfg.kind])
    outs = outs or {cfg.kind: cfg.out}
    for kind in kinds:
        if kind not in KINDS:
            raise CritixError(f"unknown dataset kind {kind!r}; choose from {', '.join(KINDS)}")
        if not outs.get(kind):
            raise CritixError(f"no output folder for kind {kind!r}; pass --out PATH")
        if Path(outs[kind]).exists() and not cfg.overwrite:
            raise CritixError(f"{outs[kind]} already exists; choose another --out or pass --overwrite")
    behaviour = train_behaviour(cfg)
    try:
        steps, episodes = cfg.size
        expert, medium = behaviour.expert, behaviour.medium()
        ref_min, ref_max = behaviour.random_return, expert[1]
        if not ref_max > ref_min:
            raise CritixError(f"the behaviour agent never beat random actions on {cfg.env} (expert {ref_max:.1f} <= "
                              f"random {ref_min:.1f}); raise --train-steps")
        results = {}
        for i, kind in enumerate(kinds):
            data = build_episodes(behaviour, kind, steps, episodes, cfg.seed * 1000 + 800_000 + 10 * i)
            info = {"kind": kind, "behaviour_algo": cfg.algo, "behaviour_train_steps": cfg.train_steps,
                    "medium_snapshot_step": medium[0], "medium_snapshot_return": medium[1],
                    "expert_snapshot_step": expert[0], "expert_snapshot_return": expert[1],
                    "random_return": ref_min, "seed": cfg.seed, "env": cfg.env, "env_kwargs": list(cfg.env_kwargs),
                    "snapshots": [[s, r] for s, r, _ in behaviour.snapshots]}
            dataset_id = cfg.dataset_id if cfg.dataset_id and len(kinds) == 1 else f"critix/{cfg.env}/{kind}-v0"
            path = write_dataset(
                outs[kind], data, behaviour.session.obs_space, behaviour.session.act_space, dataset_id,
                env_id=cfg.env, ref_min_score=ref_min, ref_max_score=ref_max,
                num_episodes_average_score=cfg.ref_episodes, algorithm_name=f"critix-{cfg.algo}",
                description=f"D4RL-style {kind} data for {cfg.env} from critix {cfg.algo} policies",
                critix_info=info, overwrite=cfg.overwrite, env_kwargs=parse_env_kwargs(cfg.env_kwargs))
            returns = np.array([e.episode_return for e in data])
            results[kind] = {
                "path": str(path), "episodes": len(data), "transitions": int(sum(e.length for e in data)),
                "return_mean": float(returns.mean()), "ref_min_score": ref_min, "ref_max_score": ref_max,
                "normalized_score_mean": float(np.mean(normalized_score(returns, ref_min, ref_max))),
            }
        return results
    finally:
        behaviour.session.close()
