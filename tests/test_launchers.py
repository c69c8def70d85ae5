"""Sweep presets (conf/hydra/launcher, conf/hydra/sweeper) and the per-worker device hook (pinnrun.launch)."""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import time

import pytest
from omegaconf import OmegaConf

from conftest import COMPILE_CACHE, QUICK, pinnrun_command, read_jsonl
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


# Slow (16 s): three full trials; test_joblib_and_optuna_presets_compose keeps the preset in the default suite.
@pytest.mark.slow
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


def _submitit_task_pids() -> list[int]:
    """PIDs of submitit's job processes (python -m submitit.core._submit ...)."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cmdline = open(f"/proc/{entry}/cmdline", "rb").read().replace(b"\0", b" ")
            except OSError:
                continue
            if b"submitit.core._submit" in cmdline:
                pids.append(int(entry))
    return pids


# Slow (24 s): submitit start-up, a signal and a requeue; test_submitit_local_two_jobs and
# test_resume.py's SIGTERM test keep the launcher and the save-on-signal path in the default suite.
@pytest.mark.slow
def test_submitit_local_job_requeued_on_sigusr2_resumes_from_its_checkpoint(tmp_path):
    """SIGUSR2 (what SLURM sends before a time limit): pinnrun checkpoints, submitit requeues the job,
    and the requeued job resumes from the checkpoint in the same run directory."""
    needs("hydra_submitit_launcher", "slurm")
    sweep = tmp_path / "sweep"
    args = [
        "-m", "hydra/launcher=submitit_local", "hydra.launcher.timeout_min=10", f"hydra.sweep.dir={sweep}",
        "train.seed=0,1", "train.steps=400", "train.batch_size=256", "arch.width=32", "arch.depth=3",
        "train.log_every=10", "train.eval_every=100", "train.chunk_steps=10", "checkpoint.every=20",
        "train.alignment_every=0", "pde.eval_resolution=[11,11]", "train.figures=false",
    ]
    env = {**os.environ, "PINNRUN_COMPILE_CACHE": str(COMPILE_CACHE), "WANDB_MODE": "disabled"}
    proc = subprocess.Popen(pinnrun_command() + args, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 240
        while not (sweep / "0" / "checkpoints" / "20").is_dir():
            assert time.time() < deadline and proc.poll() is None, "no checkpoint before the deadline"
            time.sleep(0.05)
        pids = _submitit_task_pids()
        assert pids
        for pid in pids:
            os.kill(pid, signal.SIGUSR2)
        _, stderr = proc.communicate(timeout=600)
    finally:
        proc.kill()
    assert proc.returncode == 0, stderr[-3000:]
    logs = "".join(p.read_text() for p in sweep.glob(".submitit/*/*_log.out"))
    assert "resuming from the checkpoint at step" in logs
    for seed in (0, 1):
        run = sweep / str(seed)
        summary = json.loads((run / "summary.json").read_text())
        assert summary["steps"] == 400 and summary["seed"] == seed
        steps = [r["step"] for r in read_jsonl(run / "metrics.jsonl")]
        assert steps == list(range(10, 401, 10))  # no gap, no duplicate across the requeue


def test_cfg_hydra_with_multirun_shows_the_launcher(cli):
    needs("hydra_submitit_launcher", "slurm")
    result = cli(["-m", "hydra/launcher=pinnrun_slurm", "--cfg", "hydra"])
    assert result.returncode == 0, result.stderr[-2000:]
    assert "SlurmLauncher" in result.stdout and "signal_delay_s: 120" in result.stdout and "gpus_per_node: 1" in result.stdout
