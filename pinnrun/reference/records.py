"""Provenance of a reference solution: what was solved, how, how accurately, and which cache entry.

``provenance(name, cache_dir=None, **overrides)`` returns a JSON-serialisable dict for every
problem (1-D, 2-D and the exact ``wave``); a PINN run records it in its ``summary.json``.  For a
cached problem it reads only the entry's metadata and stored checksum (no arrays, no solver
run); when the entry is missing (or its metadata does not match) it is generated, as ``load``
would.  ``load_with_provenance`` returns the data and the provenance together, for callers that
load the data anyway (one read of the entry).

``ACCURACY`` holds, per problem, the relative L2 change of the default reference under
refinement (twice the modes, half the time step) over the snapshots ``t > 0``, measured once
with the default parameters and grid; it is reported for a problem whose PDE parameters,
initial condition, domain and solver resolution are the defaults and whose horizon is not
longer than the default one (the output grid ``nt``/``nx`` may differ), else ``None``.
"""

from __future__ import annotations

import copy
from typing import Optional, Tuple

from . import cache as _cache
from .cache import CacheError, cache_path, load_or_generate_entry
from .problems import PROBLEMS, WaveProblem, get_problem, wave_exact
from .problems2d import PROBLEMS_2D, Periodic2DProblem

__all__ = ["ACCURACY", "ACCURACY_MEASURE", "provenance", "load_with_provenance", "describe"]

ACCURACY_MEASURE = "relative L2 change under refinement (modes x2, dt/2), t > 0"

# Measured values: ||u_default - u_refined|| / ||u_refined|| over all snapshots t > 0 and all
# points of the default output grid, u_refined from the same problem with modes x2 and dt / 2
# (for the 2-D problems per field; "value" is the larger of the two).  Measured once on this code
# (2-core CPU, float64) by loading the default and the refined reference; the slow tests
# tests/test_reference.py::test_refinement_of_default (1-D, all snapshots) and
# tests/test_reference_2d.py::test_refinement_of_default_2d (2-D, checks these numbers) repeat it.
ACCURACY = {
    # burgers: 4096 -> 8192 modes, dt 1e-4 -> 5e-5 (max abs change 2.3e-11)
    "burgers": {"value": 9.8e-13},
    # allen_cahn: 2048 -> 4096 modes, dt 1e-3 -> 5e-4 (max abs change 1.2e-6, at the fronts)
    "allen_cahn": {"value": 1.40e-8},
    # kdv: 512 -> 1024 modes, dt 1e-4 -> 5e-5 (max abs change 1.0e-9)
    "kdv": {"value": 1.49e-10},
    # ks: 256 -> 512 modes, dt 4e-5 -> 2e-5 (max abs change 3.1e-8)
    "ks": {"value": 2.59e-9},
    # gray_scott: 128 -> 256 modes per axis, dt 2.5e-4 -> 1.25e-4 (max abs change 3.9e-7 in u,
    # 6.3e-7 in v; 256 modes at dt 2.5e-4 alone change it by 2.9e-8 in v)
    "gray_scott": {"value": 5.66e-8, "per_field": {"u": 2.15e-8, "v": 5.66e-8}},
    # ginzburg_landau: 256 -> 512 modes per axis, dt 1e-3 -> 5e-4 (max abs change 1.5e-8; u and v
    # agree by the rotation symmetry A(t, y, -x) = i A(t, x, y))
    "ginzburg_landau": {"value": 5.02e-9, "per_field": {"u": 5.02e-9, "v": 5.02e-9}},
}


def _accuracy(problem) -> dict:
    if isinstance(problem, WaveProblem):
        return {"measure": "exact formula (no discretisation)", "value": 0.0}
    default = PROBLEMS.get(problem.name) or PROBLEMS_2D.get(problem.name)
    out = {"measure": ACCURACY_MEASURE}
    out.update(copy.deepcopy(ACCURACY.get(problem.name, {"value": None, "note": "not measured"})))
    r = default.resolution
    two_d = isinstance(default, Periodic2DProblem)
    out["measured_at"] = {"modes": [r.modes] * 2 if two_d else r.modes, "dt": r.dt, "dealias": r.dealias,
                          "T": default.T, "nt": default.nt, "nx": default.nx}
    same = (
        problem.params == default.params
        and problem.ic == default.ic
        and tuple(problem.domain) == tuple(default.domain)
        and problem.resolution == default.resolution
        and problem.T <= default.T
    )
    if out["value"] is None:
        return out
    if not same:
        out["value"] = None
        if "per_field" in out:
            out["per_field"] = {k: None for k in out["per_field"]}
        out["note"] = ("not measured for this configuration (PDE parameters, initial condition, "
                       "domain, resolution or a longer horizon differ from the defaults)")
    elif problem.T < default.T:
        out["note"] = (f"measured over the default horizon T = {default.T:g}; this reference is "
                       f"the same solver run on t <= {problem.T:g}")
    return out


