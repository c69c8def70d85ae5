"""The one shared trainer: a pure jitted chunk of steps, and a host loop that evaluates, logs and saves.

The training state is one pytree. ``chunk(state) -> (state, metrics)`` advances it by ``n`` steps with
``lax.scan``; the host only syncs between chunks, to log, evaluate and save. Nothing here knows which
PDE, network or optimizer it runs.
"""

from __future__ import annotations

import dataclasses
import json
import math
import platform
import time
from collections.abc import Callable, Mapping
from functools import reduce
from math import gcd
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from pinnrun import alignment
from pinnrun.adaptive import AdaptiveWeights
from pinnrun.evaluation import Evaluation, Evaluator
from pinnrun.losses import PINNLoss
from pinnrun.phases import Phase, PhaseStepper, build_stepper, learning_rate, phase_configs, plan_phases
from pinnrun.sinks import JsonlSink, Progress, Sink, truncate_metrics

Array = jax.Array
MAX_CHUNK_STEPS = 500


class TrainState(NamedTuple):
    step: Array
    params: Any
    opt_state: Any
    weights: dict[str, Array]
    key: Array


@dataclasses.dataclass
class Components:
    """What a run is made of, built from the config by ``pinnrun.build``."""

    pde: Any
    model_for: Callable[[Any], Any]  # dtype -> Model (a float64 phase uses a float64 network)
    loss_for: Callable[[Any], PINNLoss]  # dtype -> PINNLoss
    weights: dict[str, float]
    dtype: Any  # of the first phase
    mesh: Any = None  # data parallelism: the state is replicated on this mesh, batches are split

    def replicate(self, tree):
        """Place a pytree on every device of the mesh (no-op on one device)."""
        if self.mesh is None:
            return tree
        from jax.sharding import NamedSharding, PartitionSpec

        return jax.device_put(tree, NamedSharding(self.mesh, PartitionSpec()))

    @property
    def model(self):
        return self.model_for(self.dtype)

    @property
    def loss(self) -> PINNLoss:
        return self.loss_for(self.dtype)


def chunk_length(train_cfg: Mapping[str, Any], *intervals: int) -> int:
    """Steps per jitted call: divides every interval, at most MAX_CHUNK_STEPS (short for signals)."""
    if train_cfg.get("chunk_steps"):
        return int(train_cfg["chunk_steps"])
    length = reduce(gcd, [int(i) for i in intervals if i and i > 0])
    while length > MAX_CHUNK_STEPS:  # the largest divisor of `length` not above the cap
        length = next(d for d in range(MAX_CHUNK_STEPS, 0, -1) if length % d == 0)
    return length


def make_chunk(stepper: PhaseStepper, length: int) -> Callable:
    """``length`` steps in one lax.scan; returns the last step's losses and the inter-step alignment."""

    def chunk(state: TrainState):
        def body(carry, _):
            state, previous_update = carry
            state, (total, losses, diagnostics, update) = stepper.step(state)
            cosine = alignment.cosine(update, previous_update)
            return (state, update), (total, losses, diagnostics, cosine)

        zero_update = jax.tree.map(jnp.zeros_like, state.params)
        (state, _), (totals, losses, diagnostics, cosines) = jax.lax.scan(
            body, (state, zero_update), None, length=length
        )
        finite = jnp.isfinite(totals)
        nonfinite_offset = jnp.where(jnp.all(finite), -1, jnp.argmin(finite))
        if stepper.chunk_losses is not None:
            total, losses, diagnostics = stepper.chunk_losses(state)
        else:
            total, losses, diagnostics = totals[-1], {k: v[-1] for k, v in losses.items()}, {k: v[-1] for k, v in diagnostics.items()}
        metrics = {"loss": total, "nonfinite_offset": nonfinite_offset}
        metrics.update({f"loss/{k}": v for k, v in losses.items()})
        metrics.update(diagnostics)
        if length > 1:  # the first step of a chunk has no predecessor inside it
            metrics["align/inter"] = jnp.mean(cosines[1:])
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


def run_facts(cfg: Mapping[str, Any], pde) -> dict[str, Any]:
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
        "optimizer": "+".join(c["name"] for c in phase_configs(cfg["optim"])),
        "arch": cfg["arch"]["name"],
    }


def device_description() -> str:
    device = jax.devices()[0]
    return f"{device.platform}:{device.device_kind} x{jax.device_count()}"


