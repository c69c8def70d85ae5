"""The step of one stage's optimizer (pinnrun.stages plans the stages: phases, windows, curricula).

Each stage turns into a ``PhaseStepper``: ``init(params, key) -> opt_state`` and a pure
``step(state) -> (state, outputs)``.

Gradient optimizers (Adam, SOAP, Shampoo) re-sample collocation points every step. L-BFGS needs one
deterministic function for its line search, so it trains on a frozen batch (points and causal
weights), re-sampled every ``resample_every`` steps, when its memory is reset as well.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from pinnrun.losses import PINNLoss

LBFGS_KEYS = ("memory_size", "resample_every", "max_linesearch_steps")


class LbfgsState(NamedTuple):
    inner: Any  # optax.lbfgs state
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


def lbfgs_stepper(loss: PINNLoss, cfg: Mapping[str, Any], fixed_points) -> PhaseStepper:
    """optax.lbfgs with its zoom line search on a frozen batch, re-drawn every resample_every steps."""
    optimizer = make_lbfgs(int(cfg.get("memory_size", 50)), int(cfg.get("max_linesearch_steps", 20)))
    resample_every = int(cfg.get("resample_every", 1000))

    def draw(params, key, context):
        batch = loss.sample(key, fixed_points, context)
        return batch, loss.causal_weights(params, batch)

    def init(params, key, context):
        batch, causal = draw(params, key, context)
        return LbfgsState(optimizer.init(params), batch, causal, jnp.asarray(0, jnp.int32))

    def step(state):
        lb = state.opt_state
        key, sample_key = jax.random.split(state.key)

        def redraw(_):
            batch, causal = draw(state.params, sample_key, state.context)
            return LbfgsState(optimizer.init(state.params), batch, causal, jnp.asarray(0, jnp.int32))

        lb = jax.lax.cond(lb.age >= resample_every, redraw, lambda _: lb, None)

        def objective(params):
            return loss.total(params, state.weights, lb.batch, lb.causal_weights)[0]

        value, grads = optax.value_and_grad_from_state(objective)(state.params, state=lb.inner)
        updates, inner = optimizer.update(
            grads, lb.inner, state.params, value=value, grad=grads, value_fn=objective
        )
        params = optax.apply_updates(state.params, updates)
        new_lb = LbfgsState(inner, lb.batch, lb.causal_weights, lb.age + 1)
        new_state = state._replace(step=state.step + 1, params=params, opt_state=new_lb, key=key)
        # The loss per term is not needed by L-BFGS: evaluated once per chunk, in chunk_losses.
        return new_state, (value, None, None, updates, grads)

    def chunk_losses(state):
        lb = state.opt_state
        total, (losses, diagnostics) = loss.total(state.params, state.weights, lb.batch, lb.causal_weights)
        return total, losses, diagnostics

    return PhaseStepper(init, step, chunk_losses)


def build_stepper(stage, loss: PINNLoss, fixed_points, lr_scale: float = 1.0) -> PhaseStepper:
    """The stepper of a stage: its optimizer with the learning rate scaled by ``lr_scale`` (rollbacks)
    and its schedule shifted to the stage's learning-rate clock."""
    from pinnrun.optim.factory import build_optimizer

    if stage.is_lbfgs:
        return lbfgs_stepper(loss, stage.optim, fixed_points)
    cfg = stage.optim if lr_scale == 1.0 else {**stage.optim, "lr": stage.optim["lr"] * lr_scale}
    optimizer, _ = build_optimizer(cfg, schedule_offset=stage.schedule_offset)
    return gradient_stepper(loss, optimizer, fixed_points)
