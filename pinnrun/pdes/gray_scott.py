"""2-D Gray-Scott reaction-diffusion (BENCHMARKS.md section 6).

    u_t = eps1 Lap(u) + b1 (1 - u) - c1 u v^2,   v_t = eps2 Lap(v) - b2 v + c2 u v^2
    eps1 = 0.2, eps2 = 0.1, b1 = 40, b2 = 100, c1 = c2 = 1000   (the classic system rescaled by 1000)
    (x, y) in [-1, 1]^2 periodic, t in [0, 2]
    u0 = 1 - exp(-10 ((x + 0.05)^2 + (y + 0.02)^2)),  v0 = exp(-10 ((x - 0.05)^2 + (y - 0.02)^2))
u stays near 1 everywhere, so its relative error says little: evaluation also reports u - 1.
Periodicity comes from the architecture's periodic embedding (angular frequency pi on x and y).
Reference: 2-D ETDRK4 Fourier pseudo-spectral, float64 (pinnrun.reference).
"""

from __future__ import annotations

import jax.numpy as jnp

from pinnrun.derivatives import derivatives, laplacian
from pinnrun.pdes.base import Evolution, check_positive


class GrayScott(Evolution):
    name = "gray_scott"
    space_names = ("x", "y")
    field_names = ("u", "v")
    periodic = ("x", "y")
    residual_terms = ("res_u", "res_v")

    def __init__(
        self,
        eps1: float = 0.2,
        eps2: float = 0.1,
        b1: float = 40.0,
        b2: float = 100.0,
        c1: float = 1000.0,
        c2: float = 1000.0,
        t_max: float = 2.0,
        eval_resolution=(101, 200, 200),
        weights=None,
        points=None,
    ):
        check_positive(eps1=eps1, eps2=eps2)
        super().__init__({"x": (-1.0, 1.0), "y": (-1.0, 1.0)}, t_max, eval_resolution, weights, points)
        self.eps1, self.eps2 = float(eps1), float(eps2)
        self.b1, self.b2, self.c1, self.c2 = float(b1), float(b2), float(c1), float(c2)
        self.reference_grid()  # the reference grid is square: fail now, not after training

    def u0(self, x, y, xp=jnp):
        u = 1 - xp.exp(-10 * ((x + 0.05) ** 2 + (y + 0.02) ** 2))
        v = xp.exp(-10 * ((x - 0.05) ** 2 + (y - 0.02) ** 2))
        return u, v

    def residual(self, f, z):
        _, w_t = derivatives(f, z, axis=0, order=1)
        w, lap = laplacian(f, z, axes=(1, 2))
        u, v = w[0], w[1]
        uvv = u * v * v
        res_u = w_t[0] - self.eps1 * lap[0] - self.b1 * (1 - u) + self.c1 * uvv
        res_v = w_t[1] - self.eps2 * lap[1] + self.b2 * v - self.c2 * uvv
        return {"res_u": res_u[None], "res_v": res_v[None]}

    def derived(self, fields, xp=jnp):
        return {"u_minus_1": fields["u"] - 1.0}

    def reference_parameters(self):
        return {"eps1": self.eps1, "eps2": self.eps2, "b1": self.b1, "b2": self.b2, "c1": self.c1, "c2": self.c2}
