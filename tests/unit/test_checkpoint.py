"""Checkpoints: data-only files (safetensors + JSON), atomic writes, strict loading against a template."""

from __future__ import annotations

import json
import struct as pystruct

import jax.numpy as jnp
import numpy as np
import pytest

from critix.train import checkpoint
from critix.types import CritixError


def _tree(scale: float = 1.0) -> dict:
    return {
        "params": {"w": scale * jnp.arange(6.0).reshape(2, 3), "b": jnp.full((3,), scale)},
        "count": jnp.array(7, jnp.int32),
        "key": jnp.array([1, 2], jnp.uint32),
        "opt": (jnp.zeros(()), {"mu": scale * jnp.ones(2)}),
    }


def test_round_trip_and_meta(tmp_path):
    tree = _tree(2.0)
    ckpt = checkpoint.save(tmp_path, 5, tree, {"algo": "sac"})
    assert ckpt.name == "step_000000000005"
    loaded, meta = checkpoint.load(ckpt, _tree(0.0))
    for name, array in checkpoint.flatten(tree).items():
        got = checkpoint.flatten(loaded)[name]
        assert got.dtype == array.dtype
        np.testing.assert_array_equal(got, array)
    assert meta["algo"] == "sac" and meta["step"] == 5 and meta["format_version"] == checkpoint.FORMAT_VERSION


def test_files_are_data_only(tmp_path):
    ckpt = checkpoint.save(tmp_path, 1, _tree(), {})
    raw = (ckpt / checkpoint.STATE_FILE).read_bytes()
    (header_len,) = pystruct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + header_len])  # a safetensors JSON header, no pickle opcodes
    assert "['params']['w']" in header
    json.loads((ckpt / checkpoint.META_FILE).read_text())
    assert not list(ckpt.glob("*.tmp")) and not list(ckpt.glob(".*"))  # no temporary files left behind


def test_keep_prunes_old_checkpoints_and_latest(tmp_path):
    assert checkpoint.latest(tmp_path) is None
    for step in (1, 2, 3):
        checkpoint.save(tmp_path, step, _tree(), {}, keep=2)
    names = [p.name for p in checkpoint.list_checkpoints(tmp_path)]
    assert names == ["step_000000000002", "step_000000000003"]
    assert checkpoint.latest(tmp_path).name == "step_000000000003"


def test_checkpoint_without_meta_is_incomplete(tmp_path):
    ckpt = checkpoint.save(tmp_path, 1, _tree(), {})
    (ckpt / checkpoint.META_FILE).unlink()
    assert checkpoint.list_checkpoints(tmp_path) == []


def test_load_rejects_mismatched_template(tmp_path):
    ckpt = checkpoint.save(tmp_path, 1, _tree(), {})
    wrong_shape = _tree()
    wrong_shape["params"]["w"] = jnp.zeros((3, 3))
    with pytest.raises(CritixError, match=r"\['params'\]\['w'\] has shape"):
        checkpoint.load(ckpt, wrong_shape)
    wrong_dtype = _tree()
    wrong_dtype["count"] = jnp.array(7.0, jnp.float32)
    with pytest.raises(CritixError, match="count"):
        checkpoint.load(ckpt, wrong_dtype)
    extra = _tree()
    extra["new"] = jnp.zeros(2)
    with pytest.raises(CritixError, match="missing"):
        checkpoint.load(ckpt, extra)


def test_load_rejects_corrupt_files(tmp_path):
    ckpt = checkpoint.save(tmp_path, 1, _tree(), {})
    (ckpt / checkpoint.STATE_FILE).write_bytes(b"not a safetensors file")
    with pytest.raises(CritixError, match="safetensors"):
        checkpoint.load(ckpt, _tree())
    (ckpt / checkpoint.META_FILE).write_text("{ broken")
    with pytest.raises(CritixError, match="unreadable"):
        checkpoint.load(ckpt, _tree())
    (ckpt / checkpoint.META_FILE).write_text(json.dumps({"format_version": 999}))
    with pytest.raises(CritixError, match="format version"):
        checkpoint.load(ckpt, _tree())


def test_atomic_write_replaces_and_leaves_no_temp(tmp_path):
    target = tmp_path / "sub" / "file.json"
    checkpoint.atomic_write_json(target, {"a": 1})
    checkpoint.atomic_write_json(target, {"a": 2})
    assert json.loads(target.read_text()) == {"a": 2}
    assert [p.name for p in target.parent.iterdir()] == ["file.json"]
