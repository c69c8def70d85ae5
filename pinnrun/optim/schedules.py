"""Learning-rate schedules."""

from __future__ import annotations

import jax.numpy as jnp
import optax


def warmup_exponential_decay(lr: float, warmup_steps: int, decay_rate: float, decay_steps: int) -> optax.Schedule:
    """Linear warmup from 0 to lr over warmup_steps, then lr * decay_rate^((step - warmup) / decay_steps)."""

    def schedule(step):
        step = jnp.asarray(step, jnp.float32)
        warm = lr * jnp.minimum(1.0, (step + 1.0) / max(warmup_steps, 1))
        decayed = lr * decay_rate ** (jnp.maximum(step - warmup_steps, 0.0) / decay_steps)
        return jnp.where(step < warmup_steps, warm, decayed)

    return schedule
