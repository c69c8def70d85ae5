"""Sweep report: one table and two figures comparing optimizers across PDEs and seeds.

``pinnrun-report <sweep_dir> [<sweep_dir> ...] [--out DIR]`` reads every run below the given folders
(any folder, at any depth, holding a ``summary.json``), groups the runs by ``(pde, optimizer)`` from
their summaries and writes, into the first folder (or ``--out``):

* ``report.md``: three tables, rows PDE and columns optimizer, each cell ``mean ± std (n=...)`` over the
  group's runs (usually its seeds): final relative L2 (mean over fields), steps/s, wall time;
* ``report.csv``: one row per (pde, optimizer) with ``n`` and ``<metric>_mean`` / ``<metric>_std`` for
  ``rel_l2`` (mean over fields), ``rel_l2/<field>`` per field (empty for fields a PDE does not have),
  ``steps_per_second`` and ``wall_seconds``;
* ``error_vs_step.png``: one panel per PDE, one line per optimizer: the mean over runs of the relative
  L2 error (averaged over fields) against step, with a min/max band;
* ``alignment_vs_step.png``: ``align/intra_precond`` and ``align/intra`` against step, one row of panels
  per PDE and one line (mean, min/max band) per optimizer; skipped when no run logged them.

Runs whose overrides differ in more than the seed (a sweep over ``arch.width``, ``optim.lr`` or a
weighting) are told apart: each such setting joins the optimizer's label (``soap, arch.width=32``), a
column of its own. ``--by KEY ...`` names the keys to tell apart by instead (``--by`` alone: none);
runs that differ in keys not named are pooled, with a warning naming what differs.
``std`` is the sample standard deviation (ddof=1), empty / ``nan`` for a group of one run. Needs only numpy and matplotlib (Agg; pyplot's state is untouched).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pinnrun.sinks import read_metrics

SCALARS = (("steps_per_second", "steps/s"), ("wall_seconds", "wall time (s)"))
ALIGNMENT_KEYS = ("align/intra_precond", "align/intra")
# Overrides that do not make two runs "different settings" of one (pde, optimizer) group.
_SAME_SETTING_PREFIXES = ("train.seed=", "pde=", "optim=", "hydra.", "hydra/", "checkpoint.", "logger")


class ReportError(Exception):
    """A problem with the input folders; main() prints it as one line."""


@dataclass
class Run:
    path: Path
    summary: dict[str, Any]
    pde: str
    optimizer: str
    overrides: tuple[str, ...] = ()
    _metrics: list[dict[str, Any]] | None = field(default=None, repr=False)

    @property
    def fields(self) -> list[str]:
        return list(self.summary["final_rel_l2"])

    def rel_l2(self, name: str | None = None) -> float:
        """Final relative L2 of one field, or the mean over fields (what the Hydra job returns)."""
        errors = self.summary["final_rel_l2"]
        if name is not None:
            return _float(errors.get(name))
        values = [_float(v) for v in errors.values()]
        return float(np.mean(values)) if values else math.nan

    def scalar(self, key: str) -> float:
        return _float(self.summary.get(key))

    @property
    def metrics(self) -> list[dict[str, Any]]:
        """metrics.jsonl records, one per step (the last one wins where a resumed run logged a step twice)."""
        if self._metrics is None:
            path = self.path / "metrics.jsonl"
            by_step: dict[int, dict[str, Any]] = {}
            if path.is_file():
                for record in read_metrics(path):
                    if "step" in record:
                        by_step[int(record["step"])] = record
            self._metrics = [by_step[s] for s in sorted(by_step)]
        return self._metrics

    def curve(self, key: str | None) -> dict[int, float]:
        """step -> value of one metric; key None: rel_l2 averaged over the fields logged at that step."""
        out = {}
        for record in self.metrics:
            if key is None:
                values = [_float(v) for k, v in record.items() if k.startswith("rel_l2/")]
                if values:
                    out[int(record["step"])] = float(np.mean(values))
            elif key in record:
                out[int(record["step"])] = _float(record[key])
        return out


def _float(value: Any) -> float:
    """JSON numbers, and the strings ("nan", "inf") that pinnrun writes for non-finite values."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _names_from_config(run_dir: Path) -> tuple[str | None, str | None]:
    """(pde, optimizer) from a run's config.yaml, for summaries written before those keys existed."""
    path = run_dir / "config.yaml"
    if not path.is_file():
        return None, None
    try:
        from omegaconf import OmegaConf

        cfg = OmegaConf.load(path)
        pde = OmegaConf.select(cfg, "pde.name") or OmegaConf.select(cfg, "pde._target_")
        optim = OmegaConf.select(cfg, "optim.name")
        return (str(pde).rsplit(".", 1)[-1].lower() if pde else None), (str(optim) if optim else None)
    except Exception:  # noqa: BLE001 - a fallback only
        return None, None


