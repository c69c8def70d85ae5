"""Issue 20's benchmark: SOAP at its quick budget against the dense quasi-Newton runs of train=cpu_qn.

For each PDE (Burgers, Allen-Cahn, KdV by default) three runs, one after another (one heavy job at a
time):

* ``optim=soap train=cpu_quick``          SOAP at its quick budget (the 1-D table's runs)
* ``optim=soap_ssbroyden train=cpu_qn``   SOAP, then SSBroyden in float64, on the small network
* ``optim=adam_lbfgs train=cpu_qn``       Adam, then L-BFGS in float64, on the same network

Each run's end-to-end time is measured around its process (start-up, reference, compilation,
training, outputs). The runs at a fixed step budget do not take equal times, so two more methods
give SOAP (quick budget) and Adam -> L-BFGS (cpu_qn) the same ten minutes: ``soap_quick_600s`` and
``adam_lbfgs_600s`` rerun them with their steps scaled by 570 s over their first run's training
time (rounded to 1000), everything else as before. A run whose folder already holds a summary.json is not run again, so the script
can be stopped and started. Then it prints a Markdown table (final relative L2 of u, wall times) and
draws one error-against-wall-time figure per PDE from the runs' metrics.jsonl.

    python scripts/qn_benchmark.py --out runs/qn             # run what is missing, table, figures
    python scripts/qn_benchmark.py --out runs/qn --report    # table and figures only
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

METHODS = {
    "soap_quick": ("SOAP, quick budget", ["optim=soap", "train=cpu_quick"]),
    "soap_ssbroyden": ("SOAP -> SSBroyden, cpu_qn", ["optim=soap_ssbroyden", "train=cpu_qn"]),
    "adam_lbfgs": ("Adam -> L-BFGS, cpu_qn", ["optim=adam_lbfgs", "train=cpu_qn"]),
}
# method -> (the run it extends, the override of its step budget)
FILLED = {
    "soap_quick_600s": ("soap_quick", "train.steps"),
    "adam_lbfgs_600s": ("adam_lbfgs", "qn.steps"),
}
METHODS.update({
    "soap_quick_600s": ("SOAP, quick budget, more steps", ["optim=soap", "train=cpu_quick"]),
    "adam_lbfgs_600s": ("Adam -> L-BFGS, cpu_qn, more steps", ["optim=adam_lbfgs", "train=cpu_qn"]),
})
PDES = ("burgers", "allen_cahn", "kdv")
COLORS = {"soap_quick": "tab:blue", "soap_ssbroyden": "tab:orange", "adam_lbfgs": "tab:green"}
TARGET_TRAINING_SECONDS = 570.0   # of 600 s end to end: start-up, reference and outputs take the rest


def filled_steps(out: Path, pde: str, method: str) -> list[str]:
    """The step override that stretches the base run's budget to about ten minutes."""
    base, key = FILLED[method]
    summary = json.loads((out / f"{pde}_{base}" / "summary.json").read_text())
    per_window = summary["steps"] // summary.get("time_windows", 1)
    steps = int(round(per_window * TARGET_TRAINING_SECONDS / summary["wall_seconds"], -3))
    return [f"{key}={steps}"]


def run(out: Path, pde: str, method: str, extra: list[str]) -> None:
    folder = out / f"{pde}_{method}"
    if (folder / "summary.json").exists():
        return
    if method in FILLED:
        run(out, pde, FILLED[method][0], extra)
        extra = [*extra, *filled_steps(out, pde, method)]
    command = [sys.executable, "-m", "pinnrun", f"pde={pde}", *METHODS[method][1], "train.progress=lines",
               f"hydra.run.dir={folder}", *extra]
    print(" ".join(command[2:]), flush=True)
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "stdout.txt").write_text(result.stdout + result.stderr)
    if result.returncode != 0:
        raise SystemExit(f"{pde} {method} failed:\n{result.stderr[-3000:]}")
    (folder / "end_to_end.json").write_text(json.dumps({"seconds": seconds}))
    print(f"  {seconds:.0f} s end to end: {result.stdout.strip().splitlines()[-1]}", flush=True)


def curve(folder: Path) -> tuple[list[float], list[float]]:
    """(wall seconds, rel L2 of u) at every evaluation of a run."""
    times, errors = [], []
    for line in (folder / "metrics.jsonl").read_text().splitlines():
        record = json.loads(line)
        if "rel_l2/u" in record:
            times.append(record["wall_seconds"])
            errors.append(record["rel_l2/u"])
    return times, errors


def report(out: Path, pdes: list[str]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    print("| PDE | " + " | ".join(label for label, _ in METHODS.values()) + " |")
    print("|---|" + "---|" * len(METHODS))
    for pde in pdes:
        cells = []
        fig, ax = plt.subplots(figsize=(6, 4))
        for method, (label, _) in METHODS.items():
            folder = out / f"{pde}_{method}"
            if not (folder / "summary.json").exists():
                cells.append("not run")
                continue
            summary = json.loads((folder / "summary.json").read_text())
            end_to_end = json.loads((folder / "end_to_end.json").read_text())["seconds"] if (folder / "end_to_end.json").exists() else None
            error = summary["final_rel_l2"]["u"]
            wall = f"{end_to_end:.0f} s" if end_to_end is not None else f"{summary['wall_seconds']:.0f} s (training)"
            cells.append(f"{error:.2e} ({summary['steps']} steps, {wall})")
            times, errors = curve(folder)
            base = FILLED[method][0] if method in FILLED else method
            ax.semilogy(times, errors, marker=".", label=label, color=COLORS[base], linestyle="--" if method in FILLED else "-")
        ax.set_xlabel("wall time in training (s; compilation and evaluations included)")
        ax.set_ylabel("relative L2 error of u")
        ax.set_title(f"{pde}: error against wall time, 2-core CPU")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
        fig.tight_layout()
        fig.savefig(out / f"{pde}_error_vs_wall_time.png", dpi=120)
        plt.close(fig)
        print(f"| {pde} | " + " | ".join(cells) + " |")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/qn"))
    parser.add_argument("--pdes", nargs="+", default=list(PDES))
    parser.add_argument("--methods", nargs="+", default=[m for m in METHODS if m not in FILLED], choices=list(METHODS),
                        help="default: the three runs at their step budgets")
    parser.add_argument("--report", action="store_true", help="only the table and figures of the runs already made")
    parser.add_argument("overrides", nargs="*", help="extra pinnrun overrides for every run, e.g. train.seed=1")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    if not args.report:
        for pde in args.pdes:
            for method in args.methods:
                run(args.out, pde, method, args.overrides)
    report(args.out, args.pdes)


if __name__ == "__main__":
    main()
