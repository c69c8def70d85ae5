"""Shared fixtures: a persistent compilation cache for the session and a CLI runner."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
COMPILE_CACHE = REPO / ".jax_cache" / "tests"

# Small, fast settings for end-to-end runs.
QUICK = [
    "train.steps=20",
    "train.batch_size=64",
    "train.log_every=10",
    "train.eval_every=10",
    "train.eval_batch_size=4096",
    "arch.width=16",
    "arch.depth=2",
    "train.figures=false",
    "train.alignment_every=0",
    "checkpoint.every=0",
]


def pinnrun_command() -> list[str]:
    script = Path(sys.executable).parent / "pinnrun"
    return [str(script)] if script.exists() else [sys.executable, "-m", "pinnrun.cli"]


def run_cli(args: list[str], cwd: Path, timeout: float = 300, env: dict | None = None) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "PINNRUN_COMPILE_CACHE": str(COMPILE_CACHE), "WANDB_MODE": "disabled"}
    full_env.update(env or {})
    return subprocess.run(
        pinnrun_command() + list(args),
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def line_search_step(optimizer, fn):
    """A jitted step ``(params, state) -> (params, state)`` of an optax optimizer whose update takes
    ``value``, ``grad`` and ``value_fn`` (one with a line search), on the objective ``fn``."""
    import jax
    import optax

    value_and_grad = optax.value_and_grad_from_state(fn)

    @jax.jit
    def step(params, state):
        value, grad = value_and_grad(params, state=state)
        updates, state = optimizer.update(grad, state, params, value=value, grad=grad, value_fn=fn)
        return optax.apply_updates(params, updates), state

    return step


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


@pytest.fixture(autouse=True)
def _float32_by_default():
    """Every test starts and ends in JAX's default float32, the precision training runs in; a test
    that needs float64 asks for it (the ``x64`` or ``precision`` fixture, ``with jax.enable_x64(True)``).
    Without this check, a module that switched x64 on at import, or a test that left it on, would run
    every test after it in float64 unnoticed."""
    import jax

    if jax.config.jax_enable_x64:
        pytest.fail("jax_enable_x64 is on before the test (switched on at import, or JAX_ENABLE_X64 set?); use "
                    "the x64 fixture or `with jax.enable_x64(True):` inside the tests that need float64", pytrace=False)
    yield
    if jax.config.jax_enable_x64:
        jax.config.update("jax_enable_x64", False)  # one failure, not every test after it
        pytest.fail("the test left jax_enable_x64 on; scope float64 with `with jax.enable_x64(True):`", pytrace=False)


@pytest.fixture
def x64():
    """Float64 for one test, switched off again after it."""
    import jax

    with jax.enable_x64(True):
        yield


@pytest.fixture(params=["float32", "float64"])
def precision(request):
    """Runs a test once in float32 (training's precision) and once in float64; yields the dtype name."""
    import jax

    with jax.enable_x64(request.param == "float64"):
        yield request.param


@pytest.fixture
def cli(tmp_path):
    """Run ``pinnrun`` in a fresh folder: cli(args) -> CompletedProcess."""

    def run(args, **kwargs):
        return run_cli(args, tmp_path, **kwargs)

    run.cwd = tmp_path
    return run


def rel_l2(a, b):
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    """A reference cache folder of the test module's own."""
    return tmp_path_factory.mktemp("reference-cache")


@pytest.fixture(scope="module")
def ref(cache_dir):
    """``ref(name, **overrides)``: load a reference through the module's cache, memoised."""
    from pinnrun import reference

    memo = {}

    def get(name, **overrides):
        key = (name, tuple(sorted(overrides.items())))
        if key not in memo:
            memo[key] = reference.load(name, cache_dir=cache_dir, progress=False, **overrides)
        return memo[key]

    return get
