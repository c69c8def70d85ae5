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
from pinnrun.pdes.base import Evolution1D, PointSet, Reference


class Burgers(Evolution1D):
    name = "burgers"

    def __init__(self, nu: float = 0.01 / math.pi, t_max: float = 1.0, eval_resolution=(201, 512), weights=None):
        for key, value in (("nu", nu), ("t_max", t_max)):
            if not value > 0:
                raise ValueError(f"pde.{key} must be positive; got {value}")
        if len(eval_resolution) != 2 or min(eval_resolution) < 2:
            raise ValueError(f"pde.eval_resolution must be [nt, nx], each >= 2; got {list(eval_resolution)}")
        super().__init__({"t": (0.0, t_max), "x": (-1.0, 1.0)}, weights)
        self.nu = float(nu)
        self.eval_resolution = tuple(int(n) for n in eval_resolution)

    def u0(self, x, xp=jnp):
        return -xp.sin(xp.pi * x)

    def residual(self, f, z):
        _, u_t = derivatives(f, z, axis=0, order=1)
        u, u_x, u_xx = derivatives(f, z, axis=1, order=2)
        return u_t + u * u_x - self.nu * u_xx

    def point_sets(self):
        def boundary(f, z):
            return {"bc": f(z)}

        def interior(f, z):
            return {"res": self.residual(f, z)}

        return (
            self.initial_point_set(),
            PointSet("boundary", ("bc",), lambda key, n: self.sample_boundary(key, n // 4, axes=(1,)), boundary, "boundary"),
            PointSet("interior", ("res",), self.sample_interior, interior),
        )

    def reference(self):
        from pinnrun import reference

        nt, nx = self.eval_resolution
        data = reference.load(self.name, nu=self.nu, T=self.bounds["t"][1], nt=nt, nx=nx)
        return Reference(axes={"t": data["t"], "x": data["x"]}, fields={"u": data["u"]})
