"""Progress on stderr: a rich bar on a terminal, a heartbeat line every few seconds in batch logs."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Callable

Advance = Callable[[int], None]


@contextmanager
def progress(total: int, description: str, *, quiet: bool = False, heartbeat_s: float = 10.0) -> Iterator[Advance]:
    if quiet or total <= 0:
        yield lambda n=1: None
        return
    if sys.stderr.isatty():
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        from bertsecrets_cli.render.console import err_console

        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn(),
                      console=err_console(), transient=True) as bar:
            task = bar.add_task(description, total=total)
            yield lambda n=1: bar.advance(task, n)
        return
    state = {"done": 0, "last": time.monotonic(), "start": time.monotonic()}

    def advance(n: int = 1) -> None:
        state["done"] += n
        now = time.monotonic()
        if now - state["last"] >= heartbeat_s or state["done"] >= total:
            state["last"] = now
            print(f"{description}: {state['done']}/{total} ({now - state['start']:.0f}s)", file=sys.stderr, flush=True)

    yield advance


def reporter(quiet: bool) -> Callable[[int, str], Any]:
    """:func:`progress` as the callback model/ code takes (model.hooks.ProgressFactory), honouring --quiet."""
    return lambda total, description: progress(total, description, quiet=quiet)
