"""Each command's own options, typed on the real command line, each with an effect that would differ if the option
were ignored (what the output records, how many rows a table has, what a file holds) or a clean refusal.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
from typer.testing import CliRunner

from bertsecrets_cli.cli.app import app
from bertsecrets_cli.store import open_store
from helpers import covers, one_line_error

runner = CliRunner()


def invoke(*args, input: str | None = None):
    return runner.invoke(app, [str(a) for a in args], input=input)


def config(path: Path, key: str) -> dict:
    with open_store(path) as st:
        return json.loads(st.provenance()["config"])[key]


def rows(res, table: str | None = None) -> list[dict]:
    assert res.exit_code == 0, res.stderr
    return json.loads(res.stdout)


# --------------------------------------------------------------------------- extract


@covers("extract", "--compression", "--part-size", "--shard", "--encoding")
def test_extract_storage_options_reach_the_store(tmp_path):
    res = invoke("extract", "--limit", "6", "--compression", "gzip", "--part-size", "2", "--encoding", "uint8", "--shard", "1/2", "-o", tmp_path / "s.h5", "-q")
    assert res.exit_code == 0, res.stderr
    with h5py.File(tmp_path / "s.h5", "r") as f:
        maps = f["attention/maps"]
        assert maps.compression == "gzip" and maps.dtype == np.uint8
    with open_store(tmp_path / "s.h5") as st:
        prov = st.provenance()
        assert (int(prov["shard_index"]), int(prov["shard_count"]), int(prov["shard_start"])) == (1, 2, 3)
        assert st.example_ids() == [f"demo-single-dev-{i:04d}" for i in (3, 4, 5)]
    assert config(tmp_path / "s.h5", "extract")["part_size"] == 2
    one_line_error(invoke("extract", "--limit", "2", "--compression", "zstd", "-o", tmp_path / "x.h5"), 3, "--compression zstd")
    one_line_error(invoke("extract", "--limit", "2", "--part-size", "0", "-o", tmp_path / "y.h5"), 3, "--part-size")


# --------------------------------------------------------------------------- classify


@covers("classify run", "--features")
def test_classify_features_adds_the_token_tables(demo_store):
    plain = invoke("classify", "run", demo_store, "--format", "json", "--table", "token-layers")
    one_line_error(plain, 3, "--table token-layers")
    with_features = invoke("classify", "run", demo_store, "--features", "--format", "json", "--table", "token-layers")
    layers = rows(with_features)
    assert [r["layer"] for r in layers][:2] == ["L1", "L2"] and "[CLS]" in layers[0]


@covers("classify annotate", "--heads", "--seed", "--hint", "--max-tokens")
def test_annotate_options_choose_heads_order_hints_and_map_size(demo_store, tmp_path):
    def annotate(name: str, *extra: str):
        labels = tmp_path / f"{name}.tsv"
        res = invoke("classify", "annotate", demo_store, "--labels", labels, "--limit", "3", *extra, input="v\nv\nv\n")
        assert res.exit_code == 0, res.stderr
        rows = [ln.split("\t") for ln in labels.read_text().splitlines() if ln and not ln.startswith("#")]
        return res, [r for r in rows if r[0] != "store"]  # without the header

    _, picked = annotate("heads", "--heads", "L2H3")
    assert picked and all((r[2], r[3]) == ("2", "3") for r in picked)
    _, s1 = annotate("s1", "--seed", "1")
    _, s2 = annotate("s2", "--seed", "2")
    assert [r[1:4] for r in s1] != [r[1:4] for r in s2]
    plain, _ = annotate("plain", "--seed", "1")
    hinted, _ = annotate("hinted", "--seed", "1", "--hint")
    assert "hint (" not in plain.stderr and "hint (" in hinted.stderr
    small, _ = annotate("small", "--seed", "1", "--max-tokens", "4")
    assert "first 4" in small.stderr or len(small.stderr) < len(plain.stderr)


@covers("classify train", "--noise", "--batch-size", "--lr", "--val-fraction", "--patience", "--input", "--seed", "--synthetic", "--epochs")
def test_train_options_are_used_and_recorded_in_the_classifier(tmp_path):
    import torch

    def train(name: str, *extra: str) -> dict:
        out = tmp_path / f"{name}.pt"
        res = invoke("classify", "train", "--synthetic", "60", "--epochs", "2", "-o", out, "-q", *extra)
        assert res.exit_code == 0, res.stderr
        return torch.load(out, map_location="cpu", weights_only=True)

    a = train("a", "--noise", "0.3", "--batch-size", "8", "--lr", "0.002", "--val-fraction", "0.5", "--patience", "1", "--input", "raw", "--seed", "3")
    t = a["training"]
    assert (t["batch_size"], t["lr"], t["val_fraction"], t["patience"], t["seed"], a["input"]) == (8, 0.002, 0.5, 1, 3, "raw")
    assert a["validation"]["n_maps"] == 30 and json.dumps(t["sources"]).count("0.3")
    b = train("b", "--seed", "4")
    assert 0 < b["validation"]["n_maps"] < 15  # the default fraction, 0.2 (stratified per class)
    first = next(iter(b["state_dict"]))
    assert not torch.equal(train("c", "--seed", "5")["state_dict"][first], b["state_dict"][first])
    one_line_error(invoke("classify", "train", "--synthetic", "10", "--input", "logits", "-o", tmp_path / "x.pt"), 3, "--input")


# --------------------------------------------------------------------------- diff, merge


@covers("diff", "--canvas", "--padded")
def test_diff_canvas_sets_the_padded_comparison_size(demo_store, tmp_path):
    other = tmp_path / "b.h5"
    shutil.copy(demo_store, other)
    res = invoke("diff", demo_store, other, "--padded", "--canvas", "16", "-o", tmp_path / "d.h5", "-q")
    assert res.exit_code == 0, res.stderr
    assert config(tmp_path / "d.h5", "diff")["canvas"] == 16
    one_line_error(invoke("diff", demo_store, other, "--padded", "--canvas", "0", "-o", tmp_path / "e.h5"), 3, "--canvas")


@pytest.fixture(scope="module")
def ablation_shards(tiny_model_factory, tmp_path_factory) -> list[Path]:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from helpers import strengthen

    d = tmp_path_factory.mktemp("abl-shards")
    src = tiny_model_factory("bert", classifier=True)
    m = AutoModelForSequenceClassification.from_pretrained(src)
    strengthen(m)  # heads that move the predictions: rankings list only changes beyond noise
    model = d / "model"
    m.save_pretrained(model)
    AutoTokenizer.from_pretrained(src).save_pretrained(model)
    outs = []
    for i in range(2):
        out = d / f"a{i}.h5"
        res = invoke("ablate", "--model", model, "--task", "sst2", "--limit", "16", "--bootstrap", "0", "--shard", f"{i}/2", "-o", out, "-q")
        assert res.exit_code == 0, res.stderr
        outs.append(out)
    return outs


@covers("merge", "--top")
def test_merge_top_sets_the_rows_of_the_merged_rankings(ablation_shards, tmp_path):
    from bertsecrets_cli.jobs.ablate import beyond_noise, read_ablation

    two = rows(invoke("merge", *ablation_shards, "-o", tmp_path / "m2.h5", "--top", "2", "--format", "json", "--table", "hurts"))
    five = rows(invoke("merge", *ablation_shards, "-o", tmp_path / "m5.h5", "--top", "5", "--format", "json", "--table", "hurts"))
    r = read_ablation(tmp_path / "m5.h5")
    hurting = sum(beyond_noise(r, j, -1) for j, k in enumerate(r.kinds) if k == "head")
    assert hurting > 2 and (len(two), len(five)) == (2, min(5, hurting))


@covers("merge", "--copy")
def test_merge_copy_holds_the_data_itself(tmp_path):
    shards = []
    for i in range(2):
        shards.append(tmp_path / f"s{i}.h5")
        assert invoke("extract", "--limit", "4", "--shard", f"{i}/2", "-o", shards[-1], "-q").exit_code == 0
    assert invoke("merge", *shards, "-o", tmp_path / "virtual.h5", "-q").exit_code == 0
    assert invoke("merge", *shards, "--copy", "-o", tmp_path / "copied.h5", "-q").exit_code == 0
    with h5py.File(tmp_path / "virtual.h5") as v, h5py.File(tmp_path / "copied.h5") as c:
        assert v["attention/maps"].is_virtual and not c["attention/maps"].is_virtual
        np.testing.assert_array_equal(v["attention/maps"][:100], c["attention/maps"][:100])
    for s in shards:
        s.unlink()
    assert invoke("check", tmp_path / "copied.h5").exit_code == 0  # needs no shard any more
    assert invoke("check", tmp_path / "virtual.h5").exit_code == 4


@covers("ablate", "--greedy-steps", "--bootstrap-seed", "--top")
def test_ablate_search_and_table_options(tiny_model_factory, tmp_path):
    from helpers import strengthen

    from bertsecrets_cli.jobs.ablate import beyond_noise, read_ablation
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    src = tiny_model_factory("bert", classifier=True)
    model = AutoModelForSequenceClassification.from_pretrained(src)
    strengthen(model)
    model.save_pretrained(tmp_path / "m")
    AutoTokenizer.from_pretrained(src).save_pretrained(tmp_path / "m")
    base = ["ablate", "--model", tmp_path / "m", "--task", "sst2", "--limit", "16", "--bootstrap", "50"]
    assert invoke(*base, "-o", tmp_path / "a.h5", "-q").exit_code == 0
    with open_store(tmp_path / "a.h5") as st:
        lo_a = st.array("ablation/variants/ci_low")
    # --top: without intervals (--bootstrap 0) every head that lowers the score is listed as hurting, so the table's
    # length is fixed by the model, not by how 16 examples' noise falls; --top 2 must cut it
    nob = ["ablate", "--model", tmp_path / "m", "--task", "sst2", "--limit", "16", "--bootstrap", "0"]
    top2 = rows(invoke(*nob, "--top", "2", "-o", tmp_path / "t2.h5", "--format", "json", "--table", "hurts"))
    r = read_ablation(tmp_path / "t2.h5")
    hurting = sum(beyond_noise(r, j, -1) for j, k in enumerate(r.kinds) if k == "head")
    assert hurting > 2 and len(top2) == 2
    assert invoke(*base, "--bootstrap-seed", "7", "-o", tmp_path / "b.h5", "-q").exit_code == 0
    with open_store(tmp_path / "b.h5") as st:
        assert int(st.attrs("ablation")["bootstrap_seed"]) == 7
        assert not np.array_equal(st.array("ablation/variants/ci_low"), lo_a)
    greedy = rows(invoke(*base, "--greedy", "--greedy-steps", "1", "-o", tmp_path / "g.h5", "--format", "json", "--table", "greedy"))
    assert len(greedy) == 1


# --------------------------------------------------------------------------- plot


@covers("plot", "--title", "--vmin", "--vmax", "--width")
def test_plot_title_scale_and_width(demo_store, tmp_path):
    res = invoke("plot", demo_store, "--quantity", "stat_cls", "--title", "My CLS grid", "-o", tmp_path / "t.svg")
    assert res.exit_code == 0, res.stderr
    assert "My CLS grid" in (tmp_path / "t.svg").read_text()
    free = invoke("plot", demo_store, "--quantity", "stat_cls", "--width", "80")
    fixed = invoke("plot", demo_store, "--quantity", "stat_cls", "--vmin", "0", "--vmax", "2", "--width", "80")
    assert free.exit_code == fixed.exit_code == 0 and free.stdout != fixed.stdout and "2.00" in fixed.stdout
    narrow = invoke("plot", demo_store, "--quantity", "stat_cls", "--width", "60")
    wide = invoke("plot", demo_store, "--quantity", "stat_cls", "--width", "120")
    assert max(map(len, narrow.stdout.splitlines())) <= 60 < max(map(len, wide.stdout.splitlines()))
    one_line_error(invoke("plot", demo_store, "--quantity", "stat_cls", "--vmin", "1", "--vmax", "0"), 3, "--vmin")


# --------------------------------------------------------------------------- finetune


@covers("finetune", "--lr", "--epochs", "--warmup", "--weight-decay", "--seed", "--init", "--eval-batch-size", "--save-steps")
def test_finetune_hyperparameters_are_used_and_recorded(tiny_model_factory, tmp_path):
    enc = tiny_model_factory("bert")
    base = ["finetune", "--model", enc, "--task", "sst2", "--train-limit", "8", "--eval-limit", "4", "--batch-size", "4", "-q"]
    res = invoke(*base, "--lr", "0.001", "--epochs", "2", "--warmup", "0.25", "--weight-decay", "0.1", "--seed", "5", "--eval-batch-size", "3",
                 "--save-steps", "1", "-o", tmp_path / "a")
    assert res.exit_code == 0, res.stderr
    rec = json.loads((tmp_path / "a" / "finetune.json").read_text())
    h = rec["hyperparameters"]
    assert (h["lr"], h["epochs"], h["warmup"], h["weight_decay"], h["seed"]) == (0.001, 2, 0.25, 0.1, 5)
    assert rec["trainer"]["save_steps"] == 1 and rec["trainer"]["eval_batch_size"] == 3 and rec["global_step"] == 4  # 2 epochs of 8 examples in batches of 4: --epochs is not ignored
    one_line_error(invoke(*base, "--eval-batch-size", "0", "-o", tmp_path / "e"), 3, "--eval-batch-size")
    rnd = invoke(*base, "--max-steps", "1", "--init", "random", "-o", tmp_path / "r")
    assert rnd.exit_code == 0, rnd.stderr
    with open_store(tmp_path / "r" / "eval.h5") as st:
        assert st.provenance()["init"] == "random"
    one_line_error(invoke(*base, "--init", "zeros", "-o", tmp_path / "z"), 3, "--init")


# --------------------------------------------------------------------------- framenet (dependency mode, embedded model)

DEPS = """# sent_id = a
1	the	the	DET	_	_	2	det	_	_
2	report	report	NOUN	_	_	4	nsubj:pass	_	_
3	was	be	AUX	_	_	4	aux:pass	_	_
4	written	write	VERB	_	_	0	root	_	_
5	by	by	ADP	_	_	7	case	_	_
6	the	the	DET	_	_	7	det	_	_
7	staff	staff	NOUN	_	_	4	obl	_	_
8	.	.	PUNCT	_	_	4	punct	_	_

