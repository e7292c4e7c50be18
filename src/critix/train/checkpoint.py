"""Checkpoints that are data only: arrays in safetensors, metadata in JSON, every write atomic.

Loading never executes code: safetensors holds raw tensors and a JSON header; the pytree structure comes from a
template built by the agent's `init`, and every array is checked against it (names, shapes, dtypes).
Layout: <run>/checkpoints/step_<N>/{state.safetensors, meta.json}; a checkpoint counts once meta.json exists.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import jax
import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load as st_load
from safetensors.numpy import save as st_save

from critix import __version__
from critix.types import CritixError

FORMAT_VERSION = 1
STATE_FILE = "state.safetensors"
META_FILE = "meta.json"


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temporary file in the same folder, fsync, then rename over `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


def flatten(tree: Any) -> dict[str, np.ndarray]:
    """Pytree -> {path string: numpy array}, in a stable order."""
    leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
    return {jax.tree_util.keystr(path): np.asarray(leaf) for path, leaf in leaves}


def unflatten(template: Any, arrays: dict[str, np.ndarray], source: str) -> Any:
    """Put `arrays` into the structure of `template`, checking every name, shape and dtype."""
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
        if array.shape != np.shape(leaf) or array.dtype != np.asarray(leaf).dtype:
            raise CritixError(
                f"checkpoint {source}: {name} has shape {array.shape} {array.dtype}, expected "
                f"{np.shape(leaf)} {np.asarray(leaf).dtype}. Load it with the config it was saved with."
            )
        out.append(array)
    return jax.tree_util.tree_unflatten(treedef, out)


def save(directory: Path, step: int, tree: Any, meta: dict[str, Any], keep: int = 2) -> Path:
    """Save `tree` and `meta` as checkpoints/step_<step>; keep the newest `keep` checkpoints."""
    ckpt = Path(directory) / f"step_{step:012d}"
    ckpt.mkdir(parents=True, exist_ok=True)
    (ckpt / META_FILE).unlink(missing_ok=True)  # an overwrite is incomplete until meta.json lands again
    atomic_write_bytes(ckpt / STATE_FILE, st_save(flatten(tree)))
    full_meta = {"format_version": FORMAT_VERSION, "critix_version": __version__, "step": step, **meta}
    atomic_write_json(ckpt / META_FILE, full_meta)
    for old in list_checkpoints(directory)[:-keep] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    return ckpt


def list_checkpoints(directory: Path) -> list[Path]:
    """Complete checkpoints (meta.json present), oldest first."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.glob("step_*") if (p / META_FILE).is_file() and (p / STATE_FILE).is_file())


def latest(directory: Path) -> Path | None:
    found = list_checkpoints(directory)
    return found[-1] if found else None


def load_meta(ckpt: Path) -> dict[str, Any]:
    try:
        meta = json.loads((Path(ckpt) / META_FILE).read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise CritixError(f"checkpoint {ckpt} has an unreadable {META_FILE}: {err}") from None
    if not isinstance(meta, dict):
        raise CritixError(f"checkpoint {ckpt}: {META_FILE} must hold a JSON object")
    version = meta.get("format_version")
    if version != FORMAT_VERSION:
        raise CritixError(
            f"checkpoint {ckpt} has format version {version!r} (written by critix {meta.get('critix_version')!r}); "
            f"this critix {__version__} reads format {FORMAT_VERSION}. Load it with the critix version that wrote it."
        )
    return meta


def load(ckpt: Path, template: Any) -> tuple[Any, dict[str, Any]]:
    """Load a checkpoint into the structure of `template` (e.g. a freshly initialised state)."""
    ckpt = Path(ckpt)
    meta = load_meta(ckpt)
    try:
        arrays = st_load((ckpt / STATE_FILE).read_bytes())
    except (OSError, SafetensorError, ValueError) as err:
        raise CritixError(f"checkpoint {ckpt}: {STATE_FILE} is not a valid safetensors file ({err})") from None
    return unflatten(template, arrays, str(ckpt)), meta
