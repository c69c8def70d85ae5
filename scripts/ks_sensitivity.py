"""How much accuracy the chaotic Kuramoto-Sivashinsky benchmark asks of a time-marching PINN.

Solves KS (BENCHMARKS.md section 5) from its initial condition and from the initial condition plus a
smooth perturbation of relative size eps (pinnrun.reference.perturbation_growth), and prints the
relative L2 difference of the two solutions at t = 0, 0.1, ..., 1 and over the horizons [0, 0.3] (the
quick budget's) and [0, 1] (the recipe's). A PINN whose first windows are off by eps ends at least
this far off. About 25 s on a 2-core CPU.

Usage: python scripts/ks_sensitivity.py [--eps 1e-3 1e-4 1e-5 1e-6] [--seed 0]
"""

from __future__ import annotations

import argparse

import numpy as np

from pinnrun.reference import perturbation_growth


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--eps", type=float, nargs="+", default=[1e-3, 1e-4, 1e-5, 1e-6])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    marks = np.round(np.linspace(0.0, 1.0, 11), 10)
    print("relative L2 difference between KS solutions whose initial conditions differ by eps")
    print(f"{'eps':>8} | " + " ".join(f"t={t:<6.1f}" for t in marks) + " | [0, 0.3]  [0, 1]")
    for eps in args.eps:
        result = perturbation_growth("ks", eps, seed=args.seed)
        t, diff = result["t"], result["per_snapshot"]
        at = [diff[int(np.argmin(abs(t - m)))] for m in marks]
        quick = perturbation_growth("ks", eps, seed=args.seed, T=0.3, nt=76)["total"]
        print(f"{eps:>8.0e} | " + " ".join(f"{v:<8.1e}" for v in at) + f" | {quick:<9.1e} {result['total']:.1e}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
