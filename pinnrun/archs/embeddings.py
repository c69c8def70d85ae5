"""Input embeddings: fixed input scaling, fixed periodic embedding, then trainable random Fourier features."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp

from .layers import Params


# --------------------------------------------------------------------------- periodic

def check_axis_values(name: str, what: str, values: Mapping[int, float] | None, input_dim: int) -> dict[int, float]:
    """``{axis: value > 0}`` with every axis in [0, input_dim); ValueError naming ``name`` otherwise."""
    out = {}
    for a, value in ({} if values is None else dict(values)).items():
        a = int(a)
        if not 0 <= a < input_dim:
            raise ValueError(f"{name}: axis {a} out of range [0, {input_dim})")
        value = float(value)
        if not value > 0:
            raise ValueError(f"{name}: {what} for axis {a} must be > 0, got {value!r}")
        out[a] = value
    return out


def check_periodic_axes(periodic_axes: Mapping[int, float] | None, input_dim: int) -> dict[int, float]:
    return check_axis_values("periodic_axes", "period", periodic_axes, input_dim)


def periodic_dim(input_dim: int, periodic_axes: Mapping[int, float]) -> int:
    return input_dim + len(periodic_axes)


def periodic_embed(z: jax.Array, periodic_axes: Mapping[int, float]) -> jax.Array:
    """Replace each periodic axis a (period L) in place by (cos(w z_a), sin(w z_a)), w = 2 pi / L.

    Non-periodic axes are passed through unchanged, in order. Single point z: [d].
    """
    if not periodic_axes:
        return z
    parts = []
    for a in range(z.shape[-1]):
        za = z[a : a + 1]
        if a in periodic_axes:
            w = 2.0 * math.pi / periodic_axes[a]
            parts += [jnp.cos(w * za), jnp.sin(w * za)]
        else:
            parts.append(za)
    return jnp.concatenate(parts)


# --------------------------------------------------------------------------- input scaling

def check_input_scale(input_scale: Mapping[int, float] | None, input_dim: int, periodic_axes: Mapping[int, float]) -> dict[int, float]:
    """axis -> factor > 0 on non-periodic axes (a periodic axis's embedding fixes its frequency)."""
    out = check_axis_values("input_scale", "factor", input_scale, input_dim)
    for a in out:
        if a in periodic_axes:
            raise ValueError(f"input_scale: axis {a} is periodic; its period sets its scale")
    return out


# --------------------------------------------------------------------------- Fourier

def parse_fourier(fourier: Any, default_dim: int | None = None) -> tuple[float, int] | None:
    """``None`` / ``{"scale": float, "dim": int}`` -> ``None`` / ``(scale, dim)``."""
    if fourier is None or fourier is False:
        return None
    if not isinstance(fourier, Mapping):
        raise ValueError(f"model.fourier must be null or a mapping with keys scale, dim, got {fourier!r}")
    scale = float(fourier.get("scale", 1.0))
    dim = fourier.get("dim", default_dim)
    if dim is None:
        raise ValueError("model.fourier.dim must be a positive integer, got None")
    if isinstance(dim, bool) or not isinstance(dim, int) or dim <= 0:
        raise ValueError(f"model.fourier.dim must be a positive integer, got {dim!r}")
    if not scale > 0:
        raise ValueError(f"model.fourier.scale must be > 0, got {scale!r}")
    return scale, int(dim)


def fourier_init(key: jax.Array, in_dim: int, dim: int, scale: float, dtype=jnp.float32) -> Params:
    """Trainable B ~ N(0, scale^2) of shape [in_dim, dim]."""
    return {"B": scale * jax.random.normal(key, (in_dim, dim), dtype=dtype)}


def fourier_apply(p: Params, x: jax.Array) -> jax.Array:
    """[cos(x B), sin(x B)] -> [2 * dim]."""
    xb = x @ p["B"]
    return jnp.concatenate([jnp.cos(xb), jnp.sin(xb)], axis=-1)


# --------------------------------------------------------------------------- combined

class Embedding:
    """phi(z) = Fourier(periodic(s * z)) (each stage optional). Params live under ``params["embedding"]``.

    s: fixed factors per input (1 where none is given). A time-marched run's windows are short: with
    t scaled by 1 / (window length), as the paper's code feeds t / t_window, each window spans one
    unit, so Fourier features of scale 1 vary across it (unscaled, a window of length 0.05 sees them
    nearly constant in t).
    """

    def __init__(
        self,
        input_dim: int,
        periodic_axes: Mapping[int, float],
        fourier: tuple[float, int] | None,
        input_scale: Mapping[int, float] | None = None,
    ):
        self.periodic_axes = dict(periodic_axes)
        self.input_scale = check_input_scale(input_scale, input_dim, self.periodic_axes)
        # One multiply by a constant vector (jet has no rule for scatter updates).
        self.scale = None if not self.input_scale else tuple(self.input_scale.get(a, 1.0) for a in range(input_dim))
        self.fourier = fourier
        self.pre_dim = periodic_dim(input_dim, self.periodic_axes)
        self.out_dim = self.pre_dim if fourier is None else 2 * fourier[1]

    def init(self, key: jax.Array, dtype=jnp.float32) -> Params:
        if self.fourier is None:
            return {}
        scale, dim = self.fourier
        return {"fourier": fourier_init(key, self.pre_dim, dim, scale, dtype)}

    def apply(self, p: Params, z: jax.Array) -> jax.Array:
        if self.scale is not None:
            z = z * jnp.asarray(self.scale, z.dtype)
        x = periodic_embed(z, self.periodic_axes)
        if self.fourier is not None:
            x = fourier_apply(p["fourier"], x)
        return x
