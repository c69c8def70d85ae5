"""Rayleigh-Taylor instability: Fourier-Chebyshev reference for 2-D Boussinesq flow between walls.

Problem
-------
On ``x in [0, 1)`` periodic and ``y in [0, 2]`` between no-slip walls (BENCHMARKS.md section 10)::

    u_t + u . grad u + grad p - a1 Lap u - a2 T e_y = 0,   div u = 0,
    T_t + u . grad T - a4 Lap T = 0,
    a1 = sqrt(Pr / Ra),  a2 = 1,  a4 = 1 / sqrt(Ra Pr),

``u = v = 0`` on both walls, ``T = T_wall`` at ``y = 0`` and ``-T_wall`` at ``y = 2`` (``T_wall =
tanh(1 / delta)``, the initial profile's wall values), no mean pressure gradient along x (the
pressure is periodic).  ``T`` is a buoyancy: warm (``T > 0``) fluid is light, so the initial state

    T0(x, y) = -tanh((y - 1 - eta(x)) / delta),
    eta(x) = amplitude cos(2 pi mode x) + sum_{m = 2..max_mode} c_m cos(2 pi m x + phi_m),

is heavy fluid (``T ~ -1``) over light fluid (``T ~ +1``), at rest; the multimode part is seeded
(``numpy.random.default_rng(seed)``: normal ``c_m`` scaled so that their root-mean-square is
``multimode``, uniform phases).

Formulation and discretisation
------------------------------
Vorticity-streamfunction: ``w = v_x - u_y = -Lap psi``, ``u = psi_y``, ``v = -psi_x``, and

    w_t = a1 Lap w - (u w_x + v w_y) + a2 T_x,         Lap psi = -w,  psi = psi_y = 0 on the walls,

for each Fourier mode ``m != 0`` along x; the mean flow ``U(y) = <u>_x`` (mode 0) has its own
equation ``U_t = a1 U_yy - d/dy <u v>_x``, ``U = 0`` on the walls (the mean x-momentum equation:
with periodic pressure no mean gradient drives it).  ``T = T_s(y) + theta`` with ``T_s`` linear
between the wall values and ``theta = 0`` on the walls: ``theta_t = a4 Lap theta - u . grad T``.
The flow is divergence-free by construction (``u_x + v_y = psi_yx - psi_xy``).

* x: Fourier (``rfft``) on ``nx`` points, 2/3 rule (only the modes ``m < nx / 3`` are carried; the
  products are formed on the ``nx`` grid and truncated).
* y: Chebyshev collocation on the ``ny + 1`` Gauss-Lobatto points ``y_j = 1 + cos(pi j / ny)``.
  Each implicit stage solves, per Fourier mode, one coupled system for ``(w, psi)`` at all nodes:
  the vorticity equation at the interior nodes, ``Lap psi = -w`` at the interior nodes and the four
  wall conditions on ``psi`` (they fix the walls' vorticity; no influence matrix, and only second
  derivatives appear, so the matrices stay well conditioned).
* Time: the IMEX Runge-Kutta scheme ARS(4,4,3) of Ascher, Ruuth and Spiteri (1997), third order,
  L-stable: diffusion implicit, advection and buoyancy explicit; the implicit diagonal is 1/2 at
  every stage, so one factorisation per Fourier mode and field serves all stages.
* Pressure (output only), at the snapshot: for ``m != 0`` from its Poisson equation (the divergence
  of the momentum equations) ``Lap p = -(u_x^2 + 2 u_y v_x + v_y^2) + a2 T_y`` with the y-momentum
  equation on the walls as Neumann data, ``p_y = a1 i k w + a2 T``; for ``m = 0`` from the mean
  y-momentum equation ``P_y = a2 <T>_x - <u v_x + v v_y>_x``, integrated from ``y = 0`` (Chebyshev
  antiderivative); then the mean over the
  output grid is removed (the pressure is defined up to a constant).

Reference (``get_rayleigh_taylor(**overrides)``, ``DEFAULTS``; ``QUICK`` = the quick budget's)
---------
The solver runs from the perturbed rest state for ``t_skip + T``; the output is ``nt`` snapshots
over the last ``T`` (``t = linspace(0, T, nt)``, ``t = 0`` being ``t_skip`` after the start: the
horizon the network learns starts from a moving flow, not from rest; the defaults' t_skip = 0.25
and T = 2.75 span the linear growth into the nonlinear stage, the perturbation's rms growing x116), on
``x = linspace(0, 1, nx + 1)`` (the solver's points plus the repeated right end) and
``y = linspace(0, 2, ny_out)`` (both walls; exact polynomial interpolation of the Chebyshev
solution).  Arrays ``t [nt]``, ``x [nx + 1]``, ``y [ny_out]``, ``u, v, p, T [nt, nx + 1, ny_out]``
(``u[i, j, k] = u(t_i, x_j, y_k)``) and ``amplitude_history [steps + 1, 2]`` (time from the start
and the rms of the mode-``mode`` vertical velocity), kept for the growth check.

Measured: see ``MEASURED`` and docs/benchmarks.md.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable, Dict, Optional

import numpy as np

from .checks import integer as _integer
from .checks import number as _number

__all__ = [
    "NAME",
    "SOLVER_VERSION",
    "DEFAULTS",
    "QUICK",
    "PARAMETERS",
    "RayleighTaylorProblem",
    "get_rayleigh_taylor",
    "describe_rayleigh_taylor",
    "solve_rayleigh_taylor",
    "chebyshev",
    "base_profile",
    "linear_growth",
    "MEASURED",
]

NAME = "rayleigh_taylor"
SOLVER_VERSION = "rayleigh-taylor-fourier-chebyshev-ars443-1"
EQUATION = ("u_t + u.grad u + grad p - a1 Lap u - a2 T e_y = 0, div u = 0, T_t + u.grad T - a4 Lap T = 0, "
            "a1 = sqrt(Pr/Ra), a2 = 1, a4 = 1/sqrt(Ra Pr); x in [0,1) periodic, y in [0,2], u = v = 0 and "
            "T = +-tanh(1/delta) on y = 0, 2")

DEFAULTS = {
    "ra": 1e7, "pr": 1.0, "delta": 0.1,
    "mode": 1, "amplitude": 1e-3, "multimode": 1e-4, "max_mode": 8, "seed": 0,
    "nx": 256, "ny": 192, "dt": 1e-3,
    "t_skip": 0.25, "T": 2.75, "nt": 45, "ny_out": 257,
}
# The quick budget's: the recipe's first window (a quarter of the horizon) on a coarser grid, resolved there.
QUICK = {"T": 0.6875, "nt": 12, "nx": 128, "ny": 128}

# Measured on this code (2-core CPU; the tests repeat the first three on coarse grids).
MEASURED: dict = {
    "heat_equation": "unperturbed state vs diffusing_base at t = 2: 1.0e-11 (ny 128, dt 1e-2), 1.8e-9 (ny 96)",
    "linear_growth": ("mode 1, amplitude 1e-6, nx 16, ny 96, dt 2e-3 vs linear_growth (n 64): relative 5e-7 "
                      "over t in [0.4, 2]; growth rate 2.07 (interface diffusion time delta^2 / a4 = 31.6 = "
                      "65 growth times)"),
    "default_run": ("the defaults (256 x 192, h = 9.92e-4, 3024 steps): 366 s (another job sharing the 2 cores); "
                    "the rms of T's departure from its x-mean grows from 2.11e-3 at horizon t = 0 to 2.45e-1 at "
                    "t = 2.75 (x116); max |T| 1.00014 at the end"),
    "refinement": ("relative L2 difference, 128 x 128 vs the defaults' 256 x 192 (same dt), snapshots at horizon "
                   "t = 0, 0.6875, 1.375, 2.0625, 2.75 (the recipe's window edges): T 3.7e-10, 3.8e-10, 9.9e-9, "
                   "1.9e-6, 1.2e-3; u 7.7e-9 ... 2.1e-3; v 1.5e-9 ... 6.1e-4; p 1.1e-11 ... 4.1e-5; max |T| "
                   "at the end 1.0020 on 128 x 128 against 1.00014 on 256 x 192 (the wall value is 1 - 4e-9): the "
                   "quick window (128 x 128) is resolved to 4e-10, the last window needs the finer default"),
    "pressure": ("x- and y-momentum residuals (u_t, v_t by central differences of the steps) at t = 0.5 of "
                 "amplitude 0.05, nx 32, dt 1e-3, over max |p_x| / max |p_y - a2 T|: Ra 1e5 ny 64 1.1e-3 / 8.0e-6, "
                 "ny 96 4.2e-6 / 3.5e-7; Ra 1e7 ny 96 5.8e-4 / 3.2e-6, ny 128 2.1e-5 / 4.9e-7 (the wall layers)"),
    "persistence": ("relative L2 of the persistence baseline (the first snapshot held), defaults: first window "
                    "T 3.7e-3, u 0.75, v 0.75, p 1.2e-3; whole horizon T 0.10, u 0.99, v 0.99, p 0.036"),
}

ProgressFn = Callable[[int, int, float], None]

# ARS(4,4,3) (Ascher, Ruuth & Spiteri 1997, section 2.8): stage 0 is the step's start; row i of
# IMPLICIT / EXPLICIT gives stage i + 1's coefficients on stages 0..i (implicit: on the diffusion
# term of the stages, the last entry being the diagonal GAMMA; explicit: on the advection terms).
# The last stage is the new step (stiffly accurate).
GAMMA = 0.5
IMPLICIT = (
    (0.0, 0.5),
    (0.0, 1.0 / 6.0, 0.5),
    (0.0, -0.5, 0.5, 0.5),
    (0.0, 1.5, -1.5, 0.5, 0.5),
)
EXPLICIT = (
    (0.5,),
    (11.0 / 18.0, 1.0 / 18.0),
    (5.0 / 6.0, -5.0 / 6.0, 0.5),
    (0.25, 1.75, 0.75, -1.75),
)


# ----------------------------------------------------------------------------- Chebyshev

def chebyshev(n: int) -> tuple:
    """Gauss-Lobatto points ``xi_j = cos(pi j / n)`` (j = 0..n, from +1 down to -1) and the
    differentiation matrix ``D`` (Trefethen, Spectral Methods in MATLAB, ch. 6), its diagonal
    from the negative row sums (exact derivative of constants)."""
    xi = np.cos(np.pi * np.arange(n + 1) / n)
    c = np.ones(n + 1)
    c[0] = c[-1] = 2.0
    c *= (-1.0) ** np.arange(n + 1)
    dx = xi[:, None] - xi[None, :]
    d = np.outer(c, 1.0 / c) / (dx + np.eye(n + 1))
    d -= np.diag(d.sum(axis=1))
    return xi, d


def barycentric_matrix(nodes: np.ndarray, points: np.ndarray) -> np.ndarray:
    """``[len(points), len(nodes)]``: the values at ``points`` of the polynomial interpolating data at
    the Chebyshev-Lobatto ``nodes`` (barycentric formula, weights (-1)^j, halved at the ends)."""
    n = len(nodes) - 1
    w = (-1.0) ** np.arange(n + 1)
    w[0] *= 0.5
    w[-1] *= 0.5
    diff = points[:, None] - nodes[None, :]
    exact = np.isclose(diff, 0.0, atol=1e-14, rtol=0.0)
    diff[exact] = 1.0
    weights = w[None, :] / diff
    matrix = weights / weights.sum(axis=1, keepdims=True)
    rows = exact.any(axis=1)
    matrix[rows] = exact[rows].astype(np.float64)
    return matrix


def antiderivative_matrix(n: int) -> np.ndarray:
    """``[n + 1, n + 1]``: node values of the antiderivative (zero at ``xi = -1``, the last node) of
    the degree-n polynomial through node values (Chebyshev coefficients, ``chebint``)."""
    from numpy.polynomial import chebyshev as C

    xi = np.cos(np.pi * np.arange(n + 1) / n)
    vander = C.chebvander(xi, n)
    to_coefficients = np.linalg.inv(vander)
    integrated = np.stack([C.chebval(xi, C.chebint(to_coefficients[:, j], lbnd=-1.0)) for j in range(n + 1)], axis=1)
    return integrated


def base_profile(y, delta: float):
    """The unperturbed initial buoyancy ``-tanh((y - 1) / delta)``."""
    return -np.tanh((np.asarray(y) - 1.0) / delta)


# ----------------------------------------------------------------------------- the problem

@dataclass(frozen=True)
class RayleighTaylorProblem:
    """The Rayleigh-Taylor reference (module docstring)."""

    ra: float = DEFAULTS["ra"]
    pr: float = DEFAULTS["pr"]
    delta: float = DEFAULTS["delta"]
    mode: int = DEFAULTS["mode"]
    amplitude: float = DEFAULTS["amplitude"]
    multimode: float = DEFAULTS["multimode"]
    max_mode: int = DEFAULTS["max_mode"]
    seed: int = DEFAULTS["seed"]
    nx: int = DEFAULTS["nx"]
    ny: int = DEFAULTS["ny"]
    dt: float = DEFAULTS["dt"]
    t_skip: float = DEFAULTS["t_skip"]
    T: float = DEFAULTS["T"]
    nt: int = DEFAULTS["nt"]
    ny_out: int = DEFAULTS["ny_out"]

    name = NAME
    ARRAYS = ("t", "x", "y", "u", "v", "p", "T", "amplitude_history")
    FIELDS = ("u", "v", "p", "T")

    @property
    def a1(self) -> float:
        return math.sqrt(self.pr / self.ra)

    @property
    def a2(self) -> float:
        return 1.0

    @property
    def a4(self) -> float:
        return 1.0 / math.sqrt(self.ra * self.pr)

    @property
    def t_wall(self) -> float:
        """The bottom wall's buoyancy (the top wall's is minus it)."""
        return math.tanh(1.0 / self.delta)

    @property
    def t(self) -> np.ndarray:
        return np.linspace(0.0, self.T, self.nt)

    @property
    def x(self) -> np.ndarray:
        return np.linspace(0.0, 1.0, self.nx + 1)

    @property
    def y(self) -> np.ndarray:
        return np.linspace(0.0, 2.0, self.ny_out)

    def steps(self) -> tuple:
        """(steps per snapshot interval, skipped steps, the step h): the largest ``h <= dt`` that
        divides ``T / (nt - 1)`` (``t_skip`` is a whole number of those intervals)."""
        interval = self.T / (self.nt - 1)
        per = max(1, math.ceil(interval / self.dt - 1e-9))
        return per, per * round(self.t_skip / interval), interval / per

    def grid(self) -> Dict[str, np.ndarray]:
        return {"t": self.t, "x": self.x, "y": self.y}

    def shapes(self) -> Dict[str, tuple]:
        per, skip, _ = self.steps()
        fields = (self.nt, self.nx + 1, self.ny_out)
        return {"t": (self.nt,), "x": (self.nx + 1,), "y": (self.ny_out,),
                "amplitude_history": (skip + per * (self.nt - 1) + 1, 2), **{k: fields for k in self.FIELDS}}

    def key_data(self) -> dict:
        return {
            "name": self.name, "kind": "boussinesq_2d_walls", "domain": [0.0, 1.0, 0.0, 2.0],
            "ra": float(self.ra), "pr": float(self.pr), "delta": float(self.delta), "mode": int(self.mode),
            "amplitude": float(self.amplitude), "multimode": float(self.multimode), "max_mode": int(self.max_mode),
            "seed": int(self.seed), "nx": int(self.nx), "ny": int(self.ny), "dt": float(self.dt),
            "t_skip": float(self.t_skip), "T": float(self.T), "nt": int(self.nt), "ny_out": int(self.ny_out),
            "version": SOLVER_VERSION,
        }

    def summary_line(self) -> str:
        return (f"Ra={self.ra:g}, Pr={self.pr:g}, delta={self.delta:g}, {self.nx} Fourier x {self.ny} Chebyshev, "
                f"dt={self.dt:g}, t_skip={self.t_skip:g}, T={self.T:g}")

    def interface(self, x: np.ndarray) -> np.ndarray:
        """The initial interface height's departure eta(x)."""
        eta = self.amplitude * np.cos(2.0 * np.pi * self.mode * x)
        modes = np.arange(2, self.max_mode + 1)
        if self.multimode > 0.0 and len(modes):
            rng = np.random.default_rng(self.seed)
            c = rng.standard_normal(len(modes))
            phase = rng.uniform(0.0, 2.0 * np.pi, len(modes))
            c *= self.multimode / np.sqrt(np.mean(c**2))
            eta = eta + np.sum(c[:, None] * np.cos(2.0 * np.pi * modes[:, None] * x[None, :] + phase[:, None]), axis=0)
        return eta

    def initial_buoyancy(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """T0 on the tensor grid ``[len(x), len(y)]``."""
        return -np.tanh((y[None, :] - 1.0 - self.interface(x)[:, None]) / self.delta)

    def compute(self, progress: Optional[ProgressFn] = None) -> dict:
        return solve_rayleigh_taylor(self, progress=progress)


_CHECKS = {
    "ra": lambda v: _number("ra", v, 1.0, 1e10),
    "pr": lambda v: _number("pr", v, 1e-3, 1e3),
    "delta": lambda v: _number("delta", v, 0.01, 0.5),
    "mode": lambda v: _integer("mode", v, 1, 32),
    "amplitude": lambda v: _number("amplitude", v, 0.0, 0.2),
    "multimode": lambda v: _number("multimode", v, 0.0, 0.2),
    "max_mode": lambda v: _integer("max_mode", v, 1, 64),
    "seed": lambda v: _integer("seed", v, 0, 2**32 - 1),
    "nx": lambda v: _integer("nx", v, 8, 2048, even=True),
    "ny": lambda v: _integer("ny", v, 8, 1024),
    "dt": lambda v: _number("dt", v, 0.0, 0.1, low_open=True),
    "t_skip": lambda v: _number("t_skip", v, 0.0, 100.0),
    "T": lambda v: _number("T", v, 0.0, 100.0, low_open=True),
    "nt": lambda v: _integer("nt", v, 2, 10001),
    "ny_out": lambda v: _integer("ny_out", v, 2, 8193),
}
PARAMETERS = tuple(_CHECKS)


def get_rayleigh_taylor(**overrides) -> RayleighTaylorProblem:
    """Validated ``RayleighTaylorProblem`` (``DEFAULTS`` replaced by ``overrides``); ``ValueError``
    (one line) for a bad or unknown argument."""
    unknown = sorted(set(overrides) - set(PARAMETERS))
    if unknown:
        raise ValueError(f"unknown argument(s) {', '.join(unknown)} for {NAME!r}; allowed: {', '.join(PARAMETERS)}")
    values = {**DEFAULTS, **overrides}
    checked = {k: check(values[k]) for k, check in _CHECKS.items()}
    intervals = checked["t_skip"] * (checked["nt"] - 1) / checked["T"]
    if abs(intervals - round(intervals)) > 1e-9 * max(1.0, intervals):
        raise ValueError(f"t_skip must be a whole number of snapshot intervals T / (nt - 1) = "
                         f"{checked['T'] / (checked['nt'] - 1):g}; got t_skip={checked['t_skip']:g}")
    if 3 * checked["max_mode"] >= checked["nx"] or 3 * checked["mode"] >= checked["nx"]:
        raise ValueError(f"nx must be > 3 * max(mode, max_mode) (the 2/3 rule keeps modes m < nx / 3); "
                         f"got nx={checked['nx']}, mode={checked['mode']}, max_mode={checked['max_mode']}")
    return RayleighTaylorProblem(**checked)


# ----------------------------------------------------------------------------- the solver

def _apply(matrix: np.ndarray, f: np.ndarray) -> np.ndarray:
    """``matrix`` (real) applied along the last axis of the complex ``f`` (real and imaginary parts
    in one real product)."""
    rows = f.shape[0]
    out = np.concatenate([f.real, f.imag]) @ matrix.T
    return out[:rows] + 1j * out[rows:]


def _apply_per_mode(matrices: np.ndarray, f: np.ndarray) -> np.ndarray:
    """``matrices[k]`` (real) applied to the complex row ``f[k]``, for every Fourier mode k."""
    out = np.matmul(matrices, np.stack([f.real, f.imag], axis=-1))
    return out[..., 0] + 1j * out[..., 1]


class Solver:
    """The discrete operators of one resolution and step (``steps``, ``fields`` below)."""

    def __init__(self, problem: RayleighTaylorProblem, h: float):
        self.problem = problem
        self.h = h
        n = problem.ny
        self.xi, self.d = chebyshev(n)
        self.y = 1.0 + self.xi                               # y from 2 (top) down to 0 (bottom)
        self.d2 = self.d @ self.d
        self.kept = (problem.nx + 2) // 3                    # modes m < nx / 3 (2/3 rule)
        m = np.arange(self.kept)
        self.k = 2.0 * np.pi * m                             # angular wavenumbers
        self.ik = 1j * self.k[:, None]
        a1, a4 = problem.a1, problem.a4
        eye = np.eye(n + 1)
        inner = slice(1, n)
        # Coupled (w, psi) systems per mode m != 0: rows [0, n-1) the vorticity equation at the
        # interior nodes, (1 - c L) w = r; rows [n-1, 2n-2) Lap psi + w = 0 there; the last four
        # psi = psi_y = 0 at y = 2 and y = 0; c = h GAMMA a1.
        self.stage_vorticity = np.zeros((self.kept, 2 * n + 2, 2 * n + 2))
        # Neumann systems for the pressure per mode m != 0: (D^2 - k^2) p = R inside, p_y given on
        # the walls.
        self.pressure_neumann = np.zeros((self.kept, n + 1, n + 1))
        for j in range(1, self.kept):
            lap = self.d2 - self.k[j] ** 2 * eye
            a = np.zeros((2 * n + 2, 2 * n + 2))
            a[: n - 1, : n + 1] = (eye - h * GAMMA * a1 * lap)[inner]
            a[n - 1 : 2 * n - 2, : n + 1] = eye[inner]
            a[n - 1 : 2 * n - 2, n + 1 :] = lap[inner]
            a[2 * n - 2, n + 1 :] = eye[0]
            a[2 * n - 1, n + 1 :] = eye[n]
            a[2 * n, n + 1 :] = self.d[0]
            a[2 * n + 1, n + 1 :] = self.d[n]
            self.stage_vorticity[j] = np.linalg.inv(a)
            neumann = lap.copy()
            neumann[0], neumann[n] = self.d[0], self.d[n]
            self.pressure_neumann[j] = np.linalg.inv(neumann)
        # Dirichlet systems (interior nodes) for the mean flow U and the buoyancy theta, per mode.
        self.stage_mean = np.linalg.inv((eye - h * GAMMA * a1 * self.d2)[inner, inner])
        self.stage_theta = np.stack([
            np.linalg.inv((eye - h * GAMMA * a4 * (self.d2 - kk**2 * eye))[inner, inner]) for kk in self.k])
        self.antiderivative = antiderivative_matrix(n)
        self.quadrature = clenshaw_curtis_weights(n)
        self.t_static = problem.t_wall * (1.0 - self.y)      # linear between +t_wall (y=0), -t_wall (y=2)

    # --- transforms (axis 0: Fourier modes m < kept / x points, axis 1: Chebyshev nodes) ---
    def to_grid(self, f_hat: np.ndarray) -> np.ndarray:
        full = np.zeros((self.problem.nx // 2 + 1, f_hat.shape[1]), complex)
        full[: self.kept] = f_hat
        return np.fft.irfft(full, n=self.problem.nx, axis=0) * self.problem.nx

    def to_modes(self, f: np.ndarray) -> np.ndarray:
        return np.fft.rfft(f, axis=0)[: self.kept] / self.problem.nx

    def dy(self, f_hat: np.ndarray) -> np.ndarray:
        return _apply(self.d, f_hat)

    # --- the state: w_hat, psi_hat [kept, n+1] (mode 0 unused), U [n+1], theta_hat [kept, n+1] ---
    def velocity_hat(self, psi_hat, mean_u):
        u_hat = self.dy(psi_hat)
        u_hat[0] = mean_u
        v_hat = -self.ik * psi_hat
        v_hat[0] = 0.0
        return u_hat, v_hat

    def buoyancy_hat(self, theta_hat):
        b = theta_hat.copy()
        b[0] = b[0] + self.t_static
        return b

    def explicit_terms(self, state):
        """(G_w [kept, n+1], G_U [n+1], G_theta [kept, n+1]): the explicitly treated terms."""
        w_hat, psi_hat, mean_u, theta_hat = state
        u_hat, v_hat = self.velocity_hat(psi_hat, mean_u)
        w_full = w_hat.copy()
        w_full[0] = -(self.d @ mean_u)                       # the mean flow's vorticity -U_y
        b_hat = self.buoyancy_hat(theta_hat)
        u, v = self.to_grid(u_hat), self.to_grid(v_hat)
        w_x, w_y = self.to_grid(self.ik * w_full), self.to_grid(self.dy(w_full))
        b_x, b_y = self.to_grid(self.ik * b_hat), self.to_grid(self.dy(b_hat))
        g_w = -self.to_modes(u * w_x + v * w_y) + self.problem.a2 * self.ik * b_hat
        g_mean = -(self.d @ np.mean(u * v, axis=0))
        g_theta = -self.to_modes(u * b_x + v * b_y)
        return g_w, g_mean, g_theta

    def implicit_stage(self, rhs_w, rhs_mean, rhs_theta):
        """The stage's (w, psi, U, theta) from its right-hand sides at the interior nodes."""
        n = self.problem.ny
        b = np.zeros((self.kept, 2 * n + 2), complex)
        b[:, : n - 1] = rhs_w
        sol = _apply_per_mode(self.stage_vorticity, b)
        w_hat, psi_hat = sol[:, : n + 1], sol[:, n + 1 :]
        mean_u = np.zeros(n + 1)
        mean_u[1:n] = self.stage_mean @ rhs_mean
        theta_hat = np.zeros((self.kept, n + 1), complex)
        theta_hat[:, 1:n] = _apply_per_mode(self.stage_theta, rhs_theta)
        return w_hat, psi_hat, mean_u, theta_hat

    def step(self, state):
        """One ARS(4,4,3) step of length h."""
        inner = slice(1, self.problem.ny)
        w0, _, u0, th0 = state
        explicit = [self.explicit_terms(state)]
        diffusion = []   # h * (the implicit term) of stages 1.. at the interior nodes
        for i in range(4):
            rhs = [w0[:, inner].copy(), u0[inner].copy(), th0[:, inner].copy()]
            for j, a in enumerate(EXPLICIT[i]):
                for r, g in zip(rhs, explicit[j]):
                    r += self.h * a * (g[..., inner])
            for j, a in enumerate(IMPLICIT[i][1:-1], start=1):
                for r, dterm in zip(rhs, diffusion[j - 1]):
                    r += a / GAMMA * dterm
            new = self.implicit_stage(*rhs)
            # c * (implicit term) = stage value - its right-hand side (no explicit 2nd derivatives)
            w1, _, u1, th1 = new
            diffusion.append((w1[:, inner] - rhs[0], u1[inner] - rhs[1], th1[:, inner] - rhs[2]))
            if i < 3:
                explicit.append(self.explicit_terms(new))
        return new   # stiffly accurate: the last stage is the step

    # --- output ---
    def initial_state(self):
        p = self.problem
        n = p.ny
        x = np.arange(p.nx) / p.nx
        b = p.initial_buoyancy(x, self.y)
        theta_hat = self.to_modes(b - self.t_static[None, :])
        theta_hat[:, 0] = 0.0
        theta_hat[:, n] = 0.0
        zeros = np.zeros((self.kept, n + 1), complex)
        return zeros.copy(), zeros.copy(), np.zeros(n + 1), theta_hat

    def mode_amplitude(self, state, mode: int) -> float:
        """sqrt(int_0^2 |v_hat|^2 dy / 2) of Fourier mode ``mode`` (Clenshaw-Curtis quadrature)."""
        _, psi_hat, _, _ = state
        return float(np.sqrt(self.quadrature @ np.abs(self.k[mode] * psi_hat[mode]) ** 2 / 2.0))

    def fields(self, state) -> dict:
        """u, v, p, T on the solver grid ``[nx, n+1]`` (y descending from 2 to 0)."""
        p = self.problem
        n = p.ny
        w_hat, psi_hat, mean_u, theta_hat = state
        u_hat, v_hat = self.velocity_hat(psi_hat, mean_u)
        b_hat = self.buoyancy_hat(theta_hat)
        u, v = self.to_grid(u_hat), self.to_grid(v_hat)
        u_x, u_y = self.to_grid(self.ik * u_hat), self.to_grid(self.dy(u_hat))
        v_x, v_y = self.to_grid(self.ik * v_hat), self.to_grid(self.dy(v_hat))
        # Pressure Poisson equation (the divergence of the momentum equations, with continuity):
        #   Lap p = -(u_x^2 + 2 u_y v_x + v_y^2) + a2 T_y,
        # and on the walls (u = v = 0) the y-momentum equation: p_y = a1 v_yy + a2 T, where
        # v_yy = -i k psi_yy = i k w (psi_xx = 0 on a wall).
        b_y = self.dy(b_hat)
        source = -self.to_modes(u_x**2 + 2.0 * u_y * v_x + v_y**2) + p.a2 * b_y
        source[:, 0] = p.a1 * self.ik[:, 0] * w_hat[:, 0] + p.a2 * b_hat[:, 0]
        source[:, n] = p.a1 * self.ik[:, 0] * w_hat[:, n] + p.a2 * b_hat[:, n]
        p_hat = _apply_per_mode(self.pressure_neumann, source)
        mean_slope = p.a2 * b_hat[0].real - np.mean(u * v_x + v * v_y, axis=0)
        p_hat[0] = self.antiderivative @ mean_slope
        return {"u": u, "v": v, "p": self.to_grid(p_hat), "T": self.to_grid(b_hat)}


def to_output_grid(values: np.ndarray, interpolation: np.ndarray) -> np.ndarray:
    """``[nx, n+1]`` on the solver grid -> ``[nx + 1, ny_out]`` on the output grid."""
    out = values @ interpolation.T
    return np.concatenate([out, out[:1]], axis=0)


def solve_rayleigh_taylor(problem: RayleighTaylorProblem, progress: Optional[ProgressFn] = None) -> dict:
    per, skip, h = problem.steps()
    solver = Solver(problem, h)
    interpolation = barycentric_matrix(solver.xi, problem.y - 1.0)
    state = solver.initial_state()
    total = skip + per * (problem.nt - 1)
    history = np.zeros((total + 1, 2))
    history[0] = (0.0, solver.mode_amplitude(state, problem.mode))
    out = {k: np.zeros((problem.nt, problem.nx + 1, problem.ny_out)) for k in problem.FIELDS}
    start = time.perf_counter()
    report_every = max(1, total // 10)

    def record(index):
        fields = solver.fields(state)
        for k in problem.FIELDS:
            out[k][index] = to_output_grid(fields[k], interpolation)

    if skip == 0:
        record(0)
    for step in range(1, total + 1):
        state = solver.step(state)
        history[step] = (step * h, solver.mode_amplitude(state, problem.mode))
        if not np.isfinite(history[step, 1]):
            raise FloatingPointError(f"rayleigh_taylor: the solution blew up at t = {step * h:g} (dt too large?)")
        if step >= skip and (step - skip) % per == 0:
            record((step - skip) // per)
        if progress is not None and (step % report_every == 0 or step == total):
            progress(step, total, time.perf_counter() - start)
    out["p"] -= out["p"].mean(axis=(1, 2), keepdims=True)
    return {"t": problem.t, "x": problem.x, "y": problem.y, **out, "amplitude_history": history}


# ----------------------------------------------------------------------------- independent checks

def clenshaw_curtis_weights(n: int) -> np.ndarray:
    """Quadrature weights on the Chebyshev-Lobatto points ``cos(pi j / n)`` for ``[-1, 1]``
    (Trefethen, Spectral Methods in MATLAB, clencurt)."""
    theta = np.pi * np.arange(n + 1) / n
    w = np.zeros(n + 1)
    v = np.ones(n - 1)
    inner = slice(1, n)
    if n % 2 == 0:
        w[0] = w[n] = 1.0 / (n**2 - 1)
        for k in range(1, n // 2):
            v -= 2.0 * np.cos(2 * k * theta[inner]) / (4 * k**2 - 1)
        v -= np.cos(n * theta[inner]) / (n**2 - 1)
    else:
        w[0] = w[n] = 1.0 / n**2
        for k in range(1, (n - 1) // 2 + 1):
            v -= 2.0 * np.cos(2 * k * theta[inner]) / (4 * k**2 - 1)
    w[inner] = 2.0 * v / n
    return w


def base_sine_series(problem: RayleighTaylorProblem, terms: int, nodes: int = 1200) -> tuple:
    """(ell [terms], b [terms]): the wavenumbers n pi / 2 and the sine coefficients of T0 - T_s on
    [0, 2] (Gauss-Legendre quadrature on ``nodes`` points; 1200 resolve sin(n pi y / 2) up to n = 800)."""
    g, w = np.polynomial.legendre.leggauss(nodes)
    yq = 1.0 + g
    start = base_profile(yq, problem.delta) - problem.t_wall * (1.0 - yq)
    ell = np.pi * np.arange(1, terms + 1) / 2.0
    return ell, (np.sin(np.outer(ell, yq)) * start) @ w


def diffusing_base(problem: RayleighTaylorProblem, y, t: float, terms: int = 800, nodes: int = 1200) -> np.ndarray:
    """The unperturbed buoyancy at time t by the 1-D heat equation's sine series (independent of the
    solver): T = T_s(y) + sum_n b_n sin(n pi y / 2) exp(-a4 (n pi / 2)^2 t) (``base_sine_series``)."""
    y = np.asarray(y, dtype=np.float64)
    ell, b = base_sine_series(problem, terms, nodes)
    decay = b * np.exp(-problem.a4 * ell**2 * t)
    return problem.t_wall * (1.0 - y) + decay @ np.sin(np.outer(ell, y))


def linear_growth(problem: RayleighTaylorProblem, times: np.ndarray, n: int = 64, step: float = 1e-3) -> np.ndarray:
    """The linearised problem for the single mode ``problem.mode`` on the diffusing base state, by a
    path independent of the solver: the (v, T') form

        Lap v_t = a1 Lap^2 v + a2 (T')_xx,   T'_t = a4 Lap T' - v dTbar/dy,   v = v_y = T' = 0 on walls,

    (the base ``diffusing_base``), Chebyshev collocation on ``n + 1`` points with ``v = (1 - xi^2) q``
    (Trefethen's clamped basis, p38), exponential-midpoint steps (``scipy.linalg.expm``), from the
    single-mode part of the initial condition.  Returns the amplitude of v's mode at ``times``:
    ``sqrt(int_0^2 |v_hat|^2 dy / 2)``, the measure of ``amplitude_history``."""
    from scipy.linalg import expm

    xi, d = chebyshev(n)
    y = 1.0 + xi
    inner = slice(1, n)
    k = 2.0 * np.pi * problem.mode
    d2, d3, d4 = d @ d, d @ d @ d, d @ d @ d @ d
    s = np.diag(1.0 - xi**2)
    x = np.diag(xi)
    # derivatives of v = (1 - xi^2) q: v'' = s q'' - 4 x q' - 2 q, v'''' = s q'''' - 8 x q''' - 12 q''
    v0 = s
    v2 = s @ d2 - 4.0 * x @ d - 2.0 * np.eye(n + 1)
    v4 = s @ d4 - 8.0 * x @ d3 - 12.0 * d2
    restrict = lambda m: m[inner, inner]  # noqa: E731
    lap_v = restrict(v2 - k**2 * v0)
    lap2_v = restrict(v4 - 2.0 * k**2 * v2 + k**4 * v0)
    lap_t = restrict(d2 - k**2 * np.eye(n + 1))
    mass = np.linalg.inv(lap_v)
    a1, a2, a4 = problem.a1, problem.a2, problem.a4
    # dTbar/dy at the interior points: the derivative of diffusing_base's sine series (400 terms)
    ell, b = base_sine_series(problem, 400)
    cos_inner = np.cos(np.outer(ell, y[inner])) * ell[:, None]

    weight_v = np.diag(v0)[inner]
    top = np.concatenate([a1 * mass @ lap2_v, -a2 * k**2 * mass], axis=1)

    def slope(t):
        return -problem.t_wall + (b * np.exp(-a4 * ell**2 * t)) @ cos_inner

    def jacobian(t):
        bottom = np.concatenate([-np.diag(weight_v * slope(t)), a4 * lap_t], axis=1)
        return np.concatenate([top, bottom], axis=0)

    theta0 = 0.5 * problem.amplitude / problem.delta / np.cosh((y[inner] - 1.0) / problem.delta) ** 2
    state0 = np.concatenate([np.zeros(n - 1), theta0])
    # Exponential midpoint rule (second-order Magnus): state(t + h) = expm(h J(t + h/2)) state(t);
    # J changes on the base state's diffusion time (delta^2 / a4), so h = 1e-3 is far below the
    # tolerance of the comparison (step halving changes the result by < 1e-8 relative).
    times = np.asarray(times, dtype=np.float64)
    out = np.zeros((2 * n - 2, len(times)))
    state, now = state0, 0.0
    for i, target in enumerate(times):
        while now < target - 1e-12:
            h = min(step, target - now)
            state = expm(h * jacobian(now + 0.5 * h)) @ state
            now += h
        out[:, i] = state
    weights = clenshaw_curtis_weights(n)
    v = np.zeros((n + 1, len(times)))
    v[inner] = weight_v[:, None] * out[: n - 1]
    return np.sqrt(weights @ v**2 / 2.0)


def describe_rayleigh_taylor(problem: RayleighTaylorProblem, cache_file=None, checksum: Optional[str] = None) -> dict:
    """Provenance dict of a Rayleigh-Taylor reference (JSON-serialisable)."""
    per, skip, h = problem.steps()
    return {
        "name": problem.name,
        "equation": EQUATION,
        "parameters": {"ra": float(problem.ra), "pr": float(problem.pr), "a1": problem.a1, "a2": problem.a2,
                       "a4": problem.a4, "delta": float(problem.delta), "t_skip": float(problem.t_skip),
                       "T": float(problem.T), "nt": int(problem.nt)},
        "initial_condition": (f"T0 = -tanh((y - 1 - eta(x)) / {problem.delta:g}), eta = {problem.amplitude:g} "
                              f"cos(2 pi {problem.mode} x) + seeded multimode (rms {problem.multimode:g}, modes 2..{problem.max_mode}, "
                              f"seed {problem.seed}), at rest; t = 0 is t_skip = {problem.t_skip:g} after the start"),
        "domain": [0.0, 1.0, 0.0, 2.0],
        "solver": ("vorticity-streamfunction, Fourier (2/3 rule) in x, Chebyshev-Lobatto collocation in y with a "
                   "coupled (w, psi) solve per mode, IMEX ARS(4,4,3) (diffusion implicit), float64 numpy; "
                   "pressure from its Poisson equation with the momentum equations' wall conditions"),
        "version": SOLVER_VERSION,
        "resolution": {"nx": int(problem.nx), "ny": int(problem.ny), "retained_modes": "m < nx/3", "dt": h,
                       "steps_per_snapshot": per, "skipped_steps": skip},
        "dt": h,
        "grid": {"nt": int(problem.nt), "nx": int(problem.nx) + 1, "ny": int(problem.ny_out),
                 "x": "linspace(0, 1, nx + 1)", "y": "linspace(0, 2, ny_out)", "t": "linspace(0, T, nt)",
                 "shapes": {k: list(v) for k, v in problem.shapes().items()}},
        "accuracy": {"measure": "see MEASURED", "value": MEASURED.get("refinement")},
        "cache_file": None if cache_file is None else str(cache_file),
        "checksum": checksum,
    }
