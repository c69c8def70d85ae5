"""The rayleigh_taylor PDE: its residuals on exact Boussinesq solutions, its walls, its initial
condition from the reference's first snapshot and its config errors. The reference solver itself is
tests/test_reference_rayleigh_taylor.py."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pinnrun.pdes.rayleigh_taylor import RayleighTaylor

PI = math.pi
# A tiny reference: 16 Fourier x 16 Chebyshev, two steps of 0.01 skipped, snapshots at t = 0, 0.01, 0.02.
TINY = {"nx": 16, "ny": 16, "dt": 1e-2, "max_mode": 4, "t_skip": 0.01, "ny_out": 9}


@pytest.fixture(scope="module")
def pde():
    # Pr = 2 and Ra = 1e4: a1 = sqrt(Pr / Ra) and a4 = 1 / sqrt(Ra Pr) differ, so a swapped coefficient shows.
    return RayleighTaylor(ra=1e4, pr=2.0, t_max=0.02, snapshots=3, reference=TINY)


def point_set(pde, name):
    return next(ps for ps in pde.point_sets() if ps.name == name)


def residuals(pde, name, f, z):
    ps = point_set(pde, name)
    return {k: np.asarray(v[:, 0]) for k, v in jax.vmap(lambda point: ps.evaluate(f, point))(z).items()}


def conduction(pde):
    """At rest, T linear between the wall values and p hydrostatic (p_y = a2 T): a steady solution."""
    tw = pde.t_wall

    def field(z):
        t, x, y = z
        return jnp.stack([0.0 * t, 0.0 * x, pde.a2 * tw * (y - y**2 / 2), tw * (1.0 - y)])

    return field


def test_the_coefficients_follow_the_nondimensionalisation(pde):
    assert pde.a1 == pytest.approx(math.sqrt(2.0 / 1e4)) and pde.a4 == pytest.approx(1.0 / math.sqrt(2e4))
    assert pde.a2 == 1.0 and pde.t_wall == pytest.approx(math.tanh(10.0))
    assert pde.term_names == ("ic_u", "ic_v", "ic_T", "wall_u", "wall_v", "wall_T", "ru", "rv", "rc", "rT")
    assert pde.evaluated_names == ("u", "v", "p", "T") and pde.periodic_axes == {1: 1.0} and pde.walled_axes == (2,)


def test_the_conduction_state_has_zero_residuals_and_meets_the_walls(pde):
    z = pde.sample_interior(jax.random.PRNGKey(0), 64)
    for name, res in residuals(pde, "interior", conduction(pde), z).items():
        np.testing.assert_allclose(res, 0.0, atol=1e-6, err_msg=name)
    walls = point_set(pde, "wall").sample(jax.random.PRNGKey(1), 64)
    assert set(np.unique(np.asarray(walls[:, 2]))) == {0.0, 2.0}
    for name, res in residuals(pde, "wall", conduction(pde), walls).items():
        np.testing.assert_allclose(res, 0.0, atol=1e-6, err_msg=name)
    # a network that is zero everywhere misses the walls' buoyancy by +-T_wall
    zero = residuals(pde, "wall", lambda point: jnp.zeros(4), walls)["wall_T"]
    np.testing.assert_allclose(zero, np.where(np.asarray(walls[:, 2]) < 1, -pde.t_wall, pde.t_wall), rtol=1e-6)


def test_the_background_is_the_unperturbed_state_in_hydrostatic_balance(pde):
    """RayleighTaylor.background (arch.background): u = v = 0, T_b = -tanh((y - 1) / delta) (the
    reference's base profile) and p_b with dp_b/dy = a2 T_b. The momentum and continuity residuals
    vanish, the energy residual is T's diffusion only, -a4 T_b'' = -a4 (2 / delta^2) tanh sech^2 (s),
    and the walls are met exactly."""
    from pinnrun.reference.rayleigh_taylor import base_profile

    delta = pde.delta
    z = pde.sample_interior(jax.random.PRNGKey(2), 64)
    values = np.asarray(jax.vmap(pde.background)(z))
    np.testing.assert_allclose(values[:, :2], 0.0)
    np.testing.assert_allclose(values[:, 3], base_profile(np.asarray(z[:, 2]), delta), atol=1e-6)
    res = residuals(pde, "interior", pde.background, z)
    for name in ("ru", "rv", "rc"):
        np.testing.assert_allclose(res[name], 0.0, atol=2e-5, err_msg=name)
    s = (np.asarray(z[:, 2], np.float64) - 1.0) / delta
    diffusion = -pde.a4 * (2.0 / delta**2) * np.tanh(s) / np.cosh(s) ** 2
    np.testing.assert_allclose(res["rT"], diffusion, atol=2e-5 * np.abs(diffusion).max())
    walls = point_set(pde, "wall").sample(jax.random.PRNGKey(1), 64)
    for name, r in residuals(pde, "wall", pde.background, walls).items():
        np.testing.assert_allclose(r, 0.0, atol=1e-6, err_msg=name)
    # the thinnest interface the solver takes (delta 0.01, |y - 1| / delta up to 100 at the walls):
    # the pressure stays finite, -a2 delta (|s| - log 2) there, and its balance holds up to y = 1
    thin = RayleighTaylor(ra=1e4, pr=2.0, t_max=0.02, snapshots=3, reference={**TINY, "delta": 0.01})
    ends = jnp.array([[0.0, 0.3, 0.0], [0.0, 0.3, 2.0], [0.0, 0.3, 1.0]])
    np.testing.assert_allclose(np.asarray(jax.vmap(thin.background)(ends))[:, 2],
                               [-thin.a2 * 0.01 * (100 - math.log(2))] * 2 + [0.0], rtol=1e-6)
    res = residuals(thin, "interior", thin.background, jnp.concatenate([z, ends]))
    for name in ("ru", "rv", "rc"):
        assert np.all(np.isfinite(res[name])) and np.abs(res[name]).max() < 1e-4, name


def test_a_diffusing_layer_carried_by_a_uniform_flow_is_an_exact_solution(pde):
    # u = U, v = 0, T = e^{-a4 k^2 t} cos(k y), p = a2 e^{-a4 k^2 t} sin(k y) / k: every residual is zero
    # (the energy equation's diffusion uses a4, the pressure balances the buoyancy a2 T).
    k, speed = 3.0, 0.7

    def field(z):
        t, x, y = z
        decay = jnp.exp(-pde.a4 * k**2 * t)
        return jnp.stack([speed + 0.0 * x, 0.0 * x, pde.a2 * decay * jnp.sin(k * y) / k, decay * jnp.cos(k * y)])

    z = pde.sample_interior(jax.random.PRNGKey(2), 64)
    for name, res in residuals(pde, "interior", field, z).items():
        np.testing.assert_allclose(res, 0.0, atol=2e-6, err_msg=name)


def test_taylor_green_decays_with_the_viscosity_a1_and_buoyancy_enters_v_only(pde):
    nu = pde.a1

    def taylor_green(z, buoyancy):
        t, x, y = z
        decay = jnp.exp(-8 * PI**2 * nu * t)
        u = -jnp.cos(2 * PI * x) * jnp.sin(2 * PI * y) * decay
        v = jnp.sin(2 * PI * x) * jnp.cos(2 * PI * y) * decay
        p = -0.25 * (jnp.cos(4 * PI * x) + jnp.cos(4 * PI * y)) * decay**2
        return jnp.stack([u, v, p, buoyancy + 0.0 * t])

    z = pde.sample_interior(jax.random.PRNGKey(3), 64)
    for name, res in residuals(pde, "interior", lambda point: taylor_green(point, 0.0), z).items():
        np.testing.assert_allclose(res, 0.0, atol=2e-5, err_msg=name)
    # a uniform buoyancy with no hydrostatic pressure leaves -a2 T in the vertical momentum only
    res = residuals(pde, "interior", lambda point: taylor_green(point, 0.5), z)
    np.testing.assert_allclose(res["rv"], -0.5 * pde.a2, atol=2e-5)
    for name in ("ru", "rc", "rT"):
        np.testing.assert_allclose(res[name], 0.0, atol=2e-5, err_msg=name)


def test_the_initial_condition_is_the_references_first_snapshot(pde, tmp_path, monkeypatch):
    monkeypatch.setenv("PINNRUN_CACHE_DIR", str(tmp_path))
    from pinnrun import reference

    data = reference.load("rayleigh_taylor", progress=False, ra=1e4, pr=2.0, T=0.02, nt=3, **TINY)
    assert pde.eval_resolution == (3, 17, 9) and data["T"].shape == (3, 17, 9)
    points, values = pde.initial_condition()
    np.testing.assert_allclose(points[:, 2].reshape(17, 9)[0], np.linspace(0.0, 2.0, 9))
    for i, name in enumerate(("u", "v", "p", "T")):
        np.testing.assert_allclose(values[:, i], data[name][0].reshape(-1), rtol=1e-6, atol=1e-7, err_msg=name)
    ref = pde.reference()
    assert set(ref.fields) == {"u", "v", "p", "T"} and ref.shape == (3, 17, 9)
    np.testing.assert_array_equal(ref.axes["y"], data["y"])


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"ra": "x"}, "pde.ra must be a number"),
        ({"reference": {**TINY, "nx": 15}}, "pde.reference.nx must be an even integer"),
        ({"snapshots": 1}, "pde.snapshots must be an integer"),
        ({"reference": {"T": 1.0}}, "pde.reference.T: set pde.t_max instead"),
        ({"reference": {"ra": 1e6}}, "pde.reference.ra: set pde.ra instead"),
        ({"reference": {**TINY, "t_skip": 0.013}}, "pde.reference.t_skip must be a whole number of snapshot intervals"),
        ({"reference": {"speed": 1.0}}, "unknown argument(s) speed"),
    ],
)
def test_bad_parameters_name_their_key(kwargs, message):
    with pytest.raises(ValueError) as info:
        RayleighTaylor(**{"t_max": 0.02, "snapshots": 3, "reference": TINY, **kwargs})
    assert message in str(info.value) and "\n" not in str(info.value)


def test_the_recipe_and_the_quick_budget():
    from hydra import compose, initialize_config_module

    from pinnrun.build import build_pde
    from pinnrun.config import validate

    def composed(*overrides):
        with initialize_config_module(config_module="pinnrun.conf", version_base="1.3"):
            return validate(compose(config_name="config", overrides=["pde=rayleigh_taylor", *overrides]))

    recipe = composed("optim=soap")
    arch, train, weighting, optim = recipe["arch"], recipe["train"], recipe["weighting"], recipe["optim"]
    assert (arch["name"], arch["width"], arch["depth"], arch["activation"], arch["periodic"]) == ("pirate", 256, 3, "swish", True)
    assert arch["fourier"]["scale"] == 1.0
    assert (train["steps"], train["batch_size"], train["time_windows"]) == (50000, 8192, 4)
    assert (weighting["name"], weighting["update_every"], weighting["causal"], weighting["causal_tol"], weighting["num_chunks"]) == (
        "grad_norm", 1000, True, 1.0, 16)
    assert (optim["precondition_frequency"], optim["schedule_free"], optim["clip_norm"], optim["warmup_steps"], optim["decay_steps"],
            optim["decay_rate"]) == (2, True, 1.0, 2000, 2000, 0.9)
    pde = build_pde(recipe["pde"])
    assert pde.default_weights() == {"ic_u": 100.0, "ic_v": 100.0, "ic_T": 1.0, "wall_u": 100.0, "wall_v": 100.0, "wall_T": 1.0,
                                     "ru": 1.0, "rv": 1.0, "rc": 1.0, "rT": 1.0}
    assert recipe["pde"]["points"] == {"initial": 16384, "wall": 16384}
    assert pde.periodic_axes == {1: 1.0} and pde.eval_resolution == (45, 257, 257)
    from pinnrun.reference import rayleigh_taylor as rt

    problem = rt.get_rayleigh_taylor(**pde.reference_parameters(), **pde.reference_grid())
    assert problem.key_data() == rt.get_rayleigh_taylor().key_data()  # the config is the solver's defaults
    quick = composed("optim=soap", "train=cpu_quick")
    quick_pde = build_pde(quick["pde"])
    # the quick budget learns the recipe's first window, on the solver's QUICK grid
    assert quick["train"]["time_windows"] == 1 and quick_pde.t_max == pytest.approx(pde.t_max / train["time_windows"])
    assert rt.get_rayleigh_taylor(**quick_pde.reference_parameters(), **quick_pde.reference_grid()).key_data() == \
        rt.get_rayleigh_taylor(**rt.QUICK).key_data()
    # the recipe learns the whole fields, as the paper; the quick budget the departure from the
    # unperturbed state, each field scaled to the departure's size
    assert not recipe["arch"]["background"] and recipe["arch"]["output_scale"] is None
    assert quick["arch"]["background"] and quick["arch"]["output_scale"] == {"u": 1e-3, "v": 1e-3, "p": 1e-3, "T": 1e-2}
    for budget in (recipe, quick):
        length = budget["pde"]["t_max"] / budget["train"]["time_windows"]
        assert budget["arch"]["input_scale"]["t"] * length == pytest.approx(1.0)
