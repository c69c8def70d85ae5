"""Gradient alignment diagnostics: the alignment score of Wang et al., "Gradient Alignment in
Physics-informed Neural Networks: A Second-Order Optimization Perspective" (arXiv 2502.00604),
over per-term gradients, over term groups, and over preconditioned gradients (README.md, Outputs,
lists the logged keys; docs/results.md has measured figures).

All functions are pure JAX and jit-able (shapes such as the number of loss terms K are static);
the scoring functions are already wrapped in ``jax.jit``.

Conventions
-----------
* Gradients are compared as flat vectors: a pytree is flattened by concatenating its raveled
  leaves (in ``jax.tree_util`` leaf order).
* Zero vectors: a zero gradient contributes a *zero unit vector*.  Its cosine with anything is 0,
  it adds nothing to the mean direction, and no NaN is produced.  With zero vectors present the
  identity ``A = 2/K - 1 + 2(K-1)/K * mean_cos`` no longer holds exactly (the zero vector's
  ``||u||^2`` is 0 instead of 1); e.g. K=2 with one zero gradient gives A = -0.5.
* Normalisation is overflow/underflow-safe in float32: each vector is first divided by its
  largest absolute entry, then by its Euclidean norm.
* Dot products use ``Precision.HIGHEST`` so that TF32 matmuls on GPUs do not spoil the cosines.
"""

from __future__ import annotations

import functools
from typing import Any, Mapping, Sequence

import jax
import jax.numpy as jnp
import optax

from pinnrun.optim import quasi_newton
from pinnrun.optim.soap import find_soap_state, precondition_without_momentum

_HIGHEST = jax.lax.Precision.HIGHEST

__all__ = [
    "stack_flat",
    "flatten_batched",
    "unit_rows",
    "alignment_score",
    "pairwise_cosines",
    "mean_pairwise_cosine",
    "cosine",
    "alignment_metrics",
    "group_rows",
    "term_groups",
    "find_adam_state",
    "adam_precondition",
    "precondition",
]


# --------------------------------------------------------------------------------------------
# flattening helpers
# --------------------------------------------------------------------------------------------
def _ravel_tree(tree: Any) -> jax.Array:
    leaves = jax.tree_util.tree_leaves(tree)
    if not leaves:
        raise ValueError("empty pytree: nothing to flatten")
    dtype = jnp.result_type(*leaves)
    return jnp.concatenate([jnp.ravel(jnp.asarray(l)).astype(dtype) for l in leaves])


def stack_flat(grads: Any) -> jax.Array:
    """Return the K gradients as a ``[K, N]`` array.

    ``grads`` is either an array with ``ndim == 2`` (returned as is) or a sequence (list/tuple)
    of K pytrees with the same structure, each flattened by concatenating its raveled leaves.
    For the "leading K axis" layout produced by ``jax.jacrev`` of a loss vector use
    :func:`flatten_batched`.
    """
    if not isinstance(grads, (list, tuple)):
        if isinstance(grads, Mapping) or not hasattr(grads, "shape"):
            raise TypeError(
                "grads must be a [K, N] array or a list/tuple of K pytrees "
                "(use flatten_batched for a pytree with a leading K axis)"
            )
        g = jnp.asarray(grads)
        if g.ndim != 2:
            raise ValueError(f"array gradients must have shape [K, N], got {g.shape}")
        return g
    if len(grads) == 0:
        raise ValueError("need at least one gradient")
    return jnp.stack([_ravel_tree(g) for g in grads])


def flatten_batched(tree: Any) -> jax.Array:
    """Flatten a pytree whose leaves all have a leading axis K into a ``[K, N]`` array.

    This is the layout of ``jax.jacrev(lambda p: loss_vector(p))(params)``: every leaf has
    shape ``[K, *leaf.shape]``.
    """
    leaves = jax.tree_util.tree_leaves(tree)
    if not leaves:
        raise ValueError("empty pytree: nothing to flatten")
    leaves = [jnp.asarray(l) for l in leaves]
    k = leaves[0].shape[0] if leaves[0].ndim else None
    for l in leaves:
        if l.ndim == 0 or l.shape[0] != k:
            raise ValueError("every leaf must have the same leading (K) axis")
    dtype = jnp.result_type(*leaves)
    return jnp.concatenate([l.reshape(k, -1).astype(dtype) for l in leaves], axis=1)


