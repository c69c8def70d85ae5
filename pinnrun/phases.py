"""Optimizer phases: a run is one or more phases, each with its own optimizer, step range and precision.

``optim=adam`` is a single phase. A phased config (``optim=adam_lbfgs``) lists phases; each entry is
an optimizer config plus ``steps`` (null: whatever the other phases leave of train.steps) and an
optional ``precision`` (float64 for a final polish, say). Each phase turns into a ``PhaseStepper``:
``init(params, key) -> opt_state`` and a pure ``step(state) -> (state, outputs)``.

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


@dataclasses.dataclass(frozen=True)
class Phase:
    index: int
    name: str
    start: int  # first step (inclusive)
    end: int  # last step (exclusive)
    cfg: Mapping[str, Any]
    precision: str

    @property
    def steps(self) -> int:
        return self.end - self.start


def phase_configs(optim_cfg: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The list of optimizer configs of a (possibly single-phase) optim config."""
    return list(optim_cfg["phases"]) if optim_cfg.get("phases") else [optim_cfg]


def plan_phases(optim_cfg: Mapping[str, Any], total_steps: int, precision: str) -> list[Phase]:
    """Step ranges of the phases; a phase with steps null takes what the others leave."""
    configs = phase_configs(optim_cfg)
    fixed = sum(int(c["steps"]) for c in configs if c.get("steps") is not None)
    open_phases = [c for c in configs if c.get("steps") is None]
    rest = total_steps - fixed
    if len(open_phases) > 1:
        raise ValueError("optim.phases: at most one phase may have steps: null")
    if rest < 0 or (not open_phases and rest != 0) or (open_phases and rest < 1):
        raise ValueError(
            f"optim.phases: the phases' steps ({fixed}) must leave at least one step of train.steps "
            f"({total_steps}) to the phase with steps: null, or add up to train.steps exactly"
        )
    phases, start = [], 0
    for i, c in enumerate(configs):
        steps = rest if c.get("steps") is None else int(c["steps"])
        phases.append(Phase(i, c["name"], start, start + steps, c, c.get("precision") or precision))
        start += steps
    return phases


class LbfgsState(NamedTuple):
    inner: Any  # optax.lbfgs state
    points: dict  # the frozen collocation batch
    causal_weights: dict  # point set -> frozen causal weights
    age: jax.Array  # steps since the batch was drawn


@dataclasses.dataclass(frozen=True)
class PhaseStepper:
    """init(params, key) -> opt_state; step(state) -> (state, (total, losses, diagnostics, updates)).

    A step may return None for losses and diagnostics; then ``chunk_losses(state) -> (total, losses,
    diagnostics)`` gives the figures to log, once per chunk.
    """

    init: Callable[[Any, jax.Array], Any]
    step: Callable[[Any], Any]
    chunk_losses: Callable[[Any], Any] | None = None


def gradient_stepper(loss: PINNLoss, optimizer: optax.GradientTransformation, fixed_points) -> PhaseStepper:
    """Sample fresh points, differentiate the weighted loss, apply the optimizer's update."""

    def init(params, key):
        return optimizer.init(params)

    def step(state):
        key, sample_key = jax.random.split(state.key)
        points = loss.sample(sample_key, fixed_points)
        (total, (losses, diagnostics)), grads = jax.value_and_grad(loss.total, has_aux=True)(
            state.params, state.weights, points
        )
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        new_state = state._replace(step=state.step + 1, params=params, opt_state=opt_state, key=key)
        return new_state, (total, losses, diagnostics, updates)

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

    def draw(params, key):
        points = loss.sample(key, fixed_points)
        return points, loss.causal_weights(params, points)

    def init(params, key):
        points, causal = draw(params, key)
        return LbfgsState(optimizer.init(params), points, causal, jnp.asarray(0, jnp.int32))

    def step(state):
        lb = state.opt_state
        key, sample_key = jax.random.split(state.key)

        def redraw(_):
            points, causal = draw(state.params, sample_key)
            return LbfgsState(optimizer.init(state.params), points, causal, jnp.asarray(0, jnp.int32))

        lb = jax.lax.cond(lb.age >= resample_every, redraw, lambda _: lb, None)

        def objective(params):
            return loss.total(params, state.weights, lb.points, lb.causal_weights)[0]

        value, grads = optax.value_and_grad_from_state(objective)(state.params, state=lb.inner)
        updates, inner = optimizer.update(
            grads, lb.inner, state.params, value=value, grad=grads, value_fn=objective
        )
        params = optax.apply_updates(state.params, updates)
        new_lb = LbfgsState(inner, lb.points, lb.causal_weights, lb.age + 1)
        new_state = state._replace(step=state.step + 1, params=params, opt_state=new_lb, key=key)
        # The loss per term is not needed by L-BFGS: evaluated once per chunk, in chunk_losses.
        return new_state, (value, None, None, updates)

    def chunk_losses(state):
        lb = state.opt_state
        total, (losses, diagnostics) = loss.total(state.params, state.weights, lb.points, lb.causal_weights)
        return total, losses, diagnostics

    return PhaseStepper(init, step, chunk_losses)


def build_stepper(phase: Phase, loss: PINNLoss, fixed_points) -> PhaseStepper:
    from pinnrun.optim.factory import build_optimizer

    if phase.name == "lbfgs":
        return lbfgs_stepper(loss, phase.cfg, fixed_points)
    optimizer, _ = build_optimizer(phase.cfg)
    return gradient_stepper(loss, optimizer, fixed_points)


def learning_rate(phase: Phase, step: int) -> float | None:
    """The scheduled learning rate at a global step (None for line-search phases)."""
    from pinnrun.optim.factory import build_schedule

    if phase.name == "lbfgs":
        return None
    return float(build_schedule(phase.cfg)(step - phase.start))
