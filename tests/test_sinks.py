"""metrics.jsonl: appending, truncation for resume and rollback, reading a killed run's file."""

from __future__ import annotations

import json

from pinnrun.sinks import JsonlSink, Progress, read_metrics, truncate_metrics


def test_truncate_keeps_steps_up_to_the_checkpoint_and_drops_a_torn_line(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text("".join(json.dumps({"step": s}) + "\n" for s in (10, 20, 30)) + '{"step": 4')
    truncate_metrics(path, 20)
    assert [r["step"] for r in read_metrics(path)] == [10, 20]


def test_sink_truncate_then_append_writes_to_the_new_file(tmp_path):
    sink = JsonlSink(tmp_path / "metrics.jsonl")
    for step in (10, 20, 30):
        sink.log({"step": step, "loss": float(step)})
    sink.truncate(10)
    sink.log({"step": 20, "loss": 2.0})
    sink.close({})
    assert [(r["step"], r["loss"]) for r in read_metrics(tmp_path / "metrics.jsonl")] == [(10, 10.0), (20, 2.0)]


def test_non_finite_values_stay_readable(tmp_path):
    sink = JsonlSink(tmp_path / "m.jsonl")
    sink.log({"step": 1, "loss": float("nan")})
    sink.close({})
    assert read_metrics(tmp_path / "m.jsonl") == [{"step": 1, "loss": "nan"}]


def test_progress_lines_when_not_a_terminal(capsys):
    import io

    stream = io.StringIO()
    progress = Progress(100, "auto", stream=stream)
    progress.update(50, 10.0, 0.5, {"u": 0.1})
    text = stream.getvalue()
    assert progress.mode == "lines" and "step 50/100" in text and "rel_l2 u 1.00e-01" in text and "ETA 0:05" in text


def test_progress_says_when_the_error_shown_is_from_an_earlier_evaluation():
    import io

    stream = io.StringIO()
    progress = Progress(100, "lines", stream=stream)
    progress.update(50, 10.0, 0.5, {"u": 0.1}, errors_step=50)
    progress.update(60, 10.0, 0.4, None)
    first, second = stream.getvalue().splitlines()
    assert "rel_l2 u 1.00e-01 |" in first and "(at step" not in first
    assert "rel_l2 u 1.00e-01 (at step 50)" in second


def test_heartbeat_lines_while_a_long_call_runs_and_none_after():
    import io
    import time

    stream = io.StringIO()
    progress = Progress(100, "lines", stream=stream)
    with progress.heartbeat(20, 40, every=0.05):
        time.sleep(0.18)
    beats = stream.getvalue().splitlines()
    assert 2 <= len(beats) <= 4 and all(line.startswith("... steps 21-40 running, ") for line in beats)
    time.sleep(0.1)
    assert stream.getvalue().splitlines() == beats   # the thread stopped with the call
    with Progress(100, "none", stream=stream).heartbeat(0, 10, every=0.01):
        time.sleep(0.05)
    assert stream.getvalue().splitlines() == beats


def test_planning_notes_name_the_steps_and_a_cpu_budget_for_a_gpu_recipe():
    from types import SimpleNamespace

    from pinnrun.trainer import planning_notes

    stages = [SimpleNamespace(end=50, entry=0, window=0), SimpleNamespace(end=100, entry=0, window=1)]
    recipe = {"steps": 50, "batch_size": 8192, "time_windows": 2}
    quick = {"steps": 10, "batch_size": 64, "time_windows": 2}
    notes = planning_notes({"recipe": recipe, "quick": quick, "budget": recipe, "train": {"batch_size": 8192}}, stages, 0)
    assert notes[0] == "planned: 100 steps in 2 time windows"
    assert notes[1].startswith("this is the paper's recipe budget (100 steps, batch 8192)") and "train=cpu_quick" in notes[1]
    # the quick budget, or a recipe no bigger than it, gets no such note
    assert planning_notes({"recipe": recipe, "quick": quick, "budget": quick, "train": {"batch_size": 64}}, stages, 40) == [
        "planned: 100 steps in 2 time windows, from step 40"]
    assert len(planning_notes({"recipe": quick, "quick": quick, "budget": quick, "train": {"batch_size": 64}}, stages, 0)) == 1
