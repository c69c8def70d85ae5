"""The one shared trainer: a pure jitted chunk of steps, and a host loop that evaluates, logs and saves.

The training state is one pytree. ``chunk(state) -> (state, metrics)`` advances it by ``n`` steps with
``lax.scan``; the host only syncs between chunks, to log, evaluate and save. A run is a list of stages
(pinnrun.stages: optimizer phases, time windows, curricula) run by one loop: entering a stage applies
its carry rule, the stage's window and initial-condition targets enter the state as arrays (so the
windows of a run share one compilation), and every stage ends with a checkpoint. Nothing here knows
which PDE, network or optimizer it runs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import platform
import time
from collections.abc import Callable, Mapping
from functools import reduce
from math import gcd
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from pinnrun import alignment
from pinnrun.adaptive import AdaptiveWeights
from pinnrun.evaluation import Evaluation, Evaluator
from pinnrun.figures import write_profiles, write_run_outputs
from pinnrun.losses import PINNLoss, StageContext
from pinnrun.marching import slice_reference, window_edges
from pinnrun.phases import PhaseStepper, build_stepper
from pinnrun.sinks import JsonlSink, Progress, Sink, format_seconds, truncate_metrics
from pinnrun.stages import Stage, learning_rate

if TYPE_CHECKING:
    from pinnrun.build import Components

Array = jax.Array
MAX_CHUNK_STEPS = 500


class TrainState(NamedTuple):
    step: Array
    params: Any
    opt_state: Any
    weights: dict[str, Array]
    key: Array
    context: StageContext  # the stage's time window and initial-condition targets


def chunk_length(train_cfg: Mapping[str, Any], *intervals: int) -> int:
    """Steps per jitted call: divides every interval, at most MAX_CHUNK_STEPS (short for signals)."""
    if train_cfg.get("chunk_steps"):
        return int(train_cfg["chunk_steps"])
    length = reduce(gcd, [int(i) for i in intervals if i and i > 0])
    while length > MAX_CHUNK_STEPS:  # the largest divisor of `length` not above the cap
        length = next(d for d in range(MAX_CHUNK_STEPS, 0, -1) if length % d == 0)
    return length


def make_chunk(stepper: PhaseStepper, length: int, alignment_on: bool = True) -> Callable:
    """``length`` steps in one lax.scan; returns the last step's losses and, with ``alignment_on``, the
    inter-step alignment (cosines of consecutive updates and of consecutive raw gradients; without
    it the scan carries no previous step and concatenates nothing)."""

    def chunk(state: TrainState):
        def body(carry, _):
            if not alignment_on:
                state, (total, losses, diagnostics, _, _) = stepper.step(carry)
                return state, (total, losses, diagnostics, ())
            state, previous_update, previous_grad = carry
            state, (total, losses, diagnostics, update, grad) = stepper.step(state)
            cosines = (alignment.cosine(update, previous_update), alignment.cosine(grad, previous_grad))
            return (state, update, grad), (total, losses, diagnostics, cosines)

        zeros = jax.tree.map(jnp.zeros_like, state.params)
        carry = (state, zeros, zeros) if alignment_on else state
        carry, (totals, losses, diagnostics, cosines) = jax.lax.scan(body, carry, None, length=length)
        state = carry[0] if alignment_on else carry
        finite = jnp.isfinite(totals)
        nonfinite_offset = jnp.where(jnp.all(finite), -1, jnp.argmin(finite))
        if stepper.chunk_losses is not None:
            total, losses, diagnostics = stepper.chunk_losses(state)
        else:
            total, losses, diagnostics = totals[-1], {k: v[-1] for k, v in losses.items()}, {k: v[-1] for k, v in diagnostics.items()}
        metrics = {"loss": total, "nonfinite_offset": nonfinite_offset}
        metrics.update({f"loss/{k}": v for k, v in losses.items()})
        metrics.update(diagnostics)
        if alignment_on and length > 1:  # the first step of a chunk has no predecessor inside it
            metrics["align/inter"] = jnp.mean(cosines[0][1:])
            metrics["align/inter_grad"] = jnp.mean(cosines[1][1:])
        return state, metrics

    return chunk


def _mean(errors: Mapping[str, float]) -> float | None:
    return float(np.mean(list(errors.values()))) if errors else None


def versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for package in ("pinnrun", "jax", "jaxlib", "optax", "hydra-core", "omegaconf", "numpy"):
        try:
            out[package] = md.version(package)
        except md.PackageNotFoundError:
            pass
    return out


def peak_memory_bytes() -> int | None:
    """Peak accelerator memory in use so far (None where the backend does not report it, e.g. CPU)."""
    try:
        stats = jax.local_devices()[0].memory_stats()
    except Exception:  # noqa: BLE001 - backends without memory statistics
        return None
    return int(stats["peak_bytes_in_use"]) if stats and "peak_bytes_in_use" in stats else None


def run_facts(cfg: Mapping[str, Any], pde, stages: list[Stage]) -> dict[str, Any]:
    """What every summary.json records about a run's setup and machine, besides its figures.

    ``domain`` (input name -> [low, high]) says what the errors are measured over: a budget may
    shorten a PDE's time horizon (Kuramoto-Sivashinsky's quick budget learns t in [0, 0.3]).
    """
    return {
        "seed": int(cfg["train"]["seed"]),
        "device": device_description(),
        "peak_memory_bytes": peak_memory_bytes(),
        "versions": versions(),
        "pde": pde.name,
        "domain": {name: list(bounds) for name, bounds in pde.bounds.items()},
        "optimizer": "+".join(dict.fromkeys(stage.optim["name"] for stage in stages)),
        "arch": cfg["arch"]["name"],
        "reference": pde.provenance(),
        "run": {"name": (cfg.get("run") or {}).get("name"), "tags": list((cfg.get("run") or {}).get("tags") or [])},
    }


def device_description() -> str:
    device = jax.devices()[0]
    return f"{device.platform}:{device.device_kind} x{jax.device_count()}"


def param_name(path) -> str:
    """A parameter's plain name from its pytree path: ``hidden/0/bias``."""
    return jax.tree_util.keystr(path, simple=True, separator="/")


