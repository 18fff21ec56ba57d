"""How model/ reports progress and notes without importing render/ or jobs/: the caller hands in callables.

A job passes ``render.progress.reporter(quiet)`` and ``render.console.info``; library callers and tests get
the silent defaults, so model code never decides where (or whether) anything is printed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager

Advance = Callable[[int], None]
ProgressFactory = Callable[[int, str], AbstractContextManager[Advance]]  # (total, description) -> advance(n)
Note = Callable[[str], None]


@contextmanager
def silent(total: int, description: str) -> Iterator[Advance]:
    """The default progress: counts nothing, shows nothing."""
    yield lambda n=1: None


def no_note(message: str) -> None:
    """The default note: dropped."""
