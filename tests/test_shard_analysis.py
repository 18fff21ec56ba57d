"""classify, diff and framenet under --shard i/n: merged shards equal one unsharded run; bad shard sets are refused."""

from __future__ import annotations

import json
import shutil
from functools import partial
from pathlib import Path

import h5py
import numpy as np
import pytest
from typer.testing import CliRunner

from bertsecrets_cli.cli.app import app
from bertsecrets_cli.store import open_store
from bertsecrets_cli.store.reader import read_patterns

from helpers import covers, one_line_error as _one_line_error
from test_framenet_cli import CONLLU, write_release

one_line_error = partial(_one_line_error, only=True)

runner = CliRunner()


def invoke(*args: object):
    return runner.invoke(app, [str(a) for a in args])


def ok(*args: object):
    r = invoke(*args)
    assert r.exit_code == 0, r.stderr
    return r


def heads_of(path: Path) -> dict[str, np.ndarray]:
    with open_store(path) as st:
        return {k: np.asarray(v.values, dtype=float) for k, v in st.heads().items()}


def assert_same_heads(a: Path, b: Path, rtol: float = 0.0) -> None:
    ha, hb = heads_of(a), heads_of(b)
    assert sorted(ha) == sorted(hb)
    for k in ha:
        np.testing.assert_allclose(hb[k], ha[k], rtol=rtol, atol=0, equal_nan=True, err_msg=k)


def shard_paths(tmp_path: Path, stem: str, n: int) -> list[Path]:
    return [tmp_path / f"{stem}-{i}.h5" for i in range(n)]


# ---------------------------------------------------------------------------------------------
# classify


def test_classify_shards_merge_into_the_unsharded_patterns_store(demo_pair_store: Path, tmp_path: Path) -> None:
    full = tmp_path / "full.h5"
    ok("classify", demo_pair_store, "-o", full, "-q")
    parts = shard_paths(tmp_path, "pat", 3)
    for i, p in enumerate(parts):
        r = ok("classify", demo_pair_store, "--shard", f"{i}/3", "-o", p, "-q")
    with open_store(parts[1]) as st:
        prov = st.provenance()
        assert (prov["shard_index"], prov["shard_count"], st.n_examples) == (1, 3, prov["shard_end"] - prov["shard_start"])
    merged = tmp_path / "merged.h5"
    r = ok("merge", *reversed(parts), "-o", merged, "-f", "json", "--table", "all")
    out = json.loads(r.stdout)
    assert out["merge"][0]["examples"] == 16
    with open_store(full) as a, open_store(merged) as b:
        pa, pb = read_patterns(a), read_patterns(b)
        np.testing.assert_array_equal(pa.labels, pb.labels)
        np.testing.assert_array_equal(pa.features, pb.features)
        np.testing.assert_array_equal(pa.token_attention, pb.token_attention)
        assert a.example_ids() == b.example_ids() and pa.attrs == pb.attrs
        assert b.provenance()["two_sentence_examples"] == a.provenance()["two_sentence_examples"] == 16
        assert "shard_index" not in b.provenance() and b.provenance()["job_fingerprint"] == a.provenance()["job_fingerprint"]
    assert_same_heads(full, merged, rtol=1e-12)
    ok("check", merged)


def test_classify_of_each_extract_shard_merges_like_classify_of_the_merged_store(tmp_path: Path) -> None:
    from bertsecrets_cli.jobs.extract import DataOptions, ExtractOptions, run_extract

    ex = shard_paths(tmp_path, "ex", 2)
    for i, p in enumerate(ex):
        run_extract(ExtractOptions(data=DataOptions(task="sst2", limit=10), device="cpu", quiet=True, shard=f"{i}/2", batch_size=4), p, command="t")
    ok("merge", *ex, "-o", tmp_path / "all.h5")
    ok("classify", tmp_path / "all.h5", "-o", tmp_path / "whole.h5", "-q")
    pats = shard_paths(tmp_path, "pat", 2)
    for e, p in zip(ex, pats):
        ok("classify", e, "-o", p, "-q")  # no --shard: the store inherits the extract shard's place
    ok("merge", *pats, "-o", tmp_path / "joined.h5")
    with open_store(tmp_path / "whole.h5") as a, open_store(tmp_path / "joined.h5") as b:
        np.testing.assert_array_equal(read_patterns(a).labels, read_patterns(b).labels)
    assert_same_heads(tmp_path / "whole.h5", tmp_path / "joined.h5", rtol=1e-12)
    # a shard of a shard would not merge with anything: refused
    one_line_error(invoke("classify", ex[0], "--shard", "0/2", "-o", tmp_path / "x.h5"), 3, "already shard 0/2")
    assert not (tmp_path / "x.h5").exists()