def describe(problem, cache_file=None, checksum: Optional[str] = None) -> dict:
    """The provenance dict of ``problem`` (no file access)."""
    if isinstance(problem, WaveProblem):
        return {
            "name": problem.name,
            "equation": problem.equation,
            "parameters": {"c": float(problem.c)},
            "initial_condition": "sin(pi x) + 0.5 sin(4 pi x), u_t = 0",
            "domain": [float(v) for v in problem.domain],
            "solver": "exact formula",
            "version": None,
            "modes": None,
            "dt": None,
            "dealias": None,
            "grid": {"T": float(problem.T), "nt": int(problem.nt), "nx": int(problem.nx),
                     "shapes": {"t": [problem.nt], "x": [problem.nx], "u": [problem.nt, problem.nx]}},
            "accuracy": _accuracy(problem),
            "cache_file": None,
            "checksum": None,
        }
    r = problem.resolution
    two_d = isinstance(problem, Periodic2DProblem)
    grid = {"T": float(problem.T), "nt": int(problem.nt), "nx": int(problem.nx)}
    if two_d:
        grid["ny"] = int(problem.ny)
    grid["shapes"] = {k: list(v) for k, v in problem.shapes().items()}
    key = problem.key_data()
    return {
        "name": problem.name,
        "equation": problem.equation,
        "parameters": {k: float(v) for k, v in problem.params},
        "initial_condition": problem.ic,
        "domain": [float(v) for v in problem.domain],
        "solver": (f"ETDRK4 Fourier pseudo-spectral{' (2-D, both axes periodic)' if two_d else ''}, "
                   f"float64, zero-padding x{r.dealias:g}"),
        "version": key["version"],
        "modes": [int(r.modes)] * 2 if two_d else int(r.modes),
        "dt": float(r.dt),
        "dealias": float(r.dealias),
        "grid": grid,
        "accuracy": _accuracy(problem),
        "cache_file": None if cache_file is None else str(cache_file),
        "checksum": checksum,
    }


def provenance(name: str, cache_dir=None, *, progress: bool = True, verify: bool = False, **overrides) -> dict:
    """Provenance of ``load(name, cache_dir, **overrides)`` (JSON-serialisable dict).

    Keys: ``name``, ``equation``, ``parameters``, ``initial_condition``, ``domain``, ``solver``,
    ``version``, ``modes`` (an int for 1-D, ``[nx_modes, ny_modes]`` for 2-D), ``dt``,
    ``dealias``, ``grid`` (``T``, ``nt``, ``nx`` [, ``ny``], ``shapes``), ``accuracy``
    (``measure``, ``value`` ...), ``cache_file`` and ``checksum`` (the SHA-256 of the entry's
    arrays, as stored in it; ``None`` for ``wave``).  A cached entry is not regenerated: only its
    metadata and stored checksum are read (``verify=True`` reads and checks the arrays too, and
    regenerates an invalid entry, as ``load``).  A missing entry is generated.
    """
    problem = get_problem(name, **overrides)
    if isinstance(problem, WaveProblem):
        return describe(problem)
    path = cache_path(problem, cache_dir)
    if not verify:
        try:
            info = _cache.read_info(path, problem)
            return describe(problem, path, info["checksum"])
        except CacheError:
            pass
    _, path, _, checksum = load_or_generate_entry(problem, cache_dir=cache_dir, progress=progress)
    return describe(problem, path, checksum)


def load_with_provenance(name: str, cache_dir=None, *, progress: bool = True, **overrides) -> Tuple[dict, dict]:
    """``(load(name, cache_dir, **overrides), provenance(name, cache_dir, **overrides))`` with one
    read (or generation) of the cache entry."""
    problem = get_problem(name, **overrides)
    if isinstance(problem, WaveProblem):
        t, x = problem.t, problem.x
        return {"t": t, "x": x, "u": wave_exact(t[:, None], x[None, :], problem.c)}, describe(problem)
    data, path, _, checksum = load_or_generate_entry(problem, cache_dir=cache_dir, progress=progress)
    return data, describe(problem, path, checksum)

