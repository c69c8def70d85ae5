"""Steady lid-driven cavity: float64 reference solver (fourth-order compact, Newton, continuation).

Problem
-------
Steady 2-D incompressible Navier-Stokes on ``(x, y) in [0, 1]^2``::

    (u . grad) u = -grad p + (1/Re) Lap u,   div u = 0,

no slip on ``x = 0``, ``x = 1``, ``y = 0``; the lid ``y = 1`` moves in ``+x`` with ``v = 0`` and

* ``lid="classic"``: ``u = 1`` (validation case; velocity discontinuous at the top corners),
* ``lid="smooth"``:  ``u = 1 - cosh(50 (x - 1/2)) / cosh(25)`` (vanishes at the corners; the
  lid the PINN trains on).

``Re`` in ``[100, 10000]``.

Formulation
-----------
Streamfunction ``psi`` (``u = psi_y``, ``v = -psi_x``) and vorticity ``w = v_x - u_y``::

    psi_xx + psi_yy = -w                                    (1)
    w_xx + w_yy - c w_x - d w_y = 0,  c = Re u, d = Re v     (2)

with ``psi = 0`` on the whole boundary and ``d psi / dn = 0`` except on the lid, where
``psi_y = U(x)``.

Discretisation: fourth-order compact (HOC) differences on the uniform grid
``x_i = i h, y_j = j h, h = 1/n`` (walls included).  With the 3-point central operators
``dx, dy`` (first) and ``dxx, dyy`` (second), whose errors are ``h^2/6 f_xxx`` and
``h^2/12 f_xxxx``:

* (1) in Mehrstellen form: ``(dxx + dyy + h^2/6 dxx dyy) psi = -(1 + h^2/12 (dxx + dyy)) w``.
* (2): ``dxx w + dyy w - c dx w - d dy w - tau = 0`` where the truncation error
  ``tau = h^2/12 (w_xxxx + w_yyyy) - h^2/6 (c w_xxx + d w_yyy)`` is rewritten with (2) and its
  derivatives so that it only needs derivatives of order <= 2 per direction::

      tau = h^2/12 [ (Lap c - c c_x - d c_y) w_x + (Lap d - c d_x - d d_y) w_y
                     + (2 c_x - c^2) w_xx + (2 d_y - d^2) w_yy + 2 (c_y + d_x - c d) w_xy
                     + 2 d w_xxy + 2 c w_xyy - 2 w_xxyy ],

  with ``c_x = Re psi_xy``, ``c_y = Re psi_yy``, ``d_x = -Re psi_xx``, ``d_y = -Re psi_xy``,
  ``Lap c = -Re w_y`` and ``Lap d = Re w_x`` (from (1)); these are taken with the 3x3
  operators (second order suffices: they are multiplied by ``h^2``).  ``c`` and ``d`` must be
  fourth order: ``u = dy psi + h^2/6 (dy w + dxx dy psi)`` (``psi_yyy = -w_y - psi_xxy``) and
  ``v = -dx psi - h^2/6 (dx w + dx dyy psi)``.
* Wall vorticity (``w = -psi_nn`` since ``psi = 0`` along a wall): one-sided formula from the
  Taylor series along the inward normal ``s``, ``psi(k h) = k h g + sum_{m=2..5} (k h)^m / m!
  d^m psi / ds^m`` at ``k = 1..4`` (``g = d psi / ds``: ``-U(x)`` on the lid, 0 elsewhere)::

      w_wall = -(8 psi_1 - 3 psi_2 + 8/9 psi_3 - 1/8 psi_4 - 25/6 h g) / h^2     (local O(h^4));

  ``wall_weights(3)`` is Briley's third-order formula, ``(108, -27, 4, -66) / 18``.  Corner
  vorticity is set to 0 (it is not used by the streamfunction stencil; for the classic lid the
  vorticity is singular there).

The interior equations live on a 3x3 stencil, the wall rows on 4 nodes inward.  The nonlinear
system is solved by Newton's method (``scipy.sparse.linalg.splu``, COLAMD ordering); the Jacobian
is assembled exactly by complex-step differentiation with a colouring of period 4 per axis
(32 residual evaluations), with continuation in ``Re``
(100, 400, 1000, 2500, 5000, 7500, 10000 up to the requested ``Re``, a step halved when Newton
does not converge).  Newton converges to the steady branch also above the Hopf bifurcation
(Re ~ 8000), where time stepping would not settle.

Output
------
``u = psi_y`` and ``v = -psi_x`` at the interior nodes by the fourth-order compact formulas
above, the boundary values on the walls (``u = 1`` along the whole top row, corners included,
for the classic lid).  Pressure from the momentum equations::

    p_x = -(u u_x + v u_y) - w_y / Re,   p_y = -(u v_x + v v_y) + w_x / Re

(``Lap u = -w_y``, ``Lap v = w_x``), the right-hand sides evaluated with explicit fourth-order
differences (5-point central, one-sided at the walls); ``p`` is the least-squares fit of
``(p[i+1] - p[i]) / h`` to the gradient at the edge midpoints (fourth-order interpolation plus
``h^2/24 g_xx``, so the edge difference is fourth order), i.e. the discrete Neumann pressure
Poisson problem, and is shifted to ``p(0.5, 0.5) = 0``.  It is unreliable next to the classic
lid's corners, where the true pressure is singular.

The default grid is 257 x 257 nodes (``x = y = linspace(0, 1, 257)``, Ghia's points are nodes),
computed on the output grid itself up to ``Re = 5000``; above, the continuation ends with one
more Newton solve on 513 x 513 nodes (started from the bicubic interpolant of the 257 solution)
and every other node is returned (no interpolation of the output).  Arrays are ``[ix, iy]``.

Measured (2-core CPU, tests/test_reference_cavity.py)
----------------------------------------------------
* Classic lid, Re 1000, 257^2: max deviation from Botella & Peyret (1998) 4.5e-4 (u) and
  3.8e-4 (v) over their centreline tables, 8e-5 in p(0.5, y); generated in 75-86 s.
* Smooth lid, Re 100 / 400 / 1000: 20-24 s / 40-44 s / 55-64 s; centreline error estimate
  ``|f_257 - f_129| / 15`` 1.1e-7 / 7.4e-6 / 6.4e-5 (``ACCURACY``).
* Observed order (Re 100, smooth lid, centrelines, nx = 17, 33, 65 vs 129): 3.7 and 4.1.  The
  max over the whole field converges at first order only, at the top corners: the smooth lid's
  slope U'(0) = 50 is incompatible with the no-slip side walls (a weak corner singularity).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Dict, Optional, Tuple

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

__all__ = [
    "NAME",
    "LIDS",
    "RE_RANGE",
    "SOLVER_VERSION",
    "ACCURACY",
    "CavityProblem",
    "get_cavity",
    "lid_velocity",
    "solve_cavity",
    "streamfunction_vorticity",
    "velocity",
    "pressure",
    "describe_cavity",
    "compute_nodes",
    "refine",
    "wall_weights",
    "REFINE_ABOVE_RE",
]

NAME = "lid_driven_cavity"
LIDS = ("classic", "smooth")
RE_RANGE = (100.0, 10000.0)
DEFAULT_NX = 257
REFINE_ABOVE_RE = 5000.0
SOLVER_VERSION = "hoc4-psi-omega-newton-1"
CONTINUATION = (100.0, 400.0, 1000.0, 2500.0, 5000.0, 7500.0, 10000.0)
EQUATION = ("steady incompressible Navier-Stokes, (u.grad)u = -grad p + Lap u / Re, div u = 0, "
            "on [0,1]^2, lid y = 1 moving in +x, no slip elsewhere")
LID_FORMULAS = {"classic": "u = 1, v = 0 on y = 1",
                "smooth": "u = 1 - cosh(50 (x - 0.5)) / cosh(25), v = 0 on y = 1"}

ACCURACY_MEASURE = ("max abs error estimate of the centrelines u(0.5, y), v(x, 0.5): "
                    "|f_257 - f_129| / 15 at the nodes of 129 (fourth-order Richardson)")
# Measured once on this code (2-core CPU) for the default grid nx = 257; "published_max_abs" is
# the max deviation from Botella & Peyret (1998) over their centreline tables (classic lid).
ACCURACY: Dict[Tuple[str, float], dict] = {
    ("smooth", 100.0): {"value": 1.1e-7},
    ("smooth", 400.0): {"value": 7.4e-6},
    ("smooth", 1000.0): {"value": 6.4e-5},
    ("classic", 1000.0): {"value": 9.0e-5, "published_max_abs": 4.5e-4},
}


# ----------------------------------------------------------------------------- problem definition

def lid_velocity(x, lid: str, xp=np):
    """Tangential lid velocity ``U(x)`` on ``y = 1`` (``xp``: numpy here, jax.numpy for the PINN)."""
    if xp is np:
        x = np.asarray(x, dtype=np.float64)
    if lid == "classic":
        return xp.ones_like(x)
    if lid == "smooth":
        return 1.0 - xp.cosh(50.0 * (x - 0.5)) / np.cosh(25.0)
    raise ValueError(f"lid must be one of {', '.join(LIDS)}; got {lid!r}")


def _lid_values(x: np.ndarray, lid) -> np.ndarray:
    """``U(x)`` of a named lid, or of a callable ``lid(x)`` (used by the tests' order check)."""
    return np.asarray(lid(x), dtype=np.float64) if callable(lid) else lid_velocity(x, lid)


def _check_re(re) -> float:
    try:
        value = float("nan") if isinstance(re, (bool, str)) else float(re)
    except (TypeError, ValueError):
        value = float("nan")
    if not (RE_RANGE[0] <= value <= RE_RANGE[1]):
        raise ValueError(f"re must be a number in [{RE_RANGE[0]:g}, {RE_RANGE[1]:g}]; got {re!r}")
    return value


def _check_lid(lid) -> str:
    if lid not in LIDS:
        raise ValueError(f"lid must be one of {', '.join(LIDS)}; got {lid!r}")
    return lid


def _check_nx(nx) -> int:
    if isinstance(nx, bool) or not isinstance(nx, (int, np.integer)) or nx < 17 or nx % 2 == 0:
        raise ValueError(f"nx must be an odd integer >= 17 (257 by default); got {nx!r}")
    return int(nx)


@dataclass(frozen=True)
class CavityProblem:
    """The steady cavity at ``re`` with ``lid``, solved and returned on ``nx x nx`` nodes."""

    re: float = 1000.0
    lid: str = "classic"
    nx: int = DEFAULT_NX

    name = NAME
    ARRAYS = ("x", "y", "u", "v", "p")
    FIELDS = ("u", "v", "p")

    @property
    def x(self) -> np.ndarray:
        return np.linspace(0.0, 1.0, self.nx)

    @property
    def y(self) -> np.ndarray:
        return np.linspace(0.0, 1.0, self.nx)

    @property
    def compute_nx(self) -> int:
        """Nodes per axis of the solve: ``2 nx - 1`` above ``REFINE_ABOVE_RE``, else ``nx``."""
        return compute_nodes(self.re, self.nx)

    def grid(self) -> Dict[str, np.ndarray]:
        return {"x": self.x, "y": self.y}

    def shapes(self) -> Dict[str, tuple]:
        n = self.nx
        return {"x": (n,), "y": (n,), "u": (n, n), "v": (n, n), "p": (n, n)}

    def key_data(self) -> dict:
        return {
            "name": self.name,
            "kind": "steady_cavity",
            "re": float(self.re),
            "lid": self.lid,
            "nx": int(self.nx),
            "compute_nx": int(self.compute_nx),
            "domain": [0.0, 1.0, 0.0, 1.0],
            "version": SOLVER_VERSION,
        }

    def summary_line(self) -> str:
        """How it is solved, in a few words (``pinnrun-reference``'s report)."""
        return f"Re={self.re:g}, lid={self.lid}, nodes={self.compute_nx}^2"

    def compute(self, progress: Optional[Callable] = None) -> dict:
        return solve_cavity(self, progress=progress)


def compute_nodes(re: float, nx: int) -> int:
    """Solve grid: the output grid, or the grid with every cell halved (``2 nx - 1`` nodes, the
    output nodes are every other node) for ``re > REFINE_ABOVE_RE``, where the boundary layers
    (thickness ~ Re^-1/2, 3 cells of h = 1/256 at Re 7500) need it."""
    return 2 * nx - 1 if re > REFINE_ABOVE_RE else nx


def get_cavity(re=1000, lid="classic", nx=DEFAULT_NX, **unknown) -> CavityProblem:
    """Validated ``CavityProblem``; ``ValueError`` (one line) for a bad or unknown argument."""
    if unknown:
        raise ValueError(f"unknown argument(s) {', '.join(sorted(unknown))} for {NAME!r}; allowed: re, lid, nx")
    return CavityProblem(re=_check_re(re), lid=_check_lid(lid), nx=_check_nx(nx))


# ----------------------------------------------------------------------------- 3x3 operators

_W1 = {0: (0.0, 1.0, 0.0), 1: (-0.5, 0.0, 0.5), 2: (1.0, -2.0, 1.0)}   # times h^-order


def _op(f, ox: int, oy: int, h: float):
    """Tensor-product 3-point operator d^ox/dx^ox d^oy/dy^oy of ``f`` at the interior nodes."""
    wx, wy = _W1[ox], _W1[oy]
    m, n = f.shape
    out = 0.0
    for a in range(3):
        if wx[a] == 0.0:
            continue
        for b in range(3):
            if wy[b] == 0.0:
                continue
            out = out + (wx[a] * wy[b]) * f[a:m - 2 + a, b:n - 2 + b]
    return out / h ** (ox + oy)


def _compact_velocity(psi, w, h: float) -> tuple:
    """Fourth-order ``u = psi_y``, ``v = -psi_x`` at the interior nodes (see module docstring)."""
    u = _op(psi, 0, 1, h) + h * h / 6.0 * (_op(w, 0, 1, h) + _op(psi, 2, 1, h))
    v = -(_op(psi, 1, 0, h) + h * h / 6.0 * (_op(w, 1, 0, h) + _op(psi, 1, 2, h)))
    return u, v


def _poisson_residual(psi, w, h: float):
    """Mehrstellen form of (1): (dxx + dyy + h^2/6 dxx dyy) psi + (1 + h^2/12 (dxx + dyy)) w."""
    lap_psi = _op(psi, 2, 0, h) + _op(psi, 0, 2, h) + h * h / 6.0 * _op(psi, 2, 2, h)
    return lap_psi + w[1:-1, 1:-1] + h * h / 12.0 * (_op(w, 2, 0, h) + _op(w, 0, 2, h))


def _transport_residual(psi, w, h: float, re: float):
    """Compact fourth-order form of (2), divided by Re."""
    u, v = _compact_velocity(psi, w, h)
    c, d = re * u, re * v
    psi_xx, psi_yy, psi_xy = _op(psi, 2, 0, h), _op(psi, 0, 2, h), _op(psi, 1, 1, h)
    c_x, c_y, d_x, d_y = re * psi_xy, re * psi_yy, -re * psi_xx, -re * psi_xy
    w_x, w_y = _op(w, 1, 0, h), _op(w, 0, 1, h)
    w_xx, w_yy, w_xy = _op(w, 2, 0, h), _op(w, 0, 2, h), _op(w, 1, 1, h)
    lap_c, lap_d = -re * w_y, re * w_x
    tau = (h * h / 12.0) * (
        (lap_c - c * c_x - d * c_y) * w_x
        + (lap_d - c * d_x - d * d_y) * w_y
        + (2.0 * c_x - c * c) * w_xx
        + (2.0 * d_y - d * d) * w_yy
        + 2.0 * (c_y + d_x - c * d) * w_xy
        + 2.0 * d * _op(w, 2, 1, h)
        + 2.0 * c * _op(w, 1, 2, h)
        - 2.0 * _op(w, 2, 2, h)
    )
    return (w_xx + w_yy - c * w_x - d * w_y - tau) / re


def wall_weights(points: int) -> tuple:
    """Weights of the one-sided wall vorticity ``w = -psi_nn``: ``(a_k, b)`` with
    ``psi_nn ~ (sum_k a_k psi_k + b h g) / h^2`` from the Taylor series
    ``psi(k h) = k h g + sum_{m=2}^{points+1} (k h)^m / m! d^m psi / dn^m``, ``k = 1..points``
    (``points = 3``: Briley's formula ``(108 psi_1 - 27 psi_2 + 4 psi_3 - 66 h g) / (18 h^2)``,
    local error O(h^3); ``points = 4``: O(h^4))."""
    k = np.arange(1, points + 1, dtype=np.float64)
    M = k[:, None] ** np.arange(2, points + 2)[None, :]          # rows k, columns k^m
    # unknowns c_m = h^m psi^(m) / m! solve M c = psi_k - k h g; h^2 psi_nn = 2 c_2
    a = 2.0 * np.linalg.solve(M.T, np.eye(points)[0])
    return tuple(a), float(-np.dot(a, k))


WALL_POINTS = 4
_WALL_A, _WALL_B = wall_weights(WALL_POINTS)


def _wall_vorticity(psi, h: float, lid_u: np.ndarray) -> dict:
    """One-sided wall vorticity ``w = -psi_nn`` on the four walls (without the corners)."""
    def wall(inward, g):
        return -(sum(a * p for a, p in zip(_WALL_A, inward)) + _WALL_B * h * g) / (h * h)

    inner = slice(1, -1)
    ks = range(1, WALL_POINTS + 1)
    return {
        "left": wall([psi[k, inner] for k in ks], 0.0),
        "right": wall([psi[-1 - k, inner] for k in ks], 0.0),
        "bottom": wall([psi[inner, k] for k in ks], 0.0),
        "top": wall([psi[inner, -1 - k] for k in ks], -lid_u[inner]),
    }


def _residual(z, n1: int, h: float, re: float, lid_u: np.ndarray):
    """Residual of the discrete system, unknowns ``z = [psi, w]`` on all ``n1 x n1`` nodes.

    Rows: (1) and (2) at interior nodes; ``psi = 0`` on the boundary; ``w - w_wall = 0`` on
    the walls; ``w = 0`` at the corners.  Polynomial in ``z`` (complex-step safe).
    """
    psi = z[: n1 * n1].reshape(n1, n1)
    w = z[n1 * n1:].reshape(n1, n1)
    r_psi = psi.copy()
    r_psi[1:-1, 1:-1] = _poisson_residual(psi, w, h)
    r_w = w.copy()
    r_w[1:-1, 1:-1] = _transport_residual(psi, w, h, re)
    walls = _wall_vorticity(psi, h, lid_u)
    r_w[0, 1:-1] = w[0, 1:-1] - walls["left"]
    r_w[-1, 1:-1] = w[-1, 1:-1] - walls["right"]
    r_w[1:-1, 0] = w[1:-1, 0] - walls["bottom"]
    r_w[1:-1, -1] = w[1:-1, -1] - walls["top"]
    return np.concatenate([r_psi.ravel(), r_w.ravel()])


# ----------------------------------------------------------------------------- Jacobian

def _sparsity(n1: int) -> tuple:
    """(rows, cols) of the Jacobian's structural non-zeros (node index ``i * n1 + j``)."""
    N = n1 * n1
    idx = np.arange(N).reshape(n1, n1)
    rows, cols = [], []
    interior = idx[1:-1, 1:-1].ravel()
    for field_row in (0, 1):
        for field_col in (0, 1):
            for a in (-1, 0, 1):
                for b in (-1, 0, 1):
                    rows.append(field_row * N + interior)
                    cols.append(field_col * N + (interior + a * n1 + b))
    boundary = np.setdiff1d(idx.ravel(), interior)
    rows += [boundary, N + boundary]          # psi = 0 rows, and the w self-term of w rows
    cols += [boundary, N + boundary]
    inner = np.arange(1, n1 - 1)
    for k in range(1, WALL_POINTS + 1):       # wall rows depend on psi_1..psi_P inward
        for wall_nodes, inward in (
            (idx[0, inner], idx[k, inner]), (idx[-1, inner], idx[-1 - k, inner]),
            (idx[inner, 0], idx[inner, k]), (idx[inner, -1], idx[inner, -1 - k]),
        ):
            rows.append(N + wall_nodes)
            cols.append(inward)
    return np.concatenate(rows), np.concatenate(cols)


_PERIOD = max(3, WALL_POINTS)      # interior rows see 3 x 3 nodes, wall rows P nodes inward
_COLOURS = 2 * _PERIOD * _PERIOD


def _colour(n1: int) -> np.ndarray:
    """Colour of each unknown: (field, i mod P, j mod P); no row sees a colour twice."""
    i, j = np.meshgrid(np.arange(n1), np.arange(n1), indexing="ij")
    node = ((i % _PERIOD) * _PERIOD + (j % _PERIOD)).ravel()
    return np.concatenate([node, _PERIOD * _PERIOD + node])


def _jacobian(z, n1, h, re, lid_u, pattern, colours):
    """Exact sparse Jacobian by complex steps, one residual evaluation per colour."""
    step = 1e-30
    rows, cols = pattern
    derivs = np.empty((_COLOURS, z.size))
    for k in range(_COLOURS):
        zc = z.astype(np.complex128)
        zc[colours == k] += 1j * step
        derivs[k] = _residual(zc, n1, h, re, lid_u).imag / step
    vals = derivs[colours[cols], rows]
    return sp.csc_matrix((vals, (rows, cols)), shape=(z.size, z.size))


# ----------------------------------------------------------------------------- Newton + continuation

def _newton(z, n1, h, re, lid_u, pattern, colours, tol=1e-10, max_iter=12):
    """Newton iterations; ``(z, converged, iterations)``.  Converged: max |dpsi| < tol."""
    N = n1 * n1
    for it in range(1, max_iter + 1):
        F = _residual(z, n1, h, re, lid_u)
        J = _jacobian(z, n1, h, re, lid_u, pattern, colours)
        dz = spla.splu(J, permc_spec="COLAMD").solve(-F)
        if not np.all(np.isfinite(dz)):
            return z, False, it
        z = z + dz
        if np.max(np.abs(dz[:N])) < tol:
            return z, True, it
    return z, False, max_iter


def _re_path(re: float) -> list:
    return [r for r in CONTINUATION if r < re] + [re]


# Converged states of this process's continuations, (lid, nx, Re) -> z, for named lids. The path
# to an Re always starts from zero at Re 100 and passes the same Re values, so starting from the
# state of an Re on it gives bit for bit what the whole path gives; a Reynolds curriculum
# (100 -> 400 -> 1000) then solves each Re once instead of re-walking the path from Re 100.
_CONVERGED: Dict[tuple, np.ndarray] = {}
_CONVERGED_LIMIT = 8


def _remember(lid, nx: int, re: float, z: np.ndarray) -> None:
    if callable(lid):
        return
    if len(_CONVERGED) >= _CONVERGED_LIMIT:
        _CONVERGED.pop(next(iter(_CONVERGED)))
    _CONVERGED[(lid, nx, float(re))] = z.copy()


def streamfunction_vorticity(re: float, lid, nx: int, progress=None) -> tuple:
    """``(psi, w)`` on ``nx x nx`` nodes at ``re``, by Newton with continuation from Re = 100.

    ``lid`` is a name in ``LIDS`` or a callable ``U(x)``.
    """
    n1 = nx
    h = 1.0 / (n1 - 1)
    lid_u = _lid_values(np.linspace(0.0, 1.0, n1), lid)
    pattern, colours = _sparsity(n1), _colour(n1)
    z = np.zeros(2 * n1 * n1)
    path = _re_path(re)
    done, start, current = 0, time.perf_counter(), None
    if not callable(lid):   # start from the highest Re of the path this process has solved
        solved = [r for r in path if (lid, nx, r) in _CONVERGED]
        if solved:
            current = solved[-1]
            z = _CONVERGED[(lid, nx, current)].copy()
            path = path[path.index(current) + 1:]
    while path:
        target = path[0]
        z_new, ok, _ = _newton(z, n1, h, target, lid_u, pattern, colours)
        if ok:
            z, current = z_new, target
            if target in CONTINUATION or not path[1:]:
                _remember(lid, nx, target, z)
            path.pop(0)
            done += 1
            if progress is not None:
                progress(done, done + len(path), time.perf_counter() - start)
            continue
        if current is None or target - current < 10.0:
            raise FloatingPointError(f"Newton did not converge for Re = {target:g} ({lid} lid, nx = {nx})")
        path.insert(0, 0.5 * (current + target))   # halve the continuation step
    psi = z[: n1 * n1].reshape(n1, n1)
    w = z[n1 * n1:].reshape(n1, n1)
    return psi, w


# ----------------------------------------------------------------------------- output fields

def velocity(psi, w, lid: str) -> tuple:
    """``(u, v)`` on all nodes: compact fourth-order in the interior, boundary values on walls."""
    n1 = psi.shape[0]
    h = 1.0 / (n1 - 1)
    u = np.zeros_like(psi)
    v = np.zeros_like(psi)
    u[1:-1, 1:-1], v[1:-1, 1:-1] = _compact_velocity(psi, w, h)
    u[:, -1] = _lid_values(np.linspace(0.0, 1.0, n1), lid)
    return u, v


def _d1_matrix(n1: int, h: float) -> np.ndarray:
    """Explicit fourth-order first derivative: 5-point central, biased/one-sided near the ends."""
    D = np.zeros((n1, n1))
    for i in range(2, n1 - 2):
        D[i, i - 2:i + 3] = (1.0, -8.0, 0.0, 8.0, -1.0)
    D[0, :5] = (-25.0, 48.0, -36.0, 16.0, -3.0)
    D[1, :5] = (-3.0, -10.0, 18.0, -6.0, 1.0)
    D[-1, -5:] = -D[0, :5][::-1]
    D[-2, -5:] = -D[1, :5][::-1]
    return D / (12.0 * h)


def _d2_matrix(n1: int, h: float) -> np.ndarray:
    """Second-order second derivative (3-point central, 4-point one-sided at the ends)."""
    D = np.zeros((n1, n1))
    for i in range(1, n1 - 1):
        D[i, i - 1:i + 2] = (1.0, -2.0, 1.0)
    D[0, :4] = (2.0, -5.0, 4.0, -1.0)
    D[-1, -4:] = (-1.0, 4.0, -5.0, 2.0)
    return D / (h * h)


def _midpoints(n1: int) -> np.ndarray:
    """Fourth-order interpolation matrix from the nodes to the ``n1 - 1`` edge midpoints."""
    M = np.zeros((n1 - 1, n1))
    for i in range(1, n1 - 2):
        M[i, i - 1:i + 3] = (-1.0, 9.0, 9.0, -1.0)
    M[0, :4] = (5.0, 15.0, -5.0, 1.0)
    M[-1, -4:] = (1.0, -5.0, 15.0, 5.0)
    return M / 16.0


def _edge_target(g: np.ndarray, h: float) -> np.ndarray:
    """Target of ``(f[i+1] - f[i]) / h`` along axis 0 when ``f' = g``: g(mid) + h^2/24 g''(mid)."""
    n1 = g.shape[0]
    M = _midpoints(n1)
    D2 = _d2_matrix(n1, h)
    g2 = D2 @ g
    return M @ g + (h * h / 24.0) * 0.5 * (g2[1:] + g2[:-1])


def pressure(u, v, w, re: float) -> np.ndarray:
    """Pressure from the momentum equations (least squares, see module docstring); p(.5,.5) = 0."""
    n1 = u.shape[0]
    h = 1.0 / (n1 - 1)
    D = _d1_matrix(n1, h)
    ddx = lambda f: D @ f          # noqa: E731  (axis 0 = x)
    ddy = lambda f: f @ D.T        # noqa: E731  (axis 1 = y)
    gx = -(u * ddx(u) + v * ddy(u)) - ddy(w) / re
    gy = -(u * ddx(v) + v * ddy(v)) + ddx(w) / re
    tx = _edge_target(gx, h)                  # [n1-1, n1]
    ty = _edge_target(gy.T, h).T              # [n1, n1-1]
    E = sp.diags([-np.ones(n1 - 1), np.ones(n1 - 1)], [0, 1], shape=(n1 - 1, n1)) / h
    I = sp.identity(n1)
    Ex, Ey = sp.kron(E, I), sp.kron(I, E)     # node index i * n1 + j
    A = (Ex.T @ Ex + Ey.T @ Ey).tocsr()
    b = Ex.T @ tx.ravel() + Ey.T @ ty.ravel()
    centre = (n1 // 2) * n1 + n1 // 2
    keep = np.setdiff1d(np.arange(n1 * n1), [centre])
    p = np.zeros(n1 * n1)
    p[keep] = spla.splu(A[keep][:, keep].tocsc()).solve(b[keep])
    return p.reshape(n1, n1)


def _prolong(f: np.ndarray, n_fine: int) -> np.ndarray:
    """Bicubic-spline interpolation of a nodal field onto ``n_fine`` nodes per axis."""
    from scipy.interpolate import RectBivariateSpline

    coarse = np.linspace(0.0, 1.0, f.shape[0])
    fine = np.linspace(0.0, 1.0, n_fine)
    return RectBivariateSpline(coarse, coarse, f, kx=3, ky=3)(fine, fine)


def refine(psi, w, re: float, lid, n_fine: int) -> tuple:
    """``(psi, w)`` on ``n_fine`` nodes: Newton at ``re`` from the interpolated coarse solution."""
    h = 1.0 / (n_fine - 1)
    lid_u = _lid_values(np.linspace(0.0, 1.0, n_fine), lid)
    z0 = np.concatenate([_prolong(psi, n_fine).ravel(), _prolong(w, n_fine).ravel()])
    z, ok, _ = _newton(z0, n_fine, h, re, lid_u, _sparsity(n_fine), _colour(n_fine))
    if not ok:
        raise FloatingPointError(f"Newton did not converge for Re = {re:g} on {n_fine} nodes")
    return z[: n_fine * n_fine].reshape(n_fine, n_fine), z[n_fine * n_fine:].reshape(n_fine, n_fine)


def solve_cavity(problem: CavityProblem, progress=None) -> dict:
    """``{"x", "y", "u", "v", "p"}`` (float64, ``[ix, iy]``) for ``problem``.

    Continuation on the output grid; above ``REFINE_ABOVE_RE`` one more Newton solve on the grid
    with halved cells, started from the interpolated solution, whose every other node is output.
    """
    psi, w = streamfunction_vorticity(problem.re, problem.lid, problem.nx, progress=progress)
    if problem.compute_nx != problem.nx:
        psi, w = refine(psi, w, problem.re, problem.lid, problem.compute_nx)
    u, v = velocity(psi, w, problem.lid)
    p = pressure(u, v, w, problem.re)
    step = (problem.compute_nx - 1) // (problem.nx - 1)
    return {"x": problem.x, "y": problem.y, "u": u[::step, ::step], "v": v[::step, ::step],
            "p": p[::step, ::step]}


# ----------------------------------------------------------------------------- provenance

def _accuracy(problem: CavityProblem) -> dict:
    entry = ACCURACY.get((problem.lid, float(problem.re))) if problem.nx == DEFAULT_NX else None
    out = {"measure": ACCURACY_MEASURE}
    if entry is None:
        out.update({"value": None, "note": "not measured for this configuration"})
    else:
        out.update(entry)
    return out


def describe_cavity(problem: CavityProblem, cache_file=None, checksum: Optional[str] = None) -> dict:
    """Provenance dict of a cavity reference (JSON-serialisable, no file access)."""
    return {
        "name": problem.name,
        "equation": EQUATION,
        "parameters": {"re": float(problem.re), "lid": problem.lid},
        "lid": LID_FORMULAS[problem.lid],
        "domain": [0.0, 1.0, 0.0, 1.0],
        "solver": ("streamfunction-vorticity, fourth-order compact differences, one-sided 4-point wall "
                   "vorticity, Newton (complex-step Jacobian, SuperLU) with continuation in Re, "
                   "float64; pressure by least squares from the momentum equations, p(0.5,0.5)=0"),
        "version": SOLVER_VERSION,
        "resolution": {"nodes": [int(problem.compute_nx)] * 2, "h": 1.0 / (problem.compute_nx - 1),
                       "output_nodes": [int(problem.nx)] * 2},
        "grid": {"nx": int(problem.nx), "ny": int(problem.nx),
                 "shapes": {k: list(v) for k, v in problem.shapes().items()}},
        "accuracy": _accuracy(problem),
        "cache_file": None if cache_file is None else str(cache_file),
        "checksum": checksum,
    }
