#!/usr/bin/env bash
# Wheels for a GPU machine that has JAX, optax and orbax but not Hydra (the workplace's H200 image):
# hydra-core, omegaconf, antlr4 (built here: it ships no wheel), optax at pinnrun's pin, and pinnrun
# itself, into .whl/ (git-ignored through .git/info/exclude). Then, on that machine, from the
# repository root: bash scripts/gpu_check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-.venv/bin/python}"
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
rm -rf .whl && mkdir .whl
"$PYTHON" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux2014_x86_64 -d .whl hydra-core==1.3.8 omegaconf==2.3.0 optax==0.2.8
"$PYTHON" -m pip wheel -q --no-deps -w .whl antlr4-python3-runtime==4.9.3
"$PYTHON" -m pip wheel -q --no-deps -w .whl .
rm -rf build ./*.egg-info
ls -la .whl
