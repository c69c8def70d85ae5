"""Kolmogorov flow: pseudo-spectral reference for forced 2-D incompressible Navier-Stokes (JAX).

Problem
-------
Vorticity form on ``(x, y) in [0, 1]^2``, periodic in ``x`` and ``y``::

    w_t + u w_x + v w_y = nu Lap w + curl f,   w = v_x - u_y,   nu = 1 / Re  (Re = 1e4 by default),
    f = (2 sin(4 pi y), 0),   curl f = d_x f_y - d_y f_x = -8 pi cos(4 pi y),

velocity from the streamfunction (``Lap psi = -w``, ``u = psi_y``, ``v = -psi_x``) and zero-mean
pressure from ``Lap p = -div(u . grad u) + div f`` (``div f = 0``).  The laminar state is
``u = 2 / (nu (4 pi)^2) sin(4 pi y)``, ``v = 0`` (amplitude 127 at Re = 1e4).

Discretisation
--------------
Fourier pseudo-spectral on the ``n x n`` grid ``x_j = j / n`` (axis 0 = x, axis 1 = y;
``jnp.fft.rfft2`` / ``irfft2``).  2/3 rule: only the modes ``|m_x|, |m_y| < n / 3`` are kept and
the products are formed on the ``n`` grid and truncated, which removes all aliasing of the
quadratic term (without forcing and viscosity the truncated system conserves energy and
enstrophy exactly).  ETDRK4 (Cox-Matthews in the form of Kassam and Trefethen 2005) on the
diagonal ``L = -nu |k|^2`` with the contour-integral coefficients of
``spectral.etdrk4_coefficients``; ``N = -u . grad w + curl f`` (constant forcing is integrated
exactly).  ``lax.scan`` runs the steps between two snapshots (the spin-up: 1000 steps) per host
call.  Everything runs in float64 inside ``float64_solver()``, on the CPU unless
``PINNRUN_REFERENCE_DEVICE=gpu`` (the thread-local context managers ``jax.enable_x64`` and
``jax.default_device``: the caller's settings are left alone); the
entry points (``solve_kolmogorov``, ``spin_up``, ``refinement_change``, ``perturbation_growth``)
enter it themselves, the building blocks (``make_grid``, ``make_stepper``, ``advance``,
``snapshots``, ``physical_fields``) expect to be called inside it.

Reference (``get_kolmogorov(**overrides)``, ``DEFAULTS``; ``QUICK`` = the quick budget's overrides)
---------
1. Spin-up: from a Gaussian random vorticity (``seed``, spectrum peak ``ic_peak``, energy
   ``ic_energy``; ``random_vorticity_hat``) over ``t_spinup`` on ``n_spinup^2`` with steps
   ``<= dt_spinup``; energy and enstrophy after every step are kept.  Checkpoint:
   ``problem.spinup_file`` in ``checkpoint_dir`` (default ``<default_cache_dir()>/kolmogorov-spinup``),
   rewritten every ``CHECKPOINT_SECONDS`` (60 s) and at the end; an interrupted generation resumes
   from it (bitwise the same result) and every horizon with the same spin-up settings reuses it.
2. Transfer to ``n`` by zero padding (the modes above ``n_spinup / 3`` start at zero).
3. Horizon: ``nt`` snapshots ``t = linspace(0, T, nt)``, ``t = 0`` at the end of the spin-up, steps
   the largest ``h <= dt`` that divides ``T / (nt - 1)``.
Output: ``t [nt]``, ``x = y = linspace(0, 1, n + 1)`` (the solver grid plus the repeated right end,
so a snapshot is the full solver state), ``u, v, w, p [nt, n + 1, n + 1]`` with
``u[i, j, k] = u(t_i, x_j, y_k)``, and ``nu`` of shape ``(1,)`` (``cache.py`` stores arrays of
ndim >= 1).  The recipe's entry holds 26 x 4 x 769^2 float64 (0.5 GB), the quick one 43 MB.

Measured (2-core CPU; Re 1e4, seed 0, ic_peak 4, ic_energy 0.5)
--------
* No statistically stationary state is reached at affordable cost.  Without drag the forcing
  keeps feeding the flow: on 64^2 (dt 1e-4, 216 s to t = 40) E = 0.5, 1.3, 3.1, 21, 66, 122 at
  t = 0, 5, 10, 20, 30, 40 (Z = 363, 96, 295, 2649, 8948, 14834), still growing by ~6 per time
  unit at t = 40 with no sign of saturation.  The criterion below is first met at t ~ 30 (E and Z
  block changes 3.8 %, 3.8 %; 1.6 %, 1.9 % at t = 40), only because the turnover time shrinks
  (0.087 at t = 30); the energy still grows 9 % per time unit there.  From those states the
  vorticity spectrum on 256^2 stays flat up to its cutoff: resolving them needs n >~ 1024-2048
  and dt <~ 3e-5, hours to days on 2 cores.
* Stationarity criterion (``stationarity``): turnover time tau = L / U_rms (L = 1,
  U_rms = sqrt(2 E)); the means of E and Z over the last 5 tau agree within 5 % with the block
  before.  The default spin-up (t_spinup = 5 on 128^2, dt 2e-4) fails it: E = 1.55, Z = 118,
  U_rms = 1.76, tau = 0.57 at its end; block changes 37 % (E) and 70 % (Z) over blocks of 4.4 tau
  (half the spin-up), the energy growing ~0.19 per time unit (10 % per turnover).  t = 5 is past
  the random start's enstrophy decay (Z 363 -> 114 at t = 2) while the flow is still resolvable;
  the horizon is a forced, developing turbulent flow, not a stationary one.
* Error growth (``perturbation_growth``, vorticity, eps = 1e-6 at t = 0, modes <= 8): on 128^2
  (under-resolved, indicative) it reaches 1e-3, 1e-2, 1e-1 at t = 4.6, 5.9, 7.7 (the
  predictability time, ~13 tau); on 256^2 it grows x3 by t = 0.5 and x10 by t = 2.
* Horizon: T = 2 (3.5 tau, well within the predictability time); the quick budget's first two of
  25 windows: T = 0.16.
* Resolution (``refinement_change``: n -> 2n, dt -> dt/2 from the same t = 0 snapshot, relative L2
  of w over all snapshots t > 0).  The change rises while the cascade fills the modes the spin-up
  lacked (t < ~0.1), then levels off at ~3.5e-3 (256), ~2e-4 (384), ~1e-5 (512, extrapolated):
    - quick (T = 0.16, nt 9): 256 -> 2.9e-3 (fails 1e-3), 384 (dt 2e-4) -> 1.4e-4 (passes);
    - recipe (T = 2): 512 -> 7.7e-6 at t = 0.12, still rising towards ~1e-5 (borderline with the
      error growth x3-10 over T); 768 (dt 1e-4) extrapolated <~ 1e-6 (not run: 768 and 1536 over
      T = 2 take ~1.2 h and ~10 h here).  The time step is set by stability (CFL ~1 at the start),
      its error is <~ 1e-7 (512, dt 2e-4 vs 1e-4 over 0.02).
* Generation (2-core CPU, shared with another job): spin-up 60-75 s (25000 steps of 128^2); the
  quick reference 90-120 s in all the first time (384^2, 800 steps of ~57 ms; 43 MB entry); the
  recipe ~73 min (768^2, 20000 steps of ~219 ms; extrapolated from the step time, not run).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import secrets
import time
import zipfile
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Callable, Dict, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np

from .cache import default_cache_dir
from .checks import integer as _integer
from .checks import number as _number
from .spectral import etdrk4_coefficients

__all__ = [
    "NAME",
    "SOLVER_VERSION",
    "DEFAULTS",
    "QUICK",
    "KolmogorovProblem",
    "get_kolmogorov",
    "describe_kolmogorov",
    "solve_kolmogorov",
    "spin_up",
    "stationarity",
    "refinement_change",
    "perturbation_growth",
    "threshold_times",
    "float64_solver",
    "solver_device",
    "StepProgress",
    "MEASURED",
    "ACCURACY_MEASURE",
]

NAME = "kolmogorov"
SOLVER_VERSION = "kolmogorov-fourier-etdrk4-1"
EQUATION = ("w_t + u w_x + v w_y = nu Lap w + curl f, w = v_x - u_y, Lap psi = -w, u = psi_y, v = -psi_x, "
            "nu = 1/Re, on [0,1]^2 periodic; Lap p = -div(u.grad u) + div f, mean p = 0")
FORCING = "f = (2 sin(4 pi y), 0), curl f = -8 pi cos(4 pi y)"
# The recipe's reference; QUICK: the quick budget's (the first 2 of 25 windows, coarser).
DEFAULTS = {
    "re": 1e4, "seed": 0, "ic_peak": 4.0, "ic_energy": 0.5,
    "n_spinup": 128, "dt_spinup": 2e-4, "t_spinup": 5.0,
    "n": 768, "dt": 1e-4, "T": 2.0, "nt": 26,
}
QUICK = {"n": 384, "dt": 2e-4, "T": 0.16, "nt": 9}

ACCURACY_MEASURE = ("relative L2 change of w under refinement (modes x2, dt/2) from the same t = 0 snapshot, "
                    "all snapshots t > 0, all grid points")
# Measured once on this code (module docstring); "value" None where only estimated.
MEASURED = {
    "recipe": {
        "accuracy": {"value": None, "estimate": 1e-6,
                     "note": "extrapolated from 256 (3.5e-3), 384 (2e-4), 512 (~1e-5) plateaus; not run"},
        "error_growth": {"eps": 1e-6, "n": 128, "t_reaching": {"1e-3": 4.6, "1e-2": 5.9, "1e-1": 7.7},
                         "turnover_time": 0.57},
    },
    "quick": {
        "accuracy": {"value": 1.36e-4},
        "error_growth": {"eps": 1e-6, "n": 128, "t_reaching": {"1e-3": 4.6, "1e-2": 5.9, "1e-1": 7.7},
                         "turnover_time": 0.57},
    },
}

ProgressFn = Callable[[int, int, float], None]


# ----------------------------------------------------------------------------- float64, on a chosen device

DEVICE_VARIABLE = "PINNRUN_REFERENCE_DEVICE"
DEVICE_CHOICES = ("cpu", "gpu")


def solver_device() -> jax.Device:
    """The device the solver runs on: the CPU unless ``PINNRUN_REFERENCE_DEVICE=gpu`` (then JAX's
    first GPU).  The result does not depend on it beyond rounding (cuFFT's float64 transforms
    against the CPU's), so it is no part of the cache key; the provenance's solver line names the option."""
    choice = os.environ.get(DEVICE_VARIABLE, "cpu").strip().lower() or "cpu"
    if choice not in DEVICE_CHOICES:
        raise ValueError(f"{DEVICE_VARIABLE}={choice!r} is not allowed; allowed: {', '.join(DEVICE_CHOICES)}")
    try:
        return jax.devices(choice)[0]
    except RuntimeError as error:
        raise ValueError(f"{DEVICE_VARIABLE}={choice!r}: JAX has no {choice} device here ({error})") from None


@contextlib.contextmanager
def float64_solver():
    """Run the enclosed JAX code in float64 on ``solver_device()``; the caller's settings are
    restored after (``jax.enable_x64`` and ``jax.default_device`` are thread-local context managers)."""
    with jax.enable_x64(True), jax.default_device(solver_device()):
        yield


# ----------------------------------------------------------------------------- spectral grid

class Grid(NamedTuple):
    """Wavenumbers of ``rfft2`` on the ``n x n`` grid ``x_j = j / n`` (axis 0 = x, axis 1 = y);
    JAX arrays (``make_grid``) or numpy arrays (``numpy_grid``)."""

    kx: jax.Array        # [n, 1]      angular wavenumbers 2 pi m
    ky: jax.Array        # [1, n/2+1]
    k2: jax.Array        # [n, n/2+1]  |k|^2
    inv_k2: jax.Array    # 1 / |k|^2, 0 at k = 0
    keep: jax.Array      # 2/3 rule: 1.0 where |m_x| < n/3 and |m_y| < n/3, else 0.0


def mode_numbers(n: int) -> tuple:
    """Integer mode numbers ``(m_x [n, 1], m_y [1, n/2+1])`` of ``rfft2`` of an ``n x n`` grid."""
    mx = np.fft.fftfreq(n, 1.0 / n)[:, None]
    my = np.arange(n // 2 + 1, dtype=np.float64)[None, :]
    return mx, my


def numpy_grid(n: int) -> Grid:
    """``Grid`` of numpy arrays.  The 2/3 rule: a product of two fields with modes ``|m| < n/3``
    has modes ``|m| < 2n/3``; those beyond ``n/2`` alias onto ``|m| > n/3``, which are dropped."""
    mx, my = mode_numbers(n)
    kx, ky = 2.0 * np.pi * mx, 2.0 * np.pi * my
    k2 = kx**2 + ky**2
    inv_k2 = np.divide(1.0, k2, out=np.zeros_like(k2), where=k2 > 0.0)
    keep = ((3.0 * np.abs(mx) < n) & (3.0 * my < n)).astype(np.float64)
    return Grid(kx, ky, k2, inv_k2, keep)


def make_grid(n: int) -> Grid:
    """``Grid`` of JAX arrays (call inside ``float64_solver()``)."""
    return Grid(*(jnp.asarray(a) for a in numpy_grid(n)))


def forcing_curl_hat(n: int) -> jax.Array:
    """``rfft2`` of ``curl f = -8 pi cos(4 pi y)`` (``f = (2 sin(4 pi y), 0)``) on the ``n`` grid."""
    y = np.arange(n) / n
    values = np.broadcast_to(-8.0 * np.pi * np.cos(4.0 * np.pi * y)[None, :], (n, n))
    return jnp.asarray(np.fft.rfft2(values))


def to_grid(f_hat: jax.Array) -> jax.Array:
    n = f_hat.shape[-2]
    return jnp.fft.irfft2(f_hat, s=(n, n))


def velocity_hat(w_hat: jax.Array, grid: Grid) -> tuple:
    """``(u_hat, v_hat)`` from ``Lap psi = -w``, ``u = psi_y``, ``v = -psi_x``."""
    psi_hat = w_hat * grid.inv_k2
    return 1j * grid.ky * psi_hat, -1j * grid.kx * psi_hat


def advection_hat(w_hat: jax.Array, grid: Grid) -> jax.Array:
    """Dealiased ``(u . grad w)^`` (products on the ``n`` grid, modes beyond ``n/3`` dropped)."""
    u_hat, v_hat = velocity_hat(w_hat, grid)
    u, v, w_x, w_y = to_grid(jnp.stack([u_hat, v_hat, 1j * grid.kx * w_hat, 1j * grid.ky * w_hat]))
    return grid.keep * jnp.fft.rfft2(u * w_x + v * w_y)


def nonlinear_hat(w_hat: jax.Array, grid: Grid, forcing_hat: jax.Array) -> jax.Array:
    """``N(w) = -u . grad w + curl f``: everything but the viscous term ``nu Lap w``."""
    return forcing_hat - advection_hat(w_hat, grid)


def pressure_hat(w_hat: jax.Array, grid: Grid) -> jax.Array:
    """Zero-mean pressure of ``Lap p = -div(u . grad u) + div f = -d_i d_j (u_i u_j)`` (``div u =
    0``, ``div f = 0``): ``p^ = -k_i k_j (u_i u_j)^ / |k|^2``, the products dealiased."""
    u_hat, v_hat = velocity_hat(w_hat, grid)
    u, v = to_grid(jnp.stack([u_hat, v_hat]))
    uu, uv, vv = (grid.keep * jnp.fft.rfft2(a) for a in (u * u, u * v, v * v))
    return -(grid.kx**2 * uu + 2.0 * grid.kx * grid.ky * uv + grid.ky**2 * vv) * grid.inv_k2


# ----------------------------------------------------------------------------- ETDRK4

class Stepper(NamedTuple):
    """ETDRK4 coefficients of ``h L``, ``L = -nu |k|^2`` (Kassam and Trefethen 2005), and the
    parts of ``N``."""

    e: jax.Array
    e2: jax.Array
    q: jax.Array
    f1: jax.Array
    f2: jax.Array
    f3: jax.Array
    grid: Grid
    forcing_hat: jax.Array


def make_stepper(n: int, nu: float, h: float, forcing: bool = True) -> Stepper:
    """The stepper of step ``h``; contour-integral coefficients, once per distinct ``|k|^2``."""
    grid = make_grid(n)
    k2 = np.asarray(grid.k2)
    values, inverse = np.unique(k2.ravel(), return_inverse=True)
    coefficients = etdrk4_coefficients(-nu * values, h)
    e, e2, q, f1, f2, f3 = (jnp.asarray(c[inverse].reshape(k2.shape)) for c in coefficients)
    forcing_hat = forcing_curl_hat(n) if forcing else jnp.zeros(k2.shape, dtype=jnp.complex128)
    return Stepper(e, e2, q, f1, f2, f3, grid, forcing_hat)


def etdrk4_step(w_hat: jax.Array, s: Stepper) -> jax.Array:
    """One ETDRK4 step of ``w_t = L w + N(w)``::

        a = E2 w + Q N(w),  b = E2 w + Q N(a),  c = E2 a + Q (2 N(b) - N(w)),
        w <- E w + f1 N(w) + 2 f2 (N(a) + N(b)) + f3 N(c).
    """
    def nonlinear(z):
        return nonlinear_hat(z, s.grid, s.forcing_hat)

    nw = nonlinear(w_hat)
    a = s.e2 * w_hat + s.q * nw
    na = nonlinear(a)
    b = s.e2 * w_hat + s.q * na
    nb = nonlinear(b)
    c = s.e2 * a + s.q * (2.0 * nb - nw)
    nc = nonlinear(c)
    return s.e * w_hat + s.f1 * nw + 2.0 * s.f2 * (na + nb) + s.f3 * nc


@partial(jax.jit, static_argnames="steps")
def advance(w_hat: jax.Array, s: Stepper, steps: int) -> jax.Array:
    """``steps`` ETDRK4 steps (one ``lax.scan``)."""
    return jax.lax.scan(lambda z, _: (etdrk4_step(z, s), None), w_hat, None, length=steps)[0]


def energy_enstrophy(w_hat, grid: Grid) -> tuple:
    """Kinetic energy ``<|u|^2> / 2`` and enstrophy ``<w^2> / 2`` (domain means) by Parseval,
    ``<f^2> = sum_k |f^_k|^2 / n^4`` (rfft half plane: ``m_y > 0`` counted twice); numpy or JAX."""
    n = w_hat.shape[-2]
    w2 = (1.0 + (grid.ky > 0.0)) / float(n) ** 4 * abs(w_hat) ** 2
    return 0.5 * (w2 * grid.inv_k2).sum(), 0.5 * w2.sum()


@partial(jax.jit, static_argnames="steps")
def advance_recording(w_hat: jax.Array, s: Stepper, steps: int) -> tuple:
    """``steps`` steps; also ``(energy, enstrophy)`` after each step (arrays ``[steps]``)."""
    def step(z, _):
        z = etdrk4_step(z, s)
        return z, energy_enstrophy(z, s.grid)

    w_hat, (energy, enstrophy) = jax.lax.scan(step, w_hat, None, length=steps)
    return w_hat, energy, enstrophy


# ----------------------------------------------------------------------------- initial field

RANDOM_GRID = 64     # the random start is drawn on a 64 x 64 grid, whatever the resolution


def resample_hat(w_hat, n: int) -> np.ndarray:
    """Coefficients of the same band-limited field on the ``n x n`` grid (zero padding or
    truncation; ``rfft2`` coefficients scale with the number of points), restricted to the 2/3-rule
    modes of ``n``."""
    w_hat = np.asarray(w_hat)
    m = w_hat.shape[-2]
    rows, cols = min(m, n) // 2, min(m, n) // 2
    out = np.zeros((n, n // 2 + 1), dtype=np.complex128)
    out[:rows, :cols] = w_hat[:rows, :cols]
    out[n - rows + 1:, :cols] = w_hat[m - rows + 1:, :cols]
    return out * (n / m) ** 2 * numpy_grid(n).keep


def random_vorticity_hat(n: int, seed: int, peak: float, energy: float) -> np.ndarray:
    """``rfft2`` (on the ``n`` grid) of a Gaussian random vorticity with kinetic energy ``energy``
    and energy spectrum ``E(k) ~ (k / k0)^4 exp(-2 (k / k0)^2)``, ``k0 = 2 pi peak``.

    White noise on a 64 x 64 grid (``numpy.random.default_rng(seed).standard_normal``) filtered
    by ``|w^_k| ~ sqrt(k E(k))`` (on a ring ``E(k) = pi k |u^_k|^2`` and ``|w^_k| = k |u^_k|``),
    projected on the ``n`` grid's 2/3-rule modes and scaled to the energy.
    """
    noise_hat = np.fft.rfft2(np.random.default_rng(seed).standard_normal((RANDOM_GRID, RANDOM_GRID)))
    mx, my = mode_numbers(RANDOM_GRID)
    k = np.hypot(mx, my) / peak
    w_hat = resample_hat(noise_hat * np.sqrt(k**5 * np.exp(-2.0 * k**2)), n)
    e, _ = energy_enstrophy(w_hat, numpy_grid(n))
    return w_hat * math.sqrt(energy / e)


# ----------------------------------------------------------------------------- output fields

@jax.jit
def physical_fields(w_hat: jax.Array, grid: Grid) -> jax.Array:
    """``[u, v, w, p]`` on the ``n x n`` grid."""
    u_hat, v_hat = velocity_hat(w_hat, grid)
    return to_grid(jnp.stack([u_hat, v_hat, w_hat, pressure_hat(w_hat, grid)]))


def with_right_ends(values: np.ndarray) -> np.ndarray:
    """Periodic grid values ``[..., n, n]`` on ``linspace(0, 1, n + 1)`` in both axes."""
    pad = [(0, 0)] * (values.ndim - 2) + [(0, 1), (0, 1)]
    return np.pad(values, pad, mode="wrap")


class StepProgress:
    """Calls ``progress(step, total, seconds)`` at every tenth of the steps and at the end."""

    def __init__(self, callback: Optional[ProgressFn], total: int, done: int = 0):
        self.callback, self.total, self.done = callback, max(int(total), 1), int(done)
        self.start = time.perf_counter()

    def add(self, steps: int) -> None:
        before = 10 * self.done // self.total
        self.done += int(steps)
        if self.callback is not None and (10 * self.done // self.total > before or self.done >= self.total):
            self.callback(self.done, self.total, time.perf_counter() - self.start)


# ----------------------------------------------------------------------------- the problem

@dataclass(frozen=True)
class KolmogorovProblem:
    """The Kolmogorov-flow reference: spin-up, then ``nt`` snapshots over ``[0, T]`` (module
    docstring).  ``checkpoint_dir`` (not part of the cache key) holds the spin-up checkpoint."""

    re: float = DEFAULTS["re"]
    seed: int = DEFAULTS["seed"]
    ic_peak: float = DEFAULTS["ic_peak"]
    ic_energy: float = DEFAULTS["ic_energy"]
    n_spinup: int = DEFAULTS["n_spinup"]
    dt_spinup: float = DEFAULTS["dt_spinup"]
    t_spinup: float = DEFAULTS["t_spinup"]
    n: int = DEFAULTS["n"]
    dt: float = DEFAULTS["dt"]
    T: float = DEFAULTS["T"]
    nt: int = DEFAULTS["nt"]
    checkpoint_dir: Optional[str] = field(default=None, compare=False)

    name = NAME
    ARRAYS = ("t", "x", "y", "u", "v", "w", "p", "nu")
    FIELDS = ("u", "v", "w", "p")

    @property
    def nu(self) -> float:
        return 1.0 / self.re

    @property
    def t(self) -> np.ndarray:
        return np.linspace(0.0, self.T, self.nt)

    @property
    def x(self) -> np.ndarray:
        return np.linspace(0.0, 1.0, self.n + 1)

    @property
    def y(self) -> np.ndarray:
        return self.x

    def grid(self) -> Dict[str, np.ndarray]:
        return {"t": self.t, "x": self.x, "y": self.y}

    def shapes(self) -> Dict[str, tuple]:
        fields_shape = (self.nt, self.n + 1, self.n + 1)
        return {"t": (self.nt,), "x": (self.n + 1,), "y": (self.n + 1,), "nu": (1,),
                **{k: fields_shape for k in self.FIELDS}}

    def spinup_key_data(self) -> dict:
        """Everything that determines the spin-up (hashed into its checkpoint's name)."""
        return {
            "name": f"{NAME}-spinup",
            "re": float(self.re),
            "seed": int(self.seed),
            "ic_peak": float(self.ic_peak),
            "ic_energy": float(self.ic_energy),
            "random_grid": RANDOM_GRID,
            "n_spinup": int(self.n_spinup),
            "dt_spinup": float(self.dt_spinup),
            "t_spinup": float(self.t_spinup),
            "version": SOLVER_VERSION,
        }

    def key_data(self) -> dict:
        """Everything that determines the generated numbers (hashed into the cache key)."""
        return {
            **self.spinup_key_data(),
            "name": self.name,
            "kind": "forced_navier_stokes_2d",
            "forcing": FORCING,
            "domain": [0.0, 1.0, 0.0, 1.0],
            "n": int(self.n),
            "dt": float(self.dt),
            "T": float(self.T),
            "nt": int(self.nt),
        }

    @property
    def spinup_file(self) -> Path:
        """The spin-up checkpoint: ``checkpoint_dir``, else ``<default cache folder>/kolmogorov-spinup``."""
        folder = Path(self.checkpoint_dir).expanduser() if self.checkpoint_dir is not None else (
            default_cache_dir() / f"{NAME}-spinup")
        blob = json.dumps(self.spinup_key_data(), sort_keys=True, separators=(",", ":"))
        return folder / f"{NAME}-spinup-{hashlib.sha256(blob.encode()).hexdigest()[:20]}.npz"

    def summary_line(self) -> str:
        """How it is solved, in a few words (``pinnrun-reference``'s report)."""
        return (f"Re={self.re:g}, spin-up {self.n_spinup}^2 to t={self.t_spinup:g}, then {self.n}^2 modes, "
                f"dt={self.dt:g}, T={self.T:g}")

    def compute(self, progress: Optional[ProgressFn] = None) -> dict:
        return solve_kolmogorov(self, progress=progress)


# ----------------------------------------------------------------------------- parameters

_CHECKS = {
    "re": lambda v: _number("re", v, 1.0, 1e5),
    "seed": lambda v: _integer("seed", v, 0, 2**32 - 1),
    "ic_peak": lambda v: _number("ic_peak", v, 1.0, 8.0),
    "ic_energy": lambda v: _number("ic_energy", v, 0.0, 100.0, low_open=True),
    "n_spinup": lambda v: _integer("n_spinup", v, 16, 1024, even=True),
    "dt_spinup": lambda v: _number("dt_spinup", v, 0.0, 0.1, low_open=True),
    "t_spinup": lambda v: _number("t_spinup", v, 0.0, 1000.0),
    "n": lambda v: _integer("n", v, 16, 2048, even=True),
    "dt": lambda v: _number("dt", v, 0.0, 0.1, low_open=True),
    "T": lambda v: _number("T", v, 0.0, 100.0, low_open=True),
    "nt": lambda v: _integer("nt", v, 2, 10001),
}
PARAMETERS = tuple(_CHECKS) + ("checkpoint_dir",)


def get_kolmogorov(**overrides) -> KolmogorovProblem:
    """Validated ``KolmogorovProblem`` (``DEFAULTS`` replaced by ``overrides``; ``QUICK`` holds the
    quick budget's overrides); ``ValueError`` (one line) for a bad or unknown argument."""
    unknown = sorted(set(overrides) - set(PARAMETERS))
    if unknown:
        raise ValueError(f"unknown argument(s) {', '.join(unknown)} for {NAME!r}; allowed: {', '.join(PARAMETERS)}")
    values = {**DEFAULTS, **{k: v for k, v in overrides.items() if k != "checkpoint_dir"}}
    checked = {k: check(values[k]) for k, check in _CHECKS.items()}
    if checked["n_spinup"] > checked["n"]:
        raise ValueError(f"n_spinup must be <= n (the spin-up is transferred by zero padding); "
                         f"got n_spinup={checked['n_spinup']}, n={checked['n']}")
    folder = overrides.get("checkpoint_dir")
    if folder is not None and not isinstance(folder, (str, os.PathLike)):
        raise ValueError(f"checkpoint_dir must be a folder path or None; got {folder!r}")
    return KolmogorovProblem(**checked, checkpoint_dir=None if folder is None else os.fspath(folder))


# ----------------------------------------------------------------------------- spin-up

class SpinUp(NamedTuple):
    """Spin-up state after ``step`` steps of ``h`` on the ``n_spinup`` grid, with the energy and
    enstrophy after every step (index 0: the random start)."""

    w_hat: np.ndarray
    step: int
    h: float
    energy: np.ndarray
    enstrophy: np.ndarray

    @property
    def time(self) -> np.ndarray:
        return self.h * np.arange(self.energy.size)


def spinup_steps(problem: KolmogorovProblem) -> tuple:
    """``(steps, h)``: the largest ``h <= dt_spinup`` that divides ``t_spinup``."""
    steps = math.ceil(problem.t_spinup / problem.dt_spinup - 1e-9)
    return steps, (problem.t_spinup / steps if steps else 0.0)


def read_spinup(problem: KolmogorovProblem) -> Optional[SpinUp]:
    """The spin-up checkpoint of ``problem``, or ``None`` when it is missing or does not match."""
    path = problem.spinup_file
    try:
        with np.load(path, allow_pickle=False) as npz:
            if json.loads(str(npz["meta"][()])) != json.loads(json.dumps(problem.spinup_key_data())):
                return None
            return SpinUp(npz["w_real"] + 1j * npz["w_imag"], int(npz["step"]), float(npz["h"]),
                          np.array(npz["energy"]), np.array(npz["enstrophy"]))
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None


def write_spinup(problem: KolmogorovProblem, record: SpinUp) -> Path:
    """Atomically write the spin-up checkpoint (temporary file in the same folder + ``os.replace``)."""
    path = problem.spinup_file
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.stem}.{os.getpid()}.{secrets.token_hex(6)}.tmp"
    try:
        with open(tmp, "xb") as fh:
            np.savez(fh, w_real=record.w_hat.real, w_imag=record.w_hat.imag, step=record.step,
                     h=record.h, energy=record.energy, enstrophy=record.enstrophy,
                     meta=np.array(json.dumps(problem.spinup_key_data(), sort_keys=True)))
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def _random_start(problem: KolmogorovProblem, h: float) -> SpinUp:
    w_hat = random_vorticity_hat(problem.n_spinup, problem.seed, problem.ic_peak, problem.ic_energy)
    e, z = energy_enstrophy(w_hat, numpy_grid(problem.n_spinup))
    return SpinUp(w_hat, 0, h, np.array([e]), np.array([z]))


SPINUP_CHUNK = 1000          # steps per host call of the spin-up
CHECKPOINT_SECONDS = 60.0    # the spin-up checkpoint is rewritten at most this often (and at the end)


def spin_up(problem: KolmogorovProblem, tracker: Optional[StepProgress] = None) -> SpinUp:
    """Run (or resume from its checkpoint) the spin-up; the finished record is kept on disk and
    reused by every problem with the same ``spinup_key_data()``."""
    with float64_solver():
        return _spin_up(problem, tracker)


def _spin_up(problem: KolmogorovProblem, tracker: Optional[StepProgress]) -> SpinUp:
    steps, h = spinup_steps(problem)
    record = read_spinup(problem) or _random_start(problem, h)
    if record.step >= steps:
        return record
    stepper = make_stepper(problem.n_spinup, problem.nu, h)
    w_hat, energies, enstrophies = jnp.asarray(record.w_hat), [record.energy], [record.enstrophy]
    step, saved = record.step, time.perf_counter()
    while step < steps:
        chunk = min(SPINUP_CHUNK, steps - step)
        w_hat, e, z = advance_recording(w_hat, stepper, chunk)
        energies.append(np.asarray(e))
        enstrophies.append(np.asarray(z))
        step += chunk
        if not np.isfinite(energies[-1][-1]):
            raise FloatingPointError(f"spin-up blew up before t = {step * h:g} (reduce dt_spinup)")
        if tracker is not None:
            tracker.add(chunk)
        if step == steps or time.perf_counter() - saved > CHECKPOINT_SECONDS:
            record = SpinUp(np.asarray(w_hat), step, h, np.concatenate(energies), np.concatenate(enstrophies))
            write_spinup(problem, record)
            saved = time.perf_counter()
    return record


# ----------------------------------------------------------------------------- the horizon

def horizon_steps(problem: KolmogorovProblem) -> tuple:
    """``(steps per snapshot, h)``: the largest ``h <= dt`` that divides ``T / (nt - 1)``."""
    interval = problem.T / (problem.nt - 1)
    per = max(1, math.ceil(interval / problem.dt - 1e-9))
    return per, interval / per


def snapshots(w0_hat, n: int, nu: float, h: float, per: int, nt: int,
              tracker: Optional[StepProgress] = None):
    """Yield the coefficients at the ``nt`` snapshots, ``per`` steps of ``h`` apart."""
    stepper = make_stepper(n, nu, h)
    w_hat = jnp.asarray(w0_hat)
    yield w_hat
    for i in range(1, nt):
        w_hat = advance(w_hat, stepper, per)
        if not bool(jnp.all(jnp.isfinite(w_hat))):
            raise FloatingPointError(f"the horizon blew up before snapshot {i} (reduce dt)")
        if tracker is not None:
            tracker.add(per)
        yield w_hat


def horizon_start(problem: KolmogorovProblem) -> np.ndarray:
    """The spin-up's end state on the ``n`` grid (the ``t = 0`` snapshot's coefficients)."""
    return resample_hat(spin_up(problem).w_hat, problem.n)


def solve_kolmogorov(problem: KolmogorovProblem, progress: Optional[ProgressFn] = None) -> dict:
    """Spin up (or reuse the spin-up), then march the horizon; the arrays of ``problem.ARRAYS``."""
    spin_total, _ = spinup_steps(problem)
    per, h = horizon_steps(problem)
    done = getattr(read_spinup(problem), "step", 0)
    tracker = StepProgress(progress, spin_total - min(done, spin_total) + per * (problem.nt - 1))
    n, nt = problem.n, problem.nt
    out = {k: np.empty((nt, n + 1, n + 1)) for k in problem.FIELDS}
    with float64_solver():
        w0_hat = resample_hat(spin_up(problem, tracker).w_hat, n)
        grid = make_grid(n)
        for i, w_hat in enumerate(snapshots(w0_hat, n, problem.nu, h, per, nt, tracker)):
            values = with_right_ends(np.asarray(physical_fields(w_hat, grid)))
            for k, v in zip(problem.FIELDS, values):
                out[k][i] = v
    return {"t": problem.t, "x": problem.x, "y": problem.y, **out, "nu": np.array([problem.nu])}


# ----------------------------------------------------------------------------- measurements

def stationarity(record: SpinUp, block_turnovers: float = 5.0, tolerance: float = 0.05) -> dict:
    """The spin-up's stationarity figures.

    Turnover time ``tau = L / U_rms`` (``L = 1``, ``U_rms = sqrt(2 E)`` at the end).  The means of
    the energy and of the enstrophy over the last ``block_turnovers`` turnover times (or over the
    last half of the spin-up if it is shorter than two such blocks) are compared with those over
    the block before: ``stationary`` when both relative changes are <= ``tolerance``.  Also the
    energy growth rate (least-squares slope over both blocks) and the drift per turnover time
    relative to the mean energy.
    """
    t, e, z = record.time, record.energy, record.enstrophy
    tau = 1.0 / math.sqrt(2.0 * e[-1])
    block = min(block_turnovers * tau, t[-1] / 2.0)
    last, previous = t > t[-1] - block, (t > t[-1] - 2.0 * block) & (t <= t[-1] - block)
    both = last | previous
    slope = float(np.polyfit(t[both], e[both], 1)[0])
    change_e = float(abs(e[last].mean() - e[previous].mean()) / e[last].mean())
    change_z = float(abs(z[last].mean() - z[previous].mean()) / z[last].mean())
    return {
        "criterion": (f"energy and enstrophy means over the last {block_turnovers:g} turnover times "
                      f"(L / U_rms, L = 1) within {tolerance:g} (relative) of the block before"),
        "t_end": float(t[-1]), "energy": float(e[-1]), "enstrophy": float(z[-1]), "u_rms": math.sqrt(2.0 * e[-1]),
        "turnover_time": tau, "block_turnovers": float(block / tau),
        "energy_block_change": change_e, "enstrophy_block_change": change_z,
        "energy_growth_rate": slope, "energy_drift_per_turnover": slope * tau / float(e[both].mean()),
        "stationary": max(change_e, change_z) <= tolerance,
    }


def _vorticity_grids(w0_hat, n: int, nu: float, h: float, per: int, nt: int):
    for w_hat in snapshots(w0_hat, n, nu, h, per, nt):
        yield np.asarray(to_grid(w_hat))


def refinement_change(problem: KolmogorovProblem) -> dict:
    """Vorticity change when the modes are doubled and ``dt`` halved, from the same ``t = 0``
    snapshot: ``||w_2n - w_n|| / ||w_2n||`` over the ``n`` grid, per snapshot and over all ``t > 0``."""
    per, h = horizon_steps(problem)
    start = horizon_start(problem)
    n, nt, nu = problem.n, problem.nt, problem.nu
    diff2, ref2 = np.zeros(nt), np.zeros(nt)
    with float64_solver():
        fine = _vorticity_grids(resample_hat(start, 2 * n), 2 * n, nu, h / 2, 2 * per, nt)
        for i, (w, w_fine) in enumerate(zip(_vorticity_grids(start, n, nu, h, per, nt), fine)):
            diff2[i] = np.sum((w - w_fine[::2, ::2]) ** 2)
            ref2[i] = np.sum(w_fine[::2, ::2] ** 2)
    return {"t": problem.t, "per_snapshot": np.sqrt(diff2 / ref2),
            "value": float(np.sqrt(diff2[1:].sum() / ref2[1:].sum()))}


def smooth_perturbation_hat(n: int, seed: int, max_mode: int) -> np.ndarray:
    """A random band-limited field (Gaussian coefficients for ``|m_x|, |m_y| <= max_mode``, zero
    mean) with unit RMS on the ``n`` grid."""
    rng = np.random.default_rng(seed)
    mx, my = mode_numbers(n)
    band = (np.abs(mx) <= max_mode) & (my <= max_mode) & ((mx != 0) | (my != 0))
    p_hat = np.where(band, rng.standard_normal(band.shape) + 1j * rng.standard_normal(band.shape), 0.0)
    p = np.fft.irfft2(p_hat, s=(n, n))
    return np.fft.rfft2(p / np.sqrt(np.mean(p**2))) * numpy_grid(n).keep


def perturbation_growth(problem: KolmogorovProblem, eps: float, seed: int = 0, max_mode: int = 8) -> dict:
    """Relative L2 difference of the vorticity between the horizon from the ``t = 0`` snapshot and
    from that snapshot plus ``eps * rms(w) * p`` (``p``: ``smooth_perturbation_hat``), per snapshot
    (``per_snapshot[0] = eps``), as ``sensitivity.perturbation_growth`` does for the 1-D problems."""
    if not eps > 0:
        raise ValueError(f"eps must be positive; got {eps!r}")
    per, h = horizon_steps(problem)
    start = horizon_start(problem)
    n, nt, nu = problem.n, problem.nt, problem.nu
    rms = math.sqrt(float(np.mean(np.fft.irfft2(start, s=(n, n)) ** 2)))
    bumped = start + eps * rms * smooth_perturbation_hat(n, seed, max_mode)
    growth = np.zeros(nt)
    with float64_solver():
        pairs = zip(_vorticity_grids(start, n, nu, h, per, nt), _vorticity_grids(bumped, n, nu, h, per, nt))
        for i, (w, w_bumped) in enumerate(pairs):
            growth[i] = np.linalg.norm(w_bumped - w) / np.linalg.norm(w)
    return {"t": problem.t, "per_snapshot": growth}


def threshold_times(t: np.ndarray, growth: np.ndarray, levels=(1e-3, 1e-2, 1e-1)) -> dict:
    """First time ``growth`` reaches each level (log-linear interpolation), ``None`` if never."""
    out = {}
    for level in levels:
        above = np.nonzero(growth >= level)[0]
        if above.size == 0:
            out[level] = None
        elif above[0] == 0:
            out[level] = float(t[0])
        else:
            i = above[0]
            a, b = np.log(growth[i - 1]), np.log(growth[i])
            out[level] = float(t[i - 1] + (t[i] - t[i - 1]) * (np.log(level) - a) / (b - a))
    return out


# ----------------------------------------------------------------------------- provenance

def _measured(problem: KolmogorovProblem) -> Optional[dict]:
    """The recorded measurements (``MEASURED``) of the preset ``problem`` matches (up to ``nt``)."""
    mine = {k: v for k, v in problem.key_data().items() if k != "nt"}
    for preset, overrides in (("recipe", {}), ("quick", QUICK)):
        theirs = {k: v for k, v in get_kolmogorov(**overrides).key_data().items() if k != "nt"}
        if mine == theirs:
            return {"preset": preset, **MEASURED[preset]}
    return None


def describe_kolmogorov(problem: KolmogorovProblem, cache_file=None, checksum: Optional[str] = None) -> dict:
    """Provenance dict of a Kolmogorov reference (JSON-serialisable).  The stationarity figures
    come from the spin-up checkpoint when it is there (``None`` otherwise); the accuracy and the
    error growth are the recorded measurements of the presets (``None`` for other settings)."""
    spin_total, spin_h = spinup_steps(problem)
    per, h = horizon_steps(problem)
    record = read_spinup(problem)
    finished = record is not None and record.step >= spin_total
    measured = _measured(problem)
    return {
        "name": problem.name,
        "equation": EQUATION,
        "forcing": FORCING,
        "parameters": {"re": float(problem.re), "nu": problem.nu, "seed": int(problem.seed),
                       "ic_peak": float(problem.ic_peak), "ic_energy": float(problem.ic_energy),
                       "t_spinup": float(problem.t_spinup), "T": float(problem.T), "nt": int(problem.nt)},
        "initial_condition": (f"Gaussian random vorticity (numpy default_rng({problem.seed}) white noise on a "
                              f"{RANDOM_GRID}^2 grid), E(k) ~ (k/k0)^4 exp(-2 (k/k0)^2), k0 = 2 pi {problem.ic_peak:g}, "
                              f"kinetic energy {problem.ic_energy:g}; t = 0 is the end of the spin-up"),
        "domain": [0.0, 1.0, 0.0, 1.0],
        "solver": ("Fourier pseudo-spectral vorticity-streamfunction, 2/3-rule dealiasing, ETDRK4 "
                   "(contour-integral coefficients) on -nu |k|^2, JAX float64 (CPU; GPU with PINNRUN_REFERENCE_DEVICE=gpu); pressure from its "
                   "Poisson equation in Fourier space"),
        "version": SOLVER_VERSION,
        "resolution": {"n": [int(problem.n)] * 2, "retained_modes": "|m_x|, |m_y| < n/3",
                       "dt": h, "steps_per_snapshot": per},
        "dt": h,
        "spinup": {"n": [int(problem.n_spinup)] * 2, "dt": spin_h, "steps": spin_total,
                   "t_spinup": float(problem.t_spinup), "transfer": "zero padding to n",
                   "checkpoint_file": str(problem.spinup_file),
                   "stationarity": stationarity(record) if finished and spin_total > 0 else None},
        "grid": {"nt": int(problem.nt), "nx": int(problem.n) + 1, "ny": int(problem.n) + 1,
                 "x": "linspace(0, 1, n + 1)", "t": "linspace(0, T, nt)",
                 "shapes": {k: list(v) for k, v in problem.shapes().items()}},
        "accuracy": {"measure": ACCURACY_MEASURE, "value": None,
                     **({} if measured is None else {"preset": measured["preset"], **measured["accuracy"]})},
        "error_growth": None if measured is None else measured["error_growth"],
        "cache_file": None if cache_file is None else str(cache_file),
        "checksum": checksum,
    }
