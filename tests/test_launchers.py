"""Sweep presets (conf/hydra/launcher, conf/hydra/sweeper) and the per-worker device hook (pinnrun.launch)."""

from __future__ import annotations

import json
import os
import statistics
import time

import pytest
from omegaconf import OmegaConf

from conftest import QUICK
from pinnrun import launch

TINY = [*QUICK, "pde.eval_resolution=[11,11]"]


def needs(plugin: str, extra: str):
    return pytest.importorskip(f"hydra_plugins.{plugin}", reason=f"needs the Hydra plugin {plugin} (pinnrun[{extra}])")


def composed_hydra(cli, *overrides) -> OmegaConf:
    result = cli([*overrides, "--cfg", "hydra"])
    assert result.returncode == 0, result.stderr[-3000:]
    return OmegaConf.create(result.stdout)["hydra"]


# ----- presets compose -----
def test_slurm_preset_composes(cli):
    needs("hydra_submitit_launcher", "slurm")
    hydra = composed_hydra(cli, "hydra/launcher=pinnrun_slurm", "hydra.launcher.timeout_min=30")
    launcher = hydra.launcher
    assert launcher._target_ == "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"
    assert (launcher.gpus_per_node, launcher.tasks_per_node, launcher.nodes) == (1, 1, 1)
    assert launcher.cpus_per_task == 8 and launcher.mem_gb > 0
    assert launcher.signal_delay_s == 120 and launcher.max_num_timeout > 0
    assert launcher.timeout_min == 30  # overridable from the command line
    # The rest of the plugin's schema is there (typed keys for partition, account, ...).
    assert "partition" in launcher and "additional_parameters" in launcher
    assert hydra.runtime.choices["hydra/launcher"] == "pinnrun_slurm"
    # A misspelt key is rejected, not silently added.
    result = cli(["hydra/launcher=pinnrun_slurm", "hydra.launcher.timeout_mins=30", "--cfg", "hydra"])
    assert result.returncode != 0


def test_joblib_and_optuna_presets_compose(cli):
    needs("hydra_joblib_launcher", "sweep")
    needs("hydra_optuna_sweeper", "sweep")
    hydra = composed_hydra(cli, "hydra/launcher=pinnrun_joblib", "hydra/sweeper=pinnrun_optuna_soap", "optim=soap")
    assert hydra.launcher._target_.endswith("JoblibLauncher")
    assert hydra.launcher.n_jobs == 2 and hydra.launcher.backend == "loky"
    sweeper = hydra.sweeper
    assert sweeper._target_.endswith("OptunaSweeper") and sweeper.direction == "minimize"
    assert sweeper.params["optim.lr"] == "tag(log, interval(1e-4, 1e-2))"
    assert sweeper.params["optim.precondition_frequency"] == "choice(1, 2, 5, 10)"


# ----- end to end on CPU -----
def test_submitit_local_two_jobs(cli):
    """Two jobs through submitit's local executor: each a complete run, with submitit's logs and results."""
    needs("hydra_submitit_launcher", "slurm")
    result = cli(["-m", "hydra/launcher=submitit_local", "hydra.launcher.timeout_min=10", "hydra.sweep.dir=sweep",
                  "train.seed=0,1", *TINY])
    assert result.returncode == 0, result.stderr[-3000:]
    sweep = cli.cwd / "sweep"
    summaries = sorted((json.loads(p.read_text()) for p in sweep.glob("*/summary.json")), key=lambda s: s["seed"])
    assert [s["seed"] for s in summaries] == [0, 1]
    assert all(s["steps"] == 20 for s in summaries)
    assert len(list(sweep.glob(".submitit/*/*_result.pkl"))) == 2


