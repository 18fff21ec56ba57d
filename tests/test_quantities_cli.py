"""Norms, rollout and flow through the command line: stored by extract, read by every analysis with --quantity."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from helpers import covers, one_line_error
from typer.testing import CliRunner

from bertsecrets_cli.cli.app import app
from bertsecrets_cli.store import open_store

runner = CliRunner()
ALL = "weights,norms,norms_normalised,rollout,flow,flow_raw"


def invoke(*args: str):  # noqa: ANN202
    return runner.invoke(app, list(args))


@pytest.fixture(scope="module")
def qstore(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """6 demo examples through the embedded model with every quantity (short inputs: flow is costly)."""
    from bertsecrets_cli.jobs.extract import DataOptions, ExtractOptions, run_extract

    out = tmp_path_factory.mktemp("q") / "q.h5"
    run_extract(ExtractOptions(data=DataOptions(task="sst2", limit=6), max_length=32, device="cpu", quiet=True,
                               quantities=tuple(ALL.split(","))), out, command="test")
    return out


@covers("extract", "--quantities")
def test_extract_stores_the_asked_quantities_next_to_the_weights(tmp_path: Path) -> None:
    out = tmp_path / "x.h5"
    res = invoke("extract", "-o", str(out), "-n", "3", "--device", "cpu", "--quantities", "norms,rollout", "-q")
    assert res.exit_code == 0, res.stderr
    with open_store(out) as st:
        assert st.quantities() == ["weights", "norms", "rollout"]
        assert json.loads(st.provenance()["quantities"]) == ["weights", "norms", "rollout"]
        w = st.attention(0)
        st.select_quantity("norms")
        n = st.attention(0)
        assert n.shape == w.shape and not np.allclose(n, w, atol=1e-2) and (n >= 0).all()
        # norm-based [CLS] mass is a different number from the weights' (Kobayashi et al.'s point)
        assert st.stats()[1].shape == (3, 6, 12, 7)
        st.select_quantity("rollout")
        r = st.attention(0)
        assert st.n_heads == 1 and r.shape == (6, 1, *w.shape[2:])
        np.testing.assert_allclose(r.sum(-1), 1.0, atol=2e-3)
        assert st.heads()["stat_cls"].values.shape == (6, 1)
    res = invoke("check", str(out))
    assert res.exit_code == 0 and "rollout" in res.stdout, res.stdout
    plain = tmp_path / "plain.h5"
    assert invoke("extract", "-o", str(plain), "-n", "3", "--device", "cpu", "-q").exit_code == 0
    with open_store(plain) as st:
        assert st.quantities() == ["weights"] and not st.has("norms/maps")


@pytest.mark.parametrize(("args", "needle"), [
    (["--quantities", "weights,attn"], "unknown attn"),
    (["--quantities", "flow", "--max-length", "128"], "--max-length 64 or less"),
])
def test_bad_quantities_are_one_error_line_before_any_work(tmp_path: Path, args: list[str], needle: str) -> None:
    res = invoke("extract", "-o", str(tmp_path / "x.h5"), "-n", "2", *args)
    one_line_error(res, 3, needle)
    assert not (tmp_path / "x.h5").exists()


def test_stored_norms_and_rollout_match_the_model_and_analysis(qstore: Path) -> None:
    """What extract stored equals a fresh computation (float16 storage), example by example."""
    from bertsecrets_cli.analysis.quantities import flow, rollout, row_normalise
    from bertsecrets_cli.model.attention import forward_with_norms
    from bertsecrets_cli.model.load import load_model
    from bertsecrets_cli.model.tokenize import collate, encode_examples

    lm = load_model(None, device="cpu")
    with open_store(qstore) as st:
        i = 2
        enc = encode_examples(lm.tokenizer, [(st.strings("examples/text_a")[i], None)], 32)
        _, probs, norms = forward_with_norms(lm.model, collate(enc, 0, lm.device, lm.model_type), lm.n_layers)
        w = st.attention(i)
        np.testing.assert_allclose(st.select_quantity("norms").attention(i), norms[0].numpy(), rtol=2e-3, atol=2e-3)
        np.testing.assert_allclose(st.select_quantity("norms_normalised").attention(i), row_normalise(norms[0].numpy()), atol=2e-3)
        np.testing.assert_allclose(st.select_quantity("rollout").attention(i)[:, 0], rollout(w), atol=3e-3)
        raw = flow(w)
        np.testing.assert_allclose(st.select_quantity("flow_raw").attention(i)[:, 0], raw, atol=3e-3 * raw.max())
        # flow: each row divided by its sum, as Abnar's compute_flows (flow_values[u] /= flow_values[u].sum())
        np.testing.assert_allclose(st.select_quantity("flow").attention(i)[:, 0], raw / raw.sum(-1, keepdims=True), atol=3e-3)


def test_shards_of_a_quantities_extract_merge_into_the_whole(tmp_path: Path) -> None:
    from bertsecrets_cli.jobs.extract import DataOptions, ExtractOptions, run_extract

    q = ("weights", "norms", "rollout")
    for name, shard in (("s0.h5", "0/2"), ("s1.h5", "1/2"), ("whole.h5", None)):
        run_extract(ExtractOptions(data=DataOptions(task="sst2", limit=4), device="cpu", quiet=True, quantities=q, shard=shard),
                    tmp_path / name, command="t")
    res = invoke("merge", str(tmp_path / "s0.h5"), str(tmp_path / "s1.h5"), "-o", str(tmp_path / "m.h5"))
    assert res.exit_code == 0, res.stderr
    with open_store(tmp_path / "m.h5") as m, open_store(tmp_path / "whole.h5") as w:
        for kind in q:
            m.select_quantity(kind), w.select_quantity(kind)
            for i in range(4):  # batches differ (other padding): float16 rounding apart
                np.testing.assert_allclose(m.attention(i), w.attention(i), atol=1e-3)
            np.testing.assert_allclose(m.heads()["stat_sep"].values, w.heads()["stat_sep"].values, atol=1e-4)
    assert invoke("check", str(tmp_path / "m.h5")).exit_code == 0


def flat(text: str) -> str:
    """Terminal tables wrap long titles: the words in one line."""
    return " ".join(text.split())


@covers("classify run", "--quantity")
def test_classify_labels_the_chosen_maps(qstore: Path, tmp_path: Path) -> None:
    res_w = invoke("classify", str(qstore))
    res_r = invoke("classify", str(qstore), "--quantity", "rollout", "-o", str(tmp_path / "p.h5"))
    assert res_w.exit_code == 0 and res_r.exit_code == 0, res_r.stderr
    assert "on rollout)" in flat(res_r.stdout) and "on weights)" in flat(res_w.stdout) and "on rollout" not in flat(res_w.stdout)
    heads = json.loads(invoke("classify", str(qstore), "--quantity", "rollout", "-f", "json", "--table", "heads").stdout)
    assert [len(r) for r in heads] == [2] * 6  # layer + one "head" per layer
    with open_store(tmp_path / "p.h5") as st:
        assert st.n_heads == 1 and st.result_quantity() == "rollout"
        assert st.heads()["pattern_share_vertical"].values.shape == (6, 1)
    res = invoke("classify", str(qstore), "--quantity", "attn")
    one_line_error(res, 3, "--quantity attn")


def test_a_store_without_the_quantity_is_refused_in_one_line(demo_store: Path) -> None:
    res = invoke("classify", str(demo_store), "--quantity", "norms")
    one_line_error(res, 4, "holds no norms maps", "--quantities weights,norms")


@covers("diff", "--quantity")
def test_diff_compares_the_chosen_quantity(qstore: Path) -> None:
    res = invoke("diff", str(qstore), str(qstore), "--quantity", "norms")
    assert res.exit_code == 0, res.stderr
    assert "similarity per layer (A -> B) on norms" in flat(res.stdout)
    per = {r["quantity"]: r for r in json.loads(invoke("diff", str(qstore), str(qstore), "--quantity", "norms", "-f", "json", "--table", "quantities").stdout)}
    with open_store(qstore, quantity="norms") as st:
        norms_cls = float(np.nanmean(st.heads()["stat_cls"].values))
    with open_store(qstore) as st:
        weights_cls = float(np.nanmean(st.heads()["stat_cls"].values))
    assert per["stat_cls"]["mean A"] == pytest.approx(norms_cls, abs=1e-6) and abs(norms_cls - weights_cls) > 0.05


@covers("show", "--quantity")
def test_show_ranks_a_quantity_of_another_kind(qstore: Path) -> None:
    res = invoke("show", str(qstore), "--quantity", "norms/stat_cls", "-k", "1", "-f", "json")
    assert res.exit_code == 0, res.stderr
    rows = json.loads(res.stdout)  # one table: its rows
    with open_store(qstore, quantity="norms") as st:
        v = st.heads()["stat_cls"].values
    assert rows[0]["norms/stat_cls"] == pytest.approx(float(np.nanmax(v)))
    assert "per-head quantities (rollout)" in flat(invoke("show", str(qstore), "--quantity", "rollout").stdout)
    over = invoke("show", str(qstore), "--quantity", "rollout", "-f", "json", "--table", "store")
    fields = {r["field"]: r["value"] for r in json.loads(over.stdout)}
    assert fields["layers x heads"] == "6 x 1" and fields["quantity shown"] == "rollout"
    one_line_error(invoke("show", str(qstore), "--quantity", "norms/stat_cls,rollout/stat_cls"), 3, "one figure or ranking reads one kind")


@covers("plot", "--quantity")
def test_plot_draws_the_chosen_maps_and_says_so(qstore: Path) -> None:
    res = invoke("plot", str(qstore), "--quantity", "norms", "--example", "0", "--head", "L1H1")
    assert res.exit_code == 0, res.stderr
    assert "L1H1 norms, example 0" in res.stdout
    res = invoke("plot", str(qstore), "--quantity", "rollout/stat_cls")
    assert res.exit_code == 0 and "[rollout]" in res.stdout, res.stdout
    # rollout has one map per layer: a second head does not exist there, while the weights have it
    assert invoke("plot", str(qstore), "--example", "0", "--head", "L2H2").exit_code == 0
    one_line_error(invoke("plot", str(qstore), "--quantity", "rollout", "--example", "0", "--head", "L2H2"), 3)


@covers("framenet", "--quantity")
def test_dependency_heads_on_rollout_and_norms(tmp_path: Path, tiny_model_factory) -> None:
    from test_framenet_cli import CONLLU

    p = tmp_path / "dev.conllu"
    p.write_text(CONLLU)
    model = str(tiny_model_factory("bert"))
    out = {}
    for q in ("weights", "rollout", "norms"):
        out[q] = tmp_path / f"{q}.h5"
        res = invoke("framenet", "--conllu", str(p), "-o", str(out[q]), "--model", model, "--device", "cpu", "--min-count", "1",
                     "--quantity", q)
        assert res.exit_code == 0, res.stderr
        assert ("[on rollout]" in flat(res.stdout)) == (q == "rollout") and ("[on norms]" in flat(res.stdout)) == (q == "norms")
    with open_store(out["rollout"]) as st:
        assert st.n_heads == 1 and st.result_quantity() == "rollout"
        assert st.heads()["dep_all_accuracy"].values.shape == (2, 1)
    with open_store(out["norms"]) as st, open_store(out["weights"]) as sw:
        assert st.result_quantity() == "norms" and st.heads()["dep_all_accuracy"].values.shape == (2, 4)
        assert st.provenance()["job_fingerprint"] != sw.provenance()["job_fingerprint"]


def test_a_head_with_zero_value_vectors_makes_a_valid_store(tmp_path: Path, tiny_model_factory) -> None:
    """Its norms are all zero, its normalised rows stay zero (not NaN), and check accepts the store."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    src = tiny_model_factory("bert")
    model = AutoModel.from_pretrained(src)
    d = model.config.hidden_size // model.config.num_attention_heads
    with torch.no_grad():
        model.encoder.layer[1].attention.self.value.weight[:d] = 0.0  # L2H1
        model.encoder.layer[1].attention.self.value.bias[:d] = 0.0
    folder = tmp_path / "zero"
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(src).save_pretrained(folder)
    out = tmp_path / "z.h5"
    res = invoke("extract", "-o", str(out), "-n", "3", "--model", str(folder), "--device", "cpu", "--quantities", "norms,norms_normalised", "-q")
    assert res.exit_code == 0, res.stderr
    with open_store(out, quantity="norms_normalised") as st:
        m = st.attention(0)
        assert np.all(m[1, 0] == 0) and np.isfinite(m).all()
        np.testing.assert_allclose(m[0].sum(-1), 1.0, atol=2e-3)
        assert st.heads()["stat_cls"].values[1, 0] == 0.0
        assert np.all(st.select_quantity("norms").attention(0)[1, 0] == 0)
    res = invoke("check", str(out))
    assert res.exit_code == 0, res.stdout + res.stderr


@covers("coref", "--quantity")
def test_coreference_heads_on_rollout(tmp_path: Path, tiny_model_factory) -> None:
    from test_coref import DOC

    p = tmp_path / "chains.conllu"
    p.write_text(DOC)
    model = str(tiny_model_factory("bert"))
    res = invoke("coref", str(p), "-o", str(tmp_path / "c.h5"), "--model", model, "--device", "cpu", "--bootstrap", "0", "--quantity", "rollout")
    assert res.exit_code == 0, res.stderr
    assert "[on rollout]" in flat(res.stdout)
    with open_store(tmp_path / "c.h5") as st:
        assert st.n_heads == 1 and st.result_quantity() == "rollout"
        assert all(q.values.shape == (2, 1) for q in st.heads().values())
    one_line_error(invoke("coref", str(p), "-o", str(tmp_path / "d.h5"), "--model", model, "--quantity", "attn"), 3, "--quantity attn")
