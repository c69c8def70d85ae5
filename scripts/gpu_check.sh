#!/usr/bin/env bash
# The GPU checks the 2-D issues ask for, in one command (run on the GPU machine from the repository
# root, with .whl/ from scripts/gpu_wheels.sh carried along; each part has its own time limit and
# writes its log under $OUT, or ./gpu_logs without one):
#   1. the Kolmogorov recipe's reference on the GPU: spin-up, horizon and the 1536^2 doubling check
#      (scripts/kolmogorov_reference.py, PINNRUN_REFERENCE_DEVICE=gpu);
#   2. scripts/gpu_bench.py: throughput and peak memory of every recipe, the 2-D ones first.
set -uo pipefail
OUT="${OUT:-gpu_logs}"
mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 3
export PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1 PINNRUN_CACHE_DIR="${PINNRUN_CACHE_DIR:-/tmp/pinnrun-cache}"
(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
 python3 -c "import jax, optax; print('jax', jax.__version__, 'optax', optax.__version__, jax.devices())") 2>&1 | tee "$OUT/env.txt"
PINNRUN_REFERENCE_DEVICE=gpu timeout "${KOLMOGOROV_SECONDS:-170}" python3 scripts/kolmogorov_reference.py 2>&1 | tee "$OUT/kolmogorov.log"
timeout "${BENCH_SECONDS:-375}" python3 scripts/gpu_bench.py --steps 200 \
    --pdes gray_scott,ginzburg_landau,lid_driven_cavity,kolmogorov,rayleigh_taylor,kovasznay,wave,burgers,allen_cahn,kdv,ks 2>&1 | tee "$OUT/bench.log"