def _write_npz(flat: dict[str, np.ndarray], path: Path) -> None:
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, **flat)
    tmp.replace(path)


def save_params(params, path: Path) -> None:
    """Parameters as an .npz keyed by plain names (``hidden/0/bias``; readable without pinnrun)."""
    _write_npz({param_name(p): np.asarray(v) for p, v in jax.tree_util.tree_leaves_with_path(params)}, path)


def save_window_params(windows: list, edges, path: Path) -> None:
    """A time-marched run's networks in one .npz: ``window_<k>/hidden/0/bias`` for each window k and
    the window edges in t (``window_edges``)."""
    flat = {f"window_{k}/{param_name(p)}": np.asarray(v)
            for k, w in enumerate(windows) for p, v in jax.tree_util.tree_leaves_with_path(w)}
    _write_npz({**flat, "window_edges": np.asarray(edges, np.float64)}, path)


def load_params(path: Path, like, prefix: str = ""):
    """Parameters saved by ``save_params``, in the structure of ``like`` (``prefix``: ``window_<k>/``
    for one window of a time-marched run's file). Files written before the plain names (keys such
    as ``['hidden'][0]['bias']``) load too."""
    with np.load(path) as data:
        leaves = []
        for p, _ in jax.tree_util.tree_leaves_with_path(like):
            key = prefix + param_name(p)
            leaves.append(jnp.asarray(data[key] if key in data.files else data[prefix + jax.tree_util.keystr(p)]))
    return jax.tree.unflatten(jax.tree.structure(like), leaves)


def window_count(path: Path) -> int:
    """How many windows' networks a params.npz holds (0: a single network)."""
    with np.load(path) as data:
        return len({k.split("/", 1)[0] for k in data.files if k.startswith("window_") and "/" in k})


@dataclasses.dataclass
class RunOptions:
    """How a run starts and what it keeps, beyond the config itself."""

    resume: bool = False  # continue from the latest checkpoint in the checkpoint folder
    init_params: Any = None  # start from these parameters (fine-tuning from another run)
    metadata: dict[str, Any] = dataclasses.field(default_factory=dict)  # stored with every checkpoint


def planning_notes(config: dict, stages: list[Stage], step: int) -> list[str]:
    """What the run is about to do, said at its start: the planned steps and, for a paper (GPU)
    recipe started on a CPU, the budget meant for one."""
    total = stages[-1].end
    entries, windows = stages[-1].entry + 1, max((s.window or 0) for s in stages) + 1
    parts = [f"{entries} stages" if entries > 1 else "", f"{windows} time windows" if windows > 1 else ""]
    detail = " and ".join(p for p in parts if p)
    lines = [f"planned: {total} steps" + (f" in {detail}" if detail else "") + (f", from step {step}" if step else "")]
    recipe, quick = config.get("recipe") or {}, config.get("quick") or {}
    on_recipe = bool(recipe) and config.get("budget") == recipe
    bigger = any(recipe.get(k, 0) > quick.get(k, 0) for k in ("steps", "batch_size", "time_windows") if k in quick)
    if jax.default_backend() == "cpu" and on_recipe and bigger:
        lines.append(f"this is the paper's recipe budget ({total} steps, batch {config['train']['batch_size']}), sized "
                     "for a GPU; on a CPU, train=cpu_quick runs the quick budget")
    return lines


