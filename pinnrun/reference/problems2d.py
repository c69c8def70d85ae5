"""Definitions of the 2-D two-field benchmark problems (Gray-Scott, Ginzburg-Landau).

Both live on ``(x, y) in [-1, 1]^2``, periodic in both axes, with real fields ``u`` and ``v``:

``gray_scott``
    ``u_t = eps1 Lap u + b1 (1 - u) - c1 u v^2``, ``v_t = eps2 Lap v - b2 v + c2 u v^2`` with
    ``eps1 = 0.2, eps2 = 0.1, b1 = 40, b2 = 100, c1 = c2 = 1000``, ``t in [0, 2]``,
    ``u0 = 1 - exp(-10((x+0.05)^2 + (y+0.02)^2))``, ``v0 = exp(-10((x-0.05)^2 + (y-0.02)^2))``.
    This initial condition is not exactly periodic (its values at ``x = -1`` and ``x = 1`` differ
    by about 1e-4); the solver starts from its Fourier projection (approximated on an 8-times
    finer grid, as the 1-D ``project``), the ``t = 0`` output row is the formula itself,
    evaluated on the output grid (so that row is not periodic; all later rows are).
``ginzburg_landau``
    ``A_t = eps Lap A + k A - k (1 + 1.5 i) A |A|^2`` with ``k = 10, eps = 0.004``, ``t in [0, 1]``,
    ``A0 = (10 y + 10 i x) exp(-25 (x^2 + y^2))``, for ``u = Re A``, ``v = Im A``:
    ``u_t = eps Lap u + k u - k (u - 1.5 v)(u^2 + v^2)``,
    ``v_t = eps Lap v + k v - k (v + 1.5 u)(u^2 + v^2)``.

The linear part of the solver is diagonal per field (``-eps1 |k|^2 - b1`` and
``-eps2 |k|^2 - b2`` for Gray-Scott, ``-eps |k|^2 + k`` for both Ginzburg-Landau fields); the
constant ``b1`` and the cubic terms are the pointwise nonlinear term, formed on a grid
zero-padded by ``dealias`` (2 by default: a cubic term needs 2, the 3/2 rule is not enough).

Output grid: ``nt`` snapshots ``t = linspace(0, T, nt)`` on ``x = y = linspace(-1, 1, nx)``
(both ends included: the periodic solution interpolated exactly by its trigonometric series);
``u[i, j, k] = u(t_i, x_j, y_k)``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable, Dict, Tuple

import numpy as np

from .problems import Resolution
from .spectral2d import PeriodicSpectralSolver2D

__all__ = [
    "SOLVER_VERSION_2D",
    "Periodic2DProblem",
    "PROBLEMS_2D",
    "NAMES_2D",
    "register_initial_condition_2d",
    "solve_2d",
    "uniform_ode_rhs",
]

# Bump when anything that changes generated 2-D numbers changes (part of the 2-D cache key; the
# 1-D problems keep their own problems.SOLVER_VERSION).
SOLVER_VERSION_2D = "etdrk4-fourier2d-1"

InitialCondition2D = Callable[[np.ndarray, np.ndarray], Tuple[np.ndarray, np.ndarray]]


def _gs_default(x, y):
    u = 1.0 - np.exp(-10.0 * ((x + 0.05) ** 2 + (y + 0.02) ** 2))
    v = np.exp(-10.0 * ((x - 0.05) ** 2 + (y - 0.02) ** 2))
    return u, v


def _gl_default(x, y):
    g = np.exp(-25.0 * (x**2 + y**2))
    return 10.0 * y * g, 10.0 * x * g


def _uniform(u, v):
    return lambda x, y: (np.full(np.broadcast(x, y).shape, u), np.full(np.broadcast(x, y).shape, v))


def _x_only(x, y, u, v):
    shape = np.broadcast(x, y).shape
    return np.broadcast_to(u, shape), np.broadcast_to(v, shape)


_INITIAL_CONDITIONS_2D: Dict[str, InitialCondition2D] = {
    "u=1-exp(-10((x+0.05)^2+(y+0.02)^2)), v=exp(-10((x-0.05)^2+(y-0.02)^2))": _gs_default,
    "A=(10y+10ix)exp(-25(x^2+y^2))": _gl_default,
    # for tests: y-independent (smooth and periodic, resolved by 48-64 modes over short horizons),
    # uniform (ODE solutions) and steady states
    "u=1-0.3((1+cos(pi x))/2)^2, v=0.15((1+cos(pi x))/2)^2": lambda x, y: _x_only(
        x, y, 1.0 - 0.3 * (0.5 * (1.0 + np.cos(np.pi * x))) ** 2, 0.15 * (0.5 * (1.0 + np.cos(np.pi * x))) ** 2
    ),
    "A=0.6cos(pi x)+0.4i sin(pi x)": lambda x, y: _x_only(x, y, 0.6 * np.cos(np.pi * x), 0.4 * np.sin(np.pi * x)),
    "uniform u=1, v=0": _uniform(1.0, 0.0),
    "uniform u=0.5, v=0.25": _uniform(0.5, 0.25),
    "uniform A=0.3+0.2i": _uniform(0.3, 0.2),
}


def register_initial_condition_2d(name: str, fn: InitialCondition2D) -> None:
    """Register a named 2-D initial condition ``fn(x, y) -> (u0, v0)`` (broadcasting arrays; the
    name enters the cache key)."""
    _INITIAL_CONDITIONS_2D[name] = fn


@dataclass(frozen=True)
class Periodic2DProblem:
    """A periodic 2-D two-field problem with its reference grid (see the module docstring).

    ``kind`` selects the PDE family (gray_scott, ginzburg_landau); ``params`` its coefficients
    as ``(name, value)`` pairs; ``ic`` names the initial condition; ``nx`` is the number of
    output points per axis (``ny = nx``).
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

    ARRAYS = ("t", "x", "y", "u", "v")
    FIELDS = ("u", "v")

    @property
    def p(self) -> Dict[str, float]:
        return dict(self.params)

    @property
    def ny(self) -> int:
        return self.nx

    @property
    def t(self) -> np.ndarray:
        return np.linspace(0.0, self.T, self.nt)

    @property
    def x(self) -> np.ndarray:
        return np.linspace(self.domain[0], self.domain[1], self.nx)

    @property
    def y(self) -> np.ndarray:
        return np.linspace(self.domain[0], self.domain[1], self.ny)

    def grid(self) -> Dict[str, np.ndarray]:
        return {"t": self.t, "x": self.x, "y": self.y}

    def shapes(self) -> Dict[str, tuple]:
        nt, nx, ny = self.nt, self.nx, self.ny
        return {"t": (nt,), "x": (nx,), "y": (ny,), "u": (nt, nx, ny), "v": (nt, nx, ny)}

    def u0(self, x, y) -> Tuple[np.ndarray, np.ndarray]:
        """Initial ``(u, v)`` at broadcasting ``x``, ``y``."""
        x = np.asarray(x, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        u, v = _INITIAL_CONDITIONS_2D[self.ic](x, y)
        shape = np.broadcast(x, y).shape
        return (np.broadcast_to(np.asarray(u, dtype=np.float64), shape),
                np.broadcast_to(np.asarray(v, dtype=np.float64), shape))

    def with_overrides(self, **overrides) -> "Periodic2DProblem":
        """A copy with PDE parameters, resolution fields or grid fields replaced.

        Accepted keys: any name in ``params``; ``modes``, ``dt``, ``dealias``; ``T``, ``nt``,
        ``nx`` (``ny`` is accepted when equal to ``nx``), ``ic``, ``domain``.  Unknown keys
        raise ``ValueError``.
        """
        params = self.p
        res = {f.name: getattr(self.resolution, f.name) for f in dataclasses.fields(Resolution)}
        top = {}
        ny = None
        grid_keys = ("T", "nt", "nx", "ic", "domain")
        for key, val in overrides.items():
            if key in params:
                params[key] = float(val)
            elif key in res:
                res[key] = type(res[key])(val)
            elif key in grid_keys:
                top[key] = val
            elif key == "ny":
                ny = int(val)
            else:
                allowed = sorted(list(params) + list(res) + list(grid_keys) + ["ny"])
                raise ValueError(f"unknown override {key!r} for {self.name!r}; allowed: {allowed}")
        if "ic" in top and top["ic"] not in _INITIAL_CONDITIONS_2D:
            raise ValueError(
                f"unknown initial condition {top['ic']!r}; allowed: {sorted(_INITIAL_CONDITIONS_2D)}"
            )
        if "domain" in top:
            top["domain"] = tuple(float(v) for v in top["domain"])
        for key, cast in (("T", float), ("nt", int), ("nx", int)):
            if key in top:
                top[key] = cast(top[key])
        nx = top.get("nx", self.nx)
        if ny is not None and ny != nx:
            raise ValueError(f"{self.name!r} uses the same number of points on both axes: ny={ny} != nx={nx}")
        if int(res["modes"]) % 2 or int(res["modes"]) < 4:
            raise ValueError(f"modes must be even and >= 4; got {res['modes']}")
        return dataclasses.replace(self, params=tuple(params.items()), resolution=Resolution(**res), **top)

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
            "ny": int(self.ny),
            "modes": [int(self.resolution.modes)] * 2,
            "dt": repr(float(self.resolution.dt)),
            "dealias": repr(float(self.resolution.dealias)),
            "version": SOLVER_VERSION_2D,
        }

    # -- the PDE in the solver's form ---------------------------------------------------------
    def linear_and_reaction(self):
        """``(linear symbols (L_u, L_v), pointwise reaction (u, v) -> (N_u, N_v))``."""
        p = self.p
        kind = self.kind
        if kind == "gray_scott":
            e1, e2, b1, b2, c1, c2 = (p[k] for k in ("eps1", "eps2", "b1", "b2", "c1", "c2"))

            def reaction(u, v):
                uv2 = u * v * v
                return b1 - c1 * uv2, c2 * uv2

            return (
                (lambda kx, ky: -e1 * (kx**2 + ky**2) - b1, lambda kx, ky: -e2 * (kx**2 + ky**2) - b2),
                reaction,
            )
        if kind == "ginzburg_landau":
            eps, k = p["eps"], p["k"]

            def reaction(u, v):
                kr2 = k * (u * u + v * v)
                return -(u - 1.5 * v) * kr2, -(v + 1.5 * u) * kr2

            lin = lambda kx, ky: -eps * (kx**2 + ky**2) + k  # noqa: E731
            return (lin, lin), reaction
        raise ValueError(f"unknown 2-D PDE kind {kind!r}")

    def solver(self, workers: int = -1) -> PeriodicSpectralSolver2D:
        a, b = self.domain
        lin, reaction = self.linear_and_reaction()
        r = self.resolution
        return PeriodicSpectralSolver2D(r.modes, a, b, lin, reaction, dealias=r.dealias, workers=workers)

    def compute(self, progress=None) -> dict:
        return solve_2d(self, progress=progress)


