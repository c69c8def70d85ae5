"""1-D wave equation with an exact solution (BENCHMARKS.md section 1).

    u_tt - c^2 u_xx = 0,  x in [0, 1], t in [0, 1], c = 2
    u(0, x) = sin(pi x) + 0.5 sin(4 pi x),  u_t(0, x) = 0,  u(t, 0) = u(t, 1) = 0
Exact: u = sin(pi x) cos(2 pi t) + 0.5 sin(4 pi x) cos(8 pi t)   (for c = 2).
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from pinnrun.derivatives import derivatives
from pinnrun.pdes.base import Evolution, Reference, check_positive


class Wave(Evolution):
    name = "wave"

    def __init__(self, c: float = 2.0, t_max: float = 1.0, eval_resolution=(201, 256), weights=None, points=None):
        check_positive(c=c)
        super().__init__({"x": (0.0, 1.0)}, t_max, eval_resolution, weights, points)
        self.c = float(c)

    def exact(self, t, x, xp=jnp):
        # Each mode sin(k pi x) oscillates in time with angular frequency c k pi.
        pi = xp.pi
        return xp.sin(pi * x) * xp.cos(self.c * pi * t) + 0.5 * xp.sin(4 * pi * x) * xp.cos(4 * self.c * pi * t)

    def initial_field(self, z):
        return jnp.atleast_1d(self.exact(z[0], z[1]))

    def initial_values(self, source, z):
        # Value and velocity of the source at the start time (the exact velocity is 0 at t = 0).
        return jnp.concatenate(derivatives(source, z, axis=0, order=1))

    def initial_residuals(self, f, z, y):
        u, u_t = derivatives(f, z, axis=0, order=1)
        return {"ic": u - y[:1], "ic_t": u_t - y[1:]}

    def residual(self, f, z):
        _, _, u_tt = derivatives(f, z, axis=0, order=2)
        _, _, u_xx = derivatives(f, z, axis=1, order=2)
        return u_tt - self.c**2 * u_xx

    def extra_point_sets(self):
        return (self.zero_boundary_point_set(),)

    def reference_parameters(self):
        return {"c": self.c}

    def reference(self):
        t = np.linspace(0.0, self.t_max, self.eval_resolution[0])
        x = self.space_grid()[0]
        tt, xx = np.meshgrid(t, x, indexing="ij")
        return Reference(axes={"t": t, "x": x}, fields={"u": self.exact(tt, xx, xp=np)})
