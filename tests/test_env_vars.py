"""Only the environment variables the documentation lists (docs/guide/conventions.md) are read: click's automatic
BERTSECRETS_<OPTION> names (a stray BERTSECRETS_VERSION=1 once made every command a silent no-op) are ignored by
every command."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from bertsecrets_cli.cli.app import app

ROOT = Path(__file__).resolve().parents[1]
# what Typer/click would read with auto_envvar_prefix="BERTSECRETS" at the top level
ROOT_AUTOMATIC = ("BERTSECRETS_VERSION", "BERTSECRETS_INSTALL_COMPLETION", "BERTSECRETS_SHOW_COMPLETION", "BERTSECRETS_HELP")


def _documented() -> set[str]:
    """The names the documentation lists as read (the conventions page's bullet on environment variables)."""
    text = (ROOT / "docs" / "guide" / "conventions.md").read_text()
    bullet = text[text.index("- Environment variables: only these are read"):]
    bullet = bullet[: bullet.index("\n- ")]
    return set(re.findall(r"`_?(BERTSECRETS_[A-Z_]+)`", bullet)) - set(ROOT_AUTOMATIC)


def _automatic_names() -> dict[str, str]:
    """Every BERTSECRETS_<COMMAND>_<OPTION> name click's automatic prefix would read, by the option it would set."""
    names: dict[str, str] = {}

    def walk(cmd: click.Command, prefix: str, path: str) -> None:
        for p in cmd.params:
            if getattr(p, "param_type_name", "") == "option" and p.name:  # typer vendors its own click: no isinstance
                names[f"{prefix}_{p.name.upper()}"] = f"{path} --{p.name}"
        for sub_name, sub in getattr(cmd, "commands", {}).items():
            walk(sub, f"{prefix}_{sub_name.upper().replace('-', '_')}", f"{path} {sub_name}".strip())

    walk(typer.main.get_command(app), "BERTSECRETS", "")
    return names


def test_the_readme_documents_no_automatic_per_option_variable() -> None:
    documented = _documented()
    automatic = _automatic_names()
    # the documented ones are declared on their options (envvar=), not derived from the option's name
    leaked = sorted(n for n in documented if n in automatic and not n.startswith(("BERTSECRETS_NO_", "BERTSECRETS_DEBUG")))
    assert not leaked, leaked


@pytest.mark.parametrize("name", ROOT_AUTOMATIC)
@pytest.mark.parametrize("value", ["1", "0.1.0"])
def test_a_stray_top_level_variable_does_not_hijack_commands(name: str, value: str, demo_store: Path) -> None:
    res = CliRunner().invoke(app, ["check", str(demo_store), "--format", "json"], env={name: value})
    assert res.exit_code == 0, (res.stdout, res.stderr)
    rows = json.loads(res.stdout)  # the check's report, not the version banner or a completion script
    assert any(r["check"] == "per-head quantities" for r in rows)


def test_no_automatic_per_option_variable_is_read(demo_store: Path) -> None:
    """Every automatic name set to a value no option accepts: the commands still run as typed."""
    documented = _documented()
    env = {n: "not-a-value" for n in _automatic_names() if n not in documented}
    env.update({n: "1" for n in ROOT_AUTOMATIC})
    assert len(env) > 100 and "BERTSECRETS_EXTRACT_LIMIT" in env and "BERTSECRETS_SHOW_TOP" in env
    res = CliRunner().invoke(app, ["check", str(demo_store)], env=env)
    assert res.exit_code == 0, (res.stdout, res.stderr)
    res = CliRunner().invoke(app, ["show", str(demo_store), "--quantity", "stat_sep"], env=env)
    assert res.exit_code == 0, (res.stdout, res.stderr)
    assert "L1H1" in res.stdout
