"""Stopping on a signal: SIGTERM handled as Ctrl-C is, and the one line that says how to resume.

A scheduler, ``timeout`` or ``kill`` sends SIGTERM; a terminal's Ctrl-C sends SIGINT to every process of
the foreground job. Both end a run the same way: the loop stops, ``summary.json`` says ``interrupted``
(the last checkpoint stays, to resume from), and the process that started the work prints one line
saying how to resume, then exits with 128 + the signal's number (130 for Ctrl-C, 143 for SIGTERM).

``make`` targets set ``BNSTUDY_RESUME`` to the make command that resumes them (the same goals and
variables, and this make's ``RUN_ID``): the line then names that command, which also draws the figures;
without it the line names the entry point's own way (``hydra.run.dir=``, ``hydra.sweep.dir=``, ``--run-id``).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from typing import Iterator

RESUME_ENV = "BNSTUDY_RESUME"  # set by the Makefile: the make command that resumes what it started


class Terminated(KeyboardInterrupt):
    """SIGTERM (or another stop signal) raised where Ctrl-C raises KeyboardInterrupt: every handler of
    KeyboardInterrupt (the loop's "interrupted" summary, the entry points' resume line) handles it too."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def exit_status(e: BaseException) -> int:
    """128 + the signal's number, as a shell reports a process the signal ended (130 for Ctrl-C)."""
    return 128 + (e.signum if isinstance(e, Terminated) else signal.SIGINT)


def _raise_terminated(signum: int, frame) -> None:
    raise Terminated(signum)


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Within: SIGTERM raises ``Terminated`` in the main thread (Python's default would end the process
    at once, the summary still saying "running" and no line printed). The previous handler is put back.
    Outside the main thread (where Python allows no handler) nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def deferred_signals() -> Iterator[None]:
    """Within: SIGINT and SIGTERM are ignored (a second Ctrl-C while the workers record their state
    must not break the cleanup half-way); the previous handlers are put back."""
    previous = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def resume_command(default: str) -> str:
    """How to resume this work: the make command when make started it (``BNSTUDY_RESUME``, as one line),
    else ``default`` (the entry point's own way)."""
    return " ".join(os.environ.get(RESUME_ENV, "").split()) or default


def print_interrupted(default: str) -> None:
    """The one line an interrupted command prints: ``interrupted: resume with <resume_command>``."""
    print(f"interrupted: resume with {resume_command(default)}", file=sys.stderr)
