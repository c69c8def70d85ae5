"""Throughput and peak memory of every PDE's recipe (the paper's network, batch, weighting and
optimizer), reference-free: a few hundred training steps per (PDE, optimizer), no evaluation.

Each pair runs in a fresh process, so that each peak-memory figure is its own. Prints one line per
pair: compile seconds, steps/s (median of the timed chunks), peak device memory.

    python scripts/gpu_bench.py [--steps 300] [--pdes gray_scott,ginzburg_landau] [--optims adam,soap]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

PDES = ("kovasznay", "wave", "burgers", "allen_cahn", "kdv", "ks", "gray_scott", "ginzburg_landau", "lid_driven_cavity",
        "kolmogorov", "rayleigh_taylor")


def measure(pde: str, optim: str, steps: int, chunk: int) -> dict:
    import jax

    sys.path.insert(0, str(Path(__file__).parent))
    from bench import composed, pinnrun_runner

    from pinnrun.build import build, jax_settings
    from pinnrun.trainer import device_description, peak_memory_bytes

    cfg = composed(f"pde={pde}", f"optim={optim}")
    with jax_settings(cfg):
        components = build(cfg)
        run, compile_seconds = pinnrun_runner(cfg, components, chunk, reference_free=True)
        run()  # the first call after compiling
        times = []
        for _ in range(max(steps // chunk, 1)):
            start = time.perf_counter()
            run()
            times.append(time.perf_counter() - start)
    return {
        "pde": pde, "optim": optim, "arch": cfg["arch"]["name"], "batch": cfg["train"]["batch_size"],
        "compile_seconds": compile_seconds, "steps_per_second": chunk / statistics.median(times),
        "peak_memory_bytes": peak_memory_bytes(), "device": device_description(), "jax": jax.__version__,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=300, help="timed steps per pair (after one warm-up chunk)")
    ap.add_argument("--chunk", type=int, default=50, help="steps per jitted call")
    ap.add_argument("--pdes", default=",".join(PDES))
    ap.add_argument("--optims", default="adam,soap")
    ap.add_argument("--one", nargs=2, metavar=("PDE", "OPTIM"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(measure(*args.one, args.steps, args.chunk)))
        return 0
    pdes, optims = args.pdes.split(","), args.optims.split(",")
    unknown = sorted(set(pdes) - set(PDES))
    if unknown:
        print(f"gpu_bench: --pdes: unknown PDE {unknown[0]!r}; allowed: {', '.join(PDES)}", file=sys.stderr)
        return 2
    start = time.perf_counter()
    rows = []
    print(f"{'pde':16s} {'optim':6s} {'arch':7s} {'batch':>6s} {'compile s':>10s} {'steps/s':>9s} {'peak GiB':>9s}", flush=True)
    for pde in pdes:
        for optim in optims:
            cmd = [sys.executable, __file__, "--one", pde, optim, "--steps", str(args.steps), "--chunk", str(args.chunk)]
            done = subprocess.run(cmd, capture_output=True, text=True)
            if done.returncode:
                print(f"{pde:16s} {optim:6s} failed: {done.stderr.strip().splitlines()[-1] if done.stderr.strip() else done.returncode}", flush=True)
                continue
            row = json.loads(done.stdout.strip().splitlines()[-1])
            rows.append(row)
            peak = row["peak_memory_bytes"]
            gib = f"{peak / 2**30:9.2f}" if peak else f"{'n/a':>9s}"
            print(f"{pde:16s} {optim:6s} {row['arch']:7s} {row['batch']:6d} {row['compile_seconds']:10.1f} {row['steps_per_second']:9.1f} {gib}", flush=True)
    if rows:
        print(f"device: {rows[0]['device']} (jax {rows[0]['jax']}); {time.perf_counter() - start:.0f} s in all")
    return 0


if __name__ == "__main__":
    sys.exit(main())
