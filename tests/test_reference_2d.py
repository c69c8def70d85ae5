"""Tests of the 2-D references of pinnrun.reference (Gray-Scott, Ginzburg-Landau), their cache
entries, the CLI and ``provenance``.

The default suite uses coarse grids only (32-64 modes, short horizons, few snapshots); the
independent checks compare with solutions that do not use the 2-D code: a 1-D Fourier
method-of-lines solve (``scipy.integrate.solve_ivp``) for y-independent data, the exact solution
of the uniform Ginzburg-Landau ODE, and ``solve_ivp`` for uniform Gray-Scott data.  The
refinement study of the defaults (twice the modes, half the time step) is marked ``slow``.
"""

from __future__ import annotations

import json
import time
import warnings

import numpy as np
import pytest
from scipy.integrate import solve_ivp

from pinnrun import reference as R
from pinnrun.reference import cache as C
from pinnrun.reference import cli
from pinnrun.reference import records
from pinnrun.reference.problems2d import PROBLEMS_2D, Periodic2DProblem, register_initial_condition_2d

NAMES = ["gray_scott", "ginzburg_landau"]
# coarse, fast settings (a fraction of a second each)
COARSE = {"modes": 32, "dt": 1e-3, "T": 0.02, "nt": 3, "nx": 16}

GS_X = "u=1-0.3((1+cos(pi x))/2)^2, v=0.15((1+cos(pi x))/2)^2"
GL_X = "A=0.6cos(pi x)+0.4i sin(pi x)"


def _swap_xy(fn):
    return lambda x, y: fn(y, x)


# the same data depending on y only (checks the rfft axis of the 2-D code as the x-only data
# check its full-FFT axis)
register_initial_condition_2d(GS_X + " (as y)", _swap_xy(R.get_problem("gray_scott", ic=GS_X).u0))
register_initial_condition_2d(GL_X + " (as y)", _swap_xy(R.get_problem("ginzburg_landau", ic=GL_X).u0))


from conftest import rel_l2  # noqa: E402  (the cache_dir and ref fixtures live in conftest.py too)


# --------------------------------------------------------------------------------------------
# Names, overrides, cache keys
# --------------------------------------------------------------------------------------------


def test_names_and_unknown_values():
    assert R.available(2) == NAMES
    assert R.available(None) == R.available() == R.available(1) + NAMES
    with pytest.raises(ValueError) as info:
        R.get_problem("nope")
    for name in R.available(None):
        assert name in str(info.value)
    with pytest.raises(ValueError, match="unknown override"):
        R.get_problem("gray_scott", nu=1.0)
    with pytest.raises(ValueError, match="unknown initial condition"):
        R.get_problem("ginzburg_landau", ic="nope")
    with pytest.raises(ValueError, match="ny"):
        R.get_problem("gray_scott", nx=100, ny=50)
    assert R.get_problem("gray_scott", nx=100, ny=100).ny == 100
    with pytest.raises(ValueError, match="even"):
        R.get_problem("gray_scott", modes=33)


def test_defaults():
    gs, gl = PROBLEMS_2D["gray_scott"], PROBLEMS_2D["ginzburg_landau"]
    assert gs.p == {"eps1": 0.2, "eps2": 0.1, "b1": 40.0, "b2": 100.0, "c1": 1000.0, "c2": 1000.0}
    assert gl.p == {"eps": 0.004, "k": 10.0}
    assert (gs.T, gl.T) == (2.0, 1.0)
    for p in (gs, gl):
        assert p.domain == (-1.0, 1.0) and p.nt == 101 and p.nx == p.ny == 200
        assert p.resolution.dealias == 2.0
        assert p.t[0] == 0.0 and p.t[-1] == p.T and p.x[0] == -1.0 and p.x[-1] == 1.0
    x, y = np.array([0.3, -0.7]), np.array([0.1, 0.4])
    u, v = gs.u0(x, y)
    np.testing.assert_allclose(u, 1 - np.exp(-10 * ((x + 0.05) ** 2 + (y + 0.02) ** 2)), rtol=1e-15)
    np.testing.assert_allclose(v, np.exp(-10 * ((x - 0.05) ** 2 + (y - 0.02) ** 2)), rtol=1e-15)
    u, v = gl.u0(x, y)
    np.testing.assert_allclose(u + 1j * v, (10 * y + 10j * x) * np.exp(-25 * (x**2 + y**2)), rtol=1e-15)


