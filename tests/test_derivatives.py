"""Forward-mode input derivatives against analytic derivatives."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pinnrun.derivatives import derivatives, directional_derivatives, gradient

jax.config.update("jax_enable_x64", True)


def f(z):
    x, y = z[0], z[1]
    return jnp.stack([jnp.sin(2 * x) * jnp.exp(y), jnp.tanh(x * y)])


@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_derivatives_along_x_match_analytic(order):
    z = jnp.array([0.3, -0.2])
    out = derivatives(f, z, axis=0, order=order)
    assert len(out) == order + 1
    x, y = 0.3, -0.2
    # d^k/dx^k sin(2x) = 2^k sin(2x + k pi/2)
    for k in range(order + 1):
        expected = 2**k * np.sin(2 * x + k * np.pi / 2) * np.exp(y)
        np.testing.assert_allclose(out[k][0], expected, rtol=1e-10)


def test_fourth_derivative_matches_finite_differences():
    g = lambda z: jnp.tanh(1.3 * z[:1] - 0.4) * jnp.cos(z[:1])  # noqa: E731
    z, h = jnp.array([0.37]), 1e-2
    d4 = derivatives(g, z, axis=0, order=4)[4][0]
    values = [g(z + k * h)[0] for k in range(-3, 4)]
    # 6th-order accurate central stencil for the 4th derivative
    stencil = np.array([-1 / 6, 2, -13 / 2, 28 / 3, -13 / 2, 2, -1 / 6])
    fd = float(np.dot(stencil, values)) / h**4
    np.testing.assert_allclose(d4, fd, rtol=1e-5)


def test_jet_fallback_for_primitives_without_rules_gives_same_result():
    # erf has no jet rule in some JAX versions; whichever path runs, the result must be exact.
    g = lambda z: jax.scipy.special.erf(z) * z  # noqa: E731
    z = jnp.array([0.4])
    out = directional_derivatives(g, z, jnp.array([1.0]), 3)
    h = 1e-3
    fd3 = (g(z + 2 * h) - 2 * g(z + h) + 2 * g(z - h) - g(z - 2 * h)) / (2 * h**3)
    np.testing.assert_allclose(out[3], fd3, rtol=1e-5)


def test_gradient_is_the_jacobian():
    z = jnp.array([0.1, 0.5])
    value, jac = gradient(f, z)
    np.testing.assert_allclose(value, f(z))
    np.testing.assert_allclose(jac, jax.jacrev(f)(z), rtol=1e-12)
