"""Steady lid-driven cavity (BENCHMARKS.md section 8): incompressible Navier-Stokes on [0, 1]^2.

    u u_x + v u_y + p_x - (u_xx + u_yy) / Re = 0
    u v_x + v v_y + p_y - (v_xx + v_yy) / Re = 0
    u_x + v_y = 0
No slip on x = 0, x = 1 and y = 0; the lid y = 1 slides with v = 0 and
    u = 1 - cosh(50 (x - 1/2)) / cosh(25)   (lid="smooth", the paper's lid: zero at the corners)
    u = 1                                   (lid="classic": discontinuous at the top corners).
Evaluation reports u, v, p (up to a constant) and the speed sqrt(u^2 + v^2), the paper's metric,
against pinnrun's own reference for the SAME lid and Re (pinnrun.reference, fourth-order compact
streamfunction-vorticity with Newton; the paper's code compares its smooth-lid network with
classic-lid tables). A Reynolds curriculum is a list of stages that each set pde.re.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from pinnrun.pdes.base import PDE, PointSet, Profile, Reference
from pinnrun.pdes.navier_stokes import steady_navier_stokes
from pinnrun.reference import cavity as cavity_reference


class LidDrivenCavity(PDE):
    name = "lid_driven_cavity"
    input_names = ("x", "y")
    field_names = ("u", "v", "p")
    gauge_fields = ("p",)

    def __init__(self, re: float = 100.0, lid: str = "smooth", eval_resolution: int = 257, weights=None, points=None):
        super().__init__({"x": (0.0, 1.0), "y": (0.0, 1.0)}, weights, points)
        try:  # the reference solver's own checks, under this config's key names
            problem = cavity_reference.get_cavity(re=re, lid=lid, nx=eval_resolution)
        except ValueError as error:
            message = str(error).replace("nx must be", "eval_resolution must be", 1)
            raise ValueError(f"pde.{message}") from None
        self.re, self.lid, self.eval_resolution = problem.re, problem.lid, problem.nx

    def lid_velocity(self, x, xp=jnp):
        return cavity_reference.lid_velocity(x, self.lid, xp)

    def point_sets(self):
        def walls(f, z):
            # The lid row y = 1 moves with lid_velocity(x); the other three walls are at rest.
            u_wall = jnp.where(z[1] >= 1.0, self.lid_velocity(z[0]), 0.0)
            w = f(z)
            return {"u_bc": (w[0] - u_wall)[None], "v_bc": w[1][None]}

        def interior(f, z):
            ru, rv, rc = steady_navier_stokes(f, z, 1.0 / self.re)
            return {"ru": ru[None], "rv": rv[None], "rc": rc[None]}

        return (
            PointSet("boundary", ("u_bc", "v_bc"), lambda key, n: self.sample_boundary(key, n, axes=(0, 1)), walls, "boundary"),
            PointSet("interior", ("ru", "rv", "rc"), self.sample_interior, interior),
        )

    def derived(self, fields, xp=jnp):
        return {"speed": xp.sqrt(fields["u"] ** 2 + fields["v"] ** 2)}

    def profiles(self):
        # The centrelines of the published tables (Ghia et al. 1982; Botella & Peyret 1998).
        return (Profile("u", along="y", at={"x": 0.5}), Profile("v", along="x", at={"y": 0.5}))

    def reference_parameters(self) -> dict:
        return {"re": self.re, "lid": self.lid, "nx": self.eval_resolution}

    def reference(self) -> Reference:
        from pinnrun import reference

        data = reference.load(self.name, **self.reference_parameters())
        fields = {name: data[name] for name in self.field_names}
        return Reference(axes={"x": data["x"], "y": data["y"]}, fields={**fields, **self.derived(fields, np)})

    def provenance(self) -> dict:
        from pinnrun import reference

        return reference.provenance(self.name, **self.reference_parameters())