class Trainer:
    def __init__(
        self,
        cfg: Mapping[str, Any],
        components: Components,
        run_dir: Path,
        sinks: list[Sink] | None = None,
        options: RunOptions | None = None,
    ):
        self.cfg = cfg
        self.c = components
        self.run_dir = Path(run_dir).absolute()
        self.options = options or RunOptions()
        self.train_cfg = cfg["train"]
        self.stages = components.stages
        self.total = self.stages[-1].end
        self.windows = int(self.train_cfg["time_windows"])
        # Several processes (jax.distributed): all compute and checkpoint, process 0 alone writes files.
        self.main_process = jax.process_index() == 0
        self.progress = Progress(self.total, self.train_cfg["progress"] if self.main_process else "none")
        self.extra_sinks = list(sinks or [])
        self.term_names = self.c.pde.term_names
        self.weighting = AdaptiveWeights(cfg["weighting"], self.term_names)
        self._cache: dict[tuple, Any] = {}  # steppers, compiled chunks, alignment and context functions, evaluators
        self.compile_seconds = 0.0
        self.compilations = 0  # how often the training step was compiled in this process
        self.lr_scale = 1.0  # halved by each rollback after a non-finite loss
        self.rollbacks = 0
        self.best: dict[str, float] = {}
        self.latest_evaluation: tuple[int, Evaluation] | None = None  # (step, evaluation)
        self.stage_records: dict[int, dict[str, Any]] = {}  # finished stages (restored on resume)
        # The run's earlier segments (each start or resume up to its last checkpoint; restored on resume).
        self.earlier_segments: list[dict[str, Any]] = []
        self.wall_start = time.perf_counter()
        self.stage_seconds = (0, 0.0, time.perf_counter())  # (stage index, seconds before this segment, entered at)
        self.window_params: dict[int, Any] = {}  # time-marching: the final network of each window
        ckpt = cfg["checkpoint"]
        self.checkpoint_every = int(ckpt["every"])
        self.checkpointer = None
        if self.checkpoint_every or self.options.resume or self.train_cfg.get("on_nan") == "rollback":
            self.checkpointer = self.make_checkpointer()

    def make_checkpointer(self):
        from pinnrun.checkpoint import Checkpointer

        ckpt = self.cfg["checkpoint"]
        return Checkpointer(self.run_dir / "checkpoints", keep=int(ckpt["keep"]), keep_best=int(ckpt.get("keep_best", 1)))

    def cached(self, key: tuple, make: Callable[[], Any]):
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]

    # ----- a stage's pieces -----
    def dtype(self, stage: Stage):
        return jnp.float64 if stage.precision == "float64" else jnp.float32

    def precision_scope(self, stage: Stage):
        """JAX's 64-bit mode as the stage's precision needs it: a run with a float64 phase turns it on
        globally (build.jax_settings), and its float32 stages trace, draw points and compute exactly
        as a float32-only run does."""
        return jax.enable_x64(stage.precision == "float64")

    def pde(self, stage: Stage):
        return self.c.pde_for(stage.pde)

    def loss(self, stage: Stage) -> PINNLoss:
        return self.c.loss_for(self.dtype(stage), self.pde(stage), stage.batch_size)

    def fixed_points(self, stage: Stage):
        """Point sets drawn once per run (from the seed), the same for every stage of one PDE."""
        def draw():   # in the first stage's precision, whichever stage asks first (a resumed run's)
            with self.precision_scope(self.stages[0]):
                return self.loss(stage).fixed_points(self.points_key)

        return self.cached(("fixed", stage.pde_key, stage.batch_size), draw)

    def stepper(self, stage: Stage) -> PhaseStepper:
        make = lambda: build_stepper(stage, self.loss(stage), self.fixed_points(stage), self.lr_scale)  # noqa: E731
        return self.cached(("stepper", stage.signature, self.lr_scale), make)

    def evaluator(self, stage: Stage | None) -> Evaluator:
        """The stage's reference (its window's part when time-marching); None: the last stage's whole horizon."""
        last = self.stages[-1]
        key = ("evaluator", (stage or last).pde_key, stage.time_range if stage else None)

        def make():
            pde = self.pde(stage or last)
            with self.reported(f"reference solution of {pde.name} ready"):   # loaded from the cache, or solved now
                reference = self.cached(("reference", (stage or last).pde_key), pde.reference)
            if stage is not None and stage.time_range is not None:
                reference = slice_reference(reference, pde.time_axis, *stage.time_range)
            return Evaluator(pde, self.train_cfg["eval_batch_size"], reference)

        return self.cached(key, make)

    # ----- state -----
    def init_state(self) -> TrainState:
        seed = int(self.train_cfg["seed"])
        self.init_key, self.points_key, self.train_key = jax.random.split(jax.random.PRNGKey(seed), 3)
        first = self.stages[0]
        if self.options.init_params is not None:
            params = jax.tree.map(lambda x: jnp.asarray(x, self.c.dtype), self.options.init_params)
        else:
            params = self.fresh_params(first)
        weights = {k: jnp.asarray(v, self.c.dtype) for k, v in self.c.weights.items()}
        return TrainState(jnp.asarray(0, jnp.int32), params, None, weights, self.train_key, StageContext(None, {}))

    def fresh_params(self, stage: Stage):
        """A new network from the seed, its output layer fitted to the initial condition by least squares
        (arch.pi_init, PirateNet)."""
        model = self.c.model_for(self.dtype(stage))
        params = model.init(self.init_key)
        initial = self.pde(stage).initial_condition()
        if not self.cfg["arch"].get("pi_init") or model.fit_output is None or initial is None:
            return params
        points, values = initial
        dtype = self.dtype(stage)
        return model.fit_output(params, jnp.asarray(points, dtype), jnp.asarray(values, dtype))

    def stage_context(self, stage: Stage, previous: Stage | None, params) -> StageContext:
        """The stage's window and targets: from the previous stage's network at the window start when
        the stage carries the initial condition, else from the PDE's own initial field. Evaluated once."""
        loss = self.loss(stage)
        time_range = None if stage.time_range is None else np.asarray(stage.time_range)
        if previous is not None and stage.carry.initial_condition:
            apply = self.c.model_for(self.dtype(previous)).apply
            fn = self.cached(("context", stage.signature, previous.precision), lambda: jax.jit(
                lambda params, fixed, time_range: loss.context(fixed, time_range, lambda z: apply(params, z))
            ))
            return fn(params, self.fixed_points(stage), time_range)
        pde = self.pde(stage)
        fn = self.cached(("context", stage.signature), lambda: jax.jit(
            lambda fixed, time_range: loss.context(fixed, time_range, pde.initial_field)
        ))
        return fn(self.fixed_points(stage), time_range)

    def enter_stage(self, stage: Stage, state: TrainState, previous: Stage | None, quiet: bool = False) -> TrainState:
        """Apply the stage's carry rule, cast the state to its precision and start its optimizer."""
        dtype = self.dtype(stage)
        cast = lambda tree: jax.tree.map(lambda x: x.astype(dtype) if jnp.issubdtype(x.dtype, jnp.floating) else x, tree)  # noqa: E731
        carry = stage.carry
        context = self.stage_context(stage, previous, state.params)
        params = state.params if previous is None or carry.params else self.fresh_params(stage)
        weights = state.weights
        if previous is not None and not carry.weights:
            weights = {k: jnp.asarray(v) for k, v in self.c.weights_for(self.pde(stage)).items()}
        params, weights = cast(params), cast(weights)
        key = state.key if previous is None or carry.rng else self.train_key
        if previous is not None and carry.opt_state:
            opt_state = state.opt_state
        else:
            opt_state = self.stepper(stage).init(params, jax.random.fold_in(key, stage.index), context)
        if not quiet:
            self.announce(stage, previous)
        state = state._replace(params=params, opt_state=opt_state, weights=weights, key=key, context=context)
        # An optimizer's init may keep references to the params (L-BFGS does): the chunk donates its
        # input, and XLA refuses to donate one buffer twice, so give every leaf its own buffer.
        return self.c.replicate(jax.tree.map(jnp.copy, state))

    def announce(self, stage: Stage, previous: Stage | None) -> None:
        if stage.entry != (previous.entry if previous else 0) or (previous is None and self.stages[-1].entry):
            self.progress.message(f"stage {stage.entry + 1}/{self.stages[-1].entry + 1}: {stage.name.split('/')[0]} from step {stage.start}")
        if stage.window is not None and (previous is None or previous.window != stage.window):
            t0, t1 = stage.time_range
            self.progress.message(f"time window {stage.window + 1}/{self.windows}: t in [{t0:.4g}, {t1:.4g}]")
        if stage.phase is not None:
            phases = [s for s in self.stages if s.entry == stage.entry and s.window == stage.window]
            position = phases.index(stage) + 1
            self.progress.message(f"phase {position}/{len(phases)}: {stage.phase} from step {stage.start} ({stage.precision})")

    def _chunk_fn(self, stage: Stage, length: int, state: TrainState) -> Callable:
        key = ("chunk", stage.signature, length, self.lr_scale)
        if key not in self._cache:
            if not self.compilations:
                self.progress.message(f"compiling the training step ({length} steps per call) ...")
            start = time.perf_counter()
            chunk = make_chunk(self.stepper(stage), length, alignment_on=self.intervals()[2] > 0)
            self._cache[key] = jax.jit(chunk, donate_argnums=0).lower(state).compile()
            seconds = time.perf_counter() - start
            self.compile_seconds += seconds
            self.compilations += 1
            self.progress.message(f"compiled in {seconds:.1f} s")
        return self._cache[key]

    # ----- checkpoints -----
    def checkpoint_metadata(self, stage: Stage, step: int) -> dict[str, Any]:
        index, before, entered = self.stage_seconds
        return {
            **self.options.metadata,
            "step": step,
            "stage": stage.index,
            "stage_name": stage.name,
            "stage_seconds": before + time.perf_counter() - entered if index == stage.index else 0.0,
            "stages_done": [self.stage_records[i] for i in sorted(self.stage_records)],
            "best_rel_l2": self.best,
            "lr_scale": self.lr_scale,
            "rollbacks": self.rollbacks,
            "segments": [*self.earlier_segments, self.segment(step)],
        }

    def segment(self, step: int) -> dict[str, Any]:
        """This process's part of the run so far: its steps and its seconds."""
        return {
            "from_step": self.start_step,
            "to_step": step,
            "steps_executed": step - self.start_step,
            "train_seconds": self.train_seconds,
            "compile_seconds": self.compile_seconds,
            "wall_seconds": time.perf_counter() - self.wall_start,
        }

    def save_checkpoint(self, stage: Stage, state: TrainState, step: int, metric: float | None, force: bool = False) -> None:
        if self.checkpointer is None:
            return
        # Orbax copies the arrays to the host before save() returns, so the next chunk may donate them.
        self.checkpointer.save(step, state, self.checkpoint_metadata(stage, step), metric=metric, force=force)

    def restore_checkpoint(self, state: TrainState) -> tuple[TrainState, int, int]:
        """The latest restorable checkpoint (damaged newer ones are skipped): (state, its stage's index, its step).

        The stage comes from the checkpoint's metadata, so resume and rollback both continue in the
        stage the checkpoint was saved in, whichever stage was running before.
        """

        def template(metadata):  # the optimizer state's structure is that of the checkpoint's stage
            stage = self.stages[int(metadata.get("stage", 0))]
            with self.precision_scope(stage):
                return self.enter_stage(stage, state, None, quiet=True)

        restored, metadata, step = self.checkpointer.restore(template)
        index = int(metadata.get("stage", 0))
        self.lr_scale = float(metadata.get("lr_scale", 1.0))
        self.rollbacks = int(metadata.get("rollbacks", 0))
        self.best = {k: float(v) for k, v in metadata.get("best_rel_l2", {}).items()}
        self.stage_records = {r["index"]: r for r in metadata.get("stages_done", [])}
        self.earlier_segments = list(metadata.get("segments", []))
        self.stage_seconds = (index, float(metadata.get("stage_seconds", 0.0)), time.perf_counter())
        stage = self.stages[index]
        for k in range(stage.window or 0):  # the finished windows' networks, for the whole-horizon errors
            self.window_params[k] = load_params(self.run_dir / "windows" / f"window_{k}.npz", restored.params)
        return restored, index, step

    # ----- evaluation and diagnostics -----
    def evaluate(self, stage: Stage, params) -> Evaluation:
        """Errors on the stage's part of the reference, with the stage's network."""
        dtype = self.dtype(stage)
        start = time.perf_counter()
        evaluation = self.evaluator(stage)(self.c.model_for(dtype).apply, params, dtype)
        self.eval_seconds += time.perf_counter() - start
        return evaluation

    def counts_for_best(self, stage: Stage) -> bool:
        """Best errors and the best checkpoint are of the final problem (not of a window's part of it or
        of an earlier curriculum stage)."""
        return stage.time_range is None and stage.pde_key == self.stages[-1].pde_key

    def alignment_metrics(self, stage: Stage, state: TrainState) -> dict[str, float]:
        def make():
            loss, optim, fixed = self.loss(stage), stage.optim, self.fixed_points(stage)
            groups = alignment.term_groups(self.pde(stage).point_sets())

            def fn(state):
                batch = loss.sample(jax.random.fold_in(state.key, 1), fixed, state.context)
                per_term = loss.per_term_gradients(state.params, batch)
                preconditioned = alignment.precondition(
                    state.opt_state, per_term, eps=optim.get("eps", 1e-8), b2=optim.get("b2", 0.999), batched=True
                )
                weights = jnp.stack([state.weights[k] for k in self.term_names])
                return alignment.alignment_metrics(self.term_names, per_term, preconditioned, groups, weights)

            return jax.jit(fn)

        fn = self.cached(("alignment", stage.signature), make)
        return {k: float(v) for k, v in jax.device_get(fn(state)).items()}

    def _log(self, record: dict[str, Any]) -> None:
        for sink in self.sinks:
            sink.log(record)

    def intervals(self) -> tuple[int, int, int]:
        cfg = self.train_cfg
        log_every, eval_every = int(cfg["log_every"]), int(cfg["eval_every"])
        align_every = log_every if cfg["alignment_every"] is None else int(cfg["alignment_every"])
        return log_every, eval_every, align_every

    def check_finite(self, metrics: dict[str, Any], step_before: int) -> str | None:
        """None, or a message naming the first step whose loss was not finite and the culprit terms."""
        offset = int(metrics.pop("nonfinite_offset"))
        if offset < 0:
            return None
        bad = [k for k in self.term_names if not math.isfinite(float(metrics.get(f"loss/{k}", 0.0)))]
        return f"non-finite loss at step {step_before + offset + 1} (term(s): {', '.join(bad) or 'total'})"

    # ----- the loop -----
    def train(self) -> dict[str, Any]:
        from pinnrun.preemption import PreemptionGuard

        with self.precision_scope(self.stages[0]):
            state = self.init_state()
        index, step, entered = 0, 0, False
        metrics_path = self.run_dir / "metrics.jsonl"
        if self.options.resume and self.checkpointer.latest_step() is not None:
            state, index, step = self.restore_checkpoint(state)
            entered = True
            if self.main_process:
                truncate_metrics(metrics_path, step)
            self.progress.message(f"resuming from the checkpoint at step {step}")
        if self.checkpoint_every <= 0:
            self.progress.message("checkpoints are off (checkpoint.every=0): this run cannot be resumed")
        for line in planning_notes(self.cfg, self.stages, step):
            self.progress.message(line)
        self.estimated = False
        self.start_step = step
        self.jsonl = JsonlSink(metrics_path if self.main_process else None)
        self.sinks = [self.jsonl, *self.extra_sinks]
        self.train_seconds = 0.0
        self.eval_seconds = 0.0
        self.record: dict[str, Any] = {}
        wall_start = self.wall_start = time.perf_counter()
        with PreemptionGuard() as guard:
            while index < len(self.stages):
                stage = self.stages[index]
                with self.precision_scope(stage):
                    if not entered:
                        state = self.enter_stage(stage, state, self.stages[index - 1] if index else None)
                        self.stage_seconds = (index, 0.0, time.perf_counter())
                    state, step, restored = self.run_stage(stage, state, step, guard, wall_start)
                    if restored is not None:  # rolled back: continue in the checkpoint's stage
                        index, entered = restored, True
                        continue
                    self.finish_stage(stage, state)
                index, entered = index + 1, False
        with self.precision_scope(self.stages[-1]):
            return self.finish(state, wall_start)

    def run_stage(self, stage: Stage, state: TrainState, step: int, guard, wall_start: float):
        """Steps until the stage's end: (state, step, None), or (state, step, stage index) after a rollback."""
        log_every, eval_every, align_every = self.intervals()
        length = chunk_length(self.train_cfg, log_every, eval_every, align_every, self.weighting.interval, self.checkpoint_every)
        while step < stage.end:
            if self.weighting.due(step, stage):
                state = state._replace(weights=self.weighting.update(stage, self.loss(stage), self.fixed_points(stage), state))
            n = min(length - step % length, stage.end - step)
            chunk = self._chunk_fn(stage, n, state)
            start = time.perf_counter()
            with self.progress.heartbeat(step, step + n, float(self.train_cfg.get("heartbeat_seconds", 30.0))):
                state, metrics = chunk(state)
                metrics = jax.device_get(metrics)  # waits for the chunk: the only host sync per chunk
            self.train_seconds += time.perf_counter() - start
            problem = self.check_finite(metrics, step)
            if problem:
                if self.train_cfg.get("on_nan", "stop") == "rollback" and self.can_roll_back(stage):
                    state, index, step = self.roll_back(problem, state)
                    self.jsonl.truncate(step)
                    return state, step, index
                if self.checkpointer is not None:
                    self.checkpointer.wait()
                raise FloatingPointError(problem + "; the last finite checkpoints are kept")
            step += n
            self.record = self.after_chunk(stage, state, step, metrics, wall_start) or self.record
            errors = {k[len("rel_l2/") :]: v for k, v in self.record.items() if k.startswith("rel_l2/")}
            rate = (step - self.start_step) / self.train_seconds if self.train_seconds > 0 else 0.0
            if not self.estimated and rate > 0:   # once, after the first chunk, for runs of over a minute
                self.estimated = True
                if (self.total - step) / rate > 60:
                    self.progress.message(f"about {format_seconds((self.total - step) / rate)} of training left at "
                                          f"{rate:.1f} steps/s (measured on the first steps)")
            evaluated_at = self.latest_evaluation[0] if self.latest_evaluation else None
            self.progress.update(step, rate, self.record.get("loss"), errors or None, evaluated_at)
            if guard.requested:
                self.stop_for_signal(guard, stage, state, step)
        return state, step, None

    def finish_stage(self, stage: Stage, state: TrainState) -> None:
        """Record the stage (its final errors and wall time), keep a finished window's network, checkpoint."""
        evaluated_at, evaluation = self.latest_evaluation or (None, None)
        if evaluated_at != stage.end:  # resumed at the stage's end: its last chunk's evaluation is gone
            evaluation = self.evaluate(stage, state.params)
            self.latest_evaluation = (stage.end, evaluation)
        _, before, entered = self.stage_seconds
        self.stage_records[stage.index] = {
            "index": stage.index,
            "name": stage.name,
            "start": stage.start,
            "end": stage.end,
            "steps": stage.steps,
            "optimizer": stage.optim["name"],
            "precision": stage.precision,
            "final_rel_l2": evaluation.rel_l2,
            "wall_seconds": before + time.perf_counter() - entered,
        }
        following = self.stages[stage.index + 1] if stage.index + 1 < len(self.stages) else None
        profiles = self.pde(stage).profiles()
        if profiles and self.main_process and (following is None or following.entry != stage.entry):
            # The end of a curriculum entry: its network on the PDE's profile lines, against its reference.
            folder = self.run_dir / "stages"
            folder.mkdir(exist_ok=True)
            write_profiles(folder / f"{stage.entry:02d}_{stage.name.replace('/', '_')}_profiles", self.evaluator(stage).reference,
                           evaluation, profiles, f"stage {stage.name} (steps {stage.start}-{stage.end})", self.train_cfg["figures"])
        if stage.window is not None and (following is None or (following.entry, following.window) != (stage.entry, stage.window)):
            self.window_params[stage.window] = state.params
            if self.main_process:
                (self.run_dir / "windows").mkdir(exist_ok=True)
                save_params(state.params, self.run_dir / "windows" / f"window_{stage.window}.npz")
        metric = _mean(evaluation.rel_l2) if self.counts_for_best(stage) else None
        self.save_checkpoint(stage, state, stage.end, metric=metric, force=True)

    def finish(self, state: TrainState, wall_start: float) -> dict[str, Any]:
        """The whole run's evaluation (each time's own window when time-marching), summary and outputs."""
        last = self.stages[-1]
        if last.window is not None:
            dtype = self.dtype(last)
            edges = window_edges(*self.pde(last).bounds["t"], self.windows)
            start = time.perf_counter()
            windows = [self.window_params[k] for k in range(self.windows)]
            evaluation = self.evaluator(None)(self.c.model_for(dtype).apply, windows, dtype, edges=edges)
            self.eval_seconds += time.perf_counter() - start
            self.best = dict(evaluation.rel_l2)
        else:
            evaluation = self.latest_evaluation[1]  # finish_stage evaluated the last stage at its end
            self.best = {k: min(self.best.get(k, math.inf), v) for k, v in evaluation.rel_l2.items()}
        with self.reported("the last checkpoint written"):
            self.checkpointer_wait()
        self.final_state, self.final_evaluation = state, evaluation
        executed = self.total - self.start_step
        summary = {
            "steps": self.total,
            "steps_executed": executed,
            "resumed_from_step": self.start_step if self.options.resume else None,
            "steps_per_second": executed / self.train_seconds if self.train_seconds > 0 else None,
            "compile_seconds": self.compile_seconds,
            "compilations": self.compilations,
            "wall_seconds": time.perf_counter() - wall_start,
            "final_rel_l2": evaluation.rel_l2,
            "best_rel_l2": dict(self.best),
            "final_max_abs": evaluation.max_abs,
            "persistence_rel_l2": evaluation.persistence,
            "evaluation_seconds": self.eval_seconds,
            "final_loss": self.record.get("loss"),
            **run_facts(self.cfg, self.pde(last), self.stages),
            "rollbacks": self.rollbacks,
            "stages": [self.stage_records[i] for i in sorted(self.stage_records)],
        }
        # Every segment of the run (its first start and each resume, each up to where the next began)
        # and their totals; the keys above are this segment's.
        segments = [*self.earlier_segments, self.segment(self.total)]
        summary["segments"] = segments
        summary["totals"] = {key: sum(s[key] for s in segments)
                             for key in ("steps_executed", "train_seconds", "compile_seconds", "wall_seconds")}
        if self.windows > 1:
            summary["time_windows"] = self.windows
        if self.main_process:
            if last.window is None:
                save_params(state.params, self.run_dir / "params.npz")
            else:  # time-marching: every window's network (also in windows/, one file each)
                save_window_params(windows, edges, self.run_dir / "params.npz")
            with self.reported("wrote the summary, figures and final parameters"):
                write_run_outputs(self.run_dir, self.evaluator(None).reference, evaluation, summary, self.train_cfg["figures"], self.sinks,
                                  signed=tuple(self.pde(last).signed_fields))
        for sink in self.sinks:
            sink.close(summary)
        if self.checkpointer is not None:
            self.checkpointer.close()
        return summary

    def after_chunk(self, stage: Stage, state: TrainState, step: int, metrics: dict[str, Any], wall_start: float) -> dict[str, Any]:
        """Log, evaluate and checkpoint at the step just reached; returns the record written."""
        log_every, eval_every, align_every = self.intervals()
        last = step == stage.end
        record: dict[str, Any] = {}
        if step % log_every == 0 or last:
            record.update({k: float(v) for k, v in metrics.items()})
            lr = learning_rate(stage, step - 1)
            if lr is not None:
                record["lr"] = lr * self.lr_scale
            record.update({f"weight/{k}": float(v) for k, v in state.weights.items()})
        if align_every and (step % align_every == 0 or last):
            record.update(self.alignment_metrics(stage, state))
        metric = None
        if step % eval_every == 0 or last:
            evaluation = self.evaluate(stage, state.params)
            self.latest_evaluation = (step, evaluation)
            record.update(evaluation.metrics())
            if self.counts_for_best(stage):
                metric = _mean(evaluation.rel_l2)
                for k, v in evaluation.rel_l2.items():
                    self.best[k] = min(self.best.get(k, math.inf), v)
        if record:
            labels = {"stage": stage.name} if len(self.stages) > 1 else {}
            labels.update({"phase": stage.phase} if stage.phase else {})
            labels.update({"window": stage.window} if stage.window is not None else {})
            record = {"step": step, "wall_seconds": time.perf_counter() - wall_start, **labels, **record}
            self._log(record)
        if self.checkpoint_every and step % self.checkpoint_every == 0 and not last:  # finish_stage saves the last
            self.save_checkpoint(stage, state, step, metric)
        return record

    def stop_for_signal(self, guard, stage: Stage, state: TrainState, step: int) -> None:
        """Save and wait for the files, then hand the signal to whoever handled it before us.

        With no earlier Python handler, exit with RESUMABLE_EXIT_CODE. An earlier handler (submitit's)
        decides: it requeues and exits (SIGUSR2), or returns (submitit ignores SIGTERM), and then
        training goes on with the checkpoint safely written.
        """
        from pinnrun.preemption import RESUMABLE_EXIT_CODE

        if self.checkpointer is None:
            self.checkpointer = self.make_checkpointer()
        self.save_checkpoint(stage, state, step, metric=None, force=True)
        self.checkpointer_wait()
        if guard.forwards_to_python_handler():
            for sink in self.sinks:
                if hasattr(sink, "mark_preempting"):
                    sink.mark_preempting()
            name = guard.signal_name
            guard.hand_over(step, self.run_dir)  # may exit (a requeue)
            guard.rearm()
            self.progress.message(f"{name} at step {step}: checkpoint saved; the earlier handler let training go on")
            return
        for sink in self.sinks:
            if hasattr(sink, "mark_preempting"):
                sink.mark_preempting()
                sink.close({"preempted_at_step": step}, exit_code=RESUMABLE_EXIT_CODE)
            else:
                sink.close({"preempted_at_step": step})
        guard.hand_over(step, self.run_dir)  # prints the resume command and exits

    @contextlib.contextmanager
    def reported(self, what: str, threshold: float = 2.0):
        """Say how long the enclosed work took when it took longer than ``threshold`` seconds (work
        outside the training steps: a reference solve, figures, the last checkpoint)."""
        start = time.perf_counter()
        yield
        seconds = time.perf_counter() - start
        if seconds > threshold:
            self.progress.message(f"{what} in {seconds:.1f} s")

    def checkpointer_wait(self) -> None:
        if self.checkpointer is not None:
            self.checkpointer.wait()

    def can_roll_back(self, stage: Stage) -> bool:
        limit = int(self.train_cfg.get("max_rollbacks", 3))
        if self.checkpointer is None or stage.uses_line_search or self.rollbacks >= limit:
            return False
        self.checkpointer.wait()
        return self.checkpointer.latest_step() is not None

    def roll_back(self, problem: str, state: TrainState) -> tuple[TrainState, int, int]:
        """Restore the latest checkpoint (in whichever stage it was saved) and halve the learning rate."""
        rollbacks, scale = self.rollbacks + 1, self.lr_scale * 0.5
        restored, index, step = self.restore_checkpoint(state)
        self.lr_scale, self.rollbacks = scale, rollbacks
        self.progress.message(f"{problem}: rolled back to step {step}, learning rate x{self.lr_scale:g} (rollback {self.rollbacks})")
        return restored, index, step
