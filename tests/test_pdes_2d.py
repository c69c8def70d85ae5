"""The 2-D evolution problems (Gray-Scott, Ginzburg-Landau) and the N-D evolution base under them.

Residuals are checked on manufactured fields with forcings written out by hand here (to float64
round-off, and to float32 round-off, training's precision), and Ginzburg-Landau also on its exact
spatially uniform solution. No reference is generated here. Tests with float64 tolerances ask for
float64 (the ``x64`` fixture); the others run in float32.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hydra import compose, initialize_config_module

from pinnrun.build import build_pde
from pinnrun.config import validate
from pinnrun.losses import PINNLoss
from pinnrun.pdes.base import grid_field
from pinnrun.pdes.ginzburg_landau import GinzburgLandau
from pinnrun.pdes.gray_scott import GrayScott

PI = math.pi


def residuals(pde, fields, points):
    """The module's residual terms of the fields (t, x, y) -> (u, v) at points [n, 3]."""
    f = lambda z: jnp.stack(fields(z[0], z[1], z[2]))  # noqa: E731
    ps = next(ps for ps in pde.point_sets() if ps.name == "interior")
    out = jax.jit(jax.vmap(lambda z: ps.evaluate(f, z)))(jnp.asarray(points))
    return {k: np.asarray(v[:, 0]) for k, v in out.items()}


def points(pde, n=64, seed=0):
    """n interior points as float64 numpy, rounded to the precision in force (the points the
    residual sees, so that the hand-written forcing is exact at them)."""
    z = pde.sample_interior(jax.random.PRNGKey(seed), n)
    return np.asarray(z.astype(jnp.result_type(float)), np.float64)


# Tolerances of a manufactured residual: in float32 the errors measured up to 5e-5, on terms up to
# ~1000 (Gray-Scott's 1000 u v^2) that cancel to residuals of a few hundred.
TOL = {"float64": dict(rtol=1e-10, atol=1e-9), "float32": dict(rtol=1e-6, atol=5e-4)}


# Manufactured fields u* = a + e^{-t} sin(pi x) cos(pi y), v* = e^{-2t} cos(pi x) sin(2 pi y):
# Lap u* = -2 pi^2 (u* - a), Lap v* = -5 pi^2 v*.
def manufactured(a):
    def fields(t, x, y, xp=jnp):
        return a + xp.exp(-t) * xp.sin(PI * x) * xp.cos(PI * y), xp.exp(-2 * t) * xp.cos(PI * x) * xp.sin(2 * PI * y)

    def parts(z):
        t, x, y = z.T
        s = np.exp(-t) * np.sin(PI * x) * np.cos(PI * y)
        v = np.exp(-2 * t) * np.cos(PI * x) * np.sin(2 * PI * y)
        return a + s, v, -s, -2 * v, -2 * PI**2 * s, -5 * PI**2 * v  # u, v, u_t, v_t, Lap u, Lap v

    return fields, parts


def test_gray_scott_residuals_of_a_manufactured_field(precision):
    pde = GrayScott(eval_resolution=(3, 4, 4))
    fields, parts = manufactured(1.0)
    z = points(pde)
    u, v, u_t, v_t, lap_u, lap_v = parts(z)
    res = residuals(pde, fields, z)
    assert res["res_u"].dtype == np.dtype(precision)
    np.testing.assert_allclose(res["res_u"], u_t - 0.2 * lap_u - 40 * (1 - u) + 1000 * u * v**2, **TOL[precision])
    np.testing.assert_allclose(res["res_v"], v_t - 0.1 * lap_v + 100 * v - 1000 * u * v**2, **TOL[precision])
    other = residuals(GrayScott(eps2=0.2, eval_resolution=(3, 4, 4)), fields, z)
    assert np.max(np.abs(other["res_v"] - res["res_v"])) > 1.0  # a wrong coefficient is seen


def test_ginzburg_landau_residuals_of_a_manufactured_field(precision):
    pde = GinzburgLandau(eval_resolution=(3, 4, 4))
    fields, parts = manufactured(0.3)
    z = points(pde)
    u, v, u_t, v_t, lap_u, lap_v = parts(z)
    amp2 = u**2 + v**2
    res = residuals(pde, fields, z)
    assert res["res_u"].dtype == np.dtype(precision)
    # A_t - eps Lap A - k A + k (1 + 1.5 i) A |A|^2, real and imaginary parts
    np.testing.assert_allclose(res["res_u"], u_t - 0.004 * lap_u - 10 * u + 10 * (u - 1.5 * v) * amp2, **TOL[precision])
    np.testing.assert_allclose(res["res_v"], v_t - 0.004 * lap_v - 10 * v + 10 * (v + 1.5 * u) * amp2, **TOL[precision])


