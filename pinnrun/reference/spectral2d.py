"""Fourier pseudo-spectral solver with ETDRK4 time stepping for periodic 2-D two-field systems.

Solves ``w_t = L w + N(w)`` for ``w = (u, v)`` (real fields) on a periodic square
``[a, b)^2``.  ``L`` is diagonal in Fourier space and per field (a real symbol ``L_f(kx, ky)``,
e.g. ``-eps |k|^2 - b``); the nonlinear part ``N`` is a pointwise function of ``(u, v)``
(constants included), evaluated on a grid zero-padded by the factor ``dealias`` in each axis
(2 removes all aliasing of a cubic term; 3/2 only of a quadratic one).  Everything is numpy
float64 / complex128; transforms are ``scipy.fft.rfft2`` / ``irfft2`` (axis 0 = x, full FFT;
axis 1 = y, real FFT), run on ``workers`` threads.

Time stepping is ETDRK4 (Cox-Matthews, in the form of Kassam and Trefethen 2005) with the
contour-integral coefficients of ``spectral.etdrk4_coefficients``; they are computed once per
distinct value of ``L`` (the symbol depends on ``|k|^2`` only, so there are few).  The Nyquist
modes of both axes are kept at zero.  Output snapshots are evaluated at arbitrary points by
exact trigonometric interpolation with separable DFT matrices (``evaluate``).
"""

from __future__ import annotations

import math
from typing import Callable, Optional, Sequence, Tuple

import numpy as np
import scipy.fft as sfft

from .spectral import _Stats, etdrk4_coefficients, etdrk4_march, trig_interpolation_matrix

__all__ = ["PeriodicSpectralSolver2D", "full_interpolation_matrix", "wavenumbers_2d"]

ProgressFn = Callable[[int, int, float], None]
Reaction = Callable[[np.ndarray, np.ndarray], Tuple[np.ndarray, np.ndarray]]


