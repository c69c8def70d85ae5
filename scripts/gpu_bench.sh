#!/usr/bin/env bash
# GPU benchmark, reference-free: throughput and peak memory of every PDE's recipe (the paper's
# network, batch, weighting and optimizer; Adam and SOAP) for a few hundred steps, no evaluation.
#
#   bash scripts/gpu_bench.sh [STEPS]          (default 300 timed steps per recipe and optimizer)
#
# Run it on a machine with a GPU after `make setup` (or with pinnrun installed). Extra arguments go
# to scripts/gpu_bench.py (e.g. --pdes gray_scott,ginzburg_landau --optims soap).
set -euo pipefail
cd "$(dirname "$0")/.."
STEPS="${1:-300}"
shift || true
PYTHON="${PYTHON:-.venv/bin/python}"
[ -x "$PYTHON" ] || PYTHON=python3
"$PYTHON" scripts/gpu_bench.py --steps "$STEPS" "$@"
