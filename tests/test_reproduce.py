"""End to end: a reduced `reproduce` run writes every expected, well-formed file, and resumes."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from helpers import covers
from typer.testing import CliRunner
from view_page import payload

from bertsecrets_cli.cli.app import app
from bertsecrets_cli.jobs.check import check_store
from bertsecrets_cli.store import open_store
from helpers import covers
from test_framenet_cli import CONLLU

runner = CliRunner()
PNG = b"\x89PNG\r\n\x1a\n"


@covers("reproduce", "-o", "--tasks", "--eval-limit", "--max-steps", "--bootstrap", "--resume")
@pytest.mark.slow
@covers("reproduce", "--model", "--preset", "--train-limit", "--conllu", "--framenet", "--quiet", "--format", "--table")
def test_reduced_reproduce_writes_index_tables_figures_and_valid_stores(tmp_path: Path, tiny_model_factory) -> None:
    from test_framenet_cli import write_release

    out = tmp_path / "paper"
    conllu = tmp_path / "dev.conllu"
    conllu.write_text(CONLLU)
    fn = write_release(tmp_path / "fn")
    args = ["reproduce", "-o", str(out), "--tasks", "sst2,stsb", "--max-steps", "2", "--eval-limit", "12", "--bootstrap", "20", "--device", "cpu",
            "--model", str(tiny_model_factory("bert")), "--preset", "paper", "--train-limit", "40", "--conllu", str(conllu), "--framenet", str(fn)]
    res = runner.invoke(app, [*args, "-f", "json"])
    assert res.exit_code == 0, res.stderr
    comparison = json.loads(res.stdout)
    # the GLUE tasks, FrameNet (--framenet), Clark et al.'s dependency heads (--conllu) and head clustering (always)
    assert {r["task"] for r in comparison} == {"SST-2", "STS-B", "FrameNet", "Clark: dependencies", "Clark: clustering"}
    assert all(r["setup"] == "different model and data" for r in comparison if not r["task"].startswith("Clark") and r["task"] != "FrameNet")
    assert all("; paper: FrameNet 1.7 LU exemplars); definition: ours" in r["setup"] for r in comparison if r["task"] == "FrameNet")
    assert all(r["setup"] == "different model and data; definition: authors (Clark's code)" for r in comparison if r["task"] == "Clark: clustering")
    # the treebank rows name their own data and the definition of Clark's code, which computed them
    assert all(r["setup"].startswith("different model; data: ") and r["setup"].endswith("definition: authors (Clark's code)")
               for r in comparison if r["task"] == "Clark: dependencies")
    for t in ("sst2", "stsb"):
        assert (out / "models" / t / "config.json").exists() and (out / "models" / t / "eval.h5").exists()
        for name in ("pre", "ft", "pre.pat", "ft.pat", "diff", "abl"):
            check_store(out / "stores" / f"{t}-{name}.h5")
        for fig in ("pre-patterns", "ft-patterns", "ft-cls-sep", "cosine", "ablation"):
            assert (out / "figures" / f"{t}-{fig}.png").read_bytes()[:8] == PNG
    check_store(out / "stores" / "sst2-pre.clusters.h5")
    assert (out / "figures" / "clusters.png").read_bytes()[:8] == PNG
    index = (out / "index.md").read_text()
    assert "heads clustered by behaviour" in index
    assert "headline numbers next to ours" in index and "| SST-2 |" in index and "| STS-B |" in index
    for link in re.findall(r"\]\((figures/[^)]+)\)", index):
        assert (out / link).exists(), link
    assert json.loads((out / "tables" / "comparison.json").read_text())
    # the options reached the steps: the tiny model (2 layers), the paper preset, 40 training examples, both relation analyses
    with open_store(out / "stores" / "sst2-pre.h5") as st:
        assert st.n_layers == 2
    record = json.loads((out / "models" / "sst2" / "finetune.json").read_text())
    assert record["preset"] == "paper" and record["hyperparameters"]["batch_size"] == 32 and record["n_train"] == 40
    for kind in ("framenet", "dependency"):
        check_store(out / "stores" / f"{kind}.h5")
    assert "## FrameNet relation heads" in index
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
    quiet = runner.invoke(app, [*args, "--resume", "--quiet", "--format", "tsv", "--table", "comparison"])
    assert quiet.exit_code == 0 and quiet.stderr == ""
    assert quiet.stdout.splitlines()[0].split("\t") == ["finding", "task", "paper (bert-base)", "this run", "setup"]


@covers("reproduce", "--data")
def test_task_without_demo_data_asks_for_data(tmp_path: Path) -> None:
    res = runner.invoke(app, ["reproduce", "-o", str(tmp_path / "x"), "--tasks", "mnli"])
    assert res.exit_code == 3 and "--data" in res.stderr
    assert not (tmp_path / "x").exists()


def test_a_run_that_fails_before_any_step_finished_leaves_no_folder(tmp_path: Path) -> None:
    """A wrong --data is refused before the folder exists, and a failure inside the first step removes the
    folder the run made: the corrected command is not blocked by "exists and is not empty"."""
    out = tmp_path / "paper"
    res = runner.invoke(app, ["reproduce", "-o", str(out), "--tasks", "sst2", "--data", str(tmp_path / "nothere")])
    assert res.exit_code == 3 and "no such folder" in res.stderr and not out.exists()
    glue = tmp_path / "glue"
    (glue / "MRPC").mkdir(parents=True)
    res = runner.invoke(app, ["reproduce", "-o", str(out), "--tasks", "sst2", "--data", str(glue)])
    assert res.exit_code == 3 and "SST-2" in res.stderr and not out.exists()
    (glue / "SST-2").mkdir()
    (glue / "SST-2" / "train.tsv").write_text("not\ta glue\tfile\n")
    (glue / "SST-2" / "dev.tsv").write_text("not\ta glue\tfile\n")
    res = runner.invoke(app, ["reproduce", "-o", str(out), "--tasks", "sst2", "--data", str(glue), "--device", "cpu"])
    assert res.exit_code == 3, res.stderr
    assert not out.exists()
