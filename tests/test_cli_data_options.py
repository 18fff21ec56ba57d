"""The data-selection options of extract, ablate and finetune, typed on the command line: each changes what the
store or model folder records (split, ids, texts, labels, selection) or is refused cleanly.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from bertsecrets_cli.cli.app import app
from bertsecrets_cli.store import open_store
from helpers import covers, one_line_error

runner = CliRunner()
DATA_COMMANDS = ("extract", "ablate", "finetune")

REVIEWS = "rid\treview\tnote\tstars\n" + "".join(
    f"r{i}\t{text}\tignore me\t{i % 2}\n" for i, text in enumerate(
        ["a fine film .", "dull and slow", "I loved every minute", "not worth it", "great acting , weak plot", "a quiet gem"]))


def invoke(*args: str):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def models(tiny_model_factory) -> dict[str, Path]:
    return {"encoder": tiny_model_factory("bert"), "classifier": tiny_model_factory("bert", classifier=True)}


@pytest.fixture()
def reviews(tmp_path) -> Path:
    p = tmp_path / "reviews.tsv"
    p.write_text(REVIEWS)
    return p


def run(command: str, models: dict[str, Path], out: Path, *args: str):
    """``command`` on a tiny model (extract: the embedded one), a few examples, plus ``args``."""
    base = {
        "extract": ["extract", "-o", out],
        "ablate": ["ablate", "--model", models["classifier"], "--bootstrap", "10", "-o", out],
        "finetune": ["finetune", "--model", models["encoder"], "--max-steps", "1", "--batch-size", "2", "--train-limit", "4", "-o", out],
    }[command]
    limit = [] if any(a in ("--limit", "--eval-limit") for a in args) else (["--eval-limit", "4"] if command == "finetune" else ["--limit", "4"])
    return invoke(*base, *limit, *args)


def recorded(command: str, out: Path) -> tuple[dict, list[str]]:
    """(provenance, example ids) of what ``command`` wrote."""
    path = out / "eval.h5" if command == "finetune" else out
    with open_store(path) as st:
        return st.provenance(), st.example_ids()


@covers(DATA_COMMANDS, "--split")
@pytest.mark.parametrize("command", DATA_COMMANDS)
def test_split_picks_the_split_and_is_recorded(command, models, tmp_path):
    a, b = tmp_path / "dev", tmp_path / "train"
    assert run(command, models, a, "--task", "sst2").exit_code == 0
    res = run(command, models, b, "--task", "sst2", "--split", "train")
    assert res.exit_code == 0, res.stderr
    (pa, ida), (pb, idb) = recorded(command, a), recorded(command, b)
    assert pa["split"] == "dev" and pb["split"] == "train"
    assert all("train" in i for i in idb) and not set(ida) & set(idb)
    bad = run(command, models, tmp_path / "bad", "--task", "sst2", "--split", "nosuch")
    one_line_error(bad, 3, "nosuch")


@covers(DATA_COMMANDS, "--sample", "--seed")
@pytest.mark.parametrize("command", DATA_COMMANDS)
def test_sample_and_seed_choose_a_seeded_random_subset(command, models, tmp_path):
    limit = "--eval-limit" if command == "finetune" else "--limit"
    ids = {}
    for name, extra in {"first": [], "s1": ["--sample", "--seed", "1"], "s1again": ["--sample", "--seed", "1"], "s2": ["--sample", "--seed", "2"]}.items():
        res = run(command, models, tmp_path / name, "--task", "sst2", limit, "5", *extra)
        assert res.exit_code == 0, res.stderr
        prov, ids[name] = recorded(command, tmp_path / name)
    assert ids["first"] == [f"demo-single-dev-{i:04d}" for i in range(5)]
    assert ids["s1"] == ids["s1again"] != ids["first"] and ids["s1"] != ids["s2"]
    assert json.loads(recorded(command, tmp_path / "s2")[0]["selection"])["sample"] in (True, 1)


@covers(DATA_COMMANDS, "--text-columns", "--label-column", "--id-column", "--data", "--task")
@pytest.mark.parametrize("command", DATA_COMMANDS)
def test_columns_of_a_tsv_file_are_chosen_by_name(command, models, tmp_path, reviews):
    extra = ["--eval-data", reviews] if command == "finetune" else []
    cols = ["--text-columns", "review", "--label-column", "stars", "--id-column", "rid"]
    refused = run(command, models, tmp_path / "no", "--task", "sst2", "--data", reviews, *extra)
    one_line_error(refused, 3, "reviews.tsv")  # no 'sentence' column: the column options are needed
    res = run(command, models, tmp_path / "yes", "--task", "sst2", "--data", reviews, *extra, *cols, "--limit" if command != "finetune" else "--eval-limit", "6")
    assert res.exit_code == 0, res.stderr
    prov, ids = recorded(command, tmp_path / "yes")
    assert ids == [f"r{i}" for i in range(6)] and prov["task"] == "sst2" and str(reviews) in prov["data_source"]
    if command == "extract":
        with open_store(tmp_path / "yes") as st:
            assert st.strings("examples/text_a")[2] == "I loved every minute"
            assert np.array_equal(st.array("examples/label"), [0, 1, 0, 1, 0, 1])
    wrong_task = run(command, models, tmp_path / "mnli", "--task", "qnli", "--data", reviews, *extra, *cols)
    one_line_error(wrong_task, 3)  # qnli needs two text columns: the task is not ignored


@covers(("extract", "ablate", "finetune"), "--max-length")
@pytest.mark.parametrize("command", DATA_COMMANDS)
def test_max_length_truncates_every_input(command, models, tmp_path, reviews):
    res = run(command, models, tmp_path / "short", "--max-length", "6")
    assert res.exit_code == 0, res.stderr
    if command == "extract":
        with open_store(tmp_path / "short") as st:
            assert st.lengths().max() == 6
    else:
        prov, _ = recorded(command, tmp_path / "short")
        assert int(prov["max_length"]) == 6
    one_line_error(run(command, models, tmp_path / "bad", "--max-length", "1"), 3, "--max-length")


@covers(("extract", "ablate"), "--batch-size")
@pytest.mark.parametrize("command", ["extract", "ablate"])
def test_batch_size_is_used_and_recorded_without_changing_results(command, models, tmp_path):
    outs = []
    for b in ("1", "3"):
        res = run(command, models, tmp_path / b, "--batch-size", b)
        assert res.exit_code == 0, res.stderr
        outs.append(json.loads(recorded(command, tmp_path / b)[0]["config"]))
    key = "extract" if command == "extract" else "ablate"
    assert [o[key]["batch_size"] for o in outs] == [1, 3]
    one_line_error(run(command, models, tmp_path / "zero", "--batch-size", "0"), 3, "--batch-size")
