"""The persistent compile cache (`critix.train.compile_cache`): a second process of the same run loads its programs
instead of compiling them, with the same results; it can be turned off, and an unusable folder only warns."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import jax
import pytest

from critix.train import compile_cache

RUN = ["train", "ppo", "--env", "CartPole-v1", "--steps", "256", "--num-envs", "2", "--rollout-length", "64",
       "--minibatch-size", "32", "--num-epochs", "1", "--hidden-sizes", "16", "--eval-episodes", "2",
       "--no-progress", "--no-tensorboard"]


def run_process(run_dir: Path, cache: str) -> dict:
    env = {**os.environ, compile_cache.ENV: cache}
    proc = subprocess.run([sys.executable, "-m", "critix.cli", *RUN, "--run-dir", str(run_dir)], env=env,
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads((run_dir / "summary.json").read_text())


def test_a_second_process_loads_the_programs_the_first_compiled(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    first = run_process(tmp_path / "first", str(cache))
    second = run_process(tmp_path / "second", str(cache))
    folder = Path(first["compile_cache"]["dir"])
    assert folder.parent == cache and folder.name == compile_cache.machine_tag()
    assert first["compile_cache"]["misses"] > 0 and first["compile_cache"]["hits"] == 0
    assert second["compile_cache"]["hits"] >= first["compile_cache"]["misses"]
    assert second["compile_cache"]["misses"] == 0
    assert second["final_return"] == first["final_return"]  # a loaded program computes what the compiled one did
    assert len(list(folder.glob("*-cache"))) == first["compile_cache"]["misses"]


def test_off_turns_it_off(tmp_path: Path) -> None:
    summary = run_process(tmp_path / "run", "off")
    assert summary["compile_cache"] == {"dir": None, "hits": 0, "misses": 0}


@pytest.fixture
def own_config() -> Iterator[None]:
    """Run `enable` as a process without the test session's cache would, then put the session's back."""
    names = ("jax_compilation_cache_dir", "jax_persistent_cache_min_compile_time_secs",
             "jax_persistent_cache_min_entry_size_bytes", "jax_compilation_cache_max_size")
    saved = {name: getattr(jax.config, name) for name in names}
    jax.config.update("jax_compilation_cache_dir", None)
    try:
        yield
    finally:
        compile_cache._enabled = None
        for name, value in saved.items():
            jax.config.update(name, value)
        compile_cache.compilation_cache.reset_cache()


def test_an_unwritable_folder_warns_and_runs_without_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                        own_config: None) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv(compile_cache.ENV, str(blocker / "cache"))
    with pytest.warns(UserWarning, match="cannot be written"):
        assert compile_cache.enable() is None
    assert jax.config.jax_compilation_cache_dir is None
    monkeypatch.setenv(compile_cache.ENV, str(tmp_path / "ok"))
    folder = compile_cache.enable()
    assert folder is not None and folder.is_dir() and jax.config.jax_compilation_cache_dir == str(folder)
    jax.jit(lambda x: x * 3.0 + 1.0)(jax.numpy.ones(7))  # compiled from now on: written to the folder
    assert list(folder.glob("*-cache"))


def test_a_folder_set_through_jax_is_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(compile_cache.ENV, "off")
    session = jax.config.jax_compilation_cache_dir  # the test session sets JAX's own option (conftest)
    assert session and compile_cache.enable() == Path(session)
    assert jax.config.jax_compilation_cache_dir == session


def test_unrolled_threefry_gives_jax_bits_from_straight_line_code() -> None:
    """`unroll_threefry` changes how JAX's CPU programs compute Threefry (no loop), never the random numbers."""
    from jax._src.interpreters import mlir
    from jax._src.random import threefry2x32

    def draws() -> tuple[jax.Array, str]:
        def f(key: jax.Array) -> tuple[jax.Array, ...]:  # a new function each call: jit caches nothing across
            a, b = jax.random.split(jax.random.fold_in(key, 7))
            return (jax.random.split(b, 5), jax.random.bits(a, (33,)), jax.random.gumbel(b, (4, 3)),
                    jax.random.normal(a))

        key = jax.random.PRNGKey(11)
        return jax.device_get(jax.jit(f)(key)), jax.jit(f).lower(key).as_text()

    mlir.register_lowering(threefry2x32.threefry2x32_p, threefry2x32._threefry2x32_cpu_lowering_rule,
                           platform="cpu")  # JAX's own CPU lowering, a loop
    rolled, rolled_text = draws()
    assert compile_cache.unroll_threefry()
    unrolled, unrolled_text = draws()
    assert "stablehlo.while" in rolled_text and "stablehlo.while" not in unrolled_text
    for x, y in zip(jax.tree.leaves(rolled), jax.tree.leaves(unrolled), strict=True):
        assert x.dtype == y.dtype and (x == y).all()
