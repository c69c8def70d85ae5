"""Tests of pinnrun.reference: spectral ETDRK4 references, Cole-Hopf Burgers, cache and CLI.

The default suite generates each default reference once (module-scoped temporary cache) plus a
few cheap coarse variants; the full refinement studies (twice the modes, half the time step of the
default resolution) are marked ``slow``.
"""

from __future__ import annotations

import math
import os
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

from pinnrun import reference as R
from pinnrun.reference import cache as C
from pinnrun.reference import cli
from pinnrun.reference.problems import PROBLEMS
from pinnrun.reference.spectral import (
    PeriodicSpectralSolver,
    etdrk4_coefficients,
    spectral_derivative,
    trig_interpolation_matrix,
)

SPECTRAL = ["burgers", "allen_cahn", "kdv", "ks"]


from conftest import rel_l2  # noqa: E402  (the cache_dir and ref fixtures live in conftest.py too)


def coarse(name):
    r = PROBLEMS[name].resolution
    return {"modes": r.modes // 2, "dt": r.dt * 2}


def refined(name):
    r = PROBLEMS[name].resolution
    return {"modes": r.modes * 2, "dt": r.dt / 2}


# --------------------------------------------------------------------------------------------
# API basics
# --------------------------------------------------------------------------------------------


def test_available_names():
    assert R.available(1) == ["wave", "burgers", "allen_cahn", "kdv", "ks"]


def test_unknown_name_lists_allowed_values(tmp_path):
    with pytest.raises(ValueError) as info:
        R.load("nope", cache_dir=tmp_path)
    msg = str(info.value)
    assert "nope" in msg
    for name in R.available(1):
        assert name in msg
    with pytest.raises(ValueError):
        R.generate("nope", cache_dir=tmp_path)


def test_unknown_override_rejected():
    with pytest.raises(ValueError, match="unknown override"):
        R.get_problem("burgers", bogus=1.0)


def test_wave_exact():
    d = R.load("wave")
    t, x, u = d["t"], d["x"], d["u"]
    assert t.shape == (201,) and x.shape == (256,) and u.shape == (201, 256)
    assert x[0] == 0.0 and x[-1] == 1.0 and t[-1] == 1.0
    np.testing.assert_allclose(u[0], np.sin(np.pi * x) + 0.5 * np.sin(4 * np.pi * x), atol=1e-15)
    np.testing.assert_allclose(u[:, [0, -1]], 0.0, atol=1e-14)
    # u_tt = 4 u_xx, checked with second differences (interior points)
    dt, dx = t[1] - t[0], x[1] - x[0]
    utt = (u[2:, 1:-1] - 2 * u[1:-1, 1:-1] + u[:-2, 1:-1]) / dt**2
    uxx = (u[1:-1, 2:] - 2 * u[1:-1, 1:-1] + u[1:-1, :-2]) / dx**2
    assert np.abs(utt - 4 * uxx).max() < 0.03 * np.abs(utt).max()


# --------------------------------------------------------------------------------------------
# Spectral machinery
# --------------------------------------------------------------------------------------------


def test_etdrk4_coefficients_match_closed_forms():
    h = 0.3
    z = np.array([-60.0, -7.5, -1.2, 2.0, 5.0, 30j, -4.0 + 25j, 3.0 - 2.0j, 1e3j])
    lin = z / h
    e, e2, q, f1, f2, f3 = etdrk4_coefficients(lin, h)
    np.testing.assert_allclose(e, np.exp(z), rtol=1e-14)
    np.testing.assert_allclose(q, h * (np.exp(z / 2) - 1) / z, rtol=1e-12)
    np.testing.assert_allclose(f1, h * (-4 - z + np.exp(z) * (4 - 3 * z + z**2)) / z**3, rtol=1e-11)
    np.testing.assert_allclose(f2, h * (2 + z + np.exp(z) * (-2 + z)) / z**3, rtol=1e-11)
    np.testing.assert_allclose(f3, h * (-4 - 3 * z - z**2 + np.exp(z) * (4 - z)) / z**3, rtol=1e-11)
    # z -> 0 limits: Q = h/2, f1 = f2 = f3 = h/6 (no cancellation thanks to the contour)
    e, e2, q, f1, f2, f3 = etdrk4_coefficients(np.array([0.0, 1e-12]), h)
    assert not np.iscomplexobj(q)
    np.testing.assert_allclose(q, h / 2, rtol=1e-12)
    for f in (f1, f2, f3):
        np.testing.assert_allclose(f, h / 6, rtol=1e-12)


def test_interpolation_and_derivative_are_spectral():
    n, a, b = 64, -1.0, 1.0
    xg = a + (b - a) * np.arange(n) / n
    f = lambda x: np.exp(np.sin(np.pi * x))  # noqa: E731
    v = np.fft.rfft(f(xg))
    v[-1] = 0.0
    x = np.linspace(a, b, 101)
    u = np.real(v @ trig_interpolation_matrix(n, a, b, x).T)
    np.testing.assert_allclose(u, f(x), atol=1e-13)
    d = spectral_derivative(f(xg), b - a, 1)
    np.testing.assert_allclose(d, np.pi * np.cos(np.pi * xg) * f(xg), atol=1e-12)


def test_linear_dispersion_is_exact():
    """With no nonlinearity ETDRK4 integrates u_t = -d^2 u_xxx exactly (complex symbol)."""
    d2 = 0.022**2
    s = PeriodicSpectralSolver(128, -1.0, 1.0, lambda k: 1j * d2 * k**3)
    u0 = lambda x: np.cos(np.pi * x) + np.sin(7 * np.pi * x)  # noqa: E731
    t = np.linspace(0.0, 1.0, 5)
    x = np.linspace(-1.0, 1.0, 200)
    u = s.evaluate(s.solve(s.project(u0), t, 0.05), x)
    k1, k7 = np.pi, 7 * np.pi
    exact = np.cos(k1 * x[None] + d2 * k1**3 * t[:, None]) + np.sin(k7 * x[None] + d2 * k7**3 * t[:, None])
    np.testing.assert_allclose(u, exact, atol=1e-12)


# --------------------------------------------------------------------------------------------
# Burgers: Cole-Hopf and spectral
# --------------------------------------------------------------------------------------------


def test_cole_hopf_maximum_slope():
    ux = R.burgers_cole_hopf_ux(0.5105, 0.0)
    assert abs(ux + 152.00516) < 1e-4
    # the analytic derivative agrees with a finite difference of u
    h = 1e-5
    for t, x in [(0.5105, 0.0), (0.8, 0.02), (0.3, -0.4)]:
        fd = (R.burgers_cole_hopf(t, x + h) - R.burgers_cole_hopf(t, x - h)) / (2 * h)
        assert abs(fd - R.burgers_cole_hopf_ux(t, x)) < 1e-5 * max(1.0, abs(fd))
    # the slope at x = 0 peaks near t = 0.5105
    ts = np.array([0.49, 0.5105, 0.53])
    assert np.argmin(R.burgers_cole_hopf_ux(ts, 0.0)) == 1


def test_cole_hopf_quadrature_converged():
    t = np.linspace(0.0, 1.0, 21)[:, None]
    x = np.linspace(-1.0, 1.0, 257)[None, :]
    a = R.burgers_cole_hopf(t, x, nodes=300)
    b = R.burgers_cole_hopf(t, x, nodes=600)
    assert np.abs(a - b).max() < 1e-13
    np.testing.assert_allclose(a[0], -np.sin(np.pi * x[0]), atol=1e-15)


def test_burgers_matches_cole_hopf(ref):
    d = ref("burgers")
    t, x, u = d["t"], d["x"], d["u"]
    assert t.shape == (201,) and x.shape == (512,) and u.shape == (201, 512)
    assert u.dtype == np.float64 and x[0] == -1.0 and x[-1] == 1.0
    exact = R.burgers_cole_hopf(t[:, None], x[None, :])
    err = np.abs(u - exact).max()
    assert err < 1e-7, err
    np.testing.assert_allclose(u[:, [0, -1]], 0.0, atol=1e-12)


def test_burgers_conservation(ref):
    u = ref("burgers")["u"][:, :-1]  # periodic points
    mass = 2.0 * u.mean(axis=1)
    assert np.abs(mass).max() < 1e-12
    energy = 2.0 * (u**2).mean(axis=1)
    assert np.all(np.diff(energy) < 0)  # viscous dissipation


# --------------------------------------------------------------------------------------------
# KdV
# --------------------------------------------------------------------------------------------


def test_kdv_soliton():
    """u = 3c sech^2(sqrt(c)/(2 delta) (x - c t - x0)) solves u_t + u u_x + delta^2 u_xxx = 0.

    With c = 1 the soliton's tails are below 1e-18 at distance 1, so its periodisation is exact
    to rounding on [-1, 1); it travels once across half the domain and wraps around.
    """
    delta, c, x0 = 0.022, 1.0, 0.0
    prob = R.get_problem("kdv")

    def soliton(t, x):
        xi = np.mod(x - c * t - x0 + 1.0, 2.0) - 1.0
        return 3 * c / np.cosh(math.sqrt(c) / (2 * delta) * xi) ** 2

    assert soliton(0.0, np.array([1.0]))[0] < 1e-18
    s = prob.solver()
    t = np.linspace(0.0, 1.0, 11)
    x = prob.x
    u = s.evaluate(s.solve(s.project(lambda y: soliton(0.0, y)), t, prob.resolution.dt), x)
    err = np.abs(u - soliton(t[:, None], x[None, :])).max()
    assert err < 3e-8, err


def test_kdv_conservation(ref):
    u = ref("kdv")["u"][:, :-1]
    mass = 2.0 * u.mean(axis=1)
    energy = 2.0 * (u**2).mean(axis=1)
    assert np.abs(mass - mass[0]).max() < 1e-12
    assert abs(energy[0] - 1.0) < 1e-14  # integral of cos^2(pi x) over [-1, 1]
    assert np.abs(energy / energy[0] - 1.0).max() < 1e-9


def test_ks_mass_conserved(ref):
    u = ref("ks")["u"][:, :-1]
    mass = 2 * np.pi * u.mean(axis=1)
    assert np.abs(mass - mass[0]).max() < 1e-12


# --------------------------------------------------------------------------------------------
# Refinement studies
# --------------------------------------------------------------------------------------------

TOL = {"kdv": 1e-8, "ks": 1e-8, "allen_cahn": 1e-6}


@pytest.mark.parametrize("name", ["kdv", "allen_cahn"])
def test_refinement_from_half_resolution(ref, name):
    """Default vs half resolution (half the modes, twice the step) already meets the target,
    so the default itself is well inside it (cheap version of the slow test below)."""
    fine = ref(name)["u"]
    rough = ref(name, **coarse(name))["u"]
    change = rel_l2(rough, fine)
    assert change < TOL[name], change


@pytest.mark.slow
@pytest.mark.parametrize("name", ["kdv", "ks", "allen_cahn"])
def test_refinement_of_default(ref, name):
    """Twice the modes and half the time step changes the default reference by < target."""
    change = rel_l2(ref(name)["u"], ref(name, **refined(name))["u"])
    assert change < TOL[name], change


@pytest.mark.slow
def test_burgers_refinement_of_default(ref):
    change = np.abs(ref("burgers")["u"] - ref("burgers", **refined("burgers"))["u"]).max()
    assert change < 1e-9, change


def test_shapes_and_initial_conditions(ref):
    for name in SPECTRAL:
        d = ref(name)
        p = PROBLEMS[name]
        assert d["u"].shape == (p.nt, p.nx)
        assert d["t"][-1] == p.T and d["x"][0] == p.domain[0] and d["x"][-1] == p.domain[1]
        np.testing.assert_array_equal(d["u"][0], p.u0(d["x"]))
        assert np.all(np.isfinite(d["u"]))
    assert ref("ks")["t"].size == 251


# --------------------------------------------------------------------------------------------
# PDE residual of the references
# --------------------------------------------------------------------------------------------

WRONG = {"burgers": "nu", "allen_cahn": "eps", "kdv": "delta", "ks": "beta"}


@pytest.mark.parametrize("name", SPECTRAL)
def test_residual_small_and_detects_wrong_coefficient(ref, name):
    d = ref(name)
    p = R.get_problem(name)
    bound = R.RESIDUAL_BOUNDS[name]
    res = R.relative_residual(p, d["t"], d["x"], d["u"])
    assert res < bound, res
    key = WRONG[name]
    wrong = R.relative_residual(p, d["t"], d["x"], d["u"], **{key: 2.0 * p.p[key]})
    assert wrong > 20 * res and wrong > 10 * bound, (res, wrong)


# --------------------------------------------------------------------------------------------
# Cache
# --------------------------------------------------------------------------------------------

CHEAP = {"modes": 64, "dt": 4e-4, "nt": 21}  # KdV at low resolution: a fraction of a second


def test_second_load_is_fast_and_equal(ref, cache_dir):
    first = ref("kdv")
    path = R.cache_path("kdv", cache_dir)
    assert path.exists() and path.suffix == ".npz" and path.parent == cache_dir
    start = time.perf_counter()
    again = R.load("kdv", cache_dir=cache_dir, progress=False)
    assert time.perf_counter() - start < 1.0
    for k in ("t", "x", "u"):
        np.testing.assert_array_equal(again[k], first[k])
    assert set(again) == {"t", "x", "u"}


def test_cache_key_depends_on_parameters(tmp_path):
    base = R.cache_path("burgers", tmp_path)
    assert base.name.startswith("burgers-")
    others = [
        R.cache_path("burgers", tmp_path, nu=0.02 / np.pi),
        R.cache_path("burgers", tmp_path, modes=2048),
        R.cache_path("burgers", tmp_path, dt=5e-5),
        R.cache_path("burgers", tmp_path, nt=101),
    ]
    assert len({base, *others}) == 5
    assert R.cache_path("burgers", tmp_path) == base  # deterministic
    assert R.cache_path("kdv", tmp_path) != base
    assert R.cache_path("wave", tmp_path) is None


def test_cache_dir_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("PINNRUN_CACHE_DIR", str(tmp_path / "envcache"))
    assert R.cache_path("kdv").parent == tmp_path / "envcache"
    R.load("kdv", progress=False, **CHEAP)
    assert R.cache_path("kdv", **CHEAP).exists()
    monkeypatch.delenv("PINNRUN_CACHE_DIR")
    assert C.default_cache_dir() == Path("~/.cache/pinnrun/reference").expanduser()


def test_progress_line_on_stderr(tmp_path, capsys):
    R.load("kdv", cache_dir=tmp_path, progress=True, **CHEAP)
    err = capsys.readouterr().err
    assert "kdv" in err and "100%" in err and "10%" in err
    R.load("kdv", cache_dir=tmp_path, progress=True, **CHEAP)  # cached: no stepping
    assert "%" not in capsys.readouterr().err


def _truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _garbage(path):
    path.write_bytes(b"not an npz file at all")


def _missing_keys(path):
    with np.load(path) as z:
        u = z["u"]
    with open(path, "wb") as fh:
        np.savez(fh, u=u)


def _nan(path):
    p = R.get_problem("kdv", **CHEAP)
    d = C.read_entry(path, p)
    u = d["u"].copy()
    u[3, 5] = np.nan
    C.write_entry(path, p, {"t": d["t"], "x": d["x"], "u": u})  # consistent checksum, bad values


def _wrong_shape(path):
    p = R.get_problem("kdv", **CHEAP)
    d = C.read_entry(path, p)
    C.write_entry(path, p, {"t": d["t"][:-1], "x": d["x"], "u": d["u"][:-1]})


def _tampered(path):
    with np.load(path) as z:
        items = {k: z[k] for k in z.files}
    items["u"] = items["u"] + 1e-3
    with open(path, "wb") as fh:
        np.savez(fh, **items)


@pytest.mark.parametrize("corrupt", [_truncate, _garbage, _missing_keys, _nan, _wrong_shape, _tampered])
def test_corrupt_entry_is_regenerated(tmp_path, corrupt):
    good = R.load("kdv", cache_dir=tmp_path, progress=False, **CHEAP)
    path = R.cache_path("kdv", tmp_path, **CHEAP)
    corrupt(path)
    with pytest.warns(RuntimeWarning, match="invalid"):
        again = R.load("kdv", cache_dir=tmp_path, progress=False, **CHEAP)
    np.testing.assert_array_equal(again["u"], good["u"])
    # the entry was rewritten and now loads silently
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        third = R.load("kdv", cache_dir=tmp_path, progress=False, **CHEAP)
    np.testing.assert_array_equal(third["u"], good["u"])
    assert not [p for p in tmp_path.iterdir() if p.suffix == ".tmp"]


def test_generate_forces_and_writes_atomically(tmp_path, monkeypatch):
    R.load("kdv", cache_dir=tmp_path, progress=False, **CHEAP)
    path = R.cache_path("kdv", tmp_path, **CHEAP)
    mtime = path.stat().st_mtime_ns
    calls = []
    real_replace = os.replace

    def spy(src, dst):
        calls.append((str(src), str(dst)))
        return real_replace(src, dst)

    monkeypatch.setattr(C.os, "replace", spy)
    time.sleep(0.01)
    R.generate("kdv", cache_dir=tmp_path, progress=False, **CHEAP)
    assert calls and calls[-1][1] == str(path) and calls[-1][0].endswith(".tmp")
    assert path.stat().st_mtime_ns >= mtime
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]


