"""Graceful stops: SIGTERM (Slurm's warning before SIGKILL) and SIGINT end the current unit of work
cleanly, keep finished parts, and exit with EXIT_INTERRUPTED so ``--resume`` can finish the job.

Two layers: from the first line of the process (``stop_on_sigterm``, called by the entry point) a SIGTERM
raises ``Interrupted`` wherever it lands (imports, model loading, a short command), like SIGINT raises
KeyboardInterrupt; inside a ``graceful_stop`` block, long loops instead finish their unit of work first.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from bertsecrets_cli.errors import Interrupted


class StopFlag:
    def __init__(self) -> None:
        self.signal: str | None = None

    @property
    def requested(self) -> bool:
        return self.signal is not None


_active: list[StopFlag] = []  # the flags of the graceful_stop blocks now open, outermost first


@contextmanager
def graceful_stop() -> Iterator[StopFlag]:
    """Within the block, SIGTERM/SIGINT set a flag that long loops check between units of work.

    Blocks nest (reproduce around each of its steps): a signal sets the flag of every open block, so an
    outer runner learns of a stop that the step it ran finished its work through; a block opened after a
    stop was requested starts with it requested, so the next step stops at its first check.
    """
    flag = StopFlag()
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return
    flag.signal = next((f.signal for f in _active if f.requested), None)

    def handler(signum: int, frame: Any) -> None:
        if flag.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C stops at once
        for f in (*_active, flag):
            f.signal = f.signal or signal.Signals(signum).name

    old = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGINT)}
    _active.append(flag)
    try:
        yield flag
    finally:
        _active.remove(flag)
        for s, h in old.items():
            signal.signal(s, h)


def _raise_stop(signum: int, frame: Any) -> None:
    raise Interrupted(f"stopped by {signal.Signals(signum).name} before the work was saved; rerun the command "
                      "(extract: with --resume, which keeps the finished parts)")


def stop_on_sigterm() -> None:
    """SIGTERM raises Interrupted (exit 75) outside graceful_stop blocks, instead of killing the process unclean."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _raise_stop)

