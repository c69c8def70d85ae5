"""The 1-D time-dependent benchmarks: Burgers, Allen-Cahn, KdV, Kuramoto-Sivashinsky.

Residual formulas are checked on exact solutions (Burgers' Cole-Hopf front, the KdV soliton) and on
manufactured solutions u* with a forcing F computed by hand here: the module's residual of u* must
equal F (to float64 round-off, and to float32 round-off, training's precision), and must differ
from it when a coefficient is changed. No reference is generated here except in the ``slow`` test.
Tests with float64 tolerances ask for float64 (the ``x64`` fixture); the others run in float32.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hydra import compose, initialize_config_module

from pinnrun import reference as reference_module
from pinnrun.build import build_pde
from pinnrun.config import validate
from pinnrun.pdes.allen_cahn import AllenCahn
from pinnrun.pdes.burgers import Burgers
from pinnrun.pdes.kdv import KdV
from pinnrun.pdes.ks import KuramotoSivashinsky

CLASSES = {"burgers": Burgers, "allen_cahn": AllenCahn, "kdv": KdV, "ks": KuramotoSivashinsky}
TERMS = {"burgers": ("ic", "bc", "res"), "allen_cahn": ("ic", "res"), "kdv": ("ic", "res"), "ks": ("ic", "res")}


def point_set(pde, name):
    return next(ps for ps in pde.point_sets() if ps.name == name)


def residual_at(pde, u, points, term="res", set_name="interior"):
    """The module's residual of the field u(t, x) at points [n, 2] (initial terms: against the PDE's
    own initial condition, the target of the first time window)."""
    ps = point_set(pde, set_name)
    f = lambda z: jnp.reshape(u(z[0], z[1]), (1,))  # noqa: E731
    target = (lambda z: ps.target(pde.initial_field, z)) if ps.target is not None else (lambda z: None)  # noqa: E731
    return np.asarray(jax.vmap(lambda z: ps.evaluate(f, z, target(z))[term])(jnp.asarray(points))[:, 0])


def interior_points(pde, n=200, seed=0):
    return np.asarray(pde.sample_interior(jax.random.PRNGKey(seed), n), dtype=np.float64)


def rms(a):
    return float(np.sqrt(np.mean(np.asarray(a) ** 2)))


# ----- manufactured solutions: u* = exp(-t) sin(k x), forcing F = residual of u* -----------------
def manufactured(k):
    u = lambda t, x: jnp.exp(-t) * jnp.sin(k * x)  # noqa: E731
    # (u, u_t, u_x, u_xx, u_xxx, u_xxxx) as numpy, for the hand-written forcings
    def parts(t, x):
        s, c = np.exp(-t) * np.sin(k * x), np.exp(-t) * np.cos(k * x)
        return s, -s, k * c, -(k**2) * s, -(k**3) * c, k**4 * s

    return u, parts


def forcing(name, pde, t, x):
    if name == "ks":
        u, u_t, u_x, u_xx, _, u_xxxx = manufactured(2.0)[1](t, x)
        return u_t + pde.alpha * u * u_x + pde.beta * u_xx + pde.gamma * u_xxxx
    u, u_t, u_x, u_xx, u_xxx, _ = manufactured(math.pi)[1](t, x)
    if name == "burgers":
        return u_t + u * u_x - pde.nu * u_xx
    if name == "allen_cahn":
        return u_t - pde.eps * u_xx + pde.gamma * (u**3 - u)
    if name == "kdv":
        return u_t + u * u_x + pde.delta**2 * u_xxx
    raise AssertionError(name)


@pytest.mark.parametrize("name", list(CLASSES))
def test_residual_of_manufactured_solution_equals_forcing(name, precision):
    pde = CLASSES[name]()
    u, _ = manufactured(2.0 if name == "ks" else math.pi)
    z = interior_points(pde).astype(precision)  # the forcing in float64 at the points the residual sees
    expected = forcing(name, pde, z[:, 0].astype(np.float64), z[:, 1].astype(np.float64))
    assert rms(expected) > 0.1
    residual = residual_at(pde, u, z)
    assert residual.dtype == np.dtype(precision)
    # float32: measured max errors 5e-7 .. 1.1e-6 on forcings of rms 0.7 .. 2.4
    tol = {"float64": 1e-10, "float32": 1e-5}[precision]
    np.testing.assert_allclose(residual, expected, rtol=tol, atol=tol)


@pytest.mark.usefixtures("x64")
@pytest.mark.parametrize(
    "name, changed, threshold",
    [
        ("burgers", {"nu": 0.1}, 0.1),
        ("allen_cahn", {"eps": 1e-2}, 0.01),
        ("allen_cahn", {"gamma": 4.0}, 0.01),
        ("kdv", {"delta": 0.1}, 0.1),
        ("ks", {"alpha": 5.0}, 0.1),
        ("ks", {"beta": 0.5}, 0.1),
        ("ks", {"gamma": 0.01}, 0.02),
    ],
)
def test_changed_coefficient_is_detected(name, changed, threshold):
    nominal, other = CLASSES[name](), CLASSES[name](**changed)
    u, _ = manufactured(2.0 if name == "ks" else math.pi)
    z = interior_points(nominal)
    expected = forcing(name, nominal, z[:, 0], z[:, 1])
    assert rms(residual_at(nominal, u, z) - expected) < 1e-10
    assert rms(residual_at(other, u, z) - expected) > threshold


# ----- exact solutions ---------------------------------------------------------------------------
def burgers_front(nu, c=0.5, x0=-0.3):
    """Cole-Hopf with phi = 1 + exp(-c (x - x0 - c t) / nu): a viscous shock from 2c to 0 moving at c."""
    return lambda t, x: c * (1.0 - jnp.tanh(c * (x - x0 - c * t) / (2.0 * nu)))


def kdv_soliton(delta, c=0.5, x0=-0.5):
    return lambda t, x: 3.0 * c / jnp.cosh(math.sqrt(c) / (2.0 * delta) * (x - c * t - x0)) ** 2


def near_front(pde, x_of_t, width, n=200, seed=1):
    """Interior points within a few widths of a moving front x_of_t(t)."""
    z = interior_points(pde, n, seed)
    offset = width * np.asarray(jax.random.normal(jax.random.PRNGKey(seed + 1), (n,)))
    return np.stack([z[:, 0], x_of_t(z[:, 0]) + offset], axis=-1)


@pytest.mark.usefixtures("x64")
def test_burgers_cole_hopf_front_has_zero_residual():
    pde = Burgers()
    u = burgers_front(pde.nu)
    z = near_front(pde, lambda t: -0.3 + 0.5 * t, width=4 * pde.nu / 0.5)
    u_x = np.abs(np.asarray(jax.vmap(jax.grad(u, argnums=1))(z[:, 0], z[:, 1])))
    assert u_x.max() > 10.0  # the points do sample the front
    # The terms are O(100) there: float64 round-off leaves ~1e-12 relative.
    assert rms(residual_at(pde, u, z)) < 1e-9
    assert rms(residual_at(pde, u, interior_points(pde))) < 1e-9
    assert rms(residual_at(Burgers(nu=2 * pde.nu), u, z)) > 1.0


@pytest.mark.usefixtures("x64")
def test_kdv_soliton_has_zero_residual():
    pde = KdV()
    u = kdv_soliton(pde.delta)
    z = near_front(pde, lambda t: -0.5 + 0.5 * t, width=2 * pde.delta / math.sqrt(0.5))
    assert rms(residual_at(pde, u, z)) < 1e-8
    assert rms(residual_at(KdV(delta=0.03), u, z)) > 1.0


@pytest.mark.usefixtures("x64")
def test_allen_cahn_stationary_kink_has_zero_residual():
    pde = AllenCahn()
    a = math.sqrt(pde.gamma / (2 * pde.eps))  # tanh(a x) balances eps u_xx = gamma (u^3 - u)
    u = lambda t, x: jnp.tanh(a * (x - 0.2)) + 0.0 * t  # noqa: E731
    z = near_front(pde, lambda t: 0.2 + 0.0 * t, width=2 / a)
    assert rms(residual_at(pde, u, z)) < 1e-9
    assert rms(residual_at(AllenCahn(gamma=2.5), u, z)) > 0.1


# ----- point sets, initial condition, periodicity, reference wiring -------------------------------
@pytest.mark.usefixtures("x64")
@pytest.mark.parametrize("name", list(CLASSES))
def test_terms_initial_points_and_periodicity(name):
    pde = CLASSES[name]()
    problem = reference_module.get_problem(name)  # cheap: no solve
    assert pde.term_names == TERMS[name]
    assert pde.input_names == ("t", "x") and pde.field_names == ("u",) and pde.time_axis == 0
    assert pde.bounds["x"] == tuple(problem.domain) and pde.bounds["t"] == (0.0, problem.T)
    expected_period = {"burgers": {}, "ks": {1: 2 * math.pi}}.get(name, {1: 2.0})
    assert pde.periodic_axes.keys() == expected_period.keys()
    for axis, period in expected_period.items():
        assert pde.periodic_axes[axis] == pytest.approx(period, rel=1e-15)

    initial = point_set(pde, "initial")
    assert initial.fixed and initial.kind == "initial" and initial.terms == ("ic",)
    points = np.asarray(initial.sample(jax.random.PRNGKey(0), 7))
    assert points.shape == (512, 2)
    np.testing.assert_array_equal(points[:, 0], 0.0)
    np.testing.assert_allclose(points[:, 1], problem.x, rtol=0, atol=1e-15)
    ic_points, ic_values = pde.initial_condition()
    np.testing.assert_array_equal(ic_points, points)
    assert ic_values.shape == (512, 1)
    np.testing.assert_allclose(ic_values[:, 0], problem.u0(problem.x), rtol=0, atol=1e-14)

    # u0 itself satisfies the ic term; a shifted field does not.
    u0 = lambda t, x: pde.u0(x) + 0.0 * t  # noqa: E731
    assert rms(residual_at(pde, u0, points, "ic", "initial")) < 1e-14
    assert rms(residual_at(pde, lambda t, x: u0(t, x) + 0.1, points, "ic", "initial")) == pytest.approx(0.1)

    interior = point_set(pde, "interior")
    assert interior.kind == "residual" and not interior.fixed
    z = np.asarray(interior.sample(jax.random.PRNGKey(1), 64))
    assert z.shape == (64, 2)
    assert np.all(z >= np.asarray(pde.lower()) - 1e-12) and np.all(z <= np.asarray(pde.upper()) + 1e-12)


@pytest.mark.usefixtures("x64")
def test_burgers_boundary_points_and_term():
    pde = Burgers()
    boundary = point_set(pde, "boundary")
    assert boundary.kind == "boundary" and boundary.terms == ("bc",)
    z = np.asarray(boundary.sample(jax.random.PRNGKey(0), 256))
    assert len(z) > 0 and set(np.unique(z[:, 1])) == {-1.0, 1.0}
    u = lambda t, x: -jnp.exp(-t) * jnp.sin(jnp.pi * x)  # noqa: E731
    assert rms(residual_at(pde, u, z, "bc", "boundary")) < 1e-14
    assert rms(residual_at(pde, lambda t, x: u(t, x) + 1.0, z, "bc", "boundary")) == pytest.approx(1.0)


@pytest.mark.parametrize("name", list(CLASSES))
def test_reference_maps_onto_the_default_cached_problem(name, monkeypatch):
    calls = []
    nt, nx = (251 if name == "ks" else 201), 512

    def fake_load(problem_name, **overrides):
        calls.append((problem_name, overrides))
        return {"t": np.linspace(0, 1, nt), "x": np.linspace(0, 1, nx), "u": np.zeros((nt, nx))}

    monkeypatch.setattr(reference_module, "load", fake_load)
    ref = CLASSES[name]().reference()
    assert list(ref.axes) == ["t", "x"] and list(ref.fields) == ["u"] and ref.shape == (nt, nx)
    (problem_name, overrides), = calls
    assert problem_name == name
    # The default PDE asks for exactly the default reference problem (same cache entry).
    assert reference_module.get_problem(name, **overrides) == reference_module.get_problem(name)
    changed = {"burgers": {"nu": 0.01}, "allen_cahn": {"eps": 1e-3}, "kdv": {"delta": 0.03}, "ks": {"beta": 0.5}}[name]
    calls.clear()
    CLASSES[name](**changed).reference()
    assert reference_module.get_problem(name, **calls[0][1]).p[next(iter(changed))] == next(iter(changed.values()))


# ----- parameter validation ------------------------------------------------------------------------
@pytest.mark.parametrize(
    "name, kwargs, key",
    [
        ("burgers", {"nu": 0.0}, "pde.nu"),
        ("burgers", {"nu": -1.0}, "pde.nu"),
        ("burgers", {"t_max": 0.0}, "pde.t_max"),
        ("allen_cahn", {"eps": -1e-4}, "pde.eps"),
        ("allen_cahn", {"gamma": 0.0}, "pde.gamma"),
        ("kdv", {"delta": 0.0}, "pde.delta"),
        ("kdv", {"eval_resolution": [201]}, "pde.eval_resolution"),
        ("ks", {"alpha": -1.0}, "pde.alpha"),
        ("ks", {"beta": float("nan")}, "pde.beta"),
        ("ks", {"gamma": 0.0}, "pde.gamma"),
        ("ks", {"t_max": -1.0}, "pde.t_max"),
    ],
)
def test_bad_parameters_name_the_key(name, kwargs, key):
    with pytest.raises(ValueError, match=key.replace(".", r"\.")):
        CLASSES[name](**kwargs)


def test_unknown_weight_term_is_rejected():
    with pytest.raises(ValueError, match="pde.weights"):
        KdV(weights={"bc": 1.0}).default_weights()
    assert Burgers(weights={"ic": 100.0}).default_weights() == {"ic": 100.0, "bc": 1.0, "res": 1.0}


# ----- configs ---------------------------------------------------------------------------------------
def composed(*overrides):
    with initialize_config_module(config_module="pinnrun.conf", version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides))


RECIPES = {
    # name: (fourier scale, weighting, causal tol or None, batch size, steps, ic weight)
    "burgers": (1.0, "fixed", None, 8192, 100_000, 100.0),
    "allen_cahn": (2.0, "ntk", None, 8192, 300_000, 100.0),
    "kdv": (1.0, "fixed", 0.1, 4096, 200_000, 100.0),
    "ks": (1.0, "fixed", 0.1, 4096, 200_000, 1000.0),
}


@pytest.mark.parametrize("name", list(CLASSES))
def test_config_composes_validates_and_builds(name):
    cfg = validate(composed(f"pde={name}"))
    scale, weighting, tol, batch, steps, ic_weight = RECIPES[name]
    pde = build_pde(cfg["pde"])
    assert type(pde) is CLASSES[name]
    # Every term is listed in the yaml, and the yaml's parameters are the class defaults.
    assert set(cfg["pde"]["weights"]) == set(pde.term_names)
    assert pde.default_weights()["ic"] == ic_weight and pde.default_weights()["res"] == 1.0
    default = CLASSES[name]()
    for key, value in vars(default).items():
        if key != "_weights":
            assert getattr(pde, key) == value, key
    assert cfg["arch"]["periodic"] is True and cfg["arch"]["fourier"]["scale"] == scale
    assert cfg["weighting"]["name"] == weighting
    assert cfg["weighting"]["causal"] is (tol is not None)
    if tol is not None:
        assert cfg["weighting"]["causal_tol"] == tol
    assert cfg["train"]["batch_size"] == batch and cfg["train"]["steps"] == steps
    # A user's override still wins over the recipe.
    assert validate(composed(f"pde={name}", "train.steps=7"))["train"]["steps"] == 7
    assert validate(composed(f"pde={name}", "weighting=grad_norm"))["weighting"]["name"] == "grad_norm"


# ----- the real references (generated on first use, a few seconds each) -----------------------------
@pytest.mark.slow
@pytest.mark.usefixtures("x64")
@pytest.mark.parametrize("name", list(CLASSES))
def test_reference_starts_at_the_initial_condition(name):
    pde = CLASSES[name]()
    ref = pde.reference()
    assert ref.shape == pde.eval_resolution
    points, values = pde.initial_condition()
    np.testing.assert_allclose(ref.axes["x"], points[:, 1], atol=1e-15)
    np.testing.assert_allclose(ref.fields["u"][0], values[:, 0], atol=1e-12)
    assert np.all(np.isfinite(ref.fields["u"]))
