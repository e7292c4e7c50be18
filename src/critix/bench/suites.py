"""Named benchmark suites: fixed tasks, step budgets, seeds and evaluation, so results are comparable run to run.

`critix bench SUITE --algos A,B` trains every algorithm of the agent REGISTRY named on every task of the suite
whose spaces it handles (see `compatibility`), with the suite's budget. Budgets are environment steps per seed.
"""

from __future__ import annotations

import dataclasses
import functools

import gymnasium as gym

from critix import agents
from critix.envs.gym import make_env
from critix.types import CritixError


@dataclasses.dataclass(frozen=True)
class Task:
    """One environment of a suite with its budget (environment steps per seed)."""

    env: str
    steps: int


@dataclasses.dataclass(frozen=True)
class Suite:
    name: str
    description: str
    tasks: tuple[Task, ...]
    seeds: int
    """Default number of seeds (`--seeds` overrides)."""
    evaluations: int = 10
    """Evaluations over the run (every steps / evaluations env steps), for the learning curves."""
    eval_episodes: int = 10
    """Deterministic evaluation episodes per seed (BENCHMARKING.md asks for at least 10 at the end)."""

    def task(self, env: str) -> Task:
        for task in self.tasks:
            if task.env == env:
                return task
        raise CritixError(f"suite {self.name!r} has no task {env!r}; its tasks: {', '.join(t.env for t in self.tasks)}")


_MUJOCO = ("HalfCheetah-v5", "Hopper-v5", "Walker2d-v5", "Ant-v5")

SUITES: dict[str, Suite] = {
    # classic budgets: 100k for the discrete tasks (RL Zoo trains PPO on CartPole for 1e5 steps, DQN on Acrobot
    # for 1e5); 15k for the continuous ones (SAC/TD3/DDPG reach about -140 to -170 on Pendulum at 15k, see
    # docs/benchmarks.md). Small enough that four algorithms x 5 seeds fit in about an hour on 2 CPU cores.
    "classic": Suite(
        "classic",
        "Gymnasium classic control: two discrete-action tasks (CartPole, Acrobot) and two continuous ones "
        "(Pendulum, MountainCarContinuous); small budgets, minutes per run on 2 CPU cores",
        (Task("CartPole-v1", 100_000), Task("Acrobot-v1", 100_000), Task("Pendulum-v1", 15_000),
         Task("MountainCarContinuous-v0", 15_000)),
        seeds=5,
    ),
    "mujoco": Suite(
        "mujoco",
        "MuJoCo locomotion (Gymnasium v5) at 100k steps: the early-learning regime of the SAC/TD3 papers' curves",
        tuple(Task(env, 100_000) for env in _MUJOCO),
        seeds=3,
    ),
    "mujoco-300k": Suite(
        "mujoco-300k",
        "MuJoCo locomotion (Gymnasium v5) at 300k steps",
        tuple(Task(env, 300_000) for env in _MUJOCO),
        seeds=3,
    ),
}


def get(name: str) -> Suite:
    if name not in SUITES:
        raise CritixError(f"unknown suite {name!r}; choose one of {', '.join(SUITES)}")
    return SUITES[name]


@functools.lru_cache(maxsize=None)
def spaces(env_id: str) -> tuple[gym.Space, gym.Space]:
    """Observation and action space of `env_id` as training sees them (one env is built and closed; cached per id)."""
    env = make_env(env_id)
    try:
        return env.observation_space, env.action_space
    finally:
        env.close()


def compatibility(algo: str, env_id: str) -> str | None:
    """None if `algo` can train on `env_id`, else the reason it cannot (the agent's own space check message).

    Uses the agent module's `check_spaces(obs_space, act_space)`, which every registered agent provides; an agent
    without it is assumed to handle every space (its run then fails with its own message if it does not)."""
    module = agents.get(algo).module
    check = getattr(module, "check_spaces", None)
    if check is None:
        return None
    obs_space, act_space = spaces(env_id)
    try:
        check(obs_space, act_space)
    except CritixError as err:
        return str(err)
    return None
