"""Generation time and doubling check of a Kolmogorov-flow reference (pinnrun.reference "kolmogorov").

Times the three parts of making the reference: the spin-up (on its own grid, from the seeded random
start; a fresh checkpoint folder so nothing is reused), the horizon on the reference grid (the
generation proper, `solve_kolmogorov`), and the doubling check (`refinement_change`: modes x2 and
dt / 2 from the same t = 0 snapshot; relative L2 of the vorticity w per snapshot and over all t > 0).
Prints one line per part and a JSON line with every figure.

    python scripts/kolmogorov_reference.py [--preset recipe|quick] [--no-doubling] [key=value ...]

key=value overrides any parameter of get_kolmogorov (n=256 T=0.08 nt=3, ...). The solver runs on
the CPU; PINNRUN_REFERENCE_DEVICE=gpu runs it, in float64, on JAX's first GPU. On a 2-core CPU the
recipe's generation is about 75 min and its doubling check about 10 h (docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time

import numpy as np


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=("recipe", "quick"), default="recipe")
    parser.add_argument("--no-doubling", action="store_true", help="skip the doubling check")
    parser.add_argument("overrides", nargs="*", metavar="key=value")
    args = parser.parse_args(argv)
    from pinnrun.reference import kolmogorov as K
    from pinnrun.reference.cli import parse_value   # key=value as pinnrun-reference reads it

    overrides = dict(K.QUICK) if args.preset == "quick" else {}
    for item in args.overrides:
        key, sep, value = item.partition("=")
        if not sep:
            parser.error(f"override {item!r}: expected key=value; keys: {', '.join(K.PARAMETERS)}")
        overrides[key] = parse_value(value)
    with tempfile.TemporaryDirectory() as folder:
        try:
            problem = K.get_kolmogorov(**overrides, checkpoint_dir=folder)
            device = K.solver_device()
        except ValueError as error:
            print(f"kolmogorov_reference: {error}", file=sys.stderr)
            return 2
        figures = {"preset": args.preset, "device": f"{device.platform}: {device.device_kind}",
                   "parameters": problem.key_data()}
        print(f"{problem.summary_line()}; solver on {figures['device']}", flush=True)

        start = time.perf_counter()
        record = K.spin_up(problem)
        figures["spinup_seconds"] = time.perf_counter() - start
        figures["spinup_steps"] = int(record.step)
        print(f"spin-up: {record.step} steps on {problem.n_spinup}^2 in {figures['spinup_seconds']:.1f} s", flush=True)

        start = time.perf_counter()
        arrays = K.solve_kolmogorov(problem)   # the spin-up is read back from its checkpoint
        figures["horizon_seconds"] = time.perf_counter() - start
        per, h = K.horizon_steps(problem)
        figures["horizon_steps"] = per * (problem.nt - 1)
        figures["finite"] = bool(all(np.isfinite(arrays[k]).all() for k in problem.FIELDS))
        print(f"horizon: {figures['horizon_steps']} steps of {h:g} on {problem.n}^2 in "
              f"{figures['horizon_seconds']:.1f} s ({1e3 * figures['horizon_seconds'] / figures['horizon_steps']:.2f} ms/step, "
              f"fields included); finite: {figures['finite']}", flush=True)
        del arrays

        if not args.no_doubling:
            start = time.perf_counter()
            change = K.refinement_change(problem)
            figures["doubling_seconds"] = time.perf_counter() - start
            figures["doubling"] = float(change["value"])
            figures["doubling_per_snapshot"] = [float(v) for v in change["per_snapshot"]]
            print(f"doubling ({2 * problem.n}^2, dt {h / 2:g}; both runs): relative L2 of w over t > 0 = "
                  f"{change['value']:.3e} in {figures['doubling_seconds']:.1f} s", flush=True)
            for t, v in zip(change["t"], change["per_snapshot"]):
                print(f"  t = {t:.3f}: {v:.3e}")
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
