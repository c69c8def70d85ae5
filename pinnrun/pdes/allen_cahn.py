"""1-D Allen-Cahn equation (BENCHMARKS.md section 3).

    u_t - eps u_xx + gamma (u^3 - u) = 0,  x in [-1, 1], t in [0, 1], eps = 1e-4, gamma = 5
    u(0, x) = x^2 cos(pi x),  periodic in x (period 2)
Periodicity comes from the architecture's periodic embedding, so there is no boundary term.
Reference: ETDRK4 Fourier spectral (pinnrun.reference).
"""

from __future__ import annotations

import jax.numpy as jnp

from pinnrun.derivatives import derivatives
from pinnrun.pdes.base import Evolution, check_positive


class AllenCahn(Evolution):
    name = "allen_cahn"
    periodic = ("x",)

    def __init__(self, eps: float = 1e-4, gamma: float = 5.0, t_max: float = 1.0, eval_resolution=(201, 512), weights=None, points=None):
        check_positive(eps=eps, gamma=gamma)
        super().__init__({"x": (-1.0, 1.0)}, t_max, eval_resolution, weights, points)
        self.eps = float(eps)
        self.gamma = float(gamma)

    def u0(self, x, xp=jnp):
        return x**2 * xp.cos(xp.pi * x)

    def residual(self, f, z):
        _, u_t = derivatives(f, z, axis=0, order=1)
        u, _, u_xx = derivatives(f, z, axis=1, order=2)
        return u_t - self.eps * u_xx + self.gamma * (u**3 - u)

    def reference_parameters(self):
        return {"eps": self.eps, "gamma": self.gamma}
