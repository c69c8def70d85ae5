"""Predictions out of a run (pinnrun.runs.load_run, pinnrun-predict): the saved parameters reproduce
summary.json's errors bit for bit at the run's eval batch size and dtype, and within 1e-6 at another
batch size; params.npz has plain names (and older files still load); mode=eval on the best checkpoint.
A time-marched run (each point predicted by its own window's network) is checked in
tests/test_marching.py's run-and-resume test, on its resumed run."""

from __future__ import annotations

import json
import subprocess

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import QUICK, run_cli


def finished_run(tmp_path, args):
    result = run_cli([*args, f"hydra.run.dir={tmp_path / 'run'}"], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    return tmp_path / "run"


def predict_cli(args, cwd, capsys, monkeypatch):
    """pinnrun-predict's main in this process (its argument handling, files and messages)."""
    from pinnrun.predict import main

    monkeypatch.chdir(cwd)
    capsys.readouterr()
    code = main(args)
    out = capsys.readouterr()
    return subprocess.CompletedProcess(args, code, out.out, out.err)


@pytest.fixture(scope="module")
def kovasznay_run(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("kovasznay")
    return finished_run(tmp_path, [*QUICK, "pde.eval_resolution=[31,41]", "checkpoint.every=10"])


def test_a_run_reproduces_its_errors_from_its_saved_parameters(kovasznay_run):
    from pinnrun import load_run

    run = load_run(kovasznay_run)
    summary = run.summary
    assert run.source == "params.npz" and run.field_names == ("u", "v", "p") and run.edges is None
    evaluation = run.evaluate()
    assert evaluation.rel_l2 == summary["final_rel_l2"]           # bit for bit: same batch size, dtype
    # anywhere, at another batch size: the same network within float32 rounding of the batching
    points = run.reference.points()
    fields = run.predict(points, batch_size=777)
    for name in ("u", "v"):
        expected = evaluation.prediction[name].reshape(-1)
        assert np.max(np.abs(fields[name] - expected)) <= 1e-6 * np.max(np.abs(expected))
    with np.load(kovasznay_run / "params.npz") as data:
        assert all("[" not in key for key in data.files) and any(key.startswith("hidden/0/") for key in data.files)
    best = load_run(kovasznay_run, which="best")
    assert best.source.startswith("checkpoint ")


def test_pinnrun_predict_on_a_grid_points_and_the_reference(kovasznay_run, tmp_path, capsys, monkeypatch):
    result = predict_cli([str(kovasznay_run), "--grid", "y=-0.5:1.5:5", "x=-0.5:1:3", "--out", "grid.npz"], tmp_path, capsys, monkeypatch)
    assert result.returncode == 0, result.stderr
    with np.load(tmp_path / "grid.npz") as data:
        assert data["x"].shape == (3,) and data["y"].shape == (5,) and data["u"].shape == (3, 5)
        grid_u = data["u"]
    from pinnrun import load_run

    run = load_run(kovasznay_run)
    x, y = np.meshgrid(np.linspace(-0.5, 1, 3), np.linspace(-0.5, 1.5, 5), indexing="ij")
    np.save(tmp_path / "points.npy", np.stack([x.reshape(-1), y.reshape(-1)], axis=-1))
    result = predict_cli([str(kovasznay_run), "--points", "points.npy", "--out", "points.csv"], tmp_path, capsys, monkeypatch)
    assert result.returncode == 0, result.stderr
    table = np.loadtxt(tmp_path / "points.csv", delimiter=",", skiprows=1)
    assert (tmp_path / "points.csv").read_text().splitlines()[0] == "x,y,u,v,p"
    np.testing.assert_allclose(table[:, 2], grid_u.reshape(-1), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(table[:, 2], run.predict(table[:, :2])["u"], rtol=1e-6, atol=1e-7)
    result = predict_cli([str(kovasznay_run), "--reference", "--out", "ref.npz"], tmp_path, capsys, monkeypatch)
    assert result.returncode == 0, result.stderr
    lines = [ln for ln in result.stdout.splitlines() if ln.startswith("rel_l2 ")]
    assert len(lines) == 3 and all(ln.endswith("(the same)") for ln in lines), result.stdout
    for args, fragment in [
        (["--grid", "x=0:1:3"], "--grid: no axis for y"),
        (["--grid", "z=0:1:3", "y=0:1:2"], "name one of x, y"),
        (["--grid", "x=0:one:3", "y=0:1:2"], "must be numbers"),
    ]:
        result = predict_cli([str(kovasznay_run), *args], tmp_path, capsys, monkeypatch)
        assert result.returncode == 2 and fragment in result.stderr and len(result.stderr.strip().splitlines()) == 1
    result = predict_cli([str(tmp_path / "nowhere"), "--reference"], tmp_path, capsys, monkeypatch)
    assert result.returncode == 2 and "does not exist" in result.stderr


def test_eval_mode_evaluates_the_runs_best_checkpoint(kovasznay_run, tmp_path):
    result = run_cli(["mode=eval", f"run_dir={kovasznay_run}"], tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert not list(tmp_path.iterdir())   # an evaluation writes only inside its run
    errors = json.loads((kovasznay_run / "eval" / "errors.json").read_text())
    assert errors["source"].startswith("checkpoint")
    best = json.loads((kovasznay_run / "summary.json").read_text())["best_rel_l2"]
    assert np.mean(list(errors["rel_l2"].values())) == pytest.approx(np.mean(list(best.values())), rel=1e-6)
    assert (kovasznay_run / "eval" / "solution.png").exists()


def test_parameter_files_with_the_older_keys_still_load(tmp_path):
    from pinnrun.trainer import load_params

    params = {"hidden": [{"bias": jnp.arange(3.0), "kernel": jnp.ones((2, 3))}], "out": {"bias": jnp.zeros(1)}}
    old = {jax.tree_util.keystr(p): np.asarray(v) for p, v in jax.tree_util.tree_leaves_with_path(params)}
    assert "['hidden'][0]['bias']" in old
    np.savez(tmp_path / "old.npz", **old)
    loaded = load_params(tmp_path / "old.npz", params)
    for a, b in zip(jax.tree.leaves(loaded), jax.tree.leaves(params)):
        np.testing.assert_array_equal(a, b)
    assert json.dumps(sorted(old))  # the keys are strings


def test_load_run_refuses_a_folder_that_is_not_a_run(tmp_path):
    from pinnrun import load_run
    from pinnrun.config import ConfigError

    with pytest.raises(ConfigError, match="has no config.yaml"):
        load_run(tmp_path)
    with pytest.raises(ConfigError, match="which must be one of final, best"):
        load_run(tmp_path, which="latest")
