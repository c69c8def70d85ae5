"""Accuracy at budget: the paper's claims on Kovasznay and on the 1-D suite at the CPU-quick budget.

Slow (minutes each): `make test-slow`.
"""

from __future__ import annotations

import json

import pytest

from conftest import run_cli

pytestmark = pytest.mark.slow


def final_u(tmp_path, name: str, args: list[str]) -> float:
    run_dir = tmp_path / name
    result = run_cli([*args, "train.figures=false", f"hydra.run.dir={run_dir}"], tmp_path, timeout=1800)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads((run_dir / "summary.json").read_text())["final_rel_l2"]["u"]


def test_soap_beats_adam_tenfold_on_kovasznay(tmp_path):
    adam = final_u(tmp_path, "adam", ["pde=kovasznay", "optim=adam", "train.steps=3000"])
    soap = final_u(tmp_path, "soap", ["pde=kovasznay", "optim=soap", "train.steps=3000"])
    assert adam < 5e-2, adam
    assert soap < 3e-3, soap
    assert soap * 10 <= adam, (soap, adam)


def test_lbfgs_polish_beats_more_adam_threefold_on_kovasznay(tmp_path):
    adam = final_u(tmp_path, "adam", ["pde=kovasznay", "optim=adam", "train.steps=2500"])
    polished = final_u(tmp_path, "adam_lbfgs", ["pde=kovasznay", "optim=adam_lbfgs", "train.steps=2500"])
    assert polished * 3 <= adam, (polished, adam)


# The targets at train=cpu_quick, seed 0 (docs/benchmarks.md has both seeds): SOAP under these
# relative L2 errors and under Adam's error with the same preset. Kuramoto-Sivashinsky's quick budget
# learns t in [0, 0.3], the recipe's first three windows (docs/benchmarks.md says why not [0, 1]).
QUICK_TARGETS = {"burgers": 1e-2, "allen_cahn": 1e-1, "kdv": 1e-1, "ks": 1e-1, "wave": 1e-1}


@pytest.mark.parametrize("pde", sorted(QUICK_TARGETS))
def test_soap_beats_adam_at_the_quick_budget(tmp_path, pde):
    adam = final_u(tmp_path, "adam", [f"pde={pde}", "optim=adam", "train=cpu_quick"])
    soap = final_u(tmp_path, "soap", [f"pde={pde}", "optim=soap", "train=cpu_quick"])
    assert soap < QUICK_TARGETS[pde], (soap, adam)
    assert soap < adam, (soap, adam)


def test_rayleigh_taylor_quick_budget_meets_its_target(tmp_path):
    """Issue 16's target at the quick budget, seed 0: SOAP's T under 1e-1 and under a fifth of the
    persistence baseline (repeating t = 0), and under Adam's (docs/benchmarks.md: T 3.4e-4 against
    persistence 3.7e-3 and Adam's 6.6e-4 at seed 0)."""
    summaries = {}
    for optim in ("adam", "soap"):
        run_dir = tmp_path / optim
        result = run_cli(["pde=rayleigh_taylor", f"optim={optim}", "train=cpu_quick", "train.figures=false",
                          f"hydra.run.dir={run_dir}"], tmp_path, timeout=1800)
        assert result.returncode == 0, result.stderr[-3000:]
        summaries[optim] = json.loads((run_dir / "summary.json").read_text())
    soap, adam = (summaries[o]["final_rel_l2"]["T"] for o in ("soap", "adam"))
    persistence = summaries["soap"]["persistence_rel_l2"]["T"]
    assert soap < 1e-1 and soap < persistence / 5, (soap, persistence)
    assert soap < adam, (soap, adam)
