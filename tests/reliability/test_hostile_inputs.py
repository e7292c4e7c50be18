"""Property-based tests: random and hostile values thrown at configs, CLI arguments and file loaders.

The property everywhere: the outcome is either a valid object or ONE clear error (ValueError/CritixError, exit
code 2 from the CLI) — never another exception type, a traceback, or a silently accepted bad value.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import json
import math
import struct
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from critix import validation
from critix.agents import REGISTRY
from critix.cli import main
from critix.data import replay
from critix.train import checkpoint
from critix.train.config import RunConfig, load_run_config
from critix.types import CritixError

FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])

hostile_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.binary(max_size=8),
)
hostile_values = st.one_of(hostile_scalars, st.lists(hostile_scalars, max_size=3),
                           st.tuples(hostile_scalars, hostile_scalars), st.dictionaries(st.text(max_size=4), hostile_scalars, max_size=2))


def assert_valid_or_clear_error(build: Any) -> Any:
    try:
        obj = build()
    except (ValueError, CritixError) as err:
        message = str(err)
        assert message and "\n" not in message.strip(), f"unclear error: {message!r}"
        return None
    validation.check_types(obj)  # accepted: then every field really has its declared type
    return obj


def test_nested_configs_refuse_other_values() -> None:
    """A nested config field (value_head) given None or a plain value is one clear ValueError in every agent, not
    an AttributeError from the agent's own checks (hypothesis found CQL's)."""
    for algo, spec in sorted(REGISTRY.items()):
        nested = [f.name for f in dataclasses.fields(spec.default_config)
                  if dataclasses.is_dataclass(getattr(spec.default_config, f.name))]
        for name, value in ((n, v) for n in nested for v in (None, 1.0, "scalar")):
            assert assert_valid_or_clear_error(lambda: dataclasses.replace(spec.default_config, **{name: value})) \
                is None, (algo, name, value)


@FAST
@given(algo=st.sampled_from(sorted(REGISTRY)), data=st.data())
def test_agent_configs_accept_only_valid_values(algo: str, data: st.DataObject) -> None:
    default = REGISTRY[algo].default_config
    field = data.draw(st.sampled_from([f.name for f in dataclasses.fields(default)]))
    value = data.draw(hostile_values)
    cfg = assert_valid_or_clear_error(lambda: dataclasses.replace(default, **{field: value}))
    if cfg is not None:
        fields = {f.name for f in dataclasses.fields(cfg)}  # offline (bc) and on-policy agents lack some
        if "gamma" in fields:
            assert 0 <= cfg.gamma <= 1
        if "target_tau" in fields:
            assert 0 < cfg.target_tau <= 1
        if "buffer_size" in fields:
            assert cfg.batch_size <= cfg.buffer_size
        assert all(math.isfinite(getattr(cfg, f.name)) for f in dataclasses.fields(cfg)
                   if isinstance(getattr(cfg, f.name), float))


@FAST
@given(field=st.sampled_from([f.name for f in dataclasses.fields(RunConfig)]), value=hostile_values)
def test_run_config_accepts_only_valid_values(field: str, value: Any) -> None:
    cfg = assert_valid_or_clear_error(lambda: dataclasses.replace(RunConfig(), **{field: value}))
    if cfg is not None:
        assert cfg.steps >= 1 and cfg.num_seeds >= 1 and cfg.chunk_size >= 0 and cfg.on_nan in ("stop", "skip")


CLI_FLAGS = ["--env", "--steps", "--num-seeds", "--num-envs", "--seed", "--chunk-size", "--gamma", "--target-tau",
             "--batch-size", "--buffer-size", "--actor-lr", "--hidden-sizes", "--activation", "--critic-head",
             "--utd-ratio", "--on-nan", "--vectorization", "--critic-dropout", "--init-alpha", "--run-dir",
             "--resume", "--target-entropy", "--learning-starts", "--eval-episodes"]
cli_text = st.one_of(st.text(max_size=12), st.sampled_from(["nan", "inf", "-inf", "-1", "0", "1e309", "1e-320",
                                                            "9" * 30, "", "--", "True", "None", "-0"]))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pairs=st.lists(st.tuples(st.sampled_from(CLI_FLAGS), cli_text), min_size=1, max_size=3),
       algo=st.sampled_from(sorted(REGISTRY)))
def test_hostile_cli_arguments_exit_2_without_traceback(pairs: list[tuple[str, str]], algo: str) -> None:
    argv = ["train", algo]
    for flag, value in pairs:
        argv += [flag, value]
    argv += ["--steps", "0", "--no-progress"]  # whatever else parses, the run cannot start: nothing trains
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(argv)
    assert code == 2, argv
    assert "Traceback" not in err.getvalue()
    assert err.getvalue().strip(), "an error must say something"


def _write_checkpoint(ckpt: Path, state_bytes: bytes, meta: dict[str, Any] | None = None) -> None:
    """A checkpoint folder whose checksums match `state_bytes`, so the loader has to parse it."""
    ckpt.mkdir(parents=True, exist_ok=True)
    (ckpt / checkpoint.STATE_FILE).write_bytes(state_bytes)
    meta = dict(meta or {"format_version": checkpoint.FORMAT_VERSION, "critix_version": "0.1.0", "step": 1})
    meta["files"] = {checkpoint.STATE_FILE: {"sha256": hashlib.sha256(state_bytes).hexdigest(),
                                             "bytes": len(state_bytes)}}
    meta[checkpoint.META_CHECKSUM] = checkpoint._meta_digest(meta)
    (ckpt / checkpoint.META_FILE).write_text(json.dumps(meta))


TEMPLATE = {"w": np.zeros((2, 3), np.float32), "step": np.zeros((), np.int32)}


@FAST
@given(blob=st.binary(max_size=300))
def test_random_bytes_are_refused_by_every_loader(blob: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        ckpt = root / "step_000000000001"
        _write_checkpoint(ckpt, blob)  # checksums match: the safetensors parser itself must refuse
        with_error(lambda: checkpoint.load(ckpt, TEMPLATE))
        (ckpt / checkpoint.META_FILE).write_bytes(blob)
        with_error(lambda: checkpoint.load(ckpt, TEMPLATE))
        (root / "buffer.safetensors").write_bytes(blob)
        with_error(lambda: replay.load(root / "buffer.safetensors"))
        (root / "config.json").write_bytes(blob)
        with_error(lambda: load_run_config(root))


def with_error(fn: Any) -> None:
    try:
        fn()
    except CritixError as err:
        assert str(err)
        return
    raise AssertionError("a malformed file was accepted")


json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=8)),
    lambda children: st.one_of(st.lists(children, max_size=4), st.dictionaries(st.text(max_size=8), children, max_size=4)),
    max_leaves=12,
)
config_like = st.fixed_dictionaries(
    {"algo": st.one_of(st.sampled_from(sorted(REGISTRY)), json_values),
     "agent": st.one_of(st.dictionaries(st.sampled_from(["gamma", "batch_size", "hidden_sizes", "bogus"]), json_values),
                        json_values),
     "run": st.one_of(st.dictionaries(st.sampled_from(["steps", "env", "seed", "on_nan"]), json_values), json_values)}
)


@FAST
@given(config=config_like)
def test_hostile_config_json_gives_a_clear_error_or_a_valid_config(config: dict[str, Any]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "config.json").write_text(json.dumps(config))
        try:
            algo, agent_cfg, run = load_run_config(Path(tmp))
        except CritixError as err:
            assert str(err)
            return
        validation.check_types(agent_cfg)
        validation.check_types(run)
        assert algo in REGISTRY


@FAST
@given(meta=st.dictionaries(st.sampled_from(["format_version", "critix_version", "step", "files", "counters",
                                             "loop", "numpy_rng"]), json_values), checksum=st.booleans())
def test_hostile_checkpoint_metadata_is_refused(meta: dict[str, Any], checksum: bool) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = Path(tmp) / "step_000000000001"
        ckpt.mkdir()
        (ckpt / checkpoint.STATE_FILE).write_bytes(b"\x00" * 16)
        if checksum:  # a consistent meta checksum: the fields themselves must be checked
            meta[checkpoint.META_CHECKSUM] = checkpoint._meta_digest(meta)
        (ckpt / checkpoint.META_FILE).write_text(json.dumps(meta))
        with_error(lambda: checkpoint.load(ckpt, TEMPLATE))


safetensors_headers = st.dictionaries(
    st.text(max_size=6),
    st.fixed_dictionaries({"dtype": st.sampled_from(["F32", "I32", "F64", "BOOL", "U8", "XX", ""]),
                           "shape": st.lists(st.integers(-3, 2**40), max_size=3),
                           "data_offsets": st.lists(st.integers(-5, 2**40), min_size=0, max_size=3)}),
    max_size=3,
)


@FAST
@given(header=safetensors_headers, body=st.binary(max_size=64))
def test_crafted_safetensors_headers_are_refused(header: dict[str, Any], body: bytes) -> None:
    raw = json.dumps(header).encode()
    blob = struct.pack("<Q", len(raw)) + raw + body
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = Path(tmp) / "step_000000000001"
        _write_checkpoint(ckpt, blob)
        with_error(lambda: checkpoint.load(ckpt, TEMPLATE))
        (Path(tmp) / "buffer.safetensors").write_bytes(blob)
        with_error(lambda: replay.load(Path(tmp) / "buffer.safetensors"))
