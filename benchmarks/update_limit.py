"""How fast can a SAC update be on this machine? The compute side of the speed targets, without any env.

Prints, for the SAC update at an env's sizes (256x256 nets, batch 256, twin critics):
- the CPU and its vector ISA (AVX2 or AVX-512: XLA's fp32 dot is much faster with AVX-512);
- fp32 matmul at 256^3: XLA's dot (chained in a jitted scan) and numpy's BLAS;
- critix's update alone (the loop's compiled 50-step chunk on synthetic batches) for 1 and N vmapped seeds,
  as ms per gradient step, seed-updates/s and effective GFLOP/s;
- the steps/s each speed target needs, given the peers' steps/s you pass, next to the ceiling the update sets.

A loop at UTD 1 cannot run faster than its update: if the update alone takes longer than the time per env step a
target allows, that target cannot be met on this machine, whatever the host loop does.

    .venv/bin/python benchmarks/update_limit.py                       # HalfCheetah-v5, 1 and 8 seeds
    .venv/bin/python benchmarks/update_limit.py --sb3 76.3 --sbx 123.3 --sb3-x8 104.4
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from sac_speed import (  # noqa: E402
    critix_update_ms,
    env_sizes,
    matmul_gflops,
    numpy_matmul_gflops,
    provenance,
    sac_update_macs,
    write_results,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", default="HalfCheetah-v5")
    parser.add_argument("--seeds", type=int, default=8, help="vmapped seeds for the batched figure")
    parser.add_argument("--sb3", type=float, default=None, help="SB3 SAC steps/s measured on this machine")
    parser.add_argument("--sbx", type=float, default=None, help="SBX SAC steps/s (steady) on this machine")
    parser.add_argument("--sb3-x8", type=float, default=None,
                        help="aggregate seed-steps/s of 8 SB3 processes at once on this machine")
    parser.add_argument("--results-dir", default=str(Path(__file__).resolve().parent / "results"))
    args = parser.parse_args()

    meta = provenance([])
    print(f"CPU: {meta['machine']['cpu_model']}, {meta['machine']['nproc']} cores; jax {meta['jax']}")
    xla = max(matmul_gflops(), matmul_gflops())
    blas = numpy_matmul_gflops()
    print(f"fp32 matmul 256^3: XLA dot {xla:.0f} GFLOP/s, numpy BLAS {blas:.0f} GFLOP/s")

    obs_dim, act_dim = env_sizes(args.env)
    flops = 2 * sac_update_macs(obs_dim, act_dim)["total"]
    print(f"{args.env}: one SAC update = {flops / 1e6:.0f} MFLOP -> {flops / xla / 1e6:.2f} ms at XLA's rate, "
          f"{flops / blas / 1e6:.2f} ms at BLAS's")
    update_ms = {s: critix_update_ms(obs_dim, act_dim, s) for s in (1, args.seeds)}
    for s, ms in update_ms.items():
        print(f"critix update alone, {s} seed(s): {ms:.2f} ms per gradient step = {s * 1e3 / ms:.0f} "
              f"seed-updates/s = {s * flops / ms / 1e6:.0f} GFLOP/s")

    needs = []
    if args.sb3:
        needs.append(("2.5x SB3", 2.5 * args.sb3, 1))
    if args.sbx:
        needs.append(("1.5x SBX", 1.5 * args.sbx, 1))
    if args.sb3_x8:
        needs.append((f"2.5x {args.seeds} SB3 processes", 2.5 * args.sb3_x8, args.seeds))
    for name, sps, seeds in needs:
        ceiling = seeds * 1e3 / update_ms[seeds]
        verdict = "reachable" if ceiling >= sps else "NOT reachable: the update alone is slower"
        print(f"target {name}: needs {sps:.0f} (seed-)steps/s; the update alone allows at most {ceiling:.0f} "
              f"-> {verdict}")

    summary = {"env": args.env, "xla_matmul_gflops_256": xla, "numpy_blas_matmul_gflops_256": blas,
               "update_flops": flops, "critix_update_ms": {str(k): v for k, v in update_ms.items()},
               "targets": [{"name": n, "needs": s, "ceiling": seeds * 1e3 / update_ms[seeds]}
                           for n, s, seeds in needs]}
    json_path, _ = write_results("update_limit", meta, [], summary, Path(args.results_dir))
    print(f"raw results: {json_path}")
    print(json.dumps(summary["critix_update_ms"]))


if __name__ == "__main__":
    main()
