"""PNG figures of a run: prediction, reference and absolute error per field; error against time."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pinnrun.evaluation import Evaluation
from pinnrun.pdes.base import Reference


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def plot_solution(reference: Reference, evaluation: Evaluation, path: Path) -> Path | None:
    """One row per field: reference, prediction, |error|. Needs a 1-D or 2-D grid."""
    names = list(evaluation.prediction)
    axes_names = list(reference.axes)
    if not names or len(axes_names) > 2:
        return None
    plt = _pyplot()
    fig, axes = plt.subplots(len(names), 3, figsize=(13, 3.6 * len(names)), squeeze=False)
    for row, name in enumerate(names):
        ref = np.asarray(reference.fields[name])
        pred = evaluation.prediction[name]
        panels = [("reference", ref), ("prediction", pred), ("|error|", np.abs(pred - ref))]
        for col, (title, data) in enumerate(panels):
            ax = axes[row, col]
            if len(axes_names) == 1:
                ax.plot(reference.axes[axes_names[0]], data)
                ax.set_xlabel(axes_names[0])
            else:
                a0, a1 = (reference.axes[n] for n in axes_names)
                # Put the first input (t for time-dependent problems) on the horizontal axis.
                mesh = ax.pcolormesh(a0, a1, data.T, shading="auto", cmap="jet" if col < 2 else "viridis")
                fig.colorbar(mesh, ax=ax)
                ax.set_xlabel(axes_names[0])
                ax.set_ylabel(axes_names[1])
            ax.set_title(f"{name}: {title}" + (f" (rel L2 {evaluation.rel_l2[name]:.2e})" if col == 1 else ""))
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_error_vs_time(times: np.ndarray, evaluation: Evaluation, path: Path) -> Path | None:
    if not evaluation.rel_l2_vs_t:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, err in evaluation.rel_l2_vs_t.items():
        ax.semilogy(times, err, label=name)
    ax.set_xlabel("t")
    ax.set_ylabel("relative L2 error")
    ax.legend()
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