def _overrides(run_dir: Path) -> tuple[str, ...]:
    path = run_dir / ".hydra" / "overrides.yaml"
    if not path.is_file():
        return ()
    try:
        from omegaconf import OmegaConf

        return tuple(str(x) for x in OmegaConf.to_container(OmegaConf.load(path)))
    except Exception:  # noqa: BLE001 - only used for a warning
        return ()


def find_runs(folders: list[Path], warn=print) -> list[Run]:
    """Every run (folder with a summary.json) below each folder; ReportError for a folder without any."""
    runs: list[Run] = []
    seen: set[Path] = set()
    for folder in folders:
        folder = Path(folder)
        if not folder.exists():
            raise ReportError(f"{folder}: no such folder")
        if not folder.is_dir():
            raise ReportError(f"{folder}: not a folder (pass a sweep or run directory)")
        found = 0
        for path in sorted(folder.rglob("summary.json")):
            run_dir = path.parent.resolve()
            if run_dir in seen:
                found += 1
                continue
            try:
                summary = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError) as error:
                warn(f"skipping {path}: unreadable summary ({error.__class__.__name__})")
                continue
            if not isinstance(summary, dict) or not isinstance(summary.get("final_rel_l2"), dict):
                warn(f"skipping {path}: no final_rel_l2 in it")
                continue
            pde, optimizer = summary.get("pde"), summary.get("optimizer")
            if not pde or not optimizer:
                cfg_pde, cfg_optim = _names_from_config(path.parent)
                pde, optimizer = pde or cfg_pde or "unknown", optimizer or cfg_optim or "unknown"
            seen.add(run_dir)
            runs.append(Run(path.parent, summary, str(pde), str(optimizer), _overrides(path.parent)))
            found += 1
        if not found:
            raise ReportError(f"{folder}: no runs found (no summary.json in it or below; unfinished runs write none)")
    label_domains(runs)
    return runs


def label_domains(runs: list[Run]) -> None:
    """Tell apart runs of one PDE measured over different domains (KS at its quick and full horizon).

    Where a PDE's runs record more than one ``domain`` in summary.json, each run's PDE label gains
    the bounds that differ, e.g. ``ks (t in [0, 0.3])``, so that they land in separate rows.
    """
    by_pde: dict[str, list[Run]] = {}
    for run in runs:
        by_pde.setdefault(run.pde, []).append(run)
    for pde, group in by_pde.items():
        domains = [run.summary.get("domain") if isinstance(run.summary.get("domain"), dict) else None for run in group]
        if len({json.dumps(d, sort_keys=True) for d in domains}) < 2:
            continue
        recorded = [d for d in domains if d]
        names = sorted({name for d in recorded for name in d})
        differing = [n for n in names if len({json.dumps(d.get(n)) for d in recorded}) > 1] or names
        for run, domain in zip(group, domains):
            if domain is None:
                run.pde = f"{pde} (domain not recorded)"
                continue
            bounds = ", ".join(
                f"{n} in [{domain[n][0]:g}, {domain[n][1]:g}]" if n in domain else f"{n} not recorded" for n in differing
            )
            run.pde = f"{pde} ({bounds})"


