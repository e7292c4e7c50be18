"""Soak: SAC for 1,000,000 env steps in one process; resident memory over time and steps/s stability.

The run goes through critix's normal path (`critix.train.train`: vector env, compiled update chunks,
metrics CSV, TensorBoard, periodic evaluation and checkpoints), so a leak anywhere in the loop shows up.
A thread samples the process's resident set size (VmRSS, /proc/self/status) every `--sample-seconds`; after the
run, each sample is placed on the env-step axis through the run's metrics.csv (step, wall_seconds).

Acceptance (issue 6): RSS growth between 200k steps (where the default --buffer-size 200000 is full) and the
end must be < 5%. Steps/s stability: throughput per logging interval (env steps between two metrics rows over
their wall time; intervals that contain an evaluation or checkpoint are reported separately).

Cheap by design, and said so in the results: small networks (--hidden 64 64), batch 128, 4 envs per seed and
UTD 0.5 (0.5 gradient steps per env step), so 1M env steps fit in minutes, not hours.

    .venv/bin/python benchmarks/soak.py                        # 1M steps, Pendulum-v1
    .venv/bin/python benchmarks/soak.py --steps 50000 --buffer-size 10000   # a quick look
"""

from __future__ import annotations

import argparse
import csv
import datetime
import json
import os
import platform
import shlex
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results"


