"""Multi-process (multi-host) runs through jax.distributed.

A run spans several processes when a launcher starts one pinnrun per process with the same
``hydra.run.dir`` and either the SLURM variables of a multi-task job step (``srun`` with
``--ntasks`` > 1; JAX reads them itself) or explicit variables:

    PINNRUN_COORDINATOR_ADDRESS=host:port  PINNRUN_NUM_PROCESSES=N  PINNRUN_PROCESS_ID=i

Every process computes (the batch is split across all their devices); only process 0 writes
metrics, figures, summaries and prints progress, while all of them write their part of each Orbax
checkpoint (a shared file system is needed).
"""

from __future__ import annotations

import os

import jax

_initialized = False


def requested() -> bool:
    if os.environ.get("PINNRUN_COORDINATOR_ADDRESS"):
        return True
    slurm_tasks = int(os.environ.get("SLURM_NTASKS", "1") or 1)
    return slurm_tasks > 1 and bool(os.environ.get("SLURM_STEP_NODELIST"))


def initialize() -> None:
    """Join the other processes of the run, once per process, before JAX starts its backend."""
    global _initialized
    if _initialized or not requested():
        return
    if os.environ.get("PINNRUN_COORDINATOR_ADDRESS"):
        jax.distributed.initialize(
            coordinator_address=os.environ["PINNRUN_COORDINATOR_ADDRESS"],
            num_processes=int(os.environ["PINNRUN_NUM_PROCESSES"]),
            process_id=int(os.environ["PINNRUN_PROCESS_ID"]),
        )
    else:
        jax.distributed.initialize()  # SLURM: coordinator, count and rank from the job step
    _initialized = True


def is_main_process() -> bool:
    return jax.process_index() == 0
