"""Rayleigh-Taylor instability (BENCHMARKS.md section 10): Boussinesq flow between walls.

    u_t + u u_x + v u_y + p_x - a1 (u_xx + u_yy)       = 0
    v_t + u v_x + v v_y + p_y - a1 (v_xx + v_yy) - a2 T = 0
    u_x + v_y = 0
    T_t + u T_x + v T_y - a4 (T_xx + T_yy)             = 0
    a1 = sqrt(Pr / Ra), a2 = 1, a4 = 1 / sqrt(Ra Pr)
on x in [0, 1] periodic (period embedding, angular frequency 2 pi) and y in [0, 2] between no-slip
walls, u = v = 0 and T = +T_wall at y = 0, -T_wall at y = 2 (T_wall = tanh(1 / delta)). T is a
buoyancy: heavy fluid (T ~ -1) starts over light (T ~ +1) behind a tanh interface of width delta,
perturbed by a single mode plus a seeded multimode part. t runs from the end of the reference's
skipped start (t_skip after the perturbed rest state): the initial condition is the reference's first
snapshot (pinnrun.reference "rayleigh_taylor": Fourier x Chebyshev vorticity-streamfunction solver,
IMEX ARS(4,4,3), float64; its whole specification is pde.ra, pde.pr and pde.reference).
Evaluation reports u, v, p (up to a constant) and T.
"""

from __future__ import annotations

import functools

import jax.numpy as jnp
import numpy as np

from pinnrun.pdes.base import Evolution, PointSet, grid_field
from pinnrun.pdes.navier_stokes import flow_derivatives, momentum_and_continuity
from pinnrun.reference import rayleigh_taylor as rayleigh_taylor_reference

# the reference's keys that the config sets elsewhere: reference key -> pde key
_RENAMED = {"ra": "ra", "pr": "pr", "T": "t_max", "nt": "snapshots"}


def _config_message(message: str) -> str:
    """The solver's message under this config's key names (T -> t_max, nt -> snapshots, another
    reference key -> reference.<key>)."""
    key = message.split(" ", 1)[0]
    if key not in rayleigh_taylor_reference.PARAMETERS:
        return message
    return _RENAMED.get(key, f"reference.{key}") + message[len(key):]


class RayleighTaylor(Evolution):
    name = "rayleigh_taylor"
    space_names = ("x", "y")
    field_names = ("u", "v", "p", "T")
    gauge_fields = ("p",)
    periodic = ("x",)
    residual_terms = ("ru", "rv", "rc", "rT")

    def __init__(self, ra: float = 1.0e7, pr: float = 1.0, t_max: float = 1.5, snapshots: int = 41, reference=None,
                 weights=None, points=None):
        spec = dict(reference or {})
        for key, ours in _RENAMED.items():
            if key in spec:
                raise ValueError(f"pde.reference.{key}: set pde.{ours} instead")
        try:  # the reference solver's own checks, under this config's key names
            problem = rayleigh_taylor_reference.get_rayleigh_taylor(ra=ra, pr=pr, T=t_max, nt=snapshots, **spec)
        except ValueError as error:
            raise ValueError(f"pde.{_config_message(str(error))}") from None
        self.problem = problem
        resolution = (snapshots, problem.nx + 1, problem.ny_out)
        super().__init__({"x": (0.0, 1.0), "y": (0.0, 2.0)}, t_max, resolution, weights, points)
        self.ra, self.pr = float(problem.ra), float(problem.pr)
        self.a1, self.a2, self.a4 = problem.a1, problem.a2, problem.a4
        self.t_wall = problem.t_wall
        self.delta = float(problem.delta)
        self.spec = spec

    def residual(self, f, z):
        d = flow_derivatives(f, z, 1, 2, t_axis=0)
        buoyancy = self.a2 * d.value[3]
        ru, rv, rc = momentum_and_continuity(d, self.a1, (0.0, buoyancy))
        # T_t + u T_x + v T_y - a4 Lap T
        r_t = d.t[3] + d.advection()[3] - self.a4 * d.laplacian()[3]
        return {"ru": ru[None], "rv": rv[None], "rc": rc[None], "rT": r_t[None]}

    def wall_values(self, y):
        """T on the walls: +T_wall at y = 0, -T_wall at y = 2."""
        return jnp.where(y < 1.0, self.t_wall, -self.t_wall)

    def extra_point_sets(self):
        def walls(f, z):
            w = f(z)
            return {"wall_u": w[0:1], "wall_v": w[1:2], "wall_T": (w[3] - self.wall_values(z[2]))[None]}

        return (PointSet("wall", ("wall_u", "wall_v", "wall_T"),
                         lambda key, n: self.sample_boundary(key, n, axes=self.walled_axes), walls, "boundary"),)

    def background(self, z):
        """The unperturbed state (``arch.background``): the interface at rest, T_b = -tanh((y - 1) /
        delta), with its hydrostatic pressure, dp_b/dy = a2 T_b, so p_b = -a2 delta log cosh((y - 1) /
        delta) (p is defined up to a constant). It solves the equations but for T's diffusion
        (a4 T_b'' = O(a4 / delta^2) = 0.03 here), and it meets the wall values exactly; the network
        then learns the perturbation and its growth, 1e-3 to 1e-2 in size, instead of an O(1) profile."""
        s = (z[2] - 1.0) / self.delta
        temperature = -jnp.tanh(s)
        # log cosh s = |s| + log(1 + exp(-2 |s|)) - log 2: no overflow at the walls (|s| = 1 / delta,
        # up to 100), from primitives jet differentiates (logaddexp is a custom_jvp it lacks); |s| as
        # where(s > 0, s, -s), whose branches are smooth, so the derivatives are right at s = 0 too.
        magnitude = jnp.where(s > 0, s, -s)
        log_cosh = magnitude + jnp.log1p(jnp.exp(-2.0 * magnitude)) - jnp.log(2.0)
        pressure = -self.a2 * self.delta * log_cosh
        zero = jnp.zeros_like(s)
        return jnp.stack([zero, zero, pressure, temperature])

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
        # u, v and T: the pressure follows from them (and is defined up to a constant)
        diff = f(z) - y
        return {"ic_u": diff[0:1], "ic_v": diff[1:2], "ic_T": diff[3:4]}

    def reference_parameters(self):
        return {"ra": self.ra, "pr": self.pr, **self.spec}

    def reference_grid(self):
        return {"T": self.t_max, "nt": self.eval_resolution[0]}
