"""Evaluation without training: restore a run's parameters, evaluate, write errors and figures.

``pinnrun mode=eval run_dir=<dir>`` (or ``pinnrun-eval <dir>``) uses the best checkpoint when the run has
checkpoints, else its final ``params.npz``; results go to ``<dir>/eval/``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import jax
import numpy as np

from pinnrun.config import ConfigError


def run_params(run_dir: Path, like, prefer: str = "best", key: str = "run_dir"):
    """(params, where they came from) for a run directory: its best (prefer="best") or latest
    checkpoint, else its params.npz; ``key`` names the config key in errors."""
    from pinnrun.trainer import load_params

    ckpt_dir = run_dir / "checkpoints"
    if ckpt_dir.is_dir():
        from pinnrun.checkpoint import Checkpointer

        checkpointer = Checkpointer(ckpt_dir)
        try:
            step = (checkpointer.best_step() if prefer == "best" else None) or checkpointer.latest_step()
            if step is not None:
                params = checkpointer.restore_params(step)
                return jax.tree.unflatten(jax.tree.structure(like), jax.tree.leaves(params)), f"checkpoint {step}"
        finally:
            checkpointer.close()
    if (run_dir / "params.npz").is_file():
        return load_params(run_dir / "params.npz", like), "params.npz"
    raise ConfigError(f"{key}: {run_dir} has neither checkpoints nor params.npz")


def evaluate_run(run_dir: Path, output_dir: Path | None = None) -> float:
    """Evaluate a run's parameters on its PDE's reference (the last stage's PDE; a time-marched run
    with each window's network); returns the mean relative L2 error."""
    from pinnrun import figures
    from pinnrun.runs import load_run
    from pinnrun.trainer import window_count

    params_file = run_dir / "params.npz"
    marched = run_dir.is_dir() and params_file.is_file() and window_count(params_file) > 0
    run = load_run(run_dir, which="final" if marched else "best")
    evaluation = run.evaluate()
    out = run.run_dir / "eval"
    out.mkdir(exist_ok=True)
    result = {"source": run.source, "rel_l2": evaluation.rel_l2, "max_abs": evaluation.max_abs}
    (out / "errors.json").write_text(json.dumps(result, indent=2))
    figures.write_evaluation(out, run.reference, evaluation, summary=run.summary, signed=tuple(run.pde.signed_fields))
    print(f"evaluated {run.source} of {run.run_dir}")
    print("relative L2: " + ", ".join(f"{k} {v:.3e}" for k, v in evaluation.rel_l2.items()))
    print(f"wrote {out}")
    return float(np.mean(list(evaluation.rel_l2.values())))


def main(argv: list[str] | None = None) -> int:
    """``pinnrun-eval <run_dir> [<run_dir> ...]``"""
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help"):
        print("usage: pinnrun-eval <run_dir> [<run_dir> ...]   evaluate runs' saved parameters")
        return 0 if args else 2
    for arg in args:
        try:
            evaluate_run(Path(arg).expanduser().absolute())
        except ConfigError as error:
            print(f"pinnrun-eval: {error}", file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
