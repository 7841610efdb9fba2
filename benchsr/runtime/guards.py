"""Guards around a run: a time limit, signals that unwind like Ctrl-C, and fault injection for
the crash tests."""
from __future__ import annotations

import contextlib
import os
import signal
import threading

# Fault injection for the crash tests: "step:N" (before training step N), "checkpoint:E" (while
# epoch E's checkpoint is being replaced) or "eval:I" (after evaluation image I) SIGKILLs the run.
FAULT_ENV = "BENCHSR_FAULT"


def fault(point: str, index: int) -> None:
    if os.environ.get(FAULT_ENV) == f"{point}:{index}":
        os.kill(os.getpid(), signal.SIGKILL)


class RunTimeout(Exception):
    """A run went past its configured time limit (config key time_limit_s)."""


@contextlib.contextmanager
def time_limit(seconds: float):
    """Interrupts the run after `seconds` (SIGALRM; 0 = no limit). A hang inside one C call is
    interrupted as soon as that call returns to Python."""
    if not seconds or threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_alarm(signum, frame):
        raise RunTimeout(f"stopped after the {seconds:g} s limit (config time_limit_s)")
    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@contextlib.contextmanager
def exit_on_signals():
    """SIGTERM and SIGHUP raise SystemExit inside the block, so that its `finally` clauses
    remove temporary files as on Ctrl-C (a kill -9 cannot be caught). Main thread only."""
    def stop(signum, _frame):
        raise SystemExit(128 + signum)
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