def test_shard_auto_reads_the_slurm_array(demo_store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for k in ("RANK", "WORLD_SIZE"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "6")
    monkeypatch.setenv("SLURM_ARRAY_TASK_MIN", "5")
    monkeypatch.setenv("SLURM_ARRAY_TASK_COUNT", "3")
    ok("classify", demo_store, "--shard", "auto", "-o", tmp_path / "p.h5", "-q")
    with open_store(tmp_path / "p.h5") as st:
        prov = st.provenance()
    assert (prov["shard_index"], prov["shard_count"], prov["shard_start"], prov["shard_end"], prov["shard_origin"]) == (1, 3, 8, 16, "slurm")
    # without --shard the environment is not read: an analysis inside an array task stays whole
    ok("classify", demo_store, "-o", tmp_path / "whole.h5", "-q")
    with open_store(tmp_path / "whole.h5") as st:
        assert "shard_index" not in st.provenance() and st.n_examples == 24


def test_merge_refuses_missing_overlapping_foreign_and_unsharded_stores(demo_store: Path, tmp_path: Path) -> None:
    parts = shard_paths(tmp_path, "p", 3)
    for i, p in enumerate(parts):
        ok("classify", demo_store, "--shard", f"{i}/3", "-o", p, "-q")
    out = tmp_path / "m.h5"
    one_line_error(invoke("merge", parts[0], parts[2], "-o", out), 4, "shard(s) 1/3 missing")
    one_line_error(invoke("merge", parts[0], parts[1], parts[1], parts[2], "-o", out), 4, "given twice")
    ok("classify", demo_store, "-o", tmp_path / "whole.h5", "-q")
    one_line_error(invoke("merge", tmp_path / "whole.h5", parts[0], "-o", out), 4, "is not a shard")
    # another job: the same shard written from other data
    other = tmp_path / "other.h5"
    shutil.copy(demo_store, other)
    with h5py.File(other, "r+") as f:
        f["provenance"].attrs["job_fingerprint"] = "0" * 64
    ok("classify", other, "--shard", "1/3", "-o", tmp_path / "o1.h5", "-q")
    one_line_error(invoke("merge", parts[0], tmp_path / "o1.h5", parts[2], "-o", out), 4, "job_fingerprint differs")
    one_line_error(invoke("merge", parts[0], demo_store, "-o", out), 4, "is an attention store")
    assert not out.exists()


def test_shard_without_output_and_empty_shards_are_input_errors(demo_store: Path, tmp_path: Path) -> None:
    one_line_error(invoke("classify", demo_store, "--shard", "0/2"), 3, "--shard: give -o")
    one_line_error(invoke("classify", demo_store, "--shard", "30/40", "-o", tmp_path / "e.h5"), 3, "has no examples")
    one_line_error(invoke("classify", demo_store, "--shard", "2/2", "-o", tmp_path / "e.h5"), 3, "0 <= i < n")
    assert not (tmp_path / "e.h5").exists()


# ---------------------------------------------------------------------------------------------
# diff


@pytest.fixture(scope="module")
def other_store(demo_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo store with every map of layer 6 made uniform: a 'fine-tuned' B for diff."""
    out = tmp_path_factory.mktemp("shard-diff") / "b.h5"
    shutil.copy(demo_store, out)
    with h5py.File(out, "r+") as f:
        L, H = int(f["model"].attrs["n_layers"]), int(f["model"].attrs["n_heads"])
        maps = f["attention/maps"]
        for off, T in zip(f["examples/attention_offset"][...], f["examples/length"][...]):
            a = maps[off : off + L * H * T * T].reshape(L, H, T, T)
            a[-1] = 1.0 / T
            maps[off : off + L * H * T * T] = a.reshape(-1)
    return out


def test_diff_shards_merge_into_the_unsharded_diff(demo_store: Path, other_store: Path, tmp_path: Path) -> None:
    full = tmp_path / "full.h5"
    ok("diff", demo_store, other_store, "-o", full, "-q")
    parts = shard_paths(tmp_path, "d", 4)
    for i, p in enumerate(parts):
        ok("diff", demo_store, other_store, "--shard", f"{i}/4", "-o", p, "-q")
    merged = tmp_path / "m.h5"
    r = ok("merge", *parts, "-o", merged, "-f", "json", "--table", "all")
    tables = json.loads(r.stdout)
    assert "layers" in tables  # merge prints the joined diff's tables
    assert_same_heads(full, merged, rtol=1e-12)
    with open_store(full) as a, open_store(merged) as b:
        assert a.example_ids() == b.example_ids()
        np.testing.assert_array_equal(a.array("per_example/cosine"), b.array("per_example/cosine"))
    # a diff made with other options is another job
    ok("diff", demo_store, other_store, "--padded", "--shard", "1/4", "-o", tmp_path / "padded-1.h5", "-q")
    one_line_error(invoke("merge", parts[0], tmp_path / "padded-1.h5", parts[2], parts[3], "-o", tmp_path / "bad.h5"), 4, "job_fingerprint differs")


# ---------------------------------------------------------------------------------------------
# framenet and dependencies


def test_framenet_shards_merge_into_the_unsharded_store(tmp_path: Path, tiny_model_factory) -> None:
    fn = write_release(tmp_path / "fndata-1.7")
    model = tiny_model_factory("bert")
    common = ["framenet", "--framenet", fn, "--model", model, "--device", "cpu", "--batch-size", "1", "--min-distance", "1", "-q"]
    full = tmp_path / "full.h5"
    ok(*common, "-o", full)
    parts = shard_paths(tmp_path, "fn", 2)
    for i, p in enumerate(parts):
        ok(*common, "--shard", f"{i}/2", "-o", p)
    merged = tmp_path / "m.h5"
    r = ok("merge", *parts, "-o", merged, "-f", "json", "--table", "all")
    assert "heads" in json.loads(r.stdout)
    assert_same_heads(full, merged, rtol=1e-12)  # same-distance baseline included: its draws are seeded per link
    with open_store(full) as a, open_store(merged) as b:
        assert a.example_ids() == b.example_ids()
        assert a.json("framenet/links") == b.json("framenet/links")
        assert b.provenance()["n_links"] == a.provenance()["n_links"]
        # the marks are recomputed from the merged result, not taken from the first shard
        for key in ("n_heads_beating_baseline", "below_min_links", "sentence_sources_used"):
            assert b.provenance()[key] == a.provenance()[key], key
        np.testing.assert_array_equal(a.heads()["framenet_beats_baseline"].values, b.heads()["framenet_beats_baseline"].values)
    with open_store(parts[1]) as st:
        assert st.provenance()["shard_index"] == 1 and st.n_examples < 5


@covers("framenet", "--shard")
def test_dependency_shards_merge_exactly(tmp_path: Path, tiny_model_factory) -> None:
    p = tmp_path / "dev.conllu"
    p.write_text(CONLLU * 3)
    model = tiny_model_factory("bert")
    common = ["framenet", "--conllu", p, "--model", model, "--device", "cpu", "--batch-size", "1", "-q"]
    ok(*common, "-o", tmp_path / "full.h5")
    parts = shard_paths(tmp_path, "dep", 3)
    for i, q in enumerate(parts):
        ok(*common, "--shard", f"{i}/3", "-o", q)
    ok("merge", *parts, "-o", tmp_path / "m.h5")
    assert_same_heads(tmp_path / "full.h5", tmp_path / "m.h5")  # counts: exactly equal
    with open_store(tmp_path / "full.h5") as a, open_store(tmp_path / "m.h5") as b:
        assert a.json("dependency/relations") == b.json("dependency/relations")
        assert b.provenance()["n_arcs"] == a.provenance()["n_arcs"]
        assert b.provenance()["n_heads_beating_baseline"] == a.provenance()["n_heads_beating_baseline"] and b.provenance()["below_min_arcs"] == 1


def test_check_reports_shards_and_merges_and_refuses_rows_that_do_not_match_the_examples(demo_store: Path, tmp_path: Path) -> None:
    parts = shard_paths(tmp_path, "p", 2)
    for i, p in enumerate(parts):
        ok("classify", demo_store, "--shard", f"{i}/2", "-o", p, "-q")
    r = ok("check", parts[1], "-f", "json")
    rows = {x["check"]: x["result"] for x in json.loads(r.stdout)}
    assert rows["shard"].startswith("1/2: items 12..23 of 24") and rows["rows per example"] == "10 datasets of 12 rows"
    ok("merge", *parts, "-o", tmp_path / "m.h5")
    rows = {x["check"]: x["result"] for x in json.loads(ok("check", tmp_path / "m.h5", "-f", "json").stdout)}
    assert rows["merged"] == "from 2 shards: p-0.h5, p-1.h5"
    with h5py.File(parts[0], "r+") as f:  # one example's labels lost
        labels = f["patterns/labels"][:-1]
        del f["patterns/labels"]
        f["patterns/labels"] = labels
    one_line_error(invoke("check", parts[0]), 4, "patterns/labels has 11 rows for 12 examples")
