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


class Interrupted(SystemExit):
    """A signal (SIGTERM, SIGHUP, or a scheduler's stop) ended the process: not a failure."""


class UserInterrupt(KeyboardInterrupt):
    """Ctrl-C (SIGINT) inside a guarded block: a plugin's own KeyboardInterrupt is a failure."""


def by_signal(exc: BaseException) -> bool:
    """Whether a SystemExit or KeyboardInterrupt came from a signal, not from code that raised it."""
    return isinstance(exc, (Interrupted, UserInterrupt))


def stop_reason(exc: BaseException) -> str:
    code = getattr(exc, "code", None)
    if isinstance(exc, UserInterrupt):
        return "Ctrl-C"
    if isinstance(code, int) and code > 128:
        with contextlib.suppress(ValueError):
            return signal.Signals(code - 128).name
    return "a scheduler's stop"


@contextlib.contextmanager
def exit_on_signals():
    """SIGTERM and SIGHUP raise Interrupted (a SystemExit) inside the block, and SIGINT raises
    UserInterrupt (a KeyboardInterrupt), so that its `finally` clauses remove temporary files
    as on Ctrl-C (a kill -9 cannot be caught), and a run can tell a signal from a plugin that
    exits. Main thread only."""
    def stop(signum, _frame):
        raise Interrupted(128 + signum)

    def interrupt(_signum, _frame):
        raise UserInterrupt()
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    handlers = {signal.SIGTERM: stop, signal.SIGHUP: stop, signal.SIGINT: interrupt}
    old = {sig: signal.signal(sig, h) for sig, h in handlers.items()}
    try:
        yield
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
