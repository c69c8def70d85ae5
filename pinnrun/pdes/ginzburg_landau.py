"""2-D complex Ginzburg-Landau equation (BENCHMARKS.md section 7).

    A_t = eps Lap(A) + k A - k (1 + 1.5 i) A |A|^2,   k = 10, eps = 0.004
    (x, y) in [-1, 1]^2 periodic, t in [0, 1];  A0 = (10 y + 10 i x) exp(-25 (x^2 + y^2))
The network's fields are u = Re A and v = Im A; in real form, with |A|^2 = u^2 + v^2,
    u_t = eps Lap(u) + k u - k (u - 1.5 v) |A|^2,   v_t = eps Lap(v) + k v - k (v + 1.5 u) |A|^2.
Evaluation also reports |A|. Periodicity comes from the architecture's periodic embedding.
Reference: 2-D ETDRK4 Fourier pseudo-spectral, float64 (pinnrun.reference).
"""

from __future__ import annotations

import jax.numpy as jnp

from pinnrun.derivatives import derivatives, laplacian
from pinnrun.pdes.base import Evolution, check_positive


class GinzburgLandau(Evolution):
    name = "ginzburg_landau"
    space_names = ("x", "y")
    field_names = ("u", "v")
    periodic = ("x", "y")
    residual_terms = ("res_u", "res_v")

    def __init__(self, k: float = 10.0, eps: float = 0.004, t_max: float = 1.0, eval_resolution=(101, 200, 200), weights=None, points=None):
        check_positive(k=k, eps=eps)
        super().__init__({"x": (-1.0, 1.0), "y": (-1.0, 1.0)}, t_max, eval_resolution, weights, points)
        self.k, self.eps = float(k), float(eps)
        self.reference_grid()  # the reference grid is square: fail now, not after training

    def u0(self, x, y, xp=jnp):
        envelope = xp.exp(-25 * (x**2 + y**2))
        return 10 * y * envelope, 10 * x * envelope

    def residual(self, f, z):
        _, w_t = derivatives(f, z, axis=0, order=1)
        w, lap = laplacian(f, z, axes=(1, 2))
        u, v = w[0], w[1]
        amp2 = u * u + v * v
        res_u = w_t[0] - self.eps * lap[0] - self.k * u + self.k * (u - 1.5 * v) * amp2
        res_v = w_t[1] - self.eps * lap[1] - self.k * v + self.k * (v + 1.5 * u) * amp2
        return {"res_u": res_u[None], "res_v": res_v[None]}

    def derived(self, fields, xp=jnp):
        return {"abs_A": xp.sqrt(fields["u"] ** 2 + fields["v"] ** 2)}

    def reference_parameters(self):
        return {"k": self.k, "eps": self.eps}
