"""Checkpoints that are data only: arrays in safetensors, metadata in JSON, every write atomic.

Loading never executes code: safetensors holds raw tensors and a JSON header; the pytree structure comes from a
template built by the agent's `init`, and every array is checked against it (names, shapes, dtypes).
Layout: <run>/checkpoints/step_<N>/{state.safetensors, meta.json}; a checkpoint counts once meta.json exists.

Integrity (format 2): meta.json records the SHA-256 and size of state.safetensors and a SHA-256 of its own
content, so a truncated or bit-flipped checkpoint is detected; `latest_valid` then falls back to the previous
good checkpoint with a warning and moves the bad one aside (`corrupt_step_<N>`). Every file write is
temp file + fsync + rename + fsync of the folder, so a kill -9 at any moment leaves either the old or the new file.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import warnings
from pathlib import Path
from typing import Any

import gymnasium as gym
import jax
import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load as st_load
from safetensors.numpy import save as st_save

from critix import __version__
from critix.files import atomic_write_bytes, atomic_write_json, fsync_dir
from critix.types import CritixError

FORMAT_VERSION = 2
"""2: checksums of state.safetensors and meta.json, and the loop state (env snapshot) in meta.json.
1: critix 0.1.0 before checksums; still loads (unverified, and its envs restart with fresh episodes)."""
OLDEST_READABLE_FORMAT = 1
STATE_FILE = "state.safetensors"
META_FILE = "meta.json"
META_CHECKSUM = "meta_sha256"


def flatten(tree: Any) -> dict[str, np.ndarray]:
    """Pytree -> {path string: numpy array}, in a stable order."""
    leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
    return {jax.tree_util.keystr(path): np.asarray(leaf) for path, leaf in leaves}


def unflatten(template: Any, arrays: dict[str, np.ndarray], source: str) -> Any:
    """Put `arrays` into the structure of `template` (arrays or `jax.ShapeDtypeStruct`s), checking every name,
    shape and dtype."""
    leaves, treedef = jax.tree_util.tree_flatten_with_path(template)
    expected = {jax.tree_util.keystr(path) for path, _ in leaves}
    missing, unexpected = expected - arrays.keys(), arrays.keys() - expected
    if missing or unexpected:
        raise CritixError(
            f"checkpoint {source} does not match this agent/config: missing {sorted(missing)[:3]}, "
            f"unexpected {sorted(unexpected)[:3]}. Load it with the config it was saved with (config.json)."
        )
    out = []
    for path, leaf in leaves:
        name = jax.tree_util.keystr(path)
        array = arrays[name]
        # a template leaf may be an array or a jax.ShapeDtypeStruct (`jax.eval_shape` of an init: no compute)
        dtype = np.dtype(leaf.dtype) if hasattr(leaf, "dtype") else np.asarray(leaf).dtype
        if array.shape != np.shape(leaf) or array.dtype != dtype:
            raise CritixError(
                f"checkpoint {source}: {name} has shape {array.shape} {array.dtype}, expected "
                f"{np.shape(leaf)} {dtype}. Load it with the config it was saved with."
            )
        out.append(array)
    return jax.tree_util.tree_unflatten(treedef, out)


def save(directory: Path, step: int, tree: Any, meta: dict[str, Any], keep: int = 2) -> Path:
    """Save `tree` and `meta` as checkpoints/step_<step>; keep the newest `keep` checkpoints.

    Order: state.safetensors (atomic), then meta.json (atomic) holding the state's checksum; a checkpoint
    exists only once its meta.json does, so a kill between the two leaves an incomplete folder that is ignored.
    """
    directory = Path(directory)
    ckpt = directory / f"step_{step:012d}"
    ckpt.mkdir(parents=True, exist_ok=True)
    fsync_dir(directory)
    (ckpt / META_FILE).unlink(missing_ok=True)  # an overwrite is incomplete until meta.json lands again
    for stale in ckpt.glob(".*.tmp"):  # temporary files of a write that a kill interrupted
        stale.unlink(missing_ok=True)
    data = st_save(flatten(tree))
    atomic_write_bytes(ckpt / STATE_FILE, data)
    full_meta = {
        "format_version": FORMAT_VERSION,
        "critix_version": __version__,
        "step": step,
        **meta,
        "files": {STATE_FILE: {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}},
    }
    full_meta[META_CHECKSUM] = _meta_digest(full_meta)
    atomic_write_json(ckpt / META_FILE, full_meta)
    if keep > 0:
        for old in list_checkpoints(directory)[:-keep]:
            _remove(old)
        for partial in directory.glob("step_*"):  # incomplete folders older than this one (interrupted saves)
            if partial.name < ckpt.name and not (partial / META_FILE).is_file():
                shutil.rmtree(partial, ignore_errors=True)
        fsync_dir(directory)
    return ckpt


def _remove(ckpt: Path) -> None:
    """Delete a checkpoint so that a kill midway leaves it incomplete (meta.json goes first), never half-valid."""
    (ckpt / META_FILE).unlink(missing_ok=True)
    fsync_dir(ckpt)
    shutil.rmtree(ckpt, ignore_errors=True)


def _meta_digest(meta: dict[str, Any]) -> str:
    body = {k: v for k, v in meta.items() if k != META_CHECKSUM}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def _file_digest(path: Path) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    with path.open("rb") as f:
        while chunk := f.read(1 << 22):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def list_checkpoints(directory: Path) -> list[Path]:
    """Complete checkpoints (meta.json present), oldest first."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.glob("step_*") if (p / META_FILE).is_file() and (p / STATE_FILE).is_file())


