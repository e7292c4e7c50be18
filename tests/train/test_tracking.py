"""`--track wandb`: an offline W&B run per seed inside the run folder holds the run's metrics (the rows of
metrics.csv, same names and steps), its config (config.json), the learning curve, the videos and the summary; a
resume continues the same W&B runs; a missing package names the extra to install; the mode is offline unless an
API key is configured.

W&B writes an offline run as one `.wandb` file: W&B's record protobufs (`wandb.proto.wandb_internal_pb2.Record`) in
LevelDB's log framing (32 KiB blocks, each record split into chunks with a 7-byte header). wandb 0.31 ships no
Python reader for it (its Go core reads it for `wandb sync`), so `read_wandb` below unframes the records and parses
them with W&B's own protobuf classes.
"""

from __future__ import annotations

import csv
import json
import math
import struct
import sys
from pathlib import Path
from typing import Any

import pytest

from critix.cli import main
from critix.train import tracking

pytest.importorskip("wandb")

TINY = ["--hidden-sizes", "32", "32", "--batch-size", "32", "--learning-starts", "100", "--chunk-size", "100",
        "--eval-episodes", "1", "--no-progress", "--no-tensorboard"]
BLOCK, HEADER = 32768, 7
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def wandb_records(path: Path) -> list[Any]:
    """The records of a .wandb file, in order."""
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    ident, magic, _ = struct.unpack("<4sHB", data[:HEADER])
    assert ident == b":W&B" and magic == 0xBEE1, f"{path} is not a W&B transaction log"
    raw, pending, pos = [], b"", HEADER
    while pos + HEADER <= len(data):
        left = BLOCK - pos % BLOCK
        if left < HEADER:  # a block's tail too short for a header is padding
            pos += left
            continue
        _, length, kind = struct.unpack("<IHB", data[pos:pos + HEADER])
        if kind == 0:  # zero padding to the block's end
            pos += left
            continue
        chunk, pos = data[pos + HEADER:pos + HEADER + length], pos + HEADER + length
        if kind == FULL:
            raw.append(chunk)
        elif kind == FIRST:
            pending = chunk
        elif kind == MIDDLE:
            pending += chunk
        elif kind == LAST:
            raw.append(pending + chunk)
    records = []
    for item in raw:
        record = wandb_internal_pb2.Record()
        record.ParseFromString(item)
        records.append(record)
    return records


def read_wandb(path: Path) -> dict[str, Any]:
    """run id, config, history (step -> {name: value}, media as {name: {field: value}}) and summary of a .wandb."""
    out: dict[str, Any] = {"config": {}, "history": {}, "summary": {}}
    for record in wandb_records(path):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            out["id"], out["group"] = record.run.run_id, record.run.run_group
            out["config"].update({u.key: json.loads(u.value_json) for u in record.run.config.update})
        elif kind == "config":
            out["config"].update({u.key: json.loads(u.value_json) for u in record.config.update})
        elif kind == "history":
            row: dict[str, Any] = {}
            for item in record.history.item:
                key = list(item.nested_key) or [item.key]
                if len(key) == 1:
                    row[key[0]] = json.loads(item.value_json)
                else:  # a media value: {"_type": "video-file", "path": ...}
                    row.setdefault(key[0], {})[key[1]] = json.loads(item.value_json)
            out["history"].setdefault(row.pop("_step"), {}).update(row)
        elif kind == "summary":
            out["summary"].update({(u.key or "/".join(u.nested_key)): json.loads(u.value_json)
                                   for u in record.summary.update})
    out["config"].pop("_wandb", None)
    assert "id" in out, f"{path} ({path.stat().st_size} bytes) holds no run record: W&B has not written it out"
    return out


def metrics_by_seed(run_dir: Path) -> dict[int, dict[int, dict[str, float]]]:
    """seed -> step -> {metric: value} of the non-empty cells of metrics.csv."""
    table: dict[int, dict[int, dict[str, float]]] = {}
    with (run_dir / "metrics.csv").open(newline="") as f:
        for row in csv.DictReader(f):
            values = {k: float(v) for k, v in row.items() if k not in ("step", "seed", "wall_seconds") and v}
            table.setdefault(int(row["seed"]), {})[int(row["step"])] = values
    return table


