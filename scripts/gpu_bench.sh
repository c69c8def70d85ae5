#!/usr/bin/env bash
# GPU benchmark: the paper's configs (each PDE's recipe: network, batch, weighting) for a few thousand
# steps with Adam and SOAP, then one line per run with steps/s, peak GPU memory and final error.
#
#   bash scripts/gpu_bench.sh [STEPS] [OUT_DIR]        (defaults: 3000 steps, gpu_bench/<date>)
#
# Run it on a machine with a GPU after `make setup` (or with pinnrun installed). Steps are per time
# window for time-marched problems (KS). References are generated on first use (CPU, seconds each).
set -euo pipefail
cd "$(dirname "$0")/.."
STEPS="${1:-3000}"
OUT="${2:-gpu_bench/$(date +%Y-%m-%d_%H-%M-%S)}"
PINNRUN="${PINNRUN:-.venv/bin/pinnrun}"
[ -x "$PINNRUN" ] || PINNRUN=pinnrun
PYTHON="${PYTHON:-.venv/bin/python}"
[ -x "$PYTHON" ] || PYTHON=python3

"$PYTHON" -c "import jax; print('devices:', jax.devices())"
"$PINNRUN" -m \
    pde=kovasznay,wave,burgers,allen_cahn,kdv,ks optim=adam,soap \
    train.steps="$STEPS" train.eval_every=1000 train.log_every=500 train.progress=lines \
    train.figures=false checkpoint.every=0 \
    hydra.sweep.dir="$OUT"

"$PYTHON" - "$OUT" <<'PY'
import json, sys
from pathlib import Path

rows = []
for path in sorted(Path(sys.argv[1]).glob("*/summary.json")):
    s = json.loads(path.read_text())
    memory = s.get("peak_memory_bytes")
    rows.append((s["pde"], s["optimizer"], s["steps"], s.get("steps_per_second") or 0.0,
                 memory / 2**30 if memory else float("nan"), s["final_rel_l2"], s["device"]))
print(f"{'pde':12s} {'optim':6s} {'steps':>7s} {'steps/s':>9s} {'peak GiB':>9s}  rel. L2")
for pde, optim, steps, rate, gib, errors, device in rows:
    err = " ".join(f"{k} {v:.2e}" for k, v in errors.items())
    print(f"{pde:12s} {optim:6s} {steps:7d} {rate:9.1f} {gib:9.2f}  {err}")
if rows:
    print("device:", rows[0][-1])
PY
"${PINNRUN}-report" "$OUT"   # report.md, report.csv and figures in OUT
