"""Time-marching: split [t0, T] into windows, one network per window, each started from the last.

Window k trains on [t_k, t_{k+1}] with the initial condition u(t_k, x) given by window k-1's network
(its prediction at t_k), warm-starting from that network's parameters. It is a loop around the
ordinary Trainer: each window has its own checkpoint folder (``checkpoints/window_<k>``) and writes
its final parameters to ``windows/window_<k>.npz``; a resumed run skips finished windows and resumes
the current one from its checkpoint. Errors are reported over the whole horizon, with the network of
each time's window.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from pinnrun.build import build
from pinnrun.evaluation import Evaluation, Evaluator
from pinnrun.pdes.base import Reference
from pinnrun.trainer import (
    Components,
    RunOptions,
    Trainer,
    load_params,
    run_facts,
    save_params,
    write_run_outputs,
)


def window_edges(t0: float, t1: float, windows: int) -> np.ndarray:
    return np.linspace(t0, t1, windows + 1)


def slice_reference(reference: Reference, time_axis: int, t_start: float, t_end: float) -> Reference:
    """The part of a reference grid with t in [t_start, t_end]."""
    names = list(reference.axes)
    t = reference.axes[names[time_axis]]
    keep = (t >= t_start - 1e-12) & (t <= t_end + 1e-12)
    axes = {**reference.axes, names[time_axis]: t[keep]}
    fields = {k: np.compress(keep, v, axis=time_axis) for k, v in reference.fields.items()}
    return Reference(axes=axes, fields=fields)


def piecewise_apply(apply, edges: np.ndarray, time_axis: int):
    """A network of the whole horizon: at time t, the network of t's window (params: a list)."""
    inner = jnp.asarray(edges[1:-1])

    def apply_all(params_list, z):
        index = jnp.searchsorted(inner, z[time_axis], side="right")  # t_k <= t < t_{k+1} -> k
        outputs = jnp.stack([apply(p, z) for p in params_list])
        return outputs[index]

    return apply_all


class TimeMarcher:
    def __init__(self, cfg: Mapping[str, Any], components: Components, run_dir: Path, sinks=None, options: RunOptions | None = None):
        self.cfg = cfg
        self.c = components
        self.run_dir = Path(run_dir).absolute()
        self.sinks = list(sinks or [])
        self.options = options or RunOptions()
        self.windows = int(cfg["train"]["time_windows"])
        pde = components.pde
        self.edges = window_edges(*pde.bounds["t"], self.windows)
        self.reference = pde.reference()

    def train(self) -> dict[str, Any]:
        steps = int(self.cfg["train"]["steps"])
        time_axis = self.c.pde.time_axis
        folder = self.run_dir / "windows"
        folder.mkdir(exist_ok=True)
        wall_start = time.perf_counter()
        window_params, compile_seconds, train_rate = [], 0.0, []
        initial_target, init_params = None, self.options.init_params
        dtype = self.c.dtype
        for k in range(self.windows):
            piece = self.c.pde.window(self.edges[k], self.edges[k + 1], initial_target)
            components = build(self.cfg, pde=piece)
            saved = folder / f"window_{k}.npz"
            like = components.model.init(jax.random.PRNGKey(0))
            if saved.exists():  # finished before an interruption
                params = load_params(saved, like)
            else:
                checkpoint_dir = self.run_dir / "checkpoints" / f"window_{k}"
                resume = self.options.resume and checkpoint_dir.is_dir() and any(checkpoint_dir.iterdir())
                print(f"time window {k + 1}/{self.windows}: t in [{self.edges[k]:.4g}, {self.edges[k + 1]:.4g}]")
                options = RunOptions(
                    resume=resume,
                    init_params=init_params,
                    metadata={**self.options.metadata, "window": k},
                    checkpoint_dir=checkpoint_dir,
                    step_offset=k * steps,
                    record_extras={"window": k},
                    reference=slice_reference(self.reference, time_axis, self.edges[k], self.edges[k + 1]),
                    final_outputs=False,
                    close_sinks=False,
                )
                trainer = Trainer(self.cfg, components, self.run_dir, sinks=self.sinks, options=options)
                summary = trainer.train()
                params = trainer.final_state.params
                dtype = jax.tree.leaves(params)[0].dtype
                compile_seconds += summary["compile_seconds"]
                if summary["steps_per_second"]:
                    train_rate.append(summary["steps_per_second"])
                if jax.process_index() == 0:
                    save_params(params, saved)
            window_params.append(params)
            model = components.model_for(jnp.dtype(jax.tree.leaves(params)[0].dtype))
            initial_target = lambda z, apply=model.apply, p=params: apply(p, z)  # noqa: E731
            init_params = params  # warm start: the next window begins from this network

        model = self.c.model_for(jnp.dtype(dtype))
        combined = piecewise_apply(model.apply, self.edges, time_axis)
        evaluator = Evaluator(self.c.pde, int(self.cfg["train"]["eval_batch_size"]), self.reference)
        evaluation = evaluator(combined, window_params, dtype)
        summary = {
            "steps": steps * self.windows,
            "time_windows": self.windows,
            "steps_per_second": float(np.mean(train_rate)) if train_rate else None,
            "compile_seconds": compile_seconds,
            "wall_seconds": time.perf_counter() - wall_start,
            "final_rel_l2": evaluation.rel_l2,
            "best_rel_l2": evaluation.rel_l2,
            "final_max_abs": evaluation.max_abs,
            **run_facts(self.cfg, self.c.pde),
        }
        if jax.process_index() == 0:
            self.write_outputs(evaluator, evaluation, summary)
        for sink in self.sinks:
            sink.close(summary)
        return summary

    def write_outputs(self, evaluator: Evaluator, evaluation: Evaluation, summary: dict[str, Any]) -> None:
        write_run_outputs(self.run_dir, evaluator.reference, evaluation, summary, self.cfg["train"]["figures"], self.sinks)
