"""Kronecker-factor helpers shared by SOAP and Shampoo (every contraction at highest precision).

A leaf of shape (d1, ..., dn) gets one d_i x d_i factor per dimension that is preconditioned: the
gradient contracted with itself over all other dimensions (2-D: L = G G^T, R = G^T G).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

HIGHEST = jax.lax.Precision.HIGHEST

LeafMats = tuple  # per dimension of a leaf: a matrix, or None where the dimension has no factor


def compute_dtype(dtype) -> jnp.dtype:
    """The wider of float32 and the parameter dtype."""
    return jnp.promote_types(jnp.float32, dtype)


def factored_dims(shape, max_precond_dim: int, precondition_1d: bool) -> tuple[bool, ...]:
    """Which dimensions of a leaf of this shape get a Kronecker factor."""
    if len(shape) == 1 and not precondition_1d:
        return (False,)
    return tuple(d <= max_precond_dim for d in shape)


def contract_axis(x: jax.Array, mat: jax.Array, axis: int, transpose: bool = False) -> jax.Array:
    """Contract dimension ``axis`` of ``x`` with ``mat``.

    ``transpose=False``: y[.., a, ..] = sum_b x[.., b, ..] mat[b, a]  (applies mat^T along axis)
    ``transpose=True``:  y[.., b, ..] = sum_a x[.., a, ..] mat[b, a]  (applies mat along axis)
    For a symmetric ``mat`` the two agree.
    """
    y = jnp.tensordot(x, mat, axes=([axis], [1 if transpose else 0]), precision=HIGHEST)
    return jnp.moveaxis(y, -1, axis)  # tensordot puts the new axis last


def gram(g: jax.Array, axis: int) -> jax.Array:
    """``G_(axis) G_(axis)^T``: G contracted with itself over every dimension but ``axis``."""
    others = [i for i in range(g.ndim) if i != axis]
    return jnp.tensordot(g, g, axes=(others, others), precision=HIGHEST)


def init_factors(params, dims_of) -> tuple[tuple[LeafMats, ...], tuple[LeafMats, ...]]:
    """(zero factors, identity matrices) per leaf, for the dimensions ``dims_of(shape)`` marks."""
    zeros, eyes = [], []
    for p in jax.tree_util.tree_leaves(params):
        dt = compute_dtype(p.dtype)
        marked = dims_of(jnp.shape(p))
        zeros.append(tuple(jnp.zeros((d, d), dt) if m else None for d, m in zip(jnp.shape(p), marked)))
        eyes.append(tuple(jnp.eye(d, dtype=dt) if m else None for d, m in zip(jnp.shape(p), marked)))
    return tuple(zeros), tuple(eyes)


def zeros_like_wide(params):
    """Zero moments of every leaf in the wider of float32 and its dtype."""
    return jax.tree.map(lambda p: jnp.zeros(jnp.shape(p), compute_dtype(p.dtype)), params)