def save_params(params, path: Path) -> None:
    """Parameters as an .npz keyed by their pytree path (readable without pinnrun)."""
    flat = {jax.tree_util.keystr(p): np.asarray(v) for p, v in jax.tree_util.tree_leaves_with_path(params)}
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, **flat)
    tmp.replace(path)


def load_params(path: Path, like):
    """Parameters saved by ``save_params``, in the structure of ``like``."""
    with np.load(path) as data:
        leaves = [jnp.asarray(data[jax.tree_util.keystr(p)]) for p, _ in jax.tree_util.tree_leaves_with_path(like)]
    return jax.tree.unflatten(jax.tree.structure(like), leaves)


@dataclasses.dataclass
class RunOptions:
    """How a run starts and what it keeps, beyond the config itself."""

    resume: bool = False  # continue from the latest checkpoint in the checkpoint folder
    init_params: Any = None  # start from these parameters (fine-tuning from another run)
    metadata: dict[str, Any] = dataclasses.field(default_factory=dict)  # stored with every checkpoint
    # Time-marching runs one Trainer per window in the same run directory:
    checkpoint_dir: Path | None = None  # default: <run_dir>/checkpoints
    step_offset: int = 0  # added to the steps written to metrics.jsonl
    record_extras: dict[str, Any] = dataclasses.field(default_factory=dict)  # added to every record
    reference: Any = None  # evaluate on this Reference instead of the PDE's own
    final_outputs: bool = True  # write params.npz, summary.json and figures at the end
    close_sinks: bool = True


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
        self.phases = plan_phases(cfg["optim"], int(self.train_cfg["steps"]), self.train_cfg["precision"])
        # Several processes (jax.distributed): all compute and checkpoint, process 0 alone writes files.
        self.main_process = jax.process_index() == 0
        self.progress = Progress(self.train_cfg["steps"], self.train_cfg["progress"] if self.main_process else "none")
        self.extra_sinks = list(sinks or [])
        self.evaluator = Evaluator(self.c.pde, self.train_cfg["eval_batch_size"], self.options.reference)
        self.term_names = self.c.pde.term_names
        self.weighting = AdaptiveWeights(cfg["weighting"], self.term_names)
        self._compiled: dict[tuple, Callable] = {}
        self._alignment_fns: dict[int, Callable] = {}
        self.compile_seconds = 0.0
        self.lr_scale = 1.0  # halved by each rollback after a non-finite loss
        self.rollbacks = 0
        self.best: dict[str, float] = {}
        self.latest_evaluation: tuple[int, Evaluation] | None = None  # (step, evaluation)
        ckpt = cfg["checkpoint"]
        self.checkpoint_every = int(ckpt["every"])
        self.checkpointer = None
        if self.checkpoint_every or self.options.resume or self.train_cfg.get("on_nan") == "rollback":
            self.checkpointer = self.make_checkpointer()

    def make_checkpointer(self):
        from pinnrun.checkpoint import Checkpointer

        ckpt = self.cfg["checkpoint"]
        directory = self.options.checkpoint_dir or self.run_dir / "checkpoints"
        return Checkpointer(directory, keep=int(ckpt["keep"]), keep_best=int(ckpt.get("keep_best", 1)))

    # ----- state -----
    def init_state(self) -> TrainState:
        seed = int(self.train_cfg["seed"])
        init_key, points_key, train_key = jax.random.split(jax.random.PRNGKey(seed), 3)
        if self.options.init_params is not None:
            params = jax.tree.map(lambda x: jnp.asarray(x, self.c.dtype), self.options.init_params)
        else:
            params = self.physics_informed_init(self.c.model.init(init_key))
        self.fixed_points = self.c.loss.fixed_points(points_key)
        weights = {k: jnp.asarray(v, self.c.dtype) for k, v in self.c.weights.items()}
        return TrainState(jnp.asarray(0, jnp.int32), params, None, weights, train_key)

    def physics_informed_init(self, params):
        """Fit the output layer to the initial condition by least squares (arch.pi_init, PirateNet)."""
        model = self.c.model
        initial = self.c.pde.initial_condition()
        if not self.cfg["arch"].get("pi_init") or model.fit_output is None or initial is None:
            return params
        points, values = initial
        return model.fit_output(params, jnp.asarray(points, self.c.dtype), jnp.asarray(values, self.c.dtype))

    def dtype(self, phase: Phase):
        return jnp.float64 if phase.precision == "float64" else jnp.float32

    def prepare_phase(self, phase: Phase) -> None:
        """Build the phase's stepper (its learning rate scaled down by any rollbacks)."""
        if self.lr_scale != 1.0 and "lr" in phase.cfg:
            phase = dataclasses.replace(phase, cfg={**phase.cfg, "lr": phase.cfg["lr"] * self.lr_scale})
        self.phase = phase
        self.stepper = build_stepper(phase, self.c.loss_for(self.dtype(phase)), self.fixed_points)

    def enter_phase(self, phase: Phase, state: TrainState) -> TrainState:
        """Cast the state to the phase's precision and start its optimizer."""
        dtype = self.dtype(phase)
        cast = lambda tree: jax.tree.map(lambda x: x.astype(dtype) if jnp.issubdtype(x.dtype, jnp.floating) else x, tree)  # noqa: E731
        params, weights = cast(state.params), cast(state.weights)
        self.prepare_phase(phase)
        opt_state = self.stepper.init(params, jax.random.fold_in(state.key, phase.index))
        if len(self.phases) > 1:
            self.progress.message(f"phase {phase.index + 1}/{len(self.phases)}: {phase.name} from step {phase.start} ({phase.precision})")
        state = state._replace(params=params, opt_state=opt_state, weights=weights)
        # An optimizer's init may keep references to the params (L-BFGS does): the chunk donates its
        # input, and XLA refuses to donate one buffer twice, so give every leaf its own buffer.
        return self.c.replicate(jax.tree.map(jnp.copy, state))

    def _chunk_fn(self, phase: Phase, length: int, state: TrainState) -> Callable:
        key = (phase.index, length, self.lr_scale)
        if key not in self._compiled:
            if not self._compiled:
                self.progress.message(f"compiling the training step ({length} steps per call) ...")
            start = time.perf_counter()
            chunk = make_chunk(self.stepper, length)
            self._compiled[key] = jax.jit(chunk, donate_argnums=0).lower(state).compile()
            seconds = time.perf_counter() - start
            self.compile_seconds += seconds
            self.progress.message(f"compiled in {seconds:.1f} s")
        return self._compiled[key]

    # ----- checkpoints -----
    def checkpoint_metadata(self, phase: Phase, step: int) -> dict[str, Any]:
        return {
            **self.options.metadata,
            "step": step,
            "phase": phase.index,
            "best_rel_l2": self.best,
            "lr_scale": self.lr_scale,
            "rollbacks": self.rollbacks,
        }

    def save_checkpoint(self, phase: Phase, state: TrainState, step: int, metric: float | None, force: bool = False) -> None:
        if self.checkpointer is None:
            return
        # Orbax copies the arrays to the host before save() returns, so the next chunk may donate them.
        self.checkpointer.save(step, state, self.checkpoint_metadata(phase, step), metric=metric, force=force)

    def restore_checkpoint(self, state: TrainState) -> tuple[TrainState, Phase, int]:
        """The latest restorable checkpoint (damaged newer ones are skipped): (state, its phase, its step)."""

        def template(metadata):  # the optimizer state's structure is that of the checkpoint's phase
            return self.enter_phase(self.phases[int(metadata.get("phase", 0))], state)

        restored, metadata, restored_step = self.checkpointer.restore(template)
        phase = self.phases[int(metadata.get("phase", 0))]
        self.lr_scale = float(metadata.get("lr_scale", 1.0))
        self.rollbacks = int(metadata.get("rollbacks", 0))
        self.best = {k: float(v) for k, v in metadata.get("best_rel_l2", {}).items()}
        self.prepare_phase(phase)
        return restored, phase, restored_step

    # ----- evaluation and diagnostics -----
    def evaluate(self, phase: Phase, params) -> Evaluation:
        dtype = self.dtype(phase)
        return self.evaluator(self.c.model_for(dtype).apply, params, dtype)

    def per_term_gradients(self, phase: Phase, state: TrainState, salt: int):
        """Per-term gradients (leading axis of K terms) on a fresh batch."""
        loss = self.c.loss_for(self.dtype(phase))
        points = loss.sample(jax.random.fold_in(state.key, salt), self.fixed_points)
        return loss.per_term_gradients(state.params, points)

    def alignment_metrics(self, phase: Phase, state: TrainState) -> dict[str, float]:
        if phase.index not in self._alignment_fns:
            optim = phase.cfg

            def fn(state):
                per_term = self.per_term_gradients(phase, state, salt=1)
                preconditioned = alignment.precondition(
                    state.opt_state, per_term, eps=optim.get("eps", 1e-8), b2=optim.get("b2", 0.999), batched=True
                )
                return alignment.alignment_metrics(self.term_names, per_term, preconditioned)

            self._alignment_fns[phase.index] = jax.jit(fn)
        return {k: float(v) for k, v in jax.device_get(self._alignment_fns[phase.index](state)).items()}

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

        total = int(self.train_cfg["steps"])
        log_every, eval_every, align_every = self.intervals()
        length = chunk_length(self.train_cfg, log_every, eval_every, align_every, self.weighting.interval, self.checkpoint_every)

        state = self.init_state()
        step, resumed_phase = 0, None
        metrics_path = self.run_dir / "metrics.jsonl"
        if self.options.resume and self.checkpointer.latest_step() is not None:
            state, resumed_phase, step = self.restore_checkpoint(state)
            if self.main_process:
                truncate_metrics(metrics_path, step + self.options.step_offset)
            self.progress.message(f"resuming from the checkpoint at step {step}")
        self.start_step = step
        self.jsonl = JsonlSink(metrics_path if self.main_process else None)
        self.sinks = [self.jsonl, *self.extra_sinks]

        record: dict[str, Any] = {}
        train_seconds = 0.0
        wall_start = time.perf_counter()
        on_nan = self.train_cfg.get("on_nan", "stop")
        with PreemptionGuard() as guard:
            phase_index = resumed_phase.index if resumed_phase is not None else 0
            while phase_index < len(self.phases):
                phase = self.phases[phase_index]
                if resumed_phase is None or phase.index != resumed_phase.index:
                    state = self.enter_phase(phase, state)
                resumed_phase = None
                while step < phase.end:
                    if self.weighting.due(step, phase):
                        loss = self.c.loss_for(self.dtype(phase))
                        state = state._replace(weights=self.weighting.update(phase, loss, self.fixed_points, state))
                    n = min(length - step % length, phase.end - step)
                    chunk = self._chunk_fn(phase, n, state)
                    start = time.perf_counter()
                    state, metrics = chunk(state)
                    metrics = jax.device_get(metrics)  # waits for the chunk: the only host sync per chunk
                    train_seconds += time.perf_counter() - start
                    problem = self.check_finite(metrics, step)
                    if problem:
                        if on_nan == "rollback" and self.can_roll_back(phase):
                            state, phase, step = self.roll_back(problem, state)
                            self.jsonl.truncate(step + self.options.step_offset)
                            continue
                        if self.checkpointer is not None:
                            self.checkpointer.wait()
                        raise FloatingPointError(problem + "; the last finite checkpoints are kept")
                    step += n
                    record = self.after_chunk(phase, state, step, metrics, wall_start)
                    errors = {k[len("rel_l2/") :]: v for k, v in record.items() if k.startswith("rel_l2/")}
                    rate = (step - self.start_step) / train_seconds if train_seconds > 0 else 0.0
                    self.progress.update(step, rate, record.get("loss"), errors or None)
                    if guard.requested:
                        self.stop_for_signal(guard, phase, state, step)
                phase_index += 1

        evaluated_at, evaluation = self.latest_evaluation or (None, None)
        if evaluated_at != total:  # the last chunk evaluates; only a run resumed at its end has not
            evaluation = self.evaluate(self.phases[-1], state.params)
        self.best = {k: min(self.best.get(k, math.inf), v) for k, v in evaluation.rel_l2.items()}
        self.save_checkpoint(self.phases[-1], state, total, metric=_mean(evaluation.rel_l2), force=True)
        self.checkpointer_wait()
        self.final_state, self.final_evaluation = state, evaluation
        executed = total - self.start_step
        summary = {
            "steps": total,
            "steps_executed": executed,
            "resumed_from_step": self.start_step if self.options.resume else None,
            "steps_per_second": executed / train_seconds if train_seconds > 0 else None,
            "compile_seconds": self.compile_seconds,
            "wall_seconds": time.perf_counter() - wall_start,
            "final_rel_l2": evaluation.rel_l2,
            "best_rel_l2": dict(self.best),
            "final_max_abs": evaluation.max_abs,
            "final_loss": record.get("loss"),
            **run_facts(self.cfg, self.c.pde),
            "rollbacks": self.rollbacks,
        }
        if self.options.final_outputs and self.main_process:
            self.write_outputs(state, evaluation, summary)
        if self.options.close_sinks:
            for sink in self.sinks:
                sink.close(summary)
        else:
            self.jsonl.close(summary)
        if self.checkpointer is not None:
            self.checkpointer.close()
        return summary

    def after_chunk(self, phase: Phase, state: TrainState, step: int, metrics: dict[str, Any], wall_start: float) -> dict[str, Any]:
        """Log, evaluate and checkpoint at the step just reached; returns the record written."""
        log_every, eval_every, align_every = self.intervals()
        last = step == phase.end
        record: dict[str, Any] = {}
        if step % log_every == 0 or last:
            record.update({k: float(v) for k, v in metrics.items()})
            lr = learning_rate(phase, step - 1)
            if lr is not None:
                record["lr"] = lr * self.lr_scale
            record.update({f"weight/{k}": float(v) for k, v in state.weights.items()})
            if len(self.phases) > 1:
                record["phase"] = phase.name
        if align_every and (step % align_every == 0 or last):
            record.update(self.alignment_metrics(phase, state))
        metric = None
        if step % eval_every == 0 or last:
            evaluation = self.evaluate(phase, state.params)
            self.latest_evaluation = (step, evaluation)
            record.update(evaluation.metrics())
            metric = _mean(evaluation.rel_l2)
            for k, v in evaluation.rel_l2.items():
                self.best[k] = min(self.best.get(k, math.inf), v)
        if record:
            record = {"step": step + self.options.step_offset, "wall_seconds": time.perf_counter() - wall_start, **self.options.record_extras, **record}
            self._log(record)
        if self.checkpoint_every and step % self.checkpoint_every == 0:
            self.save_checkpoint(phase, state, step, metric)
        return record

    def stop_for_signal(self, guard, phase: Phase, state: TrainState, step: int) -> None:
        """Save and wait for the files, then hand the signal to whoever handled it before us.

        With no earlier Python handler, exit with RESUMABLE_EXIT_CODE. An earlier handler (submitit's)
        decides: it requeues and exits (SIGUSR2), or returns (submitit ignores SIGTERM), and then
        training goes on with the checkpoint safely written.
        """
        from pinnrun.preemption import RESUMABLE_EXIT_CODE

        if self.checkpointer is None:
            self.checkpointer = self.make_checkpointer()
        self.save_checkpoint(phase, state, step, metric=None, force=True)
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

    def checkpointer_wait(self) -> None:
        if self.checkpointer is not None:
            self.checkpointer.wait()

    def can_roll_back(self, phase: Phase) -> bool:
        limit = int(self.train_cfg.get("max_rollbacks", 3))
        if self.checkpointer is None or phase.name == "lbfgs" or self.rollbacks >= limit:
            return False
        self.checkpointer.wait()
        return self.checkpointer.latest_step() is not None

    def roll_back(self, problem: str, state: TrainState) -> tuple[TrainState, Phase, int]:
        """Restore the latest checkpoint and halve the learning rate."""
        rollbacks, scale = self.rollbacks + 1, self.lr_scale * 0.5
        restored, phase, step = self.restore_checkpoint(state)
        self.lr_scale, self.rollbacks = scale, rollbacks
        self.prepare_phase(phase)
        self.progress.message(f"{problem}: rolled back to step {step}, learning rate x{self.lr_scale:g} (rollback {self.rollbacks})")
        return restored, phase, step

    def write_outputs(self, state: TrainState, evaluation: Evaluation, summary: dict[str, Any]) -> None:
        save_params(state.params, self.run_dir / "params.npz")
        write_run_outputs(self.run_dir, self.evaluator.reference, evaluation, summary, self.train_cfg["figures"], self.sinks)


def write_run_outputs(run_dir: Path, reference, evaluation: Evaluation, summary: dict[str, Any], make_figures: bool, sinks=()) -> None:
    """error_vs_t.npz, the figures (also to sinks that take images) and summary.json, written last."""
    if evaluation.rel_l2_vs_t is not None:
        np.savez(run_dir / "error_vs_t.npz", t=reference.axes["t"], **evaluation.rel_l2_vs_t)
    if make_figures:
        from pinnrun import figures
        from pinnrun.plot import plot_training

        images = {
            "solution": figures.plot_solution(reference, evaluation, run_dir / "solution.png"),
            "training": plot_training(run_dir),
        }
        if evaluation.rel_l2_vs_t is not None:
            images["error_vs_t"] = figures.plot_error_vs_time(reference.axes["t"], evaluation, run_dir / "error_vs_t.png")
        images = {k: v for k, v in images.items() if v is not None}
        for sink in sinks:
            if hasattr(sink, "log_images"):
                sink.log_images(images, step=summary.get("steps"))
    tmp = run_dir / "summary.json.tmp"
    tmp.write_text(json.dumps(summary, indent=2))
    tmp.replace(run_dir / "summary.json")
