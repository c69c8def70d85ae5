"""Loss weighting schemes: gradient-norm and NTK balancing, and the helpers of causal weighting, as in
Wang, Bhartari, Li & Perdikaris 2025 (arXiv 2502.00604) and the papers it builds on (causal training:
Wang, Sankaran & Perdikaris 2022; NTK weights: Wang, Yu & Perdikaris 2022).

Pure functions; the trainer decides when to call them (e.g. every ``update_every`` steps) and
must treat the returned weights as constants.  Every weight returned here already has
``stop_gradient`` applied.

Conventions
-----------
* Balancing (:func:`grad_norm_weights`, :func:`ntk_weights`):
  ``w_k = mean_j s_j / (s_k + 1e-5 * mean_j s_j)``.  If every ``s_j`` is 0 the weights are 1.
* NTK diagonal (:func:`ntk_trace`): for a per-point residual ``r(z) in R^m`` the point's NTK
  diagonal is ``sum_c ||d r_c(z) / d theta||^2`` (sum over the m components), and the trace is the
  mean of that over points.  A scalar residual is treated as m = 1.
* Causal weighting (:func:`chunk_index`, :func:`chunk_means`, :func:`causal_weights`,
  :func:`causal_weights_system`; the loss itself is :func:`pinnrun.losses.causal_term_losses`): time
  chunks are bins of equal width in ``[t_min, t_max]`` (``floor((t - t_min) / (t_max - t_min) * C)``
  clipped to ``[0, C-1]``), so points need not be sorted and the chunk of a point with ``t = t_max``
  is the last one.  An empty chunk has loss 0 (it adds nothing to later chunks' weights and nothing
  to the loss, but still counts in the mean over the C chunks).
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp

__all__ = [
    "balance_weights",
    "grad_norm_weights",
    "ntk_weights",
    "ntk_trace",
    "smooth",
    "chunk_index",
    "chunk_means",
    "causal_weights",
    "causal_weights_system",
]

_REL_EPS = 1e-5


# --------------------------------------------------------------------------------------------
# gradient-norm / NTK balancing
# --------------------------------------------------------------------------------------------
def balance_weights(values: Any) -> Any:
    """``w_k = mean_j v_j / (v_k + 1e-5 mean_j v_j)`` for a dict ``{term: scalar}`` or array [K].

    Returns the same container type (dict with the same keys, or array).  No gradient flows
    through the result.  All-zero inputs give weights of 1.
    """
    if isinstance(values, Mapping):
        keys = list(values.keys())
        w = balance_weights(jnp.stack([jnp.asarray(values[k]) for k in keys]))
        return {k: w[i] for i, k in enumerate(keys)}
    v = jax.lax.stop_gradient(jnp.asarray(values))
    if not jnp.issubdtype(v.dtype, jnp.floating):
        v = v.astype(jnp.float32)
    mean = jnp.mean(v)
    denom = v + _REL_EPS * mean
    safe = mean > 0
    return jnp.where(safe, mean / jnp.where(safe, denom, 1.0), jnp.ones_like(v))


def grad_norm_weights(norms: Any) -> Any:
    """Gradient-norm balancing from per-term gradient norms ``||grad L_k||`` (dict or [K])."""
    return balance_weights(norms)


def ntk_weights(traces: Any) -> Any:
    """NTK balancing from per-term mean NTK diagonals (dict or [K]); see :func:`ntk_trace`."""
    return balance_weights(traces)


def _point_sq_jac_norm(point_residual: Callable, params: Any, z: jax.Array) -> jax.Array:
    """sum over residual components c of ||d r_c(z) / d theta||^2 for one point."""
    jac = jax.jacrev(lambda p: jnp.ravel(point_residual(p, z)))(params)  # leaves [m, *shape]
    leaves = jax.tree_util.tree_leaves(jac)
    return sum(jnp.sum(jnp.square(l.astype(jnp.float32))) for l in leaves)


def ntk_trace(
    point_residual: Callable[[Any, jax.Array], jax.Array],
    params: Any,
    points: jax.Array,
    chunk_size: int = 64,
    *,
    max_points: int | None = None,
    key: jax.Array | None = None,
    point_weights: jax.Array | None = None,
) -> jax.Array:
    """Mean NTK diagonal of one loss term: ``mean_i sum_c ||d r_c(z_i) / d theta||^2``.

    ``point_weights`` ([n], aligned with ``points``): the weights a_i of the term's loss
    ``sum_i a_i ||r(z_i)||^2``; the result is then ``sum_i a_i K_ii`` instead of the mean (with a_i =
    1/n the two agree). Causal training uses a_i = w_c / (C n_c) (:func:`causal_point_weights`).

    ``point_residual(params, z) -> [m]`` (or scalar) is the residual at ONE point ``z``
    (``points[i]``; ``points`` has shape ``[n, ...]``).  Points are processed ``chunk_size`` at a
    time with ``lax.map`` (each chunk vmaps a per-point ``jacrev``), so peak memory is about
    ``chunk_size * m * num_params`` floats; the points are padded to a multiple of
    ``chunk_size`` (with copies of the first point) and the padding is masked out.

    ``max_points``: if given and smaller than n, use a uniform random subsample of exactly
    ``max_points`` distinct points drawn with ``key`` (required then).  The result is a
    float32 scalar with ``stop_gradient`` applied.  The computation is jitted and cached on
    ``(point_residual, chunk_size)``: pass the same function object each time to avoid
    recompiling.  Also callable inside an outer jit (``point_residual``, ``chunk_size`` and
    ``max_points`` static).
    """
    points = jnp.asarray(points)
    params = jax.lax.stop_gradient(params)
    n = points.shape[0]
    if n == 0:
        raise ValueError("ntk_trace needs at least one point")
    if max_points is not None and max_points < n:
        if max_points < 1:
            raise ValueError("max_points must be >= 1")
        if key is None:
            raise ValueError("max_points subsampling needs a PRNG key")
        if point_weights is not None:
            raise ValueError("point_weights refer to the points given; subsample before weighting them")
        points = subsample(points, max_points, key)
        n = max_points
    chunk_size = int(max(1, min(chunk_size, n)))
    if point_weights is None:
        return _ntk_trace_core(point_residual, chunk_size, params, points)
    return _ntk_trace_core(point_residual, chunk_size, params, points, jnp.asarray(point_weights, jnp.float32))


def subsample(points: jax.Array, max_points: int | None, key: jax.Array) -> jax.Array:
    """``max_points`` distinct rows of ``points`` drawn uniformly with ``key`` (all rows when
    ``max_points`` is None or not below their number); the draw :func:`ntk_trace` makes."""
    n = points.shape[0]
    if max_points is None or max_points >= n:
        return points
    return points[jax.random.choice(key, n, (max_points,), replace=False)]


def causal_point_weights(t: jax.Array, weights: jax.Array, num_chunks: int, t_min: float, t_max: float) -> jax.Array:
    """Per-point weights of a causal loss: the loss ``(1/C) sum_c w_c (1/n_c) sum_{i in c} r_i^2``
    weighs point i by ``a_i = w_c(i) / (C n_c(i))``, with n_c the points of chunk c among ``t``."""
    idx = chunk_index(jnp.ravel(t), num_chunks, t_min, t_max)
    counts = jax.ops.segment_sum(jnp.ones_like(idx, dtype=jnp.float32), idx, num_chunks)
    return jax.lax.stop_gradient(weights.astype(jnp.float32)[idx] / (num_chunks * counts[idx]))


@functools.partial(jax.jit, static_argnums=(0, 1))
def _ntk_trace_core(point_residual: Callable, chunk_size: int, params: Any, points: jax.Array, point_weights=None):
    n = points.shape[0]
    num_chunks = -(-n // chunk_size)
    pad = num_chunks * chunk_size - n
    if pad:
        filler = jnp.broadcast_to(points[:1], (pad,) + points.shape[1:])
        points = jnp.concatenate([points, filler], axis=0)
    mask = (jnp.arange(num_chunks * chunk_size) < n).astype(jnp.float32)
    if point_weights is not None:  # sum_i a_i K_ii: the padding gets weight 0, and n is not divided out
        mask = jnp.concatenate([point_weights, jnp.zeros(pad, jnp.float32)]) * n
    chunks = points.reshape((num_chunks, chunk_size) + points.shape[1:])
    masks = mask.reshape(num_chunks, chunk_size)

    per_point = jax.vmap(lambda z: _point_sq_jac_norm(point_residual, params, z))

    def body(args):
        zc, mc = args
        return jnp.sum(per_point(zc) * mc)

    sums = jax.lax.map(body, (chunks, masks))
    return jax.lax.stop_gradient(jnp.sum(sums) / n)


def smooth(old: Any, new: Any, momentum: float = 0.9) -> Any:
    """``momentum * old + (1 - momentum) * new`` leafwise (dicts/pytrees allowed), no gradient."""
    return jax.tree_util.tree_map(
        lambda o, n: jax.lax.stop_gradient(momentum * o + (1.0 - momentum) * n), old, new
    )


# --------------------------------------------------------------------------------------------
# causal weighting
# --------------------------------------------------------------------------------------------
def chunk_index(t: jax.Array, num_chunks: int, t_min: float, t_max: float) -> jax.Array:
    """Time-chunk index of each point: ``floor((t - t_min)/(t_max - t_min) * C)`` in [0, C-1]."""
    t = jnp.asarray(t)
    frac = (t - t_min) / (t_max - t_min)
    idx = jnp.floor(frac * num_chunks).astype(jnp.int32)
    return jnp.clip(idx, 0, num_chunks - 1)


def chunk_means(
    values: jax.Array, t: jax.Array, num_chunks: int, t_min: float, t_max: float
) -> jax.Array:
    """Mean of ``values`` over the points of each time chunk.

    ``values``: ``[n]`` -> ``[C]``; ``[n, m]`` -> ``[m, C]`` (one row per column of values).
    Empty chunks give 0.
    """
    values = jnp.asarray(values)
    idx = chunk_index(jnp.ravel(t), num_chunks, t_min, t_max)
    counts = jax.ops.segment_sum(jnp.ones_like(idx, dtype=values.dtype), idx, num_chunks)
    sums = jax.ops.segment_sum(values, idx, num_chunks)  # [C] or [C, m]
    denom = jnp.maximum(counts, 1.0)
    means = sums / (denom if values.ndim == 1 else denom[:, None])
    return means if values.ndim == 1 else means.T


def causal_weights(chunk_losses: jax.Array, tol: float) -> jax.Array:
    """``w_c = exp(-tol * sum_{j<c} l_j)`` (w_0 = 1), no gradient.  ``chunk_losses``: [C]."""
    l = jax.lax.stop_gradient(jnp.asarray(chunk_losses))
    prior = jnp.cumsum(l, axis=-1) - l
    return jax.lax.stop_gradient(jnp.exp(-tol * prior))


def causal_weights_system(chunk_losses: jax.Array, tol: float) -> jax.Array:
    """Systems: ``chunk_losses`` [E, C] (one row per equation) -> [C], the minimum over
    equations of each equation's causal weights."""
    return jnp.min(causal_weights(chunk_losses, tol), axis=0)

