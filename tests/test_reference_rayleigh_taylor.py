"""The Rayleigh-Taylor reference solver (pinnrun.reference.rayleigh_taylor), on coarse grids.

Independent checks: the unperturbed state against the 1-D heat equation's sine series; the early
growth of a small single mode against the linearised problem solved on another path (the (v, T')
form, another basis, exponential time steps); refinement in x, y and dt; the buoyancy's bounds and
the divergence of the flow."""

from __future__ import annotations

import numpy as np
import pytest

from pinnrun import reference
from pinnrun.reference import rayleigh_taylor as rt


def run(problem, h, steps, record_every=None):
    solver = rt.Solver(problem, h)
    state = solver.initial_state()
    history = [solver.mode_amplitude(state, problem.mode)]
    for _ in range(steps):
        state = solver.step(state)
        history.append(solver.mode_amplitude(state, problem.mode))
    return solver, state, np.array(history)


def test_without_perturbation_the_base_state_only_diffuses_as_the_heat_equation():
    problem = rt.get_rayleigh_taylor(nx=16, ny=128, amplitude=0.0, multimode=0.0, max_mode=1, dt=1e-2)
    solver, state, _ = run(problem, 1e-2, 200)   # t = 2
    fields = solver.fields(state)
    temperature = fields["T"]
    assert np.abs(temperature - temperature.mean(axis=0)).max() < 1e-13      # no x dependence appears
    assert np.abs(fields["u"]).max() == 0.0 and np.abs(fields["v"]).max() == 0.0
    exact = rt.diffusing_base(problem, solver.y, 2.0)
    assert np.abs(temperature[0] - exact).max() < 1e-8
    # hydrostatic pressure: p_y = a2 T
    pressure = fields["p"][0]
    assert np.abs(solver.d @ pressure - problem.a2 * temperature[0]).max() < 1e-9
    # the sine series itself starts from the tanh profile
    y = np.linspace(0.0, 2.0, 101)
    assert np.abs(rt.diffusing_base(problem, y, 0.0) - rt.base_profile(y, problem.delta)).max() < 1e-10


def test_early_growth_of_a_small_single_mode_matches_the_linearised_problem():
    problem = rt.get_rayleigh_taylor(nx=16, ny=96, amplitude=1e-6, multimode=0.0, max_mode=1, dt=2e-3)
    _, _, history = run(problem, 2e-3, 750)       # t = 1.5
    times = np.arange(751) * 2e-3
    window = slice(250, 751, 25)                  # the fitting window t in [0.5, 1.5]
    linear = rt.linear_growth(problem, times[window], n=64)
    np.testing.assert_allclose(history[window], linear, rtol=1e-2)
    rate = np.polyfit(times[window], np.log(history[window]), 1)[0]
    linear_rate = np.polyfit(times[window], np.log(linear), 1)[0]
    assert abs(rate / linear_rate - 1.0) < 1e-2
    assert 1.5 < rate < 2.5                       # sqrt(k / (1 + k delta))-like, ~2.1 for k = 2 pi


