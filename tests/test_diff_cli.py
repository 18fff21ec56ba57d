"""``bertsecrets diff``: similarity 1 against itself, a changed head found and ranked first, pairing by id, clear errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
from typer.testing import CliRunner

from bertsecrets_cli.cli.app import app
from bertsecrets_cli.errors import InputError
from bertsecrets_cli.jobs.diff import PER_EXAMPLE_COSINE, PER_EXAMPLE_JS, DiffOptions, run_diff
from bertsecrets_cli.store import open_store

from helpers import covers, one_line_error

runner = CliRunner()
CHANGED = (5, 2)  # L6H3, 0-based


def invoke(*args: str):
    return runner.invoke(app, list(args))


@pytest.fixture(scope="module")
def changed_store(demo_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo store with head L6H3 made uniform in every example (what a fine-tuned head might look like)."""
    out = tmp_path_factory.mktemp("diff") / "changed.h5"
    shutil.copy(demo_store, out)
    with h5py.File(out, "r+") as f:
        L, H = f["model"].attrs["n_layers"], f["model"].attrs["n_heads"]
        maps = f["attention/maps"]
        for off, T in zip(f["examples/attention_offset"][...], f["examples/length"][...]):
            block = maps[off : off + L * H * T * T].reshape(L, H, T, T)
            block[CHANGED] = 1.0 / T
            maps[off : off + L * H * T * T] = block.reshape(-1)
    return out


def test_diff_of_a_store_with_itself_is_similarity_one_everywhere(demo_store: Path, tmp_path: Path) -> None:
    out = tmp_path / "self.h5"
    res = invoke("diff", str(demo_store), str(demo_store), "-o", str(out))
    assert res.exit_code == 0, res.stderr
    for label in [f"L{i}" for i in range(1, 7)] + ["most changed heads", "JS divergence", "stat_sep"]:
        assert label in res.stdout
    with open_store(out, kind="diff") as st:
        heads = st.heads()
        assert np.allclose(heads["cosine"].values, 1.0, atol=1e-6)
        assert np.all(heads["js_divergence"].values == 0.0)
        assert np.all(heads["delta_stat_sep"].values == 0.0)
        assert st.array(PER_EXAMPLE_COSINE).shape == (24, 6, 12) and st.array(PER_EXAMPLE_JS).shape == (24, 6, 12)
        assert st.n_examples == 24 and st.example_ids()[0].startswith("demo-")
        prov = st.provenance()
        assert prov["store_a"] == str(demo_store) and prov["n_paired"] == 24 and "cropped" in prov["measure"]


@covers("diff", "-o", "--top")
def test_a_changed_head_is_found_and_ranked_most_changed(demo_store: Path, changed_store: Path, tmp_path: Path) -> None:
    res = invoke("diff", str(demo_store), str(changed_store), "-o", str(tmp_path / "d.h5"), "--format", "json", "--table", "all", "--top", "3")
    assert res.exit_code == 0, res.stderr
    tables = json.loads(res.stdout)
    ranked = tables["heads"]
    assert ranked[0]["head"] == "L6H3" and ranked[0]["cosine"] < 0.99 and ranked[0]["JS divergence"] > 0.01 and len(ranked) == 3
    layers = {r["layer"]: r for r in tables["layers"]}
    assert layers["L6"]["least similar head"] == "L6H3" and layers["L6"]["cosine"] < 1.0
    assert all(layers[f"L{i}"]["cosine"] == pytest.approx(1.0, abs=1e-6) for i in range(1, 6))
    with open_store(tmp_path / "d.h5") as st:
        cos = st.heads()["cosine"].values
        per_example = st.array(PER_EXAMPLE_COSINE)
    others = np.delete(cos.reshape(-1), CHANGED[0] * 12 + CHANGED[1])
    assert np.allclose(others, 1.0, atol=1e-6) and cos[CHANGED] < 0.99
    assert np.allclose(per_example.mean(0), cos, atol=1e-5)  # the per-head mean is the mean of the stored per-example values


