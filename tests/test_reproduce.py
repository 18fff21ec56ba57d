"""End to end: a reduced `reproduce` run writes every expected, well-formed file, and resumes."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from view_page import payload

from bertsecrets_cli.cli.app import app
from bertsecrets_cli.jobs.check import check_store

runner = CliRunner()
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_reduced_reproduce_writes_index_tables_figures_and_valid_stores(tmp_path: Path) -> None:
    out = tmp_path / "paper"
    args = ["reproduce", "-o", str(out), "--tasks", "sst2,stsb", "--max-steps", "2", "--eval-limit", "12", "--bootstrap", "20", "--device", "cpu", "-f", "json"]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.stderr
    comparison = json.loads(res.stdout)
    assert {r["task"] for r in comparison} == {"SST-2", "STS-B"}
    assert all(r["setup"] == "different model and data" for r in comparison)
    for t in ("sst2", "stsb"):
        assert (out / "models" / t / "config.json").exists() and (out / "models" / t / "eval.h5").exists()
        for name in ("pre", "ft", "pre.pat", "ft.pat", "diff", "abl"):
            check_store(out / "stores" / f"{t}-{name}.h5")
        for fig in ("pre-patterns", "ft-patterns", "ft-cls-sep", "cosine", "ablation"):
            assert (out / "figures" / f"{t}-{fig}.png").read_bytes()[:8] == PNG
    index = (out / "index.md").read_text()
    assert "headline numbers next to ours" in index and "| SST-2 |" in index and "| STS-B |" in index
    for link in re.findall(r"\]\((figures/[^)]+)\)", index):
        assert (out / link).exists(), link
    assert json.loads((out / "tables" / "comparison.json").read_text())
    # index.html: the same content as HTML, its figures, and a self-contained view per task with the other stores' grids
    page = (out / "index.html").read_text()
    assert "headline numbers next to ours" in page and "<table>" in page
    for src in re.findall(r'<img alt="[^"]*" src="([^"]+)">', page):
        assert (out / src).exists(), src
    assert len(re.findall(r'<img ', page)) == len(re.findall(r"!\[", index))
    for t in ("sst2", "stsb"):
        assert f'src="views/{t}.html"' in page
        view = payload(out / "views" / f"{t}.html")
        assert len(view["examples"]) == 4 and {"patterns", "diff", "ablation"} <= {g["source"] for g in view["grids"]}
    # an existing folder is refused without --resume; with it, finished steps are skipped
    again = runner.invoke(app, args)
    assert again.exit_code == 6 and "--resume" in again.stderr
    resumed = runner.invoke(app, [*args, "--resume"])
    assert resumed.exit_code == 0, resumed.stderr
    assert "done already" in resumed.stderr


def test_task_without_demo_data_asks_for_data(tmp_path: Path) -> None:
    res = runner.invoke(app, ["reproduce", "-o", str(tmp_path / "x"), "--tasks", "mnli"])
    assert res.exit_code == 3 and "--data" in res.stderr
    assert not (tmp_path / "x").exists()
