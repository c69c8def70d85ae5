"""pinnrun: a config-driven experiment runner for physics-informed neural networks in JAX."""

__version__ = "0.1.0"
