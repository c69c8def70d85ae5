"""Turn a validated config into the components of a run (PDE, network, loss, optimizer, weights)."""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from pinnrun.config import ConfigError
from pinnrun.losses import CausalConfig, PINNLoss
from pinnrun.stages import Stage


@dataclasses.dataclass
class Components:
    """What a run is made of, built from the config by ``pinnrun.build``."""

    pde: Any  # the first stage's
    model_for: Callable[[Any], Any]  # dtype -> Model (a float64 stage uses a float64 network)
    loss_for: Callable[..., PINNLoss]  # (dtype, pde=first, batch_size=train's) -> PINNLoss
    weights: dict[str, float]  # the first stage's initial loss weights
    dtype: Any  # of the first stage
    mesh: Any = None  # data parallelism: the state is replicated on this mesh, batches are split
    stages: list[Stage] = dataclasses.field(default_factory=list)
    pde_for: Callable[[Mapping[str, Any]], Any] | None = None  # a stage's pde config -> PDE
    weights_for: Callable[[Any], dict[str, float]] | None = None  # PDE -> initial loss weights

    def replicate(self, tree):
        """Place a pytree on every device of the mesh (no-op on one device)."""
        if self.mesh is None:
            return tree
        from jax.sharding import NamedSharding, PartitionSpec

        return jax.device_put(tree, NamedSharding(self.mesh, PartitionSpec()))

    @property
    def model(self):
        return self.model_for(self.dtype)

    @property
    def loss(self) -> PINNLoss:
        return self.loss_for(self.dtype)


def _kind_of(default: Any) -> tuple[str, Callable[[Any], bool]] | None:
    """What a PDE parameter must be, judged by its constructor default (None: anything)."""
    if isinstance(default, bool):
        return "true or false", lambda v: isinstance(v, bool)
    if isinstance(default, int):
        return "an integer", lambda v: isinstance(v, int) and not isinstance(v, bool)
    if isinstance(default, float):
        return "a number", lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)
    if isinstance(default, str):
        return "a string", lambda v: isinstance(v, str)
    if isinstance(default, (tuple, list)):
        return "a list", lambda v: isinstance(v, (tuple, list))
    return None


def pde_parameters(target: str) -> Mapping[str, inspect.Parameter] | None:
    """The parameters of a PDE class's constructor, by its ``_target_`` (None: not importable)."""
    from hydra.utils import get_method

    try:
        return inspect.signature(get_method(str(target))).parameters
    except Exception:  # noqa: BLE001  (an unknown target: instantiate reports it)
        return None


def check_pde_parameters(pde_cfg: Mapping[str, Any]) -> None:
    """ConfigError naming the first ``pde.<key>`` whose value is not of the kind of its constructor
    default (a number, an integer, a string, a list), before the PDE is built. Plug-in PDEs get the
    same check from their own signatures; a parameter without a default (or defaulting to None) is
    the constructor's to check."""
    parameters = pde_parameters(pde_cfg["_target_"])
    if parameters is None:
        return
    for key, value in pde_cfg.items():
        parameter = parameters.get(key)
        if parameter is None or parameter.default is inspect.Parameter.empty:
            continue
        kind = _kind_of(parameter.default)
        if kind is not None and not kind[1](value):
            raise ConfigError(f"pde.{key} must be {kind[0]}; got {value!r}")


def build_pde(pde_cfg: Mapping[str, Any]):
    from hydra.utils import instantiate

    check_pde_parameters(pde_cfg)
    try:
        return instantiate(dict(pde_cfg), _convert_="all")
    except Exception as error:  # a wrong PDE parameter: report it on one line
        cause = error
        while cause.__cause__ is not None:
            cause = cause.__cause__
        message = str(cause).splitlines()[0] if str(cause) else type(cause).__name__
        raise ConfigError(f"pde ({pde_cfg.get('_target_')}): {message}") from None


