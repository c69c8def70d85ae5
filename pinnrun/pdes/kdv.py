"""1-D Korteweg-de Vries equation (BENCHMARKS.md section 4).

    u_t + u u_x + delta^2 u_xxx = 0,  x in [-1, 1], t in [0, 1], delta = 0.022
    u(0, x) = cos(pi x),  periodic in x (period 2)
Periodicity comes from the architecture's periodic embedding, so there is no boundary term.
Reference: ETDRK4 Fourier spectral (pinnrun.reference).
"""

from __future__ import annotations

import jax.numpy as jnp

from pinnrun.derivatives import derivatives
from pinnrun.pdes.base import Evolution, check_positive


class KdV(Evolution):
    name = "kdv"
    periodic = ("x",)

    def __init__(self, delta: float = 0.022, t_max: float = 1.0, eval_resolution=(201, 512), weights=None, points=None):
        check_positive(delta=delta)
        super().__init__({"x": (-1.0, 1.0)}, t_max, eval_resolution, weights, points)
        self.delta = float(delta)

    def u0(self, x, xp=jnp):
        return xp.cos(xp.pi * x)

    def residual(self, f, z):
        _, u_t = derivatives(f, z, axis=0, order=1)
        u, u_x, _, u_xxx = derivatives(f, z, axis=1, order=3)
        return u_t + u * u_x + self.delta**2 * u_xxx

    def reference_parameters(self):
        return {"delta": self.delta}