def test_cache_keys(tmp_path):
    base = R.cache_path("gray_scott", tmp_path)
    assert base.name.startswith("gray_scott-") and base.parent == tmp_path
    others = [R.cache_path("gray_scott", tmp_path, **{k: v}) for k, v in
              [("eps1", 0.3), ("b2", 90.0), ("modes", 64), ("dt", 1e-4), ("dealias", 1.5),
               ("T", 1.0), ("nt", 51), ("nx", 100), ("ic", GS_X)]]
    assert len({base, *others}) == 10
    assert R.cache_path("gray_scott", tmp_path) == base
    assert R.cache_path("gray_scott", tmp_path, eps1=0.2) == base  # default values: same entry
    assert R.cache_path("ginzburg_landau", tmp_path) != R.cache_path("ginzburg_landau", tmp_path, k=11)
    key = PROBLEMS_2D["gray_scott"].key_data()
    assert key["version"] == R.SOLVER_VERSION_2D != R.SOLVER_VERSION
    assert key["modes"] == [PROBLEMS_2D["gray_scott"].resolution.modes] * 2


def test_one_d_cache_keys_unchanged():
    # the 1-D keys are part of existing cache entries: pinned (computed before the 2-D problems)
    assert R.SOLVER_VERSION == "etdrk4-fourier-1"
    assert {n: R.cache_key(R.get_problem(n)) for n in ("burgers", "allen_cahn", "kdv", "ks")} == ONE_D_KEYS


ONE_D_KEYS = {
    "burgers": "130c365493f33cc63ac9",
    "allen_cahn": "ef22208b5c103814b4b4",
    "kdv": "53905c454d72523cbfb1",
    "ks": "93cfae7a1cfdf24d0ade",
}


# --------------------------------------------------------------------------------------------
# Independent checks
# --------------------------------------------------------------------------------------------