def step_of(ckpt: Path) -> int:
    """The step a checkpoint folder (`step_<N>`, written by `save`) was saved at."""
    return int(Path(ckpt).name.removeprefix("step_"))


def latest(directory: Path) -> Path | None:
    found = list_checkpoints(directory)
    return found[-1] if found else None


def load_meta(ckpt: Path) -> dict[str, Any]:
    """Read and check meta.json: JSON object, a format version this critix reads, its own checksum."""
    try:
        meta = json.loads((Path(ckpt) / META_FILE).read_bytes().decode("utf-8"))
    except (OSError, ValueError) as err:  # ValueError: JSONDecodeError, UnicodeDecodeError
        raise CritixError(f"checkpoint {ckpt} has an unreadable {META_FILE} ({err}); it is corrupt or not a "
                          "critix checkpoint: resume from an earlier checkpoint or start the run again") from None
    except RecursionError:
        raise CritixError(f"checkpoint {ckpt}: {META_FILE} is nested too deeply; it is not a critix checkpoint") from None
    if not isinstance(meta, dict):
        raise CritixError(f"checkpoint {ckpt}: {META_FILE} must hold a JSON object, got {type(meta).__name__}; "
                          "it is not a critix checkpoint")
    version, writer = meta.get("format_version"), meta.get("critix_version", "unknown")
    if not isinstance(version, int) or isinstance(version, bool):
        raise CritixError(f"checkpoint {ckpt}: {META_FILE} has no integer format_version (got {version!r}); "
                          "it is not a critix checkpoint")
    if version > FORMAT_VERSION:
        raise CritixError(
            f"checkpoint {ckpt} has format version {version}, written by critix {writer}; this critix {__version__} "
            f"reads formats {OLDEST_READABLE_FORMAT}-{FORMAT_VERSION}. Upgrade critix to {writer} or newer to load it."
        )
    if version < OLDEST_READABLE_FORMAT:
        raise CritixError(
            f"checkpoint {ckpt} has format version {version}, written by critix {writer}; this critix {__version__} "
            f"reads formats {OLDEST_READABLE_FORMAT}-{FORMAT_VERSION}. Load it with critix {writer}."
        )
    if version >= 2:
        if meta.get(META_CHECKSUM) != _meta_digest(meta):
            raise CritixError(f"checkpoint {ckpt}: {META_FILE} does not match its checksum (edited or corrupt); "
                              "resume from an earlier checkpoint")
        if not isinstance(meta.get("step"), int) or meta["step"] < 0:
            raise CritixError(f"checkpoint {ckpt}: {META_FILE} has no valid step (got {meta.get('step')!r})")
    return meta


def verify(ckpt: Path) -> dict[str, Any]:
    """load_meta plus the size and SHA-256 of state.safetensors (format 2); returns the metadata."""
    ckpt = Path(ckpt)
    meta = load_meta(ckpt)
    if meta["format_version"] < 2:
        warnings.warn(f"checkpoint {ckpt} has format {meta['format_version']} (critix "
                      f"{meta.get('critix_version', 'unknown')}), which has no checksums: loading it unverified",
                      stacklevel=2)
        return meta
    expected = meta.get("files", {}).get(STATE_FILE) if isinstance(meta.get("files"), dict) else None
    if not isinstance(expected, dict):
        raise CritixError(f"checkpoint {ckpt}: {META_FILE} lacks the checksum of {STATE_FILE}")
    try:
        digest, size = _file_digest(ckpt / STATE_FILE)
    except OSError as err:
        raise CritixError(f"checkpoint {ckpt}: cannot read {STATE_FILE} ({err})") from None
    if size != expected.get("bytes") or digest != expected.get("sha256"):
        raise CritixError(
            f"checkpoint {ckpt}: {STATE_FILE} is corrupt ({size} bytes, expected {expected.get('bytes')}; "
            "checksum mismatch); resume from an earlier checkpoint"
        )
    return meta


