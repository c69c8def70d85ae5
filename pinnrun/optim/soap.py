"""SOAP: Adam run in the eigenbasis of Shampoo's Kronecker factors (Vyas et al. 2024).

This follows the December 2024 form of the algorithm, in which the first moment lives in the
rotated basis (Vyas et al., arXiv 2409.11321, and the authors' code, github.com/nikhilvyas/SOAP). For a leaf ``G`` of shape
``(d_1, ..., d_n)`` every dimension ``i`` with ``d_i <= max_precond_dim`` (1-D leaves only with
``precondition_1d``) owns a Kronecker factor and an orthogonal basis::

    F_i <- b_s F_i + (1 - b_s) G_(i) G_(i)^T        (G_(i): G unfolded along dimension i)
    Q_i  = eigenvectors of F_i, descending eigenvalue order (first call), later refreshed by
           one power-iteration step Q_i <- qr(F_i Q_i)

``rotate(X)`` contracts every preconditioned dimension ``i`` of ``X`` with ``Q_i`` (2-D:
``Q_L^T X Q_R``); ``rotate_back`` contracts with ``Q_i^T`` (2-D: ``Q_L X Q_R^T``). Dimensions
without a factor pass through unchanged. A later call then does::

    G' = rotate(G)
    m  <- b1 m + (1 - b1) G'            (rotated basis)
    v  <- b2 v + (1 - b2) G'^2          (rotated basis)
    u   = sqrt(1 - b2^t) / (1 - b1^t) * rotate_back(m / (sqrt(v) + eps))

with ``t`` the number of real updates (the first, initialising call does not count), and
``p <- p - lr u - lr wd p`` in :func:`soap`. The factors are then updated with the raw ``G`` and
every ``precondition_frequency`` updates the bases are refreshed (see :func:`_refresh_basis`),
after which ``m`` is re-expressed in the new basis. Every call takes the same code path (the
first one's moments, count and update are masked), so a scan of steps holds one ``lax.cond``:
the rebuild of all bases, by eigh on the first call and by power iteration afterwards.

Public API: :func:`soap`, :func:`scale_by_soap`, :class:`ScaleBySoapState`,
:func:`precondition_without_momentum` and :func:`find_soap_state`.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Optional

import jax
import jax.numpy as jnp
import optax

from pinnrun.optim.kronecker import (
    HIGHEST,
    LeafMats,
    contract_axis,
    factored_dims,
    gram,
    init_factors,
    zeros_like_wide,
)

# Per leaf, one entry per dimension: an array (the factor / basis) or None (no preconditioning).


class ScaleBySoapState(NamedTuple):
    """State of :func:`scale_by_soap`.

    Attributes:
      count: number of real updates done so far (the initialising first call is not counted);
        int32 scalar. This is ``t`` of the bias correction.
      initialised: bool scalar, False until the first call has built factors and bases.
      mu: first moment ``m``, same tree structure as the params, kept in the rotated basis.
      nu: second moment ``v``, same tree structure as the params, in the rotated basis.
      factors: tuple over the params' leaves (``jax.tree_util.tree_leaves`` order) of tuples over
        each leaf's dimensions: the Kronecker factor ``F_i`` (d_i x d_i) or ``None``.
      bases: same layout as ``factors``: the orthogonal basis ``Q_i`` or ``None``.
      b2: the optimiser's ``b2`` (float32 scalar), kept so the preconditioner can be applied on
        its own by :func:`precondition_without_momentum`.
      eps: the optimiser's ``eps`` (float32 scalar), same reason.
    """

    count: jax.Array
    initialised: jax.Array
    mu: Any
    nu: Any
    factors: tuple
    bases: tuple
    b2: jax.Array
    eps: jax.Array


# ----------------------------------------------------------------------------------------------
# Small linear-algebra helpers (all contractions at highest precision).


def _rotate(x: jax.Array, bases: LeafMats) -> jax.Array:
    """Into the eigenbasis: 2-D ``Q_L^T X Q_R``; dimensions without a basis pass through."""
    for axis, q in enumerate(bases):
        if q is not None:
            x = contract_axis(x, q, axis, transpose=False)
    return x


def _rotate_back(x: jax.Array, bases: LeafMats) -> jax.Array:
    """Back to the original basis: 2-D ``Q_L X Q_R^T``."""
    for axis, q in enumerate(bases):
        if q is not None:
            x = contract_axis(x, q, axis, transpose=True)
    return x


def _all_finite(x: jax.Array) -> jax.Array:
    return jnp.all(jnp.isfinite(x))


def _initial_basis(factor: jax.Array, previous: jax.Array) -> jax.Array:
    """Eigenvectors of ``factor`` in descending eigenvalue order; ``previous`` if not finite."""
    _, vecs = jnp.linalg.eigh(factor)  # ascending eigenvalues
    vecs = vecs[:, ::-1]
    return jnp.where(_all_finite(vecs), vecs, previous)


def _refresh_basis(factor: jax.Array, q: jax.Array, nu: jax.Array, axis: int):
    """One power-iteration refresh of a basis, permuting the second moment to match.

    The eigenvalues in the current basis are estimated as ``diag(Q^T F Q)``; the columns of Q
    (and ``v`` along ``axis``) are sorted by them in descending order, then
    ``Q <- qr(F Q_sorted).Q``. If the QR result is not finite, Q and ``v`` are left unchanged.
    """
    est = jnp.einsum("ij,ik,kj->j", q, factor, q, precision=HIGHEST)  # diag(Q^T F Q)
    order = jnp.argsort(-est)
    q_sorted = q[:, order]
    q_new, _ = jnp.linalg.qr(jnp.matmul(factor, q_sorted, precision=HIGHEST))
    ok = _all_finite(q_new)
    q_out = jnp.where(ok, q_new, q)
    nu_out = jnp.where(ok, jnp.take(nu, order, axis=axis), nu)
    return q_out, nu_out


# ----------------------------------------------------------------------------------------------
# The transformation.


def scale_by_soap(
    b1: float = 0.95,
    b2: float = 0.95,
    shampoo_beta: float = -1.0,
    eps: float = 1e-8,
    precondition_frequency: int = 10,
    max_precond_dim: int = 10000,
    precondition_1d: bool = False,
) -> optax.GradientTransformation:
    """SOAP's preconditioned, bias-corrected direction (no learning rate, no weight decay).

    Returns ``u = sqrt(1 - b2^t) / (1 - b1^t) * rotate_back(m / (sqrt(v) + eps))`` (to be scaled
    by ``-lr``, e.g. with ``optax.scale_by_learning_rate``). The first call only builds the
    factors ``(1 - b_s) G_(i) G_(i)^T`` and their eigenbases and returns zeros.

    Args:
      b1, b2: moment decay rates (Adam's beta1/beta2).
      shampoo_beta: decay rate ``b_s`` of the Kronecker factors; negative means use ``b2``.
      eps: added to ``sqrt(v)``.
      precondition_frequency: refresh the bases every this many updates.
      max_precond_dim: dimensions larger than this get no factor (identity rotation).
      precondition_1d: whether 1-D leaves get a factor.
    """
    # jnp.where / no int(): the numeric hyperparameters may be arrays (optax.inject_hyperparams);
    # max_precond_dim and precondition_1d decide shapes and must be static.
    bs = jnp.where(jnp.asarray(shampoo_beta) < 0, b2, shampoo_beta)
    freq = precondition_frequency
    if isinstance(freq, int) and freq < 1:
        raise ValueError(f"precondition_frequency must be >= 1, got {precondition_frequency}")

    def init_fn(params):
        # Identity bases: the fallback if the very first eigh is not finite.
        factors, bases = init_factors(params, lambda shape: factored_dims(shape, max_precond_dim, precondition_1d))
        zeros = zeros_like_wide(params)
        return ScaleBySoapState(
            count=jnp.zeros([], jnp.int32),
            initialised=jnp.zeros([], bool),
            mu=zeros,
            nu=zeros,
            factors=tuple(factors),
            bases=tuple(bases),
            b2=jnp.asarray(b2, jnp.float32),
            eps=jnp.asarray(eps, jnp.float32),
        )

    def new_bases(operands):
        """The bases after the factors' update: their eigenvectors on the first call, else one
        power-iteration refresh; m is re-expressed in the new basis and v permuted with it."""
        first, mus, nus, factors, bases = operands

        def eigenbases(_):
            return mus, nus, tuple(
                tuple(None if f is None else _initial_basis(f, q) for f, q in zip(fs, qs))
                for fs, qs in zip(factors, bases)
            )

        def refreshed(_):
            out_m, out_v, out_q = [], [], []
            for m, v, fs, qs in zip(mus, nus, factors, bases):
                m_orig = _rotate_back(m, qs)  # m back to the original basis
                new_qs = []
                for axis, (f, q) in enumerate(zip(fs, qs)):
                    if f is None:
                        new_qs.append(None)
                        continue
                    q, v = _refresh_basis(f, q, v, axis)
                    new_qs.append(q)
                new_qs = tuple(new_qs)
                out_m.append(_rotate(m_orig, new_qs))
                out_v.append(v)
                out_q.append(new_qs)
            return tuple(out_m), tuple(out_v), tuple(out_q)

        return jax.lax.cond(first, eigenbases, refreshed, None)

    def update_fn(grads, state: ScaleBySoapState, params=None):
        # One code path for every call, so a scan of steps holds a single cond (the bases'
        # rebuild, taken on the first call and every precondition_frequency updates) instead of
        # one around the whole update plus one per factored leaf. The first call only builds
        # the factors and their eigenbases: its moments, count and update are masked out.
        del params
        g_leaves, treedef = jax.tree_util.tree_flatten(grads)
        mu_leaves = treedef.flatten_up_to(state.mu)
        nu_leaves = treedef.flatten_up_to(state.nu)
        first = jnp.logical_not(state.initialised)
        t = state.count + 1
        rebuild = jnp.logical_or(first, (t % freq) == 0)

        updates, mus, nus, factors = [], [], [], []
        for g_raw, m_old, v_old, fs, qs in zip(g_leaves, mu_leaves, nu_leaves, state.factors, state.bases):
            g = g_raw.astype(m_old.dtype)
            g_rot = _rotate(g, qs)
            m = b1 * m_old + (1.0 - b1) * g_rot
            v = b2 * v_old + (1.0 - b2) * g_rot * g_rot
            u = _rotate_back(m / (jnp.sqrt(v) + eps), qs)
            # Step-size factor of bias-corrected Adam, in the leaf's compute dtype.
            tf = t.astype(m.dtype)
            corr = jnp.sqrt(1.0 - jnp.asarray(b2, m.dtype) ** tf) / (
                1.0 - jnp.asarray(b1, m.dtype) ** tf
            )
            updates.append(jnp.where(first, 0.0, corr * u).astype(g_raw.dtype))
            mus.append(jnp.where(first, m_old, m))
            nus.append(jnp.where(first, v_old, v))
            # Factors with the raw gradient (on the first call they start from zero).
            factors.append(tuple(
                None if f is None else bs * f + (1.0 - bs) * gram(g, axis).astype(f.dtype)
                for axis, f in enumerate(fs)
            ))
        factors, bases = tuple(factors), state.bases
        mus, nus = tuple(mus), tuple(nus)
        if any(f is not None for fs in factors for f in fs):
            # Without a rebuild the basis is unchanged, so m needs no re-expression.
            mus, nus, bases = jax.lax.cond(
                rebuild, new_bases, lambda ops: (ops[1], ops[2], ops[4]), (first, mus, nus, factors, bases)
            )

        new_state = state._replace(
            count=jnp.where(first, state.count, optax.safe_increment(state.count)),
            initialised=jnp.ones([], bool),
            mu=treedef.unflatten(mus),
            nu=treedef.unflatten(nus),
            factors=factors,
            bases=tuple(bases),
        )
        return treedef.unflatten(updates), new_state

    return optax.GradientTransformation(init_fn, update_fn)


def _zero_until_soap_initialised(
    inner: optax.GradientTransformation,
) -> optax.GradientTransformation:
    """Wrap a chain whose first element is :func:`scale_by_soap` so that its output is exactly
    zero while (before this call) the SOAP state was not initialised, i.e. on the first call.

    This keeps later transforms in the chain (e.g. weight decay) from moving the params on the
    initialising call.
    """

    def update_fn(updates, state, params=None):
        was_initialised = state[0].initialised
        new_updates, new_state = inner.update(updates, state, params)
        new_updates = jax.tree.map(
            lambda u: jnp.where(was_initialised, u, jnp.zeros_like(u)), new_updates
        )
        return new_updates, new_state

    return optax.GradientTransformation(inner.init, update_fn)


def soap(
    learning_rate,
    b1: float = 0.95,
    b2: float = 0.95,
    shampoo_beta: float = -1.0,
    eps: float = 1e-8,
    weight_decay: float = 0.01,
    precondition_frequency: int = 10,
    max_precond_dim: int = 10000,
    precondition_1d: bool = False,
) -> optax.GradientTransformation:
    """The SOAP optimiser with decoupled weight decay.

    ``p <- p - lr * u - lr * weight_decay * p`` with ``u`` from :func:`scale_by_soap` (the
    weight decay uses the un-corrected ``lr`` and the pre-update ``p``). The first call builds
    the preconditioner and moves nothing (no weight decay either).

    ``learning_rate`` may be a float or an optax schedule; the schedule is evaluated at the
    number of calls so far (the initialising call counts, as for any optax schedule, so the
    first real update uses ``schedule(1)``). ``update`` needs ``params`` (for the weight decay),
    as with ``optax.adamw``. See :func:`scale_by_soap` for the other arguments.
    """
    inner = optax.chain(
        scale_by_soap(
            b1=b1,
            b2=b2,
            shampoo_beta=shampoo_beta,
            eps=eps,
            precondition_frequency=precondition_frequency,
            max_precond_dim=max_precond_dim,
            precondition_1d=precondition_1d,
        ),
        optax.add_decayed_weights(weight_decay),
        optax.scale_by_learning_rate(learning_rate),
    )
    return _zero_until_soap_initialised(inner)


# ----------------------------------------------------------------------------------------------
# Helpers for diagnostics.


def precondition_without_momentum(state: ScaleBySoapState, grads, eps: Optional[float] = None):
    """Apply SOAP's current preconditioner, without momentum, to a gradient pytree.

    ``P g = rotate_back(rotate(g) / (sqrt(v_hat) + eps))`` with ``v_hat = v / (1 - b2^t)``, the
    same bias correction as the update (``t = state.count``; before the first real update
    ``v = 0`` and no correction is applied, so ``P g = rotate_back(rotate(g)) / eps``).
    ``eps`` defaults to the optimiser's. Used for the preconditioned gradient-alignment score.
    """
    eps = state.eps if eps is None else eps
    g_leaves, treedef = jax.tree_util.tree_flatten(grads)
    nu_leaves = treedef.flatten_up_to(state.nu)
    tf = state.count.astype(jnp.float32)
    bc2 = jnp.where(state.count > 0, 1.0 - state.b2**tf, 1.0)
    out = []
    for g_raw, v, qs in zip(g_leaves, nu_leaves, state.bases):
        g = g_raw.astype(v.dtype)
        v_hat = v / bc2.astype(v.dtype)
        p = _rotate_back(_rotate(g, qs) / (jnp.sqrt(v_hat) + eps), qs)
        out.append(p.astype(g_raw.dtype))
    return treedef.unflatten(out)


def find_soap_state(opt_state) -> Optional[ScaleBySoapState]:
    """The first :class:`ScaleBySoapState` inside an arbitrary (chained, wrapped, nested) optax
    state, or None if there is none."""
    nodes = jax.tree_util.tree_leaves(
        opt_state, is_leaf=lambda x: isinstance(x, ScaleBySoapState)
    )
    for node in nodes:
        if isinstance(node, ScaleBySoapState):
            return node
    return None
