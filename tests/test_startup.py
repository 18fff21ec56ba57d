"""Start-up stays cheap: --help of every command, and show of a store, import none of the heavy libraries.

Structural, not timed (benchmarks/startup.py times it): a heavy import at module level of anything cli/
reaches would put torch (~1 s) in front of every --help and every cron-job ``show``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

HEAVY = ("torch", "transformers", "matplotlib", "datasets", "h5py", "scipy", "pandas", "tokenizers", "safetensors",
         "pydantic")  # typer 0.29 builds every parameter through pydantic: 75-100 ms more per call (pyproject pins typer<0.29)

_HELP_EVERYWHERE = """
import json, sys
import typer
from typer.testing import CliRunner
from bertsecrets_cli.cli.app import app

def walk(cmd, path):
    yield path
    for name, sub in getattr(cmd, "commands", {}).items():
        yield from walk(sub, [*path, name])

runner = CliRunner()
paths = list(walk(typer.main.get_command(app), []))
codes = [runner.invoke(app, [*p, "--help"]).exit_code for p in paths]
print(json.dumps({"paths": paths, "codes": codes, "heavy": [m for m in HEAVY if m in sys.modules]}))
"""

_SHOW = """
import json, sys
from typer.testing import CliRunner
from bertsecrets_cli.cli.app import app
res = CliRunner().invoke(app, ["show", sys.argv[1]])
print(json.dumps({"code": res.exit_code, "out": res.stdout, "heavy": [m for m in HEAVY if m in sys.modules]}))
"""


def _probe(code: str, *args: str) -> dict:
    res = subprocess.run([sys.executable, "-c", f"HEAVY = {HEAVY!r}\n{code}", *args], capture_output=True, text=True, check=True, timeout=120)
    return json.loads(res.stdout.strip().splitlines()[-1])


def test_help_of_every_command_imports_no_heavy_library() -> None:
    r = _probe(_HELP_EVERYWHERE)
    assert ["extract"] in r["paths"] and ["classify", "run"] in r["paths"] and len(r["paths"]) > 10, r["paths"]
    assert set(r["codes"]) == {0}, list(zip(r["paths"], r["codes"]))
    assert r["heavy"] == [], f"--help imported {r['heavy']}"


def test_show_of_a_store_imports_no_model_or_plotting_library(demo_store: Path) -> None:
    r = _probe(_SHOW, str(demo_store))
    assert r["code"] == 0 and "attention" in r["out"], r
    # h5py is what show reads with; the model and plotting stacks must stay out
    assert [m for m in r["heavy"] if m != "h5py"] == [], f"show imported {r['heavy']}"
    assert "h5py" in r["heavy"]  # the probe does see imports that happen
