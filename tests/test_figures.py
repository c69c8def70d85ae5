"""Figures that tell the truth (pinnrun/figures.py): reference and prediction on one colour scale,
viridis for fields, a diverging scale centred at 0 for signed errors and signed fields, titles from
the run, the time windows' edges marked; every figure written and not blank."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib import image

from pinnrun import figures
from pinnrun.evaluation import Evaluation
from pinnrun.pdes.base import Reference


def drawn(path) -> bool:
    pixels = image.imread(path)
    return pixels.shape[0] > 200 and float(pixels[..., :3].std()) > 0.05


def test_reference_and_prediction_share_one_scale_and_errors_are_centred():
    ref, pred = np.array([-1.0, 2.6]), np.array([-1.0, 1.0])   # KdV: the prediction misses the peak
    assert figures.field_scale(ref, pred) == {"cmap": "viridis", "vmin": -1.0, "vmax": 2.6}
    assert figures.field_scale(ref, pred, signed=True) == {"cmap": "RdBu_r", "vmin": -2.6, "vmax": 2.6}
    assert figures.error_scale(np.array([-0.1, 0.3])) == {"cmap": "RdBu_r", "vmin": -0.3, "vmax": 0.3}
    assert figures.field_scale(np.ones(3), np.ones(3))["vmax"] > 1.0   # a constant field still has a range


def test_titles_and_window_edges_come_from_the_summary():
    summary = {"pde": "kdv", "optimizer": "soap", "steps": 6000, "time_windows": 4, "domain": {"t": [0.0, 1.0], "x": [-1, 1]}}
    assert figures.run_title(summary) == "kdv, soap, step 6000"
    np.testing.assert_allclose(figures.window_edges_of(summary), [0, 0.25, 0.5, 0.75, 1])
    assert figures.window_edges_of({**summary, "time_windows": 1}) is None and figures.run_title(None) == ""


def evolution_case(space: int):
    t = np.linspace(0, 1, 9)
    axes = {"t": t, "x": np.linspace(-1, 1, 12)} if space == 1 else {"t": t, "x": np.linspace(0, 1, 10), "y": np.linspace(0, 1, 8)}
    grids = np.meshgrid(*axes.values(), indexing="ij")
    ref = np.cos(np.pi * grids[1]) * (1 + grids[0])
    pred = 0.8 * ref
    error = pred - ref
    evaluation = Evaluation({"u": pred}, {"u": 0.2}, {"u": float(np.abs(error).max())}, {"u": np.full(len(t), 0.2)}, {"u": 0.5})
    return Reference(axes=axes, fields={"u": ref}), evaluation


@pytest.mark.parametrize("space", [1, 2])
def test_every_figure_is_written_and_drawn(tmp_path, space):
    reference, evaluation = evolution_case(space)
    summary = {"pde": "demo", "optimizer": "adam", "steps": 10, "time_windows": 2, "domain": {"t": [0.0, 1.0]}}
    written = figures.write_evaluation(tmp_path, reference, evaluation, summary=summary, signed=("u",))
    expected = {"solution", "error_vs_t"} if space == 1 else {"snapshots_u", "error_vs_t"}
    assert set(written) == expected
    assert all(drawn(path) for path in written.values())
    assert (tmp_path / "error_vs_t.npz").is_file()


def test_training_figure_of_a_time_marched_run_marks_windows_and_the_whole_horizon(tmp_path):
    import json

    from pinnrun.plot import plot_training

    records = [{"step": s, "window": 0 if s <= 20 else 1, "loss": 1.0 / s, "loss/res": 0.5 / s, "lr": 1e-3,
                "causal/mean_w": 0.5, "weight/res": 1.0, **({"rel_l2/u": 0.1 * s} if s % 20 == 0 else {})} for s in range(10, 50, 10)]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    path = plot_training(tmp_path, summary={"final_rel_l2": {"u": 0.3}, "time_windows": 2})
    assert path == tmp_path / "training.png" and drawn(path)
