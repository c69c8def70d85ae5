"""Shampoo with Adam grafting (Gupta, Koren, Singer 2018; practical form of Anil et al. 2020).

For a leaf ``G`` of shape ``(d_1, ..., d_n)`` every dimension ``i`` with ``d_i <= max_precond_dim``
(1-D leaves only with ``precondition_1d``) owns a Kronecker factor, a moving average of the
gradient unfolded along that dimension::

    F_i <- b_s F_i + (1 - b_s) G_(i) G_(i)^T,      F_hat_i = F_i / (1 - b_s^t)   (bias-corrected)

The preconditioned direction is ``S = M x_1 F_hat_1^{-1/(2n)} ... x_n F_hat_n^{-1/(2n)}`` (2-D:
``L^{-1/4} M R^{-1/4}``), where ``M = m / (1 - b1^t)`` is the bias-corrected momentum
(``b1 = 0``: the raw gradient). Inverse roots come from ``eigh``: eigenvalues clamped at 0 and
damped by ``eps * max eigenvalue``; they are recomputed every ``precondition_frequency`` steps
(from ``start_preconditioning_step`` on) and stored in the state.

Grafting (``grafting="adam"``, default): per leaf, the update has the direction of ``S`` and the
norm of the Adam update ``A = m_hat / (sqrt(v_hat) + graft_eps)``::

    u = S * ||A|| / ||S||

and before ``start_preconditioning_step`` it is ``A`` itself. ``grafting="none"``: ``u = S``
(and ``u = M`` before ``start_preconditioning_step``).

Public API: :func:`shampoo`, :func:`scale_by_shampoo`, :class:`ScaleByShampooState`.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from pinnrun.optim.kronecker import (
    HIGHEST,
    contract_axis,
    factored_dims,
    gram,
    init_factors,
    zeros_like_wide,
)
GRAFTING_CHOICES = ("adam", "none")


class ScaleByShampooState(NamedTuple):
    """State of :func:`scale_by_shampoo`.

    Attributes:
      count: number of steps done (int32 scalar); ``t`` of the bias corrections.
      mu: first moment (same structure as the params).
      nu: Adam second moment for grafting (same structure as the params).
      factors: tuple over the params' leaves (``jax.tree_util.tree_leaves`` order) of tuples over
        each leaf's dimensions: the factor ``F_i`` (not bias-corrected) or ``None``.
      inv_roots: same layout: the stored ``F_hat_i^{-1/(2n)}`` (identity before the first
        computation) or ``None``.
    """

    count: jax.Array
    mu: Any
    nu: Any
    factors: tuple
    inv_roots: tuple


def _inverse_root(factor: jax.Array, exponent: float, eps: float, previous: jax.Array) -> jax.Array:
    """``factor^{-exponent}`` of a symmetric PSD matrix via eigh.

    Eigenvalues are clamped at 0 and damped by ``eps * max eigenvalue``; an eigenvalue whose damped
    value is still 0 (a zero factor) maps to 0. A non-finite result keeps ``previous``.
    """
    lam, vecs = jnp.linalg.eigh(factor)
    lam = jnp.maximum(lam, 0.0)
    lam = lam + eps * jnp.max(lam)
    safe = jnp.where(lam > 0, lam, 1.0)
    root = jnp.where(lam > 0, safe ** (-exponent), 0.0)
    out = jnp.matmul(vecs * root[None, :], vecs.T, precision=HIGHEST)
    return jnp.where(jnp.all(jnp.isfinite(out)), out, previous)


def _norm(x: jax.Array) -> jax.Array:
    return jnp.sqrt(jnp.sum(x * x))


def scale_by_shampoo(
    b1: float = 0.9,
    b2: float = 0.999,
    shampoo_beta: float = 0.999,
    eps: float = 1e-12,
    precondition_frequency: int = 1,
    max_precond_dim: int = 10000,
    grafting: str = "adam",
    start_preconditioning_step: int = 1,
    precondition_1d: bool = False,
    graft_eps: float = 1e-8,
) -> optax.GradientTransformation:
    """Shampoo's (grafted) direction, to be scaled by ``-lr`` (see the module docstring).

    Args:
      b1: momentum rate (also Adam's beta1 for grafting); 0 uses the raw gradient.
      b2: Adam's beta2 (grafting only).
      shampoo_beta: moving-average rate of the Kronecker factors (bias-corrected).
      eps: relative damping of the factors' eigenvalues (``eps * max eigenvalue``).
      precondition_frequency: recompute the inverse roots every this many steps.
      max_precond_dim: dimensions larger than this get no factor (identity).
      grafting: "adam" (norm of the Adam update, per leaf) or "none".
      start_preconditioning_step: steps before this one use the Adam update ("adam") or the
        momentum ("none"); the inverse roots are first computed at this step.
      precondition_1d: whether 1-D leaves get a factor.
      graft_eps: Adam's epsilon in the grafted update.
    """
    if grafting not in GRAFTING_CHOICES:
        raise ValueError(
            f"grafting must be one of {', '.join(repr(c) for c in GRAFTING_CHOICES)}; "
            f"got {grafting!r}"
        )
    freq = int(precondition_frequency)
    if freq < 1:
        raise ValueError(f"precondition_frequency must be >= 1, got {precondition_frequency}")
    start = max(int(start_preconditioning_step), 1)

    def has_factor(shape):
        return factored_dims(shape, max_precond_dim, precondition_1d)

    def init_fn(params):
        factors, roots = init_factors(params, has_factor)
        zeros = zeros_like_wide(params)
        return ScaleByShampooState(
            count=jnp.zeros([], jnp.int32),
            mu=zeros,
            nu=zeros,
            factors=tuple(factors),
            inv_roots=tuple(roots),
        )

    def update_fn(updates, state: ScaleByShampooState, params=None):
        del params
        g_leaves, treedef = jax.tree_util.tree_flatten(updates)
        mu_leaves = treedef.flatten_up_to(state.mu)
        nu_leaves = treedef.flatten_up_to(state.nu)
        t = state.count + 1
        refresh = (t >= start) & ((t - start) % freq == 0)
        preconditioning = t >= start

        out, mus, nus, factors, roots = [], [], [], [], []
        per_leaf = zip(g_leaves, mu_leaves, nu_leaves, state.factors, state.inv_roots)
        for g_raw, m, v, fs, rs in per_leaf:
            dt = m.dtype
            g = g_raw.astype(dt)
            tf = t.astype(dt)
            m = b1 * m + (1.0 - b1) * g
            v = b2 * v + (1.0 - b2) * g * g
            m_hat = m / (1.0 - jnp.asarray(b1, dt) ** tf)
            v_hat = v / (1.0 - jnp.asarray(b2, dt) ** tf)
            adam = m_hat / (jnp.sqrt(v_hat) + graft_eps)

            fs = tuple(
                None if f is None else shampoo_beta * f + (1.0 - shampoo_beta) * gram(g, axis)
                for axis, f in enumerate(fs)
            )
            if any(f is not None for f in fs):
                exponent = 1.0 / (2 * g.ndim)
                bc = 1.0 - jnp.asarray(shampoo_beta, dt) ** tf

                def recompute(rs, fs=fs, exponent=exponent, bc=bc):
                    return tuple(
                        None if f is None else _inverse_root(f / bc, exponent, eps, r)
                        for f, r in zip(fs, rs)
                    )

                rs = jax.lax.cond(refresh, recompute, lambda rs: rs, rs)

            direction = m_hat
            for axis, r in enumerate(rs):
                if r is not None:
                    direction = contract_axis(direction, r, axis)

            if grafting == "adam":
                s_norm = _norm(direction)
                scale = jnp.where(s_norm > 0, _norm(adam) / jnp.where(s_norm > 0, s_norm, 1.0), 0.0)
                u = jnp.where(preconditioning, direction * scale, adam)
            else:
                u = jnp.where(preconditioning, direction, m_hat)
            out.append(u.astype(g_raw.dtype))
            mus.append(m)
            nus.append(v)
            factors.append(fs)
            roots.append(rs)

        new_state = ScaleByShampooState(
            count=optax.safe_increment(state.count),
            mu=treedef.unflatten(mus),
            nu=treedef.unflatten(nus),
            factors=tuple(factors),
            inv_roots=tuple(roots),
        )
        return treedef.unflatten(out), new_state

    return optax.GradientTransformation(init_fn, update_fn)


def shampoo(
    learning_rate,
    b1: float = 0.9,
    b2: float = 0.999,
    shampoo_beta: float = 0.999,
    eps: float = 1e-12,
    precondition_frequency: int = 1,
    max_precond_dim: int = 10000,
    grafting: str = "adam",
    start_preconditioning_step: int = 1,
    precondition_1d: bool = False,
    graft_eps: float = 1e-8,
) -> optax.GradientTransformation:
    """The Shampoo optimiser: ``p <- p - lr * u`` with ``u`` from :func:`scale_by_shampoo`.

    ``learning_rate`` may be a float or an optax schedule (evaluated at the step count).
    """
    return optax.chain(
        scale_by_shampoo(
            b1=b1,
            b2=b2,
            shampoo_beta=shampoo_beta,
            eps=eps,
            precondition_frequency=precondition_frequency,
            max_precond_dim=max_precond_dim,
            grafting=grafting,
            start_preconditioning_step=start_preconditioning_step,
            precondition_1d=precondition_1d,
            graft_eps=graft_eps,
        ),
        optax.scale_by_learning_rate(learning_rate),
    )
