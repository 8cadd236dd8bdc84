"""Ctrl-C and SIGTERM for the commands that hold an MLflow run open (search, evaluate).

Python ignores an exception raised while it runs a ``__del__`` method or a weakref callback: it
prints "Exception ignored in ..." and carries on. A Ctrl-C that lands there (SQLAlchemy runs such
callbacks whenever the garbage collector frees its objects) would be lost and the search would run
to its end. So the handlers also remember the stop, and ``check`` raises it again at a safe point.
"""

from __future__ import annotations

import contextlib
import signal
import threading

_pending: type[KeyboardInterrupt] | None = None
_deferring = False


class Terminated(KeyboardInterrupt):
    """SIGTERM (``kill``, a scheduler's stop) during a search or evaluation: handled like Ctrl-C, so
    the MLflow run is closed as interrupted instead of being left running."""


def _handler(signum, frame):
    global _pending
    _pending = Terminated if signum == signal.SIGTERM else KeyboardInterrupt
    if not _deferring:
        raise _pending


def install() -> None:
    """Handle SIGINT and SIGTERM in this (main) thread: raise the stop, and remember it."""
    global _pending
    _pending = None
    signal.signal(signal.SIGINT, _handler)
    signal.signal(signal.SIGTERM, _handler)


def check() -> None:
    """Raise a stop whose exception was swallowed; a no-op when none is pending."""
    global _pending
    if _pending is not None:
        stop, _pending = _pending, None
        raise stop


@contextlib.contextmanager
def deferred():
    """Hold a stop that arrives inside the block until the block is done, then raise it.

    For writes to MLflow's SQLite store: a Ctrl-C inside one of its transactions left the database
    locked, and MLflow logged the failed commit as an ERROR with two tracebacks (about 1 in 8
    interrupted searches, ``tests/test_resume.py``), although the run was then closed correctly; a
    SIGTERM there, raised by Prefect's handler inside a flow run, left closing the run failing too.
    """
    global _deferring
    outer, _deferring = _deferring, True
    held: list[int] = []
    foreign = None
    if not outer and threading.current_thread() is threading.main_thread():
        # inside a flow run Prefect's own SIGTERM handler replaces ours and raises at once: it is held
        # here too, then handed back to it (the same SIGTERM landed in a trial's MLflow write in CI)
        current = signal.getsignal(signal.SIGTERM)
        if current is not _handler and callable(current):
            foreign = signal.signal(signal.SIGTERM, lambda signum, frame: held.append(signum))
    try:
        yield
    finally:
        _deferring = outer
        if foreign is not None:
            signal.signal(signal.SIGTERM, foreign)
    if held:
        signal.raise_signal(signal.SIGTERM)  # now to the handler it was meant for
    if not outer:
        check()
