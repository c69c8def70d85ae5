"""Preemption: turn SIGTERM / SIGUSR1 / SIGUSR2 / SIGINT into "checkpoint, then hand over".

A signal only sets a flag. Python runs signal handlers between bytecodes, so during a jitted chunk the
flag is set as soon as the chunk returns; the trainer checks ``guard.requested`` after each chunk,
saves a checkpoint, waits for it, and calls ``guard.hand_over(step, run_dir)``:

* if a Python handler was installed before ours for that signal (e.g. submitit's, which requeues the
  job on SIGUSR2 / ``$SUBMITIT_PREEMPT_SIGNAL``), it is called with ``(signum, None)``;
* otherwise (default action, ignored, a handler not installed from Python, or Python's default SIGINT
  handler) the process exits with ``RESUMABLE_EXIT_CODE`` after one line on stderr saying how to resume.

Exit code 75 is ``EX_TEMPFAIL`` from sysexits.h ("temporary failure, try again"): the run was preempted
or interrupted, its latest checkpoint is complete, and ``pinnrun resume=<run_dir>`` continues it. Job
scripts can requeue on exactly this code (``[ $? -eq 75 ] && scontrol requeue $SLURM_JOB_ID``).

A second Ctrl-C (SIGINT after SIGINT) raises KeyboardInterrupt at once, for a user who does not want
to wait for the checkpoint. The guard always restores the previous handlers on exit, so several runs
(Hydra multirun jobs) can use it one after another in one process. Outside the main thread Python cannot install signal handlers;
there the guard warns once and does nothing (``requested`` stays False).
"""

from __future__ import annotations

import signal
import sys
import threading
import warnings
from pathlib import Path
from types import FrameType
from typing import Any

RESUMABLE_EXIT_CODE = 75  # EX_TEMPFAIL: preempted or interrupted after a complete checkpoint; resumable

SIGNALS: tuple[signal.Signals, ...] = tuple(
    getattr(signal, name) for name in ("SIGTERM", "SIGUSR1", "SIGUSR2", "SIGINT") if hasattr(signal, name)
)


class PreemptionGuard:
    """``with PreemptionGuard() as guard:`` ... ``if guard.requested: save; guard.hand_over(step, run_dir)``."""

    def __init__(self, signals: tuple[int, ...] | None = None):
        self.signals = tuple(signal.Signals(s) for s in (SIGNALS if signals is None else signals))
        self._previous: dict[signal.Signals, Any] = {}
        self._received: signal.Signals | None = None
        self._installed = False
        self.active = False  # True while our handlers are installed

    # ----- state -----
    @property
    def requested(self) -> bool:
        """A signal arrived: save a checkpoint and call ``hand_over``."""
        return self._received is not None

    @property
    def signal_name(self) -> str | None:
        """The name of the (first) signal received, e.g. ``"SIGTERM"``."""
        return self._received.name if self._received is not None else None

    @property
    def signum(self) -> int | None:
        return int(self._received) if self._received is not None else None

    def _handler(self, signum: int, frame: FrameType | None) -> None:
        if self._received is None:  # keep the first one; a second SIGTERM must not change the story
            self._received = signal.Signals(signum)
        elif signum == signal.SIGINT and self._received == signal.SIGINT:
            # Ctrl-C twice: the user does not want to wait for the checkpoint.
            raise KeyboardInterrupt

    # ----- installing -----
    def install(self) -> PreemptionGuard:
        if self._installed:
            return self
        if threading.current_thread() is not threading.main_thread():
            warnings.warn(
                "pinnrun: not in the main thread, so signals cannot be caught; preemption will not be checkpointed",
                RuntimeWarning,
                stacklevel=2,
            )
            return self
        previous = {}
        try:
            for sig in self.signals:
                previous[sig] = signal.signal(sig, self._handler)
        except (ValueError, OSError) as error:  # pragma: no cover - unusual platforms
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            warnings.warn(f"pinnrun: cannot install signal handlers ({error}); preemption will not be checkpointed",
                          RuntimeWarning, stacklevel=2)
            return self
        self._previous = previous
        self._installed = self.active = True
        return self

    def restore(self) -> None:
        """Put the previous handlers back (idempotent)."""
        if not self._installed:
            return
        for sig, handler in self._previous.items():
            # getsignal() returns None for handlers not installed from Python; those cannot be reinstalled.
            signal.signal(sig, signal.SIG_DFL if handler is None else handler)
        self._installed = self.active = False

    def __enter__(self) -> PreemptionGuard:
        return self.install()

    def __exit__(self, *exc) -> None:
        self.restore()

    # ----- handing over -----
    def message(self, step: int | None = None, run_dir: str | Path | None = None) -> str:
        name = self.signal_name or "a signal"
        at = f" at step {step}" if step is not None else ""
        resume = f"pinnrun resume={run_dir}" if run_dir is not None else "pinnrun resume=<run_dir>"
        if self._received == signal.SIGINT:
            return f"pinnrun: interrupted (SIGINT){at}; checkpoint saved, resume with: {resume}"
        return f"pinnrun: received {name}{at}; checkpoint saved, resume with: {resume}"

    def forwards_to_python_handler(self) -> bool:
        """Whether ``hand_over`` will call a Python handler installed before ours (e.g. submitit's)."""
        previous = self._previous.get(self._received) if self._received is not None else None
        return callable(previous) and previous is not signal.default_int_handler

    def rearm(self) -> PreemptionGuard:
        """Catch signals again after a previous handler returned (submitit ignores SIGTERM, say)."""
        self._received = None
        return self.install()

    def hand_over(self, step: int | None = None, run_dir: str | Path | None = None) -> None:
        """After the checkpoint is saved: restore the previous handlers and let the signal take its course.

        Calls the previous Python handler of the received signal with ``(signum, None)`` if there was one
        (and returns if it returns: the caller should then stop training); otherwise (``SIG_DFL``,
        ``SIG_IGN``, a non-Python handler, or Python's own SIGINT handler that would raise
        KeyboardInterrupt) raises ``SystemExit(RESUMABLE_EXIT_CODE)`` after printing a
        one-line message on stderr. Does nothing if no signal was received.
        """
        if self._received is None:
            return
        sig = self._received
        previous = self._previous.get(sig)
        self.restore()
        if callable(previous) and previous is not signal.default_int_handler:
            previous(int(sig), None)
            return
        print(self.message(step, run_dir), file=sys.stderr, flush=True)
        raise SystemExit(RESUMABLE_EXIT_CODE)
