"""Where a time-marched PINN's error comes from, window by window (periodic 2-D problems).

For each window k of a run (network u_k on [t_k, t_k+1]), pinnrun's reference solver is restarted
from the window's own network at its start, S_k(t) = solution from u_k(t_k), and the error at the
window's end is split into

  handover   ||u_k(t_k) - u_(k-1)(t_k)||, window 0 against the exact initial condition: how well the
             window fits the initial condition it is handed;
  local      ||u_k(t_k+1) - S_k(t_k+1)||: what the window's own training gets wrong;
  inherited  ||S_k(t_k+1) - ref(t_k+1)||: where the exact dynamics takes the error the window starts
             with (its handover plus everything before);
  total      ||u_k(t_k+1) - ref(t_k+1)||  (at most local + inherited),

each relative to ||ref(t_k+1)||, for every field the run reports (Gray-Scott's u - 1 too), on the
PDE's evaluation grid in space. A large inherited share that grows faster than the handovers add up
says the dynamics amplifies early errors; a large local share says the windows need more training.

For the PDEs whose reference is pinnrun's periodic 2-D solver (gray_scott, ginzburg_landau). The
restarted solves use a temporary cache; a few seconds per window on a 2-core CPU, plus the
reference at the window edges the first time (cached like every reference).

Usage: python scripts/window_error_budget.py RUN_DIR
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile

import numpy as np

from pinnrun import load_run
from pinnrun import reference as references
from pinnrun.pdes.base import Reference
from pinnrun.reference.problems import get_problem
from pinnrun.reference.problems2d import Periodic2DProblem, register_initial_condition_2d


def window_network(run, k: int):
    """The run restricted to window k's network (predicting at any t)."""
    return dataclasses.replace(run, params=[run.params[k]], edges=None, _outputs=None)


def fields_at(run, t: float, x: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
    """The network's fields and the PDE's derived ones (run.predict gives both) on the grid x x y at time t."""
    points = Reference({"t": np.array([t]), "x": x, "y": y}, {}).points()
    return {name: values.reshape(len(x), len(y)) for name, values in run.predict(points).items()}


def exact_at(pde, data, k: int) -> dict[str, np.ndarray]:
    """Snapshot k of a reference solve with the PDE's derived fields."""
    fields = {name: data[name][k] for name in pde.field_names}
    return {**fields, **pde.derived(fields, np)}


def relative(a: dict, b: dict, scale: dict) -> dict[str, float]:
    return {name: float(np.linalg.norm(a[name] - b[name]) / np.linalg.norm(scale[name])) for name in scale}


def error_budget(run_dir) -> list[dict]:
    """One row per window and field: window, t0, t1, field, handover, local, inherited, total."""
    run = load_run(run_dir)
    pde = run.pde
    if run.edges is None:
        raise SystemExit(f"{run_dir}: not a time-marched run (train.time_windows = 1)")
    if not isinstance(get_problem(pde.name), Periodic2DProblem):
        raise SystemExit(f"{pde.name}: the window error budget needs pinnrun's periodic 2-D solver (gray_scott, ginzburg_landau)")
    edges = np.asarray(run.edges, np.float64)
    grid = pde.reference_grid()
    parameters = pde.reference_parameters()
    # The reference with one snapshot at every window edge.
    exact = references.load(pde.name, progress=False, **parameters, T=grid["T"], nt=len(edges), nx=grid["nx"])
    if not np.allclose(exact["t"], edges, atol=1e-12):
        raise SystemExit(f"{run_dir}: the window edges {edges.tolist()} are not evenly spaced from 0")
    with tempfile.TemporaryDirectory(prefix="pinnrun-window-budget-") as scratch:
        return _window_rows(run, pde, edges, exact, grid, parameters, scratch)


def _window_rows(run, pde, edges, exact, grid, parameters, scratch) -> list[dict]:
    x, y = exact["x"], exact["y"]
    snapshots = [exact_at(pde, exact, k) for k in range(len(edges))]   # the reference at every edge
    rows, previous = [], None
    for k in range(len(edges) - 1):
        t0, t1 = float(edges[k]), float(edges[k + 1])
        network = window_network(run, k)
        start = fields_at(network, t0, x, y)
        exact_start, exact_end = snapshots[k], snapshots[k + 1]
        handed = exact_start if previous is None else previous
        # The solver restarted from the window's own start, as a named initial condition (the name is
        # the cache key: unique per run and window, in a scratch cache).
        name = f"window {k} of {run.run_dir}"

        def initial(xs, ys, network=network, t0=t0):
            xs, ys = np.broadcast_arrays(np.asarray(xs, np.float64), np.asarray(ys, np.float64))
            points = np.stack([np.full(xs.size, t0), xs.ravel(), ys.ravel()], axis=1)
            out = network.predict(points)
            return tuple(out[field].reshape(xs.shape) for field in pde.field_names)

        register_initial_condition_2d(name, initial)
        restarted = references.load(pde.name, scratch, progress=False, **parameters, T=t1 - t0, nt=2, nx=grid["nx"], ic=name)
        solver_end = exact_at(pde, restarted, -1)
        end = fields_at(network, t1, x, y)
        handover = relative(start, handed, exact_start)
        local, inherited, total = (relative(end, solver_end, exact_end), relative(solver_end, exact_end, exact_end),
                                   relative(end, exact_end, exact_end))
        for field in exact_end:
            rows.append({"window": k, "t0": t0, "t1": t1, "field": field, "handover": handover[field],
                         "local": local[field], "inherited": inherited[field], "total": total[field]})
        # The next window is handed this window's network at its end (run.predict's window k there).
        previous = end
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir")
    args = parser.parse_args(argv)
    rows = error_budget(args.run_dir)
    print(f"{'window':>6} {'t':>13} {'field':>10} {'handover':>9} {'local':>9} {'inherited':>9} {'total':>9}")
    for r in rows:
        span = f"[{r['t0']:.3g}, {r['t1']:.3g}]"
        print(f"{r['window']:>6} {span:>13} {r['field']:>10} {r['handover']:9.2e} {r['local']:9.2e} {r['inherited']:9.2e} {r['total']:9.2e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
