"""A finished (or interrupted) run, loaded back: its config, its PDE and a jitted ``predict``.

    run = pinnrun.load_run("outputs/2026-12-04/14-02-11_kovasznay_soap")
    fields = run.predict(points)           # points [n, d] in the PDE's input order -> {field: [n]}
    errors = run.evaluate().rel_l2         # on the reference grid: summary.json's final_rel_l2

``which="final"`` (default) takes the final parameters, those summary.json's ``final_rel_l2``
describes (``params.npz``; for a time-marched run every window's network, each point predicted by
the network of its own window); ``which="best"`` the best checkpoint (not for time-marched runs,
whose best is their final set of windows). The PDE is the run's last stage's (a curriculum's final
Reynolds number, say), in the dtype its parameters were saved in. With the run's
``train.eval_batch_size`` ``evaluate()`` repeats the run's own evaluation bit for bit.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from omegaconf import OmegaConf

from pinnrun.config import ConfigError, validate

WHICH = ("final", "best")


@dataclasses.dataclass
class Run:
    run_dir: Path
    config: dict[str, Any]
    pde: Any
    params: list[Any]              # one network, or one per time window
    edges: np.ndarray | None       # time-window edges in t (None: one network)
    dtype: Any
    source: str                    # where the parameters came from
    model: Any = dataclasses.field(repr=False, default=None)
    _outputs: Any = dataclasses.field(repr=False, default=None)
    _reference: Any = dataclasses.field(repr=False, default=None)

    @property
    def summary(self) -> dict[str, Any] | None:
        path = self.run_dir / "summary.json"
        return json.loads(path.read_text()) if path.is_file() else None

    @property
    def reference(self):
        """The PDE's reference grid (loaded once)."""
        if self._reference is None:
            self._reference = self.pde.reference()
        return self._reference

    @property
    def field_names(self) -> tuple[str, ...]:
        """What ``predict`` returns: the network's fields, then the PDE's derived ones."""
        return tuple(self.pde.evaluated_names)

    def predict(self, points, batch_size: int | None = None) -> dict[str, np.ndarray]:
        """{field: [n]} at ``points`` [n, d] (the PDE's inputs, in ``pde.input_names`` order), derived
        fields included, as float64 arrays; ``batch_size`` points per device call (default: the
        run's ``train.eval_batch_size``)."""
        from pinnrun.build import jax_settings

        with jax_settings(self.config):   # the run's x64 and matmul precision
            return self._predict(points, batch_size)

    def _predict(self, points, batch_size):
        from pinnrun.evaluation import chunked_outputs, group_indices

        points = np.asarray(points, np.float64)
        if points.ndim != 2 or points.shape[1] != self.pde.input_dim:
            raise ValueError(f"points must be [n, {self.pde.input_dim}] ({', '.join(self.pde.input_names)}); got shape {points.shape}")
        if self._outputs is None:
            self._outputs = chunked_outputs(self.pde, self.model.apply)
        bs = min(int(batch_size or self.config["train"]["eval_batch_size"]), max(len(points), 1))
        out = np.empty((len(points), len(self.field_names)), np.float64)
        for index, params in zip(group_indices(points, self.pde.time_axis, self.edges, self.dtype), self.params):
            if not len(index):
                continue
            chunks = -(-len(index) // bs)
            padded = np.concatenate([index, np.full(chunks * bs - len(index), index[-1])])
            values = self._outputs(params, jnp.asarray(points[padded].reshape(chunks, bs, -1), self.dtype))
            out[index] = np.asarray(values, np.float64).reshape(-1, out.shape[1])[: len(index)]
        return {name: out[:, i] for i, name in enumerate(self.field_names)}

    def evaluate(self, batch_size: int | None = None):
        """The errors on the PDE's reference grid (an ``Evaluation``), as the run computed them."""
        from pinnrun.build import jax_settings
        from pinnrun.evaluation import Evaluator

        with jax_settings(self.config):
            evaluator = Evaluator(self.pde, int(batch_size or self.config["train"]["eval_batch_size"]), self.reference)
            params = self.params if self.edges is not None else self.params[0]
            return evaluator(self.model.apply, params, self.dtype, edges=self.edges)


def load_run(run_dir, which: str = "final") -> Run:
    """Load a run's folder (see the module docstring); ``ConfigError`` (one line) when it is not a
    run's folder or holds no such parameters."""
    from pinnrun.build import jax_settings

    if which not in WHICH:
        raise ConfigError(f"which must be one of {', '.join(WHICH)}; got {which!r}")
    run_dir = Path(run_dir).expanduser().absolute()
    if not run_dir.is_dir():
        raise ConfigError(f"run_dir: {run_dir} does not exist (give the folder of a pinnrun run)")
    if not (run_dir / "config.yaml").is_file():
        raise ConfigError(f"run_dir: {run_dir} has no config.yaml (not a pinnrun run directory)")
    config = validate(OmegaConf.load(run_dir / "config.yaml"))
    with jax_settings(config):
        return _load(run_dir, config, which)


def _load(run_dir: Path, config: dict, which: str) -> Run:
    from pinnrun.build import build
    from pinnrun.trainer import load_params, window_count

    components = build(config)
    last = components.stages[-1]
    pde = components.pde_for(last.pde) if components.pde_for is not None else components.pde
    like = components.model.init(jax.random.PRNGKey(0))
    path = run_dir / "params.npz"
    edges = None
    if which == "final":
        if not path.is_file():
            raise ConfigError(f"run_dir: {run_dir} has no params.npz (the run has not finished; which=best "
                              f"takes its best checkpoint)")
        windows = window_count(path)
        if windows:
            params = [load_params(path, like, prefix=f"window_{k}/") for k in range(windows)]
            with np.load(path) as data:
                edges = np.asarray(data["window_edges"])
        else:
            params = [load_params(path, like)]
        source = "params.npz"
    else:
        if last.window is not None:
            raise ConfigError(f"which=best: {run_dir} is time-marched; its final windows (which=final) are what it reports")
        from pinnrun.evaluate import run_params

        best, source = run_params(run_dir, like, prefer="best")
        params = [best]
    dtype = jnp.dtype(jax.tree.leaves(params[0])[0].dtype)
    return Run(run_dir, config, pde, params, edges, dtype, source, model=components.model_for(dtype))
