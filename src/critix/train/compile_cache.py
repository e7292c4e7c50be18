"""A persistent cache of compiled XLA programs, so that a run compiles only what no earlier run on this machine did.

Every run (`critix.train.run.execute`) turns on JAX's persistent compilation cache before it builds anything: each
program XLA compiles (an update, a rollout chunk, the acting noise...) is written to disk, and a later process that
needs the same program (same computation, shapes, JAX version and machine) loads it instead of compiling it. A
second run of a configuration, the seeds of a sweep, a resumed run and the test suite then start in a fraction of
the time: host PPO on CartPole-v1 (100k steps, 4 envs) reports compile_seconds 2.1-2.5 s on a first run and
0.76-0.83 s on the next, the first rollout and update included (`docs/benchmarks.md`, issue 19).

Where: `$CRITIX_COMPILE_CACHE`, else `$XDG_CACHE_HOME/critix/xla`, else `~/.cache/critix/xla`, in a subfolder per
jax/jaxlib version and CPU instruction set (a cache shared over machines of several CPU kinds never hands one a
program compiled for another). `CRITIX_COMPILE_CACHE=off` turns it off; a cache directory set through JAX's own
`jax_compilation_cache_dir` is left as it is. The cache holds at most `MAX_BYTES` (least recently used programs are
evicted) and is safe to share between processes running at once (a file lock). summary.json records the directory
and the run's hits and misses (`compile_cache`). A cached program computes what the freshly compiled one does, so
results do not depend on the cache.

`enable` also makes every program compile JAX's Threefry random-bit hash as straight-line code
(`unroll_threefry`), which XLA:CPU compiles several times faster than JAX's CPU default, a five-step loop; the bits
are the same.
"""

from __future__ import annotations

import hashlib
import os
import platform
import warnings
from pathlib import Path
from typing import Any

import jax
from jax.experimental.compilation_cache import compilation_cache

ENV = "CRITIX_COMPILE_CACHE"
OFF = ("off", "0", "false", "no", "none")
MAX_BYTES = 1 << 30
"""Eviction threshold of the cache directory (1 GiB; a host PPO run's programs take ~0.5 MB)."""

_EVENTS = {"/jax/compilation_cache/cache_hits": "hits", "/jax/compilation_cache/cache_misses": "misses"}
_counts = {"hits": 0, "misses": 0}
_enabled: Path | None = None  # the directory this module set in JAX's config
_listening = False


def _count(event: str, **_: Any) -> None:
    name = _EVENTS.get(event)
    if name is not None:
        _counts[name] += 1


def machine_tag() -> str:
    """jax and jaxlib versions and a digest of the CPU's instruction-set flags: the subfolder of this machine's
    programs (XLA:CPU compiles for the host's instruction set)."""
    import jaxlib

    flags = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                flags = " ".join(sorted(line.split(":", 1)[1].split()))
                break
    except OSError:
        pass
    digest = hashlib.sha256(f"{platform.machine()} {platform.processor()} {flags}".encode()).hexdigest()[:12]
    return f"jax{jax.__version__}-jaxlib{jaxlib.__version__}-{platform.machine()}-{digest}"


def directory() -> Path | None:
    """The cache directory critix uses now (None when turned off), from $CRITIX_COMPILE_CACHE or the default."""
    setting = os.environ.get(ENV, "").strip()
    if setting.lower() in OFF and setting:
        return None
    if setting:
        base = Path(setting).expanduser()
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "critix" / "xla"
    return base / machine_tag()


def unroll_threefry() -> bool:
    """Lower JAX's Threefry-2x32 hash (every `jax.random` key split, fold-in and bit draw) on CPU as JAX does on
    GPU: its 20 rounds as straight-line code in one out-of-line function, instead of JAX's CPU default, a
    `fori_loop` of 5 steps with the rotation amounts carried in the loop. The hash is integer arithmetic, so the
    bits are identical; what changes is what XLA:CPU compiles: one fused kernel per hash instead of a while loop
    whose body kernels shift by run-time amounts (or, for a small loop, one fully unrolled "small call" kernel),
    which LLVM compiles slowly: the acting noise draw of host PPO on CartPole-v1 compiles in 0.1 s instead of 0.5 s
    and the PPO update in about 0.7 s less of CPU time (one core, XLA compile logs, issue 19). Uses JAX internals;
    returns False, leaving JAX's lowering as it is, where they are missing."""
    try:
        from jax._src.interpreters import mlir
        from jax._src.random import threefry2x32
        primitive, rule = threefry2x32.threefry2x32_p, threefry2x32._threefry2x32_lowering_rule
    except (ImportError, AttributeError):
        return False
    mlir.register_lowering(primitive, rule, platform="cpu", inline=False)
    return True


def enable() -> Path | None:
    """Turn the persistent cache on (or off, per $CRITIX_COMPILE_CACHE) for the programs compiled from now on in
    this process; returns the directory in use, or None. A directory that cannot be created or written gives a
    warning and a run without the cache. Also `unroll_threefry`, for the same programs."""
    global _enabled, _listening
    unroll_threefry()
    if not _listening:
        jax.monitoring.register_event_listener(_count)
        _listening = True
    configured = jax.config.jax_compilation_cache_dir
    if configured and (_enabled is None or Path(configured) != _enabled):
        return Path(configured)  # the user's own JAX setting
    wanted = directory()
    if wanted == _enabled:
        return wanted
    if wanted is not None:
        try:
            wanted.mkdir(parents=True, exist_ok=True)
            probe = wanted / f".write-test-{os.getpid()}"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as error:
            warnings.warn(f"the compile cache {wanted} cannot be written ({error}); running without it (set "
                          f"{ENV} to a writable folder, or to 'off')", stacklevel=2)
            wanted = None
    if wanted is None:
        jax.config.update("jax_compilation_cache_dir", None)
    else:
        jax.config.update("jax_compilation_cache_dir", str(wanted))
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)  # small programs add up
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
        jax.config.update("jax_compilation_cache_max_size", MAX_BYTES)
    # JAX decides once per process, at its first compile, whether a cache is used: start that decision over.
    compilation_cache.reset_cache()
    _enabled = wanted
    return wanted


def counts() -> dict[str, int]:
    """Cache hits and misses in this process so far (compiles that loaded a program, compiles that wrote one)."""
    return dict(_counts)