def test_optuna_three_trials(cli):
    needs("hydra_optuna_sweeper", "sweep")
    result = cli(["-m", "hydra/sweeper=pinnrun_optuna_soap", "optim=soap", "hydra.sweeper.n_trials=3",
                  "hydra.sweep.dir=sweep", *TINY])
    assert result.returncode == 0, result.stderr[-3000:]
    sweep = cli.cwd / "sweep"
    runs = sorted(p.parent for p in sweep.glob("*/summary.json"))
    assert len(runs) == 3
    results = OmegaConf.load(sweep / "optimization_results.yaml")
    assert set(results.best_params) == {"optim.lr", "optim.precondition_frequency"}
    assert 1e-4 <= results.best_params["optim.lr"] <= 1e-2
    assert results.best_params["optim.precondition_frequency"] in (1, 2, 5, 10)
    # The objective is what the job returns: the mean over fields of the final relative L2.
    values = [statistics.mean(json.loads((r / "summary.json").read_text())["final_rel_l2"].values()) for r in runs]
    assert results.best_value == pytest.approx(min(values), rel=1e-9)
    for run in runs:  # each trial ran with the parameters Optuna picked
        cfg = OmegaConf.load(run / "config.yaml")
        overrides = OmegaConf.load(run / ".hydra" / "overrides.yaml")
        assert f"optim.precondition_frequency={cfg.optim.precondition_frequency}" in overrides


# ----- per-worker device assignment -----
@pytest.fixture
def fake_gpus(tmp_path, monkeypatch):
    """An `nvidia-smi` on PATH that lists two GPUs."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    smi = bin_dir / "nvidia-smi"
    smi.write_text("#!/bin/sh\necho 'GPU 0: Fake H100 (UUID: GPU-a)'\necho 'GPU 1: Fake H100 (UUID: GPU-b)'\n")
    smi.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    return bin_dir


def test_gpu_candidates(fake_gpus, monkeypatch):
    assert launch.gpu_candidates() == ["0", "1"]
    assert launch.gpu_candidates({"CUDA_VISIBLE_DEVICES": "2,3"}) == ["2", "3"]
    assert launch.gpu_candidates({"CUDA_VISIBLE_DEVICES": "1"}) == []  # already one device: leave it
    assert launch.gpu_candidates({"CUDA_VISIBLE_DEVICES": ""}) == []
    monkeypatch.setenv("PATH", "/nonexistent")
    assert launch.gpu_candidates() == []  # no nvidia-smi: a CPU machine


def test_claim_device_locks(tmp_path, capsys):
    first = launch.claim_device(["0", "1"], tmp_path)
    second = launch.claim_device(["0", "1"], tmp_path)
    assert (first[0], second[0]) == ("0", "1")
    third = launch.claim_device(["0", "1"], tmp_path)  # more workers than GPUs: share, with a warning
    assert third[1] is None and third[0] in ("0", "1")
    assert "more parallel workers than GPUs" in capsys.readouterr().err
    first[1].close()  # a worker exits: the OS releases its lock, the next worker gets its GPU
    assert launch.claim_device(["0", "1"], tmp_path)[0] == "0"
    second[1].close()


def test_assign_outside_worker_is_a_no_op(fake_gpus, monkeypatch):
    monkeypatch.delenv(launch.PREALLOCATE, raising=False)
    assert launch.assign_worker_device() is None
    assert launch.PREALLOCATE not in os.environ and "CUDA_VISIBLE_DEVICES" not in os.environ


def test_loky_workers_get_distinct_gpus(fake_gpus, tmp_path):
    """Two loky workers running at once each claim their own GPU and disable XLA preallocation."""
    joblib = pytest.importorskip("joblib")
    from joblib.externals.loky import get_reusable_executor

    path, lock_dir = os.environ["PATH"], str(tmp_path / "locks")

    def probe(i):
        os.environ["PATH"] = path
        os.environ[launch.LOCK_DIR_ENV] = lock_dir
        os.environ.pop("CUDA_VISIBLE_DEVICES", None)
        from pinnrun.launch import assign_worker_device

        device = assign_worker_device()
        again = assign_worker_device()  # idempotent: a reused worker keeps its GPU
        time.sleep(1.0)  # keep both workers busy at once
        return device, again, os.environ["CUDA_VISIBLE_DEVICES"], os.environ["XLA_PYTHON_CLIENT_PREALLOCATE"], os.getpid()

    executor = get_reusable_executor(max_workers=2, reuse=False)
    try:
        results = list(executor.map(probe, range(2)))
    finally:
        executor.shutdown(wait=True)
    assert len({r[4] for r in results}) == 2, "expected two worker processes"
    assert sorted(r[0] for r in results) == ["0", "1"]
    assert all(r[0] == r[1] == r[2] and r[3] == "false" for r in results)
