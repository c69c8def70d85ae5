"""The step of one stage's optimizer (pinnrun.stages plans the stages: phases, windows, curricula).

Each stage turns into a ``PhaseStepper``: ``init(params, key) -> opt_state`` and a pure
``step(state) -> (state, outputs)``.

Gradient optimizers (Adam, SOAP, Shampoo) re-sample collocation points every step. Line-search
methods (L-BFGS, and the dense quasi-Newton methods BFGS, SSBFGS and SSBroyden) need one deterministic
function for their line search, so they train on a frozen batch (points and causal weights), drawn
again every ``resample_every`` steps: uniformly, as the gradient optimizers draw, or by residual-based
adaptive resampling (``resample: rad``, Wu et al. 2023). A new batch resets L-BFGS's memory; the dense
methods keep their inverse-Hessian approximation and skip only the one update whose gradient change
would straddle the two batches (``quasi_newton.restart_pairs``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from pinnrun.losses import PINNLoss
from pinnrun.optim import quasi_newton

# The frozen-batch keys every line-search method has.
FROZEN_BATCH_KEYS = ("resample_every", "max_linesearch_steps", "resample", "rad_pool", "rad_k", "rad_c")
RESAMPLE_MODES = ("uniform", "rad")
LBFGS_KEYS = ("memory_size", *FROZEN_BATCH_KEYS)
# Dense methods: the curvature guard's tolerance and the cap on the parameter count (H is n x n).
DENSE_KEYS = (*FROZEN_BATCH_KEYS, "curvature_eps", "max_params")
DENSE_METHODS = quasi_newton.VARIANTS   # bfgs, ssbfgs, ssbroyden
LINE_SEARCH_METHODS = ("lbfgs", *DENSE_METHODS)
DEFAULT_MAX_PARAMS = 5000


def line_search_keys(name: str) -> tuple[str, ...]:
    return LBFGS_KEYS if name == "lbfgs" else DENSE_KEYS


class FrozenBatchState(NamedTuple):
    inner: Any  # the line-search method's state (optax.lbfgs, or a dense quasi-Newton chain)
    batch: Any  # the frozen collocation batch (losses.Batch)
    causal_weights: dict  # point set -> frozen causal weights
    age: jax.Array  # steps since the batch was drawn


@dataclasses.dataclass(frozen=True)
class PhaseStepper:
    """init(params, key, context) -> opt_state; step(state) -> (state, (total, losses, diagnostics, updates, grads)),
    ``grads`` the step's raw gradient of the weighted loss (the trainer's inter-step alignment).

    A step may return None for losses and diagnostics; then ``chunk_losses(state) -> (total, losses,
    diagnostics)`` gives the figures to log, once per chunk.
    """

    init: Callable[[Any, jax.Array], Any]
    step: Callable[[Any], Any]
    chunk_losses: Callable[[Any], Any] | None = None


def gradient_stepper(loss: PINNLoss, optimizer: optax.GradientTransformation, fixed_points) -> PhaseStepper:
    """Sample fresh points, differentiate the weighted loss, apply the optimizer's update."""

    def init(params, key, context):
        return optimizer.init(params)

    def step(state):
        key, sample_key = jax.random.split(state.key)
        batch = loss.sample(sample_key, fixed_points, state.context)
        (total, (losses, diagnostics)), grads = jax.value_and_grad(loss.total, has_aux=True)(
            state.params, state.weights, batch
        )
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        new_state = state._replace(step=state.step + 1, params=params, opt_state=opt_state, key=key)
        return new_state, (total, losses, diagnostics, updates, grads)

    return PhaseStepper(init, step)


def make_lbfgs(memory_size: int = 50, max_linesearch_steps: int = 20) -> optax.GradientTransformationExtraArgs:
    """optax.lbfgs with the zoom line search (strong Wolfe conditions)."""
    return optax.lbfgs(
        memory_size=memory_size,
        linesearch=optax.scale_by_zoom_linesearch(max_linesearch_steps=max_linesearch_steps),
    )


def make_dense_quasi_newton(variant: str, max_linesearch_steps: int = 20, curvature_eps: float = 1e-10) -> optax.GradientTransformationExtraArgs:
    """A dense quasi-Newton direction with the zoom line search, first trying the full step (alpha = 1)."""
    return optax.chain(
        quasi_newton.scale_by_quasi_newton(variant, curvature_eps=curvature_eps),
        optax.scale_by_zoom_linesearch(max_linesearch_steps=max_linesearch_steps, initial_guess_strategy="one"),
    )


