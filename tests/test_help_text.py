"""Every command's --help reads as written: no stray space before punctuation ("wnli .", "every single layer .").

Typer's help renderer removes a literal "[default: ...]" from an option's help, leaving the space before it
behind; help texts say "(default: ...)" instead. The help is rendered very wide so that no line wraps and a
stray space cannot hide at a line break.
"""

from __future__ import annotations

import re

import pytest
import typer
from typer.testing import CliRunner

from bertsecrets_cli.cli.app import app

STRAY = re.compile(r"\S( +)([.,;:!?)])(?=[\s│]|$)")


def _command_paths() -> list[list[str]]:
    def walk(cmd: object, path: list[str]) -> list[list[str]]:
        out = [path]
        if hasattr(cmd, "commands"):  # a group (typer vendors its own click: no isinstance on click.Group)
            for name, sub in sorted(cmd.commands.items()):
                out += walk(sub, [*path, name])
        return out

    return walk(typer.main.get_command(app), [])


def stray_spaces(text: str) -> list[str]:
    return [ln.strip()[max(0, m.start() - 40) : m.end() + 5] for ln in text.splitlines() for m in STRAY.finditer(ln)]


def test_the_check_sees_a_stray_space():
    assert ["wnli ." in s for s in stray_spaces("│ GLUE task: cola, sst2, wnli . [env var: X] │")] == [True]
    assert stray_spaces("Every single layer (default: on). Then L1H2, L3H4; ok: yes") == []


@pytest.mark.parametrize("path", _command_paths(), ids=lambda p: " ".join(p) or "bertsecrets")
def test_help_has_no_space_before_punctuation(path):
    res = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "1000"})
    assert res.exit_code == 0, res.output
    assert len(res.output.splitlines()) > 3
    assert stray_spaces(res.output) == [], f"bertsecrets {' '.join(path)} --help"


def test_every_subcommand_is_checked():
    names = {" ".join(p) for p in _command_paths()}
    assert {"extract", "ablate", "classify run", "classify train", "framenet"} <= names
