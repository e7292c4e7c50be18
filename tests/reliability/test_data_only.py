"""Data only: critix never unpickles, and every loader refuses a malicious pickle without running it.

The planted payload is a real exploit: unpickling it creates a marker file (the test first proves that with
`pickle.loads` itself). Each loader then gets it where it expects a checkpoint, checkpoint metadata, a replay
buffer, a run config or an offline dataset; each must raise CritixError and the marker must never appear.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import re
import shutil
from pathlib import Path

import gymnasium as gym
import jax
import numpy as np
import pytest

from critix.cli import main
from critix.data import datasets, replay
from critix.train import checkpoint
from critix.train.config import load_run_config
from critix.types import CritixError, Transition

SRC = Path(__file__).resolve().parents[2] / "src" / "critix"
FORBIDDEN = re.compile(
    r"^\s*(import|from)\s+(pickle|cPickle|_pickle|cloudpickle|dill|joblib|shelve|marshal|torch)\b"
    r"|\bpickle\.(loads?|Unpickler)\b|\bcloudpickle\b|allow_pickle\s*=\s*True|\btorch\.load\b"
    r"|\byaml\.(unsafe_)?load\(|\bjoblib\.load\b|\bshelve\.open\b|\bmarshal\.loads?\b|\bdill\b",
    re.MULTILINE,
)


def forbidden_uses(text: str) -> list[str]:
    return [m.group(0).strip() for m in FORBIDDEN.finditer(text)]


def test_the_pattern_catches_pickle_uses() -> None:
    assert forbidden_uses("import pickle\nx = pickle.loads(b)\n") == ["import pickle", "pickle.loads"]
    assert forbidden_uses("np.load(f, allow_pickle=True)") == ["allow_pickle=True"]
    assert forbidden_uses("from torch import nn\nstate = torch.load(p)") == ["from torch", "torch.load"]
    assert forbidden_uses('"""no pickle anywhere"""\nnp.load(f, allow_pickle=False)') == []


def test_critix_source_has_no_pickle() -> None:
    files = sorted(SRC.rglob("*.py"))
    assert len(files) > 20
    found = {str(p.relative_to(SRC)): forbidden_uses(p.read_text()) for p in files}
    assert {k: v for k, v in found.items() if v} == {}


class Exploit:
    """Unpickling this creates `marker` (a stand-in for arbitrary code execution)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # noqa: ANN204
        return (os.mkdir, (str(self.marker),))


@pytest.fixture
def payload(tmp_path: Path) -> tuple[bytes, Path]:
    marker = tmp_path / "PWNED"
    data = pickle.dumps(Exploit(marker))
    pickle.loads(data)  # the payload is live: loading it with pickle runs code
    assert marker.exists()
    marker.rmdir()
    return data, marker


def small_tree() -> dict:
    return {"w": np.arange(6, dtype=np.float32).reshape(2, 3), "step": np.array(3, np.int32)}


def test_checkpoint_state_file_refuses_pickle(payload: tuple[bytes, Path], tmp_path: Path) -> None:
    data, marker = payload
    ckpt = checkpoint.save(tmp_path / "ckpts", 1, small_tree(), {})
    (ckpt / checkpoint.STATE_FILE).write_bytes(data)
    with pytest.raises(CritixError, match="corrupt"):  # the checksum catches it first
        checkpoint.load(ckpt, small_tree())
    # Even with meta.json rewritten to match the pickle's checksum, safetensors parsing refuses it.
    meta = json.loads((ckpt / checkpoint.META_FILE).read_text())
    meta["files"][checkpoint.STATE_FILE] = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    meta[checkpoint.META_CHECKSUM] = checkpoint._meta_digest(meta)
    (ckpt / checkpoint.META_FILE).write_text(json.dumps(meta))
    with pytest.raises(CritixError, match="not a valid safetensors file"):
        checkpoint.load(ckpt, small_tree())
    assert not marker.exists()


def test_checkpoint_meta_refuses_pickle(payload: tuple[bytes, Path], tmp_path: Path) -> None:
    data, marker = payload
    ckpt = checkpoint.save(tmp_path / "ckpts", 1, small_tree(), {})
    (ckpt / checkpoint.META_FILE).write_bytes(data)
    with pytest.raises(CritixError, match="unreadable meta.json"):
        checkpoint.load(ckpt, small_tree())
    assert not marker.exists()


def test_replay_buffer_file_refuses_pickle(payload: tuple[bytes, Path], tmp_path: Path) -> None:
    data, marker = payload
    path = tmp_path / "buffer.safetensors"
    path.write_bytes(data)
    with pytest.raises(CritixError, match="not a critix replay buffer file"):
        replay.load(path)
    assert not marker.exists()


def test_run_config_refuses_pickle(payload: tuple[bytes, Path], tmp_path: Path) -> None:
    data, marker = payload
    (tmp_path / "config.json").write_bytes(data)
    with pytest.raises(CritixError, match="config.json is missing or malformed"):
        load_run_config(tmp_path)
    assert not marker.exists()


