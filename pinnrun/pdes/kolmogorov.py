"""Kolmogorov flow at Re = 10^4 (BENCHMARKS.md section 9): forced 2-D incompressible Navier-Stokes.

    u_t + u u_x + v u_y + p_x - (u_xx + u_yy) / Re = 2 sin(4 pi y)
    v_t + u v_x + v v_y + p_y - (v_xx + v_yy) / Re = 0
    u_x + v_y = 0
on [0, 1]^2, periodic in x and y (period embeddings, angular frequency 2 pi), t in [0, T] measured
from the end of the reference's spin-up: the initial condition is the reference's first snapshot
(pinnrun.reference "kolmogorov": JAX pseudo-spectral vorticity solver, float64, a seeded random start
spun up for t_spinup; its whole specification is pde.reference). Without drag the flow is developing
forced turbulence, not a statistically stationary state: its energy keeps growing (docs/benchmarks.md).
Evaluation reports u, v, p (up to a constant) and the vorticity w = v_x - u_y, which the network gets
from its own derivatives and the reference from its spectral fields.
"""

from __future__ import annotations

import functools

import jax.numpy as jnp
import numpy as np

from pinnrun.derivatives import derivatives
from pinnrun.pdes.base import Evolution, grid_field
from pinnrun.pdes.navier_stokes import navier_stokes
from pinnrun.reference import kolmogorov as kolmogorov_reference


def _config_message(message: str, spec: dict) -> str:
    """The solver's message under this config's key names (T -> t_max, nt -> snapshots, a
    reference key -> reference.<key>)."""
    key = message.split(" ", 1)[0]
    renamed = {"re": "re", "T": "t_max", "nt": "snapshots"}.get(key, f"reference.{key}")
    return renamed + message[len(key):] if key in kolmogorov_reference.PARAMETERS else message


class Kolmogorov(Evolution):
    name = "kolmogorov"
    space_names = ("x", "y")
    field_names = ("u", "v", "p")
    gauge_fields = ("p",)
    signed_fields = ("u", "v", "w")
    periodic = ("x", "y")
    residual_terms = ("ru", "rv", "rc")

    def __init__(self, re: float = 1.0e4, t_max: float = 1.0, snapshots: int = 26, reference=None, weights=None, points=None):
        spec = dict(reference or {})
        for key, ours in (("re", "re"), ("T", "t_max"), ("nt", "snapshots")):
            if key in spec:
                raise ValueError(f"pde.reference.{key}: set pde.{ours} instead")
        try:  # the reference solver's own checks, under this config's key names
            problem = kolmogorov_reference.get_kolmogorov(re=re, T=t_max, nt=snapshots, **spec)
        except ValueError as error:
            raise ValueError(f"pde.{_config_message(str(error), spec)}") from None
        self.problem = problem
        nodes = problem.n + 1   # the solver's periodic grid plus the repeated right end
        super().__init__({"x": (0.0, 1.0), "y": (0.0, 1.0)}, t_max, (snapshots, nodes, nodes), weights, points)
        self.re = float(problem.re)
        self.spec = spec

    @staticmethod
    def forcing(y, xp=jnp):
        """The body force (f_x, f_y) = (2 sin(4 pi y), 0)."""
        return 2.0 * xp.sin(4.0 * np.pi * y), 0.0

    def residual(self, f, z):
        ru, rv, rc = navier_stokes(f, z, 1.0 / self.re, self.forcing(z[2]))
        return {"ru": ru[None], "rv": rv[None], "rc": rc[None]}

    def derived_outputs(self, f, z):
        # w = v_x - u_y from the network's own derivatives
        _, d_x = derivatives(f, z, axis=1, order=1)
        _, d_y = derivatives(f, z, axis=2, order=1)
        return {"w": d_x[1] - d_y[0]}

    # ----- the initial condition: the reference's first snapshot -----
    @functools.cached_property
    def _initial_snapshot(self):
        from pinnrun import reference

        data = reference.load(self.name, **self.reference_parameters(), **self.reference_grid())
        values = np.stack([data[name][0] for name in self.field_names], axis=-1)
        return grid_field([data["x"], data["y"]], values)

    def initial_field(self, z):
        return self._initial_snapshot(z)

    def initial_residuals(self, f, z, y):
        # the velocity only: the pressure follows from it (and is defined up to a constant)
        diff = f(z) - y
        return {"ic_u": diff[0:1], "ic_v": diff[1:2]}

    def reference_parameters(self):
        return {"re": self.re, **self.spec}

    def reference_grid(self):
        return {"T": self.t_max, "nt": self.eval_resolution[0]}
