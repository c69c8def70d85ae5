"""Input embeddings: fixed periodic embedding, then trainable random Fourier features."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp

from .layers import Params


# --------------------------------------------------------------------------- periodic

def check_periodic_axes(periodic_axes: Mapping[int, float] | None, input_dim: int) -> dict[int, float]:
    axes = {} if periodic_axes is None else dict(periodic_axes)
    out = {}
    for a, period in axes.items():
        a = int(a)
        if not 0 <= a < input_dim:
            raise ValueError(f"periodic_axes: axis {a} out of range [0, {input_dim})")
        period = float(period)
        if not period > 0:
            raise ValueError(f"periodic_axes: period for axis {a} must be > 0, got {period!r}")
        out[a] = period
    return out


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
    """phi(z) = Fourier(periodic(z)) (each stage optional). Params live under ``params["embedding"]``."""

    def __init__(self, input_dim: int, periodic_axes: Mapping[int, float], fourier: tuple[float, int] | None):
        self.periodic_axes = dict(periodic_axes)
        self.fourier = fourier
        self.pre_dim = periodic_dim(input_dim, self.periodic_axes)
        self.out_dim = self.pre_dim if fourier is None else 2 * fourier[1]

    def init(self, key: jax.Array, dtype=jnp.float32) -> Params:
        if self.fourier is None:
            return {}
        scale, dim = self.fourier
        return {"fourier": fourier_init(key, self.pre_dim, dim, scale, dtype)}

    def apply(self, p: Params, z: jax.Array) -> jax.Array:
        x = periodic_embed(z, self.periodic_axes)
        if self.fourier is not None:
            x = fourier_apply(p["fourier"], x)
        return x
