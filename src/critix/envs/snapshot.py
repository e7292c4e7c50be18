"""Data-only snapshots of Gymnasium vector environments, so a resumed run continues mid-episode exactly.

Gymnasium envs can only be copied whole with pickle, which critix never writes. A snapshot instead records, per
sub-env, the few values that determine the future as plain JSON:
- the simulator state: classic control's plain attributes (`state`, and e.g. CartPole's `steps_beyond_terminated`),
  or MuJoCo's full integration state (`mujoco.mj_getState(..., mjSTATE_INTEGRATION)`: time, qpos, qvel, act,
  warm-start accelerations, controls ...), which makes the next `mj_step` bit-identical;
- the wrappers' counters (`TimeLimit` elapsed steps, `OrderEnforcing`'s reset flag);
- the env's `np_random` bit-generator state (the randomness of its next resets);
- the vector env's autoreset flags.
Floats go through JSON as Python floats, which round-trip exactly.

Envs outside this list (other simulators, unknown wrappers with state, async vector envs whose sub-envs live
in other processes) raise `SnapshotUnsupported`; the training loop then records why, and a resumed run starts
fresh episodes from its checkpoint (documented in docs/reliability.md: such a resume is not bit-exact).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from critix.types import CritixError

SNAPSHOT_VERSION = 1
STATELESS_WRAPPERS = {"PassiveEnvChecker", "ClipAction", "RescaleAction", "Autoreset", "FlattenObservation"}
"""Wrappers whose attributes do not influence the next steps (the env checker only decides whether to warn;
FlattenObservation holds only spaces)."""
CLASSIC_SKIP = {"np_random", "_np_random", "_np_random_seed", "screen", "clock", "spec", "metadata", "render_mode",
                "observation_space", "action_space", "viewer"}


class SnapshotUnsupported(Exception):
    """This env's state cannot be captured as data; the message says why."""