@pytest.mark.usefixtures("x64")
def test_ginzburg_landau_uniform_exact_solution_has_zero_residual():
    """A(t) = r e^{i theta} with r^2 = 1 / (1 + c e^{-2kt}), c = 1/r0^2 - 1, and
    theta = theta0 - 1.5 k (t + ln((1 + c e^{-2kt}) / (1 + c)) / (2k)) solves A' = kA - k(1 + 1.5i)A|A|^2."""
    k, r0, theta0 = 10.0, 0.4, 0.7
    c = 1 / r0**2 - 1

    def fields(t, x, y):
        r = 1 / jnp.sqrt(1 + c * jnp.exp(-2 * k * t))
        theta = theta0 - 1.5 * k * (t + jnp.log((1 + c * jnp.exp(-2 * k * t)) / (1 + c)) / (2 * k))
        return r * jnp.cos(theta) + 0 * x, r * jnp.sin(theta) + 0 * y

    pde = GinzburgLandau(eval_resolution=(3, 4, 4))
    res = residuals(pde, fields, points(pde))
    assert max(np.abs(r).max() for r in res.values()) < 1e-11
    wrong = residuals(GinzburgLandau(k=9.0, eval_resolution=(3, 4, 4)), fields, points(pde))
    assert max(np.abs(r).max() for r in wrong.values()) > 1e-2


@pytest.mark.usefixtures("x64")
@pytest.mark.parametrize("cls", [GrayScott, GinzburgLandau])
def test_terms_axes_initial_grid_and_derived_fields(cls):
    pde = cls(t_max=0.4, eval_resolution=(5, 6, 6))
    assert pde.input_names == ("t", "x", "y") and pde.field_names == ("u", "v")
    assert pde.term_names == ("ic_u", "ic_v", "res_u", "res_v")
    assert pde.periodic_axes == {1: 2.0, 2: 2.0} and pde.walled_axes == ()
    points, values = pde.initial_condition()
    assert points.shape == (36, 3) and np.all(points[:, 0] == 0.0)
    x, y = points[:, 1], points[:, 2]
    np.testing.assert_allclose(values, np.stack(pde.u0(x, y, xp=np), axis=-1), rtol=1e-12)
    derived = {"GrayScott": ("u_minus_1",), "GinzburgLandau": ("abs_A",)}[cls.__name__]
    assert pde.evaluated_names == ("u", "v", *derived)
    f = lambda z: jnp.array([0.6, -0.8])  # noqa: E731
    value = float(pde.derived_outputs(f, jnp.zeros(3))[derived[0]])
    assert value == pytest.approx({"u_minus_1": -0.4, "abs_A": 1.0}[derived[0]])


@pytest.mark.usefixtures("x64")
def test_ginzburg_landau_initial_condition_is_the_papers():
    pde = GinzburgLandau(eval_resolution=(3, 5, 5))
    z = jnp.array([0.0, 0.1, -0.2])
    u, v = np.asarray(pde.initial_field(z))
    envelope = math.exp(-25 * (0.1**2 + 0.2**2))
    assert (u, v) == pytest.approx((10 * -0.2 * envelope, 10 * 0.1 * envelope))


@pytest.mark.usefixtures("x64")
def test_points_per_step_from_the_config_and_a_random_draw_of_the_initial_grid():
    pde = GrayScott(eval_resolution=(3, 8, 8), points={"initial": 16})
    loss = PINNLoss(pde, lambda p, z: jnp.stack([z[1], z[2]]) * p, batch_size=32, dtype=jnp.float64)
    fixed = loss.fixed_points(jax.random.PRNGKey(0))
    assert fixed["initial"].shape == (64, 3)  # the whole grid is the pool
    batch = loss.sample(jax.random.PRNGKey(1), fixed)
    assert batch.points["initial"].shape == (16, 3) and batch.points["interior"].shape == (32, 3)
    # each drawn point comes with its own target (the initial field at that point)
    expected = jax.vmap(pde.initial_field)(batch.points["initial"])
    np.testing.assert_allclose(batch.context.targets["initial"], expected, rtol=1e-12)
    other = loss.sample(jax.random.PRNGKey(2), fixed)
    assert not np.array_equal(other.points["initial"], batch.points["initial"])
    everything = PINNLoss(GrayScott(eval_resolution=(3, 8, 8)), loss.apply, 32, dtype=jnp.float64)
    assert everything.sample(jax.random.PRNGKey(1), fixed).points["initial"].shape == (64, 3)


def test_bad_points_config_names_the_field():
    with pytest.raises(ValueError, match=r"pde.points.initial must be a positive integer or null; got 0"):
        GrayScott(points={"initial": 0})
    with pytest.raises(ValueError, match=r"pde.points.boundary: not a point set of gray_scott; point sets: initial, interior"):
        GrayScott(points={"boundary": 10}).check_points()
    with pytest.raises(ValueError, match=r"pde.eval_resolution must be \[nt, nx, ny\]"):
        GinzburgLandau(eval_resolution=(11, 20))
    with pytest.raises(ValueError, match=r"as many points on every space axis"):
        GinzburgLandau(eval_resolution=(11, 20, 30))


