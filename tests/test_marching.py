"""Time-marching: windows, their initial conditions, whole-horizon errors, resume across windows."""

from __future__ import annotations

import json

import jax.numpy as jnp
import numpy as np
import pytest

from conftest import read_jsonl, run_cli
from pinnrun.losses import CausalConfig
from pinnrun.marching import slice_reference, window_edges
from pinnrun.pdes.base import Reference
from pinnrun.pdes.burgers import Burgers
from test_resume import assert_bitwise_equal, start, wait_for_checkpoint

WAVE_QUICK = [
    "pde=wave",
    "train.time_windows=2",
    "train.log_every=10",
    "train.eval_every=10",
    "train.batch_size=128",
    "arch.width=16",
    "arch.depth=2",
    "arch.fourier.dim=8",
    "pde.eval_resolution=[31,16]",
    "checkpoint.every=10",
    "train.chunk_steps=10",
    "train.figures=false",
    "train.alignment_every=0",
]


def test_the_whole_horizon_is_evaluated_with_each_times_own_window():
    from pinnrun.evaluation import Evaluator

    t = np.array([0.0, 0.24, 0.25, 0.6, 0.99, 1.0])
    ref = Reference(axes={"t": t, "x": np.array([0.1, 0.3, 0.5])}, fields={"u": np.repeat(np.array([0, 0, 1, 2, 3, 3.0])[:, None], 3, axis=1)})

    def apply(p, z):  # a "network" that returns its parameter
        return jnp.atleast_1d(p * 1.0)

    evaluator = Evaluator(Burgers(eval_resolution=(6, 3)), batch_size=4, reference=ref)
    params = [jnp.asarray(k, jnp.float32) for k in range(4)]
    evaluation = evaluator(apply, params, jnp.float32, edges=window_edges(0.0, 1.0, 4))
    assert evaluation.rel_l2["u"] == 0.0  # t in [t_k, t_k+1) -> window k; t = T -> the last window
    indices, device = evaluator.groups(window_edges(0.0, 1.0, 4), jnp.float32)
    assert [len(i) for i in indices] == [6, 3, 3, 6] and device.shape == (4, 2, 4, 2)  # uploaded once, padded alike
    assert evaluator.groups(window_edges(0.0, 1.0, 4), jnp.float32)[1] is device


def test_slice_reference_keeps_window_times():
    ref = Reference(axes={"t": np.linspace(0, 1, 11), "x": np.arange(3.0)}, fields={"u": np.arange(33.0).reshape(11, 3)})
    part = slice_reference(ref, 0, 0.3, 0.6)
    np.testing.assert_allclose(part.axes["t"], [0.3, 0.4, 0.5, 0.6])
    np.testing.assert_array_equal(part.fields["u"], ref.fields["u"][3:7])


def test_a_windows_context_maps_points_and_evaluates_the_initial_condition_once():
    import jax

    from pinnrun.losses import PINNLoss

    pde = Burgers(eval_resolution=(11, 8))
    loss = PINNLoss(pde, lambda p, z: p * z[:1], 64, causal=CausalConfig(4, 1.0, 0, 0.0, 1.0))
    fixed = loss.fixed_points(jax.random.PRNGKey(0))
    source = lambda z: jnp.atleast_1d(z[1] ** 2 + z[0])  # noqa: E731  (the "previous network")
    context = jax.jit(lambda fixed: loss.context(fixed, jnp.asarray([0.5, 0.75]), source))(fixed)
    batch = loss.sample(jax.random.PRNGKey(1), fixed, context)
    initial = np.asarray(batch.points["initial"])
    assert np.all(initial[:, 0] == 0.5) and np.array_equal(initial[:, 1], np.asarray(fixed["initial"], np.float32)[:, 1])
    np.testing.assert_allclose(np.asarray(context.targets["initial"])[:, 0], initial[:, 1] ** 2 + 0.5, rtol=1e-6)
    interior = np.asarray(batch.points["interior"])
    assert 0.5 <= interior[:, 0].min() and interior[:, 0].max() <= 0.75 and np.ptp(interior[:, 0]) > 0.2
    boundary = np.asarray(batch.points["boundary"])
    assert 0.5 <= boundary[:, 0].min() and boundary[:, 0].max() <= 0.75
    # Causal chunks split the window, not the PDE's horizon. The "network" u = t has residual
    # u_t + u u_x - nu u_xx = 1 everywhere, so every chunk's loss is 1 and w_c = exp(-c) when all four
    # chunks hold points (chunks of [0, 1] would put every point in chunk 2: w = 1, 1, 1, e^-1).
    causal = loss.causal_weights(jnp.asarray(1.0), batch)["interior"]
    np.testing.assert_allclose(np.asarray(causal), np.exp(-np.arange(4.0)), rtol=1e-5)
    assert pde.bounds["t"] == (0.0, 1.0)  # the PDE is untouched