def override_values(run: Run) -> dict[str, str]:
    """key -> value of a run's overrides that can make it another setting (not seed, pde, optim,
    Hydra, checkpoint, logger or run name settings)."""
    out = {}
    for override in run.overrides:
        key, sep, value = override.partition("=")
        key = key.lstrip("+~")
        if sep and not override.lstrip("+~").startswith(_SAME_SETTING_PREFIXES) and not key.startswith("run."):
            out[key] = value
    return out


def differing_keys(runs: list[Run]) -> list[str]:
    """The override keys whose value differs between the runs (or that some runs do not set)."""
    values = [override_values(r) for r in runs]
    keys = sorted({k for v in values for k in v})
    return [k for k in keys if len({v.get(k) for v in values}) > 1]


def label_variants(runs: list[Run], by: list[str] | None = None) -> list[str]:
    """Give each run's optimizer label the settings it is grouped by, e.g. ``soap, arch.width=32``:
    the override keys ``by``, or (None) every key whose value differs between the runs. Returns the
    keys used. Settings not grouped by still pool, with the warning of ``mixed_settings``."""
    keys = differing_keys(runs) if by is None else list(by)
    for run in runs:
        values = override_values(run)
        parts = [f"{k}={values.get(k, 'default')}" for k in keys]
        if parts:
            run.optimizer = ", ".join([run.optimizer, *parts])
    return keys


def group_runs(runs: list[Run]) -> dict[tuple[str, str], list[Run]]:
    """(pde, optimizer) -> runs, sorted by PDE, then optimizer, then run folder."""
    groups: dict[tuple[str, str], list[Run]] = {}
    for run in sorted(runs, key=lambda r: (r.pde, r.optimizer, str(r.path))):
        groups.setdefault((run.pde, run.optimizer), []).append(run)
    return groups


def mixed_settings(runs: list[Run], grouped: list[str] = ()) -> list[str]:
    """The overrides (besides seed, pde, optim, hydra settings and the keys ``grouped`` by) that
    differ between a group's runs."""
    sets = [frozenset(f"{k}={v}" for k, v in override_values(r).items() if k not in grouped) for r in runs]
    if len(set(sets)) <= 1:
        return []
    return sorted(frozenset.union(*sets) - frozenset.intersection(*sets))


def stats(values: list[float]) -> tuple[float, float, int]:
    """(mean, sample std with ddof=1, n); std is nan for n < 2, mean nan for n == 0."""
    array = np.asarray(values, dtype=float)
    n = int(array.size)
    mean = float(array.mean()) if n else math.nan
    std = float(array.std(ddof=1)) if n > 1 else math.nan
    return mean, std, n


@dataclass
class Cell:
    """Statistics of one (pde, optimizer) group."""

    pde: str
    optimizer: str
    n: int
    rel_l2: tuple[float, float]
    fields: dict[str, tuple[float, float]]
    scalars: dict[str, tuple[float, float]]


def summarise(groups: dict[tuple[str, str], list[Run]]) -> list[Cell]:
    cells = []
    for (pde, optimizer), runs in groups.items():
        mean, std, n = stats([r.rel_l2() for r in runs])
        names: list[str] = []
        for run in runs:
            names += [f for f in run.fields if f not in names]
        per_field = {f: stats([r.rel_l2(f) for r in runs if f in r.summary["final_rel_l2"]])[:2] for f in names}
        scalars = {key: stats([r.scalar(key) for r in runs])[:2] for key, _ in SCALARS}
        cells.append(Cell(pde, optimizer, n, (mean, std), per_field, scalars))
    return cells


# ----- writing -----
def _fmt(value: float, spec: str) -> str:
    return "n/a" if not math.isfinite(value) else format(value, spec)


