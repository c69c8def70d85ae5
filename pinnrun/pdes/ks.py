"""1-D Kuramoto-Sivashinsky equation, chaotic regime (BENCHMARKS.md section 5).

    u_t + alpha u u_x + beta u_xx + gamma u_xxxx = 0,  x in [0, 2 pi], t in [0, 1]
    alpha = 100/16, beta = 100/16^2, gamma = 100/16^4;  u(0, x) = cos(x) (1 + sin(x)), periodic
Periodicity comes from the architecture's periodic embedding, so there is no boundary term.
Reference: ETDRK4 Fourier spectral (pinnrun.reference) on a 251 x 512 grid.
"""

from __future__ import annotations

import math

import jax.numpy as jnp

from pinnrun.derivatives import derivatives
from pinnrun.pdes.base import Evolution, check_positive


class KuramotoSivashinsky(Evolution):
    name = "ks"
    periodic = ("x",)

    def __init__(
        self,
        alpha: float = 100.0 / 16,
        beta: float = 100.0 / 16**2,
        gamma: float = 100.0 / 16**4,
        t_max: float = 1.0,
        eval_resolution=(251, 512),
        weights=None,
        points=None,
    ):
        # gamma > 0 keeps the problem well posed; beta > 0 (anti-diffusion) drives the chaos.
        check_positive(alpha=alpha, gamma=gamma)
        if not math.isfinite(beta):
            raise ValueError(f"pde.beta must be a finite number; got {beta}")
        super().__init__({"x": (0.0, 2 * math.pi)}, t_max, eval_resolution, weights, points)
        self.alpha = float(alpha)
        self.beta = float(beta)
        self.gamma = float(gamma)

    def u0(self, x, xp=jnp):
        return xp.cos(x) * (1 + xp.sin(x))

    def residual(self, f, z):
        _, u_t = derivatives(f, z, axis=0, order=1)
        u, u_x, u_xx, _, u_xxxx = derivatives(f, z, axis=1, order=4)
        return u_t + self.alpha * u * u_x + self.beta * u_xx + self.gamma * u_xxxx

    def reference_parameters(self):
        return {"alpha": self.alpha, "beta": self.beta, "gamma": self.gamma}
