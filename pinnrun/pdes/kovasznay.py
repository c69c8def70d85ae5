"""Kovasznay flow: steady 2-D incompressible Navier-Stokes with an exact solution (Kovasznay 1948).

    u u_x + v u_y + p_x - nu (u_xx + u_yy) = 0
    u v_x + v v_y + p_y - nu (v_xx + v_yy) = 0
    u_x + v_y = 0,                                nu = 1/Re

Exact, with lambda = Re/2 - sqrt(Re^2/4 + 4 pi^2):
    u = 1 - exp(lambda x) cos(2 pi y),  v = lambda/(2 pi) exp(lambda x) sin(2 pi y),
    p = (1 - exp(2 lambda x)) / 2.
Dirichlet u, v from the exact solution on the boundary of [-0.5, 1] x [-0.5, 1.5].
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from pinnrun.pdes.base import PDE, PointSet, Reference, check_resolution
from pinnrun.pdes.navier_stokes import steady_navier_stokes


class Kovasznay(PDE):
    name = "kovasznay"
    input_names = ("x", "y")
    field_names = ("u", "v", "p")
    gauge_fields = ("p",)

    def __init__(
        self,
        re: float = 40.0,
        bounds=None,
        eval_resolution: tuple[int, int] = (151, 201),
        weights=None,
        points=None,
    ):
        super().__init__(bounds or {"x": (-0.5, 1.0), "y": (-0.5, 1.5)}, weights, points)
        if re <= 0:
            raise ValueError(f"pde.re must be positive; got {re}")
        self.re = float(re)
        self.nu = 1.0 / self.re
        self.lam = self.re / 2 - np.sqrt(self.re**2 / 4 + 4 * np.pi**2)
        self.eval_resolution = check_resolution(eval_resolution, self.input_names)

    def exact(self, z, xp=jnp):
        x, y = z[..., 0], z[..., 1]
        lam = self.lam
        u = 1 - xp.exp(lam * x) * xp.cos(2 * xp.pi * y)
        v = lam / (2 * xp.pi) * xp.exp(lam * x) * xp.sin(2 * xp.pi * y)
        p = 0.5 * (1 - xp.exp(2 * lam * x))
        return xp.stack([u, v, p], axis=-1)

    def point_sets(self):
        def boundary(f, z):
            return {"bc": f(z)[:2] - self.exact(z)[:2]}

        def interior(f, z):
            ru, rv, rc = steady_navier_stokes(f, z, self.nu)
            return {"ru": ru[None], "rv": rv[None], "rc": rc[None]}

        return (
            PointSet("boundary", ("bc",), lambda key, n: self.sample_boundary(key, n, axes=(0, 1)), boundary, "boundary"),
            PointSet("interior", ("ru", "rv", "rc"), self.sample_interior, interior),
        )

    def provenance(self):
        return {
            "name": self.name,
            "equation": "steady incompressible Navier-Stokes, nu = 1/Re",
            "parameters": {"re": self.re},
            "solver": "exact formula (Kovasznay 1948)",
            "grid": {name: n for name, n in zip(self.input_names, self.eval_resolution)},
            "accuracy": {"measure": "exact", "value": 0.0},
            "cache_file": None,
            "checksum": None,
        }

    def reference(self):
        axes = {
            name: np.linspace(*self.bounds[name], n)
            for name, n in zip(self.input_names, self.eval_resolution)
        }
        ref = Reference(axes=axes, fields={})
        values = self.exact(ref.points(), xp=np).reshape(*ref.shape, 3)
        return Reference(axes=axes, fields={name: values[..., i] for i, name in enumerate(self.field_names)})
