"""Exact resume after kills and signals, damaged checkpoints, non-finite losses, fine-tuning, eval."""

from __future__ import annotations

import json
import shutil
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import COMPILE_CACHE, pinnrun_command, read_jsonl, run_cli

SLOWISH = [
    "train.batch_size=256",
    "arch.width=32",
    "arch.depth=3",
    "train.log_every=10",
    "train.eval_every=20",
    "pde.eval_resolution=[11,11]",
    "train.figures=false",
    "checkpoint.every=20",
    "train.chunk_steps=10",
    "train.alignment_every=0",
]


def params_of(run_dir: Path) -> dict[str, np.ndarray]:
    with np.load(run_dir / "params.npz") as data:
        return {k: data[k] for k in data.files}


def assert_bitwise_equal(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert a[k].dtype == b[k].dtype and np.array_equal(a[k], b[k]), k


def start(args: list[str], cwd: Path, env: dict | None = None) -> subprocess.Popen:
    env = {**os.environ, "PINNRUN_COMPILE_CACHE": str(COMPILE_CACHE), "WANDB_MODE": "disabled", **(env or {})}
    return subprocess.Popen(pinnrun_command() + args, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_checkpoint(run_dir: Path, step: int, proc: subprocess.Popen, timeout: float = 240, folder: Path | None = None) -> None:
    """Block until checkpoint ``step`` is finished (orbax renames its temporary folder when done)."""
    folder = folder or run_dir / "checkpoints"
    deadline = time.time() + timeout
    while time.time() < deadline:
        if (folder / str(step)).is_dir():
            return
        if proc.poll() is not None:
            raise AssertionError(f"run ended before checkpoint {step}: {proc.stderr.read()[-2000:]}")
        time.sleep(0.05)
    raise AssertionError(f"no checkpoint {step} after {timeout} s")


def reference_run(tmp_path: Path, steps: int, extra: list[str]) -> Path:
    run_dir = tmp_path / "uninterrupted"
    result = run_cli([f"train.steps={steps}", *SLOWISH, *extra, f"hydra.run.dir={run_dir}"], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    return run_dir


def check_resumed_equals_reference(tmp_path: Path, run_dir: Path, reference: Path, steps: int) -> None:
    result = run_cli([f"resume={run_dir}"], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    resumed_from = int(result.stdout.split("resuming from the checkpoint at step ")[1].split()[0])
    assert resumed_from >= 20
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["resumed_from_step"] == resumed_from
    assert summary["steps_executed"] == steps - resumed_from
    assert_bitwise_equal(params_of(run_dir), params_of(reference))
    records, expected = read_jsonl(run_dir / "metrics.jsonl"), read_jsonl(reference / "metrics.jsonl")
    assert [r["step"] for r in records] == [r["step"] for r in expected]  # cut back, no duplicates
    drop = {"wall_seconds"}
    for got, want in zip(records, expected):
        if got["step"] > resumed_from:
            assert {k: v for k, v in got.items() if k not in drop} == {k: v for k, v in want.items() if k not in drop}
    # Hydra's files of the resumed segment went to their own folder
    assert (run_dir / ".hydra" / "config.yaml").exists() and list((run_dir / "resumed").glob("*/.hydra/config.yaml"))


# Slow (about 40 s). The default suite keeps kill -9 then a bit-for-bit resume in
# tests/test_marching.py::test_time_marching_run_and_resume_across_windows (Ginzburg-Landau, Adam) and
# tests/test_cavity.py::test_a_cavity_curriculum_resumes_bit_for_bit_after_a_kill_in_its_second_stage
# (schedule-free SOAP, across stages).
@pytest.mark.slow
@pytest.mark.parametrize("optim", ["adam"])
def test_sigkill_then_resume_is_bitwise_identical(tmp_path, optim):
    steps = 200
    reference = reference_run(tmp_path, steps, [f"optim={optim}"])
    run_dir = tmp_path / "killed"
    proc = start([f"train.steps={steps}", *SLOWISH, f"optim={optim}", f"hydra.run.dir={run_dir}"], tmp_path)
    wait_for_checkpoint(run_dir, 40, proc)
    proc.kill()
    proc.wait()
    assert not (run_dir / "summary.json").exists(), "the run finished before it was killed"
    check_resumed_equals_reference(tmp_path, run_dir, reference, steps)


# Slow (about 30 s): tests/test_preemption.py::test_real_process_checkpoints_and_exits_75 keeps a real
# process that checkpoints on SIGTERM and exits 75 in the default suite.
@pytest.mark.slow
def test_sigterm_saves_and_exits_resumable(tmp_path):
    steps = 200
    reference = reference_run(tmp_path, steps, [])
    run_dir = tmp_path / "terminated"
    proc = start([f"train.steps={steps}", *SLOWISH, f"hydra.run.dir={run_dir}"], tmp_path)
    wait_for_checkpoint(run_dir, 20, proc)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 75, stderr[-2000:]
    assert "received SIGTERM" in stderr and f"resume={run_dir}" in stderr
    check_resumed_equals_reference(tmp_path, run_dir, reference, steps)


def test_every_checkpoint_damaged_ends_in_pinnruns_lines_only(tmp_path):
    run_dir = tmp_path / "damaged"
    result = run_cli(["train.steps=60", *SLOWISH, f"hydra.run.dir={run_dir}"], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    # Every checkpoint damaged (issue 18 item 7), on copies: the metadata (the resume reads the run's
    # config from it) or the state. pinnrun's lines only, no traceback, exit 2, nothing renamed or written.
    for part in ("metadata", "state"):
        copy = tmp_path / f"all_{part}"
        shutil.copytree(run_dir, copy)
        for step_dir in (copy / "checkpoints").iterdir():
            for file in (p for p in (step_dir / part).rglob("*") if p.is_file()):
                file.write_bytes(file.read_bytes()[: file.stat().st_size // 2])
        before = {p: p.read_bytes() for p in copy.rglob("*") if p.is_file()}
        result = run_cli([f"resume={copy}", "train.steps=80"], tmp_path)
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 2 and all(line.startswith("pinnrun: ") for line in lines), result.stderr[-3000:]
        assert f"could not restore the {'metadata' if part == 'metadata' else 'state'} from any checkpoint" in lines[-1]
        assert {p: p.read_bytes() for p in copy.rglob("*") if p.is_file()} == before


# Slow (about 20 s: a run and a resume that trains). The default suite keeps the fallback itself by
# tests/test_checkpoint.py's test_damaged_latest_falls_back_to_previous (the Checkpointer, three kinds
# of damage) and the CLI's damaged-checkpoint lines by the test above.
@pytest.mark.slow
def test_damaged_latest_checkpoint_falls_back_to_the_previous_one(tmp_path):
    run_dir = tmp_path / "damaged"
    result = run_cli(["train.steps=60", *SLOWISH, f"hydra.run.dir={run_dir}"], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    latest = run_dir / "checkpoints" / "60"
    biggest = max((p for p in latest.rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)
    biggest.write_bytes(biggest.read_bytes()[: biggest.stat().st_size // 2])
    # the run is complete at 60: ask for more, so that the resume has to restore the damaged checkpoint
    result = run_cli([f"resume={run_dir}", "train.steps=80"], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "checkpoint at step 60" in result.stderr and "trying the previous one" in result.stderr
    # pinnrun's own warnings are one line each (no Python file:line prefix and source line).
    lines = result.stderr.splitlines()
    assert any(line.startswith("pinnrun: checkpoint at step 60 in ") and line.endswith("; trying the previous one") for line in lines)
    assert any(line.startswith("pinnrun: moved the damaged checkpoint") and line.endswith("60.corrupt") for line in lines)
    assert "RuntimeWarning: pinnrun:" not in result.stderr, result.stderr[-2000:]
    assert "resuming from the checkpoint at step 40" in result.stdout


def test_resume_refuses_changes_to_the_maths(tmp_path):
    run_dir = tmp_path / "run"
    assert run_cli(["train.steps=20", *SLOWISH, f"hydra.run.dir={run_dir}"], tmp_path).returncode == 0
    before = {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}
    result = run_cli([f"resume={run_dir}", "optim.lr=0.1"], tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "optim.lr cannot change on resume" in lines[0] and "train.steps" in lines[0]
    # A finished run: nothing to do, and fewer steps than its checkpoint cannot be asked for.
    result = run_cli([f"resume={run_dir}"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"run {run_dir} is already complete at step 20; nothing to do" in result.stdout
    assert "compiled" not in result.stdout
    result = run_cli([f"resume={run_dir}", "train.steps=10"], tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == (f"pinnrun: train.steps: {run_dir} is checkpointed at step 20, past the 10 steps "
                                     "asked for; a resume can only go on (train.steps >= its steps so far)")
    # None of the three wrote anything: no resumed/<time> folder, every file as it was.
    assert {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()} == before
    assert not (run_dir / "resumed").exists()


# Slow (15-30 s: a run and its resume). The default suite keeps the path of a resume that goes on by
# test_auto_resume_in_multirun_continues_a_requeued_job and the logger group's composition by
# test_logger_none_works_without_wandb.
@pytest.mark.slow
def test_a_resume_may_choose_another_logger(tmp_path):
    run_dir = tmp_path / "run"
    assert run_cli(["train.steps=20", *SLOWISH, f"hydra.run.dir={run_dir}"], tmp_path).returncode == 0
    # A resume may choose another logger (a group choice, not a value); W&B itself is off here.
    result = run_cli([f"resume={run_dir}", "logger=wandb", "logger.project=elsewhere", "train.steps=30"], tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    from pinnrun.checkpoint import Checkpointer

    with Checkpointer(run_dir / "checkpoints") as checkpointer:
        logger = checkpointer.restore_metadata()["config"]["logger"]
    assert logger["name"] == "wandb" and logger["project"] == "elsewhere"


def test_non_finite_loss_stops_naming_the_step_and_keeps_checkpoints(tmp_path):
    run_dir = tmp_path / "nan"
    result = run_cli(["train.steps=200", *SLOWISH, "optim.lr=1e30", "optim.warmup_steps=0", f"hydra.run.dir={run_dir}"], tmp_path)
    assert result.returncode == 3, result.stderr[-2000:]
    message = result.stderr.strip().splitlines()[-1]
    assert "non-finite loss at step" in message
    step = int(message.split("non-finite loss at step ")[1].split()[0])
    assert 1 <= step <= 200
    # whatever was saved before the blow-up restores
    from pinnrun.checkpoint import Checkpointer

    with Checkpointer(run_dir / "checkpoints") as checkpointer:
        for saved in checkpointer.steps():
            assert saved < step
            assert checkpointer.restore_metadata(saved)["step"] == saved


# Slow (35-50 s: three runs). The default suite keeps init_from's checks by
# test_cli's test_init_from_a_folder_that_is_not_a_run_is_one_line; the restore of parameters from a
# checkpoint is the resume tests' path.
@pytest.mark.slow
def test_init_from_starts_from_another_runs_parameters(tmp_path):
    source = tmp_path / "source"
    assert run_cli(["train.steps=100", *SLOWISH, f"hydra.run.dir={source}"], tmp_path).returncode == 0
    fresh = run_cli(["train.steps=10", *SLOWISH, f"hydra.run.dir={tmp_path / 'fresh'}"], tmp_path)
    tuned = run_cli(["train.steps=10", *SLOWISH, f"init_from={source}", f"hydra.run.dir={tmp_path / 'tuned'}"], tmp_path)
    assert fresh.returncode == 0 and tuned.returncode == 0, tuned.stderr[-2000:]
    source_loss = read_jsonl(source / "metrics.jsonl")[-1]["loss"]
    fresh_loss = read_jsonl(tmp_path / "fresh" / "metrics.jsonl")[0]["loss"]
    tuned_loss = read_jsonl(tmp_path / "tuned" / "metrics.jsonl")[0]["loss"]
    assert abs(tuned_loss - source_loss) < abs(fresh_loss - source_loss)
    assert read_jsonl(tmp_path / "tuned" / "metrics.jsonl")[0]["step"] == 10


def test_auto_resume_in_multirun_continues_a_requeued_job(tmp_path):
    sweep = tmp_path / "sweep"
    args = ["-m", "train.seed=0", *SLOWISH, f"hydra.sweep.dir={sweep}", "hydra.sweep.subdir=job"]
    first = run_cli([*args, "train.steps=40"], tmp_path)
    assert first.returncode == 0, first.stderr[-2000:]
    again = run_cli([*args, "train.steps=60"], tmp_path)  # the same job launched again, with more steps
    assert again.returncode == 0, again.stderr[-2000:]
    assert "resuming from the checkpoint at step 40" in again.stdout
    assert [r["step"] for r in read_jsonl(sweep / "job" / "metrics.jsonl")] == [10, 20, 30, 40, 50, 60]


# Slow (30 s): the sink's offline logging, close and resume with the same id stay in the default suite
# in tests/test_wandb_sink.py::test_offline_log_close_and_resume.
@pytest.mark.slow
def test_wandb_offline_run_has_alignment_metrics_and_keeps_its_id_on_resume(tmp_path):
    run_dir = tmp_path / "wb"
    env = {"WANDB_MODE": "offline", "WANDB_SILENT": "true"}
    result = run_cli(["logger=wandb", "train.steps=20", *SLOWISH, "train.alignment_every=10", f"hydra.run.dir={run_dir}"], tmp_path, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    runs = sorted((run_dir / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    data = b"".join(p.read_bytes() for p in runs[0].glob("*.wandb"))
    assert b"align/intra" in data and b"rel_l2/u" in data
    run_id = runs[0].name.split("-")[-1]
    result = run_cli([f"resume={run_dir}", "train.steps=40"], tmp_path, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    ids = {p.name.split("-")[-1] for p in (run_dir / "wandb").glob("offline-run-*")}
    assert ids == {run_id}


def test_logger_none_works_without_wandb(tmp_path):
    code = (
        "import sys, builtins\n"
        "real = builtins.__import__\n"
        "def guard(name, *a, **k):\n"
        "    if name == 'wandb' or name.startswith('wandb.'):\n"
        "        raise ImportError('wandb is not installed')\n"
        "    return real(name, *a, **k)\n"
        "builtins.__import__ = guard\n"
        "from pinnrun.cli import main\n"
        "sys.argv = ['pinnrun'] + sys.argv[1:]\n"
        "main()\n"
    )
    env = {**os.environ, "PINNRUN_COMPILE_CACHE": str(COMPILE_CACHE)}
    result = subprocess.run(
        [sys.executable, "-c", code, "logger=none", "train.steps=10", *SLOWISH, f"hydra.run.dir={tmp_path / 'r'}"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert (tmp_path / "r" / "summary.json").exists()


def spiky_sgd(learning_rate, spike_at: int = 25, threshold: float = 0.75e-3):
    """SGD whose update turns NaN once at step ``spike_at`` while the learning rate exceeds ``threshold``.

    A test optimizer for rollback: after the rollback halves the learning rate, the spike is gone.
    """
    import jax
    import jax.numpy as jnp
    import optax

    def init(params):
        return jnp.zeros([], jnp.int32)

    def update(grads, count, params=None):
        lr = learning_rate(count)
        blow_up = (count == spike_at) & (lr > threshold)
        updates = jax.tree.map(lambda g: jnp.where(blow_up, jnp.nan, -lr * g), grads)
        return updates, count + 1

    return optax.GradientTransformation(init, update)


def test_rollback_restores_the_last_checkpoint_and_halves_the_learning_rate(tmp_path, monkeypatch):
    from hydra import compose, initialize_config_module

    from pinnrun.build import build, jax_settings
    from pinnrun.config import validate
    from pinnrun.optim import factory
    from pinnrun.trainer import Trainer

    monkeypatch.setitem(factory.OPTIMIZERS, "spiky", "test_resume:spiky_sgd")
    overrides = [
        "optim.name=spiky", "~optim.b1", "~optim.b2", "~optim.eps", "optim.lr=1e-3", "optim.warmup_steps=0",
        "optim.decay_rate=1.0", "train.on_nan=rollback", "train.steps=40", *SLOWISH,
    ]
    with initialize_config_module(config_module="pinnrun.conf", version_base="1.3"):
        cfg = validate(compose(config_name="config", overrides=overrides))
    with jax_settings(cfg):
        summary = Trainer(cfg, build(cfg), tmp_path).train()
    assert summary["rollbacks"] == 1
    records = read_jsonl(tmp_path / "metrics.jsonl")
    assert [r["step"] for r in records] == [10, 20, 30, 40]
    assert records[1]["lr"] == pytest.approx(1e-3) and records[2]["lr"] == pytest.approx(5e-4)
    assert all(np.isfinite(r["loss"]) for r in records)
