"""Checkpoints of the training state: a thin wrapper around Orbax's ``CheckpointManager``.

Each checkpoint is a step folder ``<directory>/<step>/`` with two items:

* ``state``: the training-state pytree (``ocp.args.StandardSave``), restored bitwise with the structure,
  dtypes and shardings of a template (``like_state``);
* ``metadata``: a JSON dict (composed config, W&B run id, best error, pinnrun version, ...).

Retention combines the latest ``keep`` checkpoints with the ``keep_best`` best ones by an optional
``metric`` (an evaluation error; ``best_mode="min"``). A checkpoint saved without a metric is never a
candidate for best; it survives only while it is among the latest ``keep``.

Saves are asynchronous: ``save`` returns once the arrays are on the host (Orbax copies them before
returning, so the caller may donate or overwrite the device buffers straight away); the files are
written in a background thread. Orbax writes into ``<step>.orbax-checkpoint-tmp-*`` and renames the
folder when complete, so an unfinished save is never listed.

``restore()`` without a step restores the latest checkpoint that can be read. A damaged one (truncated
or deleted files) is reported with a warning and skipped; once an older one has been restored, the
damaged newer folders are renamed ``<step>.corrupt`` so that training can save those steps again.
"""

from __future__ import annotations

import json
import logging
import math
import warnings
from pathlib import Path
from typing import Any

import jax
import numpy as np

STATE_ITEM = "state"
METADATA_ITEM = "metadata"
METRIC_KEY = "metric"  # the key of orbax's per-step ``metrics`` JSON that the retention policy ranks
CORRUPT_SUFFIX = ".corrupt"

log = logging.getLogger(__name__)


class CheckpointError(RuntimeError):
    """No checkpoint could be restored (none exists, or all are damaged or incompatible)."""


def _ocp():
    import orbax.checkpoint as ocp  # lazy: importing orbax takes seconds

    return ocp


