"""Dense quasi-Newton methods as pinnrun phases (issue 20): optim=soap_ssbroyden / adam_ssbfgs /
ssbroyden under train=cpu_qn; the refusal of a network too big for a dense matrix; the float32
phase of a run with a float64 phase computes exactly as a float32-only run; a checkpoint inside a
quasi-Newton phase resumes bit for bit (its inverse Hessian is in the state); residual-based
adaptive resampling; the quasi-Newton preconditioner in the alignment scores."""

from __future__ import annotations

import json
import shutil

import jax
import jax.numpy as jnp
import numpy as np

from conftest import read_jsonl, run_cli
from pinnrun.optim import quasi_newton

# Burgers at a tiny cpu_qn budget: 20 Adam/SOAP steps, then 20 quasi-Newton steps on batches of 64
# drawn again every 7 steps by RAD (so a new batch falls on both sides of the resume point).
TINY_QN = [
    "pde=burgers", "train=cpu_qn", "qn.steps=40", "qn.first_phase_steps=20", "qn.batch_size=64", "qn.width=8",
    "qn.depth=2", "qn.resample_every=7", "pde.eval_resolution=[21,64]", "train.log_every=10", "train.eval_every=10",
    "train.figures=false",
]


def params_of(run_dir):
    with np.load(run_dir / "params.npz") as data:
        return {k: data[k] for k in data.files}


def test_a_network_too_big_for_a_dense_matrix_is_refused_before_anything_compiles(tmp_path):
    result = run_cli(["pde=burgers", "optim=soap_ssbroyden", "train=cpu_quick", "hydra.run.dir=big"], tmp_path)
    assert result.returncode == 2
    line = result.stderr.strip().splitlines()[-1]
    assert line == ("pinnrun: optim.phases[1] (ssbroyden): the network has 29,249 parameters, above the dense quasi-Newton cap "
                    "of 5,000 (optim.phases[1].max_params; its matrix would hold 855,504,001 numbers): shrink arch.width, "
                    "arch.depth or arch.fourier.dim, or use lbfgs")
    assert "compiling" not in result.stdout and not (tmp_path / "big" / "metrics.jsonl").exists()
    result = run_cli(["pde=wave", "optim=ssbroyden", "train=cpu_qn"], tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        "pinnrun: train=cpu_qn: pde=wave has no qn budget (a `qn:` entry in its YAML); PDEs with one: allen_cahn, burgers, kdv")
    result = run_cli([*TINY_QN, "optim=ssbroyden", "optim.resample=sobol"], tmp_path)
    assert result.stderr.strip().splitlines()[-1] == "pinnrun: optim.resample must be one of uniform, rad; got 'sobol'"


def test_the_float32_phase_of_a_run_with_a_float64_phase_computes_as_a_float32_run(tmp_path):
    """Adam's 20 steps before SSBFGS (float64, so JAX's 64-bit mode is on) against Adam alone (off):
    the same points, the same losses, bit for bit; then the quasi-Newton phase trains in float64."""
    both = run_cli([*TINY_QN, "optim=adam_ssbfgs", "hydra.run.dir=both", "checkpoint.every=0"], tmp_path)
    assert both.returncode == 0, both.stderr[-3000:]
    assert "phase 2/2: ssbfgs from step 20 (float64)" in both.stdout
    alone = run_cli([*TINY_QN, "optim=adam", "train.steps=20", "hydra.run.dir=alone", "checkpoint.every=0"], tmp_path)
    assert alone.returncode == 0, alone.stderr[-3000:]
    first = {r["step"]: r for r in read_jsonl(tmp_path / "both" / "metrics.jsonl")}
    only = {r["step"]: r for r in read_jsonl(tmp_path / "alone" / "metrics.jsonl")}
    for step in (10, 20):
        assert first[step]["loss"] == only[step]["loss"] and first[step]["rel_l2/u"] == only[step]["rel_l2/u"], step
    summary = json.loads((tmp_path / "both" / "summary.json").read_text())
    assert [s["precision"] for s in summary["stages"]] == ["float32", "float64"]
    assert summary["stages"][1]["final_rel_l2"]["u"] < summary["stages"][0]["final_rel_l2"]["u"]
    assert first[40]["qn/updates"] > 10   # H was updated on most steps ...
    assert first[40]["qn/skipped"] <= 3   # ... and at most the straddling pair of each new batch skipped
    assert params_of(tmp_path / "both")["hidden/0/kernel"].dtype == np.float64


