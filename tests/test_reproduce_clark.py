"""reproduce's Clark et al. 2019 part: clustering always, coreference and the probe when their data is given,
and the index rows next to the paper's transcribed numbers."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from helpers import covers, one_line_error
from typer.testing import CliRunner

from bertsecrets_cli.cli.app import app

runner = CliRunner()


@covers("reproduce", "--coref", "--probe-test")
def test_reproduce_checks_the_clark_inputs_before_any_work(tmp_path: Path) -> None:
    from bertsecrets_cli.data.demo_treebank import write_demo_treebank

    tb = write_demo_treebank(tmp_path / "tb.conllu", 2)
    res = runner.invoke(app, ["reproduce", "-o", str(tmp_path / "a"), "--probe-test", str(tb)])
    one_line_error(res, 3, "--probe-test", "--conllu")
    broken = tmp_path / "broken.conllu"
    broken.write_text(tb.read_text().replace("Entity=(d0e1-x-3", "Entity=(d0e1-x-3))", 1))
    res = runner.invoke(app, ["reproduce", "-o", str(tmp_path / "b"), "--coref", str(broken)])
    one_line_error(res, 3, f"{broken}:", "malformed Entity")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


class _Run:
    def __init__(self) -> None:
        self.names: list[str] = []

    def step(self, name: str, output: Path, argv: list[str], fn: Any) -> bool:
        self.names.append(name)
        fn(False, False)  # the runner passes each step its --force and --resume (jobs/reproduce.py _Runner)
        assert output.exists(), name
        return True


def test_clark_steps_and_index_rows(demo_store: Path, tiny_model_factory, tmp_path: Path) -> None:
    from bertsecrets_cli.jobs.classify import ClassifyOptions, run_classify
    from bertsecrets_cli.jobs.framenet import FrameNetOptions, run_relations
    from bertsecrets_cli.jobs.reproduce import ReproduceOptions, _fmt, _table_md
    from bertsecrets_cli.jobs.reproduce_clark import index_section, run_steps
    from bertsecrets_cli.data.demo_treebank import write_demo_treebank
    from bertsecrets_cli.render.tables import Table

    out = tmp_path / "paper"
    for sub in ("stores", "figures", "tables"):
        (out / sub).mkdir(parents=True)
    shutil.copy(demo_store, out / "stores" / "sst2-pre.h5")
    run_classify(out / "stores" / "sst2-pre.h5", out / "stores" / "sst2-pre.pat.h5", ClassifyOptions(quiet=True))
    train, test = write_demo_treebank(tmp_path / "train.conllu", 10), write_demo_treebank(tmp_path / "test.conllu", 4, seed=1)
    model = str(tiny_model_factory("bert"))
    run_relations(FrameNetOptions(conllu=str(train), model=model, device="cpu", quiet=True, min_count=1, definition="authors"),
                  out / "stores" / "dependency.h5")
    opts = ReproduceOptions(model=model, conllu=str(train), coref=str(test), probe_test=str(test), device="cpu", quiet=True)
    run = _Run()
    run_steps(run, opts, out, "sst2", ["--model", model], ["--device", "cpu"])
    assert run.names == ["Clark: word-level attention", "Clark: head clustering", "Clark: coreference heads", "Clark: attention probe"]
    assert (out / "figures" / "clusters.png").exists()
    cmp = Table("paper vs this run", ["finding", "task", "paper (bert-base)", "this run", "setup"])
    body = index_section(out, cmp, "different model and data", _table_md, _fmt)
    text = "\n".join(body)
    for section in ("heads clustered by behaviour", "coreference heads", "the attention probe", "attention to linguistic features"):
        assert section in text
    rows = {(r[0], r[1]): r for r in cmp.rows}
    assert rows[("best head vs best offset: det (%)", "Clark: dependencies")][2] == "94.3 vs 51.7"  # from reference/clark_numbers.json
    assert rows[("best coreference head, antecedent accuracy (%)", "Clark: coreference")][2] == "65"
    # Table 2 by mention type and Table 3's probes, next to this run's numbers
    assert rows[("coreference, pronouns: best head vs rule-based (%)", "Clark: coreference")][2] == "64 vs 70 (Table 2*)"
    assert rows[("attention-only probe UAS (%)", "Clark: probe")][2] == "61 (Table 3*)"
    assert rows[("right-branching baseline UAS (%)", "Clark: probe")][2] == "26 (Table 3*)"
    assert "transcribed from two agreeing secondary notes" in text
    assert "offset" in rows[("best head vs best offset: det (%)", "Clark: dependencies")][3]
    # the treebank rows say what differs: the model, their own data next to the paper's, and whose definition
    det_setup = rows[("best head vs best offset: det (%)", "Clark: dependencies")][4]
    assert det_setup == "different model; data: train.conllu (paper: WSJ dev, Stanford Dependencies); definition: authors (Clark's code)"
    probe_setup = rows[("attention-only probe UAS (%)", "Clark: probe")][4]
    assert "data: test.conllu" in probe_setup and "definition: authors (Clark's code)" in probe_setup  # run_steps asks for his probe
    assert "definition: ours" in rows[("best coreference head, antecedent accuracy (%)", "Clark: coreference")][4]
    assert rows[("heads of a layer behave alike (nearest head in the same layer)", "Clark: clustering")][4].endswith("definition: authors (Clark's code)")
    from bertsecrets_cli.store import open_store

    with open_store(out / "stores" / "sst2-pre.clusters.h5") as st:  # his setting: word pieces, smoothed JS, metric MDS
        assert (st.provenance()["definition"], st.provenance()["level"], st.provenance()["measure"]) == ("authors", "word pieces", "js-smoothed")
    assert "head<-dep" in rows[("best head vs best offset: det (%)", "Clark: dependencies")][3] or "dep->head" in rows[("best head vs best offset: det (%)", "Clark: dependencies")][3]
    assert {r[1] for r in cmp.rows} == {"Clark: dependencies", "Clark: clustering", "Clark: coreference", "Clark: probe"}
    assert (out / "tables" / "coreference-0.md").exists() and (out / "tables" / "probe.md").exists()
    assert "nouns" in (out / "tables" / "features-0.md").read_text()  # sec. 4.4's features from the treebank's tags


@pytest.mark.parametrize("key", ["dependency_best_head_vs_best_offset_percent", "coreference_best_head_accuracy_percent", "_source",
                                 "coreference_antecedent_accuracy_percent", "probe_uas_percent"])
def test_clark_reference_numbers_are_cited(key: str) -> None:
    from bertsecrets_cli.reference import clark_numbers

    ref = clark_numbers()
    assert key in ref and "1906.04341" in ref["_source"] and ref["not_transcribed"]
    if key in ("coreference_antecedent_accuracy_percent", "probe_uas_percent"):  # says where each table came from
        assert ref[key]["_source"].startswith("Table") and "secondary" in ref[key]["_transcription"]
