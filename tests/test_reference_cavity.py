"""Steady lid-driven cavity reference (pinnrun/reference/cavity.py) against published tables.

Default (fast) tests: argument checking, the cached entry and its provenance, Ghia et al. at
Re 100 and the observed order of the scheme, all on coarse grids.  ``@pytest.mark.slow``: the
257^2 references (Botella & Peyret Re 1000 gate within 1e-3, Erturk et al. up to Re 10000,
Ghia et al. up to Re 3200) and the smooth-lid references the PINN uses.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np
import pytest
from scipy.interpolate import CubicSpline

from pinnrun import reference as R
from pinnrun.reference import cavity as C

DATA = Path(__file__).parent / "data"
NAME = "lid_driven_cavity"


def read_table(name: str) -> tuple:
    """``(header, rows)`` of a ``tests/data`` CSV (``#`` lines are comments)."""
    lines = [ln for ln in (DATA / name).read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    header = lines[0].split(",")
    rows = [ln.split(",") for ln in lines[1:]]
    return header, rows


def column(name: str, col: str) -> tuple:
    """``(coords, values)`` of column ``col`` of a one-coordinate table."""
    header, rows = read_table(name)
    k = header.index(col)
    return np.array([float(r[0]) for r in rows]), np.array([float(r[k]) for r in rows])


def ghia_points(coords: np.ndarray) -> np.ndarray:
    """Ghia's (and Botella's) abscissae are the grid points j/128, printed to 4 decimals."""
    return np.round(coords * 128.0) / 128.0


def centrelines(data: dict) -> tuple:
    """Cubic splines of ``u(0.5, y)`` and ``v(x, 0.5)`` (exact at the nodes; x = 0.5 is a node)."""
    mid = data["x"].size // 2
    assert data["x"][mid] == 0.5 and data["y"][mid] == 0.5
    return CubicSpline(data["y"], data["u"][mid, :]), CubicSpline(data["x"], data["v"][:, mid])


def deviations(data: dict, u_table: tuple, v_table: tuple) -> tuple:
    u_at, v_at = centrelines(data)
    (yu, u_ref), (xv, v_ref) = u_table, v_table
    return np.abs(u_at(yu) - u_ref), np.abs(v_at(xv) - v_ref)


# ----------------------------------------------------------------------------- arguments


@pytest.mark.parametrize(
    "kwargs, argument",
    [
        ({"lid": "sliding"}, "lid"),
        ({"lid": None}, "lid"),
        ({"re": 99.0}, "re"),
        ({"re": 10001}, "re"),
        ({"re": "fast"}, "re"),
        ({"re": float("nan")}, "re"),
        ({"nx": 64}, "nx"),
        ({"mu": 1.0}, "mu"),
    ],
)
def test_bad_arguments_raise_one_line(kwargs, argument, tmp_path):
    with pytest.raises(ValueError) as info:
        R.load(NAME, cache_dir=tmp_path, progress=False, **kwargs)
    msg = str(info.value)
    assert "\n" not in msg and argument in msg
    if argument == "lid":
        assert "classic" in msg and "smooth" in msg
    if argument == "re":
        assert "100" in msg and "10000" in msg
    assert not any(tmp_path.iterdir())


# ----------------------------------------------------------------------------- cached entry

COARSE = 65   # h = 1/64: Ghia's points j/128 with even j are nodes, the others are interpolated


def test_load_shapes_boundary_values_and_gauge(ref):
    for lid in C.LIDS:
        d = ref(NAME, re=100, lid=lid, nx=COARSE)
        assert set(d) == {"x", "y", "u", "v", "p"}
        n = COARSE
        assert d["x"].shape == d["y"].shape == (n,)
        assert all(d[k].shape == (n, n) and d[k].dtype == np.float64 for k in ("u", "v", "p"))
        np.testing.assert_array_equal(d["x"], np.linspace(0.0, 1.0, n))
        lid_u = C.lid_velocity(d["x"], lid)
        np.testing.assert_array_equal(d["u"][:, -1], lid_u)
        for k in ("u", "v"):   # side walls below the lid row (its corners carry the lid value)
            assert np.all(d[k][0, :-1] == 0.0) and np.all(d[k][-1, :-1] == 0.0) and np.all(d[k][:, 0] == 0.0)
        assert np.all(d["v"][:, -1] == 0.0)
        assert d["p"][n // 2, n // 2] == 0.0
        assert np.all(np.isfinite(d["p"]))
    smooth = ref(NAME, re=100, lid="smooth", nx=COARSE)
    assert abs(smooth["u"][0, -1]) < 1e-14 and abs(smooth["u"][-1, -1]) < 1e-14


def test_cache_entry_checksum_and_provenance(cache_dir, ref):
    d = ref(NAME, re=100, lid="classic", nx=COARSE)
    path = R.cache_path(NAME, cache_dir=cache_dir, re=100, lid="classic", nx=COARSE)
    assert path.exists() and path.name.startswith(NAME + "-")
    start = time.perf_counter()
    again = R.load(NAME, cache_dir=cache_dir, progress=False, re=100, lid="classic", nx=COARSE)
    assert time.perf_counter() - start < 2.0         # read from the cache, not re-solved
    for k in d:
        np.testing.assert_array_equal(again[k], d[k])
    prov = R.provenance(NAME, cache_dir=cache_dir, re=100, lid="classic", nx=COARSE)
    json.dumps(prov)
    assert prov["name"] == NAME and prov["parameters"] == {"re": 100.0, "lid": "classic"}
    assert prov["resolution"]["nodes"] == [COARSE, COARSE]
    assert "fourth-order compact" in prov["solver"]
    assert prov["cache_file"] == str(path) and len(prov["checksum"]) == 64
    assert prov["accuracy"]["value"] is None      # measured for the default 257 grid only
    data2, prov2 = R.load_with_provenance(NAME, cache_dir=cache_dir, re=100, lid="classic", nx=COARSE)
    assert prov2["checksum"] == prov["checksum"]
    with np.load(path) as npz:
        meta = json.loads(str(npz["meta"][()]))
    assert meta["re"] == 100.0 and meta["lid"] == "classic" and meta["version"] == C.SOLVER_VERSION
    # other Re or lid -> other entry
    assert R.cache_path(NAME, cache_dir=cache_dir, re=400, lid="classic", nx=COARSE) != path
    assert R.cache_path(NAME, cache_dir=cache_dir, re=100, lid="smooth", nx=COARSE) != path


def test_high_re_is_solved_on_the_refined_grid():
    """Above Re 5000 the solve runs on 513^2 and every other node is returned (no solve here)."""
    assert C.get_cavity(re=5000).compute_nx == 257
    high = C.get_cavity(re=7500)
    assert high.compute_nx == 513 and high.shapes()["u"] == (257, 257)
    assert high.key_data()["compute_nx"] == 513
    prov = C.describe_cavity(high)
    assert prov["resolution"]["nodes"] == [513, 513] and prov["resolution"]["output_nodes"] == [257, 257]


def test_corrupt_entry_is_regenerated(tmp_path):
    kw = dict(re=100, lid="smooth", nx=33)
    d = R.load(NAME, cache_dir=tmp_path, progress=False, **kw)
    path = R.cache_path(NAME, cache_dir=tmp_path, **kw)
    path.write_bytes(b"not an npz")
    with pytest.warns(RuntimeWarning, match="invalid"):
        d2 = R.load(NAME, cache_dir=tmp_path, progress=False, **kw)
    np.testing.assert_array_equal(d2["u"], d["u"])


# ----------------------------------------------------------------------------- physics, coarse


def test_ghia_re100_coarse(ref):
    d = ref(NAME, re=100, lid="classic", nx=COARSE)
    yu, u = column("cavity_ghia_1982_u.csv", "re100")
    xv, v = column("cavity_ghia_1982_v.csv", "re100")
    du, dv = deviations(d, (ghia_points(yu), u), (ghia_points(xv), v))
    assert du.max() < 1.5e-2 and dv.max() < 1.5e-2, (du.max(), dv.max())


def test_discrete_mass_balance_and_momentum(ref):
    """Zero net flux through the centrelines; the pressure gradient reproduces momentum."""
    d = ref(NAME, re=100, lid="classic", nx=COARSE)
    h = 1.0 / (COARSE - 1)
    mid = COARSE // 2
    w = np.full(COARSE, 2.0)
    w[1::2] = 4.0
    w[0] = w[-1] = 1.0
    simpson = lambda f: float(h / 3.0 * np.dot(w, f))   # noqa: E731
    assert abs(simpson(d["u"][mid, :])) < 2e-4       # int_0^1 u(0.5, y) dy = psi(0.5,1) - psi(0.5,0)
    assert abs(simpson(d["v"][:, mid])) < 2e-4


def _centrelines_uv(nx: int, lid) -> tuple:
    psi, w = C.streamfunction_vorticity(100.0, lid, nx)
    u, v = C.velocity(psi, w, lid)
    return u[nx // 2, :], v[:, nx // 2]


def test_observed_order_is_four():
    """Re 100, smooth lid: centreline errors of nx = 17, 33, 65 against nx = 129 at the nodes
    of nx = 17.  (The max over the whole field converges only at first order: the smooth lid's
    slope U'(0) = 50 is not compatible with the no-slip side walls, a weak corner singularity.)"""
    grids = (17, 33, 65, 129)
    sol = {n: _centrelines_uv(n, "smooth") for n in grids}

    def err(n):
        s = (grids[-1] - 1) // (n - 1)
        t = (n - 1) // (grids[0] - 1)
        return max(np.max(np.abs(sol[n][k][::t] - sol[grids[-1]][k][::s * t])) for k in (0, 1))

    e = [err(n) for n in grids[:-1]]
    orders = [math.log2(e[i] / e[i + 1]) for i in range(2)]
    print(f"centreline errors {e}, observed orders {orders}")
    assert e[-1] < 1e-4
    assert 3.3 < orders[0] < 4.7 and 3.6 < orders[1] < 4.7, (e, orders)


# ----------------------------------------------------------------------------- slow: full grids


@pytest.mark.slow
def test_botella_peyret_re1000_gate(ref):
    """The gate: classic lid, Re 1000, 257^2, every tabulated point within 1e-3."""
    d = ref(NAME, re=1000, lid="classic")
    rows = read_table("cavity_botella_peyret_1998_re1000.csv")[1]
    table = {line: (np.array([float(r[1]) for r in rows if r[0] == line]),
                    np.array([float(r[2]) for r in rows if r[0] == line])) for line in ("u", "v", "p")}
    du, dv = deviations(d, (ghia_points(table["u"][0]), table["u"][1]),
                        (ghia_points(table["v"][0]), table["v"][1]))
    p_at = CubicSpline(d["y"], d["p"][d["x"].size // 2, :])
    dp = np.abs(p_at(ghia_points(table["p"][0])) - table["p"][1])
    print(f"Botella & Peyret Re 1000: max |du| = {du.max():.2e}, max |dv| = {dv.max():.2e}, "
          f"max |dp| (x = 0.5) = {dp.max():.2e}")
    assert du.max() < 1e-3 and dv.max() < 1e-3, (du, dv)
    assert dp.max() < 1e-3, dp
    u_min = np.min(d["u"][128, :])
    assert abs(u_min - (-0.3885698)) < 1e-3


@pytest.mark.slow
@pytest.mark.parametrize("re, tol", [(1000, 5e-3), (2500, 5e-3), (5000, 5e-3), (7500, 1e-2), (10000, 1e-2)])
def test_erturk_2005(ref, re, tol):
    d = ref(NAME, re=re, lid="classic")
    du, dv = deviations(d, column("cavity_erturk_2005_u.csv", f"re{re}"),
                        column("cavity_erturk_2005_v.csv", f"re{re}"))
    print(f"Erturk et al. Re {re}: max |du| = {du.max():.2e}, max |dv| = {dv.max():.2e}")
    assert du.max() < tol and dv.max() < tol, (du, dv)


# Ghia's printed misprints: Re 3200 u(0.5, 0.4531) = -0.86636 (given in the task) and Re 400
# v(0.9063, 0.5) = -0.23827 (0.15 off a smooth profile whose neighbours agree within 6e-3).
GHIA_MISPRINTS = {("u", 3200, 0.4531), ("v", 400, 0.9063)}


def botella_table(line: str) -> dict:
    rows = read_table("cavity_botella_peyret_1998_re1000.csv")[1]
    return {float(r[1]): float(r[2]) for r in rows if r[0] == line}


def ghia_points_kept(line: str, re: int, coords, values, tol: float) -> np.ndarray:
    """Ghia's points less the misprints and, at Re 1000, the points where Ghia's table itself is
    farther than ``tol`` from Botella & Peyret's Chebyshev benchmark (v at x = 0.9609, 0.9531,
    0.9453, off by 0.017-0.0185): there no solution within the 1e-3 gate can be within ``tol``."""
    keep = np.array([(line, re, round(c, 4)) not in GHIA_MISPRINTS for c in coords])
    if re == 1000:
        bp = botella_table(line)
        keep &= np.array([abs(val - bp[round(c, 4)]) <= tol for c, val in zip(coords, values)])
    return keep


@pytest.mark.slow
@pytest.mark.parametrize(
    "re, tol",
    [(100, 1.5e-2), (400, 1.5e-2), (1000, 1.5e-2),
     pytest.param(3200, 3e-2, marks=pytest.mark.xfail(strict=True, reason=(
         "measured 2026-12: max |du| = 3.1e-2 (y = 0.0547-0.0703), max |dv| = 4.8e-2 (x = 0.9688) "
         "against Ghia's 129^2 Re 3200 table, while the same solver is within 2.0e-3 / 4.4e-3 "
         "of Erturk et al. at Re 2500 / 5000 at those wall-layer points; refinement at Re 3200 (257^2 against "
         "513^2, scripted) moves those points by at most 1.7e-3, so the gap is Ghia's 129^2 wall layers")))],
)
def test_ghia_1982(ref, re, tol):
    d = ref(NAME, re=re, lid="classic")
    yu, u = column("cavity_ghia_1982_u.csv", f"re{re}")
    xv, v = column("cavity_ghia_1982_v.csv", f"re{re}")
    ku = ghia_points_kept("u", re, yu, u, tol)
    kv = ghia_points_kept("v", re, xv, v, tol)
    du, dv = deviations(d, (ghia_points(yu[ku]), u[ku]), (ghia_points(xv[kv]), v[kv]))
    print(f"Ghia et al. Re {re}: max |du| = {du.max():.2e}, max |dv| = {dv.max():.2e} "
          f"({(~ku).sum() + (~kv).sum()} points left out)")
    assert du.max() < tol and dv.max() < tol, (du, dv)


@pytest.mark.slow
def test_smooth_lid_references_budget(cache_dir):
    """The smooth-lid references the PINN trains on: Re 100, 400, 1000 within 10 minutes."""
    total = 0.0
    for re in (100, 400, 1000):
        start = time.perf_counter()
        d = R.load(NAME, cache_dir=cache_dir, progress=False, re=re, lid="smooth")
        total += time.perf_counter() - start
        assert d["u"].shape == (257, 257)
        np.testing.assert_array_equal(d["u"][:, -1], C.lid_velocity(d["x"], "smooth"))
    print(f"smooth lid Re 100 + 400 + 1000: {total:.0f} s")
    assert total < 600.0


def test_continuation_from_a_remembered_state_is_bit_for_bit():
    """A curriculum's Re 400 solve starts from this process's Re 100 state: the same bits as the
    whole continuation path from zero."""
    C._CONVERGED.clear()
    psi_fresh, w_fresh = C.streamfunction_vorticity(400.0, "smooth", 33)
    C._CONVERGED.clear()
    C.streamfunction_vorticity(100.0, "smooth", 33)
    assert ("smooth", 33, 100.0) in C._CONVERGED and ("smooth", 33, 400.0) not in C._CONVERGED
    calls = []
    psi, w = C.streamfunction_vorticity(400.0, "smooth", 33, progress=lambda *a: calls.append(a))
    assert len(calls) == 1          # one continuation step (400), not two
    np.testing.assert_array_equal(psi, psi_fresh)
    np.testing.assert_array_equal(w, w_fresh)


def test_command_line_generates_and_finds_a_cavity_entry(tmp_path, capsys):
    from pinnrun.reference.cli import main

    args = ["lid_driven_cavity", "--cache-dir", str(tmp_path), "--set", "re=100", "--set", "lid=smooth", "--set", "nx=33", "--quiet"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "generated in" in out and "Re=100, lid=smooth, nodes=33^2" in out
    assert main(args) == 0
    assert "already cached" in capsys.readouterr().out
    assert main(["lid_driven_cavity", "--cache-dir", str(tmp_path), "--set", "lid=sliding"]) == 2
    assert "lid must be one of classic, smooth" in capsys.readouterr().err
