"""``bertsecrets show``: a store's overview and head rankings of any per-head quantity, read back without recomputing."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from helpers import covers, one_line_error
from typer.testing import CliRunner

from bertsecrets_cli.cli.app import app
from bertsecrets_cli.store import StoreWriter, open_store

runner = CliRunner()


def invoke(*args: str, input: bytes | None = None):
    return runner.invoke(app, list(args), input=input)


@pytest.fixture(scope="module")
def ablation_like(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store as ablate might write one: a signed per-head score with a known best and worst head."""
    path = tmp_path_factory.mktemp("show") / "abl.h5"
    v = np.linspace(-0.01, 0.01, 72).reshape(6, 12)
    v[2, 4] = 0.05  # L3H5: removing it helps most
    v[6 - 1, 0] = -0.08  # L6H1: removing it hurts most
    v[0, 0] = np.nan  # a head without a score
    with StoreWriter(path, "ablation") as w:
        w.set_model(n_layers=6, n_heads=12, name="synthetic-model")
        w.set_provenance({"tool": "bertsecrets", "task": "sst2", "metric": "accuracy"})
        w.put_head_quantity("ablation_delta", v, "score with the head disabled minus the baseline score")
    return path


def test_overview_names_kind_model_examples_and_quantities(demo_store: Path) -> None:
    res = invoke("show", str(demo_store), "-f", "json", "--table", "all")
    assert res.exit_code == 0, res.stderr
    tables = json.loads(res.stdout)
    fields = {r["field"]: r["value"] for r in tables["store"]}
    assert fields["kind"] == "attention" and fields["layers x heads"] == "6 x 12" and fields["examples"] == 24
    assert "MiniLM" in fields["model"] and fields["task"] == "sst2" and "attention maps" in fields["contents"]
    quantities = {r["quantity"]: r for r in tables["quantities"]}
    assert set(quantities) == {f"stat_{k}" for k in ("entropy", "cls", "sep", "punct", "self", "prev", "next")}
    with open_store(demo_store) as st:
        sep = st.heads()["stat_sep"].values
    assert quantities["stat_sep"]["max"] == pytest.approx(float(np.nanmax(sep)))


@covers("show", "--layer")
def test_top_heads_of_one_layer_in_order(demo_store: Path) -> None:
    res = invoke("show", str(demo_store), "--quantity", "stat_sep", "--top", "5", "--layer", "3", "--format", "json")
    assert res.exit_code == 0, res.stderr
    rows = json.loads(res.stdout)
    with open_store(demo_store) as st:
        sep = st.heads()["stat_sep"].values
    assert [r["rank"] for r in rows] == [1, 2, 3, 4, 5] and all(r["head"].startswith("L3H") and r["layer"] == "L3" for r in rows)
    values = [r["stat_sep"] for r in rows]
    assert values == sorted(values, reverse=True) and values[0] == pytest.approx(float(sep[2].max()))


@covers("show", "--bottom", "--abs")
def test_which_heads_matter_in_an_ablation_store(ablation_like: Path) -> None:
    res = invoke("show", str(ablation_like), "--quantity", "ablation_delta", "--top", "2", "--abs", "-f", "tsv")
    assert res.exit_code == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[0].split("\t") == ["rank", "head", "layer", "ablation_delta"]
    assert [ln.split("\t")[1] for ln in lines[1:]] == ["L6H1", "L3H5"]
    res = invoke("show", str(ablation_like), "--quantity", "ablation_delta", "-k", "1", "-f", "tsv")
    assert res.stdout.splitlines()[1].split("\t")[1] == "L3H5"
    res = invoke("show", str(ablation_like), "--quantity", "ablation_delta", "--bottom", "-k", "0", "-f", "tsv")
    rows = res.stdout.splitlines()[1:]
    assert rows[0].split("\t")[1] == "L6H1" and len(rows) == 71  # all heads but the one without a score
    res = invoke("show", str(ablation_like))
    assert "ablation" in res.stdout and "synthetic-model" in res.stdout and "ablation_delta" in res.stdout


def test_rich_table_output_has_1_based_head_names(ablation_like: Path) -> None:
    res = invoke("show", str(ablation_like), "--quantity", "ablation_delta", "-k", "3")
    assert res.exit_code == 0, res.stderr
    assert "L3H5" in res.stdout and "0.050" in res.stdout and "ablation_delta, top 3" in res.stdout


@covers("show", "--quantity", "-k")
def test_reads_a_store_from_stdin(ablation_like: Path) -> None:
    res = invoke("show", "-", "--quantity", "ablation_delta", "-k", "1", "-f", "tsv", input=ablation_like.read_bytes())
    assert res.exit_code == 0, res.stderr
    assert res.stdout.splitlines()[1].split("\t")[1] == "L3H5"


@pytest.mark.parametrize(
    ("args", "code", "needle"),
    [
        (("--quantity", "ablation_dleta"), 3, "did you mean ablation_delta"),
        (("--quantity", "ablation_delta", "--layer", "9"), 3, "6 layers"),
        (("--layer", "9"), 3, "6 layers"),  # without --quantity: ranks ablation_delta, so the layer is checked
        (("--quantity", "ablation_delta", "--bottom", "--abs"), 3, "choose one order"),
    ],
)
def test_bad_requests_are_one_line_errors(ablation_like: Path, args: tuple[str, ...], code: int, needle: str) -> None:
    res = invoke("show", str(ablation_like), *args)
    assert res.exit_code == code, (res.stdout, res.stderr)
    errors = [ln for ln in res.stderr.splitlines() if "error:" in ln]
    assert len(errors) == 1 and needle in errors[0] and "Traceback" not in res.stderr


def test_not_a_store_is_a_store_error(tmp_path: Path) -> None:
    bad = tmp_path / "x.h5"
    bad.write_text("hello")
    res = invoke("show", str(bad))
    assert res.exit_code == 4 and "not an HDF5 file" in res.stderr


def test_ranking_options_without_quantity_rank_the_stores_own_result(ablation_like: Path, demo_store: Path) -> None:
    """`show abl.h5 --top 10 --abs` (the example of show --help) ranks ablation_delta by magnitude, not an overview."""
    res = invoke("show", str(ablation_like), "--top", "2", "--abs", "-f", "tsv")
    assert res.exit_code == 0, res.stderr
    lines = res.stdout.strip().splitlines()
    explicit = invoke("show", str(ablation_like), "--quantity", "ablation_delta", "--top", "2", "--abs", "-f", "tsv")
    assert lines == explicit.stdout.strip().splitlines() and len(lines) == 3
    assert lines != invoke("show", str(ablation_like), "--top", "2", "-f", "tsv").stdout.strip().splitlines()  # --abs changed the order
    res = invoke("show", str(demo_store), "--top", "3")
    one_line_error(res, 3, "--quantity", "stat_sep")
