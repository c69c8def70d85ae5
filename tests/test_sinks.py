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
