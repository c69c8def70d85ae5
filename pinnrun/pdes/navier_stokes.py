"""Residuals of the steady incompressible Navier-Stokes equations, shared by the flow problems.

    u u_x + v u_y + p_x - nu (u_xx + u_yy) = 0
    u v_x + v v_y + p_y - nu (v_xx + v_yy) = 0
    u_x + v_y = 0
for a network whose first three outputs are (u, v, p) and whose first two inputs are (x, y).
"""

from __future__ import annotations

from pinnrun.derivatives import derivatives


def steady_navier_stokes(f, z, nu: float):
    """(ru, rv, rc) at the single point z: x-momentum, y-momentum and continuity."""
    w, w_x, w_xx = derivatives(f, z, axis=0, order=2)
    _, w_y, w_yy = derivatives(f, z, axis=1, order=2)
    u, v = w[0], w[1]
    ru = u * w_x[0] + v * w_y[0] + w_x[2] - nu * (w_xx[0] + w_yy[0])
    rv = u * w_x[1] + v * w_y[1] + w_y[2] - nu * (w_xx[1] + w_yy[1])
    rc = w_x[0] + w_y[1]
    return ru, rv, rc