def _cell_text(mean: float, std: float, n: int, spec: str) -> str:
    spread = f" ± {_fmt(std, spec)}" if n > 1 else ""
    return f"{_fmt(mean, spec)}{spread} (n={n})"


def stage_errors(runs: list[Run]) -> dict[tuple[str, str], list[float]]:
    """(stage name, field) -> the runs' final relative L2 at the end of that stage, in stage order."""
    out: dict[tuple[str, str], list[float]] = {}
    for run in runs:
        for record in run.summary.get("stages") or []:
            for name, value in (record.get("final_rel_l2") or {}).items():
                out.setdefault((str(record.get("name")), name), []).append(_float(value))
    return out


def stage_table(groups: dict[tuple[str, str], list[Run]]) -> list[str]:
    """Markdown lines: each stage's final error per field (curricula, windows, phases), for the PDEs
    whose runs have more than one stage; empty when none has."""
    optimizers = sorted({o for _, o in groups})
    per_pde: dict[str, dict[str, dict[tuple[str, str], list[float]]]] = {}
    for (pde, optimizer), runs in groups.items():
        if any(len(r.summary.get("stages") or []) > 1 for r in runs):
            per_pde.setdefault(pde, {})[optimizer] = stage_errors(runs)
    if not per_pde:
        return []
    lines = ["## Final relative L2 per stage", "", "At the end of each stage, against that stage's reference.", "",
             "| PDE | stage | field | " + " | ".join(optimizers) + " |", "|---" * (len(optimizers) + 3) + "|"]
    for pde, by_optimizer in per_pde.items():
        keys = list(dict.fromkeys(k for errors in by_optimizer.values() for k in errors))
        for stage, name in keys:
            row = [_cell_text(*stats(by_optimizer[o][(stage, name)]), ".3e") if (stage, name) in by_optimizer.get(o, {}) else "–"
                   for o in optimizers]
            lines.append(f"| {pde} | {stage} | {name} | " + " | ".join(row) + " |")
    return lines + [""]


def write_markdown(cells: list[Cell], path: Path, sources: list[Path], notes: list[str],
                   groups: dict[tuple[str, str], list[Run]] | None = None) -> Path:
    pdes = list(dict.fromkeys(c.pde for c in cells))
    optimizers = list(dict.fromkeys(c.optimizer for c in sorted(cells, key=lambda c: c.optimizer)))
    by_key = {(c.pde, c.optimizer): c for c in cells}
    lines = [
        "# pinnrun sweep report",
        "",
        f"Runs: {sum(c.n for c in cells)} from {', '.join(f'`{s}`' for s in sources)}. Each cell: mean ± sample "
        "standard deviation (ddof=1) over the group's runs, and their number n.",
        "",
    ]
    tables = [("Final relative L2 (mean over fields)", lambda c: (*c.rel_l2, c.n), ".3e")]
    tables += [
        (title, (lambda key: lambda c: (*c.scalars[key], c.n))(key), ".1f" if key == "steps_per_second" else ".2f")
        for key, title in SCALARS
    ]
    for title, get, spec in tables:
        lines += [f"## {title}", "", "| PDE | " + " | ".join(optimizers) + " |", "|---" * (len(optimizers) + 1) + "|"]
        for pde in pdes:
            row = [
                _cell_text(*get(by_key[(pde, o)]), spec) if (pde, o) in by_key else "–" for o in optimizers
            ]
            lines.append(f"| {pde} | " + " | ".join(row) + " |")
        lines.append("")
    lines += stage_table(groups) if groups else []
    if notes:
        lines += ["## Notes", ""] + [f"- {note}" for note in notes] + [""]
    lines += [
        "Per-field errors: `report.csv`. Figures: `error_vs_step.png`, `alignment_vs_step.png`.",
        "",
    ]
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def csv_columns(cells: list[Cell]) -> list[str]:
    fields: list[str] = []
    for cell in cells:
        fields += [f for f in cell.fields if f not in fields]
    columns = ["pde", "optimizer", "n", "rel_l2_mean", "rel_l2_std"]
    for f in fields:
        columns += [f"rel_l2/{f}_mean", f"rel_l2/{f}_std"]
    for key, _ in SCALARS:
        columns += [f"{key}_mean", f"{key}_std"]
    return columns