# sent_id = c
1	dogs	dog	NOUN	_	_	2	nsubj	_	_
2	bark	bark	VERB	_	_	0	root	_	_
3	.	.	PUNCT	_	_	2	punct	_	_

# sent_id = b
1	a	a	DET	_	_	2	det	_	_
2	dog	dog	NOUN	_	_	3	nsubj	_	_
3	barked	bark	VERB	_	_	0	root	_	_
4	loudly	loudly	ADV	_	_	3	advmod	_	_
5	at	at	ADP	_	_	7	case	_	_
6	the	the	DET	_	_	7	det	_	_
7	mailman	mailman	NOUN	_	_	3	obl	_	_
8	.	.	PUNCT	_	_	3	punct	_	_

"""


@covers("framenet", "--base-relations", "--top", "--max-length")
def test_dependency_options(tmp_path):
    p = tmp_path / "d.conllu"
    p.write_text(DEPS)
    base = ["framenet", "--conllu", p, "--min-count", "1", "--format", "json"]
    full = {r["relation"] for r in rows(invoke(*base, "-o", tmp_path / "a.h5", "--table", "relations"))}
    merged = {r["relation"] for r in rows(invoke(*base, "--base-relations", "-o", tmp_path / "b.h5", "--table", "relations"))}
    assert "nsubj:pass" in full and "nsubj:pass" not in merged and "nsubj" in merged
    assert len(rows(invoke(*base, "--top", "4", "-o", tmp_path / "c.h5", "--table", "heads"))) == 4
    short = invoke(*base, "--max-length", "6", "-o", tmp_path / "s.h5", "--table", "relations")
    all_arcs = {r["relation"]: r["arcs"] for r in rows(invoke(*base, "-o", tmp_path / "l.h5", "--table", "relations"))}
    short_arcs = {r["relation"]: r["arcs"] for r in rows(short)}
    assert sum(short_arcs.values()) < sum(all_arcs.values()) and "longer than --max-length 6" in short.stderr


@covers("framenet", "--core-definition", "--rank-by", "--baseline-samples", "--examples", "--seed", "--max-offset")
def test_framenet_options(tmp_path):
    from test_framenet_cli import write_release

    root = write_release(tmp_path / "fn")
    base = ["framenet", "--framenet", root, "--min-distance", "0", "--max-sentence-tokens", "0", "--format", "json"]
    ex = rows(invoke(*base, "--examples", "1", "-o", tmp_path / "e.h5", "--table", "examples"))
    assert len(ex) == 1
    fe = invoke(*base, "-o", tmp_path / "f.h5", "--table", "heads")
    tg = invoke(*base, "--rank-by", "target-to-fe", "-o", tmp_path / "t.h5", "--table", "heads")
    assert rows(fe) and rows(tg)
    assert config(tmp_path / "t.h5", "framenet")["rank_by"] == "target-to-fe"
    assert [r["head"] for r in rows(fe)] != [r["head"] for r in rows(tg)] or list(rows(fe)[0]) != list(rows(tg)[0])
    s1 = invoke(*base, "--baseline-samples", "5", "--seed", "1", "-o", tmp_path / "s1.h5", "--table", "heads")
    s2 = invoke(*base, "--baseline-samples", "5", "--seed", "2", "-o", tmp_path / "s2.h5", "--table", "heads")
    assert config(tmp_path / "s1.h5", "framenet")["baseline_samples"] == 5
    assert [r["baseline p99"] for r in rows(s1)] != [r["baseline p99"] for r in rows(s2)]
    near = rows(invoke(*base, "--max-offset", "1", "-o", tmp_path / "o.h5", "--table", "heads"))
    assert {abs(int(r["offset k"])) for r in near} <= {1} and rows(fe) != near
    cs = invoke(*base, "--core-definition", "coreset", "-o", tmp_path / "cs.h5")
    one_line_error(cs, 3, "no link survived")  # the test release declares no FEcoreSets: nothing is core under that definition
    one_line_error(invoke(*base, "--core-definition", "all", "-o", tmp_path / "x.h5"), 3, "--core-definition")
    one_line_error(invoke(*base, "--rank-by", "sideways", "-o", tmp_path / "y.h5"), 3, "--rank-by")
