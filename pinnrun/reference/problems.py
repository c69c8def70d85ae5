"""Definitions of the 1-D benchmark problems with reference solutions (BENCHMARKS.md sections 1-5).

The 2-D problems (Gray-Scott, Ginzburg-Landau) are defined in ``problems2d.py``; ``get_problem``
serves both.

Each periodic problem is a small frozen dataclass holding the PDE parameters, domain, evaluation
grid and the spectral solver resolution.  ``solve(problem)`` runs the ETDRK4 solver and returns
the solution on the evaluation grid; ``pde_residual(problem, t, x, u)`` evaluates the strong
residual of a solution given on the evaluation grid (used to check references).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Callable, Dict, Tuple

import numpy as np

from .spectral import PeriodicSpectralSolver, spectral_derivative

__all__ = [
    "SOLVER_VERSION",
    "Resolution",
    "PeriodicProblem",
    "WaveProblem",
    "PROBLEMS",
    "NAMES",
    "SPECTRAL_NAMES",
    "get_problem",
    "solve",
    "pde_residual",
    "relative_residual",
    "RESIDUAL_BOUNDS",
    "wave_exact",
]

# Bump when anything that changes generated numbers changes (it is part of the cache key).
SOLVER_VERSION = "etdrk4-fourier-1"


@dataclass(frozen=True)
class Resolution:
    """Spectral solver resolution: Fourier modes (grid points), maximal time step, padding factor."""

    modes: int
    dt: float
    dealias: float = 1.5

    def refined(self) -> "Resolution":
        """Twice the modes, half the time step (for refinement studies)."""
        return dataclasses.replace(self, modes=2 * self.modes, dt=self.dt / 2)


@dataclass(frozen=True)
class PeriodicProblem:
    """A periodic 1-D problem ``u_t = L u - F(u)_x + G(u)`` with its reference grid.

    ``kind`` selects the PDE family (burgers, allen_cahn, kdv, ks); ``params`` its coefficients
    as a tuple of ``(name, value)`` pairs (hashable; use ``.p`` for a dict); ``ic`` names the
    initial condition (see ``_INITIAL_CONDITIONS``).
    """

    name: str
    kind: str
    params: Tuple[Tuple[str, float], ...]
    ic: str
    domain: Tuple[float, float]
    T: float
    nt: int
    nx: int
    resolution: Resolution
    equation: str = ""

    # names of the stored arrays, in checksum order (the cache is written for any problem class
    # that has ARRAYS, grid(), shapes(), key_data() and compute())
    ARRAYS = ("t", "x", "u")
    FIELDS = ("u",)

    @property
    def p(self) -> Dict[str, float]:
        return dict(self.params)

    @property
    def t(self) -> np.ndarray:
        return np.linspace(0.0, self.T, self.nt)

    @property
    def x(self) -> np.ndarray:
        return np.linspace(self.domain[0], self.domain[1], self.nx)

    def grid(self) -> Dict[str, np.ndarray]:
        return {"t": self.t, "x": self.x}

    def shapes(self) -> Dict[str, tuple]:
        return {"t": (self.nt,), "x": (self.nx,), "u": (self.nt, self.nx)}

    def compute(self, progress=None) -> dict:
        """``solve(self)``: the reference on the evaluation grid."""
        return solve(self, progress=progress)

    def u0(self, x: np.ndarray) -> np.ndarray:
        return _INITIAL_CONDITIONS[self.ic](np.asarray(x, dtype=np.float64))

    def with_overrides(self, **overrides) -> "PeriodicProblem":
        """A copy with PDE parameters, resolution fields or grid fields replaced.

        Accepted keys: any name in ``params``; ``modes``, ``dt``, ``dealias``; ``T``, ``nt``,
        ``nx``, ``ic``, ``domain``.  Unknown keys raise ``ValueError``.
        """
        params = self.p
        res = {f.name: getattr(self.resolution, f.name) for f in dataclasses.fields(Resolution)}
        top = {}
        for key, val in overrides.items():
            if key in params:
                params[key] = float(val)
            elif key in res:
                res[key] = type(res[key])(val)
            elif key in ("T", "nt", "nx", "ic", "domain"):
                top[key] = val
            else:
                allowed = sorted(list(params) + list(res) + ["T", "nt", "nx", "ic", "domain"])
                raise ValueError(f"unknown override {key!r} for {self.name!r}; allowed: {allowed}")
        if "ic" in top and top["ic"] not in _INITIAL_CONDITIONS:
            raise ValueError(f"unknown initial condition {top['ic']!r}; allowed: {sorted(_INITIAL_CONDITIONS)}")
        if "domain" in top:
            top["domain"] = tuple(float(v) for v in top["domain"])
        return dataclasses.replace(
            self, params=tuple(params.items()), resolution=Resolution(**res), **top
        )

    def key_data(self) -> dict:
        """Everything that determines the generated numbers (hashed into the cache key)."""
        return {
            "name": self.name,
            "kind": self.kind,
            "params": [[k, repr(float(v))] for k, v in self.params],
            "ic": self.ic,
            "domain": [repr(float(v)) for v in self.domain],
            "T": repr(float(self.T)),
            "nt": int(self.nt),
            "nx": int(self.nx),
            "modes": int(self.resolution.modes),
            "dt": repr(float(self.resolution.dt)),
            "dealias": repr(float(self.resolution.dealias)),
            "version": SOLVER_VERSION,
        }

    # -- the PDE in the solver's form ---------------------------------------------------------
    def solver(self) -> PeriodicSpectralSolver:
        p = self.p
        a, b = self.domain
        kind = self.kind
        if kind == "burgers":
            nu = p["nu"]
            return PeriodicSpectralSolver(
                self.resolution.modes, a, b, lambda k: -nu * k**2,
                flux=lambda u: 0.5 * u * u, dealias=self.resolution.dealias,
            )
        if kind == "allen_cahn":
            eps, gam = p["eps"], p["gamma"]
            return PeriodicSpectralSolver(
                self.resolution.modes, a, b, lambda k: -eps * k**2 + gam,
                source=lambda u: -gam * u**3, dealias=self.resolution.dealias,
            )
        if kind == "kdv":
            d2 = p["delta"] ** 2
            # u_t = -d2 u_xxx - u u_x ; FT of u_xxx is (ik)^3 = -i k^3  =>  L = i d2 k^3
            return PeriodicSpectralSolver(
                self.resolution.modes, a, b, lambda k: 1j * d2 * k**3,
                flux=lambda u: 0.5 * u * u, dealias=self.resolution.dealias,
            )
        if kind == "ks":
            al, be, ga = p["alpha"], p["beta"], p["gamma"]
            # u_t = -al u u_x - be u_xx - ga u_xxxx  =>  L = be k^2 - ga k^4
            return PeriodicSpectralSolver(
                self.resolution.modes, a, b, lambda k: be * k**2 - ga * k**4,
                flux=lambda u: 0.5 * al * u * u, dealias=self.resolution.dealias,
            )
        raise ValueError(f"unknown PDE kind {kind!r}")


@dataclass(frozen=True)
class WaveProblem:
    """The wave benchmark: exact solution, no solver and no cache."""

    name: str = "wave"
    c: float = 2.0
    domain: Tuple[float, float] = (0.0, 1.0)
    T: float = 1.0
    nt: int = 201
    nx: int = 256
    equation: str = "u_tt - 4 u_xx = 0, u = sin(pi x) cos(2 pi t) + 0.5 sin(4 pi x) cos(8 pi t)"

    @property
    def t(self) -> np.ndarray:
        return np.linspace(0.0, self.T, self.nt)

    @property
    def x(self) -> np.ndarray:
        return np.linspace(self.domain[0], self.domain[1], self.nx)


def wave_exact(t, x, c: float = 2.0):
    """``sin(pi x) cos(c pi t) + 0.5 sin(4 pi x) cos(4 c pi t)`` (c = 2 in the benchmark)."""
    t = np.asarray(t, dtype=np.float64)
    x = np.asarray(x, dtype=np.float64)
    pi = math.pi
    return np.sin(pi * x) * np.cos(c * pi * t) + 0.5 * np.sin(4 * pi * x) * np.cos(4 * c * pi * t)


_INITIAL_CONDITIONS: Dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "-sin(pi x)": lambda x: -np.sin(np.pi * x),
    "x^2 cos(pi x)": lambda x: x**2 * np.cos(np.pi * x),
    "cos(pi x)": lambda x: np.cos(np.pi * x),
    "cos(x)(1+sin(x))": lambda x: np.cos(x) * (1.0 + np.sin(x)),
}


def register_initial_condition(name: str, fn: Callable[[np.ndarray], np.ndarray]) -> None:
    """Register a named initial condition (for tests and experiments; name enters the cache key)."""
    _INITIAL_CONDITIONS[name] = fn


PROBLEMS: Dict[str, object] = {
    "wave": WaveProblem(),
    "burgers": PeriodicProblem(
        name="burgers",
        kind="burgers",
        params=(("nu", 0.01 / math.pi),),
        ic="-sin(pi x)",
        domain=(-1.0, 1.0),
        T=1.0,
        nt=201,
        nx=512,
        resolution=Resolution(modes=4096, dt=1e-4, dealias=1.5),
        equation="u_t + u u_x - (0.01/pi) u_xx = 0",
    ),
    "allen_cahn": PeriodicProblem(
        name="allen_cahn",
        kind="allen_cahn",
        params=(("eps", 1e-4), ("gamma", 5.0)),
        ic="x^2 cos(pi x)",
        domain=(-1.0, 1.0),
        T=1.0,
        nt=201,
        nx=512,
        resolution=Resolution(modes=2048, dt=1e-3, dealias=2.0),
        equation="u_t - 1e-4 u_xx + 5 u^3 - 5 u = 0",
    ),
    "kdv": PeriodicProblem(
        name="kdv",
        kind="kdv",
        params=(("delta", 0.022),),
        ic="cos(pi x)",
        domain=(-1.0, 1.0),
        T=1.0,
        nt=201,
        nx=512,
        resolution=Resolution(modes=512, dt=1e-4, dealias=1.5),
        equation="u_t + u u_x + 0.022^2 u_xxx = 0",
    ),
    "ks": PeriodicProblem(
        name="ks",
        kind="ks",
        params=(("alpha", 100.0 / 16), ("beta", 100.0 / 16**2), ("gamma", 100.0 / 16**4)),
        ic="cos(x)(1+sin(x))",
        domain=(0.0, 2.0 * math.pi),
        T=1.0,
        nt=251,
        nx=512,
        resolution=Resolution(modes=256, dt=4e-5, dealias=1.5),
        equation="u_t + (100/16) u u_x + (100/16^2) u_xx + (100/16^4) u_xxxx = 0",
    ),
}

NAMES = tuple(PROBLEMS)
SPECTRAL_NAMES = tuple(n for n, p in PROBLEMS.items() if isinstance(p, PeriodicProblem))


def get_problem(name: str, **overrides):
    """The problem called ``name`` with ``overrides`` applied (see ``with_overrides``).

    ``name`` is one of the 1-D problems (``NAMES``) or of the 2-D ones (``problems2d.NAMES_2D``).
    """
    from .problems2d import NAMES_2D, PROBLEMS_2D  # that module imports this one

    if name in PROBLEMS_2D:
        prob = PROBLEMS_2D[name]
        return prob.with_overrides(**overrides) if overrides else prob
    if name not in PROBLEMS:
        allowed = ", ".join(NAMES + NAMES_2D)
        raise ValueError(f"unknown reference problem {name!r}; allowed values: {allowed}")
    prob = PROBLEMS[name]
    if isinstance(prob, WaveProblem):
        if overrides:
            try:
                return dataclasses.replace(prob, **overrides)
            except TypeError as exc:
                raise ValueError(f"bad override for 'wave': {exc}") from None
        return prob
    return prob.with_overrides(**overrides) if overrides else prob


def solve(problem: PeriodicProblem, progress=None) -> dict:
    """Run the spectral solver; return ``{"t", "x", "u"}`` on the problem's evaluation grid.

    The ``t = 0`` row is the initial condition itself, evaluated exactly on ``x``.
    """
    solver = problem.solver()
    v0 = solver.project(problem.u0)
    t = problem.t
    x = problem.x
    coeffs = solver.solve(v0, t, problem.resolution.dt, progress=progress)
    u = solver.evaluate(coeffs, x)
    u[0] = problem.u0(x)
    return {"t": t, "x": x, "u": np.ascontiguousarray(u, dtype=np.float64)}


def _fd_dt(u: np.ndarray, dt: float) -> np.ndarray:
    """Fourth-order central difference in time (axis 0) on rows 2 .. nt-3."""
    return (-u[4:] + 8.0 * u[3:-1] - 8.0 * u[1:-3] + u[:-4]) / (12.0 * dt)


def pde_residual(problem: PeriodicProblem, t, x, u, **param_overrides) -> np.ndarray:
    """Strong-form residual of ``u`` (given on the evaluation grid) on interior times.

    x-derivatives are spectral on the periodic points ``x[:-1]`` (the last point duplicates the
    first); ``u_t`` is a 4th-order central difference.  Returns ``r`` of shape
    ``[len(t) - 4, len(x) - 1]`` for times ``t[2:-2]``.  ``param_overrides`` replace PDE
    coefficients (e.g. ``nu=2 * nu`` to check that a wrong coefficient is detected).
    """
    t = np.asarray(t, dtype=np.float64)
    x = np.asarray(x, dtype=np.float64)
    u = np.asarray(u, dtype=np.float64)
    p = problem.p
    for k, v in param_overrides.items():
        if k not in p:
            raise ValueError(f"unknown parameter {k!r}; allowed: {sorted(p)}")
        p[k] = float(v)
    length = x[-1] - x[0]
    up = u[2:-2, :-1]
    ut = _fd_dt(u[:, :-1], t[1] - t[0])

    def d(order):
        return spectral_derivative(up, length, order, axis=1)

    kind = problem.kind
    if kind == "burgers":
        return ut + up * d(1) - p["nu"] * d(2)
    if kind == "allen_cahn":
        return ut - p["eps"] * d(2) + p["gamma"] * (up**3 - up)
    if kind == "kdv":
        return ut + up * d(1) + p["delta"] ** 2 * d(3)
    if kind == "ks":
        return ut + p["alpha"] * up * d(1) + p["beta"] * d(2) + p["gamma"] * d(4)
    raise ValueError(f"unknown PDE kind {kind!r}")


def relative_residual(problem: PeriodicProblem, t, x, u, **param_overrides) -> float:
    """RMS of ``pde_residual`` divided by the RMS of ``u_t`` (same finite difference, same points)."""
    u = np.asarray(u, dtype=np.float64)
    r = pde_residual(problem, t, x, u, **param_overrides)
    ut = _fd_dt(u[:, :-1], float(t[1] - t[0]))
    return float(np.sqrt(np.mean(r**2)) / np.sqrt(np.mean(ut**2)))


# Bounds on ``relative_residual`` of the default references.  They measure the check's own
# discretisation (4th-order differences in t with dt = T/200 or T/250; spectral x-derivatives on
# the 511 periodic points of the evaluation grid), not the reference error: the Burgers front
# (width ~ 0.007, i.e. < 2 grid spacings) and the fast KS dynamics dominate.  Measured values:
# burgers 2.7e-2, allen_cahn 4.3e-5, kdv 3.2e-6, ks 9.0e-4.
RESIDUAL_BOUNDS = {"burgers": 5e-2, "allen_cahn": 1e-4, "kdv": 1e-5, "ks": 2e-3}