def _to_json(value: Any) -> Any:
    """Plain JSON for numbers, bools, None, strings and numeric numpy arrays; raises for anything else."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, float, np.integer, np.floating, np.bool_)):
        return {"scalar": value.item() if isinstance(value, np.generic) else value,
                "dtype": str(np.asarray(value).dtype) if isinstance(value, np.generic) else type(value).__name__}
    if isinstance(value, (np.ndarray, list, tuple)):
        array = np.asarray(value)
        if array.dtype.kind not in "biuf":
            raise SnapshotUnsupported(f"an attribute holds a {array.dtype} array")
        return {"array": array.tolist(), "dtype": str(array.dtype), "shape": list(array.shape),
                "container": type(value).__name__}
    raise SnapshotUnsupported(f"an attribute holds a {type(value).__name__}")


def _from_json(value: Any) -> Any:
    if not isinstance(value, dict):
        return value
    if "scalar" in value:
        dtype = value["dtype"]
        if dtype in ("int", "float", "bool"):
            return {"int": int, "float": float, "bool": bool}[dtype](value["scalar"])
        return np.asarray(value["scalar"], dtype=dtype)[()]
    array = np.asarray(value["array"], dtype=value["dtype"]).reshape(value["shape"])
    if value.get("container") == "list":
        return array.tolist()
    if value.get("container") == "tuple":
        return tuple(array.tolist())
    return array


def _layers(env: gym.Env) -> list[Any]:
    """The wrapper chain, outermost first, ending with the unwrapped env."""
    layers = [env]
    while isinstance(layers[-1], gym.Wrapper):
        layers.append(layers[-1].env)
    return layers


def _core_snapshot(core: gym.Env) -> dict[str, Any]:
    module = type(core).__module__
    if module.startswith("gymnasium.envs.mujoco"):
        import mujoco

        spec = mujoco.mjtState.mjSTATE_INTEGRATION
        state = np.empty(mujoco.mj_stateSize(core.model, spec), np.float64)
        mujoco.mj_getState(core.model, core.data, state, spec)
        return {"kind": "mujoco", "state": state.tolist()}
    if module.startswith("gymnasium.envs.classic_control"):
        attrs = {name: _to_json(value) for name, value in vars(core).items()
                 if name not in CLASSIC_SKIP and not name.startswith("__")}
        return {"kind": "classic_control", "attrs": attrs}
    raise SnapshotUnsupported(f"{type(core).__name__} ({module}) is neither a classic-control nor a MuJoCo env")


def _restore_core(core: gym.Env, snap: dict[str, Any]) -> None:
    if snap["kind"] == "mujoco":
        import mujoco

        spec = mujoco.mjtState.mjSTATE_INTEGRATION
        state = np.asarray(snap["state"], np.float64)
        if state.shape != (mujoco.mj_stateSize(core.model, spec),):
            raise CritixError(f"env snapshot does not fit {type(core).__name__}: state size {state.shape}")
        mujoco.mj_setState(core.model, core.data, state, spec)
        mujoco.mj_forward(core.model, core.data)  # derived quantities (positions of bodies, contacts) for rendering
    else:
        for name, value in snap["attrs"].items():
            setattr(core, name, _from_json(value))


def snapshot_env(env: gym.Env) -> dict[str, Any]:
    """One (non-vector) env, wrappers included, as JSON data; raises SnapshotUnsupported."""
    layers = _layers(env)
    wrappers = []
    for layer in layers[:-1]:
        name = type(layer).__name__
        if isinstance(layer, gym.wrappers.TimeLimit):
            wrappers.append({"name": name, "elapsed_steps": layer._elapsed_steps})
        elif isinstance(layer, gym.wrappers.common.OrderEnforcing):
            wrappers.append({"name": name, "has_reset": layer._has_reset})
        elif name in STATELESS_WRAPPERS:
            wrappers.append({"name": name})
        else:
            raise SnapshotUnsupported(f"wrapper {name} may hold state critix cannot save")
    core = layers[-1]
    rng = core.np_random
    if not isinstance(rng.bit_generator, np.random.PCG64):
        raise SnapshotUnsupported(f"np_random uses {type(rng.bit_generator).__name__}, not PCG64")
    return {"wrappers": wrappers, "core": _core_snapshot(core), "np_random": rng.bit_generator.state,
            "np_random_seed": getattr(core, "_np_random_seed", None)}


def restore_env(env: gym.Env, snap: dict[str, Any]) -> None:
    """Put a snapshot back into an env of the same id (reset it first, so the wrappers are initialised)."""
    layers = _layers(env)
    names = [type(layer).__name__ for layer in layers[:-1]]
    if names != [w["name"] for w in snap["wrappers"]]:
        raise CritixError(f"env snapshot was taken with wrappers {[w['name'] for w in snap['wrappers']]}, "
                          f"this env has {names}; resume with the same environment id and version")
    for layer, saved in zip(layers[:-1], snap["wrappers"], strict=True):
        if "elapsed_steps" in saved:
            layer._elapsed_steps = saved["elapsed_steps"]
        if "has_reset" in saved:
            layer._has_reset = saved["has_reset"]
    core = layers[-1]
    _restore_core(core, snap["core"])
    rng = np.random.Generator(np.random.PCG64())
    rng.bit_generator.state = snap["np_random"]
    core.np_random = rng
    if snap.get("np_random_seed") is not None:
        core._np_random_seed = snap["np_random_seed"]


def snapshot_vector_env(envs: gym.vector.VectorEnv) -> dict[str, Any]:
    """Every sub-env of a synchronous vector env; raises SnapshotUnsupported for other vector envs."""
    if not isinstance(envs, gym.vector.SyncVectorEnv):
        raise SnapshotUnsupported(f"{type(envs).__name__} keeps its envs in other processes (use --vectorization sync)")
    return {
        "version": SNAPSHOT_VERSION,
        "num_envs": envs.num_envs,
        "env_id": envs.spec.id if envs.spec is not None else None,
        "autoreset_envs": np.asarray(envs._autoreset_envs, bool).tolist(),
        "envs": [snapshot_env(env) for env in envs.envs],
    }


def restore_vector_env(envs: gym.vector.VectorEnv, snap: dict[str, Any]) -> None:
    """Restore `snapshot_vector_env` output into a freshly reset vector env of the same id and size."""
    if not isinstance(snap, dict) or snap.get("version") != SNAPSHOT_VERSION:
        raise CritixError(f"env snapshot has version {snap.get('version') if isinstance(snap, dict) else None!r}, "
                          f"this critix reads {SNAPSHOT_VERSION}")
    if not isinstance(envs, gym.vector.SyncVectorEnv) or snap["num_envs"] != envs.num_envs:
        raise CritixError(f"env snapshot holds {snap['num_envs']} envs; this run has {envs.num_envs} "
                          f"({type(envs).__name__}); resume with the saved --num-seeds/--num-envs and sync vectorization")
    env_id = envs.spec.id if envs.spec is not None else None
    if snap["env_id"] != env_id:
        raise CritixError(f"env snapshot is of {snap['env_id']!r}, this run uses {env_id!r}")
    for env, saved in zip(envs.envs, snap["envs"], strict=True):
        restore_env(env, saved)
    envs._autoreset_envs = np.asarray(snap["autoreset_envs"], np.bool_)