def load(ckpt: Path, template: Any) -> tuple[Any, dict[str, Any]]:
    """Load a checkpoint into the structure of `template` (e.g. a freshly initialised state)."""
    arrays, meta = load_arrays(ckpt)
    return unflatten(template, arrays, str(ckpt)), meta


def load_arrays(ckpt: Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The verified arrays of a checkpoint by path string (as `flatten` names them), and its metadata; for readers
    that take part of a state (`critix.load` takes one seed's agent)."""
    ckpt = Path(ckpt)
    meta = verify(ckpt)
    try:
        arrays = st_load((ckpt / STATE_FILE).read_bytes())
    except (OSError, SafetensorError, ValueError) as err:
        raise CritixError(f"checkpoint {ckpt}: {STATE_FILE} is not a valid safetensors file ({err})") from None
    return arrays, meta


def describe_spaces(observation_space: gym.Space, action_space: gym.Space) -> dict[str, Any]:
    """The agent's observation and action spaces as JSON for meta.json, so a policy loads without its env
    (`critix.load`): observations by shape and dtype, Box actions with their bounds, Discrete ones with n and start."""
    return {"observation": _describe_space(observation_space), "action": _describe_space(action_space)}


def _describe_space(space: gym.Space) -> dict[str, Any]:
    if isinstance(space, gym.spaces.Discrete):
        return {"type": "Discrete", "n": int(space.n), "start": int(space.start)}
    if isinstance(space, gym.spaces.Box):
        return {"type": "Box", "shape": list(space.shape), "dtype": str(space.dtype), "low": _bound(space.low),
                "high": _bound(space.high)}
    return {"type": type(space).__name__}  # a space no agent takes; `spaces_from` refuses it


def _bound(values: np.ndarray) -> Any:
    """A Box bound as JSON: one number if every entry is the same (images), else a flat list; infinite entries as
    the strings "inf" / "-inf", which JSON has no numbers for."""
    flat = [float(v) if np.isfinite(v) else ("inf" if v > 0 else "-inf")
            for v in np.asarray(values, np.float64).ravel()]
    return flat[0] if flat and all(v == flat[0] for v in flat) else flat


def spaces_from(described: Any, source: str) -> tuple[gym.Space, gym.Space]:
    """(observation space, action space) from `describe_spaces`' JSON; CritixError naming `source` if malformed."""
    try:
        return _space_from(described["observation"]), _space_from(described["action"])
    except (KeyError, TypeError, ValueError) as err:
        raise CritixError(f"{source}: the spaces recorded in {META_FILE} are malformed ({err!r}); it is not a "
                          "critix checkpoint, or it was edited") from None


def _space_from(d: dict[str, Any]) -> gym.Space:
    if d["type"] == "Discrete":
        return gym.spaces.Discrete(int(d["n"]), start=int(d["start"]))
    if d["type"] != "Box":
        raise ValueError(f"unsupported space type {d['type']!r}")
    shape, dtype = tuple(int(n) for n in d["shape"]), np.dtype(d["dtype"])

    def bound(value: Any) -> np.ndarray:  # one number, or the flat list of every entry
        array = np.asarray(value, np.float64)
        return (np.broadcast_to(array, shape) if array.ndim == 0 else array.reshape(shape)).astype(dtype)

    return gym.spaces.Box(bound(d["low"]), bound(d["high"]), shape, dtype)


def latest_valid(directory: Path, quarantine: bool = True) -> tuple[Path, dict[str, Any]] | None:
    """The newest checkpoint that passes `verify`, with its metadata; None if there is no checkpoint.

    A checkpoint that fails is reported with a warning and, if `quarantine`, renamed to corrupt_step_<N> so it
    no longer counts (nor pushes good checkpoints out of `keep`). Raises CritixError if none is valid.
    """
    problems = []
    for ckpt in reversed(list_checkpoints(directory)):
        try:
            return ckpt, verify(ckpt)
        except CritixError as err:
            problems.append(str(err))
            warnings.warn(f"skipping checkpoint {ckpt.name}: {err}", stacklevel=2)
            if quarantine:
                target = ckpt.with_name(f"corrupt_{ckpt.name}")
                shutil.rmtree(target, ignore_errors=True)
                ckpt.rename(target)
                fsync_dir(ckpt.parent)
    if problems:
        raise CritixError(f"no readable checkpoint in {directory}: " + " | ".join(problems))
    return None
