"""The command reference page, generated from the Typer app at every site build (a MkDocs hook), so it cannot
go stale: every subcommand's help, usage, options (names, type, default, help) and examples, as ``--help``
shows them. ``python docs/_hooks/commands.py`` prints the page."""

from __future__ import annotations

import html
import re
from typing import Any

PAGE = "reference/commands.md"


def _text(s: str | None) -> str:
    """Help text as Markdown text: no HTML, emphasis or table syntax from the help's characters."""
    return re.sub(r"([\\*_|`\[\]])", r"\\\1", html.escape(s or "", quote=False))


def _default(p: Any) -> str:
    if p.required:
        return "required"
    d = p.default
    if d is None or d == () or getattr(p, "is_flag", False) and d is False or callable(d):
        return ""
    return f"`{d}`" if not isinstance(d, bool) else f"`{str(d).lower()}`"


def _options(cmd: Any) -> list[str]:
    rows = ["| option | type | default | description |", "|---|---|---|---|"]
    for p in cmd.params:
        if getattr(p, "hidden", False):
            continue
        names = ", ".join(f"`{o}`" for o in [*p.opts, *getattr(p, "secondary_opts", [])])
        if p.param_type_name == "argument":
            names = f"`{(p.metavar or p.name).upper()}` (argument)"
        kind = "flag" if getattr(p, "is_flag", False) else p.type.name.lower()
        rows.append(f"| {names} | {kind} | {_default(p)} | {_text(getattr(p, 'help', '') or '').replace(chr(10), ' ')} |")
    return rows


def _anchor(path: list[str]) -> str:
    return "-".join(path) or "bertsecrets"


def _section(cmd: Any, path: list[str], level: int) -> list[str]:
    import click

    name = " ".join(["bertsecrets", *path])
    out = [f"{'#' * level} {name} {{#{_anchor(path)}}}", ""]
    paras = [p.strip() for p in (cmd.help or "").split("\n\n") if p.strip()]
    out += [p for para in paras for p in (_text(" ".join(para.split())), "")]
    ctx = click.Context(cmd, info_name=name)
    out += ["```text", " ".join(cmd.collect_usage_pieces(ctx)).join([f"Usage: {name} ", ""]), "```", ""]
    if cmd.params:
        out += [*_options(cmd), ""]
    epilog = cmd.epilog if isinstance(cmd.epilog, str) else ""
    examples = [ln.strip()[2:] for ln in epilog.splitlines() if ln.strip().startswith("$ ")]
    if examples:
        out += ["Examples:", "", "```console", *(f"$ {e}" for e in examples), "```", ""]
    subs = getattr(cmd, "commands", {})
    if subs:
        out += ["Subcommands: " + ", ".join(f"[{' '.join([*path, s])}](#{_anchor([*path, s])})" for s in subs), ""]
        for s, sub in subs.items():
            out += _section(sub, [*path, s], level + 1)
    return out


def render() -> str:
    import typer

    from bertsecrets_cli import __version__
    from bertsecrets_cli.cli.app import app

    root = typer.main.get_command(app)
    head = ["# Command reference", "",
            f"Generated from the command line itself (bertsecrets {__version__}) when the site is built: it is what",
            "`bertsecrets COMMAND --help` prints. Option names are the keyword names of the Python API",
            "(dashes as underscores; see the [API reference](api.md)).", ""]
    return "\n".join(head + _section(root, [], 2)) + "\n"


def on_files(files: Any, config: Any) -> Any:
    """MkDocs hook: add the generated page to the site's files."""
    from mkdocs.structure.files import File

    files.append(File.generated(config, PAGE, content=render()))
    return files


if __name__ == "__main__":
    print(render(), end="")
