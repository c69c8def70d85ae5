"""Errors of a network against a PDE's reference solution, on the device, in chunks of points.

The reference grid can be large (101 x 200 x 200 points per field for the 2-D benchmarks): its points
go to the device once per dtype, as [groups, chunks, chunk size, d], and one jitted ``lax.map`` over
the chunks evaluates a group per call. A time-marched run's groups are its time windows, each
evaluated only with its own window's network.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

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
    # For time-dependent PDEs: field -> ||ref(t) - ref(t0)|| / ||ref|| over the grid, the error of a
    # network that only repeats the initial condition.
    persistence: dict[str, float] | None = None

    def metrics(self) -> dict[str, float]:
        out = {f"rel_l2/{k}": v for k, v in self.rel_l2.items()}
        out.update({f"max_abs/{k}": v for k, v in self.max_abs.items()})
        return out


def relative_l2(pred: np.ndarray, ref: np.ndarray) -> float:
    return float(np.linalg.norm(pred - ref) / max(np.linalg.norm(ref), np.finfo(np.float64).tiny))


def persistence_errors(reference: Reference, time_axis: int | None, names: Sequence[str]) -> dict[str, float] | None:
    """field -> relative L2 error of the prediction u(t) = u(t0) over the whole grid."""
    if time_axis is None:
        return None
    out = {}
    for name in names:
        ref = np.moveaxis(np.asarray(reference.fields[name], np.float64), time_axis, 0)
        out[name] = relative_l2(np.broadcast_to(ref[:1], ref.shape), ref)
    return out


def chunked_outputs(pde: PDE, apply: Callable) -> Callable:
    """Jitted (params, [C, bs, d]) -> [C, bs, outputs + derived fields] (``pde.evaluated_names``):
    one ``lax.map`` over the C chunks, each a ``vmap`` over its bs points."""

    def at_point(params, z):
        f = lambda z: apply(params, z)  # noqa: E731
        derived = pde.derived_outputs(f, z)
        values = f(z)
        return jnp.concatenate([values, jnp.stack(list(derived.values()))]) if derived else values

    return jax.jit(lambda params, chunks: jax.lax.map(lambda c: jax.vmap(lambda z: at_point(params, z))(c), chunks))


def group_indices(points: np.ndarray, time_axis: int | None, edges, dtype) -> list[np.ndarray]:
    """The point indices of each group: all points without ``edges``; with time-window edges, group k
    holds the points with t_k <= t < t_{k+1} (the last window also t = T), t compared in ``dtype``
    as the network sees it."""
    if edges is None:
        return [np.arange(len(points))]
    t = np.asarray(points[:, time_axis]).astype(dtype)
    window = np.searchsorted(np.asarray(edges[1:-1]).astype(dtype), t, side="right")
    return [np.nonzero(window == k)[0] for k in range(len(edges) - 1)]


class Evaluator:
    """Evaluates a network ``apply(params, z)`` (and the PDE's derived fields) on the reference grid."""

    def __init__(self, pde: PDE, batch_size: int, reference: Reference | None = None):
        self.pde = pde
        self.reference = reference if reference is not None else pde.reference()
        self.points = self.reference.points()
        self.batch_size = min(batch_size, len(self.points))
        self.names = tuple(n for n in pde.evaluated_names if n in self.reference.fields)
        self.persistence = persistence_errors(self.reference, pde.time_axis, self.names)
        self._jitted: dict[Callable, Callable] = {}
        self._uploaded: dict[tuple, tuple[list[np.ndarray], jax.Array]] = {}

    def groups(self, edges: np.ndarray | None, dtype) -> tuple[list[np.ndarray], jax.Array]:
        """(point indices of each group, the groups' points on the device [G, C, bs, d]), uploaded once.

        Without edges one group holds every point; with time-window edges, group k holds the points with
        t_k <= t < t_{k+1} (the last window also t = T), padded to a common number of chunks."""
        key = (None if edges is None else tuple(edges), jnp.dtype(dtype).name)
        if key not in self._uploaded:
            indices = group_indices(self.points, self.pde.time_axis, edges, dtype)
            bs = self.batch_size
            chunks = max(-(-max(len(i), 1) // bs) for i in indices)
            data = np.empty((len(indices), chunks * bs, self.points.shape[1]), np.float64)
            for g, index in enumerate(indices):
                padded = np.concatenate([index, np.full(chunks * bs - len(index), index[-1] if len(index) else 0)])
                data[g] = self.points[padded]
            device = jnp.asarray(data.reshape(len(indices), chunks, bs, -1), dtype)
            self._uploaded[key] = (indices, device)
        return self._uploaded[key]

    def outputs(self, apply: Callable) -> Callable:
        """Jitted (params, [C, bs, d]) -> [C, bs, outputs + derived fields]."""
        if apply not in self._jitted:
            self._jitted[apply] = chunked_outputs(self.pde, apply)
        return self._jitted[apply]

    def predict(self, apply: Callable, params, dtype, edges: np.ndarray | None = None) -> np.ndarray:
        """[N, outputs + derived] at every grid point; ``params`` is a list of each window's parameters
        when ``edges`` are given."""
        indices, device = self.groups(edges, dtype)
        params_list = [params] if edges is None else list(params)
        fn = self.outputs(apply)
        flat = None
        for g, (index, p) in enumerate(zip(indices, params_list)):
            values = np.asarray(fn(p, device[g]), np.float64)
            values = values.reshape(-1, values.shape[-1])
            if flat is None:
                flat = np.empty((len(self.points), values.shape[1]), np.float64)
            flat[index] = values[: len(index)]
        return flat

    def __call__(self, apply: Callable, params, dtype=jnp.float32, edges: np.ndarray | None = None) -> Evaluation:
        flat = self.predict(apply, params, dtype, edges)
        shape = self.reference.shape
        time_axis = self.pde.time_axis
        prediction, rel, mx, vs_t = {}, {}, {}, {}
        for i, name in enumerate(self.pde.evaluated_names):
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
        return Evaluation(prediction, rel, mx, vs_t if time_axis is not None else None, self.persistence)
