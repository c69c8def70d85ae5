"""Evaluation without training: restore a run's parameters, evaluate, write errors and figures.

``pinnrun mode=eval run_dir=<dir>`` (or ``pinnrun-eval <dir>``) uses the best checkpoint when the run has
checkpoints, else its final ``params.npz``; results go to ``<dir>/eval/``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from omegaconf import OmegaConf

from pinnrun.config import ConfigError, validate


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
    """Evaluate a run's parameters on its PDE's reference; returns the mean relative L2 error."""
    from pinnrun import figures
    from pinnrun.build import build, jax_settings
    from pinnrun.evaluation import Evaluator

    config_path = run_dir / "config.yaml"
    if not run_dir.is_dir():
        raise ConfigError(f"run_dir: {run_dir} does not exist (give the folder of a pinnrun run)")
    if not config_path.is_file():
        raise ConfigError(f"run_dir: {run_dir} has no config.yaml (not a pinnrun run directory)")
    config = validate(OmegaConf.load(config_path))
    out = run_dir / "eval"
    out.mkdir(exist_ok=True)
    with jax_settings(config):
        components = build(config)
        like = components.model.init(jax.random.PRNGKey(0))
        params, source = run_params(run_dir, like)
        dtype = jax.tree.leaves(params)[0].dtype
        model = components.model_for(jnp.dtype(dtype))
        evaluator = Evaluator(components.pde, int(config["train"]["eval_batch_size"]))
        evaluation = evaluator(model.apply, params, dtype)
    result = {"source": source, "rel_l2": evaluation.rel_l2, "max_abs": evaluation.max_abs}
    (out / "errors.json").write_text(json.dumps(result, indent=2))
    figures.write_evaluation(out, evaluator.reference, evaluation)
    print(f"evaluated {source} of {run_dir}")
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