def test_ssbroyden_alone_trains_in_float64_from_the_first_step(tmp_path):
    """A run whose first stage is float64 (its points and network drawn in float64) on uniform batches."""
    result = run_cli([*TINY_QN, "optim=ssbroyden", "qn.steps=10", "qn.resample=uniform", "train.log_every=5",
                      "train.eval_every=5", "checkpoint.every=0", "hydra.run.dir=alone"], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((tmp_path / "alone" / "summary.json").read_text())
    assert summary["optimizer"] == "ssbroyden" and summary["stages"][0]["precision"] == "float64"
    records = read_jsonl(tmp_path / "alone" / "metrics.jsonl")
    assert records[-1]["loss"] < records[0]["loss"] and "lr" not in records[-1]


def test_a_checkpoint_inside_the_ssbroyden_phase_resumes_bit_for_bit(tmp_path):
    args = [*TINY_QN, "optim=soap_ssbroyden", "checkpoint.every=10", "checkpoint.keep=5", "train.alignment_every=10"]
    result = run_cli([*args, "hydra.run.dir=whole"], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    whole = tmp_path / "whole"
    # the same run cut after its checkpoint at step 30 (10 steps into SSBroyden): later files removed
    cut = tmp_path / "cut"
    shutil.copytree(whole, cut)
    shutil.rmtree(cut / "checkpoints" / "40")
    for name in ("summary.json", "params.npz"):
        (cut / name).unlink()
    result = run_cli([f"resume={cut}"], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "resuming from the checkpoint at step 30" in result.stdout
    a, b = params_of(whole), params_of(cut)
    assert a.keys() == b.keys() and all(a[k].tobytes() == b[k].tobytes() for k in a)
    records = {r["step"]: r for r in read_jsonl(whole / "metrics.jsonl")}
    resumed = {r["step"]: r for r in read_jsonl(cut / "metrics.jsonl")}
    assert {k: v for k, v in resumed[40].items() if k != "wall_seconds"} == {k: v for k, v in records[40].items() if k != "wall_seconds"}
    # the alignment scores inside the quasi-Newton phase use its inverse Hessian (finite, in [-1, 1])
    scores = [v for k, v in records[40].items() if k.startswith("align/")]
    assert scores and all(-1.0 - 1e-9 <= v <= 1.0 + 1e-9 for v in scores)


def test_rad_keeps_points_where_the_residual_is_large(x64):
    """RAD's batch concentrates where |r| is large: a field with a residual only for x > 0.5."""
    from pinnrun.build import build
    from pinnrun.cli import compose_config as compose
    from pinnrun.config import validate
    from pinnrun.phases import rad_sample

    cfg = validate(compose(["pde=burgers", "train=cpu_qn", "qn.batch_size=2000", "qn.width=4", "qn.depth=1"]))
    c = build(cfg)
    loss = c.loss_for(jnp.float64)
    fixed = loss.fixed_points(jax.random.PRNGKey(0))
    params = c.model_for(jnp.float64).init(jax.random.PRNGKey(1))
    step = lambda params, z: jnp.tanh(50.0 * (z[..., 1:2] - 0.5))  # noqa: E731  (u jumps at x = 0.5)
    steep = type(loss)(loss.pde, step, loss.batch_size, loss.causal, loss.dtype)
    batch = rad_sample(steep, params, jax.random.PRNGKey(2), fixed, None, pool=4, k=1.0, c=0.0)
    x = np.asarray(batch.points["interior"][:, 1])
    assert batch.points["interior"].shape == (2000, 2)
    # 10% of uniform draws lie in [0.4, 0.6]; RAD keeps nearly all 800 such candidates of its pool of 8000
    assert np.mean(np.abs(x - 0.5) < 0.1) > 0.35
    assert len(np.unique(x)) == 2000               # no point twice
    uniform = rad_sample(steep, params, jax.random.PRNGKey(2), fixed, None, pool=4, k=1.0, c=1e12)
    assert abs(np.mean(np.abs(np.asarray(uniform.points["interior"][:, 1]) - 0.5) < 0.1) - 0.1) < 0.03


def test_alignment_preconditions_with_the_inverse_hessian(x64):
    from pinnrun import alignment

    opt = quasi_newton.scale_by_quasi_newton("ssbroyden")
    params = {"a": jnp.ones(2), "b": jnp.ones((1, 2))}
    state = opt.init(params)
    H = jnp.diag(jnp.arange(1.0, 5.0))
    state = state._replace(inverse_hessian=H)
    per_term = {"a": jnp.ones((3, 2)), "b": jnp.ones((3, 1, 2))}   # K = 3 terms
    out = alignment.precondition((state, ()), per_term, batched=True)
    np.testing.assert_allclose(out["a"], np.tile([1.0, 2.0], (3, 1)))
    np.testing.assert_allclose(out["b"], np.tile([[3.0, 4.0]], (3, 1, 1)))


def test_restart_pairs_keeps_h_and_skips_one_update(x64):
    """After a new batch the next pair (s, y) mixes two objectives: no update from it, H kept."""
    A = jnp.diag(jnp.array([1.0, 3.0]))
    opt = quasi_newton.scale_by_quasi_newton("ssbroyden")
    x0, x1, x2 = jnp.array([1.0, 2.0]), jnp.array([0.5, 1.5]), jnp.array([0.2, 0.4])
    state = opt.init(x0)
    _, state = opt.update(A @ x0, state, x0)
    _, state = opt.update(A @ x1, state, x1)
    assert int(state.updates) == 1 and not np.allclose(state.inverse_hessian, np.eye(2))
    _, after = opt.update(A @ x2, quasi_newton.restart_pairs(state), x2)
    np.testing.assert_array_equal(after.inverse_hessian, state.inverse_hessian)
    assert int(after.updates) == 1 and int(after.skipped) == 0
    _, later = opt.update(A @ x1, after, x1)   # the pair after it updates H again
    assert int(later.updates) == 2