def test_padded_variant_is_recorded_and_agrees_on_short_maps(demo_store: Path, changed_store: Path) -> None:
    cropped = run_diff(demo_store, changed_store, None, DiffOptions(quiet=True))
    padded = run_diff(demo_store, changed_store, None, DiffOptions(quiet=True, padded=True))
    assert np.allclose(cropped.cosine, padded.cosine)  # demo maps are far shorter than the 200x200 canvas
    cut = run_diff(demo_store, changed_store, None, DiffOptions(quiet=True, padded=True, canvas=3))
    assert not np.allclose(cut.cosine[CHANGED], cropped.cosine[CHANGED])
    assert "padded to 3x3" in cut.tables[0].caption


def test_examples_pair_by_id_across_orders_and_subsets(demo_store: Path, tmp_path: Path) -> None:
    """B holds 10 of A's 24 examples, in reverse order: they pair by id and the same model gives similarity 1."""
    with open_store(demo_store) as st:
        ids, texts, labels = st.example_ids(), st.strings("examples/text_a"), st.array("examples/label")
    data = tmp_path / "rev.jsonl"
    data.write_text("".join(json.dumps({"id": ids[i], "sentence": texts[i], "label": int(labels[i])}) + "\n" for i in reversed(range(10))))
    b = tmp_path / "rev.h5"
    assert invoke("extract", "--data", str(data), "-o", str(b), "-q", "--device", "cpu").exit_code == 0
    res = invoke("diff", str(demo_store), str(b), "-o", str(tmp_path / "d.h5"))
    assert res.exit_code == 0, res.stderr
    assert "pairing 10 examples" in res.stderr and "different orders" in res.stderr
    with open_store(tmp_path / "d.h5") as st:
        assert st.example_ids() == ids[:10]
        assert np.allclose(st.heads()["cosine"].values, 1.0, atol=1e-3)