def rss_bytes() -> int:
    """Resident set size of this process (VmRSS)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("VmRSS not found in /proc/self/status")


class Sampler(threading.Thread):
    def __init__(self, every: float) -> None:
        super().__init__(daemon=True)
        self.every, self.samples, self.stop_flag = every, [], threading.Event()
        self.start_time = time.perf_counter()

    def run(self) -> None:
        while not self.stop_flag.is_set():
            self.samples.append((time.perf_counter() - self.start_time, rss_bytes()))
            self.stop_flag.wait(self.every)


def read_rows(metrics_csv: Path) -> list[dict[str, str]]:
    with metrics_csv.open(newline="") as f:
        return [r for r in csv.DictReader(f) if r["seed"] == "0"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="Pendulum-v1")
    parser.add_argument("--steps", type=int, default=1_000_000)
    parser.add_argument("--num-envs", type=int, default=4)
    parser.add_argument("--hidden", type=int, nargs="+", default=[64, 64])
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--utd-ratio", type=float, default=0.5)
    parser.add_argument("--buffer-size", type=int, default=200_000)
    parser.add_argument("--log-every", type=int, default=5_000)
    parser.add_argument("--eval-every", type=int, default=100_000)
    parser.add_argument("--sample-seconds", type=float, default=5.0)
    parser.add_argument("--run-dir", default=None)
    parser.add_argument("--tag", default=datetime.datetime.now().strftime("%Y-%m-%d-%H%M%S"))
    args = parser.parse_args()

    import jax

    from critix.agents import sac
    from critix.train import RunConfig, train

    run_dir = Path(args.run_dir or f"/tmp/critix-soak-{args.tag}")
    cfg = sac.Config(hidden_sizes=tuple(args.hidden), batch_size=args.batch_size)
    run = RunConfig(env=args.env, steps=args.steps, num_envs=args.num_envs, eval_every=args.eval_every,
                    eval_episodes=5, log_every=args.log_every, progress=False, run_dir=str(run_dir),
                    buffer_size=args.buffer_size, utd_ratio=args.utd_ratio, learning_starts=5_000)
    load_start = os.getloadavg()
    sampler = Sampler(args.sample_seconds)
    rss_before = rss_bytes()
    sampler.start()
    train_start = time.perf_counter() - sampler.start_time
    summary = train("sac", cfg, run)
    sampler.stop_flag.set()
    sampler.join()
    load_end = os.getloadavg()

    # Place RSS samples on the step axis: metrics rows give (wall_seconds since the loop started, step).
    rows = read_rows(run_dir / "metrics.csv")
    train_rows = [r for r in rows if r.get("time/steps_per_second")]
    marks = [(float(r["wall_seconds"]), int(r["step"])) for r in train_rows]
    loop_offset = train_start  # the loop's clock starts after Session setup (env creation, about 1 s later)

    def step_at(t: float) -> int:
        t -= loop_offset
        best = 0
        for wall, step in marks:
            if wall <= t:
                best = step
        return best

    samples = [{"seconds": t, "step_at_or_after": step_at(t), "rss_mib": rss / 2**20} for t, rss in sampler.samples]
    fill = args.buffer_size  # the replay buffer (capacity = buffer_size per seed) is full from this step on
    after_fill = [s for s in samples if s["step_at_or_after"] >= fill]
    at_200k = after_fill[0]["rss_mib"] if after_fill else float("nan")
    # End of training = the last metrics row; later samples cover the learning-curve plot and summary, not the loop.
    in_loop = [s for s in samples if s["seconds"] - loop_offset <= marks[-1][0]]
    at_end = in_loop[-1]["rss_mib"]
    after_fill = [s for s in after_fill if s in in_loop]
    growth = 100.0 * (at_end - at_200k) / at_200k if after_fill else float("nan")
    peak_after = max((s["rss_mib"] for s in after_fill), default=float("nan"))

    eval_steps = {int(r["step"]) for r in rows if r.get("eval/return")}
    intervals = []
    for (w0, s0), (w1, s1) in zip(marks, marks[1:]):
        special = any(s0 < e <= s1 for e in eval_steps)
        intervals.append({"from_step": s0, "to_step": s1, "steps_per_second": (s1 - s0) / max(w1 - w0, 1e-9),
                          "has_eval_or_checkpoint": special})
    learning = [i for i in intervals if i["from_step"] >= run.learning_starts and not i["has_eval_or_checkpoint"]]
    sps = [i["steps_per_second"] for i in learning]
    half = len(sps) // 2
    result: dict[str, Any] = {
        "what": "SAC soak: RSS and steps/s over a long single-process run",
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "command": shlex.join([sys.executable, *sys.argv]),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "jax": jax.__version__, "load_avg_start": load_start, "load_avg_end": load_end},
        "config": {"env": args.env, "steps": args.steps, "num_envs": args.num_envs, "hidden": args.hidden,
                   "batch_size": args.batch_size, "utd_ratio": args.utd_ratio, "buffer_size": args.buffer_size,
                   "log_every": args.log_every, "eval_every": args.eval_every},
        "rss_mib_before_train": rss_before / 2**20,
        "buffer_full_at_step": fill,
        "rss_mib_at_buffer_full": at_200k,
        "rss_mib_at_end": at_end,
        "rss_mib_after_plot_and_summary": samples[-1]["rss_mib"],
        "rss_mib_peak_after_buffer_full": peak_after,
        "rss_growth_percent_buffer_full_to_end": growth,
        "rss_growth_ok": bool(growth < 5.0),
        "steps_per_second": {
            "median": statistics.median(sps) if sps else None,
            "p5": sorted(sps)[int(0.05 * (len(sps) - 1))] if sps else None,
            "p95": sorted(sps)[int(0.95 * (len(sps) - 1))] if sps else None,
            "cv_percent": 100 * statistics.pstdev(sps) / statistics.mean(sps) if len(sps) > 1 else None,
            "first_half_median": statistics.median(sps[:half]) if half else None,
            "second_half_median": statistics.median(sps[half:]) if half else None,
            "intervals": len(sps),
            "note": "per logging interval after learning starts; intervals with an evaluation/checkpoint excluded",
        },
        "summary": {k: summary[k] for k in ("steps", "final_return_mean", "wall_seconds", "steps_per_second",
                                            "compile_seconds", "gradient_steps")},
        "rss_samples": samples,
        "intervals": intervals,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"soak-{args.tag}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k not in ("rss_samples", "intervals")}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
