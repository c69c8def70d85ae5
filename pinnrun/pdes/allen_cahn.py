"""1-D Allen-Cahn equation (BENCHMARKS.md section 3).

    u_t - eps u_xx + gamma (u^3 - u) = 0,  x in [-1, 1], t in [0, 1], eps = 1e-4, gamma = 5
    u(0, x) = x^2 cos(pi x),  periodic in x (period 2)
Periodicity comes from the architecture's periodic embedding, so there is no boundary term.
Reference: ETDRK4 Fourier spectral (pinnrun.reference).
"""

from __future__ import annotations

import jax.numpy as jnp

from pinnrun.derivatives import derivatives
from pinnrun.pdes.base import Evolution1D, PointSet, Reference


class AllenCahn(Evolution1D):
    name = "allen_cahn"

    def __init__(
        self, eps: float = 1e-4, gamma: float = 5.0, t_max: float = 1.0, eval_resolution=(201, 512), weights=None
    ):
        for key, value in (("eps", eps), ("gamma", gamma), ("t_max", t_max)):
            if not value > 0:
                raise ValueError(f"pde.{key} must be positive; got {value}")
        if len(eval_resolution) != 2 or min(eval_resolution) < 2:
            raise ValueError(f"pde.eval_resolution must be [nt, nx], each >= 2; got {list(eval_resolution)}")
        super().__init__({"t": (0.0, t_max), "x": (-1.0, 1.0)}, weights)
        self.eps = float(eps)
        self.gamma = float(gamma)
        self.eval_resolution = tuple(int(n) for n in eval_resolution)

    @property
    def periodic_axes(self):
        lo, hi = self.bounds["x"]
        return {1: hi - lo}

    def u0(self, x, xp=jnp):
        return x**2 * xp.cos(xp.pi * x)

    def residual(self, f, z):
        _, u_t = derivatives(f, z, axis=0, order=1)
        u, _, u_xx = derivatives(f, z, axis=1, order=2)
        return u_t - self.eps * u_xx + self.gamma * (u**3 - u)

    def point_sets(self):
        def interior(f, z):
            return {"res": self.residual(f, z)}

        return (
            self.initial_point_set(),
            PointSet("interior", ("res",), self.sample_interior, interior),
        )

    def reference(self):
        from pinnrun import reference

        nt, nx = self.eval_resolution
        data = reference.load(self.name, eps=self.eps, gamma=self.gamma, T=self.bounds["t"][1], nt=nt, nx=nx)
        return Reference(axes={"t": data["t"], "x": data["x"]}, fields={"u": data["u"]})
