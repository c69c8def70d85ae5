"""Build an optax optimizer from its config: a registry of constructors, a schedule and clipping.

The config is flat: `name`, the schedule keys (lr, warmup_steps, decay_rate, decay_steps), optional
`clip_norm`, the schedule-free wrapper's keys, and every other key is passed to the constructor as a
keyword argument, so that each optimizer's own hyperparameters are spelled exactly as its constructor
spells them.

Schedule-free (Defazio et al. 2024, ``optax.contrib.schedule_free``), as the paper's public code
builds every 2-D SOAP recipe (jaxpi, ``pirate`` branch, ``models.py``, ``_create_optimizer``):

    chain(clip_by_global_norm(clip_norm), schedule_free(base(lr_schedule, b1=0.9, ...), lr_schedule, b1=0.9))

``schedule_free: true`` reproduces it: the base optimizer keeps its own momentum b1 AND the wrapper
interpolates with ``schedule_free_b1``, and training, evaluation and everything else use the
parameters the optimizer returns (the gradient points y_t, not the averaged x_t that
``schedule_free_eval_params`` would give). ``schedule_free: textbook`` is Defazio et al.'s form: the
base optimizer's momentum off (b1 = 0), the wrapper alone averaging.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Mapping
from typing import Any

import optax

from pinnrun.optim.schedules import warmup_exponential_decay

SCHEDULE_KEYS = ("lr", "warmup_steps", "decay_rate", "decay_steps")
SCHEDULE_FREE_KEYS = ("schedule_free", "schedule_free_b1")
SCHEDULE_FREE_MODES = (False, True, "textbook")
COMMON_KEYS = ("name", *SCHEDULE_KEYS, "clip_norm", *SCHEDULE_FREE_KEYS)


def adam(learning_rate, b1=0.9, b2=0.999, eps=1e-8) -> optax.GradientTransformation:
    """optax's Adam, with the keyword names pinnrun's configs use."""
    return optax.adam(learning_rate, b1=b1, b2=b2, eps=eps)


# name -> "module:constructor"; each constructor takes the learning rate (a schedule) first.
OPTIMIZERS: dict[str, str] = {
    "adam": "pinnrun.optim.factory:adam",
    "soap": "pinnrun.optim.soap:soap",
    "shampoo": "pinnrun.optim.shampoo:shampoo",
}


def constructor(name: str) -> Callable[..., optax.GradientTransformation]:
    module, attr = OPTIMIZERS[name].split(":")
    return getattr(importlib.import_module(module), attr)


def optimizer_kwargs(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """The constructor keyword arguments of an optimizer config (everything but the common keys)."""
    return {k: v for k, v in cfg.items() if k not in COMMON_KEYS and k not in ("steps", "precision")}


def allowed_kwargs(name: str) -> tuple[str, ...]:
    params = inspect.signature(constructor(name)).parameters
    return tuple(p for p in params if p != "learning_rate")


def build_schedule(cfg: Mapping[str, Any]) -> optax.Schedule:
    return warmup_exponential_decay(
        float(cfg["lr"]), int(cfg["warmup_steps"]), float(cfg["decay_rate"]), int(cfg["decay_steps"])
    )


def build_optimizer(cfg: Mapping[str, Any], schedule_offset: int = 0) -> tuple[optax.GradientTransformation, optax.Schedule]:
    """(optimizer, learning-rate schedule) for one optimizer config.

    ``schedule_offset``: the schedule is read at the optimizer's step count plus this (a stage that
    continues an earlier stage's learning-rate clock with a fresh optimizer state, or the reverse).
    """
    schedule = build_schedule(cfg)
    if schedule_offset:
        base_schedule = schedule
        schedule = lambda count: base_schedule(count + schedule_offset)  # noqa: E731
    kwargs = optimizer_kwargs(cfg)
    mode = cfg.get("schedule_free", False)
    if mode == "textbook":
        kwargs["b1"] = 0.0
    optimizer = constructor(cfg["name"])(schedule, **kwargs)
    if mode:
        optimizer = optax.contrib.schedule_free(optimizer, schedule, b1=float(cfg.get("schedule_free_b1", 0.9)))
    if cfg.get("clip_norm") is not None:
        optimizer = optax.chain(optax.clip_by_global_norm(float(cfg["clip_norm"])), optimizer)
    return optimizer, schedule
