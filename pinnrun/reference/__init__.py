"""Reference solutions of the 1-D benchmarks (wave, Burgers, Allen-Cahn, KdV, Kuramoto-Sivashinsky).

    >>> from pinnrun import reference
    >>> ref = reference.load("burgers")          # generated on first use, then cached
    >>> ref["t"].shape, ref["x"].shape, ref["u"].shape
    ((201,), (512,), (201, 512))

``load(name, cache_dir=None, progress=True, **overrides)`` returns float64 numpy arrays
``{"t": [nt], "x": [nx], "u": [nt, nx]}`` on the benchmark's evaluation grid.  The spectral
problems are solved by an ETDRK4 Fourier solver (``spectral.py``) and cached as ``.npz`` (see
``cache.py``: ``cache_dir`` argument, else ``$PINNRUN_CACHE_DIR``, else
``~/.cache/pinnrun/reference``); ``wave`` is exact and never cached.  ``overrides`` replace PDE
parameters (e.g. ``nu=...``), solver resolution (``modes``, ``dt``, ``dealias``) or grid fields
(``T``, ``nt``, ``nx``); they enter the cache key.
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

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
]


def available() -> List[str]:
    """Names accepted by ``load``/``generate``."""
    return list(NAMES)


def _wave(problem: WaveProblem) -> dict:
    t, x = problem.t, problem.x
    return {"t": t, "x": x, "u": wave_exact(t[:, None], x[None, :], problem.c)}


def load(name: str, cache_dir=None, *, progress: bool = True, **overrides) -> dict:
    """Reference solution ``{"t", "x", "u"}`` of ``name``, from the cache or generated now."""
    problem = get_problem(name, **overrides)
    if isinstance(problem, WaveProblem):
        return _wave(problem)
    data, _, _ = load_or_generate(problem, cache_dir=cache_dir, force=False, progress=progress)
    return data


def generate(name: str, cache_dir=None, *, progress: bool = True, **overrides) -> dict:
    """Generate ``name`` now (ignoring any cached entry) and store it in the cache."""
    problem = get_problem(name, **overrides)
    if isinstance(problem, WaveProblem):
        return _wave(problem)
    data, _, _ = load_or_generate(problem, cache_dir=cache_dir, force=True, progress=progress)
    return data


def cache_path(name: str, cache_dir=None, **overrides) -> Optional[Path]:
    """Where ``load(name, cache_dir, **overrides)`` stores its entry (``None`` for ``wave``)."""
    problem = get_problem(name, **overrides)
    if isinstance(problem, WaveProblem):
        return None
    return _problem_cache_path(problem, cache_dir)
