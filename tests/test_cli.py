"""End-to-end runs of the `pinnrun` command in subprocesses."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import QUICK, read_jsonl


def only_run_dir(root: Path) -> Path:
    dirs = [p.parent for p in root.rglob("summary.json")]
    assert len(dirs) == 1, dirs
    return dirs[0]


def test_short_kovasznay_run_writes_every_output(cli):
    result = cli([*QUICK, "train.figures=true", "train.alignment_every=10", "pde.eval_resolution=[31,41]"])
    assert result.returncode == 0, result.stderr[-3000:]
    run_dir = only_run_dir(cli.cwd / "outputs")
    assert "compiling the training step" in result.stdout and "compiled in" in result.stdout
    assert "checkpoints are off (checkpoint.every=0): this run cannot be resumed" in result.stdout
    assert "planned: 20 steps" in result.stdout
    assert "Warning" not in result.stderr, result.stderr[-2000:]
    log = (run_dir / "pinnrun.log").read_text()   # the progress lines, for the record
    assert "planned: 20 steps" in log and "step 20/20" in log

    records = read_jsonl(run_dir / "metrics.jsonl")
    assert [r["step"] for r in records] == [10, 20]
    for record in records:
        for key in ("step", "wall_seconds", "lr", "loss/bc", "loss/ru", "loss/rv", "loss/rc", "weight/bc", "rel_l2/u"):
            assert key in record, key
        assert "align/intra" in record and "cos/bc__ru" in record and "grad_norm/rc" in record

    summary = json.loads((run_dir / "summary.json").read_text())
    for key in ("steps", "steps_per_second", "compile_seconds", "wall_seconds", "final_rel_l2", "best_rel_l2", "seed", "device", "versions"):
        assert key in summary, key
    assert summary["steps"] == 20 and summary["seed"] == 0
    assert summary["domain"] == {"x": [-0.5, 1.0], "y": [-0.5, 1.5]}  # what the errors are measured over
    assert set(summary["final_rel_l2"]) == {"u", "v", "p"}
    assert summary["final_rel_l2"]["u"] == pytest.approx(records[-1]["rel_l2/u"])
    assert all(summary["best_rel_l2"][k] <= summary["final_rel_l2"][k] for k in "uvp")
    assert summary["reference"]["solver"].startswith("exact formula") and summary["reference"]["parameters"] == {"re": 40.0}
    assert summary["persistence_rel_l2"] is None and summary["evaluation_seconds"] > 0

    assert (run_dir / "config.yaml").exists() and (run_dir / ".hydra" / "config.yaml").exists()
    assert (run_dir / "solution.png").stat().st_size > 10_000
    with np.load(run_dir / "params.npz") as params:
        assert len(params.files) >= 6


def test_wave_run_reports_error_against_time(cli):
    result = cli(["pde=wave", *QUICK, "train.figures=true", "pde.eval_resolution=[21,32]", "arch.fourier.dim=8"])
    assert result.returncode == 0, result.stderr[-3000:]
    run_dir = only_run_dir(cli.cwd / "outputs")
    summary = json.loads((run_dir / "summary.json").read_text())
    assert set(summary["final_rel_l2"]) == {"u"} and summary["domain"] == {"t": [0.0, 1.0], "x": [0.0, 1.0]}
    with np.load(run_dir / "error_vs_t.npz") as data:
        assert data["t"].shape == (21,) and data["u"].shape == (21,)
    assert (run_dir / "error_vs_t.png").exists()
    record = read_jsonl(run_dir / "metrics.jsonl")[-1]
    assert {"loss/ic", "loss/ic_t", "loss/bc", "loss/res"} <= set(record)
    # wave trains causally (weighting.causal: true in conf/pde/wave.yaml): its chunk weights are logged
    assert 0.0 <= record["causal/min_w"] <= record["causal/mean_w"] <= 1.0
    # the error of repeating u(0, x) at every t, against the exact solution on the same grid
    t, x = np.linspace(0, 1, 21)[:, None], np.linspace(0, 1, 32)[None, :]
    exact = np.sin(np.pi * x) * np.cos(2 * np.pi * t) + 0.5 * np.sin(4 * np.pi * x) * np.cos(8 * np.pi * t)
    assert summary["persistence_rel_l2"]["u"] == pytest.approx(np.linalg.norm(exact - exact[:1]) / np.linalg.norm(exact), rel=1e-9)
    assert summary["reference"]["solver"] == "exact formula" and summary["reference"]["parameters"]["c"] == 2.0


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["train.steps=-5"], "train.steps must be an integer >= 1"),
        (["arch.activation=nope"], "arch.activation must be one of tanh, sin, swish, gelu"),
        (["pde=nope"], "unknown pde option 'nope'; available pde options: allen_cahn, burgers, ginzburg_landau, gray_scott, kdv, kolmogorov, kovasznay, ks, lid_driven_cavity, rayleigh_taylor, wave"),
        (["pde.re=-3"], "pde.re must be positive"),
        (["pde.re=abc"], "pde.re must be a number; got 'abc'"),
        (["train.stpes=100"], "pinnrun: unknown key train.stpes; did you mean train.steps?"),
        (["+train.stpes=100"], "pinnrun: unknown key train.stpes; did you mean train.steps?"),
        (["+pde.renolds=3"], "unknown key pde.renolds: not a parameter of pinnrun.pdes.kovasznay.Kovasznay; parameters: re,"),
        (["optim=adam_lbfgs", "train.steps=200"], "optim.phases: the steps given (optim.phases.1.steps=500) must leave at least one "
         "step of 200 to the entry with steps: null, or add up to 200 exactly; set train.steps to more than 500 or change those entries"),
        (["weighting.causal=true"], "weighting.causal: kovasznay is not a time-dependent problem; use false"),
        (["pde.eval_resolution=[0,10]"], "pde.eval_resolution must be [nx, ny], integers >= 2; got [0, 10]"),
    ],
)
def test_bad_input_exits_with_one_line_and_writes_nothing(cli, args, fragment):
    result = cli(args)
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert fragment in lines[0]
    assert "compiling" not in result.stdout
    assert not list(cli.cwd.glob("*")), list(cli.cwd.rglob("*"))   # not even Hydra's outputs/<date>/<time> folder


def test_a_folder_that_does_not_exist_is_named_as_such_and_nothing_is_created(cli, tmp_path):
    import subprocess
    import sys

    missing = tmp_path / "no_such_run"
    result = cli([f"resume={missing}"])
    assert result.returncode == 2
    assert result.stderr.strip() == f"pinnrun: resume: {missing} does not exist (give the folder of an earlier run)"
    assert not missing.exists()   # Hydra's resumed/<time> folder is not made in it
    evaluated = subprocess.run([sys.executable, "-m", "pinnrun.evaluate", str(missing)], capture_output=True, text=True)
    assert evaluated.returncode == 2
    assert evaluated.stderr.strip() == f"pinnrun-eval: run_dir: {missing} does not exist (give the folder of a pinnrun run)"
    assert not missing.exists()


def test_init_from_a_folder_that_is_not_a_run_is_one_line(cli, tmp_path):
    (tmp_path / "not_a_run").mkdir()
    result = cli([f"init_from={tmp_path / 'not_a_run'}", "train.steps=5"])
    assert result.returncode == 2
    assert result.stderr.strip() == f"pinnrun: init_from: {tmp_path / 'not_a_run'} has neither checkpoints nor params.npz"


def test_python_dash_m_pinnrun_is_the_pinnrun_command(cli):
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "pinnrun", "--help"], capture_output=True, text=True, cwd=cli.cwd)
    assert result.returncode == 0, result.stderr
    assert "pinnrun: train physics-informed neural networks" in result.stdout


def test_help_lists_groups_and_options(cli):
    result = cli(["--help"])
    assert result.returncode == 0
    for text in ("pde:", "kovasznay", "wave", "optim:", "adam", "arch:", "weighting:", "train:", "resume=<run_dir>",
                 "init_from=<run_dir>", "mode=eval", "pinnrun-report", "pinnrun-plot", "pinnrun-eval", "pinnrun-reference"):
        assert text in result.stdout, text
    assert "${" not in result.stdout   # no unresolved config: --cfg job --resolve shows it


def test_cfg_job_prints_composed_config(cli):
    result = cli(["--cfg", "job", "optim.lr=0.002"])
    assert result.returncode == 0
    assert "lr: 0.002" in result.stdout and "_target_: pinnrun.pdes.kovasznay.Kovasznay" in result.stdout
    # a config a run would refuse is refused here too, in the same line
    result = cli(["--cfg", "job", "train.steps=-5"])
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.strip() == "pinnrun: train.steps must be an integer >= 1; got -5"


def test_multirun_writes_one_complete_run_per_job(cli):
    result = cli(["-m", "optim=adam", "train.seed=0,1", *QUICK, "pde.eval_resolution=[11,11]"])
    assert result.returncode == 0, result.stderr[-3000:]
    summaries = sorted(cli.cwd.glob("multirun/*/*/*/summary.json"))
    assert len(summaries) == 2
    seeds = sorted(json.loads(p.read_text())["seed"] for p in summaries)
    assert seeds == [0, 1]
    for path in summaries:
        assert (path.parent / "metrics.jsonl").exists() and (path.parent / "params.npz").exists()
    finals = [json.loads(p.read_text())["final_rel_l2"]["u"] for p in summaries]
    assert finals[0] != finals[1]
    sweep = summaries[0].parent.parent
    assert f"sweep finished: {sweep}\ncompare its runs with: pinnrun-report {sweep}" in result.stdout
