"""Turn a validated config into the components of a run (PDE, network, loss, optimizer, weights)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp

from pinnrun.config import ConfigError
from pinnrun.losses import CausalConfig, PINNLoss
from pinnrun.trainer import Components


def build_pde(pde_cfg: Mapping[str, Any]):
    from hydra.utils import instantiate

    try:
        return instantiate(dict(pde_cfg), _convert_="all")
    except Exception as error:  # a wrong PDE parameter: report it on one line
        cause = error
        while cause.__cause__ is not None:
            cause = cause.__cause__
        message = str(cause).splitlines()[0] if str(cause) else type(cause).__name__
        raise ConfigError(f"pde ({pde_cfg.get('_target_')}): {message}") from None


def build(cfg: Mapping[str, Any]) -> Components:
    from pinnrun.archs import build_model
    from pinnrun.optim.factory import build_optimizer

    pde = build_pde(cfg["pde"])
    dtype = jnp.float64 if cfg["train"]["precision"] == "float64" else jnp.float32
    try:
        model = build_model(
            cfg["arch"],
            input_dim=pde.input_dim,
            output_dim=pde.output_dim,
            periodic_axes=pde.periodic_axes,
            dtype=dtype,
        )
        weights = pde.default_weights()
    except ValueError as error:
        raise ConfigError(str(error).splitlines()[0]) from None
    overrides = cfg["weighting"]["weights"]
    unknown = sorted(set(overrides) - set(weights))
    if unknown:
        raise ConfigError(f"weighting.weights.{unknown[0]}: not a loss term of {pde.name}; terms: {', '.join(weights)}")
    weights.update({k: float(v) for k, v in overrides.items()})

    causal = None
    if cfg["weighting"]["causal"] and pde.time_axis is not None:
        t_min, t_max = pde.bounds["t"]
        causal = CausalConfig(
            num_chunks=int(cfg["weighting"]["num_chunks"]),
            tol=float(cfg["weighting"]["causal_tol"]),
            time_axis=pde.time_axis,
            t_min=t_min,
            t_max=t_max,
        )
    loss = PINNLoss(pde, model.apply, int(cfg["train"]["batch_size"]), causal)
    optimizer, schedule = build_optimizer(cfg["optim"])
    return Components(pde, model, loss, optimizer, schedule, weights, dtype)


@contextlib.contextmanager
def jax_settings(train_cfg: Mapping[str, Any]):
    """Apply a run's global JAX settings and restore the previous ones afterwards.

    Several Hydra jobs can run in one process (the basic launcher): each must start from the same
    state whatever the job before it set.
    """
    names = ("jax_enable_x64", "jax_default_matmul_precision")
    previous = {name: getattr(jax.config, name) for name in names}
    try:
        jax.config.update("jax_enable_x64", train_cfg["precision"] == "float64")
        precision = train_cfg["matmul_precision"]
        jax.config.update("jax_default_matmul_precision", None if precision == "default" else precision)
        enable_compilation_cache(train_cfg.get("compile_cache_dir"))
        yield
    finally:
        for name, value in previous.items():
            jax.config.update(name, value)


def enable_compilation_cache(directory: str | None) -> None:
    """A persistent XLA compilation cache, so repeated runs and the tests skip recompiling."""
    if not directory:
        return
    path = Path(os.path.expanduser(str(directory)))
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:
        return  # an unwritable cache folder only costs compile time
    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
