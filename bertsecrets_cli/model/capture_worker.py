"""extract's per-layer capture work (statistics, stored copy) on one background thread, overlapping the forward.

On a CPU where torch's intra-op threads leave a core of the process's affinity unused (``--threads 1`` on two
cores, a Slurm job with more CPUs than threads), the main thread computes layer l+1 while this thread reduces
layer l: model.capture.BatchCapture's work no longer adds to the forward's time. Elsewhere it stays inline:
on CUDA the kernels are asynchronous already, and when torch's threads use every core a second thread only
contends with them. ``FORCE`` (True or False; tests and benchmarks/family_overhead.py) overrides the choice.

Bounded: at most ``pending`` layers are handed over and not finished (the hook blocks on the next), so at
most that many layers' probabilities stay alive beyond the forward's own. ``wait`` raises a layer's
exception in the caller; ``close`` (the ``with`` block's end, also on an error or a stop) drops what is
queued and joins the thread. The probabilities handed over are never modified after the hook returns
(model.attention: edits clone before the hook, dropout runs before it, the forward only reads them).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import torch

from bertsecrets_cli.model.device import cpu_threads, device_type

FORCE: bool | None = None  # None: decided by the device and the threads (offload_capture)


def offload_capture(device: Any) -> bool:
    """Whether extract's capture runs on its own thread: on a CPU with a core that torch's threads leave free
    (unless ``FORCE`` says otherwise)."""
    if FORCE is not None:
        return FORCE
    return device_type(device) == "cpu" and torch.get_num_threads() < cpu_threads()


class LayerWorker:
    """``with LayerWorker() as w: w.submit(fn, *args)...; w.wait()``: ``fn`` runs on one thread, in order."""

    def __init__(self, pending: int = 2) -> None:
        # OpenMP's thread count is per thread: the worker's ops must run with the caller's, so that the values are
        # the same bit for bit as inline
        self._threads = torch.get_num_threads()
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="bertsecrets-capture", initializer=torch.set_num_threads,
                                        initargs=(self._threads,))
        self._slots = threading.BoundedSemaphore(max(1, pending))
        self._futures: list[Future[None]] = []

    def __enter__(self) -> LayerWorker:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _run(self, fn: Callable[..., None], args: tuple[Any, ...]) -> None:
        try:
            with torch.inference_mode():  # as the forward's hook: work buffers made here are inference tensors too
                fn(*args)
        finally:
            self._slots.release()

    def submit(self, fn: Callable[..., None], *args: Any) -> None:
        """Hand ``fn(*args)`` to the thread; blocks while ``pending`` calls are unfinished."""
        self._slots.acquire()
        try:
            self._futures.append(self._pool.submit(self._run, fn, args))
        except BaseException:
            self._slots.release()
            raise

    def wait(self) -> None:
        """Wait for every call handed over; the first one's exception is raised here."""
        futures, self._futures = self._futures, []
        for f in futures:
            f.result()

    def close(self) -> None:
        """Drop the calls not started, finish the one in hand, join the thread."""
        self._futures = []
        self._pool.shutdown(wait=True, cancel_futures=True)
