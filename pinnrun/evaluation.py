"""Errors of a network against a PDE's reference solution, evaluated in chunks of points."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from pinnrun.pdes.base import PDE, Reference


@dataclasses.dataclass
class Evaluation:
    """Predictions and errors on the reference grid."""

    prediction: dict[str, np.ndarray]
    rel_l2: dict[str, float]
    max_abs: dict[str, float]
    # For time-dependent PDEs: field -> relative L2 error of each time slice.
    rel_l2_vs_t: dict[str, np.ndarray] | None = None

    def metrics(self) -> dict[str, float]:
        out = {f"rel_l2/{k}": v for k, v in self.rel_l2.items()}
        out.update({f"max_abs/{k}": v for k, v in self.max_abs.items()})
        return out


def relative_l2(pred: np.ndarray, ref: np.ndarray) -> float:
    return float(np.linalg.norm(pred - ref) / max(np.linalg.norm(ref), np.finfo(np.float64).tiny))


class Evaluator:
    """Evaluates a network ``apply(params, z)`` on the reference grid, ``batch_size`` points per jitted call."""

    def __init__(self, pde: PDE, batch_size: int, reference: Reference | None = None):
        self.pde = pde
        self.reference = reference if reference is not None else pde.reference()
        self.points = self.reference.points()
        self.batch_size = min(batch_size, len(self.points))
        self._jitted: dict[Callable, Callable] = {}

    def predict(self, apply: Callable, params, dtype) -> np.ndarray:
        """[N, output_dim] predictions at every grid point, padded chunks of equal size."""
        if apply not in self._jitted:
            self._jitted[apply] = jax.jit(lambda params, z: jax.vmap(lambda p: apply(params, p))(z))
        predict = self._jitted[apply]
        n, bs = len(self.points), self.batch_size
        pad = (-n) % bs
        points = np.concatenate([self.points, np.repeat(self.points[-1:], pad, axis=0)])
        chunks = [
            np.asarray(predict(params, jnp.asarray(points[i : i + bs], dtype)))
            for i in range(0, len(points), bs)
        ]
        return np.concatenate(chunks)[:n].astype(np.float64)

    def __call__(self, apply: Callable, params, dtype=jnp.float32) -> Evaluation:
        flat = self.predict(apply, params, dtype)
        shape = self.reference.shape
        time_axis = self.pde.time_axis
        prediction, rel, mx, vs_t = {}, {}, {}, {}
        for i, name in enumerate(self.pde.field_names):
            if name not in self.reference.fields:
                continue
            ref = np.asarray(self.reference.fields[name], np.float64)
            pred = flat[:, i].reshape(shape)
            if name in self.pde.gauge_fields:
                pred = pred + np.mean(ref - pred)  # defined up to a constant
            prediction[name] = pred
            rel[name] = relative_l2(pred, ref)
            mx[name] = float(np.max(np.abs(pred - ref)))
            if time_axis is not None:
                diff = np.moveaxis(pred - ref, time_axis, 0).reshape(shape[time_axis], -1)
                norm = np.moveaxis(ref, time_axis, 0).reshape(shape[time_axis], -1)
                vs_t[name] = np.linalg.norm(diff, axis=1) / np.maximum(np.linalg.norm(norm, axis=1), 1e-300)
        return Evaluation(prediction, rel, mx, vs_t if time_axis is not None else None)
