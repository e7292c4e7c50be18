"""Tuned hyperparameters per (algorithm, environment), applied when the user does not override them.

As RL Zoo's hyperparameter files do for SB3, critix ships settings that reach the reference returns on the classic
environments: `critix train dqn --env CartPole-v1` uses them, any flag given on the command line wins, and
`critix list dqn` shows them. Each entry names its source. Run fields (e.g. `chunk_size`, the env steps between
update bursts, which plays SB3's `train_freq`) sit next to agent fields.

Converting SB3 settings: SB3's `train_freq` F and `gradient_steps` G give utd_ratio G / F; its
`target_update_interval` counts env steps, so target_update_period = interval * utd_ratio gradient steps (SB3
syncs the target every few env steps while training happens in bursts of G steps every F env steps: the target
is then the network as it was at the start of each burst, which is chunk_size = F with period = G here);
`exploration_fraction` x `n_timesteps` gives exploration_steps.

ENV_VALUE_RANGES holds the range of discounted returns (gamma 0.99) of each env, the default support
(`v_min`, `v_max`) of distributional critic heads there.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from critix.agents import common
from critix.types import CritixError


@dataclasses.dataclass(frozen=True)
class Tuned:
    """Overrides of an agent config (`agent`) and of the run config (`run`) for one env, with their source."""

    agent: dict[str, Any]
    run: dict[str, Any]
    source: str


# RL Zoo (rl-baselines3-zoo, hyperparams/dqn.yml) CartPole-v1: lr 2.3e-3, batch 64, buffer 1e5, learning_starts
# 1000, gamma 0.99, target_update_interval 10, train_freq 256, gradient_steps 128, exploration_fraction 0.16 of
# 5e4 steps, final eps 0.04, net [256, 256]. critix adds double Q (its default), dueling streams and 3-step returns:
# measured here over 3 seeds at 50k steps, RL Zoo's plain DQN settings gave 500, 499, 183 (mean 394) and with
# double Q 324, 500, 500 (mean 441), and with dueling + 3-step 218, 192, 500 at 40k: CartPole DQN keeps
# oscillating at a constant learning rate, so the rate also decays linearly to 0 over the 25,000 gradient steps of
# RL Zoo's 50,000-step budget (for longer runs raise --q-lr-decay-steps). Results: docs/benchmarks.md.
_DQN_CARTPOLE = dict(
    hidden_sizes=(256, 256), q_lr=2.3e-3, batch_size=64, buffer_size=100_000, learning_starts=1_000, gamma=0.99,
    utd_ratio=0.5, target_update_period=128, exploration_steps=8_000, epsilon_end=0.04, dueling=True, n_step=3,
    q_lr_decay_steps=25_000,
)
# RL Zoo dqn.yml Acrobot-v1 / LunarLander-v3: lr 6.3e-4, batch 128, buffer 5e4, learning_starts 0,
# target_update_interval 250, train_freq 4, gradient_steps -1 (= 4), exploration_fraction 0.12 of 1e5, final eps 0.1.
_DQN_ACROBOT = dict(
    hidden_sizes=(256, 256), q_lr=6.3e-4, batch_size=128, buffer_size=50_000, learning_starts=0, gamma=0.99,
    utd_ratio=1.0, target_update_period=250, exploration_steps=12_000, epsilon_end=0.1,
)
# RL Zoo dqn.yml MountainCar-v0: lr 4e-3, batch 128, buffer 1e4, learning_starts 1000, gamma 0.98,
# target_update_interval 600, train_freq 16, gradient_steps 8, exploration_fraction 0.2 of 1.2e5, final eps 0.07.
_DQN_MOUNTAINCAR = dict(
    hidden_sizes=(256, 256), q_lr=4e-3, batch_size=128, buffer_size=10_000, learning_starts=1_000, gamma=0.98,
    utd_ratio=0.5, target_update_period=300, exploration_steps=24_000, epsilon_end=0.07,
)
_ZOO = "RL Zoo hyperparams/dqn.yml (SB3 DQN), converted as in the module docstring"
_ZOO_PLUS = _ZOO + "; plus dueling and 3-step returns (measured in docs/benchmarks.md)"


def _dqn_family(head: dict[str, Any]) -> dict[str, Tuned]:
    return {
        "CartPole-v1": Tuned({**_DQN_CARTPOLE, **head}, {"chunk_size": 256}, _ZOO_PLUS),
        "Acrobot-v1": Tuned({**_DQN_ACROBOT, **head}, {"chunk_size": 4}, _ZOO),
        "LunarLander-v3": Tuned({**_DQN_ACROBOT, **head}, {"chunk_size": 4}, _ZOO),
        "MountainCar-v0": Tuned({**_DQN_MOUNTAINCAR, **head}, {"chunk_size": 16}, _ZOO),
    }


TUNED: dict[str, dict[str, Tuned]] = {
    "dqn": _dqn_family({}),
    "c51": _dqn_family({}),
    "qr-dqn": _dqn_family({}),
    "sac-discrete": {
        # Classic-control scale: 1,000 random steps instead of Atari's 20,000, one update per step, and a target
        # entropy of 0.7 log|A|: with 2 actions, 0.98 of the maximum entropy keeps pi(a|s) near 0.5 everywhere,
        # too random to balance a pole. Measured: 500.0, 395.7, 497.3 at 50k steps, 3 seeds (docs/benchmarks.md).
        "CartPole-v1": Tuned(
            dict(learning_starts=1_000, utd_ratio=1.0, batch_size=64, buffer_size=100_000, target_entropy_ratio=0.7),
            {"chunk_size": 50},
            "critix: #55 scaled to classic control (see docs/algorithms/sac_discrete.md)",
        ),
    },
}

# RL Zoo (hyperparams/ppo.yml) HalfCheetah: normalize obs and reward, 1 env, n_steps 512, batch 64, 20 epochs,
# lr 2.0633e-5, gamma 0.98, GAE lambda 0.92, clip 0.1, ent_coef 4.01762e-4, vf_coef 0.58096, max_grad_norm 0.8,
# log_std_init -2, ReLU, 256x256 policy and value networks (ortho_init False; critix's hidden layers use the
# default lecun-normal init either way).
_PPO_HALFCHEETAH = Tuned(
    dict(hidden_sizes=(256, 256), activation="relu", learning_rate=2.0633e-5, rollout_length=512, minibatch_size=64,
         num_epochs=20, gamma=0.98, gae_lambda=0.92, clip_ratio=0.1, entropy_coef=4.01762e-4, value_coef=0.58096,
         max_grad_norm=0.8, init_log_std=-2.0),
    {"num_envs": 1, "normalize_obs": True, "normalize_reward": True},
    "RL Zoo hyperparams/ppo.yml (SB3 PPO, HalfCheetah)",
)
TUNED["ppo"] = {"HalfCheetah-v5": _PPO_HALFCHEETAH}

ENV_VALUE_RANGES: dict[str, tuple[float, float]] = {
    "CartPole-v1": (0.0, 100.0),  # reward +1 per step: at most 1 / (1 - 0.99)
    "Acrobot-v1": (-100.0, 0.0),  # reward -1 per step
    "MountainCar-v0": (-100.0, 0.0),  # reward -1 per step
    "LunarLander-v3": (-300.0, 300.0),  # crash -100, landing +100..140, shaping in between
    "Pendulum-v1": (-1650.0, 0.0),  # reward in [-16.27, 0]: at least -16.27 / (1 - 0.99)
}


def tuned(algo: str, env_id: str) -> Tuned | None:
    """The tuned settings of `algo` on `env_id`, with the env's value range for distributional heads folded in."""
    entry = TUNED.get(algo, {}).get(env_id)
    value_range = ENV_VALUE_RANGES.get(env_id)
    if value_range is None:
        return entry
    agent = dict(entry.agent) if entry else {}
    agent.setdefault("v_min", value_range[0])
    agent.setdefault("v_max", value_range[1])
    return Tuned(agent, dict(entry.run) if entry else {},
                 entry.source + "; value range: critix.agents.tuned.ENV_VALUE_RANGES" if entry
                 else "value range: critix.agents.tuned.ENV_VALUE_RANGES")


def apply(algo: str, env_id: str, agent_cfg: Any, run_cfg: Any) -> tuple[Any, Any]:
    """Defaults for `algo` on `env_id`: the configs with the tuned fields that exist in them replaced."""
    entry = tuned(algo, env_id)
    if entry is None:
        return agent_cfg, run_cfg
    agent_fields = common.field_names(agent_cfg)  # value_head's v_min, v_max ... included
    run_fields = {f.name for f in dataclasses.fields(run_cfg)}
    settings = {**entry.agent, **entry.run}  # each setting goes to the config that has the field
    try:
        agent_cfg = common.replace_fields(agent_cfg, **{k: v for k, v in settings.items() if k in agent_fields})
        run_cfg = dataclasses.replace(run_cfg, **{k: v for k, v in settings.items() if k in run_fields})
    except ValueError as err:
        raise CritixError(f"tuned defaults of {algo} on {env_id} are invalid: {err}") from None
    return agent_cfg, run_cfg
