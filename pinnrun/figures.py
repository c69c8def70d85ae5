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


FIELD_CMAP = "viridis"     # perceptual, for fields
SIGNED_CMAP = "RdBu_r"     # diverging, centred at 0: signed errors, and fields a PDE declares signed


def field_scale(ref: np.ndarray, pred: np.ndarray, signed: bool = False) -> dict[str, Any]:
    """One colour scale for a field's reference and prediction (pcolormesh keywords): their joint
    range in viridis, or, for a signed field, a diverging map symmetric about 0."""
    low = float(min(np.nanmin(ref), np.nanmin(pred)))
    high = float(max(np.nanmax(ref), np.nanmax(pred)))
    if signed:
        bound = max(abs(low), abs(high)) or 1.0
        return {"cmap": SIGNED_CMAP, "vmin": -bound, "vmax": bound}
    return {"cmap": FIELD_CMAP, "vmin": low, "vmax": high if high > low else low + 1.0}


def error_scale(error: np.ndarray) -> dict[str, Any]:
    """A signed error (prediction - reference) on a diverging map centred at 0."""
    bound = float(np.nanmax(np.abs(error))) or 1.0
    return {"cmap": SIGNED_CMAP, "vmin": -bound, "vmax": bound}


def run_title(summary: dict[str, Any] | None) -> str:
    """``<pde>, <optimizer>, step <n>`` from a run's summary ('' without one)."""
    if not summary:
        return ""
    parts = [str(summary.get("pde", "")), str(summary.get("optimizer", "")),
             f"step {summary['steps']}" if summary.get("steps") is not None else ""]
    return ", ".join(p for p in parts if p)


def window_edges_of(summary: dict[str, Any] | None) -> np.ndarray | None:
    """The time-window edges of a time-marched run, from its summary (None otherwise)."""
    if not summary or int(summary.get("time_windows") or 1) < 2 or "t" not in (summary.get("domain") or {}):
        return None
    from pinnrun.marching import window_edges

    return window_edges(*summary["domain"]["t"], int(summary["time_windows"]))


def plot_solution(reference: Reference, evaluation: Evaluation, path: Path, title: str = "",
                  edges: np.ndarray | None = None, signed: tuple[str, ...] = ()) -> Path | None:
    """One row per field: reference, prediction (one colour scale for both) and the signed error
    (diverging, centred at 0), with labelled colour bars; time-window edges as dashed lines on the
    t axis. Needs a 1-D or 2-D grid."""
    names = list(evaluation.prediction)
    axes_names = list(reference.axes)
    if not names or len(axes_names) > 2:
        return None
    plt = _pyplot()
    fig, axes = plt.subplots(len(names), 3, figsize=(13, 3.6 * len(names) + 0.4), squeeze=False)
    for row, name in enumerate(names):
        ref = np.asarray(reference.fields[name])
        pred = evaluation.prediction[name]
        error = pred - ref
        scale = field_scale(ref, pred, name in signed)
        panels = [("reference", ref, scale, name), ("prediction", pred, scale, name),
                  ("error", error, error_scale(error), f"{name} error (prediction - reference)")]
        for col, (label, data, keywords, bar_label) in enumerate(panels):
            ax = axes[row, col]
            if len(axes_names) == 1:
                ax.plot(reference.axes[axes_names[0]], data, color="k" if col < 2 else "C3")
                if col < 2:
                    ax.set_ylim(keywords["vmin"], keywords["vmax"])   # reference and prediction alike
                ax.set_xlabel(axes_names[0])
                ax.set_ylabel(bar_label)
            else:
                a0, a1 = (reference.axes[n] for n in axes_names)
                # Put the first input (t for time-dependent problems) on the horizontal axis.
                mesh = ax.pcolormesh(a0, a1, data.T, shading="auto", **keywords)
                fig.colorbar(mesh, ax=ax, label=bar_label)
                ax.set_xlabel(axes_names[0])
                ax.set_ylabel(axes_names[1])
            if edges is not None and axes_names[0] == "t":
                for edge in edges[1:-1]:
                    ax.axvline(edge, color="k", linestyle="--", linewidth=0.8, alpha=0.7)
            extra = f" (rel L2 {evaluation.rel_l2[name]:.2e}, max |error| {evaluation.max_abs[name]:.2e})" if col == 2 else ""
            ax.set_title(f"{name}: {label}{extra}", fontsize=10)
    errors = ", ".join(f"{k} {v:.2e}" for k, v in evaluation.rel_l2.items())
    windows = f"; dashed: the {len(edges) - 1} time windows' edges" if edges is not None and axes_names[0] == "t" else ""
    fig.suptitle(f"{title + ': ' if title else ''}relative L2 {errors}{windows}")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_snapshots(reference: Reference, evaluation: Evaluation, folder: Path, count: int = 4, title: str = "",
                   signed: tuple[str, ...] = ()) -> dict[str, Path]:
    """For a field over (t, x, y): reference / prediction / signed error (rows) at ``count`` times
    (columns), one file per field, ``snapshots_<field>.png``; reference and prediction share one
    colour scale (viridis, or diverging and centred at 0 for a signed field), the error a diverging one."""
    names = list(reference.axes)
    if len(names) != 3 or names[0] != "t":
        return {}
    plt = _pyplot()
    t, x, y = (reference.axes[n] for n in names)
    picks = np.unique(np.linspace(0, len(t) - 1, count).round().astype(int))
    out = {}
    for name, pred in evaluation.prediction.items():
        ref = np.asarray(reference.fields[name])
        error = pred - ref
        scale, errors = field_scale(ref, pred, name in signed), error_scale(error)
        fig, axes = plt.subplots(3, len(picks), figsize=(3.4 * len(picks), 9), squeeze=False)
        for col, i in enumerate(picks):
            panels = [("reference", ref[i], scale, name), ("prediction", pred[i], scale, name),
                      ("error", error[i], errors, f"{name} error")]
            for row, (label, data, keywords, bar_label) in enumerate(panels):
                ax = axes[row, col]
                # pcolormesh takes (x, y, C[y, x]): the reference stores [x, y].
                mesh = ax.pcolormesh(x, y, data.T, shading="auto", **keywords)
                ax.set_aspect("equal")
                ax.set_title(f"{name} {label}, t = {t[i]:.3g}", fontsize=9)
                ax.set_xlabel(names[1], fontsize=8)
                ax.set_ylabel(names[2], fontsize=8)
                fig.colorbar(mesh, ax=ax, fraction=0.046, label=bar_label)
        fig.suptitle(f"{title + ': ' if title else ''}{name}, relative L2 {evaluation.rel_l2[name]:.2e} over the grid")
        fig.tight_layout()
        path = folder / f"snapshots_{name}.png"
        fig.savefig(path, dpi=80)
        plt.close(fig)
        out[f"snapshots_{name}"] = path
    return out


