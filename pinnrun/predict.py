"""``pinnrun-predict``: a run's network evaluated where you ask, from its saved parameters.

    pinnrun-predict RUN_DIR --grid x=-0.5:1:151 y=-0.5:1.5:201 [--out preds.npz]
    pinnrun-predict RUN_DIR --points points.npy --out preds.csv
    pinnrun-predict RUN_DIR --reference            # the reference grid, with the errors

``--grid`` takes one ``name=low:high:n`` per input of the PDE (``linspace(low, high, n)``, any order)
and writes the axes and each field shaped like the grid; ``--points`` a ``.npy`` of shape [n, d]
(inputs in the PDE's order) and writes each field of shape [n]; ``--reference`` the PDE's reference
grid, and prints the relative L2 error of each field beside summary.json's ``final_rel_l2``.
Output: ``.npz`` (default ``predictions.npz``), or CSV when ``--out`` ends in ``.csv`` (one row per
point: the inputs, then the fields). ``--which best`` uses the best checkpoint (pinnrun.runs).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from pinnrun.config import ConfigError


def parse_grid(specs: list[str], input_names: tuple[str, ...]) -> dict[str, np.ndarray]:
    axes: dict[str, np.ndarray] = {}
    for spec in specs:
        name, sep, rest = spec.partition("=")
        parts = rest.split(":")
        if not sep or name not in input_names or len(parts) != 3:
            raise ConfigError(f"--grid {spec!r}: expected name=low:high:n with name one of {', '.join(input_names)}")
        try:
            low, high, n = float(parts[0]), float(parts[1]), int(parts[2])
        except ValueError:
            raise ConfigError(f"--grid {spec!r}: low and high must be numbers and n an integer >= 1") from None
        if n < 1:
            raise ConfigError(f"--grid {spec!r}: n must be an integer >= 1")
        axes[name] = np.linspace(low, high, n)
    missing = [n for n in input_names if n not in axes]
    if missing:
        raise ConfigError(f"--grid: no axis for {', '.join(missing)} (give name=low:high:n for each of {', '.join(input_names)})")
    return {name: axes[name] for name in input_names}


def write(out: Path, columns: dict[str, np.ndarray], inputs: dict[str, np.ndarray], fields: dict[str, np.ndarray]) -> None:
    if out.suffix == ".csv":
        names = [*columns, *fields]
        table = np.column_stack([*(v.reshape(-1) for v in columns.values()), *(v.reshape(-1) for v in fields.values())])
        np.savetxt(out, table, delimiter=",", header=",".join(names), comments="")
    else:
        np.savez(out, **inputs, **fields)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pinnrun-predict", description=__doc__.splitlines()[0])
    parser.add_argument("run_dir")
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--grid", nargs="+", metavar="NAME=LOW:HIGH:N")
    where.add_argument("--points", metavar="FILE.npy")
    where.add_argument("--reference", action="store_true", help="the reference grid, with the errors")
    parser.add_argument("--out", default="predictions.npz", help="output file: .npz, or .csv")
    parser.add_argument("--which", choices=("final", "best"), default="final")
    parser.add_argument("--batch-size", type=int, default=None, help="points per device call (default: the run's)")
    args = parser.parse_args(argv)
    from pinnrun.runs import load_run

    try:
        run = load_run(args.run_dir, which=args.which)
        names = tuple(run.pde.input_names)
        out = Path(args.out)
        if args.reference:
            evaluation = run.evaluate(args.batch_size)
            reference = run.reference
            grids = np.meshgrid(*reference.axes.values(), indexing="ij")
            write(out, dict(zip(names, grids)), dict(reference.axes), evaluation.prediction)
            recorded = (run.summary or {}).get("final_rel_l2", {})
            for name, value in evaluation.rel_l2.items():
                mark = f"   summary.json {recorded[name]:.6e}" if name in recorded else ""
                same = "  (the same)" if recorded.get(name) == value else ""
                print(f"rel_l2 {name} {value:.6e}{mark}{same}")
        else:
            if args.grid:
                axes = parse_grid(args.grid, names)
                grids = np.meshgrid(*axes.values(), indexing="ij")
                points = np.stack([g.reshape(-1) for g in grids], axis=-1)
                shape = tuple(len(a) for a in axes.values())
                columns, inputs = dict(zip(names, grids)), axes
            else:
                points = np.load(args.points)
                shape = (len(points),) if np.ndim(points) == 2 else None
                columns = inputs = {n: points[:, i] for i, n in enumerate(names)} if shape else {}
            try:
                fields = run.predict(points, args.batch_size)
            except ValueError as error:
                raise ConfigError(f"--points: {error}") from None
            write(out, columns, inputs, {k: v.reshape(shape) for k, v in fields.items()})
        print(f"wrote {out} ({run.source} of {run.run_dir})")
    except (ConfigError, OSError) as error:
        print(f"pinnrun-predict: {str(error).splitlines()[0]}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