# --------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------


def test_cli_writes_to_cache_dir(tmp_path, capsys):
    argv = ["kdv", "--cache-dir", str(tmp_path), "--quiet"]
    argv += [f"--set={k}={v}" for k, v in CHEAP.items()]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    path = R.cache_path("kdv", tmp_path, **CHEAP)
    assert path.exists() and str(path) in out and "generated in" in out
    assert cli.main(argv) == 0
    assert "already cached" in capsys.readouterr().out
    assert cli.main(argv + ["--force"]) == 0
    assert "generated in" in capsys.readouterr().out
    assert cli.main(["wave", "--cache-dir", str(tmp_path)]) == 0
    assert cli.main(["kdv", "--cache-dir", str(tmp_path), "--set", "bogus=1"]) == 2
    with pytest.raises(SystemExit):
        cli.main(["nope"])


# ----- sensitivity to the initial condition ------------------------------------------------------------
def test_ks_amplifies_a_perturbation_of_its_initial_condition():
    # The chaos that makes KS hard for time-marching PINNs (coarse solver: the growth over t <= 0.3
    # is resolved by 64 modes). A 1e-6 perturbation grows ~5x by t = 0.1 and over 100x by t = 0.3;
    # the growth is linear in eps at this size, so it is a property of the dynamics, not of eps.
    coarse = {"modes": 64, "dt": 1e-3, "T": 0.3, "nt": 76}
    small = R.perturbation_growth("ks", 1e-6, **coarse)
    larger = R.perturbation_growth("ks", 1e-5, **coarse)
    growth = small["per_snapshot"] / small["per_snapshot"][0]
    assert small["per_snapshot"][0] == pytest.approx(1e-6, rel=0.01)
    assert 2 < growth[25] < 20 and growth[-1] > 100
    np.testing.assert_allclose(larger["per_snapshot"] / 1e-5, small["per_snapshot"] / 1e-6, rtol=0.05)
    assert small["total"] < small["per_snapshot"].max()


def test_perturbation_growth_rejects_what_it_cannot_measure():
    with pytest.raises(ValueError, match="eps must be positive"):
        R.perturbation_growth("ks", 0.0)
    with pytest.raises(ValueError, match="spectral problem"):
        R.perturbation_growth("wave", 1e-3)
