"""pinnrun: a config-driven experiment runner for physics-informed neural networks in JAX."""

import os

# On CPU, JAX runs small LAPACK routines (SOAP's QR refresh of its bases, eigh) through the
# OpenBLAS that numpy and scipy bundle. Multi-threaded OpenBLAS spins its worker threads against
# XLA's own thread pool: on a 2-core machine a 64x64 QR inside a training step took 4-5x longer
# than on its own (SOAP 2.0x Adam's step time on KdV, 1.4x with one OpenBLAS thread;
# scripts/bench.py, section optim). The matrices are too small to gain from threads. Read when
# OpenBLAS loads, so it must be set before numpy is imported; a value the user set wins.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

__version__ = "0.1.0"
