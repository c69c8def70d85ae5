"""``pinnrun-reference``: generate (and cache) reference solutions from the command line.

    pinnrun-reference burgers                  # generate if not cached, print where it is
    pinnrun-reference all --cache-dir refs     # every problem
    pinnrun-reference kdv --force              # regenerate even if cached
    pinnrun-reference kdv --set modes=256 --set dt=2e-4   # non-default resolution (own cache key)
    pinnrun-reference gray_scott               # the 2-D problems: gray_scott, ginzburg_landau
    pinnrun-reference lid_driven_cavity --set re=400 --set lid=smooth   # steady cavity (Newton)
    pinnrun-reference kolmogorov --set n=384 --set dt=2e-4 --set T=0.16 --set nt=9   # the quick reference
    (the recipe's kolmogorov reference, 768^2 modes, takes about 75 minutes on 2 cores; ``all`` includes it)
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import List, Optional

from . import STANDALONE
from .cache import load_or_generate, resolve_cache_dir
from .problems import NAMES, WaveProblem, get_problem
from .problems2d import NAMES_2D

ALL_NAMES = tuple(NAMES) + tuple(NAMES_2D) + tuple(STANDALONE)


def parse_value(text: str):
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="pinnrun-reference",
        description="Generate reference solutions of the 1-D and 2-D benchmarks and store them in the cache.",
    )
    ap.add_argument("pde", choices=list(ALL_NAMES) + ["all"], help="problem to generate, or 'all'")
    ap.add_argument("--cache-dir", default=None,
                    help="cache folder (default: $PINNRUN_CACHE_DIR or ~/.cache/pinnrun/reference)")
    ap.add_argument("--force", action="store_true", help="regenerate even if a valid entry exists")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                    help="override a parameter or resolution field (modes, dt, nu, ...); repeatable")
    ap.add_argument("--quiet", action="store_true", help="no progress line while time stepping")
    return ap


def main(argv: Optional[List[str]] = None) -> int:
    args = _parser().parse_args(argv)
    overrides = {}
    for item in args.overrides:
        key, sep, value = item.partition("=")
        if not sep or not key:
            print(f"pinnrun-reference: --set expects KEY=VALUE, got {item!r}", file=sys.stderr)
            return 2
        overrides[key.strip()] = parse_value(value.strip())
    names = list(ALL_NAMES) if args.pde == "all" else [args.pde]
    cache_dir = resolve_cache_dir(args.cache_dir)
    for name in names:
        try:
            problem = STANDALONE[name][0](**overrides) if name in STANDALONE else get_problem(name, **overrides)
        except ValueError as exc:
            print(f"pinnrun-reference: {exc}", file=sys.stderr)
            return 2
        if isinstance(problem, WaveProblem):
            print(f"{name}: exact formula, nothing to store")
            continue
        start = time.perf_counter()
        _, path, seconds = load_or_generate(
            problem, cache_dir=cache_dir, force=args.force, progress=not args.quiet
        )
        total = time.perf_counter() - start
        how = problem.summary_line() if name in STANDALONE else f"modes={problem.resolution.modes}, dt={problem.resolution.dt:g}"
        if seconds is None:
            print(f"{name}: already cached at {path} (checked in {total:.2f} s; --force regenerates)")
        else:
            print(f"{name}: generated in {total:.1f} s ({how}) -> {path}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