def wavenumbers_2d(n: int, length: float) -> Tuple[np.ndarray, np.ndarray]:
    """Angular wavenumbers ``(kx [n, 1], ky [1, n // 2 + 1])`` of ``rfft2`` of an ``n x n`` grid."""
    kx = 2.0 * np.pi / length * (np.fft.fftfreq(n) * n)
    ky = 2.0 * np.pi / length * np.arange(n // 2 + 1, dtype=np.float64)
    return kx[:, None], ky[None, :]


def full_interpolation_matrix(n: int, a: float, b: float, x: np.ndarray) -> np.ndarray:
    """Matrix ``B [len(x), n]`` with ``B @ c`` the (complex) interpolant of full-FFT coefficients.

    ``c`` holds ``fft`` coefficients (unnormalised) of ``n`` samples on ``a + (b - a) j / n``;
    the Nyquist coefficient (``n`` even) gets weight zero (it is kept at zero by the solver).
    """
    x = np.asarray(x, dtype=np.float64)
    k = 2.0 * np.pi / (b - a) * (np.fft.fftfreq(n) * n)
    weights = np.full(n, 1.0 / n)
    if n % 2 == 0:
        weights[n // 2] = 0.0
    return weights * np.exp(1j * np.outer(x - a, k))


class PeriodicSpectralSolver2D:
    """ETDRK4 Fourier spectral solver for ``(u, v)_t = L (u, v) + N(u, v)`` on ``[a, b)^2``.

    Parameters
    ----------
    n : grid points / Fourier modes per axis (even).
    a, b : the periodic interval of both axes.
    linear_symbols : two functions of ``(kx, ky)`` (broadcasting arrays) returning the real
        symbols ``L_u``, ``L_v``.
    reaction : pointwise ``(u, v) -> (N_u, N_v)`` on the padded physical grid.
    dealias : zero-padding factor per axis for the nonlinear term.
    workers : threads for ``scipy.fft``.
    """

    def __init__(
        self,
        n: int,
        a: float,
        b: float,
        linear_symbols: Sequence[Callable[[np.ndarray, np.ndarray], np.ndarray]],
        reaction: Reaction,
        dealias: float = 2.0,
        contour_points: int = 64,
        workers: int = -1,
    ):
        if n < 4 or n % 2:
            raise ValueError("need an even number of modes >= 4")
        self.n = int(n)
        self.a = float(a)
        self.b = float(b)
        self.length = self.b - self.a
        self.kx, self.ky = wavenumbers_2d(self.n, self.length)
        shape = (self.n, self.n // 2 + 1)
        self.lin = np.stack([np.broadcast_to(np.asarray(f(self.kx, self.ky), dtype=np.float64), shape)
                             for f in linear_symbols])
        self.reaction = reaction
        m = int(math.ceil(dealias * self.n))
        self.m = max(m + (m % 2), self.n)  # even padded size, at least n
        self.contour_points = int(contour_points)
        self.workers = workers
        self.stats = _Stats()
        h, m = self.n // 2, self.m
        # buffers of the padded transforms: x-columns of the retained y-modes, then all y-modes
        self._xpad = np.zeros((2, m, h), dtype=np.complex128)
        self._ypad = np.zeros((2, m, m // 2 + 1), dtype=np.complex128)
        self._phys = np.empty((2, m, m), dtype=np.float64)

    # -- transforms -------------------------------------------------------------------------
    @property
    def coeff_shape(self) -> Tuple[int, int, int]:
        return (2, self.n, self.n // 2 + 1)

    @property
    def grid(self) -> np.ndarray:
        return self.a + self.length * np.arange(self.n) / self.n

    def _clean(self, w: np.ndarray) -> np.ndarray:
        h = self.n // 2
        w[..., h, :] = 0.0
        w[..., :, h] = 0.0
        return w

    def project(self, w0: Callable[[np.ndarray, np.ndarray], Tuple[np.ndarray, np.ndarray]],
                oversample: int = 8, chunk: int = 256) -> np.ndarray:
        """Fourier coefficients ``[2, n, n // 2 + 1]`` of ``w0(x, y) -> (u0, v0)``.

        The projection (continuous Fourier coefficients) is approximated by the DFT on an
        ``oversample``-times finer grid per axis, computed ``chunk`` rows of x at a time.
        """
        n = self.n
        h = n // 2
        nf = n * int(oversample)
        xf = self.a + self.length * np.arange(nf) / nf
        yf = xf[None, :]
        partial = np.empty((2, nf, h + 1), dtype=np.complex128)  # rfft in y, first h + 1 modes
        for start in range(0, nf, chunk):
            xs = xf[start:start + chunk, None]
            fields = w0(xs, yf)
            for i, f in enumerate(fields):
                f = np.broadcast_to(np.asarray(f, dtype=np.float64), (xs.shape[0], nf))
                partial[i, start:start + xs.shape[0]] = sfft.rfft(f, axis=1, workers=self.workers)[:, : h + 1]
        full = sfft.fft(partial, axis=1, workers=self.workers)
        w = np.zeros(self.coeff_shape, dtype=np.complex128)
        w[:, :h] = full[:, :h]
        w[:, h + 1:] = full[:, nf - h + 1:]
        w *= (n / nf) ** 2
        return self._clean(w)

    def coefficients(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Coefficients of fields sampled on the ``n x n`` periodic grid (Nyquist removed)."""
        w = sfft.rfft2(np.stack([u, v]).astype(np.float64), workers=self.workers)
        return self._clean(w)

    def to_physical(self, w: np.ndarray) -> np.ndarray:
        """``[2, n, n]`` grid values of coefficients ``w``."""
        return sfft.irfft2(w, s=(self.n, self.n), workers=self.workers)

    def nonlinear(self, w: np.ndarray) -> np.ndarray:
        """Coefficients of ``N(u, v)``, formed on the padded ``m x m`` grid.

        The padded transforms are pruned: the inverse transform in x runs only over the retained
        ``n / 2`` y-modes (the other columns are zero), the forward one only over those kept.
        """
        n, m, h = self.n, self.m, self.n // 2
        workers = self.workers
        xp = self._xpad
        scale_in = (m / n) ** 2
        # retained (non-Nyquist) modes only; the middle rows of the buffer stay zero
        np.multiply(w[:, :h, :h], scale_in, out=xp[:, :h])
        np.multiply(w[:, h + 1:, :h], scale_in, out=xp[:, m - h + 1:])
        yp = self._ypad
        yp[:, :, :h] = sfft.ifft(xp, axis=1, workers=workers)
        phys = sfft.irfft(yp, n=m, axis=2, workers=workers)
        nu, nv = self.reaction(phys[0], phys[1])
        buf = self._phys
        buf[0] = nu
        buf[1] = nv
        big = sfft.fft(sfft.rfft(buf, axis=2, workers=workers)[:, :, :h], axis=1,
                       workers=workers, overwrite_x=True)
        out = np.zeros(self.coeff_shape, dtype=np.complex128)
        scale_out = (n / m) ** 2
        np.multiply(big[:, :h], scale_out, out=out[:, :h, :h])
        np.multiply(big[:, m - h + 1:], scale_out, out=out[:, h + 1:, :h])
        return out

    def etdrk4(self, h: float):
        """ETDRK4 coefficients of ``h * L`` (computed once per distinct value of ``L``)."""
        values, inverse = np.unique(self.lin.ravel(), return_inverse=True)
        coeffs = etdrk4_coefficients(values, h, self.contour_points)
        return tuple(np.ascontiguousarray(c[inverse].reshape(self.lin.shape)) for c in coeffs)

    # -- time stepping ----------------------------------------------------------------------
    def solve(
        self,
        w0: np.ndarray,
        t_out: Sequence[float],
        dt: float,
        progress: Optional[ProgressFn] = None,
        points: Optional[Tuple[np.ndarray, np.ndarray]] = None,
    ) -> np.ndarray:
        """Advance ``w0`` (at ``t_out[0]``) to every time of ``t_out`` (uniformly spaced).

        The step is the largest ``h <= dt`` that divides the output interval.  Returns the
        coefficients ``[len(t_out), 2, n, n // 2 + 1]``, or, with ``points = (x, y)``, the
        values ``[len(t_out), 2, len(x), len(y)]`` evaluated snapshot by snapshot (so the
        coefficient history is never held in memory).
        """
        t_out = np.asarray(t_out, dtype=np.float64)
        nt = t_out.size
        if points is None:
            out = np.empty((nt,) + self.coeff_shape, dtype=np.complex128)
            store = lambda i, w: out.__setitem__(i, w)  # noqa: E731
        else:
            mats = self.interpolation_matrices(*points)
            out = np.empty((nt, 2, mats[0].shape[0], mats[1].shape[0]), dtype=np.float64)
            store = lambda i, w: out.__setitem__(i, self._evaluate(w, mats))  # noqa: E731
        w = self._clean(np.asarray(w0, dtype=np.complex128).copy())
        self.stats = etdrk4_march(w, self.nonlinear, self.etdrk4, t_out, dt, store, progress)
        return out

    # -- evaluation -------------------------------------------------------------------------
    def interpolation_matrices(self, x: np.ndarray, y: np.ndarray):
        """``(Bx [len(x), n], By [len(y), n // 2 + 1])`` for ``evaluate``."""
        return (full_interpolation_matrix(self.n, self.a, self.b, x),
                trig_interpolation_matrix(self.n, self.a, self.b, y))

    def _evaluate(self, w: np.ndarray, mats) -> np.ndarray:
        bx, by = mats
        return np.real(np.matmul(np.matmul(bx, w), by.T))

    def evaluate(self, coeffs: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Values ``[..., len(x), len(y)]`` of coefficients ``[..., n, n // 2 + 1]`` at the
        tensor grid ``x`` by ``y`` (exact trigonometric interpolation)."""
        return self._evaluate(np.asarray(coeffs), self.interpolation_matrices(x, y))
