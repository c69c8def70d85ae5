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


def build(cfg: Mapping[str, Any], pde=None) -> Components:
    """Components of a run; ``pde`` replaces the configured one (a time window of it, say)."""
    from pinnrun.archs import build_model
    from pinnrun.phases import plan_phases

    pde = build_pde(cfg["pde"]) if pde is None else pde
    windows = int(cfg["train"].get("time_windows", 1))
    if windows > 1 and not hasattr(pde, "window"):
        raise ConfigError(f"train.time_windows: {pde.name} is not a time-dependent problem; use 1")
    try:
        phases = plan_phases(cfg["optim"], int(cfg["train"]["steps"]), cfg["train"]["precision"])
    except ValueError as error:
        raise ConfigError(str(error)) from None

    def model_for(dtype):
        return build_model(
            cfg["arch"], input_dim=pde.input_dim, output_dim=pde.output_dim, periodic_axes=pde.periodic_axes, dtype=dtype
        )

    try:
        model_for(jnp.float32)  # surfaces a bad architecture setting now, as a config error
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
    mesh = device_mesh(cfg["train"].get("devices", 1))
    batch_sharding = None
    if mesh is not None:
        from jax.sharding import NamedSharding, PartitionSpec

        batch_sharding = NamedSharding(mesh, PartitionSpec("batch"))
    models, losses = {}, {}

    def cached_model(dtype):
        key = jnp.dtype(dtype).name
        if key not in models:
            models[key] = model_for(dtype)
        return models[key]

    def loss_for(dtype):
        key = jnp.dtype(dtype).name
        if key not in losses:
            losses[key] = PINNLoss(pde, cached_model(dtype).apply, int(cfg["train"]["batch_size"]), causal, dtype, batch_sharding)
        return losses[key]

    first_dtype = jnp.float64 if phases[0].precision == "float64" else jnp.float32
    return Components(pde, cached_model, loss_for, weights, first_dtype, mesh)


def device_mesh(devices: Any):
    """A one-axis ("batch") mesh over the local devices for data parallelism; None for one device."""
    available = jax.device_count()
    count = available if devices == "auto" else int(devices)
    if count > available:
        raise ConfigError(f"train.devices: {count} requested but only {available} available ({jax.devices()[0].platform})")
    if count == 1:
        return None
    auto = (jax.sharding.AxisType.Auto,)  # GSPMD propagates the batch sharding from the constraint
    return jax.make_mesh((count,), ("batch",), axis_types=auto, devices=jax.devices()[:count])


def needs_x64(cfg: Mapping[str, Any]) -> bool:
    from pinnrun.phases import phase_configs

    precisions = [cfg["train"]["precision"]] + [p.get("precision") for p in phase_configs(cfg["optim"])]
    return "float64" in precisions


@contextlib.contextmanager
def jax_settings(cfg: Mapping[str, Any]):
    """Apply a run's global JAX settings and restore the previous ones afterwards.

    Several Hydra jobs can run in one process (the basic launcher): each must start from the same
    state whatever the job before it set.
    """
    names = ("jax_enable_x64", "jax_default_matmul_precision")
    previous = {name: getattr(jax.config, name) for name in names}
    try:
        jax.config.update("jax_enable_x64", needs_x64(cfg))
        precision = cfg["train"]["matmul_precision"]
        jax.config.update("jax_default_matmul_precision", None if precision == "default" else precision)
        enable_compilation_cache(cfg["train"].get("compile_cache_dir"))
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