def unit_rows(G: jax.Array) -> jax.Array:
    """Rows of ``G`` normalised to unit length; zero rows stay zero (no NaN, no overflow)."""
    G = jnp.asarray(G)
    if not jnp.issubdtype(G.dtype, jnp.floating):
        G = G.astype(jnp.float32)
    tiny = jnp.finfo(G.dtype).tiny
    scale = jnp.max(jnp.abs(G), axis=-1, keepdims=True)
    Gs = G / jnp.maximum(scale, tiny)  # entries in [-1, 1]; max |entry| = 1 unless row is 0
    n = jnp.sqrt(jnp.sum(Gs * Gs, axis=-1, keepdims=True))  # >= 1 for nonzero rows, else 0
    return Gs / jnp.where(n > 0, n, 1.0)


def _row_norms(G: jax.Array) -> jax.Array:
    """Euclidean row norms, computed with the same rescaling trick (no under/overflow)."""
    G = jnp.asarray(G)
    if not jnp.issubdtype(G.dtype, jnp.floating):
        G = G.astype(jnp.float32)
    tiny = jnp.finfo(G.dtype).tiny
    scale = jnp.max(jnp.abs(G), axis=-1)
    Gs = G / jnp.maximum(scale, tiny)[..., None]
    return scale * jnp.sqrt(jnp.sum(Gs * Gs, axis=-1))


def _as_matrix(grads: Any) -> jax.Array:
    G = stack_flat(grads)
    if G.shape[0] < 2:
        raise ValueError(f"alignment needs K >= 2 gradients, got K = {G.shape[0]}")
    return G


# --------------------------------------------------------------------------------------------
# scores
# --------------------------------------------------------------------------------------------
@jax.jit
def alignment_score(grads: Any) -> jax.Array:
    """A = 2 || mean_k g_k/||g_k|| ||^2 - 1  (in [-1, 1]).

    ``grads``: a ``[K, N]`` array or a list/tuple of K pytrees; K >= 2 (ValueError otherwise).
    Zero gradients contribute a zero unit vector (see module docstring).
    """
    U = unit_rows(_as_matrix(grads))
    m = jnp.mean(U, axis=0)
    return 2.0 * jnp.sum(m * m) - 1.0


@jax.jit
def pairwise_cosines(G: Any) -> jax.Array:
    """``[K, K]`` matrix of cosines between the rows of ``G`` (or K pytrees).

    The diagonal is 1 for nonzero rows and 0 for zero rows.
    """
    U = unit_rows(stack_flat(G))
    return jnp.matmul(U, U.T, precision=_HIGHEST)


@jax.jit
def mean_pairwise_cosine(G: Any) -> jax.Array:
    """Mean of the cosines over all pairs i < j (K >= 2)."""
    G = _as_matrix(G)
    k = G.shape[0]
    C = pairwise_cosines(G)
    i, j = jnp.triu_indices(k, 1)
    return jnp.mean(C[i, j])


@jax.jit
def cosine(a: Any, b: Any) -> jax.Array:
    """Cosine between two pytrees of the same structure (0 if either is zero).

    Inter-step alignment = ``cosine(update_t, update_{t-1})``.
    """
    U = unit_rows(jnp.stack([_ravel_tree(a), _ravel_tree(b)]))
    return jnp.sum(U[0] * U[1])


