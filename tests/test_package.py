"""Process-wide settings made when pinnrun is imported."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

SHOW = "import pinnrun, os; print(os.environ['OPENBLAS_NUM_THREADS'])"


@pytest.mark.parametrize("preset, expected", [(None, "1"), ("3", "3")])
def test_openblas_runs_single_threaded_unless_the_user_says_otherwise(preset, expected):
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    if preset is not None:
        env["OPENBLAS_NUM_THREADS"] = preset
    out = subprocess.run([sys.executable, "-c", SHOW], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == expected