def test_mismatched_tokens_are_one_line_naming_the_example(demo_store: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.h5"
    shutil.copy(demo_store, bad)
    with h5py.File(bad, "r+") as f:
        s = int(f["examples/token_offset"][5])
        text = f["tokens/text"]
        text[s + 2] = "zebra"
        f["tokens/ids"][s + 2] = 12345
    with open_store(demo_store) as st:
        ex_id, tok = st.example_ids()[5], st.tokens(5).text[2]
    err = one_line_error(invoke("diff", str(demo_store), str(bad)), 3, ex_id, "token 2", repr(tok), "'zebra'")
    assert "same tokenizer" in err


def test_stores_of_different_model_sizes_are_refused(demo_store: Path, tiny_model_factory, tmp_path: Path) -> None:
    from bertsecrets_cli.jobs.extract import DataOptions, ExtractOptions, run_extract

    tiny = tmp_path / "tiny.h5"
    run_extract(ExtractOptions(model=str(tiny_model_factory("bert")), data=DataOptions(limit=4), device="cpu", quiet=True), tiny, command="test")
    out = tmp_path / "never.h5"
    one_line_error(invoke("diff", str(demo_store), str(tiny), "-o", str(out)), 3, "6 layers x 12 heads", "2 x 4")
    assert not out.exists()
    with pytest.raises(InputError):
        run_diff(tiny, demo_store, None, DiffOptions(quiet=True))


def test_an_existing_output_is_refused_before_any_work(demo_store: Path, tmp_path: Path) -> None:
    out = tmp_path / "d.h5"
    out.write_bytes(b"keep me")
    one_line_error(invoke("diff", str(demo_store), str(demo_store), "-o", str(out)), 6, "exists", "--force")
    assert out.read_bytes() == b"keep me"
    assert invoke("diff", str(demo_store), str(demo_store), "-o", str(out), "--force", "-q").exit_code == 0
    with open_store(out, kind="diff"):
        pass


def test_store_to_stdout_sends_tables_to_stderr(demo_store: Path) -> None:
    res = invoke("diff", str(demo_store), str(demo_store), "-o", "-", "-q")
    assert res.exit_code == 0, res.stderr
    assert res.stdout_bytes.startswith(b"\x89HDF\r\n\x1a\n")
    assert "most changed heads" in res.stderr


def test_stores_without_maps_compare_their_per_head_quantities(demo_store: Path, changed_store: Path, tmp_path: Path) -> None:
    a, b = tmp_path / "a.h5", tmp_path / "b.h5"
    run_diff(demo_store, demo_store, a, DiffOptions(quiet=True))
    run_diff(demo_store, changed_store, b, DiffOptions(quiet=True))
    res = invoke("diff", str(a), str(b), "-o", str(tmp_path / "dd.h5"), "-f", "tsv")
    assert res.exit_code == 0, res.stderr
    assert "holds no attention maps" in res.stderr
    rows = {ln.split("\t")[0]: ln.split("\t") for ln in res.stdout.splitlines()}
    assert float(rows["cosine"][3]) < 0 and rows["cosine"][5] == "L6H3"  # mean B-A < 0, largest change at L6H3
    with open_store(tmp_path / "dd.h5") as st:
        assert "delta_cosine" in st.heads() and "cosine" not in st.heads()


def _subset_store(src: Path, ids: list[str], out: Path) -> Path:
    """An extract of the examples ``ids`` of ``src`` (same model, same texts): a store of fewer examples."""
    with open_store(src) as st:
        all_ids, texts, labels = st.example_ids(), st.strings("examples/text_a"), st.array("examples/label")
    data = out.with_suffix(".jsonl")
    data.write_text("".join(json.dumps({"id": i, "sentence": texts[all_ids.index(i)], "label": int(labels[all_ids.index(i)])}) + "\n" for i in ids))
    assert invoke("extract", "--data", str(data), "-o", str(out), "-q", "--device", "cpu").exit_code == 0
    return out


def test_deltas_of_a_store_of_24_against_one_of_8_are_those_of_the_8_paired(demo_store: Path, tmp_path: Path) -> None:
    """A holds 24 examples, B (changed) 8 of them: every delta_* equals B - A over those 8 alone, computed
    independently from A's stored per-example statistics, and the left-out examples are reported."""
    with open_store(demo_store) as st:
        ids = st.example_ids()
    eight = [ids[i] for i in (1, 4, 5, 9, 12, 17, 20, 23)]
    a8 = _subset_store(demo_store, eight, tmp_path / "a8.h5")
    b8 = tmp_path / "b8.h5"
    shutil.copy(a8, b8)  # B: the 8 with changed per-example statistics (and their means), as after fine-tuning
    rng = np.random.default_rng(0)
    with h5py.File(b8, "r+") as f:
        per = f["stats/per_example"][...]
        per = (per * rng.uniform(0.5, 1.5, per.shape)).astype(np.float32)
        f["stats/per_example"][...] = per
        for k, name in enumerate(json.loads(f["stats"].attrs["names"])):
            with np.errstate(invalid="ignore"):
                f[f"heads/stat_{name}"][...] = np.nanmean(per[..., k].astype(float), axis=0)
    res = invoke("diff", str(demo_store), str(b8), "-o", str(tmp_path / "d24.h5"), "-f", "json", "--table", "quantities")
    assert res.exit_code == 0, res.stderr
    assert f"16 of {demo_store}'s 24 and 0 of {b8}'s 8 examples left out" in res.stderr
    assert invoke("diff", str(a8), str(b8), "-o", str(tmp_path / "d8.h5"), "-q").exit_code == 0
    with open_store(demo_store) as st:
        names = json.loads(st.attrs("stats")["names"])
        pa = st.array("stats/per_example")[[ids.index(i) for i in eight]].astype(float)
    with open_store(tmp_path / "d24.h5") as d24, open_store(tmp_path / "d8.h5") as d8, open_store(b8) as b:
        h24, h8, hb = d24.heads(), d8.heads(), b.heads()
        assert d24.provenance()["left_out_a"] == 16 and d24.provenance()["left_out_b"] == 0
        for k, name in enumerate(names):
            with np.errstate(invalid="ignore"):
                expected = hb[f"stat_{name}"].values - np.nanmean(pa[..., k], axis=0)
            assert np.allclose(h24[f"delta_stat_{name}"].values, expected, atol=1e-6, equal_nan=True), name
            assert np.allclose(h24[f"delta_stat_{name}"].values, h8[f"delta_stat_{name}"].values, atol=1e-6, equal_nan=True), name
        assert not np.allclose(h24["delta_stat_cls"].values, 0)  # the head really changed
