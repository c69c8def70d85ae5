"""Fourier pseudo-spectral solver with ETDRK4 time stepping for periodic 1-D problems.

Solves ``u_t = L u + N(u)`` on a periodic interval ``[a, b)`` where ``L`` is diagonal in
Fourier space (its symbol may be complex, e.g. ``i delta^2 k^3`` for KdV) and the nonlinear
part is written as ``N(u) = -d/dx F(u) + G(u)`` (a flux ``F`` and a source ``G``, both pointwise
functions of ``u``).  Everything is numpy float64 / complex128.

Time stepping is the exponential time-differencing fourth-order Runge-Kutta scheme of Cox and
Matthews in the form of Kassam and Trefethen (2005).  The phi-function coefficients are
computed by a contour integral over the FULL circle of ``M`` points around each ``h L`` (valid
for complex ``L``; the half-circle/real-part shortcut is only valid for real ``L``).

The nonlinear term is dealiased by zero padding (``dealias`` is the padding factor: 3/2
removes all aliasing of a quadratic term, 2 of a cubic one).  The Nyquist mode is kept at zero.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import numpy as np
import scipy.fft as sfft

__all__ = [
    "etdrk4_coefficients",
    "etdrk4_march",
    "PeriodicSpectralSolver",
    "wavenumbers",
    "trig_interpolation_matrix",
    "spectral_derivative",
]

ProgressFn = Callable[[int, int, float], None]


def wavenumbers(n: int, length: float) -> np.ndarray:
    """Non-negative angular wavenumbers of ``rfft`` of ``n`` samples on a period ``length``."""
    return 2.0 * np.pi / length * np.arange(n // 2 + 1, dtype=np.float64)


def etdrk4_coefficients(lin: np.ndarray, h: float, contour_points: int = 64):
    """ETDRK4 coefficients ``(E, E2, Q, f1, f2, f3)`` for the diagonal operator ``lin``.

    ``lin`` may be complex.  Each phi-type function is evaluated as the mean over a full circle of
    ``contour_points`` points of radius 1 centred at ``h * lin`` (Cauchy's integral formula for an
    entire function, evaluated by the trapezoidal rule, which converges geometrically), which
    avoids the cancellation of the closed forms near ``h * lin = 0``.
    """
    lin = np.asarray(lin)
    z = h * lin.astype(np.complex128)
    m = int(contour_points)
    roots = np.exp(2j * np.pi * (np.arange(m) + 0.5) / m)
    lr = z[..., None] + roots
    elr = np.exp(lr)
    elr2 = np.exp(lr / 2.0)
    q = h * np.mean((elr2 - 1.0) / lr, axis=-1)
    f1 = h * np.mean((-4.0 - lr + elr * (4.0 - 3.0 * lr + lr**2)) / lr**3, axis=-1)
    f2 = h * np.mean((2.0 + lr + elr * (-2.0 + lr)) / lr**3, axis=-1)
    f3 = h * np.mean((-4.0 - 3.0 * lr - lr**2 + elr * (4.0 - lr)) / lr**3, axis=-1)
    e = np.exp(z)
    e2 = np.exp(z / 2.0)
    if not np.iscomplexobj(lin):
        # Real operator: all coefficients are real (up to rounding).
        e, e2, q, f1, f2, f3 = (c.real.copy() for c in (e, e2, q, f1, f2, f3))
    return e, e2, q, f1, f2, f3


def trig_interpolation_matrix(n: int, a: float, b: float, x: np.ndarray) -> np.ndarray:
    """Matrix ``B`` such that ``real(v @ B.T)`` evaluates the trigonometric interpolant.

    ``v`` holds ``rfft`` coefficients of ``n`` samples on the periodic grid ``a + (b - a) j / n``;
    the Nyquist coefficient (if ``n`` is even) is ignored (it is kept at zero by the solver).
    """
    x = np.asarray(x, dtype=np.float64)
    k = wavenumbers(n, b - a)
    weights = np.full(k.shape, 2.0)
    weights[0] = 1.0
    if n % 2 == 0:
        weights[-1] = 0.0
    return (weights / n) * np.exp(1j * np.outer(x - a, k))


def spectral_derivative(u: np.ndarray, length: float, order: int = 1, axis: int = -1) -> np.ndarray:
    """``order``-th derivative of periodic samples ``u`` (uniform grid of period ``length``).

    For an even number of samples the Nyquist coefficient is dropped for odd orders.
    """
    u = np.asarray(u, dtype=np.float64)
    n = u.shape[axis]
    k = wavenumbers(n, length)
    sym = (1j * k) ** order
    if n % 2 == 0 and order % 2 == 1:
        sym[-1] = 0.0
    shape = [1] * u.ndim
    shape[axis] = k.size
    uh = np.fft.rfft(u, axis=axis)
    return np.fft.irfft(uh * sym.reshape(shape), n=n, axis=axis)


@dataclass
class _Stats:
    steps: int = 0
    seconds: float = 0.0


def etdrk4_march(
    v: np.ndarray,
    nonlinear: Callable[[np.ndarray], np.ndarray],
    coefficients: Callable[[float], tuple],
    t_out: np.ndarray,
    dt: float,
    store: Callable[[int, np.ndarray], None],
    progress: Optional[ProgressFn] = None,
) -> "_Stats":
    """ETDRK4 (Cox-Matthews) from ``v`` at ``t_out[0]`` through the uniformly spaced ``t_out``,
    calling ``store(i, v)`` at each output time; the step is the largest ``h <= dt`` dividing the
    output interval. ``coefficients(h)`` gives (E, E2, Q, f1, f2, f3) of h L; ``nonlinear`` maps
    coefficients to those of N. Shared by the 1-D and 2-D solvers:

        a = E2 v + Q N(v),  b = E2 v + Q N(a),  c = E2 a + Q (2 N(b) - N(v)),
        v <- E v + f1 N(v) + 2 f2 (N(a) + N(b)) + f3 N(c).
    """
    nt = t_out.size
    store(0, v)
    if nt == 1:
        return _Stats()
    gaps = np.diff(t_out)
    interval = float(gaps.mean())
    if not np.allclose(gaps, interval, rtol=1e-9, atol=0.0):
        raise ValueError("t_out must be uniformly spaced")
    per = max(1, int(math.ceil(interval / dt - 1e-9)))
    h = interval / per
    e, e2, q, f1, f2, f3 = coefficients(h)
    total = per * (nt - 1)
    report_every = max(1, total // 10)
    start = time.perf_counter()
    step = 0
    for i in range(1, nt):
        for _ in range(per):
            nv = nonlinear(v)
            av = e2 * v + q * nv
            na = nonlinear(av)
            bv = e2 * v + q * na
            nb = nonlinear(bv)
            cv = e2 * av + q * (2.0 * nb - nv)
            nc = nonlinear(cv)
            v = e * v + nv * f1 + 2.0 * (na + nb) * f2 + nc * f3
            step += 1
            if progress is not None and (step % report_every == 0 or step == total):
                progress(step, total, time.perf_counter() - start)
        if not np.all(np.isfinite(v)):
            raise FloatingPointError(f"solution blew up before t = {t_out[i]:g}")
        store(i, v)
    return _Stats(steps=total, seconds=time.perf_counter() - start)


class PeriodicSpectralSolver:
    """ETDRK4 Fourier spectral solver for ``u_t = L u - F(u)_x + G(u)`` on ``[a, b)``.

    Parameters
    ----------
    n : number of grid points / Fourier modes (even recommended).
    a, b : the periodic interval.
    linear_symbol : function of the angular wavenumber array ``k`` returning ``L(k)``.
    flux, source : pointwise functions of ``u`` (either may be ``None``).
    dealias : zero-padding factor for the nonlinear term (1 = none, 1.5 quadratic, 2 cubic).
    """

    def __init__(
        self,
        n: int,
        a: float,
        b: float,
        linear_symbol: Callable[[np.ndarray], np.ndarray],
        flux: Optional[Callable[[np.ndarray], np.ndarray]] = None,
        source: Optional[Callable[[np.ndarray], np.ndarray]] = None,
        dealias: float = 1.5,
        contour_points: int = 64,
    ):
        if n < 4:
            raise ValueError("need at least 4 modes")
        self.n = int(n)
        self.a = float(a)
        self.b = float(b)
        self.length = self.b - self.a
        self.k = wavenumbers(self.n, self.length)
        self.lin = np.asarray(linear_symbol(self.k))
        if self.lin.shape != self.k.shape:
            self.lin = np.broadcast_to(self.lin, self.k.shape).copy()
        self.flux = flux
        self.source = source
        m = int(math.ceil(dealias * self.n))
        self.m = m + (m % 2)  # even padded size
        self.contour_points = contour_points
        self.ik = 1j * self.k
        if self.n % 2 == 0:
            self.ik[-1] = 0.0
        self.stats = _Stats()
        self._pad_buffer = np.zeros(self.m // 2 + 1, dtype=np.complex128)
        # -ik * (n / m); the Nyquist entry of ik is zero, so the output Nyquist mode stays zero
        self._flux_factor = -self.ik * (self.n / self.m)

    # -- transforms -------------------------------------------------------------------------
    @property
    def grid(self) -> np.ndarray:
        return self.a + self.length * np.arange(self.n) / self.n

    def _clean(self, v: np.ndarray) -> np.ndarray:
        if self.n % 2 == 0:
            v[..., -1] = 0.0
        return v

    def project(self, u0: Callable[[np.ndarray], np.ndarray], oversample: int = 8) -> np.ndarray:
        """Fourier coefficients of ``u0`` (projection approximated on an ``oversample``-times finer grid)."""
        nf = self.n * int(oversample)
        xf = self.a + self.length * np.arange(nf) / nf
        vf = np.fft.rfft(np.asarray(u0(xf), dtype=np.float64))
        v = vf[: self.n // 2 + 1] * (self.n / nf)
        return self._clean(v.copy())

    def to_physical(self, v: np.ndarray) -> np.ndarray:
        return np.fft.irfft(v, n=self.n)

    def nonlinear(self, v: np.ndarray) -> np.ndarray:
        """Fourier coefficients of ``-F(u)_x + G(u)``, products formed on the padded grid."""
        n, m = self.n, self.m
        half = n // 2 + 1
        vp = self._pad_buffer
        vp[:half] = v
        up = sfft.irfft(vp, n=m)
        up *= m / n
        out = None
        if self.flux is not None:
            out = sfft.rfft(self.flux(up))[:half]
            out *= self._flux_factor
        if self.source is not None:
            src = sfft.rfft(self.source(up))[:half]
            src *= n / m
            if n % 2 == 0:
                src[-1] = 0.0
            out = src if out is None else out + src
        if out is None:
            out = np.zeros(half, dtype=np.complex128)
        return out

    # -- time stepping ----------------------------------------------------------------------
    def solve(
        self,
        v0: np.ndarray,
        t_out: Sequence[float],
        dt: float,
        progress: Optional[ProgressFn] = None,
    ) -> np.ndarray:
        """Advance ``v0`` (at ``t_out[0]``) and return coefficients at every time of ``t_out``.

        ``t_out`` must be uniformly spaced; the step is the largest ``h <= dt`` that divides the
        output interval.  Returns a complex array ``[len(t_out), n // 2 + 1]``.
        """
        t_out = np.asarray(t_out, dtype=np.float64)
        out = np.empty((t_out.size, self.n // 2 + 1), dtype=np.complex128)
        v = self._clean(np.asarray(v0, dtype=np.complex128).copy())
        coefficients = lambda h: etdrk4_coefficients(self.lin, h, self.contour_points)  # noqa: E731
        self.stats = etdrk4_march(v, self.nonlinear, coefficients, t_out, dt, out.__setitem__, progress)
        return out

    def evaluate(self, coeffs: np.ndarray, x: np.ndarray) -> np.ndarray:
        """Evaluate coefficient snapshots (``[..., n // 2 + 1]``) at arbitrary points ``x``."""
        mat = trig_interpolation_matrix(self.n, self.a, self.b, x)
        return np.real(coeffs @ mat.T)
