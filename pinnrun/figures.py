"""PNG figures of a run: prediction, reference and absolute error per field (snapshots over (x, y) for 2-D
evolution problems); error against time."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from pinnrun.evaluation import Evaluation
from pinnrun.pdes.base import Profile, Reference


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


def plot_snapshots(reference: Reference, evaluation: Evaluation, folder: Path, count: int = 4) -> dict[str, Path]:
    """For a field over (t, x, y): reference / prediction / |error| (rows) at ``count`` times (columns),
    one file per field, ``snapshots_<field>.png``; reference and prediction share one colour scale."""
    names = list(reference.axes)
    if len(names) != 3 or names[0] != "t":
        return {}
    plt = _pyplot()
    t, x, y = (reference.axes[n] for n in names)
    picks = np.unique(np.linspace(0, len(t) - 1, count).round().astype(int))
    out = {}
    for name, pred in evaluation.prediction.items():
        ref = np.asarray(reference.fields[name])
        low, high = min(ref.min(), pred.min()), max(ref.max(), pred.max())
        error = np.abs(pred - ref)
        fig, axes = plt.subplots(3, len(picks), figsize=(3.4 * len(picks), 9), squeeze=False)
        for col, i in enumerate(picks):
            panels = [("reference", ref[i], "jet", (low, high)), ("prediction", pred[i], "jet", (low, high)),
                      ("|error|", error[i], "viridis", (0.0, error.max()))]
            for row, (title, data, cmap, (vmin, vmax)) in enumerate(panels):
                ax = axes[row, col]
                # pcolormesh takes (x, y, C[y, x]): the reference stores [x, y].
                mesh = ax.pcolormesh(x, y, data.T, shading="auto", cmap=cmap, vmin=vmin, vmax=vmax)
                ax.set_aspect("equal")
                ax.set_title(f"{name} {title}, t = {t[i]:.3g}", fontsize=9)
                fig.colorbar(mesh, ax=ax, fraction=0.046)
        fig.suptitle(f"{name}: relative L2 {evaluation.rel_l2[name]:.2e} over the grid")
        fig.tight_layout()
        path = folder / f"snapshots_{name}.png"
        fig.savefig(path, dpi=80)
        plt.close(fig)
        out[f"snapshots_{name}"] = path
    return out


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


def profile_values(reference: Reference, evaluation: Evaluation, profiles) -> dict[str, np.ndarray]:
    """For each profile ``<field>_<along>``: the coordinates along it, the reference and the prediction
    on the grid line nearest the profile's ``at`` values (also saved as the line's actual position)."""
    names = list(reference.axes)
    out: dict[str, np.ndarray] = {}
    for profile in profiles:
        index: list[Any] = []
        for name in names:
            if name == profile.along:
                index.append(slice(None))
            else:
                coords = np.asarray(reference.axes[name])
                index.append(int(np.argmin(np.abs(coords - profile.at[name]))))
        key = f"{profile.field}_{profile.along}"
        out[f"{key}/coords"] = np.asarray(reference.axes[profile.along])
        out[f"{key}/at"] = np.array([reference.axes[n][i] for n, i in zip(names, index) if n != profile.along])
        out[f"{key}/reference"] = np.asarray(reference.fields[profile.field])[tuple(index)]
        out[f"{key}/prediction"] = np.asarray(evaluation.prediction[profile.field])[tuple(index)]
    return out


def write_profiles(path_stem: Path, reference: Reference, evaluation: Evaluation, profiles: tuple[Profile, ...], title: str,
                   make_figures: bool = True) -> None:
    """``<stem>.npz`` (profile_values) and, with ``make_figures``, ``<stem>.png``: one panel per profile."""
    values = profile_values(reference, evaluation, profiles)
    np.savez(path_stem.with_suffix(".npz"), **values)
    if not make_figures:
        return
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(profiles), figsize=(5.2 * len(profiles), 4.2), squeeze=False)
    for ax, profile in zip(axes[0], profiles):
        key = f"{profile.field}_{profile.along}"
        at = ", ".join(f"{n} = {v:.4g}" for n, v in zip([n for n in reference.axes if n != profile.along], values[f"{key}/at"]))
        ax.plot(values[f"{key}/coords"], values[f"{key}/reference"], "k-", lw=1.5, label="reference")
        ax.plot(values[f"{key}/coords"], values[f"{key}/prediction"], "r--", lw=1.5, label="network")
        ax.set_xlabel(profile.along)
        ax.set_title(f"{profile.field}({at}) (field rel L2 {evaluation.rel_l2.get(profile.field, float('nan')):.2e})")
        ax.grid(True, alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path_stem.with_suffix(".png"), dpi=100)
    plt.close(fig)


def write_evaluation(folder: Path, reference: Reference, evaluation: Evaluation, make_figures: bool = True) -> dict[str, Path]:
    """error_vs_t.npz (time-dependent problems) and, with ``make_figures``, solution.png and
    error_vs_t.png in ``folder``; returns the figures written."""
    images: dict[str, Path | None] = {}
    if evaluation.rel_l2_vs_t is not None:
        np.savez(folder / "error_vs_t.npz", t=reference.axes["t"], **evaluation.rel_l2_vs_t)
    if make_figures:
        images["solution"] = plot_solution(reference, evaluation, folder / "solution.png")
        images.update(plot_snapshots(reference, evaluation, folder))
        if evaluation.rel_l2_vs_t is not None:
            images["error_vs_t"] = plot_error_vs_time(reference.axes["t"], evaluation, folder / "error_vs_t.png")
    return {k: v for k, v in images.items() if v is not None}


def write_run_outputs(run_dir: Path, reference: Reference, evaluation: Evaluation, summary: dict[str, Any], make_figures: bool, sinks=()) -> None:
    """The final evaluation's files, the training figure (also to sinks that take images) and
    summary.json, written last."""
    images = write_evaluation(run_dir, reference, evaluation, make_figures)
    if make_figures:
        from pinnrun.plot import plot_training

        images["training"] = plot_training(run_dir)
        for sink in sinks:
            if hasattr(sink, "log_images"):
                sink.log_images(images, step=summary.get("steps"))
    tmp = run_dir / "summary.json.tmp"
    tmp.write_text(json.dumps(summary, indent=2))
    tmp.replace(run_dir / "summary.json")
