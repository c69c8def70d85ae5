"""Centreline profiles of a lid-driven-cavity curriculum, stage by stage, in one figure.

Reads the ``stages/*_profiles.npz`` files a run writes at the end of each stage (the network and
the smooth-lid reference at that stage's Re on u(0.5, y) and v(x, 0.5)) and adds, for orientation,
the published CLASSIC-lid tables at the same Re (Ghia, Ghia & Shin 1982, tests/data): the smooth lid
drives the flow less near the top corners, so those points are not a target for the network.

    python scripts/cavity_profiles.py RUN_DIR [--out profiles.png]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parent.parent / "tests" / "data"


def ghia(line: str, re: float) -> tuple[np.ndarray, np.ndarray] | None:
    """(coords, values) of Ghia et al.'s centreline ``line`` ("u" or "v") at ``re``, if tabulated."""
    path = DATA / f"cavity_ghia_1982_{line}.csv"
    if not path.is_file():
        return None
    rows = [ln.split(",") for ln in path.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    column = f"re{re:g}"
    if column not in rows[0]:
        return None
    k = rows[0].index(column)
    return np.array([float(r[0]) for r in rows[1:]]), np.array([float(r[k]) for r in rows[1:]])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("--out", type=Path, default=None, help="PNG to write (default: RUN_DIR/stages/profiles.png)")
    args = ap.parse_args(argv)
    summary_path = args.run_dir / "summary.json"
    files = sorted((args.run_dir / "stages").glob("*_profiles.npz"))
    if not files or not summary_path.is_file():
        print(f"cavity_profiles: {args.run_dir}: no finished run with stages/*_profiles.npz", file=sys.stderr)
        return 2
    stages = json.loads(summary_path.read_text())["stages"]
    import yaml

    config = yaml.safe_load((args.run_dir / "config.yaml").read_text())
    # Each curriculum entry's Re, from the run's composed config (an entry without one keeps pde.re).
    re_of = {e["name"]: float((e.get("pde") or {}).get("re", config["pde"]["re"])) for e in config.get("stages") or []}
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(files), 2, figsize=(10, 3.6 * len(files)), squeeze=False)
    for row, path in enumerate(files):
        name = path.name[len("00_"):-len("_profiles.npz")]   # <entry>_<stage name>_profiles.npz
        record = next(s for s in stages if s["name"].replace("/", "_") == name)
        re = re_of.get(record["name"].split("/")[0], float(config["pde"]["re"]))
        with np.load(path) as values:
            for col, (key, line) in enumerate((("u_y", "u"), ("v_x", "v"))):
                ax = axes[row, col]
                ax.plot(values[f"{key}/coords"], values[f"{key}/reference"], "k-", lw=1.5, label="reference (smooth lid)")
                ax.plot(values[f"{key}/coords"], values[f"{key}/prediction"], "r--", lw=1.5, label="network")
                table = ghia(line, re)
                if table is not None:
                    ax.plot(*table, "o", mfc="none", color="tab:blue", ms=5, label="Ghia et al. 1982 (classic lid)")
                across = "x = 0.5" if line == "u" else "y = 0.5"
                ax.set_title(f"{record['name']}: {line}({across}), speed rel L2 {record['final_rel_l2'].get('speed', float('nan')):.2e}")
                ax.set_xlabel("y" if line == "u" else "x")
                ax.grid(True, alpha=0.3)
                ax.legend(fontsize=8)
    fig.tight_layout()
    out = args.out or args.run_dir / "stages" / "profiles.png"
    fig.savefig(out, dpi=90)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