def alignment_metrics(
    term_names: Sequence[str],
    per_term_grads: Any,
    preconditioned: Any = None,
    groups: Sequence[Sequence[str]] | None = None,
    weights: Any = None,
) -> dict[str, jax.Array]:
    """Metrics for ``metrics.jsonl`` from per-term gradients.

    ``per_term_grads`` (and ``preconditioned``) use the ``jax.jacrev`` layout: a pytree whose
    leaves have a leading axis K = len(term_names) (a ``[K, N]`` array is also accepted).

    Keys: ``grad_norm/<term>`` for each term, and for K >= 2 also ``align/intra``,
    ``align/mean_cos``, ``cos/<a>__<b>`` for every pair with a before b in ``term_names`` order,
    and ``align/intra_precond`` when ``preconditioned`` is given.  With K == 1 only the
    ``grad_norm`` keys are produced (alignment is undefined for a single term).

    ``groups``: term names per group (e.g. the residual terms, then the initial/boundary terms);
    with two or more non-empty groups ``align/groups`` is the score of the groups' gradients (with
    two groups, their cosine), each the gradient of its terms' weighted sum ``sum_k w_k L_k``
    (``weights``: ``[K]`` loss weights in term order, default 1), and ``align/groups_precond`` the
    same of the preconditioned gradients (the preconditioner is linear in the gradient).
    """
    names = tuple(term_names)
    groups = () if groups is None else tuple(tuple(names.index(t) for t in g) for g in groups if len(g))
    if weights is None:
        weights = jnp.ones(len(names))
    return _alignment_metrics(names, groups, per_term_grads, preconditioned, jnp.asarray(weights))