def test_cli_refuses_pickled_run_folder(payload: tuple[bytes, Path], tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    """`critix eval` and `critix train --resume` on a run folder whose files are all pickles: exit 2, no code run."""
    data, marker = payload
    run_dir = tmp_path / "run"
    ckpt = run_dir / "checkpoints" / "step_000000000100"
    ckpt.mkdir(parents=True)
    for path in (run_dir / "config.json", ckpt / checkpoint.META_FILE, ckpt / checkpoint.STATE_FILE):
        path.write_bytes(data)
    assert main(["eval", str(run_dir)]) == 2
    assert main(["train", "sac", "--resume", str(run_dir)]) == 2
    err = capsys.readouterr().err
    assert "config.json is missing or malformed" in err and "Traceback" not in err
    # With a valid config.json, the pickled checkpoint itself is what gets refused.
    shutil.copy(Path(__file__).parent / "data" / "config_sac_pendulum.json", run_dir / "config.json")
    assert main(["eval", str(run_dir)]) == 2
    err = capsys.readouterr().err
    assert "unreadable meta.json" in err and "Traceback" not in err
    assert not marker.exists()


def test_replay_round_trip_and_malformed_files(tmp_path: Path) -> None:
    example = Transition(np.zeros(3, np.float32), np.zeros(2, np.float32), np.zeros((), np.float32),
                         np.zeros(3, np.float32), np.zeros((), bool), np.zeros((), bool))
    buffer = replay.init(8, example)
    leaves = [np.full((5, *np.shape(x)), i + 1, np.asarray(x).dtype) for i, x in enumerate(jax.tree.leaves(example))]
    items = jax.tree.unflatten(jax.tree.structure(example), leaves)
    buffer = replay.add(buffer, items)
    path = tmp_path / "buffer.safetensors"
    replay.save(path, buffer)
    loaded = replay.load(path)
    assert int(loaded.position) == 5 and int(loaded.size) == 5
    for name in replay.FIELDS:
        np.testing.assert_array_equal(getattr(loaded.data, name), getattr(buffer.data, name))
    from safetensors.numpy import save_file

    arrays = {name: np.asarray(getattr(buffer.data, name)) for name in replay.FIELDS}
    bad_cases = {
        "not a critix replay buffer (format": ({**arrays, "position": np.int32(0), "size": np.int32(0)}, {}),
        "lacks the replay fields": ({"reward": arrays["reward"]}, {"format": "critix-replay", "version": "1"}),
        "position must be an int32 scalar": ({**arrays, "position": np.array(99, np.int32), "size": np.int32(0)},
                                             {"format": "critix-replay", "version": "1"}),
        "leading capacity axis": ({**arrays, "obs": np.zeros((3, 3), np.float32), "position": np.int32(0),
                                   "size": np.int32(0)}, {"format": "critix-replay", "version": "1"}),
        "replay format version": ({**arrays, "position": np.int32(0), "size": np.int32(0)},
                                  {"format": "critix-replay", "version": "7"}),
    }
    for message, (tensors, metadata) in bad_cases.items():
        save_file({k: np.asarray(v) for k, v in tensors.items()}, str(path), metadata=metadata or None)
        with pytest.raises(CritixError, match=re.escape(message)):
            replay.load(path)


def tiny_dataset(root: Path) -> Path:
    """A valid one-episode Minari-format dataset (obs 3, action 1) to plant payloads into."""
    obs_space = gym.spaces.Box(-1.0, 1.0, (3,), np.float32)
    act_space = gym.spaces.Box(-2.0, 2.0, (1,), np.float32)
    episode = datasets.Episode(
        observations=np.zeros((5, 3), np.float32), actions=np.zeros((4, 1), np.float32),
        rewards=np.ones(4, np.float32), terminations=np.zeros(4, bool), truncations=np.array([0, 0, 0, 1], bool),
    )
    datasets.write_dataset(root, [episode], obs_space, act_space, dataset_id="test/tiny-v0")
    return datasets.data_dir_of(root)


@pytest.mark.parametrize("target", [datasets.DATA_FILE, datasets.METADATA_FILE])
def test_offline_dataset_refuses_pickle(payload: tuple[bytes, Path], tmp_path: Path, target: str) -> None:
    data, marker = payload
    data_dir = tiny_dataset(tmp_path / "ds")
    datasets.read_dataset(tmp_path / "ds")  # the untouched dataset reads
    (data_dir / target).write_bytes(data)
    with pytest.raises(CritixError):
        datasets.read_dataset(tmp_path / "ds")
    assert not marker.exists()


def test_sweep_file_and_manifest_refuse_pickle(payload: tuple[bytes, Path], tmp_path: Path) -> None:
    """A sweep file or a sweep folder's sweep.json that is a pickle (or YAML asking for a Python object) is refused."""
    from critix.sweep import spec

    data, marker = payload
    (tmp_path / "sweep.yaml").write_bytes(data)
    with pytest.raises(CritixError, match="cannot read the sweep file"):
        spec.read_sweep_file(tmp_path / "sweep.yaml")
    (tmp_path / "sweep.yaml").write_text(f"algo: !!python/object/apply:os.mkdir ['{marker}']\n")
    with pytest.raises(CritixError, match="is not valid YAML"):  # a safe loader: no Python tags
        spec.read_sweep_file(tmp_path / "sweep.yaml")
    (tmp_path / spec.MANIFEST).write_bytes(data)
    with pytest.raises(CritixError, match="is unreadable"):
        spec.Manifest.load(tmp_path)
    assert not marker.exists()