# Ginzburg-Landau over t in [0, 0.02] (two windows) on a coarse grid: a 2-D, two-field problem whose
# initial-condition points are a random draw from the grid each step (with their targets).
GL_QUICK = [
    "pde=ginzburg_landau",
    "train=cpu_quick",
    "quick.t_max=0.02",
    "quick.eval_resolution=[5,12,12]",
    "pde.points.initial=32",
    "train.time_windows=2",
    "train.log_every=10",
    "train.eval_every=10",
    "train.batch_size=64",
    "arch.width=16",
    "arch.depth=1",
    "arch.fourier.dim=8",
    "checkpoint.every=10",
    "train.chunk_steps=10",
    "train.figures=false",
    "train.alignment_every=0",
    "weighting=fixed",
]


# Kolmogorov flow over t in [0, 0.02] on a tiny reference (32^2 modes, a short spin-up): its initial
# condition is the reference's first snapshot, the later window's the previous network.
KOLMOGOROV_QUICK = [
    "pde=kolmogorov", "train=cpu_quick", "quick.t_max=0.02", "quick.snapshots=3", "quick.reference_n=32",
    "pde.reference.n_spinup=32", "pde.reference.t_spinup=0.1", "pde.reference.dt_spinup=2e-3", "quick.reference_dt=1e-3",
    "pde.points.initial=32", "train.time_windows=2", "train.log_every=10", "train.eval_every=10", "train.batch_size=64",
    "arch.width=16", "arch.depth=1", "arch.fourier.dim=8", "checkpoint.every=10", "train.chunk_steps=10",
    "train.figures=false", "train.alignment_every=0",
]
# Rayleigh-Taylor over t in [0, 0.02] on a tiny reference (16 Fourier x 16 Chebyshev): four fields,
# a wall point set beside the initial and residual ones, the initial condition a reference snapshot.
RAYLEIGH_TAYLOR_QUICK = [
    "pde=rayleigh_taylor", "train=cpu_quick", "quick.t_max=0.02", "quick.snapshots=3", "quick.reference_nx=16",
    "quick.reference_ny=16", "pde.reference.dt=1e-2", "pde.reference.max_mode=4", "pde.reference.t_skip=0.01",
    "pde.reference.ny_out=9", "pde.points.initial=32", "pde.points.wall=32", "train.time_windows=2", "train.log_every=10",
    "train.eval_every=10", "train.batch_size=64", "arch.width=16", "arch.depth=1", "arch.fourier.dim=8",
    "checkpoint.every=10", "train.chunk_steps=10", "train.figures=false", "train.alignment_every=0",
]
HORIZON = {id(GL_QUICK): 0.02, id(KOLMOGOROV_QUICK): 0.02, id(RAYLEIGH_TAYLOR_QUICK): 0.02}


