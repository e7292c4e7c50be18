"""Where a host-mode DQN run's time goes, per chunk (issue 19): SB3's DQN settings on CartPole-v1, 1 env, 1 seed,
run through `critix.train.train` with timers wrapped around the loop's pieces (no change to what runs).

Parts (seconds over the run, and microseconds per env step): the XLA compile of every jitted program (JAX's own
compile log, summed per program), and the pieces of the chunks: `explore` (NumPy acting), `step_envs` (env step,
episode bookkeeping, staging), `random_actions` (before learning starts), `acting.start` (parameters to the host),
the compiled chunk call (its dispatch; the first call of each program includes its compile), `device_get` (the
guard counters' readback, which waits for the compiled call to finish) and `advance` (the whole chunk: the rest of
the run's wall time is `Lifecycle`'s logging, progress and checkpoints). Another commit's tree is profiled by
putting its src/ first on PYTHONPATH.

    .venv/bin/python benchmarks/dqn_chunk_profile.py --chunk-size 64 --steps 100000
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from dqn_speed import SB3_DQN, critix_dqn_config  # noqa: E402

import jax  # noqa: E402

from critix.agents import common, dqn  # noqa: E402
from critix.train import RunConfig, host, offpolicy, train  # noqa: E402

TIMES: dict[str, float] = defaultdict(float)
COUNTS: dict[str, int] = defaultdict(int)
COMPILES: list[tuple[str, float]] = []


def timed(owner: object, name: str, label: str) -> None:
    original = getattr(owner, name)

    def wrapper(*args, **kwargs):  # type: ignore[no-untyped-def]
        t = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            TIMES[label] += time.perf_counter() - t
            COUNTS[label] += 1

    setattr(owner, name, wrapper)


class CompileLog(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        m = re.match(r"Finished (.*?) (?:for|of) (jit\(.*?\)|\S+) in ([0-9.e-]+) sec", record.getMessage())
        if m:
            COMPILES.append((f"{m.group(1)} {m.group(2)}", float(m.group(3))))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chunk-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--run-dir", default="/tmp/dqn-chunk-profile")
    args = parser.parse_args()
    jax.config.update("jax_log_compiles", True)
    handler = CompileLog()
    for name in ("jax._src.interpreters.pxla", "jax._src.dispatch", "jax._src.compiler", "jax._src.stages"):
        logging.getLogger(name).addHandler(handler)
    agent_fields, run_fields = critix_dqn_config(SB3_DQN, args.steps, args.chunk_size)
    cfg = common.replace_fields(dqn.Config(), **agent_fields)
    run = RunConfig(env="CartPole-v1", steps=args.steps, eval_every=0, eval_episodes=10, log_every=args.steps // 10,
                    progress=False, tensorboard=False, run_dir=args.run_dir, **run_fields)
    timed(offpolicy.OffPolicy, "advance", "advance (whole chunk)")
    timed(host.HostStepper, "step_envs", "step_envs (env + bookkeeping + staging)")
    timed(host.HostStepper, "explore", "explore (NumPy acting)")
    if hasattr(host, "Acting"):
        timed(host.Acting, "start", "acting.start (params to host)")
    timed(offpolicy, "random_actions", "random_actions")
    timed(host.HostStepper, "evaluate", "evaluate")
    orig_build = offpolicy.OffPolicy._build_functions

    def build(self):  # type: ignore[no-untyped-def]
        orig_build(self)
        timed(self, "train_chunk", "compiled chunk call (dispatch; compiles on first use)")
        if getattr(self, "masked", False):
            timed(self, "train_masked", "compiled chunk call (dispatch; compiles on first use)")

    offpolicy.OffPolicy._build_functions = build
    timed(jax, "block_until_ready", "block_until_ready")
    timed(jax, "device_get", "device_get")
    import shutil
    shutil.rmtree(args.run_dir, ignore_errors=True)
    t = time.perf_counter()
    summary = train("dqn", cfg, run)
    total = time.perf_counter() - t
    out = {"chunk_size": args.chunk_size, "steps": args.steps, "process_train_seconds": total,
           "summary": {k: summary[k] for k in ("wall_seconds", "compile_seconds", "train_seconds",
                                                "steps_per_second", "final_return_mean")},
           "parts_seconds": dict(TIMES), "calls": dict(COUNTS),
           "compiles": [c for c in COMPILES if "XLA compilation" in c[0] or "tracing" in c[0] or "MLIR" in c[0]]}
    out["compile_total_xla"] = sum(s for n, s in COMPILES if "XLA compilation" in n)
    out["compile_by_program"] = {}
    for name, seconds in COMPILES:
        if "XLA compilation" not in name:
            continue
        program = name.split()[-1]
        out["compile_by_program"][program] = out["compile_by_program"].get(program, 0.0) + seconds
    steady_steps = summary["steps"] if "steps" in summary else args.steps
    out["us_per_env_step"] = {k: v / steady_steps * 1e6 for k, v in TIMES.items()}
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
