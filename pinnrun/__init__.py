"""pinnrun: a config-driven experiment runner for physics-informed neural networks in JAX."""

import os

# On CPU, JAX runs small LAPACK routines (SOAP's QR refresh of its bases, eigh) through the
# OpenBLAS that numpy and scipy bundle. Multi-threaded OpenBLAS spins its worker threads against
# XLA's own thread pool: on a 2-core machine SOAP's QRs inside a training step took 5x longer than
# on their own (SOAP 1.94x Adam's step time on KdV's quick config, 1.16x with one OpenBLAS thread;
# scripts/bench.py --section optim, docs/results.md). The matrices are too small to gain from
# threads. Read when OpenBLAS loads, so it must be set before numpy is imported; a value the user
# set wins.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

__version__ = "0.1.0"


def __getattr__(name):
    # pinnrun.load_run without importing JAX on `import pinnrun`
    if name == "load_run":
        from pinnrun.runs import load_run

        return load_run
    raise AttributeError(f"module 'pinnrun' has no attribute {name!r}")
