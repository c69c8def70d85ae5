"""Training curves from metrics.jsonl: losses, errors, loss weights and alignment scores over steps.

``pinnrun-plot <run_dir> [<run_dir> ...]`` writes ``training.png`` into each run directory (the trainer
writes the same figure at the end of a run). Given several runs it also draws them together,
``--compare`` (default ``comparison.png``): total loss and relative L2 error (mean over fields)
against step, one line per run, labelled by its folder's name.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from pinnrun.sinks import read_metrics

# (title, metric-key prefixes, y scale, y label)
PANELS = (
    ("losses: total and per term", ("loss",), "log", "loss"),
    ("relative L2 error (at evaluations)", ("rel_l2/",), "log", "relative L2 error"),
    ("loss weights", ("weight/",), "log", "weight"),
    ("causal weights of the time chunks", ("causal/",), "linear", "causal weight"),
    ("learning rate", ("lr",), "log", "learning rate"),
    ("gradient alignment", ("align/",), "linear", "alignment score / cosine"),
)
LINE_STYLES = ("-", "--", "-.", ":")   # with the colour cycle, equal curves stay visible


def series(records: list[dict], prefixes: tuple[str, ...]) -> dict[str, tuple[list[int], list[float]]]:
    """key -> (steps, values) for every numeric key that starts with one of the prefixes."""
    out: dict[str, tuple[list[int], list[float]]] = {}
    for record in records:
        for key, value in record.items():
            if key.startswith(prefixes) and isinstance(value, (int, float)) and math.isfinite(value):
                steps, values = out.setdefault(key, ([], []))
                steps.append(record["step"])
                values.append(value)
    return out


def plot_training(run_dir: Path, output: Path | None = None, summary: dict | None = None) -> Path:
    """training.png of a run; ``summary`` (default: the run's summary.json) gives a time-marched
    run's final errors over the whole horizon."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    run_dir = Path(run_dir)
    records = read_metrics(run_dir / "metrics.jsonl")
    summary = summary if summary is not None else _summary(run_dir)
    # Time-marching: each evaluation during a window measures that window's part of the horizon;
    # the windows' ends are marked (dotted) and the final errors over the whole horizon drawn as stars.
    window_ends = [a["step"] for a, r in zip(records, records[1:]) if "window" in r and r.get("window") != a.get("window")]
    fig, axes = plt.subplots(2, 3, figsize=(17, 8))
    for ax, (title, prefixes, scale, ylabel) in zip(axes.flat, PANELS):
        for step in window_ends:
            ax.axvline(step, color="0.5", linestyle=":", linewidth=1.0)
        if prefixes == ("rel_l2/",) and window_ends:
            title = "relative L2 error of each window's part; stars: whole horizon"
            last = records[-1]["step"] if records else 0
            for i, (name, value) in enumerate(sorted((summary or {}).get("final_rel_l2", {}).items())):
                ax.plot([last], [value], marker="*", markersize=12, color=f"C{i % 10}", linestyle="none",
                        label=f"{name}, whole horizon")
        curves = series(records, prefixes)
        for i, (key, (steps, values)) in enumerate(sorted(curves.items())):
            positive = scale != "log" or all(v > 0 for v in values)
            total = key == "loss"
            ax.plot(steps, values, label="total" if total else key, marker="." if len(steps) < 30 else None,
                    color="k" if total else f"C{i % 10}", linewidth=2.0 if total else 1.2,
                    linestyle="-" if total else LINE_STYLES[(i // 10 + i) % len(LINE_STYLES)])
            if scale == "log" and positive:
                ax.set_yscale("log")
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.set_ylabel(ylabel)
        ax.grid(True, which="both", alpha=0.3)
        if curves:
            ax.legend(fontsize=7, ncol=2)
        else:
            ax.text(0.5, 0.5, "not logged", ha="center", va="center", transform=ax.transAxes)
    fig.tight_layout()
    output = output or run_dir / "training.png"
    fig.savefig(output, dpi=100)
    plt.close(fig)
    return output


def mean_error(records: list[dict]) -> tuple[list[int], list[float]]:
    """(steps, mean over fields of rel_l2/<field>) at every evaluated step."""
    steps, values = [], []
    for record in records:
        errors = [v for k, v in record.items() if k.startswith("rel_l2/") and isinstance(v, (int, float)) and math.isfinite(v)]
        if errors:
            steps.append(record["step"])
            values.append(sum(errors) / len(errors))
    return steps, values


def plot_comparison(run_dirs: list[Path], output: Path) -> Path:
    """Several runs in one figure: total loss and mean relative L2 error against step."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(13, 4.8))
    for i, run_dir in enumerate(run_dirs):
        records = read_metrics(Path(run_dir) / "metrics.jsonl")
        style = {"linestyle": LINE_STYLES[i % len(LINE_STYLES)], "color": f"C{i % 10}", "label": Path(run_dir).name}
        loss = [(r["step"], r["loss"]) for r in records if isinstance(r.get("loss"), (int, float)) and r["loss"] > 0]
        if loss:
            axes[0].plot(*zip(*loss), **style)
        steps, values = mean_error(records)
        if steps:
            axes[1].plot(steps, values, marker="." if len(steps) < 30 else None, **style)
    for ax, ylabel in zip(axes, ("total loss", "relative L2 error (mean over fields)")):
        ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_ylabel(ylabel)
        ax.grid(True, which="both", alpha=0.3)
    axes[1].legend(fontsize=7)
    fig.suptitle(f"{len(run_dirs)} runs")
    fig.tight_layout()
    fig.savefig(output, dpi=100)
    plt.close(fig)
    return output


def _summary(run_dir: Path) -> dict | None:
    import json

    path = Path(run_dir) / "summary.json"
    try:
        return json.loads(path.read_text()) if path.is_file() else None
    except (OSError, ValueError):
        return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pinnrun-plot", description=__doc__.splitlines()[0])
    parser.add_argument("run_dirs", nargs="+", type=Path, help="run directories holding metrics.jsonl")
    parser.add_argument("--compare", type=Path, default=Path("comparison.png"),
                        help="with several runs: the figure that draws them together (default: comparison.png)")
    args = parser.parse_args(argv)
    status, found = 0, []
    for run_dir in args.run_dirs:
        if not (run_dir / "metrics.jsonl").is_file():
            print(f"pinnrun-plot: {run_dir}: no metrics.jsonl", file=sys.stderr)
            status = 2
            continue
        print(plot_training(run_dir))
        found.append(run_dir)
    if len(found) > 1:
        print(plot_comparison(found, args.compare))
    return status


if __name__ == "__main__":
    sys.exit(main())