def uniform_ode_rhs(problem: Periodic2DProblem):
    """Right-hand side ``f(t, [u, v])`` of the spatially uniform problem (no diffusion)."""
    (lu, lv), reaction = problem.linear_and_reaction()
    zero = np.zeros(1)
    cu, cv = float(lu(zero, zero)[0]), float(lv(zero, zero)[0])

    def rhs(t, w):
        nu, nv = reaction(w[0], w[1])
        return np.array([cu * w[0] + nu, cv * w[1] + nv])

    return rhs


PROBLEMS_2D: Dict[str, Periodic2DProblem] = {
    "gray_scott": Periodic2DProblem(
        name="gray_scott",
        kind="gray_scott",
        params=(("eps1", 0.2), ("eps2", 0.1), ("b1", 40.0), ("b2", 100.0), ("c1", 1000.0), ("c2", 1000.0)),
        ic="u=1-exp(-10((x+0.05)^2+(y+0.02)^2)), v=exp(-10((x-0.05)^2+(y-0.02)^2))",
        domain=(-1.0, 1.0),
        T=2.0,
        nt=101,
        nx=200,
        # 128 modes and dt = 2.5e-4 (8000 steps; see records.ACCURACY for the measured
        # refinement change): 256 modes change it by < 3e-8 at the same dt, but cost 4-5x.
        resolution=Resolution(modes=128, dt=2.5e-4, dealias=2.0),
        equation="u_t = 0.2 Lap u + 40 (1 - u) - 1000 u v^2, v_t = 0.1 Lap v - 100 v + 1000 u v^2",
    ),
    "ginzburg_landau": Periodic2DProblem(
        name="ginzburg_landau",
        kind="ginzburg_landau",
        params=(("eps", 0.004), ("k", 10.0)),
        ic="A=(10y+10ix)exp(-25(x^2+y^2))",
        domain=(-1.0, 1.0),
        T=1.0,
        nt=101,
        nx=200,
        # 256 modes (128 change it by ~5e-6) and dt = 1e-3 (1000 steps; halving it changes the
        # solution by ~5e-9); see records.ACCURACY for the measured refinement change.
        resolution=Resolution(modes=256, dt=1e-3, dealias=2.0),
        equation="A_t = 0.004 Lap A + 10 A - 10 (1 + 1.5 i) A |A|^2, u = Re A, v = Im A",
    ),
}

NAMES_2D = tuple(PROBLEMS_2D)


def solve_2d(problem: Periodic2DProblem, progress=None) -> dict:
    """Run the 2-D spectral solver; return ``{"t", "x", "y", "u", "v"}`` on the output grid.

    The ``t = 0`` rows are the initial condition itself, evaluated exactly on ``x`` by ``y``.
    """
    solver = problem.solver()
    w0 = solver.project(problem.u0)
    t, x, y = problem.t, problem.x, problem.y
    vals = solver.solve(w0, t, problem.resolution.dt, progress=progress, points=(x, y))
    u0, v0 = problem.u0(x[:, None], y[None, :])
    vals[0, 0] = u0
    vals[0, 1] = v0
    return {
        "t": t,
        "x": x,
        "y": y,
        "u": np.ascontiguousarray(vals[:, 0], dtype=np.float64),
        "v": np.ascontiguousarray(vals[:, 1], dtype=np.float64),
    }
