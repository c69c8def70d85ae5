"""Reference solutions of the benchmarks: 1-D (wave, Burgers, Allen-Cahn, KdV, Kuramoto-Sivashinsky)
and 2-D (Gray-Scott, Ginzburg-Landau).

    >>> from pinnrun import reference
    >>> ref = reference.load("burgers")          # generated on first use, then cached
    >>> ref["t"].shape, ref["x"].shape, ref["u"].shape
    ((201,), (512,), (201, 512))
    >>> ref = reference.load("gray_scott")
    >>> ref["t"].shape, ref["x"].shape, ref["y"].shape, ref["u"].shape, ref["v"].shape
    ((101,), (200,), (200,), (101, 200, 200), (101, 200, 200))

``load(name, cache_dir=None, progress=True, **overrides)`` returns float64 numpy arrays
``{"t": [nt], "x": [nx], "u": [nt, nx]}`` on a 1-D benchmark's evaluation grid, and
``{"t": [nt], "x": [nx], "y": [ny], "u": [nt, nx, ny], "v": [nt, nx, ny]}`` (``u[i, j, k] =
u(t_i, x_j, y_k)``, ``ny = nx``) for a 2-D one.  The spectral problems are solved by ETDRK4
Fourier solvers (``spectral.py`` in 1-D, ``spectral2d.py`` in 2-D) and cached as ``.npz`` (see
``cache.py``: ``cache_dir`` argument, else ``$PINNRUN_CACHE_DIR``, else
``~/.cache/pinnrun/reference``); ``wave`` is exact and never cached.  ``overrides`` replace PDE
parameters (e.g. ``nu=...``; ``eps1``, ``eps2``, ``b1``, ``b2``, ``c1``, ``c2`` for Gray-Scott,
``k``, ``eps`` for Ginzburg-Landau), solver resolution (``modes``, ``dt``, ``dealias``), grid
fields (``T``, ``nt``, ``nx``) or the named initial condition (``ic``); they enter the cache key.
``available()`` lists the 1-D names, ``available(2)`` the 2-D ones, ``available(None)`` all.

The 2-D problems (``problems2d.py``) live on ``[-1, 1]^2``, periodic in both axes:

* ``gray_scott``: ``u_t = 0.2 Lap u + 40 (1 - u) - 1000 u v^2``,
  ``v_t = 0.1 Lap v - 100 v + 1000 u v^2`` on ``t in [0, 2]`` from two shifted Gaussians
  (``u0 = 1 - exp(-10((x+0.05)^2 + (y+0.02)^2))``, ``v0 = exp(-10((x-0.05)^2 + (y-0.02)^2))``;
  not exactly periodic, the solver starts from its Fourier projection, the ``t = 0`` row is the
  formula itself).  Default: 128 modes per axis, dt = 2.5e-4 (refinement change 5.7e-8; about
  2 minutes to generate on 2 cores).
* ``ginzburg_landau``: ``A_t = 0.004 Lap A + 10 A - 10 (1 + 1.5 i) A |A|^2`` on ``t in [0, 1]``,
  ``A0 = (10 y + 10 i x) exp(-25 (x^2 + y^2))``, stored as ``u = Re A``, ``v = Im A``.
  Default: 256 modes per axis, dt = 1e-3 (refinement change 5.0e-9; about 70 s to generate).

Both: 101 snapshots on ``x = y = linspace(-1, 1, 200)`` (both ends; exact trigonometric
interpolation of the periodic solution), nonlinear terms zero-padded x2 per axis.  More named
initial conditions (a y-independent and a uniform one per problem, used by the tests) are in
``problems2d._INITIAL_CONDITIONS_2D``; ``register_initial_condition_2d(name, fn)`` adds one
(``fn(x, y) -> (u0, v0)``).

``provenance(name, cache_dir=None, **overrides)`` describes a reference as a JSON-serialisable
dict (equation, parameters, solver, modes, dt, dealias, grid, the measured refinement accuracy,
the cache file and its SHA-256 checksum; see ``records.py``) without regenerating a cached entry;
``load_with_provenance(name, cache_dir=None, **overrides)`` returns ``(data, provenance)`` with
one read of the entry.

``lid_driven_cavity`` (``cavity.py``) is the steady lid-driven cavity on ``[0, 1]^2``:
``load("lid_driven_cavity", re=1000, lid="classic")`` (``lid="smooth"`` for
``u = 1 - cosh(50 (x - 0.5)) / cosh(25)``; ``re`` in ``[100, 10000]``, optional ``nx``, default
257) returns ``{"x": [nx], "y": [nx], "u", "v", "p": [nx, nx]}`` (first index x), cached as the
others; ``provenance``/``load_with_provenance`` accept it too.  It is not listed by ``available``.

``kolmogorov`` (``kolmogorov.py``) and ``rayleigh_taylor`` (``rayleigh_taylor.py``: Boussinesq flow
between walls, Fourier x Chebyshev, ``{"t", "x", "y", "u", "v", "p", "T"}`` with fields
``[nt, nx + 1, ny_out]`` and the y grid including both walls) are standalone problems of the same
kind (``STANDALONE``).
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

from . import cavity as _cavity
from . import kolmogorov as _kolmogorov
from . import rayleigh_taylor as _rayleigh_taylor
from .burgers_exact import burgers_cole_hopf, burgers_cole_hopf_ux
from .cache import CacheError, cache_key, default_cache_dir, load_or_generate
from .cache import cache_path as _problem_cache_path
from .problems import (
    NAMES,
    PROBLEMS,
    SOLVER_VERSION,
    PeriodicProblem,
    Resolution,
    WaveProblem,
    get_problem,
    RESIDUAL_BOUNDS,
    pde_residual,
    relative_residual,
    solve,
    wave_exact,
)
from .problems2d import (
    NAMES_2D,
    PROBLEMS_2D,
    SOLVER_VERSION_2D,
    Periodic2DProblem,
    register_initial_condition_2d,
    solve_2d,
)
from .cache import load_or_generate_entry as _cache_entry
from .cache import read_info as _read_info
from .records import ACCURACY
from .records import load_with_provenance as _records_load_with_provenance
from .records import provenance as _records_provenance
from .sensitivity import perturbation_growth

__all__ = [
    "available",
    "load",
    "generate",
    "cache_path",
    "get_problem",
    "pde_residual",
    "relative_residual",
    "RESIDUAL_BOUNDS",
    "solve",
    "burgers_cole_hopf",
    "burgers_cole_hopf_ux",
    "wave_exact",
    "perturbation_growth",
    "default_cache_dir",
    "cache_key",
    "CacheError",
    "PeriodicProblem",
    "Resolution",
    "WaveProblem",
    "PROBLEMS",
    "SOLVER_VERSION",
    "Periodic2DProblem",
    "PROBLEMS_2D",
    "NAMES_2D",
    "SOLVER_VERSION_2D",
    "register_initial_condition_2d",
    "solve_2d",
    "provenance",
    "load_with_provenance",
    "ACCURACY",
    "STANDALONE",
]


def available(dim: Optional[int] = None) -> List[str]:
    """Names accepted by ``load``/``generate``: all of them (default), the 1-D problems (``dim=1``)
    or the 2-D ones (``dim=2``)."""
    if dim is None:
        return list(NAMES) + list(NAMES_2D)
    if dim == 1:
        return list(NAMES)
    if dim == 2:
        return list(NAMES_2D)
    raise ValueError(f"dim must be 1, 2 or None; got {dim!r}")


# Problems with a solver and a provenance of their own, outside the get_problem tables: name ->
# (factory(**overrides) -> a problem for the shared cache, describe(problem, cache_file, checksum)).
STANDALONE = {
    _cavity.NAME: (_cavity.get_cavity, _cavity.describe_cavity),
    _kolmogorov.NAME: (_kolmogorov.get_kolmogorov, _kolmogorov.describe_kolmogorov),
    _rayleigh_taylor.NAME: (_rayleigh_taylor.get_rayleigh_taylor, _rayleigh_taylor.describe_rayleigh_taylor),
}


def _standalone_load(name: str, cache_dir, force: bool, progress: bool, overrides: dict) -> tuple:
    """``(data, provenance)`` of a standalone problem, through the shared cache."""
    factory, describe = STANDALONE[name]
    problem = factory(**overrides)
    data, path, _, checksum = _cache_entry(problem, cache_dir=cache_dir, force=force, progress=progress)
    return data, describe(problem, path, checksum)


def provenance(name: str, cache_dir=None, *, progress: bool = True, verify: bool = False, **overrides) -> dict:
    """Provenance of ``load(name, cache_dir, **overrides)`` (see ``records.provenance``)."""
    if name not in STANDALONE:
        return _records_provenance(name, cache_dir, progress=progress, verify=verify, **overrides)
    factory, describe = STANDALONE[name]
    problem = factory(**overrides)
    if not verify:
        path = _problem_cache_path(problem, cache_dir)
        try:
            return describe(problem, path, _read_info(path, problem)["checksum"])
        except CacheError:
            pass
    return _standalone_load(name, cache_dir, False, progress, overrides)[1]


def load_with_provenance(name: str, cache_dir=None, *, progress: bool = True, **overrides):
    """``(data, provenance)`` with one read (or generation) of the cache entry."""
    if name not in STANDALONE:
        return _records_load_with_provenance(name, cache_dir, progress=progress, **overrides)
    return _standalone_load(name, cache_dir, False, progress, overrides)


def _wave(problem: WaveProblem) -> dict:
    t, x = problem.t, problem.x
    return {"t": t, "x": x, "u": wave_exact(t[:, None], x[None, :], problem.c)}


def load(name: str, cache_dir=None, *, progress: bool = True, **overrides) -> dict:
    """Reference solution of ``name``, from the cache or generated now.

    ``{"t", "x", "u"}`` for a 1-D problem, ``{"t", "x", "y", "u", "v"}`` for a 2-D one.
    """
    if name in STANDALONE:
        return _standalone_load(name, cache_dir, False, progress, overrides)[0]
    problem = get_problem(name, **overrides)
    if isinstance(problem, WaveProblem):
        return _wave(problem)
    data, _, _ = load_or_generate(problem, cache_dir=cache_dir, force=False, progress=progress)
    return data


def generate(name: str, cache_dir=None, *, progress: bool = True, **overrides) -> dict:
    """Generate ``name`` now (ignoring any cached entry) and store it in the cache."""
    if name in STANDALONE:
        return _standalone_load(name, cache_dir, True, progress, overrides)[0]
    problem = get_problem(name, **overrides)
    if isinstance(problem, WaveProblem):
        return _wave(problem)
    data, _, _ = load_or_generate(problem, cache_dir=cache_dir, force=True, progress=progress)
    return data


def cache_path(name: str, cache_dir=None, **overrides) -> Optional[Path]:
    """Where ``load(name, cache_dir, **overrides)`` stores its entry (``None`` for ``wave``)."""
    if name in STANDALONE:
        return _problem_cache_path(STANDALONE[name][0](**overrides), cache_dir)
    problem = get_problem(name, **overrides)
    if isinstance(problem, WaveProblem):
        return None
    return _problem_cache_path(problem, cache_dir)
