"""Time-marching helpers: window edges and a reference's part in a window.

Window k trains on [t_k, t_{k+1}] with the initial condition u(t_k, x) given by window k-1's network
(its prediction at t_k, evaluated once when the window starts), warm-starting from that network's
parameters. The windows are stages of the run (pinnrun.stages) run by the one trainer loop; each
window's final parameters go to ``windows/window_<k>.npz``. Errors are reported over the whole
horizon, with the network of each time's window (``Evaluator`` with the window edges).
"""

from __future__ import annotations

import numpy as np

from pinnrun.pdes.base import Reference


def window_edges(t0: float, t1: float, windows: int) -> np.ndarray:
    return np.linspace(t0, t1, windows + 1)


def slice_reference(reference: Reference, time_axis: int, t_start: float, t_end: float) -> Reference:
    """The part of a reference grid with t in [t_start, t_end]."""
    names = list(reference.axes)
    t = reference.axes[names[time_axis]]
    keep = (t >= t_start - 1e-12) & (t <= t_end + 1e-12)
    axes = {**reference.axes, names[time_axis]: t[keep]}
    fields = {k: np.compress(keep, v, axis=time_axis) for k, v in reference.fields.items()}
    return Reference(axes=axes, fields=fields)