def test_refinement_in_x_y_and_dt_and_the_bounds_of_the_buoyancy():
    case = dict(amplitude=0.02, multimode=2e-3, max_mode=4, t_skip=0.0, T=1.0, nt=3, ny_out=65)
    results = {}
    for label, nx, ny, dt in (("coarse", 32, 64, 4e-3), ("dt/2", 32, 64, 2e-3), ("fine", 48, 96, 2e-3)):
        problem = rt.get_rayleigh_taylor(nx=nx, ny=ny, dt=dt, **case)
        data = rt.solve_rayleigh_taylor(problem)
        results[label] = (problem, data)

    def on_common_grid(data):
        # the x grids differ (33 vs 49 points); compare on the nodes they share, x = j / 16
        stride = (len(data["x"]) - 1) // 16
        return {k: data[k][-1, ::stride] for k in ("u", "v", "T")}

    fine = on_common_grid(results["fine"][1])
    coarse_fields = on_common_grid(results["coarse"][1])
    half_step = on_common_grid(results["dt/2"][1])
    for name in ("u", "v", "T"):
        scale = np.linalg.norm(fine[name])
        assert np.linalg.norm(coarse_fields[name] - fine[name]) / scale < 1e-3, name
        # the step's own error: third order, far below the space error here
        assert np.linalg.norm(coarse_fields[name] - half_step[name]) / scale < 1e-5, name
    # the perturbation grew, and the buoyancy stays within its wall and initial bounds
    problem, data = results["fine"]
    assert data["amplitude_history"][-1, 1] > 5 * data["amplitude_history"][len(data["amplitude_history"]) // 4, 1]
    # (collocation has no discrete maximum principle: overshoots stay at the discretisation's
    # accuracy, 4.5e-6 here, against the coarse-fine change of the fields)
    assert np.abs(data["T"]).max() <= problem.t_wall + 1e-5
    # walls: no slip, fixed buoyancy
    for k in ("u", "v"):
        assert np.abs(data[k][:, :, [0, -1]]).max() < 1e-12
    np.testing.assert_allclose(data["T"][:, :, 0], problem.t_wall, atol=1e-12)
    np.testing.assert_allclose(data["T"][:, :, -1], -problem.t_wall, atol=1e-12)


def test_the_flow_is_divergence_free_on_the_solver_grid():
    problem = rt.get_rayleigh_taylor(nx=32, ny=48, amplitude=0.05, multimode=5e-3, max_mode=4, dt=5e-3)
    solver, state, _ = run(problem, 5e-3, 100)
    _, psi_hat, mean_u, _ = state
    u_hat, v_hat = solver.velocity_hat(psi_hat, mean_u)
    divergence = solver.ik * u_hat + solver.dy(v_hat)
    assert np.abs(divergence).max() < 1e-10 * np.abs(v_hat).max()


def test_load_gives_the_documented_arrays_and_bad_arguments_one_line(tmp_path):
    overrides = dict(nx=16, ny=32, dt=1e-2, max_mode=4, T=0.375, nt=3, t_skip=0.1875, ny_out=9)
    data = reference.load("rayleigh_taylor", cache_dir=tmp_path, progress=False, **overrides)
    assert set(data) == {"t", "x", "y", "u", "v", "p", "T", "amplitude_history"}
    for name in ("u", "v", "p", "T"):
        assert data[name].shape == (3, 17, 9)
    assert data["y"][0] == 0.0 and data["y"][-1] == 2.0
    np.testing.assert_array_equal(data["u"][:, 0], data["u"][:, -1])     # the repeated periodic end
    again = reference.load("rayleigh_taylor", cache_dir=tmp_path, progress=False, **overrides)
    np.testing.assert_array_equal(again["T"], data["T"])
    with pytest.raises(ValueError, match="t_skip must be a whole number of snapshot intervals"):
        rt.get_rayleigh_taylor(t_skip=0.01)
    with pytest.raises(ValueError, match="unknown argument"):
        rt.get_rayleigh_taylor(reynolds=1.0)


def momentum_residuals(problem, h, steps):
    """The max of the x- and y-momentum residuals (kept modes) at a nonlinear state, u_t and v_t by
    central differences of the solver's own steps, over max |p_x| and max |p_y - a2 T|."""
    solver, state, _ = run(problem, h, steps)
    before = solver.fields(state)
    middle_state = solver.step(state)
    middle, after = solver.fields(middle_state), solver.fields(solver.step(middle_state))
    modes = solver.to_modes

    def dx(g):
        return solver.to_grid(solver.ik * modes(g))

    def dy(g):
        return solver.to_grid(solver.dy(modes(g)))

    u, v, p, T = (middle[k] for k in ("u", "v", "p", "T"))
    u_t, v_t = (after["u"] - before["u"]) / (2 * h), (after["v"] - before["v"]) / (2 * h)
    ru = modes(u_t + u * dx(u) + v * dy(u) + dx(p) - problem.a1 * (dx(dx(u)) + dy(dy(u))))
    rv = modes(v_t + u * dx(v) + v * dy(v) + dy(p) - problem.a1 * (dx(dx(v)) + dy(dy(v))) - problem.a2 * T)
    return np.abs(ru).max() / np.abs(modes(dx(p))).max(), np.abs(rv).max() / np.abs(modes(dy(p) - problem.a2 * T)).max()


def test_the_pressure_satisfies_both_momentum_equations_in_the_nonlinear_stage():
    # The pressure comes from its Poisson equation; here the momentum equations themselves, with the
    # time derivative from the time stepping, check it at t = 0.5 of a large perturbation (|v| ~ 0.12).
    # The residual is the wall layers' y-resolution: spectral convergence from ny 64 to 96.
    case = dict(ra=1e5, nx=32, amplitude=0.05, multimode=5e-3, max_mode=4, dt=1e-3)
    coarse = momentum_residuals(rt.get_rayleigh_taylor(ny=64, **case), 1e-3, 500)
    fine = momentum_residuals(rt.get_rayleigh_taylor(ny=96, **case), 1e-3, 500)
    assert fine[0] < 2e-5 and fine[1] < 2e-6      # measured 4.2e-6 and 3.5e-7
    assert coarse[0] > 50 * fine[0]               # measured 1.1e-3 -> 4.2e-6