def term_groups(point_sets: Sequence[Any]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The groups of ``align/groups``: the terms of the residual point sets, then all the others
    (initial, boundary, data), as the paper compares residual against initial/boundary losses."""
    residual = tuple(t for ps in point_sets if ps.kind == "residual" for t in ps.terms)
    return residual, tuple(t for ps in point_sets if ps.kind != "residual" for t in ps.terms)


def group_rows(G: jax.Array, groups: Sequence[Sequence[int]], weights: jax.Array) -> jax.Array:
    """``[len(groups), N]``: row g is ``sum_{k in groups[g]} weights[k] G[k]``."""
    w = weights.astype(G.dtype)
    return jnp.stack([sum(w[k] * G[k] for k in group) for group in groups])


@functools.partial(jax.jit, static_argnums=(0, 1))
def _alignment_metrics(names: tuple, groups: tuple, per_term_grads: Any, preconditioned: Any, weights: jax.Array) -> dict:
    G = flatten_batched(per_term_grads)
    k = G.shape[0]
    if k != len(names):
        raise ValueError(f"{len(names)} term names but per-term gradients have K = {k}")
    out: dict[str, jax.Array] = {}
    norms = _row_norms(G)
    for i, n in enumerate(names):
        out[f"grad_norm/{n}"] = norms[i]
    if k < 2:
        return out
    U = unit_rows(G)
    m = jnp.mean(U, axis=0)
    out["align/intra"] = 2.0 * jnp.sum(m * m) - 1.0
    C = jnp.matmul(U, U.T, precision=_HIGHEST)
    iu, ju = jnp.triu_indices(k, 1)
    out["align/mean_cos"] = jnp.mean(C[iu, ju])
    for i in range(k):
        for j in range(i + 1, k):
            out[f"cos/{names[i]}__{names[j]}"] = C[i, j]
    if len(groups) >= 2:
        out["align/groups"] = alignment_score(group_rows(G, groups, weights))
    if preconditioned is not None:
        P = flatten_batched(preconditioned)
        if P.shape[0] != k:
            raise ValueError("preconditioned gradients must have the same K as per_term_grads")
        out["align/intra_precond"] = alignment_score(P)
        if len(groups) >= 2:
            out["align/groups_precond"] = alignment_score(group_rows(P, groups, weights))
    return out


# --------------------------------------------------------------------------------------------
# preconditioners (no momentum)
# --------------------------------------------------------------------------------------------
def find_adam_state(opt_state: Any) -> optax.ScaleByAdamState | None:
    """First ``optax.ScaleByAdamState`` found anywhere in a (chained / wrapped) optax state."""
    is_adam = lambda x: isinstance(x, optax.ScaleByAdamState)  # noqa: E731
    for node in jax.tree_util.tree_leaves(opt_state, is_leaf=is_adam):
        if is_adam(node):
            return node
    return None


def _is_batched(grads: Any, ref: Any) -> bool:
    """True if ``grads`` leaves are ``ref`` leaves with an extra leading axis, False if they
    match ``ref`` exactly; ValueError otherwise."""
    g_leaves, g_def = jax.tree_util.tree_flatten(grads)
    r_leaves, r_def = jax.tree_util.tree_flatten(ref)
    if g_def == r_def and g_leaves:
        gs = [jnp.shape(l) for l in g_leaves]
        rs = [jnp.shape(l) for l in r_leaves]
        if all(g == r for g, r in zip(gs, rs)):
            return False
        if all(len(g) == len(r) + 1 and g[1:] == r for g, r in zip(gs, rs)):
            return True
    raise ValueError("gradients must be shaped like the parameters, or like them with a leading K axis")


def adam_precondition(
    opt_state: Any,
    grads: Any,
    eps: float = 1e-8,
    b2: float = 0.999,
    batched: bool | None = None,
) -> Any | None:
    """Adam's preconditioner without momentum: ``g / (sqrt(nu_hat) + eps)`` leafwise.

    ``nu_hat = nu / (1 - b2**count)`` with ``count`` the Adam state's update count.  optax does
    not store ``b2`` in its state, so pass the ``b2`` the optimizer was built with (optax default
    0.999).  When ``count == 0`` (no update yet, nu is all zeros) the preconditioner is undefined
    and ``grads`` are returned unchanged.

    ``grads`` may be a params-shaped pytree or the per-term layout with a leading K axis on every
    leaf (``batched``: None = detect from the shapes of ``nu``); the preconditioner is applied to
    each of the K gradients.  Returns None if ``opt_state`` holds no ``ScaleByAdamState``.
    """
    state = find_adam_state(opt_state)
    if state is None:
        return None
    if batched is None:
        batched = _is_batched(grads, state.nu)

    count = jnp.asarray(state.count)
    has_stats = count > 0
    corr = jnp.where(has_stats, 1.0 - jnp.asarray(b2, jnp.float32) ** count.astype(jnp.float32), 1.0)

    def one(g):
        def leaf(gl, nl):
            nu_hat = nl / corr.astype(nl.dtype)
            return jnp.where(has_stats, gl / (jnp.sqrt(nu_hat) + eps), gl).astype(gl.dtype)

        return jax.tree_util.tree_map(leaf, g, state.nu)

    return jax.vmap(one)(grads) if batched else one(grads)


def precondition(
    opt_state: Any,
    grads: Any,
    eps: float | None = None,
    b2: float = 0.999,
    batched: bool | None = None,
) -> Any | None:
    """Current preconditioner (without momentum) applied to ``grads``.

    SOAP (a :class:`pinnrun.optim.soap.ScaleBySoapState` in ``opt_state``):
    :func:`pinnrun.optim.soap.precondition_without_momentum`, with the state's own ``b2`` and, for
    ``eps=None``, its own ``eps``. Else Adam (:func:`adam_precondition` with ``b2`` and ``eps``,
    1e-8 for None). A dense quasi-Newton method (:class:`pinnrun.optim.quasi_newton.QuasiNewtonState`):
    its inverse-Hessian approximation, H g. Else None.

    ``batched``: whether every leaf of ``grads`` carries a leading K axis (per-term gradients);
    None = detect from the shapes.
    """
    sstate = find_soap_state(opt_state)
    if sstate is not None:
        b = _is_batched(grads, sstate.nu) if batched is None else batched
        fn = lambda g: precondition_without_momentum(sstate, g, eps=eps)  # noqa: E731
        return jax.vmap(fn)(grads) if b else fn(grads)
    qn = quasi_newton.find_state(opt_state)
    if qn is not None:
        flat_size = qn.inverse_hessian.shape[0]
        b = (sum(leaf.size for leaf in jax.tree.leaves(grads)) != flat_size) if batched is None else batched
        fn = lambda g: quasi_newton.apply_inverse_hessian(qn, g)  # noqa: E731
        return jax.vmap(fn)(grads) if b else fn(grads)
    return adam_precondition(opt_state, grads, eps=1e-8 if eps is None else eps, b2=b2, batched=batched)
