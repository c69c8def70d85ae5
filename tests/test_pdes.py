"""PDE residuals vanish on the analytic solutions and not on perturbed ones, to float64 round-off and
to float32 round-off (training's precision)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pinnrun.pdes.kovasznay import Kovasznay
from pinnrun.pdes.wave import Wave


def residual_rms(pde, f, key=jax.random.PRNGKey(0), n=256):
    """term -> rms residual of the field f on n points of each point set, in the precision in force."""
    out = {}
    for ps in pde.point_sets():
        points = ps.sample(jax.random.fold_in(key, hash(ps.name) % 1000), n).astype(jnp.result_type(float))
        # An initial set compares with its target, here the PDE's own initial condition.
        targets = jax.vmap(lambda z: ps.target(pde.initial_field, z))(points) if ps.target else None
        res = jax.vmap(lambda z, y: ps.evaluate(f, z, y))(points, targets)
        assert all(v.dtype == points.dtype for v in res.values())
        out.update({k: float(jnp.sqrt(jnp.mean(v**2))) for k, v in res.items()})
    return out


# The residual of an exact solution is round-off: below 1e-10 in float64 (measured 2e-15), in float32
# a few ulp of the terms (measured rms: Kovasznay 2e-7, its terms O(10); the wave 9e-6, its
# u_tt ~ (8 pi)^2 ~ 600).
EXACT_TOL = {"kovasznay": {"float64": 1e-10, "float32": 5e-6}, "wave": {"float64": 1e-9, "float32": 2e-4}}


def test_kovasznay_exact_solution_has_zero_residuals(precision):
    pde = Kovasznay()
    rms = residual_rms(pde, lambda z: pde.exact(z))
    assert set(rms) == {"bc", "ru", "rv", "rc"}
    assert max(rms.values()) < EXACT_TOL["kovasznay"][precision], rms


def test_kovasznay_perturbed_solution_has_residuals():
    pde = Kovasznay()
    bump = lambda z: 1e-2 * jnp.sin(3 * z[0]) * jnp.cos(2 * z[1])  # noqa: E731
    rms = residual_rms(pde, lambda z: pde.exact(z) + jnp.stack([bump(z), 0.0, 0.0]))
    assert rms["ru"] > 1e-3 and rms["rc"] > 1e-3 and rms["bc"] > 1e-4


def test_kovasznay_wrong_viscosity_is_detected():
    pde = Kovasznay(re=40.0)
    other = Kovasznay(re=20.0)
    rms = residual_rms(pde, lambda z: other.exact(z))
    assert rms["ru"] > 1e-2


def test_wave_exact_solution_has_zero_residuals(precision):
    pde = Wave()
    exact = lambda z: pde.exact(z[0], z[1])[None]  # noqa: E731
    rms = residual_rms(pde, exact)
    assert set(rms) == {"ic", "ic_t", "bc", "res"}
    assert max(rms.values()) < EXACT_TOL["wave"][precision], rms


def test_wave_wrong_speed_is_detected():
    pde = Wave(c=2.0)
    other = Wave(c=1.5)
    rms = residual_rms(pde, lambda z: other.exact(z[0], z[1])[None])
    assert rms["res"] > 1.0 and rms["ic"] < 1e-12


def test_references_match_exact_solutions_on_their_grids():
    for pde in (Kovasznay(eval_resolution=(11, 13)), Wave(eval_resolution=(7, 9))):
        ref = pde.reference()
        assert tuple(ref.fields[pde.field_names[0]].shape) == ref.shape
        assert ref.points().shape == (np.prod(ref.shape), pde.input_dim)


def test_wave_declares_time_and_kovasznay_does_not():
    assert Wave().time_axis == 0 and Kovasznay().time_axis is None
    assert Kovasznay().gauge_fields == ("p",)


def test_bad_pde_parameter_raises():
    with pytest.raises(ValueError, match="pde.re"):
        Kovasznay(re=-1.0)
    with pytest.raises(ValueError, match="unknown loss term"):
        Kovasznay(weights={"nope": 1.0}).default_weights()
