"""Input derivatives of a network by forward mode.

A PDE module sees the network as ``f(z) -> outputs`` for a single input point ``z`` (shape [d]).
``derivatives(f, z, axis, order)`` returns ``(f, d f/dz_a, d^2 f/dz_a^2, ...)`` at ``z`` so that
residuals read like the equations, e.g. ``u, u_x, u_xx = derivatives(f, z, axis=1, order=2)``.

Forward mode is the cheap direction here: one input point, a few outputs. First order uses
one ``jax.jvp``; second and higher orders use Taylor-mode ``jax.experimental.jet``
(cost grows like order^2), falling back to nested jvp for primitives without a jet rule.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax.experimental import jet

Array = jax.Array
Field = Callable[[Array], Array]

_JET_MIN_ORDER = 2


def _nested_jvp(f: Field, z: Array, direction: Array, order: int) -> tuple[Array, ...]:
    """Directional derivatives d^k/ds^k f(z + s v) at s = 0, k = 0..order, by nested jvp."""

    def derivs(point: Array, k: int) -> tuple[Array, ...]:
        if k == 0:
            return (f(point),)
        # jvp of the (k-1)-level function returns its value and one more derivative per entry.
        primal, tangent = jax.jvp(lambda p: derivs(p, k - 1), (point,), (direction,))
        return primal + (tangent[-1],)

    return derivs(z, order)


def _jet(f: Field, z: Array, direction: Array, order: int) -> tuple[Array, ...]:
    # Input path z(s) = z + s v has derivative series (v, 0, 0, ...); jet returns the output's
    # derivative series d^k/ds^k f(z(s)) for k = 1..order.
    series = (direction,) + (jnp.zeros_like(z),) * (order - 1)
    value, out_series = jet.jet(f, (z,), (series,))
    return (value, *out_series)


def directional_derivatives(f: Field, z: Array, direction: Array, order: int) -> tuple[Array, ...]:
    """(f(z), D_v f(z), ..., D_v^order f(z)) for a direction v."""
    if order < 0:
        raise ValueError(f"order must be >= 0, got {order}")
    if order >= _JET_MIN_ORDER:
        try:
            return _jet(f, z, direction, order)
        except NotImplementedError:
            pass  # a primitive without a jet rule: nested jvp is exact, only slower
    return _nested_jvp(f, z, direction, order)


def derivatives(f: Field, z: Array, axis: int, order: int) -> tuple[Array, ...]:
    """(f, df/dz_axis, ..., d^order f/dz_axis^order) at the single point z."""
    direction = jnp.zeros_like(z).at[axis].set(1.0)
    return directional_derivatives(f, z, direction, order)


def laplacian(f: Field, z: Array, axes: tuple[int, ...]) -> tuple[Array, Array]:
    """(f(z), sum over ``axes`` of d^2 f / dz_a^2) at the single point z: one second-order jet per axis."""
    value, total = None, 0.0
    for axis in axes:
        value, _, second = derivatives(f, z, axis=axis, order=2)
        total = total + second
    return value, total
