"""Dense quasi-Newton directions as optax transformations: BFGS and the self-scaled Broyden family.

``scale_by_quasi_newton(variant)`` keeps a dense approximation ``H`` of the inverse Hessian over the
flattened parameters and turns a gradient ``g`` into the direction ``-H g``; chain it with a line
search (``optax.scale_by_zoom_linesearch``, which satisfies the strong Wolfe conditions) for a
complete method::

    opt = optax.chain(scale_by_quasi_newton("ssbroyden"),
                      optax.scale_by_zoom_linesearch(max_linesearch_steps=30, initial_guess_strategy="one"))

(``initial_guess_strategy="one"``: a quasi-Newton step is sized for alpha = 1; optax's default, "keep",
starts from the previous step's alpha and converges only linearly here.) Meant for small networks in float64 (issue 20: a few thousand parameters); ``H`` is n x n.

The update after a step ``s = x_{k+1} - x_k`` with gradient change ``y = g_{k+1} - g_k``
(``ys = yᵀs``, ``Hy = H y``, ``yHy = yᵀ H y``, ``v = s / ys - Hy / yHy``) is the self-scaled
Broyden family::

    H+ = (H - Hy Hyᵀ / yHy + phi yHy v vᵀ) / tau + s sᵀ / ys

with ``phi = 1, tau = 1`` for BFGS. The self-scaled variants follow Urbán, Stefanou and Pons (J.
Comput. Phys. 2025), in the form of the ssbroyden-optimistix package: with ``alpha`` the last step's
length along its direction ``d`` (``s = alpha d``), ``h = yHy / ys``, ``b = -alpha sᵀg_k / ys``
(= sᵀ H_k^{-1} s / ys) and ``a = b h - 1``,

* SSBroyden: ``c = sqrt(|a / (1 + a)|)``, ``rho- = min(1, h (1 - c))``,
  ``theta = max((rho- - 1) / a, min(1 / rho-, (1 - b) / b))``, ``phi = (1 - theta) / (1 + a theta)``;
* SSBFGS: ``theta = 0``, ``phi = 1``;
* tau, both: ``h / (1 + a theta)`` at the first update; after it, with ``sigma = 1 + a theta``,
  ``rho = min(1, 1 / b)`` and N the number of parameters, ``min(rho sigma^(1/(1-N)), sigma)`` when
  ``theta <= 0``, else ``rho min(sigma^(1/(1-N)), 1 / theta)`` (SSBFGS: ``min(1, 1 / b)``).

Why pinnrun has its own (issue 20 asked to check first): optimistix has BFGS, and the
``ssbroyden-optimistix`` package adds SSBFGS and SSBroyden to it, but both run as optimistix solvers
(``optx.minimise``, its own loop over one fixed objective), not as an optax init/update pair that
pinnrun's jitted ``lax.scan`` step, frozen-batch redraws and Orbax checkpoints can hold; and importing
``ssbroyden-optimistix`` switches JAX to float64 for the whole process, which would break pinnrun's
float32 phases beside a float64 one. jinns' second-order optimizers belong to jinns' own training
loop and equinox models. Each would add dependencies for some 60 lines of algebra, which the tests
check against hand computations and textbook convergence.

Guards: the update is skipped (H kept) when the curvature condition fails (``ys <= eps |s| |y|``)
or anything is not finite; ``state.skipped`` counts the skips.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax
from jax.flatten_util import ravel_pytree

VARIANTS = ("bfgs", "ssbfgs", "ssbroyden")


class QuasiNewtonState(NamedTuple):
    count: jax.Array               # calls so far
    inverse_hessian: jax.Array     # [n, n]
    previous_params: jax.Array     # [n], flattened, at the previous call
    previous_grad: jax.Array       # [n]
    previous_direction: jax.Array  # [n], the direction returned at the previous call
    updates: jax.Array             # updates of H made
    skipped: jax.Array             # updates of H skipped by the guards


def scaling(variant: str, s, g_previous, d_previous, yHy, ys, first, n: int):
    """``(phi, tau)`` of the self-scaled Broyden update (module docstring)."""
    one = jnp.ones([], ys.dtype)
    if variant == "bfgs":
        return one, one
    alpha = jnp.dot(s, d_previous) / jnp.maximum(jnp.dot(d_previous, d_previous), jnp.finfo(ys.dtype).tiny)
    b = -alpha * jnp.dot(s, g_previous) / ys
    h = yHy / ys
    a = b * h - 1.0
    if variant == "ssbfgs":
        theta = jnp.zeros([], ys.dtype)
    else:
        c = jnp.sqrt(jnp.abs(a / (1.0 + a)))
        rho_minus = jnp.minimum(1.0, h * (1.0 - c))
        theta = jnp.maximum((rho_minus - 1.0) / a, jnp.minimum(1.0 / rho_minus, (1.0 - b) / b))
    sigma = 1.0 + a * theta
    rho = jnp.minimum(1.0, 1.0 / b)
    root = jnp.abs(sigma) ** (1.0 / (1.0 - n)) if n > 1 else one
    later = jnp.where(theta <= 0, jnp.minimum(rho * root, sigma), rho * jnp.minimum(root, 1.0 / jnp.where(theta > 0, theta, 1.0)))
    tau = jnp.where(first, h / sigma, later)
    return (1.0 - theta) / sigma, tau


def scale_by_quasi_newton(variant: str = "bfgs", curvature_eps: float = 1e-10) -> optax.GradientTransformationExtraArgs:
    """The direction ``-H g`` of a dense quasi-Newton method (``variant`` in ``VARIANTS``)."""
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {', '.join(VARIANTS)}; got {variant!r}")

    def init(params):
        flat, _ = ravel_pytree(params)
        zero = jnp.zeros([], jnp.int32)
        return QuasiNewtonState(zero, jnp.eye(flat.size, dtype=flat.dtype), flat, jnp.zeros_like(flat), jnp.zeros_like(flat),
                                zero, zero)

    def update(grads, state, params=None, **extra):
        del extra
        if params is None:
            raise ValueError("scale_by_quasi_newton needs the parameters (optax.update(grads, state, params))")
        g, unravel = ravel_pytree(grads)
        x, _ = ravel_pytree(params)
        s, y = x - state.previous_params, g - state.previous_grad
        ys = jnp.dot(y, s)
        H = state.inverse_hessian
        Hy = H @ y
        yHy = jnp.dot(y, Hy)
        ok = (state.count > 0) & (ys > curvature_eps * jnp.linalg.norm(s) * jnp.linalg.norm(y)) & (yHy > 0)
        safe_ys, safe_yHy = jnp.where(ok, ys, 1.0), jnp.where(ok, yHy, 1.0)
        phi, tau = scaling(variant, s, state.previous_grad, state.previous_direction, safe_yHy, safe_ys,
                           state.updates == 0, x.size)
        v = s / safe_ys - Hy / safe_yHy
        new_H = (H - jnp.outer(Hy, Hy) / safe_yHy + phi * safe_yHy * jnp.outer(v, v)) / tau + jnp.outer(s, s) / safe_ys
        ok = ok & jnp.all(jnp.isfinite(new_H)) & jnp.isfinite(tau) & (tau > 0)
        H = jnp.where(ok, new_H, H)
        direction = -(H @ g)
        new_state = QuasiNewtonState(state.count + 1, H, x, g, direction, state.updates + jnp.where(ok, 1, 0),
                                     state.skipped + jnp.where((state.count > 0) & ~ok, 1, 0))
        return unravel(direction), new_state

    return optax.GradientTransformationExtraArgs(init, update)


def restart_pairs(state: QuasiNewtonState) -> QuasiNewtonState:
    """Keep ``H`` but make no update from the next call's pair: after the objective changed (a new
    collocation batch), the gradient change ``y`` would mix two objectives. The self-scaling goes on
    as after its first update."""
    return state._replace(count=jnp.zeros_like(state.count))


def find_state(tree) -> QuasiNewtonState | None:
    """The first ``QuasiNewtonState`` inside an optimizer state (a chain's tuple, a phase's wrapper)."""
    if isinstance(tree, QuasiNewtonState):
        return tree
    if isinstance(tree, (tuple, list)):
        for item in tree:
            found = find_state(item)
            if found is not None:
                return found
    return None


def apply_inverse_hessian(state: QuasiNewtonState, grads):
    """``H g`` for a gradient pytree like the parameters (the method's preconditioned gradient)."""
    flat, unravel = ravel_pytree(grads)
    return unravel(state.inverse_hessian @ flat.astype(state.inverse_hessian.dtype))
