"""Probe environments: tiny tasks whose value functions and best actions are known exactly.

In the spirit of Andy Jones' "Debugging RL, Without the Agonizing Pain" (2021) and of rejax's and SB3's identity
envs: each probe isolates one thing an agent must get right, so a failure names the broken piece instead of
"the return is low". Every probe has a one-dimensional observation, so one compiled agent serves them all.

| probe      | episode                                              | known values (discount g)  | catches                  |
|------------|------------------------------------------------------|----------------------------|--------------------------|
| constant   | obs 1, reward 1, terminates after 1 step             | V(1) = 1                   | value regression, termination masking |
| observed   | obs +-1 (random), reward = obs, terminates           | V(+-1) = +-1               | the critic reading its input |
| discounted | obs -1 then 1; reward 1 on the 2nd step, terminates  | V(-1) = g, V(1) = 1        | discounting, next-observation plumbing |
| truncated  | obs 1, reward 1 every step, truncated after 3 steps  | V(1) = 1 / (1 - g)         | bootstrapping through a time limit |
| action     | obs +-1, one step, pays for the action that fits obs | best action: 0.5 * obs (Box), 1 if obs > 0 (Discrete) | the policy |

`truncated` never terminates, so the correct value is that of the endless task, 1 / (1 - g). A loop that treats
the time limit as termination learns the average of the 3 truncated returns instead: (1 + (1 + g) + (1 + g + g^2))
/ 3, e.g. 1.42 instead of 2 at g = 0.5.

No observation is 0: with an all-zero input a network learns through its biases alone, which Adam moves by about
the learning rate per step, so a value of 2 would take thousands of updates for no diagnostic gain.

Each probe is written once, as a pure `JaxEnv`: the compiled mode runs it as `jax:Probe<Name><Box|Discrete>`, and
the host loops run the same code through `GymnasiumAdapter` as `critix-probe/<Name><Box|Discrete>-v0`. Importing
this module registers both.
"""

from __future__ import annotations

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np

from critix.envs import jax_envs

PROBES = ("constant", "observed", "discounted", "truncated", "action")
TIME_LIMIT = 3
"""Steps of a `truncated` episode (the longest probe episode)."""
ACTION_TARGET = 0.5
"""Box `action` probe: reward 1 - (a - ACTION_TARGET * obs)^2, best action +-0.5 (inside the bounds)."""


def probe_env(probe: str, discrete: bool) -> jax_envs.JaxEnv:
    """The probe `probe` (see the module docstring) with Discrete(2) or Box(-1, 1, (1,)) actions.
    Its state is (observation, steps taken)."""
    if probe not in PROBES:
        raise ValueError(f"unknown probe {probe!r}; choose one of {PROBES}")
    random_sign = probe in ("observed", "action")

    def reset_fn(key: jax.Array) -> tuple[jax.Array, tuple[jax.Array, jax.Array]]:
        first = -1.0 if probe == "discounted" else 1.0
        obs = jnp.where(jax.random.bernoulli(key), 1.0, -1.0) if random_sign else jnp.full((), first)
        state = (obs.astype(jnp.float32), jnp.zeros((), jnp.int32))
        return state[0].reshape(1), state

    def step_fn(key: jax.Array, state: tuple[jax.Array, jax.Array], action: jax.Array) -> tuple:
        obs, t = state[0], state[1] + 1
        terminated, truncated = jnp.array(True), jnp.array(False)
        if probe == "constant":
            reward = jnp.ones(())
        elif probe == "observed":
            reward = obs
        elif probe == "discounted":
            obs, reward, terminated = jnp.ones(()), (t >= 2).astype(jnp.float32), t >= 2
        elif probe == "truncated":
            reward, terminated, truncated = jnp.ones(()), jnp.array(False), t >= TIME_LIMIT
        elif discrete:
            reward = jnp.where(jnp.asarray(action).reshape(()) == (obs > 0), 1.0, -1.0)
        else:
            reward = 1.0 - (jnp.asarray(action).reshape(()) - ACTION_TARGET * obs) ** 2
        return obs.reshape(1), (obs, t), reward.astype(jnp.float32), terminated, truncated

    actions = gym.spaces.Discrete(2) if discrete else gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
    return jax_envs.JaxEnv(jax_name(probe, discrete), gym.spaces.Box(-1.0, 1.0, (1,), np.float32), actions,
                           TIME_LIMIT, reset_fn, step_fn)


def _suffix(probe: str, discrete: bool) -> str:
    return f"{probe.capitalize()}{'Discrete' if discrete else 'Box'}"


def jax_name(probe: str, discrete: bool) -> str:
    return f"Probe{_suffix(probe, discrete)}"


def env_id(probe: str, discrete: bool, compiled: bool) -> str:
    """The probe's env id: `jax:...` for the compiled mode, a Gymnasium id for the host loops."""
    if compiled:
        return f"{jax_envs.JAX_PREFIX}{jax_name(probe, discrete)}"
    return f"critix-probe/{_suffix(probe, discrete)}-v0"


def make_gymnasium_probe(probe: str, discrete: bool) -> gym.Env:
    """The probe as a Gymnasium env (the registered ids' entry point, named by string so that datasets written
    from these envs can record their env spec)."""
    return jax_envs.GymnasiumAdapter(probe_env(probe, discrete))


def register() -> None:
    for probe in PROBES:
        for discrete in (False, True):
            def factory(probe: str = probe, discrete: bool = discrete) -> jax_envs.JaxEnv:
                return probe_env(probe, discrete)

            jax_envs.register(jax_name(probe, discrete), factory)
            if env_id(probe, discrete, compiled=False) not in gym.registry:
                gym.register(env_id(probe, discrete, compiled=False), entry_point=f"{__name__}:make_gymnasium_probe",
                             kwargs={"probe": probe, "discrete": discrete})


register()
