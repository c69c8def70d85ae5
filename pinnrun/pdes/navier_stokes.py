"""Residuals of the incompressible Navier-Stokes equations, shared by the flow problems.

Steady, for a network of (x, y):
    u u_x + v u_y + p_x - nu (u_xx + u_yy) = 0
    u v_x + v v_y + p_y - nu (v_xx + v_yy) = 0
    u_x + v_y = 0
Unsteady with a body force (f_x, f_y), for a network of (t, x, y):
    u_t + u u_x + v u_y + p_x - nu (u_xx + u_yy) - f_x = 0
    v_t + u v_x + v v_y + p_y - nu (v_xx + v_yy) - f_y = 0
    u_x + v_y = 0
The network's first three outputs are (u, v, p); further outputs (a transported scalar such as a
temperature) get their derivatives from the same pass (``FlowDerivatives``), so a coupled problem
(Boussinesq) adds its own equations without differentiating the network again.
"""

from __future__ import annotations

import dataclasses

import jax

from pinnrun.derivatives import derivatives


@dataclasses.dataclass(frozen=True)
class FlowDerivatives:
    """All outputs of the network at one point and their derivatives along t (None when steady),
    x and y (first and second)."""

    value: jax.Array
    t: jax.Array | None
    x: jax.Array
    y: jax.Array
    xx: jax.Array
    yy: jax.Array

    def laplacian(self) -> jax.Array:
        return self.xx + self.yy

    def advection(self) -> jax.Array:
        """(u d/dx + v d/dy) of every output."""
        return self.value[0] * self.x + self.value[1] * self.y


def flow_derivatives(f, z, x_axis: int, y_axis: int, t_axis: int | None = None) -> FlowDerivatives:
    w, w_x, w_xx = derivatives(f, z, axis=x_axis, order=2)
    _, w_y, w_yy = derivatives(f, z, axis=y_axis, order=2)
    w_t = None if t_axis is None else derivatives(f, z, axis=t_axis, order=1)[1]
    return FlowDerivatives(w, w_t, w_x, w_y, w_xx, w_yy)


def momentum_and_continuity(d: FlowDerivatives, nu: float, forcing=(0.0, 0.0)):
    """(ru, rv, rc) from the derivatives at one point: the momentum equations (with the time
    derivative when ``d`` has one) less the body force ``forcing`` = (f_x, f_y), and continuity."""
    u, v = d.value[0], d.value[1]
    # the same order of operations as before FlowDerivatives existed (the flow problems' numbers)
    mu = u * d.x[0] + v * d.y[0] + d.x[2] - nu * (d.xx[0] + d.yy[0])
    mv = u * d.x[1] + v * d.y[1] + d.y[2] - nu * (d.xx[1] + d.yy[1])
    if d.t is not None:
        mu, mv = d.t[0] + mu, d.t[1] + mv
    return mu - forcing[0], mv - forcing[1], d.x[0] + d.y[1]


def steady_navier_stokes(f, z, nu: float):
    """(ru, rv, rc) at the single point z = (x, y): x-momentum, y-momentum and continuity."""
    return momentum_and_continuity(flow_derivatives(f, z, 0, 1), nu)


def navier_stokes(f, z, nu: float, forcing=(0.0, 0.0)):
    """(ru, rv, rc) at the single point z = (t, x, y), with the body force ``forcing`` = (f_x, f_y)
    at that point."""
    return momentum_and_continuity(flow_derivatives(f, z, 1, 2, t_axis=0), nu, forcing)
