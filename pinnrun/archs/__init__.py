"""Network architectures for pinnrun: MLP, Modified MLP and PirateNet.

Every model works on ONE input point: ``model.apply(params, z[input_dim]) -> [output_dim]``;
the trainer vmaps it over points and differentiates it w.r.t. ``z`` (jvp / jet).
Params are plain nested dicts of arrays.

cfg keys (plain mapping) and defaults:
  name        "mlp" | "modified_mlp" | "pirate"             (default "mlp")
  width       int > 0                                        (default 128)
  depth       int > 0, hidden layers (mlp, modified_mlp)     (default 4)
  num_blocks  int > 0, PirateNet blocks (falls back to depth; default 3)
  activation  "tanh" | "sin" | "swish" | "gelu"              (default "tanh")
  fourier     None | {"scale": float (1.0), "dim": int}      (default None; dim defaults to width//2)
  periodic    bool                                           (default False)
  input_scale (build_model argument) input axis -> factor: the network sees factor * z_axis
  output_scale (build_model argument) output index -> factor: the model returns factor * the network's
              output, so that fields of very different magnitudes (a velocity of 1e-2 beside a
              buoyancy of 1) are all O(1) for the network
  background  (build_model argument) None | z -> [output_dim]: the model returns background(z) + the
              (scaled) network's output, so that the network learns the departure from a known state
  rwf         None | {"mean": float (1.0), "std": float (0.1)} (default None)
  pi_init     bool, pirate only (read by the trainer)        (default False)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp

from .embeddings import Embedding, check_axis_values, check_periodic_axes, parse_fourier
from .layers import ACTIVATIONS, Model, Params, dense_apply, dense_init, dense_kernel, get_activation, parse_rwf, positive_int
from .mlp import build_mlp, build_modified_mlp

ARCHITECTURES: tuple[str, ...] = ("mlp", "modified_mlp", "pirate")

__all__ = [
    "ACTIVATIONS",
    "ARCHITECTURES",
    "Model",
    "Params",
    "build_model",
    "dense_apply",
    "dense_init",
    "dense_kernel",
]


def build_model(
    cfg: Mapping[str, Any],
    *,
    input_dim: int,
    output_dim: int,
    periodic_axes: Mapping[int, float] | None = None,
    input_scale: Mapping[int, float] | None = None,
    output_scale: Mapping[int, float] | None = None,
    background: Callable[[jax.Array], jax.Array] | None = None,
    dtype=jnp.float32,
) -> Model:
    """Build a single-point ``Model`` from a model config mapping (see module docstring)."""
    model = _build_network(cfg, input_dim=input_dim, output_dim=output_dim, periodic_axes=periodic_axes,
                           input_scale=input_scale, dtype=dtype)
    factors = check_axis_values("output_scale", "factor", output_scale, int(output_dim))
    if factors:
        model = scale_outputs(model, factors, int(output_dim), dtype)
    return add_background(model, background) if background is not None else model


def add_background(model: Model, background: Callable[[jax.Array], jax.Array]) -> Model:
    """``model`` plus a fixed field: apply(params, z) = background(z) + model.apply(params, z); the
    physics-informed output fit takes the background off its targets."""

    def apply(params, z):
        out = model.apply(params, z)
        return out + background(z).astype(out.dtype)

    fit_output = None
    if model.fit_output is not None:
        def fit_output(params, points, targets):
            return model.fit_output(params, points, targets - jax.vmap(background)(points).astype(targets.dtype))

    return Model(model.init, apply, fit_output)


def scale_outputs(model: Model, factors: Mapping[int, float], output_dim: int, dtype) -> Model:
    """``model`` with output k multiplied by ``factors[k]`` (1 elsewhere); the physics-informed
    output fit divides its targets by the same factors."""
    scale = jnp.asarray([factors.get(k, 1.0) for k in range(output_dim)], dtype)

    def apply(params, z):
        return model.apply(params, z) * scale

    fit_output = None
    if model.fit_output is not None:
        def fit_output(params, points, targets):
            return model.fit_output(params, points, targets / scale)

    return Model(model.init, apply, fit_output)


def architectures() -> tuple[str, ...]:
    """pinnrun's architectures and those installed packages declare (entry points ``pinnrun.archs``)."""
    from pinnrun.plugins import ARCH_GROUP, with_plugin_names

    return with_plugin_names(ARCHITECTURES, ARCH_GROUP)


def _build_network(cfg, *, input_dim, output_dim, periodic_axes, input_scale, dtype) -> Model:
    name = cfg.get("name", "mlp")
    if name not in ARCHITECTURES and name not in architectures():
        raise ValueError(f"model.name must be one of {list(architectures())}, got {name!r}")
    if isinstance(input_dim, bool) or int(input_dim) <= 0:
        raise ValueError(f"input_dim must be a positive integer, got {input_dim!r}")
    if isinstance(output_dim, bool) or int(output_dim) <= 0:
        raise ValueError(f"output_dim must be a positive integer, got {output_dim!r}")
    input_dim, output_dim = int(input_dim), int(output_dim)

    width = positive_int(cfg, "width", 128)
    axes = check_periodic_axes(periodic_axes, input_dim) if cfg.get("periodic", False) else {}
    fourier = parse_fourier(cfg.get("fourier"), default_dim=max(width // 2, 1))
    embedding = Embedding(input_dim, axes, fourier, input_scale)
    if name not in ARCHITECTURES:   # an installed package's (pinnrun.plugins)
        from pinnrun.plugins import ARCH_GROUP, load_plugin

        return load_plugin(ARCH_GROUP, name)(cfg, input_dim=input_dim, output_dim=output_dim, embedding=embedding, dtype=dtype)

    act = get_activation(cfg.get("activation", "tanh"))
    rwf = parse_rwf(cfg.get("rwf"))
    if name == "pirate":
        from .pirate import build_pirate

        blocks_key = "num_blocks" if cfg.get("num_blocks") is not None else "depth"
        num_blocks = positive_int(cfg, blocks_key, 3)
        return build_pirate(
            input_dim=input_dim, output_dim=output_dim, width=width, num_blocks=num_blocks,
            act=act, embedding=embedding, rwf=rwf, dtype=dtype,
        )

    depth = positive_int(cfg, "depth", 4)
    builder = build_mlp if name == "mlp" else build_modified_mlp
    return builder(
        input_dim=input_dim, output_dim=output_dim, width=width, depth=depth,
        act=act, embedding=embedding, rwf=rwf, dtype=dtype,
    )
