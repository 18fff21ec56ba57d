"""One writer thread behind a bounded queue: writing overlaps the next forward pass, memory stays bounded.

The producer (the main thread: tokenising, forward passes) ``submit``s items; the thread hands them,
in order, to ``handle``. A failure on either side stops both: an exception in ``handle`` is raised in
the producer at its next ``submit`` (or when the block ends), and an exception in the producer's
block (an error, Interrupted, KeyboardInterrupt) cancels the thread, which drops what is queued and
calls ``close(failed=True)`` so that half-written output is removed. The queue holds at most
``maxsize`` items, so a slow disk slows the producer down instead of filling memory.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Any

_DONE = object()
_POLL_S = 0.05


class WriterThread:
    """``with WriterThread(handle, close) as w: w.submit(item)...``; ``close(failed)`` runs on the thread at its end."""

    def __init__(self, handle: Callable[[Any], None], close: Callable[[bool], None], *, maxsize: int = 4, name: str = "bertsecrets-writer") -> None:
        self._handle, self._close = handle, close
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=max(1, maxsize))
        self._cancel = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def __enter__(self) -> WriterThread:
        self._thread.start()
        return self

    def _run(self) -> None:
        failed = True
        try:
            while not self._cancel.is_set():
                try:
                    item = self._queue.get(timeout=_POLL_S)
                except queue.Empty:
                    continue
                if item is _DONE:
                    failed = False
                    break
                self._handle(item)
        except BaseException as e:  # noqa: BLE001 - handed to the producer, which raises it
            self._error = e
        finally:
            try:
                self._close(failed)
            except BaseException as e:  # noqa: BLE001
                if self._error is None and not self._cancel.is_set():
                    self._error = e

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise self._error
        if not self._thread.is_alive():
            raise RuntimeError("the writer thread ended early")

    def submit(self, item: Any) -> None:
        """Queue ``item``; blocks while the queue is full; raises the writer's exception if it failed."""
        while True:
            self._raise_if_failed()
            try:
                self._queue.put(item, timeout=_POLL_S)
                return
            except queue.Full:
                continue

    def _stop(self) -> None:
        """Cancel and wait: the thread finishes the item in hand, drops the rest and cleans up."""
        self._cancel.set()
        self._thread.join()

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is not None:
            self._stop()
            return  # the producer's exception wins; the thread removed what it had half written
        try:
            self.submit(_DONE)
            while self._thread.is_alive():  # a bounded join: a signal's exception still gets through
                self._thread.join(timeout=_POLL_S)
        except BaseException:
            self._stop()
            raise
        if self._error is not None:
            raise self._error
