"""Per-worker device setup for parallel local sweeps (``hydra/launcher=joblib`` / ``pinnrun_joblib``).

Hydra's joblib launcher runs jobs in loky worker processes that are reused from job to job and get no
per-job environment. Two things must hold in each worker before JAX initialises its backend (the first
``jax.devices()`` / computation; importing jax alone is fine):

* ``XLA_PYTHON_CLIENT_PREALLOCATE=false``: otherwise the first worker on a GPU grabs 75 % of its memory
  and the next one runs out;
* one GPU per worker: ``CUDA_VISIBLE_DEVICES=<one device>``.

``assign_worker_device()`` does both and is a no-op outside loky workers (plain runs, the basic
launcher, submitit jobs, whose GPUs SLURM or submitit assign), unless ``force=True``. Which GPU: the
worker takes an exclusive ``fcntl.flock`` on ``gpu-<device>.lock`` for the first free device, in a
folder shared by the workers of one sweep (``$TMPDIR/pinnrun-gpu-locks-<uid>/<parent pid>``; set
``PINNRUN_GPU_LOCK_DIR`` to share it between sweeps). The lock is held by an open file for the
worker's lifetime and released by the OS when the worker exits or dies, so a respawned worker finds its
predecessor's GPU free again; there is nothing stale to clean up. With more workers than GPUs
(``n_jobs`` > GPUs) the extra workers share GPUs round-robin, with a warning.

Candidate devices: the entries of ``CUDA_VISIBLE_DEVICES`` when it lists several (e.g. a SLURM
allocation of 4 GPUs running a joblib sweep), else the GPUs that ``nvidia-smi -L`` lists; when
``CUDA_VISIBLE_DEVICES`` names one device (or none: ``""``) or no ``nvidia-smi`` is found, nothing is
changed but the preallocation setting.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

PREALLOCATE = "XLA_PYTHON_CLIENT_PREALLOCATE"
VISIBLE = "CUDA_VISIBLE_DEVICES"
LOCK_DIR_ENV = "PINNRUN_GPU_LOCK_DIR"

_claim: tuple[str, object] | None = None  # (device, open lock file) held for this process's lifetime


def in_loky_worker() -> bool:
    """True inside a joblib/loky worker process (how Hydra's joblib launcher runs jobs)."""
    return multiprocessing.current_process().name.startswith("LokyProcess")


def gpu_candidates(env: dict[str, str] | None = None) -> list[str]:
    """Devices a worker may take: CUDA_VISIBLE_DEVICES entries if it lists several, else nvidia-smi's GPUs."""
    env = os.environ if env is None else env
    if VISIBLE in env:
        entries = [e.strip() for e in env[VISIBLE].split(",") if e.strip()]
        return entries if len(entries) > 1 else []
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return []
    try:
        listing = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=20, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [str(i) for i, line in enumerate(l for l in listing.splitlines() if l.startswith("GPU "))]


def default_lock_dir() -> Path:
    """One folder per sweep: the loky workers of one sweep share their parent (the Hydra process)."""
    if os.environ.get(LOCK_DIR_ENV):
        return Path(os.environ[LOCK_DIR_ENV])
    uid = os.getuid() if hasattr(os, "getuid") else 0
    return Path(tempfile.gettempdir()) / f"pinnrun-gpu-locks-{uid}" / str(os.getppid())


def claim_device(candidates: list[str], lock_dir: Path) -> tuple[str, object | None]:
    """(device, open lock file) for the first candidate nobody holds; round-robin (no lock) if all are held."""
    import fcntl

    lock_dir.mkdir(parents=True, exist_ok=True)
    for device in candidates:
        handle = open(lock_dir / f"gpu-{device.replace('/', '_')}.lock", "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            continue
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        return device, handle
    name = multiprocessing.current_process().name
    index = int(name.rsplit("-", 1)[-1]) if name.rsplit("-", 1)[-1].isdigit() else os.getpid()
    device = candidates[index % len(candidates)]
    print(
        f"pinnrun: more parallel workers than GPUs ({len(candidates)}); worker {os.getpid()} shares GPU "
        f"{device} (set hydra.launcher.n_jobs to at most the number of GPUs)",
        file=sys.stderr,
    )
    return device, None


def assign_worker_device(force: bool = False) -> str | None:
    """Set up this worker's XLA environment; returns the CUDA device it was given, else None.

    Call at the start of each job, before anything initialises a JAX backend. Idempotent: a reused
    worker keeps the device it claimed for its first job. No-op outside loky workers unless ``force``.
    """
    global _claim
    if not (force or in_loky_worker()):
        return None
    os.environ.setdefault(PREALLOCATE, "false")
    if _claim is not None:
        return _claim[0]
    candidates = gpu_candidates()
    if not candidates:
        return None
    device, handle = claim_device(candidates, default_lock_dir())
    _claim = (device, handle)
    os.environ[VISIBLE] = device
    return device
