"""The command line as a tested contract: the app's own options, read from the app, each claimed by a test.

Structural rules (one definition per option type, no flag used twice in a command, help on every option, an
example at the end of every --help) and coverage: every option shown by any subcommand's --help is passed, on the
command line, by at least one test decorated ``@covers(command, flag)`` (see helpers.covers). The claims are read
statically from the test files, so this test does not depend on which other tests ran.
"""

from __future__ import annotations

import ast
from collections import Counter
from pathlib import Path

import pytest
import typer.main

from bertsecrets_cli.cli.app import app

TESTS = Path(__file__).parent
COMMON = Path(__file__).parents[1] / "bertsecrets_cli" / "cli" / "common.py"
# Options every Click command has; proven once for all in this file's own tests below.
AUTOMATIC = {"--help", "-h"}


def _commands() -> dict:
    """Every leaf command by the words a user types after 'bertsecrets' ('classify run', 'extract')."""
    root = typer.main.get_command(app)
    out: dict = {}

    def walk(cmd, path: tuple[str, ...]) -> None:
        if getattr(cmd, "commands", None):  # a group (typer vendors its own click: duck-type it)
            for name, sub in cmd.commands.items():
                walk(sub, (*path, name))
        else:
            out[" ".join(path)] = cmd

    walk(root, ())
    return out


def _options(cmd) -> list:
    return [p for p in cmd.params if p.param_type_name == "option" and not p.hidden]


def _long(opt) -> str:
    return max([*opt.opts, *opt.secondary_opts], key=len)


def _claims() -> dict[tuple[str, str], list[str]]:
    """(command, flag) -> test functions that claim it, after checking each claimed flag is in the test's text."""
    claims: dict[tuple[str, str], list[str]] = {}
    bad: list[str] = []
    for f in sorted(TESTS.glob("test_*.py")):
        tree = ast.parse(f.read_text(), str(f))
        names = {t.id: node.value for node in tree.body if isinstance(node, ast.Assign) for t in node.targets if isinstance(t, ast.Name)}
        for node in ast.walk(tree):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            text = ast.get_source_segment(f.read_text(), node) or ""
            for dec in node.decorator_list:
                if isinstance(dec, ast.Call) and getattr(dec.func, "id", None) == "covers":
                    first = dec.args[0]
                    first = names.get(first.id, first) if isinstance(first, ast.Name) else first  # a module-level tuple
                    commands = [e.value for e in first.elts] if isinstance(first, (ast.Tuple, ast.List)) else [first.value]
                    flags = [a.value for a in dec.args[1:] if isinstance(a, ast.Constant)]
                    body = text[text.index("def " + node.name):]  # the test itself, without its decorators
                    for flag in flags:
                        if flag not in body:
                            bad.append(f"{f.name}::{node.name} claims {flag} but never types it")
                        for command in commands:
                            claims.setdefault((command, flag), []).append(f"{f.name}::{node.name}")
    assert not bad, "\n".join(bad)
    return claims


def test_each_shared_option_type_is_defined_once():
    tree = ast.parse(COMMON.read_text())
    names = [t.id for node in tree.body if isinstance(node, (ast.Assign, ast.AnnAssign))
             for t in (node.targets if isinstance(node, ast.Assign) else [node.target]) if isinstance(t, ast.Name)]
    twice = [n for n, k in Counter(names).items() if k > 1]
    assert not twice, f"defined more than once in cli/common.py: {twice}"
    flags = Counter()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "Option":
            flags.update(a.value for a in node.args if isinstance(a, ast.Constant) and str(a.value).startswith("--"))
    assert not [f for f, k in flags.items() if k > 1], f"one flag, several option types: {flags}"


@pytest.mark.parametrize("name", sorted(_commands()))
def test_no_two_parameters_share_a_flag_and_every_option_has_help(name):
    cmd = _commands()[name]
    seen = Counter(flag for p in cmd.params for flag in [*p.opts, *getattr(p, "secondary_opts", [])] if flag.startswith("-"))
    assert not [f for f, k in seen.items() if k > 1], f"{name}: flags used twice: {seen}"
    missing = [_long(p) for p in _options(cmd) if not (p.help or "").strip()]
    assert not missing, f"{name}: options without help: {missing}"


@pytest.mark.parametrize("name", sorted(_commands()))
def test_every_help_ends_with_a_real_example(name):
    from typer.testing import CliRunner

    res = CliRunner().invoke(app, [*name.split(), "--help"], terminal_width=200)
    assert res.exit_code == 0, res.output
    tail = res.output.rstrip().splitlines()[-6:]
    assert any("$ bertsecrets " + name.split()[0] in ln for ln in tail), f"{name}: --help does not end with an example:\n" + "\n".join(tail)


def test_every_option_of_every_subcommand_is_claimed_by_a_test():
    claims = _claims()
    unclaimed = []
    total = 0
    for name, cmd in sorted(_commands().items()):
        for opt in _options(cmd):
            if set(opt.opts) & AUTOMATIC:
                continue
            total += 1
            spellings = [*opt.opts, *opt.secondary_opts]
            if not any((name, s) in claims for s in spellings):
                unclaimed.append(f"{name} {_long(opt)}")
    print(f"\n{total} options in {len(_commands())} commands; {total - len(unclaimed)} claimed by a test")
    assert not unclaimed, f"{len(unclaimed)} of {total} options are never passed by a test:\n  " + "\n  ".join(unclaimed)


def test_claims_name_only_options_that_exist():
    cmds = _commands()
    stale = [f"{c} {f}" for (c, f) in _claims() if c not in cmds or f not in {s for p in _options(cmds[c]) for s in [*p.opts, *p.secondary_opts]}]
    assert not stale, f"tests claim options the app does not have: {stale}"
