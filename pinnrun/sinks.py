"""Where metrics go: metrics.jsonl (always), the console, and optional extra sinks such as W&B.

Every sink has ``log(record)`` (one dict per logged step) and ``close(summary)``; a run works with any
subset of them.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import sys
import threading
import time
from pathlib import Path
from typing import Any, Protocol


class Sink(Protocol):
    def log(self, record: dict[str, Any]) -> None: ...

    def close(self, summary: dict[str, Any]) -> None: ...


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # JSON has no NaN/inf; keep them readable
    return value


class JsonlSink:
    """Appends one JSON object per record to ``metrics.jsonl`` and flushes, so a killed run keeps its log.

    ``path=None`` makes a sink that writes nothing (the other processes of a multi-process run).
    """

    def __init__(self, path: Path | None):
        self.path = None if path is None else Path(path)
        self._file = None if path is None else open(self.path, "a", encoding="utf-8")

    def log(self, record: dict[str, Any]) -> None:
        if self._file is not None:
            self._file.write(json.dumps({k: _jsonable(v) for k, v in record.items()}) + "\n")
            self._file.flush()

    def truncate(self, step: int) -> None:
        """Drop the records after ``step`` and go on appending (after a rollback)."""
        if self._file is None:
            return
        self._file.close()
        truncate_metrics(self.path, step)
        self._file = open(self.path, "a", encoding="utf-8")

    def close(self, summary: dict[str, Any]) -> None:
        if self._file is not None:
            self._file.close()


def truncate_metrics(path: Path, step: int) -> None:
    """Drop the records after ``step``: a resumed run continues from there, with no duplicated steps."""
    path = Path(path)
    if not path.exists():
        return
    kept = []
    for line in path.read_text().splitlines(keepends=True):
        record_step = _record_step(line)
        if record_step is not None and record_step <= step:
            kept.append(line)
    tmp = path.with_suffix(".jsonl.tmp")
    tmp.write_text("".join(kept))
    tmp.replace(path)


def _record_step(line: str) -> int | None:
    try:
        return int(json.loads(line)["step"])
    except (ValueError, KeyError, TypeError):
        return None  # a line cut short by a kill


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """The records of a metrics.jsonl file (ignores a truncated last line)."""
    records = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                break
    return records


def format_seconds(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}" if seconds >= 3600 else f"{seconds // 60}:{seconds % 60:02d}"


# Under `pinnrun`, Hydra's job logging sends these records to the run's pinnrun.log only.
LOG = logging.getLogger("pinnrun.progress")


class Progress:
    """A live progress line on a terminal, plain periodic lines elsewhere (cluster logs)."""

    def __init__(self, total_steps: int, mode: str = "auto", stream=None, min_interval: float = 0.2):
        self.stream = stream or sys.stdout
        if mode == "auto":
            mode = "bar" if getattr(self.stream, "isatty", lambda: False)() else "lines"
        self.mode = mode
        self.total = total_steps
        self.min_interval = min_interval
        self._last_draw = 0.0
        self._latest_error: str = ""
        self._latest_error_step: int | None = None

    @contextlib.contextmanager
    def heartbeat(self, first: int, last: int, every: float = 30.0):
        """While steps ``first``..``last`` run on the device in one call (nothing is known of their
        progress until it returns): a line every ``every`` seconds, so slow configs are not silent."""
        if self.mode == "none" or every <= 0:
            yield
            return
        done = threading.Event()
        start = time.monotonic()

        def beat():
            while not done.wait(every):
                self.message(f"... steps {first + 1}-{last} running, {time.monotonic() - start:.0f} s so far")

        thread = threading.Thread(target=beat, daemon=True)
        thread.start()
        try:
            yield
        finally:
            done.set()
            thread.join()

    def message(self, text: str) -> None:
        LOG.info(text)
        if self.mode == "none":
            return
        if self.mode == "bar":
            self.stream.write("\r\033[K")
        self.stream.write(text + "\n")
        self.stream.flush()

    def update(self, step: int, steps_per_second: float, loss: float | None, errors: dict[str, float] | None,
               errors_step: int | None = None) -> None:
        """``errors_step``: the step at which ``errors`` were evaluated (shown when it is not ``step``)."""
        if self.mode == "none":
            return
        if errors:
            self._latest_error = " ".join(f"{k} {v:.2e}" for k, v in errors.items())
            self._latest_error_step = step if errors_step is None else errors_step
        eta = (self.total - step) / steps_per_second if steps_per_second > 0 else float("nan")
        parts = [
            f"step {step}/{self.total}",
            f"{steps_per_second:.1f} steps/s",
            f"loss {loss:.3e}" if loss is not None else "",
            (f"rel_l2 {self._latest_error}" + (f" (at step {self._latest_error_step})" if self._latest_error_step != step else ""))
            if self._latest_error else "",
            f"ETA {format_seconds(eta)}" if math.isfinite(eta) else "",
        ]
        text = " | ".join(p for p in parts if p)
        LOG.info(text)
        if self.mode == "bar":
            now = time.monotonic()
            if now - self._last_draw < self.min_interval and step < self.total:
                return
            self._last_draw = now
            width = 20
            filled = int(width * step / max(self.total, 1))
            self.stream.write(f"\r\033[K[{'#' * filled}{'.' * (width - filled)}] {text}")
            if step >= self.total:
                self.stream.write("\n")
        else:
            self.stream.write(text + "\n")
        self.stream.flush()