def mol_1d(kind, p, n, t, u0, v0):
    """The 1-D system (no y) by a Fourier method of lines on ``n`` points of [-1, 1) and DOP853.

    Returns ``(x [n], u [nt, n], v [nt, n])``.  Independent of the 2-D code path: physical
    values as unknowns, the Laplacian by numpy's rfft, the (aliased) products pointwise.
    """
    x = -1.0 + 2.0 * np.arange(n) / n
    lap = -((np.pi * np.arange(n // 2 + 1)) ** 2)

    def d2(f):
        return np.fft.irfft(np.fft.rfft(f) * lap, n)

    def rhs(_, w):
        u, v = w[:n], w[n:]
        if kind == "gray_scott":
            uv2 = u * v * v
            du = p["eps1"] * d2(u) + p["b1"] * (1 - u) - p["c1"] * uv2
            dv = p["eps2"] * d2(v) - p["b2"] * v + p["c2"] * uv2
        else:
            k, r2 = p["k"], u * u + v * v
            du = p["eps"] * d2(u) + k * u - k * (u - 1.5 * v) * r2
            dv = p["eps"] * d2(v) + k * v - k * (v + 1.5 * u) * r2
        return np.concatenate([du, dv])

    sol = solve_ivp(rhs, (t[0], t[-1]), np.concatenate([u0(x), v0(x)]), method="DOP853",
                    t_eval=t, rtol=1e-12, atol=1e-13)
    assert sol.success
    return x, sol.y[:n].T, sol.y[n:].T


# (problem, ic, resolution and horizon): the data stay smooth over these horizons, so 64 (GS) or
# 48 (GL) modes resolve them to ~1e-11 (measured errors: GS 5e-11, GL 5e-12 at dt / 4)
ONE_D_CASES = {
    "gray_scott": (GS_X, {"modes": 64, "dt": 1e-4, "T": 0.03, "nt": 4}, 1e-8),
    "ginzburg_landau": (GL_X, {"modes": 48, "dt": 5e-4, "T": 0.1, "nt": 5}, 1e-8),
}


@pytest.mark.parametrize("axis", ["x", "y"])
@pytest.mark.parametrize("name", NAMES)
def test_one_dimensional_data_match_method_of_lines(tmp_path, name, axis):
    ic, res, tol = ONE_D_CASES[name]
    n = 64
    # nx = n + 1 output points: the method-of-lines nodes plus x = 1
    d = R.load(name, cache_dir=tmp_path, progress=False, ic=ic if axis == "x" else ic + " (as y)", nx=n + 1, **res)
    p = R.get_problem(name, ic=ic)
    u0 = lambda s: p.u0(s, 0.0 * s)[0]  # noqa: E731
    v0 = lambda s: p.u0(s, 0.0 * s)[1]  # noqa: E731
    x, u, v = mol_1d(p.kind, p.p, n, d["t"], u0, v0)
    np.testing.assert_allclose(d["x"][:-1], x, atol=1e-15)
    for field, ref1d in (("u", u), ("v", v)):
        two_d = d[field]
        if axis == "y":
            two_d = two_d.transpose(0, 2, 1)
        # independent of the other coordinate, periodic, and equal to the 1-D solution
        assert np.abs(two_d - two_d[:, :, :1]).max() < 1e-13
        np.testing.assert_allclose(two_d[1:, -1], two_d[1:, 0], atol=1e-12)
        err = np.abs(two_d[:, :-1, :] - ref1d[:, :, None]).max()
        assert err < tol, (field, err)
    # the nonlinear terms matter at this size: without them the solution differs at O(0.1)
    linear = {"c1": 0.0, "c2": 0.0} if name == "gray_scott" else {"k": 0.0}
    p0 = p.with_overrides(**linear)
    _, ul, _ = mol_1d(p0.kind, p0.p, n, d["t"], u0, v0)
    assert np.abs(ul - u).max() > 0.05


def ginzburg_landau_uniform_exact(t, a0, k=10.0):
    """A(t) of A' = k A - k (1 + 1.5 i) A |A|^2: |A|^2 logistic, phase from its integral."""
    r0 = abs(a0)
    c = 1.0 / r0**2 - 1.0
    r2 = 1.0 / (1.0 + c * np.exp(-2 * k * t))
    theta = np.angle(a0) - 1.5 * k * (t + np.log((1.0 + c * np.exp(-2 * k * t)) / (1.0 + c)) / (2 * k))
    return np.sqrt(r2) * np.exp(1j * theta)


def test_ginzburg_landau_uniform_matches_exact_solution(tmp_path):
    # the exact formula solves the ODE (finite-difference check of the algebra)
    t = np.linspace(0.0, 0.3, 31)
    a = ginzburg_landau_uniform_exact(t, 0.3 + 0.2j)
    h = 1e-6
    da = (ginzburg_landau_uniform_exact(t + h, 0.3 + 0.2j) - ginzburg_landau_uniform_exact(t - h, 0.3 + 0.2j)) / (2 * h)
    np.testing.assert_allclose(da, 10 * a - 10 * (1 + 1.5j) * a * np.abs(a) ** 2, atol=1e-7)
    assert a[0] == pytest.approx(0.3 + 0.2j, abs=1e-15)
    # the 2-D solver from a uniform state: |A| rises from 0.36 to ~1 over this horizon
    d = R.load("ginzburg_landau", cache_dir=tmp_path, progress=False,
               ic="uniform A=0.3+0.2i", modes=8, dt=2.5e-4, T=0.3, nt=7, nx=5)
    A = d["u"] + 1j * d["v"]
    exact = ginzburg_landau_uniform_exact(d["t"], 0.3 + 0.2j)
    err = np.abs(A - exact[:, None, None]).max()
    assert err < 1e-10, err
    assert abs(exact[-1]) > 0.99


def test_gray_scott_uniform_states(tmp_path):
    # u = 1, v = 0 is a steady state
    d = R.load("gray_scott", cache_dir=tmp_path, progress=False, ic="uniform u=1, v=0",
               modes=8, dt=1e-3, T=0.1, nt=3, nx=5)
    assert np.abs(d["u"] - 1.0).max() < 1e-14 and np.abs(d["v"]).max() < 1e-14
    # a uniform state follows the reaction ODE (solve_ivp, written out here)
    d = R.load("gray_scott", cache_dir=tmp_path, progress=False, ic="uniform u=0.5, v=0.25",
               modes=8, dt=2.5e-4, T=0.1, nt=6, nx=5)

    def rhs(_, w):
        u, v = w
        return [40.0 * (1 - u) - 1000.0 * u * v * v, -100.0 * v + 1000.0 * u * v * v]

    sol = solve_ivp(rhs, (0.0, 0.1), [0.5, 0.25], method="Radau", t_eval=d["t"], rtol=1e-12, atol=1e-13)
    for i, f in enumerate("uv"):
        err = np.abs(d[f] - sol.y[i][:, None, None]).max()
        assert err < 1e-8, (f, err)
    assert np.abs(sol.y[:, -1] - sol.y[:, 0]).max() > 0.1  # it moved


def test_linear_problem_is_exact(tmp_path):
    """With c1 = c2 = 0 Gray-Scott is linear with constant forcing: ETDRK4 is exact, and the
    decay rates check the Laplacian's scaling on both axes."""
    name = "test: 1+0.1cos(pi x)cos(2pi y), 0.2cos(pi x)sin(3pi y)"
    register_initial_condition_2d(name, lambda x, y: (1 + 0.1 * np.cos(np.pi * x) * np.cos(2 * np.pi * y),
                                                      0.2 * np.cos(np.pi * x) * np.sin(3 * np.pi * y)))
    d = R.load("gray_scott", cache_dir=tmp_path, progress=False, ic=name, c1=0.0, c2=0.0,
               modes=16, dt=0.01, T=0.05, nt=6, nx=9)
    t, x, y = d["t"][:, None, None], d["x"][None, :, None], d["y"][None, None, :]
    pi2 = np.pi**2
    u = 1 + 0.1 * np.exp(-(0.2 * 5 * pi2 + 40) * t) * np.cos(np.pi * x) * np.cos(2 * np.pi * y)
    v = 0.2 * np.exp(-(0.1 * 10 * pi2 + 100) * t) * np.cos(np.pi * x) * np.sin(3 * np.pi * y)
    np.testing.assert_allclose(d["u"], u, atol=1e-14)
    np.testing.assert_allclose(d["v"], v, atol=1e-14)


def test_ginzburg_landau_rotation_symmetry(ref):
    """A0(y, -x) = i A0(x, y) and the equation is invariant under rotations and phase shifts, so
    A(t, y, -x) = i A(t, x, y); the discretisation (square grid and mode set) keeps this up to
    the initial condition's lack of periodicity (|A0| = 10 exp(-25) = 1.4e-10 at x = +-1, seen
    by the projection at x = -1 only)."""
    d = ref("ginzburg_landau", modes=32, dt=2e-3, T=0.1, nt=3, nx=21)
    A = d["u"] + 1j * d["v"]
    n = A.shape[1]
    j, k = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    assert np.abs(A[1:]).max() > 0.5
    np.testing.assert_allclose(A[:, k, n - 1 - j], 1j * A[:, j, k], rtol=0, atol=3e-10)


# --------------------------------------------------------------------------------------------
# load(), cache
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_load_shapes_dtypes_and_initial_rows(ref, name):
    d = ref(name, **COARSE)
    assert set(d) == {"t", "x", "y", "u", "v"}
    nt, nx = COARSE["nt"], COARSE["nx"]
    shapes = {"t": (nt,), "x": (nx,), "y": (nx,), "u": (nt, nx, nx), "v": (nt, nx, nx)}
    for k, shape in shapes.items():
        assert d[k].shape == shape and d[k].dtype == np.float64, k
        assert np.all(np.isfinite(d[k]))
    np.testing.assert_array_equal(d["t"], np.linspace(0, COARSE["T"], nt))
    np.testing.assert_array_equal(d["x"], np.linspace(-1, 1, nx))
    np.testing.assert_array_equal(d["y"], d["x"])
    p = R.get_problem(name, **COARSE)
    u0, v0 = p.u0(d["x"][:, None], d["y"][None, :])
    np.testing.assert_array_equal(d["u"][0], u0)  # the t = 0 row is the formula itself
    np.testing.assert_array_equal(d["v"][0], v0)
    for f in ("u", "v"):  # later rows are the periodic solution: equal at x = +-1 and y = +-1
        np.testing.assert_allclose(d[f][1:, 0], d[f][1:, -1], atol=1e-12)
        np.testing.assert_allclose(d[f][1:, :, 0], d[f][1:, :, -1], atol=1e-12)
    if name == "gray_scott":  # the initial condition is not periodic (about 1e-4 at x = +-1)
        assert 1e-5 < np.abs(d["u"][0, 0] - d["u"][0, -1]).max() < 1e-3


def test_second_load_is_fast_and_equal(ref, cache_dir):
    first = ref("gray_scott", **COARSE)
    path = R.cache_path("gray_scott", cache_dir, **COARSE)
    assert path.exists() and path.suffix == ".npz"
    start = time.perf_counter()
    again = R.load("gray_scott", cache_dir=cache_dir, progress=False, **COARSE)
    assert time.perf_counter() - start < 1.0
    for k in ("t", "x", "y", "u", "v"):
        np.testing.assert_array_equal(again[k], first[k])
    with np.load(path) as z:
        assert set(z.files) == {"t", "x", "y", "u", "v", "meta", "checksum"}
        meta = json.loads(str(z["meta"][()]))
    assert meta["name"] == "gray_scott" and meta["modes"] == [32, 32] and meta["ny"] == 16


def _truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _missing_y(path):
    with np.load(path) as z:
        items = {k: z[k] for k in z.files if k != "y"}
    with open(path, "wb") as fh:
        np.savez(fh, **items)


def _tampered_v(path):
    with np.load(path) as z:
        items = {k: z[k] for k in z.files}
    items["v"] = items["v"] + 1e-9
    with open(path, "wb") as fh:
        np.savez(fh, **items)


def _wrong_shape(path):
    p = R.get_problem("ginzburg_landau", **COARSE)
    d = C.read_entry(path, p)
    C.write_entry(path, p, {**d, "v": d["v"][:, :-1]})  # consistent checksum, wrong shape


def _wrong_grid(path):
    p = R.get_problem("ginzburg_landau", **COARSE)
    d = C.read_entry(path, p)
    C.write_entry(path, p, {**d, "y": d["y"] * 0.5})


def _wrong_meta(path):
    p = R.get_problem("ginzburg_landau", **COARSE)
    d = C.read_entry(path, p)
    C.write_entry(path, p.with_overrides(k=11.0), d)


@pytest.mark.parametrize("corrupt", [_truncate, _missing_y, _tampered_v, _wrong_shape, _wrong_grid, _wrong_meta])
def test_corrupt_entry_is_regenerated(tmp_path, corrupt):
    good = R.load("ginzburg_landau", cache_dir=tmp_path, progress=False, **COARSE)
    path = R.cache_path("ginzburg_landau", tmp_path, **COARSE)
    corrupt(path)
    with pytest.raises(C.CacheError):
        C.read_entry(path, R.get_problem("ginzburg_landau", **COARSE))
    with pytest.warns(RuntimeWarning, match="invalid"):
        again = R.load("ginzburg_landau", cache_dir=tmp_path, progress=False, **COARSE)
    for k in ("u", "v", "y"):
        np.testing.assert_array_equal(again[k], good[k])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        R.load("ginzburg_landau", cache_dir=tmp_path, progress=False, **COARSE)
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]


# --------------------------------------------------------------------------------------------
# provenance
# --------------------------------------------------------------------------------------------

KEYS = {"name", "equation", "parameters", "initial_condition", "domain", "solver", "version", "modes",
        "dt", "dealias", "grid", "accuracy", "cache_file", "checksum"}


def _stored_checksum(path):
    with np.load(path) as z:
        return str(z["checksum"][()])


def test_provenance_of_a_2d_entry(tmp_path, monkeypatch):
    calls = []
    real = Periodic2DProblem.compute

    def counting(self, progress=None):
        calls.append(self.name)
        return real(self, progress)

    monkeypatch.setattr(Periodic2DProblem, "compute", counting)
    info = R.provenance("gray_scott", cache_dir=tmp_path, progress=False, **COARSE)  # generates
    assert calls == ["gray_scott"]
    path = R.cache_path("gray_scott", tmp_path, **COARSE)
    assert set(info) == KEYS and info["cache_file"] == str(path)
    assert info["checksum"] == _stored_checksum(path) and len(info["checksum"]) == 64
    assert info["modes"] == [32, 32] and info["dt"] == 1e-3 and info["dealias"] == 2.0
    assert info["parameters"] == {"eps1": 0.2, "eps2": 0.1, "b1": 40.0, "b2": 100.0, "c1": 1000.0, "c2": 1000.0}
    assert info["grid"] == {"T": 0.02, "nt": 3, "nx": 16, "ny": 16,
                            "shapes": {"t": [3], "x": [16], "y": [16], "u": [3, 16, 16], "v": [3, 16, 16]}}
    assert "ETDRK4" in info["solver"] and "x2" in info["solver"]
    assert info["accuracy"]["value"] is None  # coarse: not the measured configuration
    json.dumps(info)
    # cached: no solver run, same answer
    assert R.provenance("gray_scott", cache_dir=tmp_path, **COARSE) == info
    data, again = R.load_with_provenance("gray_scott", cache_dir=tmp_path, progress=False, **COARSE)
    assert calls == ["gray_scott"] and again == info
    assert C._checksum(*(data[k] for k in ("t", "x", "y", "u", "v"))) == info["checksum"]


def test_provenance_1d_and_wave(tmp_path, monkeypatch):
    cheap = {"modes": 64, "dt": 4e-4, "nt": 21}
    data, info = R.load_with_provenance("kdv", cache_dir=tmp_path, progress=False, **cheap)
    assert set(info) == KEYS and info["modes"] == 64 and info["grid"]["nx"] == 512 and "ny" not in info["grid"]
    assert info["checksum"] == _stored_checksum(R.cache_path("kdv", tmp_path, **cheap))
    monkeypatch.setattr(C, "_generate", lambda *a, **k: pytest.fail("regenerated"))
    assert R.provenance("kdv", cache_dir=tmp_path, **cheap) == info
    assert info["accuracy"]["measure"] == records.ACCURACY_MEASURE
    wave = R.provenance("wave")
    assert set(wave) == KEYS and wave["solver"] == "exact formula"
    assert wave["checksum"] is None and wave["cache_file"] is None and wave["accuracy"]["value"] == 0.0
    json.dumps(wave)


@pytest.mark.parametrize("name", R.available(None))
def test_stored_accuracy_of_the_defaults(name):
    """Without generating anything: the default configuration reports its measured accuracy."""
    acc = records.describe(R.get_problem(name))["accuracy"]
    if name == "wave":
        assert acc["value"] == 0.0
        return
    assert acc["measure"] == records.ACCURACY_MEASURE
    if name in NAMES:
        assert 0 < acc["value"] <= 1e-6 and set(acc["per_field"]) == {"u", "v"}
        assert acc["value"] == max(acc["per_field"].values())
    assert acc["value"] is not None or acc.get("note")
    # a shorter horizon of the same run keeps it; other parameters drop it
    assert records.describe(R.get_problem(name, T=R.get_problem(name).T / 2))["accuracy"]["value"] == acc["value"]
    other = R.get_problem(name, dt=R.get_problem(name).resolution.dt / 3)
    assert records.describe(other)["accuracy"]["value"] is None


# --------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_cli_2d(tmp_path, capsys, name):
    argv = [name, "--cache-dir", str(tmp_path), "--quiet"] + [f"--set={k}={v}" for k, v in COARSE.items()]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    path = R.cache_path(name, tmp_path, **COARSE)
    assert path.exists() and str(path) in out and "generated in" in out
    assert cli.main(argv) == 0
    assert "already cached" in capsys.readouterr().out
    assert cli.main([name, "--cache-dir", str(tmp_path), "--set", "nu=1"]) == 2


def test_cli_all_includes_2d(tmp_path, monkeypatch, capsys):
    seen = []

    def fake(problem, cache_dir=None, force=False, progress=True):
        seen.append(problem.name)
        return None, tmp_path / f"{problem.name}.npz", None

    monkeypatch.setattr(cli, "load_or_generate", fake)
    assert cli.main(["all", "--cache-dir", str(tmp_path)]) == 0
    assert seen == ["burgers", "allen_cahn", "kdv", "ks", "gray_scott", "ginzburg_landau", "lid_driven_cavity", "kolmogorov", "rayleigh_taylor"]


# --------------------------------------------------------------------------------------------
# Refinement of the defaults (slow: minutes to tens of minutes each)
# --------------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_refinement_of_default_2d(ref, name):
    """Twice the modes per axis and half the time step change the default by <= 1e-6 (relative
    L2 over all snapshots t > 0, per field); the stored accuracy is what this measures."""
    r = PROBLEMS_2D[name].resolution
    fine = ref(name, modes=2 * r.modes, dt=r.dt / 2)
    default = ref(name)
    stored = records.ACCURACY[name]["per_field"]
    for f in ("u", "v"):
        change = rel_l2(default[f][1:], fine[f][1:])
        assert change <= 1e-6, (f, change)
        assert change == pytest.approx(stored[f], rel=0.05), (f, change, stored[f])
