"""Forward-mode input derivatives against analytic derivatives: in float64 (the ``x64`` fixture) to
round-off, and in float32 (training's precision, the default) that they stay float32 and are
accurate to float32 round-off."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pinnrun.derivatives import derivatives, directional_derivatives, laplacian


def f(z):
    x, y = z[0], z[1]
    return jnp.stack([jnp.sin(2 * x) * jnp.exp(y), jnp.tanh(x * y)])


def g(z):
    return jnp.tanh(1.3 * z[:1] - 0.4) * jnp.cos(z[:1])


def erf_z(z):
    return jax.scipy.special.erf(z) * z


def in_float64(fn, *args):
    """fn(*args) evaluated in float64 (args cast up), as numpy: the reference for float32 results."""
    with jax.enable_x64(True):
        out = jax.jit(fn)(*[jnp.asarray(np.asarray(a, np.float64)) for a in args])
        return jax.tree.map(lambda x: np.asarray(x, np.float64), out)


def assert_dtype(tree, precision):
    assert all(x.dtype == jnp.dtype(precision) for x in jax.tree.leaves(tree)), jax.tree.map(lambda x: x.dtype, tree)


@pytest.mark.usefixtures("x64")
@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_derivatives_along_x_match_analytic(order):
    z = jnp.array([0.3, -0.2])
    out = derivatives(f, z, axis=0, order=order)
    assert len(out) == order + 1
    assert_dtype(out, "float64")
    x, y = 0.3, -0.2
    # d^k/dx^k sin(2x) = 2^k sin(2x + k pi/2)
    for k in range(order + 1):
        expected = 2**k * np.sin(2 * x + k * np.pi / 2) * np.exp(y)
        np.testing.assert_allclose(out[k][0], expected, rtol=1e-10)


@pytest.mark.usefixtures("x64")
def test_fourth_derivative_matches_finite_differences():
    z, h = jnp.array([0.37]), 1e-2
    d4 = derivatives(g, z, axis=0, order=4)[4][0]
    values = [g(z + k * h)[0] for k in range(-3, 4)]
    # 6th-order accurate central stencil for the 4th derivative
    stencil = np.array([-1 / 6, 2, -13 / 2, 28 / 3, -13 / 2, 2, -1 / 6])
    fd = float(np.dot(stencil, values)) / h**4
    np.testing.assert_allclose(d4, fd, rtol=1e-5)


@pytest.mark.usefixtures("x64")
def test_jet_fallback_for_primitives_without_rules_gives_same_result():
    # erf has no jet rule in some JAX versions; whichever path runs, the result must be exact.
    z = jnp.array([0.4])
    out = directional_derivatives(erf_z, z, jnp.array([1.0]), 3)
    h = 1e-3
    fd3 = (erf_z(z + 2 * h) - 2 * erf_z(z + h) + 2 * erf_z(z - h) - erf_z(z - 2 * h)) / (2 * h**3)
    np.testing.assert_allclose(out[3], fd3, rtol=1e-5)


def test_derivatives_in_float32():
    """The same derivatives in training's precision: float32 throughout (no silent promotion) and
    accurate to float32 round-off (relative errors measured up to 9e-7; tolerance 2e-5), against the
    analytic values and against the same computation in float64 (finite differences are useless at
    these orders in float32: h^4 ~ 1e-8 is its resolution)."""
    z = jnp.array([0.3, -0.2])
    out = jax.jit(lambda z: derivatives(f, z, axis=0, order=4))(z)
    assert_dtype(out, "float32")
    for k in range(5):  # d^k/dx^k sin(2x) = 2^k sin(2x + k pi/2)
        expected = 2**k * np.sin(0.6 + k * np.pi / 2) * np.exp(-0.2)
        np.testing.assert_allclose(out[k][0], expected, rtol=2e-5, atol=2e-6 * 2**k, err_msg=f"order {k}")

    z1 = jnp.array([0.37])
    out = jax.jit(lambda z: derivatives(g, z, axis=0, order=4))(z1)
    assert_dtype(out, "float32")
    reference = in_float64(lambda z: derivatives(g, z, axis=0, order=4), z1)
    scale = max(np.abs(r).max() for r in reference)
    for k, (got, want) in enumerate(zip(out, reference)):
        np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-6 * scale, err_msg=f"order {k}")

    v = jnp.array([0.6, -0.8])
    out = jax.jit(lambda z, v: directional_derivatives(f, z, v, 3))(z, v)
    assert_dtype(out, "float32")
    reference = in_float64(lambda z, v: directional_derivatives(f, z, v, 3), z, v)
    for k, (got, want) in enumerate(zip(out, reference)):
        np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-6, err_msg=f"order {k}")

    value, lap = jax.jit(lambda z: laplacian(lambda z: f(z)[:1], z, (0, 1)))(z)  # (-4 + 1) sin(2x) e^y
    assert_dtype((value, lap), "float32")
    np.testing.assert_allclose(lap, -3 * np.sin(0.6) * np.exp(-0.2), rtol=2e-6)

    out = jax.jit(lambda z: directional_derivatives(erf_z, z, jnp.ones(1), 3))(jnp.array([0.4]))  # the jet fallback
    assert_dtype(out, "float32")
    # d^3/dz^3 (z erf z) = -(8 z / sqrt(pi)) (2 - z^2) exp(-z^2)
    np.testing.assert_allclose(out[3], -3.2 / np.sqrt(np.pi) * 1.84 * np.exp(-0.16), rtol=1e-5)