def build(cfg: Mapping[str, Any]) -> Components:
    """Components of a run: its stages and, for each stage's PDE parameters, the PDE and its losses."""
    from pinnrun.archs import build_model
    from pinnrun.stages import config_key, entries_of, plan_stages

    pdes: dict[str, Any] = {}

    def pde_for(pde_cfg: Mapping[str, Any]):
        key = config_key(pde_cfg)
        if key not in pdes:
            pdes[key] = build_pde(pde_cfg)
        return pdes[key]

    pde = pde_for(cfg["pde"])
    windows = int(cfg["train"].get("time_windows", 1))
    if windows > 1 and pde.time_axis is None:
        raise ConfigError(f"train.time_windows: {pde.name} is not a time-dependent problem; use 1")
    if cfg["weighting"].get("causal") and pde.time_axis is None:
        raise ConfigError(f"weighting.causal: {pde.name} is not a time-dependent problem; use false")
    if cfg.get("stages"):   # each curriculum entry's PDE, an error naming the entry
        for i, entry in enumerate(entries_of(cfg)):
            try:
                pde_for(entry["pde"])
            except ConfigError as error:
                raise ConfigError(f"stages[{i}] ({entry['name']}): {error}") from None
    stages = plan_stages(cfg, lambda pde_cfg: pde_for(pde_cfg).bounds["t"])
    for stage in stages:  # one network for all stages: the inputs and outputs must stay the same
        other = pde_for(stage.pde)
        if (other.input_names, other.field_names, other.periodic_axes) != (pde.input_names, pde.field_names, pde.periodic_axes):
            raise ConfigError(f"stages: stage {stage.name} changes the PDE's inputs, fields or periodic axes")

    input_scale = {}
    for name, factor in (cfg["arch"].get("input_scale") or {}).items():
        if name not in pde.input_names:
            raise ConfigError(f"arch.input_scale.{name}: not an input of {pde.name}; inputs: {', '.join(pde.input_names)}")
        axis = pde.input_names.index(name)
        if cfg["arch"].get("periodic", False) and axis in pde.periodic_axes:
            raise ConfigError(f"arch.input_scale.{name}: {name} is periodic (its period sets its scale); scale only: "
                              + ", ".join(n for i, n in enumerate(pde.input_names) if i not in pde.periodic_axes))
        input_scale[axis] = float(factor)

    output_scale = {}
    for name, factor in (cfg["arch"].get("output_scale") or {}).items():
        if name not in pde.field_names:
            raise ConfigError(f"arch.output_scale.{name}: not a field of {pde.name}; fields: {', '.join(pde.field_names)}")
        if isinstance(factor, bool) or not isinstance(factor, (int, float)) or not factor > 0:
            raise ConfigError(f"arch.output_scale.{name} must be a positive number; got {factor!r}")
        output_scale[pde.field_names.index(name)] = float(factor)

    background = None
    if cfg["arch"].get("background", False):   # absent from the configs of runs made before it existed
        if pde.background(jnp.zeros(pde.input_dim)) is None:
            raise ConfigError(f"arch.background: {pde.name} states no background state to learn the departure from; use false")
        if any(stage.pde != cfg["pde"] for stage in stages):
            raise ConfigError("arch.background: not with stages that change the PDE (one network, one background); use false")
        background = pde.background

    def model_for(dtype):
        return build_model(
            cfg["arch"], input_dim=pde.input_dim, output_dim=pde.output_dim, periodic_axes=pde.periodic_axes,
            input_scale=input_scale, output_scale=output_scale, background=background, dtype=dtype,
        )

    overrides = cfg["weighting"]["weights"]

    def weights_for(problem) -> dict[str, float]:
        weights = problem.default_weights()
        unknown = sorted(set(overrides) - set(weights))
        if unknown:
            raise ConfigError(f"weighting.weights.{unknown[0]}: not a loss term of {problem.name}; terms: {', '.join(weights)}")
        weights.update({k: float(v) for k, v in overrides.items()})
        return weights

    try:
        float32_model = model_for(jnp.float32)  # surfaces a bad architecture setting now, as a config error
        for stage in stages:
            weights_for(pde_for(stage.pde))
            pde_for(stage.pde).check_points()
    except ValueError as error:
        raise ConfigError(str(error).splitlines()[0]) from None

    check_dense_quasi_newton_size(cfg, stages, float32_model)

    def causal_for(problem):
        if not cfg["weighting"]["causal"] or problem.time_axis is None:
            return None
        t_min, t_max = problem.bounds["t"]
        return CausalConfig(
            num_chunks=int(cfg["weighting"]["num_chunks"]),
            tol=float(cfg["weighting"]["causal_tol"]),
            time_axis=problem.time_axis,
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

    def loss_for(dtype, problem=None, batch_size: int | None = None):
        problem = pde if problem is None else problem
        batch_size = int(cfg["train"]["batch_size"]) if batch_size is None else int(batch_size)
        key = (jnp.dtype(dtype).name, id(problem), batch_size)
        if key not in losses:
            losses[key] = PINNLoss(problem, cached_model(dtype).apply, batch_size, causal_for(problem), dtype, batch_sharding)
        return losses[key]

    first_dtype = jnp.float64 if stages[0].precision == "float64" else jnp.float32
    return Components(pde, cached_model, loss_for, weights_for(pde), first_dtype, mesh, stages, pde_for, weights_for)


def parameter_count(model) -> int:
    """The network's number of parameters, from shapes alone (nothing is computed or compiled)."""
    shapes = jax.eval_shape(model.init, jax.random.PRNGKey(0))
    return sum(int(np.prod(leaf.shape)) for leaf in jax.tree.leaves(shapes))


def check_dense_quasi_newton_size(cfg: Mapping[str, Any], stages: list[Stage], model) -> None:
    """A dense quasi-Newton phase keeps an n x n matrix: refuse, before anything compiles, a network
    with more parameters than the phase's ``max_params``."""
    from pinnrun.phases import DEFAULT_MAX_PARAMS, DENSE_METHODS

    dense = [s for s in stages if s.optim["name"] in DENSE_METHODS]
    if not dense:
        return
    count = parameter_count(model)
    for stage in dense:
        cap = int(stage.optim.get("max_params", DEFAULT_MAX_PARAMS))
        if count > cap:
            phases = (cfg["optim"].get("phases") or [])
            key = f"optim.phases[{phases.index(stage.optim)}]" if stage.optim in phases else "optim"
            raise ConfigError(
                f"{key} ({stage.optim['name']}): the network has {count:,} parameters, above the dense quasi-Newton cap of "
                f"{cap:,} ({key}.max_params; its matrix would hold {count * count:,} numbers): shrink arch.width, "
                "arch.depth or arch.fourier.dim, or use lbfgs"
            )


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
    from pinnrun.stages import entries_of, phase_configs

    precisions = [cfg["train"]["precision"]]
    for entry in entries_of(cfg):
        precisions += [p.get("precision") for p in phase_configs(entry["optim"])]
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
