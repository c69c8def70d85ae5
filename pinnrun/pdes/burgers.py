"""1-D viscous Burgers equation (BENCHMARKS.md section 2).

    u_t + u u_x - nu u_xx = 0,  x in [-1, 1], t in [0, 1], nu = 0.01/pi
    u(0, x) = -sin(pi x),  u(t, -1) = u(t, 1) = 0
The solution is odd and 2-periodic in x, but the benchmark poses Dirichlet data: a boundary term
enforces it and no axis is declared periodic. Reference: Fourier spectral (pinnrun.reference).
"""

from __future__ import annotations

import math

import jax.numpy as jnp

from pinnrun.derivatives import derivatives
from pinnrun.pdes.base import Evolution, check_positive


class Burgers(Evolution):
    name = "burgers"

    def __init__(self, nu: float = 0.01 / math.pi, t_max: float = 1.0, eval_resolution=(201, 512), weights=None, points=None):
        check_positive(nu=nu)
        super().__init__({"x": (-1.0, 1.0)}, t_max, eval_resolution, weights, points)
        self.nu = float(nu)

    def u0(self, x, xp=jnp):
        return -xp.sin(xp.pi * x)

    def residual(self, f, z):
        _, u_t = derivatives(f, z, axis=0, order=1)
        u, u_x, u_xx = derivatives(f, z, axis=1, order=2)
        return u_t + u * u_x - self.nu * u_xx

    def extra_point_sets(self):
        return (self.zero_boundary_point_set(),)

    def reference_parameters(self):
        return {"nu": self.nu}
