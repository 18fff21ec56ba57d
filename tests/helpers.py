"""Assertions shared by the CLI tests (imported as ``from helpers import ...``; tests/ is on sys.path)."""

from __future__ import annotations

from typing import Any


def one_line_error(res: Any, code: int, *needles: str, last: bool = False, only: bool = False) -> str:
    """The documented failure contract of a CliRunner result: exit ``code``, exactly one ``error:`` line holding
    every needle, no traceback. ``last``: notes may precede it but the error line ends stderr; ``only``: it is
    all of stderr. Returns the error line."""
    assert res.exit_code == code, (res.exit_code, res.stdout, res.stderr)
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    errors = [ln for ln in lines if "error:" in ln]
    assert len(errors) == 1 and "Traceback" not in res.stderr, res.stderr
    if last:
        assert lines[-1] == errors[0], res.stderr
    if only:
        assert len(lines) == 1, res.stderr
    for n in needles:
        assert n in errors[0], errors[0]
    return errors[0]
