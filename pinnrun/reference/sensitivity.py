"""How fast a perturbation of the initial condition grows: the accuracy a PINN needs on a problem.

A PINN's error at the end of one time window becomes the next window's initial condition, so on a
chaotic problem (Kuramoto-Sivashinsky) the error over the whole horizon is the error of the early
windows amplified by the dynamics. ``perturbation_growth`` measures that amplification with the
reference solver: it solves from ``u0`` and from ``u0 + eps * rms(u0) * p`` (``p`` a smooth random
periodic function with unit RMS, modes 1..``max_mode`` with random phases) and returns the relative
L2 difference of the two solutions at every snapshot, and over the whole grid.
"""

from __future__ import annotations

import numpy as np

from .problems import PeriodicProblem, get_problem, register_initial_condition, solve


def smooth_perturbation(problem: PeriodicProblem, seed: int = 0, max_mode: int = 16):
    """A smooth periodic function on the problem's domain with unit RMS (deterministic in seed)."""
    rng = np.random.default_rng(seed)
    amplitudes = rng.normal(size=max_mode)
    phases = rng.uniform(0.0, 2.0 * np.pi, size=max_mode)
    a, b = problem.domain
    grid = np.linspace(a, b, 4096, endpoint=False)

    def raw(x):
        x = np.asarray(x, dtype=np.float64)
        k = np.arange(1, max_mode + 1)
        angle = 2.0 * np.pi * k * (x[..., None] - a) / (b - a) + phases
        return np.sum(amplitudes * np.cos(angle), axis=-1)

    scale = 1.0 / np.sqrt(np.mean(raw(grid) ** 2))
    return lambda x: scale * raw(x)


def perturbation_growth(name: str, eps: float, seed: int = 0, max_mode: int = 16, **overrides) -> dict:
    """Relative L2 difference between the solutions from u0 and from a perturbed u0.

    Returns ``{"t": [nt], "per_snapshot": [nt], "total": float}``; ``per_snapshot[i]`` is
    ||u_eps(t_i) - u(t_i)|| / ||u(t_i)|| over x (so ``per_snapshot[0]`` is about ``eps``) and
    ``total`` the relative difference over the whole grid. ``overrides`` as for ``get_problem``
    (resolution; ``T`` and ``nt`` for a shorter horizon).
    """
    problem = get_problem(name, **overrides)
    if not isinstance(problem, PeriodicProblem):
        raise ValueError(f"perturbation_growth needs a spectral problem; {name!r} is not one")
    if not eps > 0:
        raise ValueError(f"eps must be positive; got {eps}")
    u0 = problem.u0
    rms = float(np.sqrt(np.mean(u0(problem.x) ** 2)))
    bump = smooth_perturbation(problem, seed, max_mode)
    label = f"{problem.ic} + {eps!r} rms perturbation(seed={seed}, modes<={max_mode})"
    register_initial_condition(label, lambda x: u0(x) + eps * rms * bump(x))
    base = solve(problem)["u"]
    perturbed = solve(problem.with_overrides(ic=label))["u"]
    diff = perturbed - base
    return {
        "t": problem.t,
        "per_snapshot": np.linalg.norm(diff, axis=1) / np.linalg.norm(base, axis=1),
        "total": float(np.linalg.norm(diff) / np.linalg.norm(base)),
    }