@pytest.fixture
def offline_wandb(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No W&B mode, key or login configured, and W&B's own files kept out of the home folder."""
    for name in ("WANDB_MODE", "WANDB_API_KEY", "WANDB_IDENTITY_TOKEN_FILE", "WANDB_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    for name in ("WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR", "WANDB_ARTIFACT_DIR"):
        monkeypatch.setenv(name, str(tmp_path / "wandb-home" / name.lower()))


def run_files(run_dir: Path, run_id: str) -> list[Path]:
    return sorted((run_dir / "wandb").glob(f"offline-run-*-{run_id}/run-{run_id}.wandb"))


def test_offline_wandb_runs_hold_the_metrics_config_curve_and_videos_and_resume(
        tmp_path: Path, offline_wandb: None, capsys: pytest.CaptureFixture[str]) -> None:
    run_dir = tmp_path / "run"
    assert main(["train", "sac", "--env", "Pendulum-v1", "--steps", "400", "--num-seeds", "2", "--eval-every", "200",
                 "--video-every", "400", "--track", "wandb", "--run-dir", str(run_dir), *TINY]) == 0
    assert "wandb sync" in capsys.readouterr().err  # offline without a key, and how to upload later
    state = json.loads((run_dir / "wandb" / "critix.json").read_text())
    assert state["group"] == "run" and state["project"] == "critix" and len(state["ids"]) == 2
    config = json.loads((run_dir / "config.json").read_text())
    summary = json.loads((run_dir / "summary.json").read_text())
    table = metrics_by_seed(run_dir)
    for seed, run_id in enumerate(state["ids"]):
        (path,) = run_files(run_dir, run_id)
        run = read_wandb(path)
        assert run["id"] == run_id and run["group"] == "run"
        assert run["config"] == {**config, "seed": seed}
        media = {"video", "learning_curve"}
        history = {step: {k: v for k, v in row.items() if not k.startswith("_") and k not in media}
                   for step, row in run["history"].items()}
        assert sorted(history) == sorted(table[seed]) == [200, 400]
        for step, values in table[seed].items():  # metrics.csv keeps 6 significant digits
            assert history[step].keys() == values.keys()
            assert all(math.isclose(history[step][k], v, rel_tol=1e-5, abs_tol=1e-9) for k, v in values.items())
        final = run["history"][400]
        assert final["learning_curve"]["_type"] == "image-file"
        assert (path.parent / "files" / final["learning_curve"]["path"]).is_file()
        if seed == 0:  # the video is of seed 0's agent
            assert final["video"]["_type"] == "video-file"
            assert (path.parent / "files" / final["video"]["path"]).stat().st_size > 1000
        else:
            assert "video" not in final
        assert run["summary"]["final_return"] == pytest.approx(summary["final_return"][seed])
        assert run["summary"]["steps"] == 400

    # A resumed run continues the same W&B runs: W&B keeps the resumed part as a second file of the same run id.
    assert main(["train", "sac", "--resume", str(run_dir), "--steps", "600", "--no-progress"]) == 0
    assert json.loads((run_dir / "wandb" / "critix.json").read_text()) == state
    table = metrics_by_seed(run_dir)
    for seed, run_id in enumerate(state["ids"]):
        first, second = run_files(run_dir, run_id)
        resumed = read_wandb(second)
        assert resumed["id"] == run_id and sorted(read_wandb(first)["history"]) == [200, 400]
        assert sorted(resumed["history"]) == [600]  # only the steps after the checkpoint
        assert resumed["history"][600]["eval/return"] == pytest.approx(table[seed][600]["eval/return"], rel=1e-5)


def test_track_wandb_without_the_package_names_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "wandb", None)  # `import wandb` raises ImportError
    run_dir = tmp_path / "run"
    assert main(["train", "sac", "--env", "Pendulum-v1", "--steps", "200", "--track", "wandb", "--run-dir",
                 str(run_dir), *TINY]) == 2
    assert "pip install 'critix[wandb]'" in capsys.readouterr().err
    assert not run_dir.exists()


def test_mode_is_offline_unless_a_key_is_configured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("WANDB_MODE", "WANDB_API_KEY", "WANDB_IDENTITY_TOKEN_FILE", "WANDB_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    netrc_path = tmp_path / "netrc"
    monkeypatch.setenv("NETRC", str(netrc_path))
    assert tracking.wandb_mode() == "offline"
    netrc_path.write_text("machine api.wandb.ai\n  login user\n  password 0123456789abcdef\n")
    assert tracking.wandb_mode() == "online"  # `wandb login` wrote its key
    monkeypatch.setenv("WANDB_MODE", "disabled")
    assert tracking.wandb_mode() == "disabled"  # the user's setting wins
    monkeypatch.delenv("WANDB_MODE")
    netrc_path.unlink()
    monkeypatch.setenv("WANDB_API_KEY", "0123456789abcdef")
    assert tracking.wandb_mode() == "online"
