"""Optimizers as optax GradientTransformations, and the factory that builds them from configs."""

from pinnrun.optim.quasi_newton import scale_by_quasi_newton
from pinnrun.optim.schedules import warmup_exponential_decay
from pinnrun.optim.shampoo import scale_by_shampoo, shampoo
from pinnrun.optim.soap import precondition_without_momentum, scale_by_soap, soap

__all__ = [
    "precondition_without_momentum",
    "scale_by_quasi_newton",
    "scale_by_shampoo",
    "scale_by_soap",
    "shampoo",
    "soap",
    "warmup_exponential_decay",
]
