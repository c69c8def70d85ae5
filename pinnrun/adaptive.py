"""Adaptive loss weights (gradient-norm and NTK balancing), updated between chunks.

Every ``update_every`` steps the trainer asks for new weights: w_new from the per-term gradient
norms (``grad_norm``) or mean NTK diagonals (``ntk``), then w <- momentum w_old + (1 - momentum) w_new.
The weights are constants inside the steps (the loss stops their gradient). L-BFGS phases keep them
frozen, since the line search needs one fixed objective.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp

from pinnrun import weighting
from pinnrun.losses import PINNLoss


def grad_norm_targets(loss: PINNLoss, params, batch) -> jax.Array:
    """[K] balancing weights from ||grad L_k||."""
    per_term = loss.per_term_gradients(params, batch)
    sq = sum(jnp.sum(leaf.reshape(leaf.shape[0], -1) ** 2, axis=1) for leaf in jax.tree.leaves(per_term))
    return weighting.grad_norm_weights(jnp.sqrt(sq))


def ntk_targets(loss: PINNLoss, params, batch, key, chunk_size: int, max_points: int | None) -> jax.Array:
    """[K] balancing weights from each term's NTK diagonal, on at most max_points points.

    A term's trace weighs its points as its loss does: the mean over points, or, for the residuals
    of causal training, ``sum_c w_c mean_{i in chunk c} K_ii / C`` (the paper's code multiplies each
    time chunk's mean NTK by the chunk's causal weight), so that a weighting sees the same causal
    loss as the steps and as grad-norm balancing do.
    """
    causal = loss.causal_weights(params, batch) if loss.causal is not None else {}  # point set -> [C]
    traces = []
    for ps in loss.point_sets:
        # A point set with targets: each row is [z, y] (the point and its target), split here.
        pts, d = batch.points[ps.name], batch.points[ps.name].shape[1]
        if ps.name in batch.context.targets:
            pts = jnp.concatenate([pts, batch.context.targets[ps.name]], axis=1)
        for term in ps.terms:

            def point_residual(p, row, ps=ps, term=term, d=d):
                y = row[d:] if ps.target is not None else None
                return ps.evaluate(lambda zz: loss.apply(p, zz), row[:d], y)[term].reshape(-1)

            key, sub = jax.random.split(key)
            limit = max_points if max_points and max_points < pts.shape[0] else None
            if ps.name in causal:
                rows = weighting.subsample(pts, limit, sub)
                t_min, t_max = loss.causal_range(batch)
                a = weighting.causal_point_weights(rows[:, loss.causal.time_axis], causal[ps.name], loss.causal.num_chunks, t_min, t_max)
                traces.append(weighting.ntk_trace(point_residual, params, rows, chunk_size, point_weights=a))
            else:
                traces.append(weighting.ntk_trace(point_residual, params, pts, chunk_size, max_points=limit, key=sub))
    return weighting.ntk_weights(jnp.stack(traces))


class AdaptiveWeights:
    """When and how a run's loss weights change."""

    def __init__(self, cfg: Mapping[str, Any], term_names: tuple[str, ...]):
        self.scheme = cfg["name"]
        self.term_names = term_names
        self.momentum = float(cfg["momentum"])
        self.interval = int(cfg["update_every"]) if self.scheme != "fixed" else 0
        self.chunk_size = int(cfg.get("ntk_chunk_size", 64))
        self.max_points = cfg.get("ntk_max_points")
        self.cfg = dict(cfg)
        self.plugin = None
        if self.scheme not in ("fixed", "grad_norm", "ntk"):   # an installed package's (pinnrun.plugins)
            from pinnrun.plugins import WEIGHTING_GROUP, load_plugin

            self.plugin = load_plugin(WEIGHTING_GROUP, self.scheme)
        self._fns: dict[int, Any] = {}

    def due(self, step: int, stage) -> bool:
        """At every update_every steps since the stage's weights were last reset (not in L-BFGS stages)."""
        return bool(self.interval) and not stage.uses_line_search and (step - stage.weights_origin) % self.interval == 0

    def _fn(self, stage, loss: PINNLoss, fixed_points):
        if stage.signature not in self._fns:

            def update(params, weights, key, context):
                batch = loss.sample(key, fixed_points, context)
                if self.scheme == "grad_norm":
                    target = grad_norm_targets(loss, params, batch)
                elif self.plugin is not None:
                    target = jnp.asarray(self.plugin(loss, params, batch, jax.random.fold_in(key, 1), self.cfg))
                else:
                    target = ntk_targets(loss, params, batch, jax.random.fold_in(key, 1), self.chunk_size, self.max_points)
                new = {k: target[i].astype(weights[k].dtype) for i, k in enumerate(self.term_names)}
                return weighting.smooth(weights, new, self.momentum)

            self._fns[stage.signature] = jax.jit(update)
        return self._fns[stage.signature]

    def update(self, stage, loss: PINNLoss, fixed_points, state) -> dict[str, jax.Array]:
        fn = self._fn(stage, loss, fixed_points)
        return fn(state.params, state.weights, jax.random.fold_in(state.key, 2), state.context)