@pytest.mark.usefixtures("x64")
def test_grid_field_is_exact_at_the_nodes_and_linear_between():
    x, y = np.linspace(-1, 1, 5), np.linspace(0, 2, 3)
    X, Y = np.meshgrid(x, y, indexing="ij")
    values = np.stack([2 * X + 3 * Y, X * Y], axis=-1)
    field = grid_field([x, y], values)
    for i, j in [(0, 0), (2, 1), (4, 2), (3, 0)]:
        np.testing.assert_allclose(field(jnp.array([0.7, x[i], y[j]])), values[i, j], rtol=1e-12)
    np.testing.assert_allclose(field(jnp.array([0.0, 0.1, 0.3]))[0], 2 * 0.1 + 3 * 0.3, rtol=1e-12)


def composed(*overrides):
    with initialize_config_module(config_module="pinnrun.conf", version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides))


@pytest.mark.parametrize("name", ["gray_scott", "ginzburg_landau"])
def test_recipes_and_quick_budgets(name):
    recipe = validate(composed(f"pde={name}", "optim=soap"))
    assert recipe["arch"]["name"] == "pirate" and recipe["arch"]["activation"] == "swish"
    assert recipe["arch"]["fourier"] == {"scale": 1.0, "dim": 256} and recipe["arch"]["rwf"] == {"mean": 0.5, "std": 0.1}
    assert recipe["weighting"]["name"] == "grad_norm" and recipe["weighting"]["update_every"] == 1000
    assert recipe["optim"]["schedule_free"] is True and recipe["optim"]["clip_norm"] == 1.0
    assert (recipe["optim"]["warmup_steps"], recipe["optim"]["decay_steps"]) == (5000, 2000)
    expected = {"gray_scott": (100000, 4096, 10, 2.0, 1.0, 32), "ginzburg_landau": (100000, 8192, 5, 1.0, 5.0, 16)}[name]
    train, weighting = recipe["train"], recipe["weighting"]
    assert (train["steps"], train["batch_size"], train["time_windows"], recipe["pde"]["t_max"], weighting["causal_tol"], weighting["num_chunks"]) == expected
    assert recipe["pde"]["eval_resolution"] == [101, 200, 200]
    pde = build_pde(recipe["pde"])
    window = pde.t_max / train["time_windows"]
    quick = validate(composed(f"pde={name}", "optim=soap", "train=cpu_quick"))
    # the quick budget learns the recipe's first two windows
    assert quick["pde"]["t_max"] == pytest.approx(0.4)
    if name == "ginzburg_landau":  # in the same 0.2-long windows
        assert quick["train"]["time_windows"] * window == pytest.approx(0.4)
        assert pde.default_weights() == {"ic_u": 100.0, "ic_v": 100.0, "res_u": 1.0, "res_v": 1.0}
    else:  # in 8 windows of 0.05; both budgets feed the network t / (window length)
        assert quick["train"]["time_windows"] == 8 and quick["weighting"]["name"] == "fixed"
        assert build_pde(quick["pde"]).default_weights() == {"ic_u": 1000.0, "ic_v": 1000.0, "res_u": 1.0, "res_v": 1.0}
        # the first window (the fast transient) gets twice the steps of each later one
        assert quick["train"]["window_steps"] == [6000] + [3000] * 7 and recipe["train"]["window_steps"] is None
        for budget in (recipe, quick):
            length = budget["pde"]["t_max"] / budget["train"]["time_windows"]
            assert budget["arch"]["input_scale"]["t"] * length == pytest.approx(1.0)


@pytest.mark.usefixtures("x64")
def test_the_1d_problems_sit_on_the_same_base_with_their_old_point_counts():
    from pinnrun.pdes.burgers import Burgers

    pde = Burgers(eval_resolution=(5, 16))
    loss = PINNLoss(pde, lambda p, z: z[:1] * p, batch_size=64, dtype=jnp.float64)
    fixed = loss.fixed_points(jax.random.PRNGKey(0))
    batch = loss.sample(jax.random.PRNGKey(1), fixed)
    # the whole x-grid at t = 0, a quarter of the batch on the walls x = -1, 1, the batch inside
    assert {k: v.shape[0] for k, v in batch.points.items()} == {"initial": 16, "boundary": 16, "interior": 64}
    assert set(np.unique(np.asarray(batch.points["boundary"][:, 1]))) == {-1.0, 1.0}
    assert pde.walled_axes == (1,) and pde.periodic_axes == {}
    wider = PINNLoss(Burgers(eval_resolution=(5, 16), points={"boundary": 40}), loss.apply, 64, dtype=jnp.float64)
    assert wider.sample(jax.random.PRNGKey(1), fixed).points["boundary"].shape == (40, 2)
