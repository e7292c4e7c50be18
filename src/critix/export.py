"""Export a trained policy to ONNX, checked against ONNX Runtime before the file is written.

    critix export RUN_DIR --out policy.onnx [--step N] [--seed-index K]
    critix.load(RUN_DIR).export_onnx("policy.onnx")

What is exported is `Policy.action_function`: the deterministic policy with the run's observation normalisation and
the action rescaling inside, so the model maps raw observations to env actions, as `Policy.act` does:
- input "obs": [B, ...] float32 raw observations (uint8 for image observations), B dynamic;
- output "action": [B, A] float32 within the Box bounds, or [B] int32 indices (Discrete, offset by its start):
  tanh(mean) for SAC/TQC/CQL, pi(s) for TD3/DDPG/TD3+BC, the Gaussian mean for PPO/A2C/IQL/XQL/f-DVL/BC, the argmax
  of the logits for discrete PPO and SAC, the argmax of the value head's Q values (scalar, C51, quantile, HL-Gauss,
  two-hot; dueling and pixel encoders too) for the DQN family.
The JAX function is converted by jax2onnx (it traces the jaxpr, so every agent's `act` converts without a
hand-written graph per network). Before the file is written, ONNX Runtime runs the model on a batch of observations
and its actions must equal `Policy.act`'s within `atol` (1e-5; Discrete indices exactly). Needs the `export` extra:
pip install 'critix[export]'.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np
from numpy.typing import ArrayLike

from critix import __version__
from critix.files import atomic_write_bytes
from critix.policy import Policy, space_text
from critix.train.checkpoint import describe_spaces
from critix.types import CritixError

ATOL = 1e-5
"""Largest difference allowed between ONNX Runtime's and critix's continuous actions."""
CHECK_OBSERVATIONS = 256
INPUT_NAME, OUTPUT_NAME = "obs", "action"
NOISY_LOGGERS = ("onnx_ir", "jax2onnx")
"""Loggers of the converter that warn about internal details of a conversion that succeeds."""


@dataclasses.dataclass(frozen=True)
class ExportResult:
    """What `export_onnx` wrote and how closely ONNX Runtime reproduced the policy."""

    path: Path
    max_abs_diff: float
    """Largest |ONNX Runtime action - Policy.act action| over the checked observations (0 for Discrete if equal)."""
    observations_checked: int
    input_shape: tuple[int | str, ...]
    output_shape: tuple[int | str, ...]
    output_dtype: str
    opset: int

    def to_json(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "path": str(self.path)}


def export_onnx(policy: Policy, out: str | Path, observations: ArrayLike | None = None, atol: float = ATOL,
                seed: int = 0) -> ExportResult:
    """Write `policy`'s deterministic action function to `out` as an ONNX model, after checking that ONNX Runtime
    gives the same actions as `policy.act` on `observations` [B, ...] (default: CHECK_OBSERVATIONS drawn around the
    run's observation statistics or within the observation bounds, with `seed`).

    Raises CritixError, without writing, if the export extra is missing, the converter cannot convert the policy, or
    the actions differ.
    """
    jax2onnx, onnx, ort = _export_packages()
    out = Path(out)
    if out.is_dir():
        raise CritixError(f"--out {out} is a folder; give a file path such as {out / 'policy.onnx'}")
    if observations is None:
        obs = check_observations(policy, CHECK_OBSERVATIONS, seed)
    else:
        obs = _as_batch(policy, observations)
    spec = jax.ShapeDtypeStruct(("B", *policy.obs_shape), jnp.dtype(policy.obs_dtype))
    try:
        with _quiet(NOISY_LOGGERS):
            model = jax2onnx.to_onnx(policy.action_function(), [spec], model_name=f"critix_{policy.algo}",
                                     input_names=[INPUT_NAME], output_names=[OUTPUT_NAME], return_mode="proto")
    except Exception as err:  # the converter's own errors (an unsupported primitive ...) have no common type
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise CritixError(
            f"cannot export the {policy.algo} policy of {policy.run_dir} to ONNX: jax2onnx "
            f"{getattr(jax2onnx, '__version__', '')} cannot convert its action function ({type(err).__name__}: "
            f"{first_line}). The policy still acts in Python through critix.load; report the network "
            f"({policy.algo}, {type(policy.config).__name__}) with this message") from None
    onnx.helper.set_model_props(model, _metadata(policy))
    data = model.SerializeToString()
    got = _run_onnx(ort, data, obs)
    want = policy.act(obs)
    max_diff = float(np.max(np.abs(got.astype(np.float64) - want.astype(np.float64)))) if len(obs) else 0.0
    if policy.discrete:
        mismatched = int(np.sum(got != want))
        if mismatched:
            raise CritixError(
                f"ONNX Runtime picks other actions than critix on {mismatched} of {len(obs)} observations (the "
                f"{policy.algo} policy of {policy.run_dir}); {out} was not written. Near-ties of two actions' values "
                "can flip under float32 rounding: check with your own observations (export_onnx(observations=...))")
    elif not max_diff <= atol:
        raise CritixError(
            f"ONNX Runtime's actions differ from critix's by up to {max_diff:.3g} (tolerance {atol:g}) on {len(obs)} "
            f"observations (the {policy.algo} policy of {policy.run_dir}); {out} was not written")
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out, data)
    graph = model.graph
    return ExportResult(out, max_diff, len(obs), _shape(graph.input[0]), _shape(graph.output[0]),
                        onnx.helper.tensor_dtype_to_np_dtype(graph.output[0].type.tensor_type.elem_type).name,
                        max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")))


def check_observations(policy: Policy, num: int, seed: int = 0) -> np.ndarray:
    """`num` observations [num, ...] to compare ONNX Runtime with critix on: around the run's statistics (mean +
    std x standard normal) when it normalised observations, else uniform within finite Box bounds and standard
    normal where a bound is infinite; images: uniform integers."""
    rng, space, shape = np.random.default_rng(seed), policy.observation_space, (num, *policy.obs_shape)
    norm = policy.normalization
    if np.dtype(policy.obs_dtype) == np.uint8:
        low, high = (0, 1) if space.dtype == np.bool_ else (space.low, space.high)
        return rng.integers(np.asarray(low, np.int64), np.asarray(high, np.int64) + 1, shape).astype(np.uint8)
    if norm.kind != "none":
        std = np.sqrt(norm.scale) if norm.kind == "running" else norm.scale
        return (norm.mean + std * rng.standard_normal(shape)).astype(np.float32)
    low = np.broadcast_to(np.asarray(getattr(space, "low", -np.inf), np.float64), policy.obs_shape)
    high = np.broadcast_to(np.asarray(getattr(space, "high", np.inf), np.float64), policy.obs_shape)
    finite = np.isfinite(low) & np.isfinite(high)
    uniform = rng.uniform(np.where(finite, low, 0.0), np.where(finite, high, 1.0), shape)
    return np.where(finite, uniform, rng.standard_normal(shape)).astype(np.float32)


def _as_batch(policy: Policy, observations: ArrayLike) -> np.ndarray:
    obs = np.asarray(observations)
    if obs.shape[1:] != policy.obs_shape or obs.ndim != len(policy.obs_shape) + 1:
        raise CritixError(f"observations to check the export with must be a batch [B, "
                          f"{', '.join(map(str, policy.obs_shape))}], got shape {obs.shape}")
    return obs.astype(policy.obs_dtype)


def _export_packages() -> tuple[Any, Any, Any]:
    """(jax2onnx, onnx, onnxruntime), or CritixError naming the extra that installs them."""
    try:
        import jax2onnx
        import onnx
        import onnxruntime
    except ImportError as err:
        raise CritixError(f"ONNX export needs the export extra, which is not installed ({err.name} is missing): "
                          "pip install 'critix[export]'") from None
    return jax2onnx, onnx, onnxruntime


def _run_onnx(ort: Any, model: bytes, obs: np.ndarray) -> np.ndarray:
    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only: the graph optimiser's notes are not the user's concern
    session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    return np.asarray(session.run([OUTPUT_NAME], {INPUT_NAME: obs})[0])


def _metadata(policy: Policy) -> dict[str, str]:
    """The model's metadata_props: where the policy came from and what its input and output mean."""
    action = policy.action_space
    meaning = (f"[B] int32 indices of {space_text(action)}" if isinstance(action, gym.spaces.Discrete)
               else f"[B, {', '.join(map(str, action.shape))}] float32 env actions within the bounds")
    return {
        "critix_version": __version__,
        "algo": policy.algo,
        "env": policy.env_id,
        "run_dir": str(policy.run_dir),
        "checkpoint_step": str(policy.step),
        "seed_index": str(policy.seed_index),
        "num_seeds": str(policy.num_seeds),
        "observation_normalization": policy.normalization.kind + " (inside the model: feed raw observations)",
        "input": f"{INPUT_NAME}: [B, {', '.join(map(str, policy.obs_shape))}] {np.dtype(policy.obs_dtype).name} "
                 "raw observations",
        "output": f"{OUTPUT_NAME}: {meaning}, deterministic policy",
        "spaces": json.dumps(describe_spaces(policy.observation_space, action)),
    }


def _shape(value: Any) -> tuple[int | str, ...]:
    return tuple(d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim)


@contextlib.contextmanager
def _quiet(names: tuple[str, ...]) -> Iterator[None]:
    """Raise the given loggers to ERROR for the block, and leave the root logger's handlers as they were (jax2onnx
    logs through the `logging` module's functions, which install a stderr handler on a root logger that has none)."""
    loggers = [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in loggers]
    root = logging.getLogger()
    handlers = list(root.handlers)
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)
        for handler in [h for h in root.handlers if h not in handlers]:
            root.removeHandler(handler)
