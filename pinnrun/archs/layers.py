"""Dense layers, activations, the ``Model`` container and shared config helpers.

Params are plain nested dicts of arrays. A dense layer is either
``{"kernel": [in, out], "bias": [out]}`` or, with random weight factorisation (RWF),
``{"v": [in, out], "s": [out], "bias": [out]}`` with effective kernel ``exp(s) * v``
(i.e. ``W = V diag(exp(s))`` in the row-vector convention ``x @ W``: one scale per output unit).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp

Params = Any  # nested dicts of arrays


@dataclasses.dataclass(frozen=True)
class Model:
    """A network for ONE input point: ``apply(params, z[input_dim]) -> [output_dim]``."""

    init: Callable[[jax.Array], Params]
    apply: Callable[[Params, jax.Array], jax.Array]
    # fit_output(params, points[n, input_dim], targets[n, output_dim]) -> params; pirate only.
    fit_output: Callable[[Params, jax.Array, jax.Array], Params] | None = None


# --------------------------------------------------------------------------- activations
# Written from jax primitives (tanh, sin, logistic, integer_pow) so that they are smooth and
# supported by both jax.jvp and jax.experimental.jet.

def _swish(x):
    return x * jax.nn.sigmoid(x)


def _gelu(x):
    # tanh approximation of GELU (smooth, jet-friendly)
    c = math.sqrt(2.0 / math.pi)
    return 0.5 * x * (1.0 + jnp.tanh(c * (x + 0.044715 * x**3)))


ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "tanh": jnp.tanh,
    "sin": jnp.sin,
    "swish": _swish,
    "gelu": _gelu,
}


def get_activation(name: Any) -> Callable[[jax.Array], jax.Array]:
    if name not in ACTIVATIONS:
        raise ValueError(
            f"model.activation must be one of {sorted(ACTIVATIONS)}, got {name!r}"
        )
    return ACTIVATIONS[name]


# --------------------------------------------------------------------------- config helpers

def positive_int(cfg: Mapping[str, Any], key: str, default: int | None = None) -> int:
    value = cfg.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"model.{key} must be a positive integer, got {value!r}")
    return int(value)


def parse_rwf(rwf: Any) -> tuple[float, float] | None:
    """``None`` / ``{"mean": float, "std": float}`` -> ``None`` / ``(mean, std)``."""
    if rwf is None or rwf is False:
        return None
    if not isinstance(rwf, Mapping):
        raise ValueError(f"model.rwf must be null or a mapping with keys mean, std, got {rwf!r}")
    mean = float(rwf.get("mean", 1.0))
    std = float(rwf.get("std", 0.1))
    if std < 0:
        raise ValueError(f"model.rwf.std must be >= 0, got {std!r}")
    return mean, std


# --------------------------------------------------------------------------- dense

def glorot_normal(key: jax.Array, fan_in: int, fan_out: int, dtype=jnp.float32) -> jax.Array:
    """Glorot (Xavier) normal: N(0, 2 / (fan_in + fan_out)), shape [fan_in, fan_out]."""
    std = math.sqrt(2.0 / (fan_in + fan_out))
    return std * jax.random.normal(key, (fan_in, fan_out), dtype=dtype)


def subkeys(key: jax.Array, n: int) -> list[jax.Array]:
    """n independent keys via fold_in (one cached executable for any n, unlike split + unstack)."""
    return [jax.random.fold_in(key, i) for i in range(n)]


@functools.partial(jax.jit, static_argnames=("fan_in", "fan_out", "rwf", "dtype"))
def dense_init(
    key: jax.Array,
    fan_in: int,
    fan_out: int,
    *,
    rwf: tuple[float, float] | None = None,
    dtype=jnp.float32,
) -> Params:
    """Glorot-normal kernel, zero bias; with ``rwf=(mean, std)`` the kernel is factorised.

    Jitted per (shape, rwf, dtype) so eager model init costs one executable per layer shape.
    """
    k_w, k_s = jax.random.split(key)
    w0 = glorot_normal(k_w, fan_in, fan_out, dtype)
    bias = jnp.zeros((fan_out,), dtype)
    if rwf is None:
        return {"kernel": w0, "bias": bias}
    mean, std = rwf
    s = mean + std * jax.random.normal(k_s, (fan_out,), dtype=dtype)
    return {"v": w0 / jnp.exp(s), "s": s, "bias": bias}


def dense_kernel(p: Params) -> jax.Array:
    """Effective kernel [in, out] of a dense layer (handles RWF)."""
    if "kernel" in p:
        return p["kernel"]
    return jnp.exp(p["s"]) * p["v"]


def dense_apply(p: Params, x: jax.Array) -> jax.Array:
    return x @ dense_kernel(p) + p["bias"]


def dense_set_kernel(p: Params, kernel: jax.Array, bias: jax.Array) -> Params:
    """Return a copy of dense params whose effective kernel/bias equal the given ones (keeps s)."""
    out = dict(p)
    out["bias"] = bias.astype(p["bias"].dtype)
    if "kernel" in p:
        out["kernel"] = kernel.astype(p["kernel"].dtype)
    else:
        out["v"] = (kernel / jnp.exp(p["s"])).astype(p["v"].dtype)
    return out
