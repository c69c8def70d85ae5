"""Tests of pinnrun.preemption: signals set a flag, hand_over chains to the previous handler or exits 75."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from pinnrun.preemption import RESUMABLE_EXIT_CODE, SIGNALS, PreemptionGuard


def deliver(sig: int) -> None:
    """Send ``sig`` to this process and give Python the chance to run the handler."""
    os.kill(os.getpid(), sig)
    for _ in range(100):  # handlers run between bytecodes of the main thread
        time.sleep(0.001)


@pytest.fixture(autouse=True)
def restore_handlers():
    saved = {sig: signal.getsignal(sig) for sig in SIGNALS}
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler if handler is not None else signal.SIG_DFL)


def test_exit_code_is_ex_tempfail():
    assert RESUMABLE_EXIT_CODE == 75
    assert {s.name for s in SIGNALS} == {"SIGTERM", "SIGUSR1", "SIGUSR2", "SIGINT"}


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGUSR1, signal.SIGUSR2, signal.SIGINT])
def test_signal_sets_flag_without_exiting(sig):
    with PreemptionGuard() as guard:
        assert guard.active and not guard.requested and guard.signal_name is None
        deliver(sig)
        assert guard.requested
        assert guard.signal_name == sig.name
        deliver(signal.SIGUSR1 if sig != signal.SIGUSR1 else signal.SIGTERM)
        assert guard.signal_name == sig.name  # the first signal is the one reported
    assert not guard.active


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGUSR2])
def test_hand_over_calls_previous_python_handler(sig):
    calls = []

    def previous(signum, frame):  # e.g. submitit's requeue handler
        calls.append((signum, frame))

    signal.signal(sig, previous)
    with PreemptionGuard() as guard:
        deliver(sig)
        assert calls == []  # our handler replaced it while the guard is active
        guard.hand_over(step=100, run_dir="/runs/x")
        assert calls == [(int(sig), None)]
        assert signal.getsignal(sig) is previous  # restored before being called
    assert signal.getsignal(sig) is previous


@pytest.mark.parametrize(
    "sig, text",
    [
        (signal.SIGTERM, "received SIGTERM at step 300"),
        (signal.SIGUSR2, "received SIGUSR2 at step 300"),
        (signal.SIGINT, "interrupted (SIGINT) at step 300"),
    ],
)
def test_hand_over_with_default_handler_exits_resumable(sig, text, capsys, tmp_path):
    signal.signal(sig, signal.SIG_DFL if sig != signal.SIGINT else signal.default_int_handler)
    with PreemptionGuard() as guard:
        deliver(sig)
        with pytest.raises(SystemExit) as exit_info:
            guard.hand_over(step=300, run_dir=tmp_path)
    assert exit_info.value.code == RESUMABLE_EXIT_CODE
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert text in err[0]
    assert err[0].endswith(f"checkpoint saved, resume with: pinnrun resume={tmp_path}")


def test_hand_over_with_ignored_previous_exits_resumable():
    signal.signal(signal.SIGUSR1, signal.SIG_IGN)
    with PreemptionGuard() as guard:
        deliver(signal.SIGUSR1)
        with pytest.raises(SystemExit) as exit_info:
            guard.hand_over(step=1, run_dir="r")
    assert exit_info.value.code == 75
    assert signal.getsignal(signal.SIGUSR1) is signal.SIG_IGN


def test_second_ctrl_c_aborts():
    with PreemptionGuard() as guard:
        deliver(signal.SIGINT)
        assert guard.requested
        with pytest.raises(KeyboardInterrupt):
            deliver(signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) is not guard._handler


def test_hand_over_without_signal_is_noop():
    with PreemptionGuard() as guard:
        guard.hand_over(step=1, run_dir="r")
        assert guard.active


def test_handlers_restored_after_exit_even_on_error():
    marker = lambda signum, frame: None  # noqa: E731
    signal.signal(signal.SIGTERM, marker)
    before = {sig: signal.getsignal(sig) for sig in SIGNALS}
    with pytest.raises(RuntimeError):
        with PreemptionGuard():
            assert signal.getsignal(signal.SIGTERM) is not marker
            raise RuntimeError("training failed")
    assert {sig: signal.getsignal(sig) for sig in SIGNALS} == before
    # Several jobs in one process: a second guard works like the first.
    with PreemptionGuard() as guard:
        deliver(signal.SIGTERM)
        assert guard.requested
    assert signal.getsignal(signal.SIGTERM) is marker


def test_outside_main_thread_is_a_noop_with_warning():
    results = {}

    def run():
        with pytest.warns(RuntimeWarning, match="main thread"):
            with PreemptionGuard() as guard:
                results["active"] = guard.active
                results["requested"] = guard.requested
                guard.hand_over(step=1, run_dir="r")  # nothing received: nothing happens

    before = signal.getsignal(signal.SIGTERM)
    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    assert results == {"active": False, "requested": False}
    assert signal.getsignal(signal.SIGTERM) is before


CHILD = r"""
import sys, time
import jax.numpy as jnp
from pinnrun.checkpoint import Checkpointer
from pinnrun.preemption import PreemptionGuard

run_dir = sys.argv[1]
ckpt = Checkpointer(run_dir + "/checkpoints")
state = {"w": jnp.zeros(4), "step": jnp.asarray(0, jnp.int32)}
with PreemptionGuard() as guard:
    print("ready", flush=True)
    for step in range(1, 100000):
        time.sleep(0.01)  # a "chunk"
        state = {"w": state["w"] + 1, "step": jnp.asarray(step, jnp.int32)}
        if guard.requested:
            ckpt.save(step, state, {"signal": guard.signal_name}, force=True)
            ckpt.wait()
            guard.hand_over(step=step, run_dir=run_dir)
print("not preempted", flush=True)
"""


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_real_process_checkpoints_and_exits_75(tmp_path, sig):
    import subprocess
    import sys

    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(tmp_path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout.readline().strip() == "ready"
        time.sleep(0.1)
        child.send_signal(sig)
        out, err = child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == RESUMABLE_EXIT_CODE, err
    last = err.strip().splitlines()[-1]
    assert last.startswith("pinnrun: ") and last.endswith(f"checkpoint saved, resume with: pinnrun resume={tmp_path}")
    assert "not preempted" not in out
    from pinnrun.checkpoint import Checkpointer

    ckpt = Checkpointer(tmp_path / "checkpoints")
    step = ckpt.latest_step()
    assert step is not None and f"at step {step};" in last
    assert ckpt.restore_metadata() == {"signal": sig.name}
    ckpt.close()


def test_rearm_after_a_previous_handler_returns():
    import os
    import signal

    from pinnrun.preemption import PreemptionGuard

    calls = []
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: calls.append(signum))
    try:
        with PreemptionGuard() as guard:
            os.kill(os.getpid(), signal.SIGTERM)
            assert guard.requested and guard.forwards_to_python_handler()
            guard.hand_over(step=3)
            assert calls == [signal.SIGTERM]
            guard.rearm()
            assert not guard.requested
            os.kill(os.getpid(), signal.SIGTERM)
            assert guard.requested and calls == [signal.SIGTERM]  # ours again, not the earlier one
    finally:
        signal.signal(signal.SIGTERM, previous)
