"""Rankings against a baseline say, per head, whether it beats the strongest baseline shown, count the heads
that do, and say (on stderr and in the store) when too few links or arcs back them or a source is missing."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from bertsecrets_cli.cli.app import app
from bertsecrets_cli.store import open_store

from test_framenet_cli import PLANTED, planted, write_release  # noqa: F401  (planted is a fixture)

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, list(args))


def _ranked(stdout: str) -> list[dict]:
    return json.loads(stdout)["heads"]


def test_framenet_ranking_marks_heads_beating_their_strongest_baseline_and_counts_them(tmp_path: Path, planted: Path) -> None:
    fn = write_release(tmp_path / "fn")
    out = tmp_path / "fn.h5"
    common = ("--framenet", str(fn), "--model", str(planted), "--device", "cpu", "--top", "8")
    res = invoke("framenet", *common, "-o", str(out), "-f", "json", "--table", "all")
    assert res.exit_code == 0, res.stderr
    rows = _ranked(res.stdout)
    # the planted head attends to 'abandoned' from every token, so the piece two after the FE scores as well as
    # the target: position explains it, and the row and a note say so instead of a bare rank 1
    assert rows[0]["head"] == "L2H3" and rows[0]["beats strongest baseline"] == "no"
    assert "note: the top head L2H3 (1.000) does not beat its offset +2 (1.000): position explains it as well" in res.stderr
    assert {r["beats strongest baseline"] for r in rows} <= {"yes", "no"}
    for r in rows:  # the mark is the comparison the row shows
        strongest = max(r["baseline p99"] if r["baseline p99"] is not None else -1, r["best offset"] if r["best offset"] is not None else -1)
        assert (r["beats strongest baseline"] == "yes") == (r["FE->target"] > strongest)
    with open_store(out, kind="framenet") as st:
        grid = st.heads()["framenet_beats_baseline"].values
        prov = st.provenance()
    assert grid[PLANTED] == 0 and int(grid.sum()) == prov["n_heads_beating_baseline"] == sum(r["beats strongest baseline"] == "yes" for r in rows)
    # the summary line counts them, in the table's caption
    res = invoke("framenet", *common, "-o", str(tmp_path / "t.h5"), "-q")
    flat = " ".join(res.stdout.split())
    assert f"{int(grid.sum())} of 8 heads beat their strongest baseline" in flat
    # the grid of scores marks the heads that do not beat their baseline
    res_plot = invoke("plot", str(out), "--quantity", "framenet_fe_to_target")
    assert res_plot.exit_code == 0, res_plot.stderr
    rows_txt = [ln for ln in res_plot.stdout.splitlines() if ln[:2] in ("L1", "L2")]
    marked = np.array([[c.endswith("?") for c in ln[3:].split()] for ln in rows_txt])
    np.testing.assert_array_equal(marked, grid == 0)
    assert "does not beat its strongest baseline" in " ".join(res_plot.stdout.split()) and "N=5 links in 5 sentences" in " ".join(res_plot.stdout.split())
    # five links are far below the documented minimum: said on stderr and kept in the store
    assert "only 5 links survived the selection, fewer than the minimum of 100" in res.stderr
    assert prov["below_min_links"] == 1 and prov["min_links"] == 100
    assert prov["sentence_sources_used"] == "fulltext,exemplars" and prov["sentence_sources_missing"] == ""


def test_a_release_without_lu_exemplars_says_it_fell_back_to_full_text(tmp_path: Path, planted: Path) -> None:
    fn = write_release(tmp_path / "fn")
    shutil.rmtree(fn / "lu")
    out = tmp_path / "fn.h5"
    res = invoke("framenet", "--framenet", str(fn), "--model", str(planted), "--device", "cpu", "-o", str(out), "-q", "-f", "json", "--table", "all")
    assert res.exit_code == 0, res.stderr
    assert "has no lu/*.xml (lexical-unit exemplars, the sentences the paper used): only full-text sentences are scored" in res.stderr
    with open_store(out, kind="framenet") as st:
        prov = st.provenance()
    assert prov["sentence_sources_used"] == "fulltext" and prov["sentence_sources_missing"] == "exemplars"
    # the selection table's caption says it too
    res = invoke("framenet", "--framenet", str(fn), "--model", str(planted), "--device", "cpu", "-o", str(tmp_path / "b.h5"), "-q")
    assert "only full-text sentences are scored" in " ".join(res.stdout.split())


def _sentence(sid: str, words: list[tuple[str, int, str]]) -> str:
    return f"# sent_id = {sid}\n" + "".join(f"{i}\t{w}\t{w}\t_\t_\t_\t{h}\t{r}\t_\t_\n" for i, (w, h, r) in enumerate(words, 1)) + "\n"


# every governor of nsubj, punct and advmod is 'sat', where the planted head looks; nsubj is once 2 words away,
# so no fixed offset matches all of them, while +1 is always right for det
CONLLU = (_sentence("a", [("the", 2, "det"), ("cat", 3, "nsubj"), ("sat", 0, "root"), (".", 3, "punct")])
          + _sentence("b", [("a", 2, "det"), ("dog", 4, "nsubj"), ("quietly", 4, "advmod"), ("sat", 0, "root"), (".", 4, "punct")])
          + _sentence("c", [("dogs", 2, "nsubj"), ("sat", 0, "root")]))


def test_dependency_ranking_marks_heads_beating_the_offset_and_too_few_arcs(tmp_path: Path, planted: Path) -> None:
    p = tmp_path / "dev.conllu"
    p.write_text(CONLLU)
    out = tmp_path / "dep.h5"
    res = invoke("framenet", "--conllu", str(p), "-o", str(out), "--model", str(planted), "--device", "cpu", "--min-count", "1", "-f", "json", "--table", "all")
    assert res.exit_code == 0, res.stderr
    tables = json.loads(res.stdout)
    rel = {r["relation"]: r for r in tables["relations"]}
    assert rel["nsubj"]["head beats offset"] == "yes"  # the planted head is right on every nsubj; the offset is not
    assert rel["det"]["head beats offset"] == "no"  # '+1' is always right for det: no head can beat it
    rows = _ranked(res.stdout)
    offset_acc = rows[0]["best offset acc."]
    for r in rows:
        assert (r["beats offset"] == "yes") == (r["accuracy"] > offset_acc)
        assert r["beats offset"] in ("yes", "no")
    assert "only 8 arcs were scored, fewer than the minimum of 100" in res.stderr
    with open_store(out, kind="dependency") as st:
        prov = st.provenance()
        acc = st.heads()["dep_all_accuracy"].values
    assert acc[PLANTED] == pytest.approx(6 / 8) and offset_acc == pytest.approx(5 / 8) and rows[0]["beats offset"] == "yes"
    assert prov["below_min_arcs"] == 1 and prov["n_heads_beating_baseline"] == int((acc > offset_acc).sum())


def test_a_top_head_at_or_below_its_offset_baseline_gets_a_note() -> None:
    """The issue's case: L2H5 0.142 against offset +2 0.212; position explains it, and the note says so."""
    from bertsecrets_cli.analysis.framenet import FrameNetResult
    from bertsecrets_cli.jobs.framenet import framenet_notes

    score = np.array([[0.10, 0.05], [0.09, 0.142]])
    d = "fe_to_target"
    r = FrameNetResult(fe_to_target=score, target_to_fe=score, same_distance={d: score * 0}, same_distance_p99={d: np.full((2, 2), 0.08)},
                       offset_best={d: np.array([[0.05, 0.01], [0.02, 0.212]])}, offset_best_k={d: np.full((2, 2), 2.0)},
                       best_link={d: np.zeros((2, 2))}, best_value={d: score}, n_links=473, n_links_baseline=473, samples=100, first_pair=False)
    notes = framenet_notes(r, "fe-to-target", 3, 473)
    assert notes["notes"] == ["note: the top head L2H2 (0.142) does not beat its offset +2 (0.212): position explains it as well"]
    assert notes["summary"].startswith("2 of 4 heads beat their strongest baseline") and "2 of the top 3 shown do" in notes["summary"]
    assert notes["attrs"]["below_min_links"] == 0