class _DropMissingMetricWarning(logging.Filter):
    """Orbax warns on every save without metrics; for us that means "not evaluated", which is fine."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "did not provide metrics" not in record.getMessage()


_FILTER = _DropMissingMetricWarning()


def _jsonable(value: Any) -> Any:
    """Metadata as plain JSON types (OmegaConf configs, numpy/jax scalars and arrays, paths are converted)."""

    def default(obj):
        try:
            from omegaconf import OmegaConf

            if OmegaConf.is_config(obj):
                return OmegaConf.to_container(obj, resolve=True)
        except ImportError:  # pragma: no cover
            pass
        if isinstance(obj, (np.generic, np.ndarray, jax.Array)):
            return np.asarray(obj).tolist()
        if isinstance(obj, Path):
            return str(obj)
        if isinstance(obj, (set, frozenset)):
            return sorted(obj)
        raise TypeError(f"checkpoint metadata is not JSON-serialisable: {type(obj).__name__} {obj!r}")

    return json.loads(json.dumps(value, default=default))


def _abstract(like_state):
    """``like_state`` as a tree of ``jax.ShapeDtypeStruct`` (keeps the shardings of jax arrays)."""

    def leaf(x):
        if isinstance(x, jax.ShapeDtypeStruct):
            return x
        if isinstance(x, jax.Array):
            return jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding)
        if hasattr(x, "shape") and hasattr(x, "dtype"):
            return jax.ShapeDtypeStruct(np.shape(x), x.dtype)
        return x

    return jax.tree.map(leaf, like_state)


class Checkpointer:
    """Asynchronous checkpoints of a pytree plus JSON metadata, with latest-N + best-N retention.

    ``Checkpointer(run_dir / "checkpoints", keep=3, keep_best=1)``; then ``save(step, state, metadata,
    metric=error)`` between training chunks, ``wait()`` before exiting, ``restore(like_state)`` to resume.
    """

    def __init__(
        self,
        directory: str | Path,
        keep: int = 3,
        keep_best: int = 1,
        best_mode: str = "min",
        async_save: bool = True,
    ):
        if keep < 1:
            raise ValueError(f"keep must be >= 1, got {keep}")
        if keep_best < 0:
            raise ValueError(f"keep_best must be >= 0, got {keep_best}")
        if best_mode not in ("min", "max"):
            raise ValueError(f"best_mode must be 'min' or 'max', got {best_mode!r}")
        ocp = _ocp()
        from orbax.checkpoint import checkpoint_managers as cm

        logging.getLogger("absl").addFilter(_FILTER)
        self.directory = Path(directory).expanduser().absolute()
        if any(c in str(self.directory) for c in "[]"):
            # TensorStore (under Orbax) saves into such a folder but cannot read it back.
            raise CheckpointError(
                f"checkpoint folder {self.directory} contains '[' or ']', from which Orbax cannot restore; "
                "choose a run directory without them"
            )
        self.keep, self.keep_best, self.best_mode = keep, keep_best, best_mode

        def metric_of(metrics) -> float:
            return float(metrics[METRIC_KEY])

        policy = cm.AnyPreservationPolicy(
            [
                cm.LatestN(n=keep),
                # BestN sorts ascending and keeps the last n: reverse the order when lower is better.
                cm.BestN(
                    get_metric_fn=metric_of,
                    reverse=best_mode == "min",
                    n=keep_best,
                    keep_checkpoints_without_metrics=False,
                ),
            ]
        )
        options = ocp.CheckpointManagerOptions(
            preservation_policy=policy,
            best_fn=metric_of,  # with best_mode: orbax writes the metrics and ranks best_step() by them
            best_mode=best_mode,
            enable_async_checkpointing=async_save,
            cleanup_tmp_directories=True,  # remove folders of saves killed half-way
            create=True,
        )
        self._manager = ocp.CheckpointManager(self.directory, options=options, item_names=(STATE_ITEM, METADATA_ITEM))
        self._pending: int | None = None  # the step of the save that may still be running

    # ----- saving -----
    def save(self, step: int, state, metadata: dict, metric: float | None = None, force: bool = False) -> bool:
        """Start saving ``state`` (and ``metadata``) as checkpoint ``step``; returns without waiting for the files.

        ``metric`` ranks the checkpoint for best-N retention (None or non-finite: not a candidate).
        ``force`` saves even where orbax's save policy would not. Saving a step that already exists is a
        no-op. Returns whether a save was started.
        """
        ocp = _ocp()
        step = int(step)
        if step in self._manager.all_steps():
            log.info("checkpoint for step %d already exists; not saving it again", step)
            return False
        metrics = None
        if metric is not None and math.isfinite(float(metric)):
            metrics = {METRIC_KEY: float(metric)}
        args = ocp.args.Composite(
            **{
                STATE_ITEM: ocp.args.StandardSave(state),
                METADATA_ITEM: ocp.args.JsonSave(_jsonable(dict(metadata))),
            }
        )
        saved = bool(self._manager.save(step, args=args, metrics=metrics, force=force))
        if saved:
            self._pending = step
        return saved

    def wait(self) -> None:
        """Block until pending saves are written (re-raises an error of a background save)."""
        self._manager.wait_until_finished()
        self._pending = None

    # ----- listing -----
    def steps(self) -> list[int]:
        """Steps of the finished checkpoints, ascending (a save still being written is not included)."""
        steps = list(self._manager.all_steps())
        if self._pending is not None:
            if self._manager.is_saving_in_progress():
                steps = [s for s in steps if s != self._pending]
            else:
                self._pending = None
        # A folder is renamed to <step> only when its save completed (a failed one stays a tmp folder).
        return sorted(s for s in steps if (self.directory / str(s)).is_dir())

    def latest_step(self) -> int | None:
        steps = self.steps()
        return steps[-1] if steps else None

    def best_step(self) -> int | None:
        """The finished checkpoint with the best metric (None if no checkpoint has one)."""
        best = self._manager.best_step()
        return best if best in self.steps() else None

    # ----- restoring -----
    def _candidates(self, step: int | None) -> list[int]:
        self.wait()
        self._manager.reload()  # see the folder as it is on disk
        steps = self.steps()
        if step is not None:
            return [int(step)]
        if not steps:
            raise CheckpointError(f"no checkpoint in {self.directory}")
        return steps[::-1]

    def _restore_first(self, step: int | None, attempt, what: str):
        """``attempt(step)`` for the candidate steps, newest first, until one works: (result, step, failed)."""
        failed: list[int] = []
        errors: list[str] = []
        for candidate in self._candidates(step):
            try:
                return attempt(candidate), candidate, failed
            except Exception as error:  # noqa: BLE001 - damaged files raise anything from JSON to tensorstore errors
                # the first line, without TensorStore's repr of its whole spec
                first = str(error).splitlines()[0].split(" See full TensorStore details")[0][:300] if str(error) else ""
                message = f"{type(error).__name__}: {first}"
                errors.append(f"step {candidate}: {message}")
                if step is not None:
                    break
                failed.append(candidate)
                warnings.warn(
                    f"pinnrun: checkpoint at step {candidate} in {self.directory} cannot be restored "
                    f"({message}); trying the previous one",
                    RuntimeWarning,
                    stacklevel=3,
                )
        raise CheckpointError(f"could not restore the {what} from any checkpoint in {self.directory}: " + "; ".join(errors))

    def _quarantine(self, steps: list[int]) -> None:
        """Rename damaged step folders out of orbax's sight so those steps can be saved again."""
        for step in steps:
            path = self.directory / str(step)
            if not path.exists():
                continue
            target = path.with_name(f"{step}{CORRUPT_SUFFIX}")
            n = 1
            while target.exists():
                target = path.with_name(f"{step}{CORRUPT_SUFFIX}-{n}")
                n += 1
            path.rename(target)
            warnings.warn(f"pinnrun: moved the damaged checkpoint {path} to {target}", RuntimeWarning, stacklevel=3)
        if steps:
            self._manager.reload()

    def restore(self, like_state, step: int | None = None) -> tuple[Any, dict, int]:
        """(state, metadata, step) of checkpoint ``step``, or of the latest one that can be restored.

        ``like_state`` is a template (arrays or ``jax.ShapeDtypeStruct``): the result has its tree
        structure, shapes, dtypes and shardings. It may also be a function ``metadata -> template``, called
        with each candidate checkpoint's metadata, for states whose structure depends on it (e.g. the
        optimizer of the phase the checkpoint was saved in). Damaged checkpoints newer than the restored
        one are reported (``RuntimeWarning``) and renamed ``<step>.corrupt``; with an explicit ``step``
        there is no fallback. Raises ``CheckpointError`` if nothing can be restored.
        """
        ocp = _ocp()

        def attempt(candidate: int):
            like = like_state
            if callable(like_state):
                like = like_state(self._read_metadata(candidate))
            args = ocp.args.Composite(
                **{STATE_ITEM: ocp.args.StandardRestore(_abstract(like)), METADATA_ITEM: ocp.args.JsonRestore()}
            )
            return self._manager.restore(candidate, args=args)

        restored, restored_step, failed = self._restore_first(step, attempt, "state")
        self._quarantine(failed)
        return restored[STATE_ITEM], dict(restored[METADATA_ITEM] or {}), restored_step

    def restore_params(self, step: int | None = None):
        """The ``params`` entry of a saved state, restored without a template (nested dicts and lists).

        For starting another run from these parameters (fine-tuning, evaluation), where the optimizer
        state of the saving run does not matter.
        """
        ocp = _ocp()

        def attempt(candidate: int):
            args = ocp.args.Composite(**{STATE_ITEM: ocp.args.StandardRestore()})
            return self._manager.restore(candidate, args=args)[STATE_ITEM]["params"]

        params, _, _ = self._restore_first(step, attempt, "parameters")
        return params

    def _read_metadata(self, step: int) -> dict:
        ocp = _ocp()
        restored = self._manager.restore(step, args=ocp.args.Composite(**{METADATA_ITEM: ocp.args.JsonRestore()}))
        return dict(restored[METADATA_ITEM] or {})

    def restore_metadata(self, step: int | None = None) -> dict:
        """The metadata of checkpoint ``step``, or of the latest checkpoint whose metadata can be read.

        (Only the metadata is read: the newest readable metadata may belong to a checkpoint whose state
        is damaged. To pick the state's template from the metadata, pass a function to ``restore``.)
        """
        restored, _, _ = self._restore_first(step, self._read_metadata, "metadata")
        return restored

    def close(self) -> None:
        """Wait for pending saves and release orbax's resources."""
        self._manager.close()
        self._pending = None

    def __enter__(self) -> Checkpointer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
