"""The kolmogorov PDE: its residuals on exact Navier-Stokes solutions, its vorticity from the
network's derivatives, its initial condition from the reference's first snapshot and its config
errors. The reference solver itself is tests/test_reference_kolmogorov.py."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pinnrun.pdes.kolmogorov import Kolmogorov

PI = math.pi
TINY = {"n": 32, "n_spinup": 32, "dt_spinup": 2e-3, "t_spinup": 0.1, "dt": 1e-3}


def taylor_green(nu):
    """u = -cos(2 pi x) sin(2 pi y) E, v = sin(2 pi x) cos(2 pi y) E, p = -(cos 4 pi x + cos 4 pi y) E^2 / 4,
    E = exp(-8 pi^2 nu t): an exact solution of the unforced Navier-Stokes equations."""

    def field(z):
        t, x, y = z
        decay = jnp.exp(-8 * PI**2 * nu * t)
        u = -jnp.cos(2 * PI * x) * jnp.sin(2 * PI * y) * decay
        v = jnp.sin(2 * PI * x) * jnp.cos(2 * PI * y) * decay
        p = -0.25 * (jnp.cos(4 * PI * x) + jnp.cos(4 * PI * y)) * decay**2
        return jnp.stack([u, v, p])

    return field


def interior(pde, f, z):
    ps = next(ps for ps in pde.point_sets() if ps.name == "interior")
    return jax.vmap(lambda point: ps.evaluate(f, point))(z)


@pytest.fixture(scope="module")
def pde():
    return Kolmogorov(re=100.0, t_max=0.1, snapshots=3, reference=TINY)


def test_the_laminar_state_has_zero_residuals(pde):
    # u = 2 sin(4 pi y) / (nu (4 pi)^2), v = 0, p = 0: the viscous term balances the forcing exactly.
    amplitude = 2.0 / ((1.0 / pde.re) * (4 * PI) ** 2)
    f = lambda z: jnp.stack([amplitude * jnp.sin(4 * PI * z[2]), 0.0 * z[0], 0.0 * z[0]])  # noqa: E731
    z = pde.sample_interior(jax.random.PRNGKey(0), 64)
    for name, res in interior(pde, f, z).items():
        np.testing.assert_allclose(np.asarray(res), 0.0, atol=1e-4 * amplitude, err_msg=name)


def test_an_unforced_solution_leaves_exactly_the_forcing_as_residual(pde):
    z = pde.sample_interior(jax.random.PRNGKey(1), 64)
    res = interior(pde, taylor_green(1.0 / pde.re), z)
    np.testing.assert_allclose(np.asarray(res["ru"][:, 0]), -2.0 * np.sin(4 * PI * np.asarray(z[:, 2])), atol=2e-5)
    np.testing.assert_allclose(np.asarray(res["rv"][:, 0]), 0.0, atol=2e-5)
    np.testing.assert_allclose(np.asarray(res["rc"][:, 0]), 0.0, atol=2e-5)


def test_vorticity_comes_from_the_networks_derivatives(pde):
    nu = 1.0 / pde.re
    z = pde.sample_interior(jax.random.PRNGKey(2), 16)
    w = jax.vmap(lambda point: pde.derived_outputs(taylor_green(nu), point)["w"])(z)
    t, x, y = (np.asarray(z[:, i]) for i in range(3))
    expected = 4 * PI * np.cos(2 * PI * x) * np.cos(2 * PI * y) * np.exp(-8 * PI**2 * nu * t)
    np.testing.assert_allclose(np.asarray(w), expected, rtol=1e-5, atol=1e-5)
    assert pde.evaluated_names == ("u", "v", "p", "w")
    assert pde.term_names == ("ic_u", "ic_v", "ru", "rv", "rc")   # no initial-condition term for the pressure


def test_the_initial_condition_is_the_references_first_snapshot(pde, tmp_path, monkeypatch):
    monkeypatch.setenv("PINNRUN_CACHE_DIR", str(tmp_path))
    from pinnrun import reference

    data = reference.load("kolmogorov", progress=False, re=pde.re, T=pde.t_max, nt=3, **TINY)
    assert pde.eval_resolution == (3, 33, 33) and data["u"].shape == (3, 33, 33)
    points, values = pde.initial_condition()
    np.testing.assert_allclose(values[:, 0], data["u"][0].reshape(-1), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(values[:, 1], data["v"][0].reshape(-1), rtol=1e-6, atol=1e-6)
    ref = pde.reference()
    assert set(ref.fields) == {"u", "v", "p", "w"} and ref.shape == (3, 33, 33)
    np.testing.assert_array_equal(ref.fields["w"], data["w"])


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"re": "x"}, "pde.re must be a number"),
        ({"reference": {"n": 63}}, "pde.reference.n must be an even integer"),
        ({"snapshots": 1}, "pde.snapshots must be an integer"),
        ({"reference": {"T": 1.0}}, "pde.reference.T: set pde.t_max instead"),
        ({"reference": {"speed": 1.0}}, "unknown argument(s) speed"),
    ],
)
def test_bad_parameters_name_their_key(kwargs, message):
    with pytest.raises(ValueError) as info:
        Kolmogorov(**{"reference": TINY, **kwargs})
    assert message in str(info.value) and "\n" not in str(info.value)