def plot_error_vs_time(times: np.ndarray, evaluation: Evaluation, path: Path, title: str = "",
                       edges: np.ndarray | None = None) -> Path | None:
    if not evaluation.rel_l2_vs_t:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    from pinnrun.plot import LINE_STYLES

    for i, (name, err) in enumerate(evaluation.rel_l2_vs_t.items()):
        ax.semilogy(times, err, label=name, linestyle=LINE_STYLES[i % len(LINE_STYLES)])
    for edge in ([] if edges is None else edges[1:-1]):
        ax.axvline(edge, color="k", linestyle="--", linewidth=0.8, alpha=0.5)
    ax.set_xlabel("t")
    ax.set_ylabel("relative L2 error at t")
    ax.set_title(f"{title + ': ' if title else ''}error against time", fontsize=10)
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


def write_evaluation(folder: Path, reference: Reference, evaluation: Evaluation, make_figures: bool = True,
                     summary: dict[str, Any] | None = None, signed: tuple[str, ...] = ()) -> dict[str, Path]:
    """error_vs_t.npz (time-dependent problems) and, with ``make_figures``, solution.png (or the 2-D
    problems' snapshots) and error_vs_t.png in ``folder``, titled from ``summary`` (PDE, optimizer,
    step; the time windows' edges); ``signed``: fields drawn on a diverging scale centred at 0.
    Returns the figures written."""
    images: dict[str, Path | None] = {}
    if evaluation.rel_l2_vs_t is not None:
        np.savez(folder / "error_vs_t.npz", t=reference.axes["t"], **evaluation.rel_l2_vs_t)
    if make_figures:
        title, edges = run_title(summary), window_edges_of(summary)
        images["solution"] = plot_solution(reference, evaluation, folder / "solution.png", title, edges, signed)
        images.update(plot_snapshots(reference, evaluation, folder, title=title, signed=signed))
        if evaluation.rel_l2_vs_t is not None:
            images["error_vs_t"] = plot_error_vs_time(reference.axes["t"], evaluation, folder / "error_vs_t.png", title, edges)
    return {k: v for k, v in images.items() if v is not None}


def write_run_outputs(run_dir: Path, reference: Reference, evaluation: Evaluation, summary: dict[str, Any], make_figures: bool, sinks=(),
                      signed: tuple[str, ...] = ()) -> None:
    """The final evaluation's files, the training figure (also to sinks that take images) and
    summary.json, written last."""
    images = write_evaluation(run_dir, reference, evaluation, make_figures, summary, signed)
    if make_figures:
        from pinnrun.plot import plot_training

        images["training"] = plot_training(run_dir, summary=summary)
        for sink in sinks:
            if hasattr(sink, "log_images"):
                sink.log_images(images, step=summary.get("steps"))
    tmp = run_dir / "summary.json.tmp"
    tmp.write_text(json.dumps(summary, indent=2))
    tmp.replace(run_dir / "summary.json")
