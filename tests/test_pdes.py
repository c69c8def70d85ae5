"""PDE residuals vanish on the analytic solutions and not on perturbed ones."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pinnrun.pdes.kovasznay import Kovasznay
from pinnrun.pdes.wave import Wave

jax.config.update("jax_enable_x64", True)


def residual_rms(pde, f, key=jax.random.PRNGKey(0), n=256):
    out = {}
    for ps in pde.point_sets():
        points = ps.sample(jax.random.fold_in(key, hash(ps.name) % 1000), n).astype(jnp.float64)
        # An initial set compares with its target, here the PDE's own initial condition.
        targets = jax.vmap(lambda z: ps.target(pde.initial_field, z))(points) if ps.target else None
        res = jax.vmap(lambda z, y: ps.evaluate(f, z, y))(points, targets)
        out.update({k: float(jnp.sqrt(jnp.mean(v**2))) for k, v in res.items()})
    return out


def test_kovasznay_exact_solution_has_zero_residuals():
    pde = Kovasznay()
    rms = residual_rms(pde, lambda z: pde.exact(z))
    assert set(rms) == {"bc", "ru", "rv", "rc"}
    assert max(rms.values()) < 1e-10, rms


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


def test_wave_exact_solution_has_zero_residuals():
    pde = Wave()
    exact = lambda z: pde.exact(z[0], z[1])[None]  # noqa: E731
    rms = residual_rms(pde, exact)
    assert set(rms) == {"ic", "ic_t", "bc", "res"}
    assert max(rms.values()) < 1e-9, rms


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
