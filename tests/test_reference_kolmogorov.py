"""Kolmogorov-flow reference (pinnrun/reference/kolmogorov.py): exact solutions, invariants, order
of the time stepping, consistency of the output fields, parameter checks, the spin-up checkpoint,
the cache round trip, and an independent check against ``scipy.integrate.solve_ivp`` on a
Fourier-Galerkin system written here with numpy FFTs.

Default-suite tests use 16-64 points per axis and a few hundred steps at most; the doubling check
of the quick reference (minutes) is marked ``slow``.
"""

from __future__ import annotations

import json
import math

import jax
import numpy as np
import pytest
from scipy.integrate import solve_ivp

from pinnrun.reference import cache as C
from pinnrun.reference import kolmogorov as K

# a tiny problem: 32 points per axis, a 0.05 spin-up and 4 snapshots over 0.01
TINY = {"n_spinup": 32, "dt_spinup": 1e-3, "t_spinup": 0.05, "n": 32, "dt": 1e-3, "T": 0.01, "nt": 4,
        "re": 1000.0}


def rel(a, b) -> float:
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def grid_xy(n: int):
    x = np.arange(n) / n
    return np.meshgrid(x, x, indexing="ij")


def march(w0_grid: np.ndarray, nu: float, h: float, steps: int, forcing: bool = True) -> np.ndarray:
    """The module's vorticity after ``steps`` steps of ``h`` from grid values ``w0_grid`` (one
    step per call: a single compilation per grid size serves every test)."""
    n = w0_grid.shape[0]
    with K.float64_solver():
        stepper = K.make_stepper(n, nu, h, forcing=forcing)
        w_hat = np.fft.rfft2(w0_grid)
        for _ in range(steps):
            w_hat = K.advance(w_hat, stepper, 1)
        return np.fft.irfft2(np.asarray(w_hat), s=(n, n))


