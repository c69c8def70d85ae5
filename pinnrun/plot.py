"""Training curves from metrics.jsonl: losses, errors, loss weights and alignment scores over steps.

``pinnrun-plot <run_dir> [<run_dir> ...]`` writes ``training.png`` into each run directory; the trainer
writes the same figure at the end of a run.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from pinnrun.sinks import read_metrics

PANELS = (
    ("losses", ("loss/",), "log"),
    ("relative L2 error", ("rel_l2/",), "log"),
    ("loss weights", ("weight/", "causal/"), "log"),
    ("gradient alignment", ("align/",), "linear"),
)


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


def plot_training(run_dir: Path, output: Path | None = None) -> Path:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    run_dir = Path(run_dir)
    records = read_metrics(run_dir / "metrics.jsonl")
    fig, axes = plt.subplots(2, 2, figsize=(12, 8))
    for ax, (title, prefixes, scale) in zip(axes.flat, PANELS):
        curves = series(records, prefixes)
        for key, (steps, values) in sorted(curves.items()):
            positive = scale != "log" or all(v > 0 for v in values)
            ax.plot(steps, values, label=key, marker="." if len(steps) < 30 else None)
            if scale == "log" and positive:
                ax.set_yscale("log")
        ax.set_title(title)
        ax.set_xlabel("step")
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pinnrun-plot", description=__doc__.splitlines()[0])
    parser.add_argument("run_dirs", nargs="+", type=Path, help="run directories holding metrics.jsonl")
    args = parser.parse_args(argv)
    status = 0
    for run_dir in args.run_dirs:
        if not (run_dir / "metrics.jsonl").is_file():
            print(f"pinnrun-plot: {run_dir}: no metrics.jsonl", file=sys.stderr)
            status = 2
            continue
        print(plot_training(run_dir))
    return status


if __name__ == "__main__":
    sys.exit(main())
