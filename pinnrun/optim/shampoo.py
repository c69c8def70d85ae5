"""Shampoo with Adam grafting (Gupta, Koren, Singer 2018; practical form of Anil et al. 2020).

Reference matched: Google's Distributed Shampoo, repository google-research/google-research, file
``scalable_shampoo/optax/distributed_shampoo.py`` (read at commit 01aac340): the per-leaf order of
``_transform_grad`` (grafting update of the raw gradient, Shampoo-preconditioned raw gradient
rescaled to the grafting update's norm, momentum applied after grafting, one momentum for each of
the two updates, ``run_shampoo`` choosing between them), its ``_skip_preconditioning`` leaves (the
grafting update stands in for the preconditioned gradient), ``exponent_for_preconditioner``
(``-1/(2k)`` for a leaf with ``k`` factors) and ``matrix_inverse_pth_root`` with
``relative_matrix_epsilon=True`` (ridge ``eps * max eigenvalue``). In its terms pinnrun's
``grafting="adam"`` is ``graft_type=RMSPROP`` with ``moving_average_for_momentum=True``,
``nesterov=False``, ``decoupled_learning_rate=True`` (the learning rate comes after momentum),
no weight decay, statistics every step and no blocking. Differences, none of which changes the
order: Adam's bias corrections (of ``v`` in the grafting update and of the momentum), the
factors' own rate ``shampoo_beta`` (bias-corrected; Google uses ``beta2``), inverse roots by
``eigh`` (Google: coupled Newton), dimensions over ``max_precond_dim`` left unpreconditioned
(Google: blocked), and steps counted from 1.

Per leaf ``G`` of shape ``(d_1, ..., d_n)`` at step ``t``, every dimension ``i`` with
``d_i <= max_precond_dim`` (1-D leaves only with ``precondition_1d``) owns a Kronecker factor, a
moving average of the gradient unfolded along that dimension::

    F_i <- b_s F_i + (1 - b_s) G_(i) G_(i)^T,      F_hat_i = F_i / (1 - b_s^t)   (bias-corrected)

With ``k`` factors the preconditioned gradient is ``P = G x_i F_hat_i^{-1/(2k)}`` over the factored
dimensions (2-D: ``L^{-1/4} G R^{-1/4}``). Inverse roots come from ``eigh`` in the factors' dtype
(float32 in training): eigenvalues clamped at 0 and damped by ``eps * max eigenvalue``. The default
``eps = 1e-6`` sits above float32 eigh noise (null-space eigenvalues of a rank-deficient factor come
out at ~2e-7 * max); tests/test_shampoo.py measures the inverse root against a float64
eigendecomposition. The roots are recomputed every ``precondition_frequency`` steps from step 1
(as Google's, whatever ``start_preconditioning_step``) and stored in the state; a non-finite root
keeps the previous one.

Grafting (``grafting="adam"``, default): the grafting update ``A = G / (sqrt(v_hat) + graft_eps)``
(``v``: Adam's second moment, bias-corrected) and::

    S = P * ||A|| / ||P||      (a leaf with factors)
    S = A                      (a leaf without factors: biases, scalars such as RWF scales)

``grafting="none"``: ``A = G`` and ``S = P`` (``S = G`` without factors). Momentum comes after:
``m <- b1 m + (1 - b1) S`` and the update is ``u = m / (1 - b1^t)`` (``b1 = 0``: ``u = S``).
Before ``start_preconditioning_step`` the update is the momentum of ``A`` instead (kept only when
that step is > 1 and only for leaves with factors; elsewhere it equals the momentum of ``S``).

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
# Relative damping, chosen by the float32-vs-float64 measurement in tests/test_shampoo.py.
DEFAULT_EPS = 1e-6


class ScaleByShampooState(NamedTuple):
    """State of :func:`scale_by_shampoo`.

    Attributes:
      count: number of steps done (int32 scalar); ``t`` of the bias corrections.
      mu: momentum of the (grafted) Shampoo update ``S`` (same structure as the params).
      nu: Adam second moment of the raw gradient, for grafting (same structure as the params).
      graft_mu: tuple over the params' leaves (``jax.tree_util.tree_leaves`` order): the momentum
        of the grafting update ``A``, used before ``start_preconditioning_step``; ``None`` for a
        leaf without factors (there ``S = A``) and for every leaf when that step is 1.
      factors: tuple over the params' leaves of tuples over each leaf's dimensions: the factor
        ``F_i`` (not bias-corrected) or ``None``.
      inv_roots: same layout: the stored ``F_hat_i^{-1/(2k)}`` (identity before the first
        computation) or ``None``.
    """

    count: jax.Array
    mu: Any
    nu: Any
    graft_mu: tuple
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
    eps: float = DEFAULT_EPS,
    precondition_frequency: int = 1,
    max_precond_dim: int = 10000,
    grafting: str = "adam",
    start_preconditioning_step: int = 1,
    precondition_1d: bool = False,
    graft_eps: float = 1e-8,
) -> optax.GradientTransformation:
    """Shampoo's (grafted) update, to be scaled by ``-lr`` (see the module docstring).

    Args:
      b1: momentum rate, applied after grafting (bias-corrected); 0 uses no momentum.
      b2: Adam's beta2 of the grafting update (grafting "adam" only).
      shampoo_beta: moving-average rate of the Kronecker factors (bias-corrected).
      eps: relative damping of the factors' eigenvalues (``eps * max eigenvalue``).
      precondition_frequency: recompute the inverse roots every this many steps (1, 1 + f, ...).
      max_precond_dim: dimensions larger than this get no factor (identity).
      grafting: "adam" (per leaf, the norm of ``G / (sqrt(v_hat) + graft_eps)``) or "none".
      start_preconditioning_step: steps before this one use the momentum of the grafting update
        (``G / (sqrt(v_hat) + graft_eps)`` for "adam", ``G`` for "none"); the momentum of ``S``
        accumulates from step 1 all the same.
      precondition_1d: whether 1-D leaves get a factor.
      graft_eps: Adam's epsilon in the grafting update.
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
        graft_mu = tuple(
            jnp.zeros_like(z) if start > 1 and any(f is not None for f in fs) else None
            for z, fs in zip(jax.tree_util.tree_leaves(zeros), factors)
        )
        return ScaleByShampooState(
            count=jnp.zeros([], jnp.int32),
            mu=zeros,
            nu=zeros,
            graft_mu=graft_mu,
            factors=tuple(factors),
            inv_roots=tuple(roots),
        )

    def update_fn(updates, state: ScaleByShampooState, params=None):
        del params
        g_leaves, treedef = jax.tree_util.tree_flatten(updates)
        mu_leaves = treedef.flatten_up_to(state.mu)
        nu_leaves = treedef.flatten_up_to(state.nu)
        t = state.count + 1
        refresh = (t - 1) % freq == 0  # Google: every preconditioning_compute_steps from the start
        preconditioning = t >= start

        out, mus, nus, graft_mus, factors, roots = [], [], [], [], [], []
        per_leaf = zip(
            g_leaves, mu_leaves, nu_leaves, state.graft_mu, state.factors, state.inv_roots
        )
        for g_raw, m, v, mg, fs, rs in per_leaf:
            dt = m.dtype
            g = g_raw.astype(dt)
            tf = t.astype(dt)
            momentum_bc = 1.0 - jnp.asarray(b1, dt) ** tf
            if grafting == "adam":
                v = b2 * v + (1.0 - b2) * g * g
                v_hat = v / (1.0 - jnp.asarray(b2, dt) ** tf)
                graft = g / (jnp.sqrt(v_hat) + graft_eps)
            else:
                graft = g

            fs = tuple(
                None if f is None else shampoo_beta * f + (1.0 - shampoo_beta) * gram(g, axis)
                for axis, f in enumerate(fs)
            )
            n_factors = sum(f is not None for f in fs)
            if n_factors:
                exponent = 1.0 / (2 * n_factors)
                bc = 1.0 - jnp.asarray(shampoo_beta, dt) ** tf

                def recompute(rs, fs=fs, exponent=exponent, bc=bc):
                    return tuple(
                        None if f is None else _inverse_root(f / bc, exponent, eps, r)
                        for f, r in zip(fs, rs)
                    )

                rs = jax.lax.cond(refresh, recompute, lambda rs: rs, rs)
                precond = g
                for axis, r in enumerate(rs):
                    if r is not None:
                        precond = contract_axis(precond, r, axis)
                if grafting == "adam":
                    p_norm = _norm(precond)
                    safe = jnp.where(p_norm > 0, p_norm, 1.0)
                    s = precond * jnp.where(p_norm > 0, _norm(graft) / safe, 0.0)
                else:
                    s = precond
            else:
                s = graft  # no factor: the grafting update itself

            m = b1 * m + (1.0 - b1) * s
            u = m / momentum_bc
            if mg is not None:
                mg = b1 * mg + (1.0 - b1) * graft
                u = jnp.where(preconditioning, u, mg / momentum_bc)
            out.append(u.astype(g_raw.dtype))
            mus.append(m)
            nus.append(v)
            graft_mus.append(mg)
            factors.append(fs)
            roots.append(rs)

        new_state = ScaleByShampooState(
            count=optax.safe_increment(state.count),
            mu=treedef.unflatten(mus),
            nu=treedef.unflatten(nus),
            graft_mu=tuple(graft_mus),
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
    eps: float = DEFAULT_EPS,
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