def random_band_limited(n: int, seed: int, max_mode: int) -> np.ndarray:
    """Grid values of a zero-mean random field with modes ``|m_x|, |m_y| <= max_mode``."""
    rng = np.random.default_rng(seed)
    mx = np.fft.fftfreq(n, 1.0 / n)[:, None]
    my = np.arange(n // 2 + 1)[None, :]
    band = (np.abs(mx) <= max_mode) & (my <= max_mode) & ((mx != 0) | (my != 0))
    coefficients = np.where(band, rng.standard_normal(band.shape) + 1j * rng.standard_normal(band.shape), 0.0)
    return np.fft.irfft2(coefficients, s=(n, n)) * n


# --------------------------------------------------------------------------------------------
# exact solutions and invariants
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("re", [1.0, 10.0])
def test_laminar_state_stays_put(re):
    nu, n = 1.0 / re, 32
    x, y = grid_xy(n)
    # u = 2 / (nu (4 pi)^2) sin(4 pi y), v = 0: w = -u_y = -cos(4 pi y) / (2 pi nu)
    w_laminar = -np.cos(4 * np.pi * y) / (2 * np.pi * nu)
    w = march(w_laminar, nu, 1e-3, 200)
    assert rel(w, w_laminar) < 1e-12
    with K.float64_solver():
        u, v, _, _ = np.asarray(K.physical_fields(np.fft.rfft2(w), K.make_grid(n)))
    u_laminar = 2.0 / (nu * (4 * np.pi) ** 2) * np.sin(4 * np.pi * y)
    assert rel(u, u_laminar) < 1e-12 and np.max(np.abs(v)) < 1e-12 * np.max(np.abs(u_laminar))


@pytest.mark.parametrize("m", [1, 3])
def test_taylor_green_decays_exactly(m):
    # u = sin(kx) cos(ky), v = -cos(kx) sin(ky): w = 2 k sin(kx) sin(ky), u.grad w = 0
    nu, n, k, h, steps = 1e-2, 32, 2 * np.pi * m, 1e-3, 300
    x, y = grid_xy(n)
    w0 = 2 * k * np.sin(k * x) * np.sin(k * y)
    w = march(w0, nu, h, steps, forcing=False)
    assert rel(w, w0 * math.exp(-2 * nu * k**2 * h * steps)) < 1e-10


def test_nonlinear_term_conserves_energy_and_enstrophy():
    n = 64
    with K.float64_solver():
        grid = K.make_grid(n)
        w_hat = np.asarray(grid.keep) * np.fft.rfft2(random_band_limited(n, 1, n // 3))
        advection = np.asarray(K.advection_hat(w_hat, grid))
    psi_hat = w_hat * np.asarray(grid.inv_k2)
    weight = np.where(np.asarray(grid.ky) > 0, 2.0, 1.0)   # rfft half plane

    def inner(a, b):
        return float(np.sum(weight * (np.conj(a) * b).real))

    scale = np.sqrt(inner(advection, advection))
    assert scale > 0
    # <psi, N(w)> = 0 (energy) and <w, N(w)> = 0 (enstrophy), relative to the norms
    assert abs(inner(psi_hat, advection)) < 1e-13 * scale * np.sqrt(inner(psi_hat, psi_hat))
    assert abs(inner(w_hat, advection)) < 1e-13 * scale * np.sqrt(inner(w_hat, w_hat))


def test_time_error_falls_at_fourth_order():
    nu, n, horizon = 1e-2, 32, 0.2
    w0 = random_band_limited(n, 2, 4)
    w0 *= 20.0 / np.sqrt(np.mean(w0**2))
    steps = [10, 20, 40]
    reference = march(w0, nu, horizon / 160, 160)       # dt / 16 of the largest step
    errors = [rel(march(w0, nu, horizon / s, s), reference) for s in steps]
    orders = [math.log2(errors[i] / errors[i + 1]) for i in range(2)]
    assert all(3.7 < q < 4.4 for q in orders), (errors, orders)


# --------------------------------------------------------------------------------------------
# the generated reference
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """``(problem, data, path, checksum, cache folder)`` of a tiny reference, through the cache."""
    folder = tmp_path_factory.mktemp("kolmogorov")
    problem = K.get_kolmogorov(**TINY, checkpoint_dir=folder / "spinup")
    data, path, seconds, checksum = C.load_or_generate_entry(problem, cache_dir=folder, progress=False)
    assert seconds is not None
    return problem, data, path, checksum, folder


def spectral_derivative(f: np.ndarray, axis: int) -> np.ndarray:
    n = f.shape[axis]
    k = 2 * np.pi * np.fft.fftfreq(n, 1.0 / n)
    shape = [1, 1]
    shape[axis] = n
    return np.fft.ifft(1j * k.reshape(shape) * np.fft.fft(f, axis=axis), axis=axis).real


def test_output_grid_and_fields_are_consistent(tiny):
    problem, data, *_ = tiny
    n = problem.n
    assert data["t"].shape == (4,) and np.allclose(data["t"], np.linspace(0, 0.01, 4))
    assert np.array_equal(data["x"], np.linspace(0, 1, n + 1)) and np.array_equal(data["y"], data["x"])
    assert data["nu"].shape == (1,) and data["nu"][0] == 1e-3
    for k in ("u", "v", "w", "p"):
        f = data[k]
        assert f.shape == (4, n + 1, n + 1)
        assert np.array_equal(f[:, -1, :], f[:, 0, :]) and np.array_equal(f[:, :, -1], f[:, :, 0])
    for i in range(problem.nt):
        u, v, w, p = (data[k][i, :-1, :-1] for k in ("u", "v", "w", "p"))
        dx = lambda f: spectral_derivative(f, 0)  # noqa: E731
        dy = lambda f: spectral_derivative(f, 1)  # noqa: E731
        scale = np.max(np.abs(w))
        assert np.max(np.abs(dx(v) - dy(u) - w)) < 1e-12 * scale
        assert np.max(np.abs(dx(u) + dy(v))) < 1e-12 * scale
        # Lap p = -div(u.grad u) + div f (div f = 0), the products truncated by the 2/3 rule
        keep = np.asarray(K.make_grid(n).keep)
        truncate = lambda f: np.fft.irfft2(keep * np.fft.rfft2(f), s=(n, n))  # noqa: E731
        div_advection = dx(truncate(u * dx(u) + v * dy(u))) + dy(truncate(u * dx(v) + v * dy(v)))
        lap_p = dx(dx(p)) + dy(dy(p))
        assert np.max(np.abs(lap_p + div_advection)) < 1e-10 * np.max(np.abs(div_advection))
        assert abs(p.mean()) < 1e-12 * np.max(np.abs(p))


def test_cache_round_trip_and_provenance(tiny):
    problem, data, path, checksum, folder = tiny
    assert path.parent == folder and path.name.startswith("kolmogorov-")
    again, path2, seconds, checksum2 = C.load_or_generate_entry(problem, cache_dir=folder, progress=False)
    assert seconds is None and path2 == path and checksum2 == checksum
    for k in problem.ARRAYS:
        assert np.array_equal(again[k], data[k])
    info = K.describe_kolmogorov(problem, path, checksum)
    text = json.dumps(info)
    assert info["name"] == "kolmogorov" and info["checksum"] == checksum and str(path) in text
    assert info["parameters"]["re"] == 1000.0 and info["spinup"]["steps"] == 50
    assert info["spinup"]["stationarity"]["turnover_time"] > 0


def test_spinup_resumes_from_its_checkpoint(tmp_path, monkeypatch):
    monkeypatch.setattr(K, "SPINUP_CHUNK", 10)
    monkeypatch.setattr(K, "CHECKPOINT_SECONDS", 0.0)
    settings = {**TINY, "t_spinup": 0.06}
    whole = K.get_kolmogorov(**settings, checkpoint_dir=tmp_path / "whole")
    broken = K.get_kolmogorov(**settings, checkpoint_dir=tmp_path / "broken")

    def interrupt(step, total, seconds):
        if step >= 30:
            raise KeyboardInterrupt

    with K.float64_solver():
        reference = K.spin_up(whole)
        with pytest.raises(KeyboardInterrupt):
            K.spin_up(broken, K.StepProgress(interrupt, 60))
        assert K.read_spinup(broken).step == 20
        resumed = K.spin_up(broken)
    assert resumed.step == 60 and np.array_equal(resumed.w_hat, reference.w_hat)
    assert np.array_equal(resumed.energy, reference.energy)


def test_measurement_helpers(tiny):
    problem, *_ = tiny
    x64 = jax.config.jax_enable_x64
    growth = K.perturbation_growth(problem, 1e-6)
    assert jax.config.jax_enable_x64 == x64            # float64 only inside the module's context
    assert growth["per_snapshot"][0] == pytest.approx(1e-6, rel=1e-9) and np.all(growth["per_snapshot"] > 0)
    change = K.refinement_change(problem)
    assert change["per_snapshot"][0] < 1e-14 and 0 < change["value"] < 1.0
    t = np.linspace(0.0, 1.0, 11)
    times = K.threshold_times(t, 1e-4 * np.exp(10.0 * t))
    assert times[1e-3] == pytest.approx(np.log(10) / 10) and times[1e-1] == pytest.approx(np.log(1e3) / 10)
    assert K.threshold_times(t, np.full(11, 1e-5))[1e-3] is None


def test_stationarity_criterion():
    t = np.linspace(0.0, 10.0, 10001)
    steady = K.SpinUp(None, 10000, 1e-3, 2.0 + 0.01 * np.sin(40 * t), 50.0 + np.cos(30 * t))
    growing = steady._replace(energy=2.0 + 0.5 * t)
    assert K.stationarity(steady)["stationary"] is True
    figures = K.stationarity(growing)
    assert figures["stationary"] is False and figures["energy_growth_rate"] == pytest.approx(0.5)
    assert figures["turnover_time"] == pytest.approx(1 / np.sqrt(2 * 7.0))


# --------------------------------------------------------------------------------------------
# parameters
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, argument",
    [
        ({"re": 0.5}, "re"),
        ({"re": "high"}, "re"),
        ({"re": float("nan")}, "re"),
        ({"seed": -1}, "seed"),
        ({"seed": 1.5}, "seed"),
        ({"seed": True}, "seed"),
        ({"ic_peak": 0.0}, "ic_peak"),
        ({"ic_energy": 0.0}, "ic_energy"),
        ({"n": 63}, "n"),
        ({"n": 8}, "n"),
        ({"n_spinup": 1024}, "n_spinup"),     # > n
        ({"dt": 0.0}, "dt"),
        ({"dt_spinup": -1e-3}, "dt_spinup"),
        ({"t_spinup": -1.0}, "t_spinup"),
        ({"T": 0.0}, "T"),
        ({"nt": 1}, "nt"),
        ({"checkpoint_dir": 3}, "checkpoint_dir"),
        ({"mu": 1.0}, "mu"),
    ],
)
def test_bad_parameters_raise_one_line(kwargs, argument):
    with pytest.raises(ValueError) as info:
        K.get_kolmogorov(**kwargs)
    message = str(info.value)
    assert "\n" not in message and argument in message


def test_unknown_parameter_names_the_allowed_ones():
    with pytest.raises(ValueError) as info:
        K.get_kolmogorov(Re=100.0)
    for name in K.PARAMETERS:
        assert name in str(info.value)


def test_defaults_and_cache_key():
    problem = K.get_kolmogorov()
    assert problem == K.KolmogorovProblem() and problem.name == K.NAME == "kolmogorov"
    quick = K.get_kolmogorov(**K.QUICK)
    assert quick.T == pytest.approx(2 / 25 * problem.T)
    assert C.cache_key(quick) != C.cache_key(problem)
    assert quick.spinup_file == problem.spinup_file        # the quick and recipe horizons share it
    moved = K.get_kolmogorov(checkpoint_dir="/somewhere")
    assert C.cache_key(moved) == C.cache_key(problem) and moved.spinup_file.parent.as_posix() == "/somewhere"


# --------------------------------------------------------------------------------------------
# independent check: the same Fourier-Galerkin system by solve_ivp (DOP853) on numpy FFTs
# --------------------------------------------------------------------------------------------


def galerkin_rhs(nu: float, n: int):
    """``w_t`` of the 2/3-rule Fourier-Galerkin system, on grid values (numpy only)."""
    mx = np.fft.fftfreq(n, 1.0 / n)[:, None]
    my = np.arange(n // 2 + 1)[None, :]
    kx, ky = 2 * np.pi * mx, 2 * np.pi * my
    k2 = kx**2 + ky**2
    inv_k2 = np.divide(1.0, k2, out=np.zeros_like(k2), where=k2 > 0)
    keep = (np.abs(mx) < n / 3) & (my < n / 3)
    y = np.arange(n) / n
    curl_f = np.broadcast_to(-8 * np.pi * np.cos(4 * np.pi * y), (n, n))

    def rhs(t, w_flat):
        w_hat = keep * np.fft.rfft2(w_flat.reshape(n, n))
        psi_hat = w_hat * inv_k2
        u, v = (np.fft.irfft2(c, s=(n, n)) for c in (1j * ky * psi_hat, -1j * kx * psi_hat))
        w_x, w_y = (np.fft.irfft2(c, s=(n, n)) for c in (1j * kx * w_hat, 1j * ky * w_hat))
        advection = np.fft.irfft2(keep * np.fft.rfft2(u * w_x + v * w_y), s=(n, n))
        return (nu * np.fft.irfft2(-k2 * w_hat, s=(n, n)) - advection + curl_f).ravel()

    return rhs


def test_agrees_with_an_independent_solve_ivp():
    nu, n, horizon = 1e-3, 16, 0.2
    w0 = random_band_limited(n, 3, 5)
    w0 *= 10.0 / np.sqrt(np.mean(w0**2))
    solution = solve_ivp(galerkin_rhs(nu, n), (0.0, horizon), w0.ravel(), method="DOP853",
                         rtol=1e-12, atol=1e-12 * np.max(np.abs(w0)))
    assert solution.success
    independent = solution.y[:, -1].reshape(n, n)
    assert rel(independent, w0) > 0.05                 # the flow has moved
    assert rel(march(w0, nu, horizon / 400, 400), independent) < 1e-8


# --------------------------------------------------------------------------------------------
# slow: the quick reference's resolution
# --------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_quick_reference_passes_the_doubling_check(tmp_path):
    # about 7 minutes on 2 cores: the spin-up, then 384^2 and 768^2 over the quick horizon
    problem = K.get_kolmogorov(**K.QUICK, checkpoint_dir=tmp_path)
    change = K.refinement_change(problem)["value"]
    assert change <= 1e-3
    assert change == pytest.approx(K.MEASURED["quick"]["accuracy"]["value"], rel=0.05)


@pytest.mark.parametrize("value, fragment", [
    ("tpu", "PINNRUN_REFERENCE_DEVICE='tpu' is not allowed; allowed: cpu, gpu"),
    ("gpu", "PINNRUN_REFERENCE_DEVICE='gpu': JAX has no gpu device here"),
])
def test_a_bad_solver_device_is_one_line(monkeypatch, value, fragment):
    if value == "gpu" and jax.devices()[0].platform == "gpu":
        pytest.skip("this machine has a GPU")
    monkeypatch.setenv(K.DEVICE_VARIABLE, value)
    with pytest.raises(ValueError) as error:
        K.solver_device()
    assert fragment in str(error.value) and "\n" not in str(error.value)


def test_the_solver_runs_in_float64_on_the_chosen_device(monkeypatch):
    monkeypatch.setenv(K.DEVICE_VARIABLE, "cpu")
    with K.float64_solver():
        w = jax.numpy.ones(3)
    assert w.dtype == np.float64 and w.devices() == {jax.devices("cpu")[0]}
    assert not jax.config.jax_enable_x64   # the caller's setting is back


def test_the_generation_script_times_and_checks_a_tiny_case(capsys, tmp_path):
    """scripts/kolmogorov_reference.py (the GPU timing and doubling check of the recipe) on a tiny case:
    its doubling figure is refinement_change's."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "scripts" / "kolmogorov_reference.py"
    spec = importlib.util.spec_from_file_location("kolmogorov_reference", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    args = [f"{k}={v}" for k, v in TINY.items()]
    assert script.main(args) == 0
    figures = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    problem = K.get_kolmogorov(**TINY, checkpoint_dir=tmp_path)
    per, _ = K.horizon_steps(problem)
    assert figures["device"] == "cpu: cpu" and figures["finite"] and figures["horizon_steps"] == per * (TINY["nt"] - 1)
    expected = K.refinement_change(problem)["value"]
    assert figures["doubling"] == pytest.approx(expected, rel=1e-12) and 0 < expected < 1
    assert script.main(["--no-doubling", "n=31"]) == 2   # a bad parameter: one line, exit 2
    assert "n must be" in capsys.readouterr().err