def write_csv(cells: list[Cell], path: Path) -> Path:
    columns = csv_columns(cells)
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        for c in cells:
            row: dict[str, Any] = {"pde": c.pde, "optimizer": c.optimizer, "n": c.n}
            row["rel_l2_mean"], row["rel_l2_std"] = c.rel_l2
            for name, (mean, std) in c.fields.items():
                row[f"rel_l2/{name}_mean"], row[f"rel_l2/{name}_std"] = mean, std
            for key, (mean, std) in c.scalars.items():
                row[f"{key}_mean"], row[f"{key}_std"] = mean, std
            writer.writerow({k: (repr(v) if isinstance(v, float) else v) for k, v in row.items()})
    return path


def band(curves: list[dict[int, float]]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(steps, mean, min, max) over runs, at the steps every run logged (all logged steps if none shared)."""
    curves = [c for c in curves if c]
    if not curves:
        empty = np.zeros(0)
        return empty, empty, empty, empty
    shared = set.intersection(*(set(c) for c in curves))
    steps = np.array(sorted(shared or set.union(*(set(c) for c in curves))), dtype=int)
    values = np.array([[c.get(int(s), math.nan) for s in steps] for c in curves], dtype=float)
    with warnings.catch_warnings():  # all-nan columns (every run diverged) give nan, not a warning
        warnings.simplefilter("ignore", RuntimeWarning)
        return steps, np.nanmean(values, axis=0), np.nanmin(values, axis=0), np.nanmax(values, axis=0)


def _new_figure(rows: int, cols: int, width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width * cols, height * rows))
    FigureCanvasAgg(fig)
    axes = np.atleast_2d(fig.subplots(rows, cols, squeeze=False))
    return fig, axes


def _colors(optimizers: list[str]) -> dict[str, Any]:
    from matplotlib import colormaps

    cmap = colormaps["tab10"]
    return {o: cmap(i % 10) for i, o in enumerate(optimizers)}


def _plot_band(ax, steps, mean, lo, hi, color, label) -> bool:
    if steps.size == 0:
        return False
    marker = "o" if steps.size < 30 else None
    ax.plot(steps, mean, color=color, label=label, marker=marker, markersize=3)
    if np.any(hi > lo):
        ax.fill_between(steps, lo, hi, color=color, alpha=0.2, linewidth=0)
    return True


def plot_error(groups: dict[tuple[str, str], list[Run]], path: Path) -> Path:
    pdes = list(dict.fromkeys(p for p, _ in groups))
    optimizers = sorted({o for _, o in groups})
    colors = _colors(optimizers)
    fig, axes = _new_figure(1, len(pdes), 5.0, 3.8)
    for ax, pde in zip(axes[0], pdes):
        drawn = False
        for optimizer in optimizers:
            runs = groups.get((pde, optimizer))
            if runs:
                steps, mean, lo, hi = band([r.curve(None) for r in runs])
                drawn |= _plot_band(ax, steps, mean, lo, hi, colors[optimizer], f"{optimizer} (n={len(runs)})")
        if drawn:
            ax.set_yscale("log")
            ax.legend(fontsize=8)
        else:
            ax.text(0.5, 0.5, "no rel_l2 logged", ha="center", va="center", transform=ax.transAxes)
        ax.set_title(pde)
        ax.set_xlabel("step")
        ax.set_ylabel("relative L2 (mean over fields)")
        ax.grid(True, which="both", alpha=0.3)
    fig.suptitle("error vs step: mean over runs, band min–max")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return path


def plot_alignment(groups: dict[tuple[str, str], list[Run]], path: Path) -> Path | None:
    """None (nothing written) when no run logged the alignment diagnostics."""
    if not any(r.curve(k) for runs in groups.values() for r in runs for k in ALIGNMENT_KEYS):
        return None
    pdes = list(dict.fromkeys(p for p, _ in groups))
    optimizers = sorted({o for _, o in groups})
    colors = _colors(optimizers)
    fig, axes = _new_figure(len(pdes), len(ALIGNMENT_KEYS), 5.0, 3.5)
    for row, pde in enumerate(pdes):
        for col, key in enumerate(ALIGNMENT_KEYS):
            ax = axes[row, col]
            drawn = False
            for optimizer in optimizers:
                runs = groups.get((pde, optimizer))
                if runs:
                    steps, mean, lo, hi = band([r.curve(key) for r in runs])
                    drawn |= _plot_band(ax, steps, mean, lo, hi, colors[optimizer], f"{optimizer} (n={len(runs)})")
            if drawn:
                ax.legend(fontsize=8)
            else:
                ax.text(0.5, 0.5, "not logged", ha="center", va="center", transform=ax.transAxes)
            ax.set_title(f"{pde}: {key}")
            ax.set_xlabel("step")
            ax.grid(True, alpha=0.3)
    fig.suptitle("gradient alignment vs step: mean over runs, band min–max")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return path


def make_report(folders: list[Path], out: Path | None = None, warn=print, by: list[str] | None = None) -> dict[str, Path]:
    """Write the report; returns name -> path of what was written. Raises ReportError for bad input.
    ``by``: the override keys to tell runs apart by (None: every key that differs between them)."""
    folders = [Path(f) for f in folders]
    runs = find_runs(folders, warn=warn)
    grouped = label_variants(runs, by)
    groups = group_runs(runs)
    notes = []
    for (pde, optimizer), group in groups.items():
        differing = mixed_settings(group, grouped)
        if differing:
            shown = ", ".join(differing[:4]) + (", ..." if len(differing) > 4 else "")
            notes.append(f"{pde}/{optimizer} pools runs with different settings: {shown}")
    for note in notes:
        warn(f"warning: {note}")
    out = Path(out) if out is not None else folders[0]
    out.mkdir(parents=True, exist_ok=True)
    cells = summarise(groups)
    written = {
        "report.md": write_markdown(cells, out / "report.md", folders, notes, groups),
        "report.csv": write_csv(cells, out / "report.csv"),
        "error_vs_step.png": plot_error(groups, out / "error_vs_step.png"),
    }
    alignment = plot_alignment(groups, out / "alignment_vs_step.png")
    if alignment is None:
        warn("no align/* metrics in these runs (train.alignment_every=0?); alignment_vs_step.png not written")
    else:
        written["alignment_vs_step.png"] = alignment
    return written


def main(argv: list[str] | None = None) -> int:
    """The ``pinnrun-report`` console script."""
    parser = argparse.ArgumentParser(
        prog="pinnrun-report",
        description="Compare optimizers across PDEs and seeds: report.md, report.csv and figures from "
        "every run (folder with summary.json) below the given sweep folders.",
    )
    parser.add_argument("sweep_dirs", nargs="+", type=Path, metavar="SWEEP_DIR", help="sweep or run folders")
    parser.add_argument("--out", type=Path, default=None, help="where to write (default: the first SWEEP_DIR)")
    parser.add_argument("--by", nargs="*", default=None, metavar="KEY",
                        help="override keys that tell runs apart, besides PDE and optimizer (default: every key whose "
                             "value differs between the runs; --by with no key pools them)")
    args = parser.parse_args(argv)

    def warn(message: str) -> None:
        print(f"pinnrun-report: {message}", file=sys.stderr)

    try:
        written = make_report(args.sweep_dirs, args.out, warn=warn, by=args.by)
    except ReportError as error:
        warn(str(error))
        return 2
    for path in written.values():
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
