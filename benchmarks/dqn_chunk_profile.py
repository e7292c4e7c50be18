"""Where a host-mode DQN run's time goes, per chunk (issue 19): SB3's DQN settings on CartPole-v1, 1 env, 1 seed,
run through `critix.train.train` with timers wrapped around the loop's pieces (no change to what runs).

Parts (seconds, whole run): compile of every jitted program (JAX's own log: trace, lower, XLA compile per
program), and per chunk: acting (`Acting.explore`, NumPy), env steps and bookkeeping (`step_envs` minus nothing),
random actions before learning starts, acting.start (parameters to the host), the compiled chunk call (dispatch +
wait: `train_chunk`, guard readback, block_until_ready) and the rest of `Lifecycle` (logging, progress, observers).

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
    timed(host.Acting, "start", "acting.start (params to host)")
    timed(offpolicy, "random_actions", "random_actions")
    timed(host.HostStepper, "evaluate", "evaluate")
    orig_build = offpolicy.OffPolicy._build_functions

    def build(self):  # type: ignore[no-untyped-def]
        orig_build(self)
        timed(self, "train_chunk", "train_chunk call (dispatch)")

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
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