# The Kolmogorov and Rayleigh-Taylor cases are slow (about 60 s each); the Ginzburg-Landau case keeps the
# 2-D path in the default suite.
@pytest.mark.parametrize("setup", [
    pytest.param(GL_QUICK, id="ginzburg_landau_2d"),
    pytest.param(KOLMOGOROV_QUICK, id="kolmogorov_2d", marks=pytest.mark.slow),
    pytest.param(RAYLEIGH_TAYLOR_QUICK, id="rayleigh_taylor_2d", marks=pytest.mark.slow),
    pytest.param(WAVE_QUICK, id="wave_1d", marks=pytest.mark.slow),
])
def test_time_marching_run_and_resume_across_windows(tmp_path, setup, monkeypatch):
    reference = tmp_path / "full"
    result = run_cli([*setup, "train.steps=30", f"hydra.run.dir={reference}"], tmp_path, env={"PINNRUN_CACHE_DIR": str(tmp_path / "refs")})
    assert result.returncode == 0, result.stderr[-3000:]
    assert "time window 2/2" in result.stdout
    summary = json.loads((reference / "summary.json").read_text())
    horizon = HORIZON.get(id(setup), 1.0)
    assert summary["time_windows"] == 2 and summary["steps"] == 60 and summary["domain"]["t"] == [0.0, horizon]
    # every key a single run's summary has (one code path writes both)
    assert {"steps_executed", "resumed_from_step", "final_loss", "rollbacks", "wall_seconds", "segments", "totals"} <= set(summary)
    records = read_jsonl(reference / "metrics.jsonl")
    assert [r["step"] for r in records] == list(range(10, 61, 10))
    assert [r["window"] for r in records] == [0] * 3 + [1] * 3
    assert sorted(p.name for p in (reference / "windows").iterdir()) == ["window_0.npz", "window_1.npz"]

    killed = tmp_path / "killed"
    proc = start([*setup, "train.steps=30", f"hydra.run.dir={killed}"], tmp_path, env={"PINNRUN_CACHE_DIR": str(tmp_path / "refs")})
    # kill it inside the second (last) window, after that window's first checkpoint
    wait_for_checkpoint(killed, 40, proc)
    proc.kill()
    proc.wait()
    result = run_cli([f"resume={killed}"], tmp_path, env={"PINNRUN_CACHE_DIR": str(tmp_path / "refs")})
    assert result.returncode == 0, result.stderr[-3000:]
    for k in range(2):
        with np.load(reference / "windows" / f"window_{k}.npz") as a, np.load(killed / "windows" / f"window_{k}.npz") as b:
            assert_bitwise_equal(dict(a), dict(b))
    assert [r["step"] for r in read_jsonl(killed / "metrics.jsonl")] == list(range(10, 61, 10))
    resumed = json.loads((killed / "summary.json").read_text())
    assert resumed["final_rel_l2"] == summary["final_rel_l2"]
    # The summary describes both segments (the killed start up to its last checkpoint, the resume), with totals.
    first, second = resumed["segments"]
    assert (first["from_step"], second["to_step"]) == (0, 60) and first["to_step"] == second["from_step"] == resumed["resumed_from_step"]
    assert resumed["totals"]["steps_executed"] == 60 and resumed["totals"]["compile_seconds"] >= second["compile_seconds"] > 0
    assert [s["from_step"] for s in summary["segments"]] == [0] and summary["totals"]["steps_executed"] == 60

    # Predictions out of the resumed run (pinnrun.load_run): every window's network from params.npz,
    # each point predicted by its own window's, the run's evaluation repeated bit for bit.
    import jax

    from pinnrun import load_run
    from pinnrun.trainer import load_params

    monkeypatch.setenv("PINNRUN_CACHE_DIR", str(tmp_path / "refs"))
    run = load_run(killed)
    np.testing.assert_allclose(run.edges, [0.0, horizon / 2, horizon])
    assert len(run.params) == 2 and run.evaluate().rel_l2 == summary["final_rel_l2"]
    for k in range(2):
        saved = load_params(killed / "windows" / f"window_{k}.npz", run.params[k])
        assert all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(saved), jax.tree.leaves(run.params[k])))
    low = [run.pde.bounds[n][0] for n in run.pde.input_names[1:]]
    points = np.array([[0.2 * horizon, *low], [0.7 * horizon, *low], [horizon, *low]])
    fields = run.predict(points)
    for point, k in zip(points, (0, 1, 1)):
        expected = np.asarray(run.model.apply(run.params[k], jnp.asarray(point, run.dtype)))
        got = [fields[name][list(points[:, 0]).index(point[0])] for name in run.pde.field_names]
        np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)
    with pytest.raises(Exception, match="time-marched"):
        load_run(killed, which="best")
    if setup is GL_QUICK:
        check_window_error_budget(killed, run)


def check_window_error_budget(run_dir, run):
    """scripts/window_error_budget.py on a two-window Ginzburg-Landau run: its totals are the run's own
    errors at the window ends, window 0's handover its error at t = 0, and total <= local + inherited."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "scripts" / "window_error_budget.py"
    spec = importlib.util.spec_from_file_location("window_error_budget", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    rows = script.error_budget(run_dir)
    assert [(r["window"], r["field"]) for r in rows] == [(k, f) for k in (0, 1) for f in ("u", "v", "abs_A")]
    reference = run.reference
    t, x, y = (reference.axes[n] for n in ("t", "x", "y"))
    for k, at in ((0, 0), (1, -1)):   # the run's prediction at t = 0 and at t = T
        predicted = run.predict(Reference({"t": np.array([t[at]]), "x": x, "y": y}, {}).points())
        for r in rows:
            if r["window"] != k:
                continue
            exact = reference.fields[r["field"]][at]
            error = np.linalg.norm(predicted[r["field"]].reshape(exact.shape) - exact) / np.linalg.norm(exact)
            assert r["handover" if k == 0 else "total"] == pytest.approx(error, rel=1e-6)
    for r in rows:
        assert 0 < r["total"] <= r["local"] + r["inherited"] + 1e-12 and r["handover"] > 0
