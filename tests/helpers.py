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


def strengthen(model: Any, seed: int = 0) -> None:
    """Larger random weights than the 0.02 init, so that disabling a head visibly moves the logits."""
    import torch

    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 2 and "embeddings" not in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.3)


def covers(command: str, *flags: str):
    """Claim that the decorated test passes each of ``flags`` to ``bertsecrets COMMAND`` through the real entry point
    and asserts an effect that would differ if the option were ignored. tests/test_cli_contract.py reads these
    claims from the test sources (AST), checks every flag literally appears in the test, and fails on any option
    of the app that no test claims. ``command`` is the subcommand path as typed: "extract", "classify run"."""

    def mark(fn):
        fn.__covers__ = getattr(fn, "__covers__", ()) + ((command, flags),)
        return fn

    return mark
