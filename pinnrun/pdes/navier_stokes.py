"""Residuals of the incompressible Navier-Stokes equations, shared by the flow problems.

Steady, for a network of (x, y):
    u u_x + v u_y + p_x - nu (u_xx + u_yy) = 0
    u v_x + v v_y + p_y - nu (v_xx + v_yy) = 0
    u_x + v_y = 0
Unsteady with a body force (f_x, f_y), for a network of (t, x, y):
    u_t + u u_x + v u_y + p_x - nu (u_xx + u_yy) - f_x = 0
    v_t + u v_x + v v_y + p_y - nu (v_xx + v_yy) - f_y = 0
    u_x + v_y = 0
The network's first three outputs are (u, v, p).
"""

from __future__ import annotations

from pinnrun.derivatives import derivatives


def _momentum_and_continuity(f, z, nu: float, x_axis: int, y_axis: int):
    """(value, convection + pressure gradient - viscous term per momentum component, continuity)."""
    w, w_x, w_xx = derivatives(f, z, axis=x_axis, order=2)
    _, w_y, w_yy = derivatives(f, z, axis=y_axis, order=2)
    u, v = w[0], w[1]
    mu = u * w_x[0] + v * w_y[0] + w_x[2] - nu * (w_xx[0] + w_yy[0])
    mv = u * w_x[1] + v * w_y[1] + w_y[2] - nu * (w_xx[1] + w_yy[1])
    return mu, mv, w_x[0] + w_y[1]


def steady_navier_stokes(f, z, nu: float):
    """(ru, rv, rc) at the single point z = (x, y): x-momentum, y-momentum and continuity."""
    return _momentum_and_continuity(f, z, nu, 0, 1)


def navier_stokes(f, z, nu: float, forcing=(0.0, 0.0)):
    """(ru, rv, rc) at the single point z = (t, x, y), with the body force ``forcing`` = (f_x, f_y)
    at that point."""
    mu, mv, rc = _momentum_and_continuity(f, z, nu, 1, 2)
    _, w_t = derivatives(f, z, axis=0, order=1)
    return w_t[0] + mu - forcing[0], w_t[1] + mv - forcing[1], rc