def rad_sample(loss: PINNLoss, params, key, fixed_points, context, pool: int, k: float, c: float):
    """A batch drawn by residual-based adaptive resampling (RAD; Wu, Zhu, Tan, Kartha, Lu 2023): for
    each non-fixed residual set, ``pool`` times its points are drawn uniformly and a batch's worth of
    them kept, without repeats, with probability p(z) proportional to e(z)^k / mean(e^k) + c, e(z)
    the root of the sum over the set's terms of the squared residuals at z. Every other set is drawn
    as in an ordinary batch."""
    batch_key, pool_key, pick_key = jax.random.split(key, 3)
    batch = loss.sample(batch_key, fixed_points, context)
    context = batch.context
    f = lambda z: loss.apply(params, z)  # noqa: E731
    points = dict(batch.points)
    sets = [ps for ps in loss.point_sets if ps.kind == "residual" and not ps.fixed]
    for ps, draw, pick in zip(sets, jax.random.split(pool_key, len(sets)), jax.random.split(pick_key, len(sets))):
        count = points[ps.name].shape[0]
        candidates = loss.shard(loss.to_window(ps.sample(draw, pool * count).astype(loss.dtype), context.time_range))
        residuals = jax.vmap(lambda z, ps=ps: ps.evaluate(f, z, None))(candidates)
        error = jnp.sqrt(sum(jnp.sum(residuals[t].reshape(pool * count, -1) ** 2, axis=-1) for t in ps.terms))
        density = error**k / jnp.maximum(jnp.mean(error**k), jnp.finfo(error.dtype).tiny) + c
        index = jax.random.choice(pick, pool * count, (count,), replace=False, p=density / jnp.sum(density))
        points[ps.name] = candidates[index]
    return batch._replace(points=points)


def frozen_batch_stepper(loss: PINNLoss, cfg: Mapping[str, Any], fixed_points) -> PhaseStepper:
    """A line-search method (``cfg["name"]`` in LINE_SEARCH_METHODS) on a frozen batch, drawn again
    every ``resample_every`` steps."""
    name = cfg["name"]
    max_ls = int(cfg.get("max_linesearch_steps", 20))
    if name == "lbfgs":
        optimizer = make_lbfgs(int(cfg.get("memory_size", 50)), max_ls)
    else:
        optimizer = make_dense_quasi_newton(name, max_ls, float(cfg.get("curvature_eps", 1e-10)))
    resample_every = int(cfg.get("resample_every", 1000))
    adaptive = cfg.get("resample", "uniform") == "rad"
    pool, k, c = int(cfg.get("rad_pool", 4)), float(cfg.get("rad_k", 1.0)), float(cfg.get("rad_c", 1.0))

    def draw(params, key, context):
        if adaptive:
            batch = rad_sample(loss, params, key, fixed_points, context, pool, k, c)
        else:
            batch = loss.sample(key, fixed_points, context)
        return batch, loss.causal_weights(params, batch)

    def init(params, key, context):
        batch, causal = draw(params, key, context)
        return FrozenBatchState(optimizer.init(params), batch, causal, jnp.asarray(0, jnp.int32))

    def fresh_inner(inner, params):
        if name == "lbfgs":   # a new memory
            return optimizer.init(params)
        qn, _ = inner   # the dense methods keep H; the line search starts afresh
        return (quasi_newton.restart_pairs(qn), optimizer.init(params)[1])

    def step(state):
        lb = state.opt_state
        key, sample_key = jax.random.split(state.key)

        def redraw(_):
            batch, causal = draw(state.params, sample_key, state.context)
            return FrozenBatchState(fresh_inner(lb.inner, state.params), batch, causal, jnp.asarray(0, jnp.int32))

        lb = jax.lax.cond(lb.age >= resample_every, redraw, lambda _: lb, None)

        def objective(params):
            return loss.total(params, state.weights, lb.batch, lb.causal_weights)[0]

        value, grads = optax.value_and_grad_from_state(objective)(state.params, state=lb.inner)
        updates, inner = optimizer.update(
            grads, lb.inner, state.params, value=value, grad=grads, value_fn=objective
        )
        params = optax.apply_updates(state.params, updates)
        new_lb = FrozenBatchState(inner, lb.batch, lb.causal_weights, lb.age + 1)
        new_state = state._replace(step=state.step + 1, params=params, opt_state=new_lb, key=key)
        # The loss per term is not needed by the line search: evaluated once per chunk, in chunk_losses.
        return new_state, (value, None, None, updates, grads)

    def chunk_losses(state):
        lb = state.opt_state
        total, (losses, diagnostics) = loss.total(state.params, state.weights, lb.batch, lb.causal_weights)
        qn = quasi_newton.find_state(lb.inner)
        if qn is not None:   # how often the curvature guard refused an update of H
            diagnostics = {**diagnostics, "qn/updates": qn.updates, "qn/skipped": qn.skipped}
        return total, losses, diagnostics

    return PhaseStepper(init, step, chunk_losses)


def build_stepper(stage, loss: PINNLoss, fixed_points, lr_scale: float = 1.0) -> PhaseStepper:
    """The stepper of a stage: its optimizer with the learning rate scaled by ``lr_scale`` (rollbacks)
    and its schedule shifted to the stage's learning-rate clock."""
    from pinnrun.optim.factory import build_optimizer

    if stage.uses_line_search:
        return frozen_batch_stepper(loss, stage.optim, fixed_points)
    cfg = stage.optim if lr_scale == 1.0 else {**stage.optim, "lr": stage.optim["lr"] * lr_scale}
    optimizer, _ = build_optimizer(cfg, schedule_offset=stage.schedule_offset)
    return gradient_stepper(loss, optimizer, fixed_points)
