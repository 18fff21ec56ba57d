"""The stderr console, made lazily (an import-time console would escape test capture)."""

from __future__ import annotations

import sys
from typing import Any

_state: dict[str, Any] = {"verbosity": 0}


def err_console() -> Any:
    from rich.console import Console

    return Console(file=sys.stderr, highlight=False)


def set_verbosity(v: int) -> None:
    _state["verbosity"] = v


def info(msg: str) -> None:
    """A diagnostic line on stderr; silenced by -q."""
    if _state["verbosity"] >= 0:
        print(msg, file=sys.stderr, flush=True)


def note(msg: str) -> None:
    """A line that changes how a result reads (a silent fallback, too little data behind it): on stderr even with -q."""
    print(msg, file=sys.stderr, flush=True)


def debug(msg: str) -> None:
    """Shown with -v."""
    if _state["verbosity"] >= 1:
        print(msg, file=sys.stderr, flush=True)


def quiet() -> bool:
    return _state["verbosity"] < 0
