"""The shipped completion scripts match what the installed command generates."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_script_is_current(shell: str) -> None:
    env = {**os.environ, "_BERTSECRETS_COMPLETE": f"source_{shell}"}
    res = subprocess.run(["bertsecrets"], env=env, capture_output=True, text=True, check=True)
    shipped = (ROOT / "completions" / f"bertsecrets.{shell}").read_text()
    assert res.stdout == shipped, f"completions/bertsecrets.{shell} is stale: run completions/update.sh"


def test_completion_lists_subcommands() -> None:
    env = {**os.environ, "_BERTSECRETS_COMPLETE": "complete_bash", "COMP_WORDS": "bertsecrets ex", "COMP_CWORD": "1"}
    res = subprocess.run(["bertsecrets"], env=env, capture_output=True, text=True)
    assert "extract" in res.stdout
