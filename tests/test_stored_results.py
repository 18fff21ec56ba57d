"""What the jobs store, checked against an independent computation in the test (a hand-worked example, or the
quantity's definition written out here), so that a regression in the job layer (a sign, a metric, a name, a
count, a threshold) fails a test. Each test names the mutation of issue 32 it was proven against."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

from bertsecrets_cli.analysis import ablation as A
from bertsecrets_cli.analysis import patterns as P
from bertsecrets_cli.store import open_store
from bertsecrets_cli.tokens import CLS, is_punctuation_token

from helpers import strengthen


# ------------------------------------------------------------------------------------------------
# independent references, written from the definitions


def js_bits(p: np.ndarray, q: np.ndarray) -> float:
    """Jensen-Shannon divergence (base 2) of two distributions: the mean KL of each to their midpoint."""
    m = (p + q) / 2

    def kl(x: np.ndarray, y: np.ndarray) -> float:
        nz = x > 0
        return float(np.sum(x[nz] * np.log2(x[nz] / y[nz])))

    return 0.5 * kl(p, m) + 0.5 * kl(q, m)


def f1_positive(pred: np.ndarray, gold: np.ndarray) -> float:
    tp = int(np.sum((pred == 1) & (gold == 1)))
    fp = int(np.sum((pred == 1) & (gold == 0)))
    fn = int(np.sum((pred == 0) & (gold == 1)))
    return 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0


def mcc(pred: np.ndarray, gold: np.ndarray) -> float:
    tp = float(np.sum((pred == 1) & (gold == 1)))
    tn = float(np.sum((pred == 0) & (gold == 0)))
    fp = float(np.sum((pred == 1) & (gold == 0)))
    fn = float(np.sum((pred == 0) & (gold == 1)))
    den = np.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    return (tp * tn - fp * fn) / den if den else 0.0


def pearson(x: np.ndarray, y: np.ndarray) -> float:
    x, y = np.asarray(x, float) - np.mean(x), np.asarray(y, float) - np.mean(y)
    return float(np.sum(x * y) / np.sqrt(np.sum(x * x) * np.sum(y * y)))


METRIC = {"mrpc": f1_positive, "cola": mcc, "stsb": pearson}


# ------------------------------------------------------------------------------------------------
# diff: B - A, and JS divergence of row-normalised maps for quantities whose rows are not distributions


@pytest.fixture(scope="module")
def two_models(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The same 5 demo sentences through two tiny BERTs of different (strengthened) random weights, with weights and norms."""
    from transformers import AutoModel

    from bertsecrets_cli.jobs.extract import DataOptions, ExtractOptions, run_extract

    from conftest import build_tiny_model

    d = tmp_path_factory.mktemp("two-models")
    stores = []
    for seed in (0, 1):
        model = build_tiny_model(d / f"m{seed}", seed=seed)
        m = AutoModel.from_pretrained(model)
        strengthen(m, seed=seed)
        m.save_pretrained(model)
        out = d / f"s{seed}.h5"
        run_extract(ExtractOptions(model=str(model), data=DataOptions(task="sst2", limit=5), max_length=24, device="cpu", quiet=True,
                                   quantities=("weights", "norms")), out, command="test")
        stores.append(out)
    return stores[0], stores[1]


def _cls_mass(path: Path) -> np.ndarray:
    """[L, H] mean over examples of the mean over query rows of the attention on the [CLS] column, from the maps."""
    with open_store(path) as st:
        per = []
        for i in range(st.n_examples):
            att = st.attention(i).astype(np.float64)
            (c,) = np.nonzero(st.tokens(i).special == CLS)[0]
            per.append(att[..., c].mean(-1))
    return np.mean(per, axis=0)


def test_diff_stores_b_minus_a_of_each_per_head_quantity(two_models: tuple[Path, Path], tmp_path: Path) -> None:
    """Mutation: delta_* written as A - B. Same examples in both stores, so this holds with or without pairing."""
    from bertsecrets_cli.jobs.diff import DiffOptions, run_diff

    a, b = two_models
    expected = _cls_mass(b) - _cls_mass(a)
    assert np.abs(expected).max() > 0.01  # two different models: a sign error cannot hide
    out = tmp_path / "d.h5"
    res = run_diff(a, b, out, DiffOptions(quiet=True))
    with open_store(out, kind="diff") as st:
        stored = st.heads()["delta_stat_cls"].values
    np.testing.assert_allclose(stored, expected, atol=2e-3)
    np.testing.assert_allclose(res.deltas["delta_stat_cls"], expected, atol=2e-3)
    rev = run_diff(b, a, None, DiffOptions(quiet=True))
    np.testing.assert_allclose(rev.deltas["delta_stat_cls"], -expected, atol=2e-3)


def test_diff_js_divergence_of_norms_is_taken_on_rows_normalised_to_sum_one(two_models: tuple[Path, Path], tmp_path: Path) -> None:
    """Mutation: JS divergence computed on raw norms. Reference: JS of each pair of rows divided by their sums."""
    from bertsecrets_cli.jobs.diff import DiffOptions, run_diff

    a, b = two_models
    with open_store(a, quantity="norms") as sa, open_store(b, quantity="norms") as sb:
        L, H = sa.n_layers, sa.n_heads
        per = np.zeros((sa.n_examples, L, H))
        for i in range(sa.n_examples):
            ma, mb = sa.attention(i).astype(np.float64), sb.attention(i).astype(np.float64)
            assert not np.allclose(ma.sum(-1), 1.0, atol=1e-2)  # raw norms: rows are not distributions
            for l in range(L):
                for h in range(H):
                    rows = [js_bits(p / p.sum(), q / q.sum()) for p, q in zip(ma[l, h], mb[l, h])]
                    per[i, l, h] = np.mean(rows)
    expected = per.mean(0)
    out = tmp_path / "dn.h5"
    res = run_diff(a, b, out, DiffOptions(quiet=True, quantity="norms"))
    np.testing.assert_allclose(res.js_divergence, expected, atol=2e-3)
    with open_store(out, kind="diff") as st:
        np.testing.assert_allclose(st.heads()["js_divergence"].values, expected, atol=2e-3)
    # a store against itself with every norm doubled: the same distributions, so JS is 0
    doubled = tmp_path / "doubled.h5"
    shutil.copy(b, doubled)
    with h5py.File(doubled, "r+") as f:
        f["norms/maps"][...] = f["norms/maps"][...] * 2
    same = run_diff(b, doubled, None, DiffOptions(quiet=True, quantity="norms"))
    np.testing.assert_allclose(same.js_divergence, 0.0, atol=1e-4)


# ------------------------------------------------------------------------------------------------
# merge: per-head means of a token statistic skip the examples without that token


@pytest.fixture(scope="module")
def punct_shards(tmp_path_factory: pytest.TempPathFactory, tiny_model_factory) -> tuple[Path, list[Path]]:
    """Six sentences, three of them without any punctuation, extracted in two shards."""
    from bertsecrets_cli.jobs.extract import DataOptions, ExtractOptions, run_extract

    d = tmp_path_factory.mktemp("punct")
    texts = ["the cat sat on the mat", "a fine day , really .", "no punctuation here at all", "what ? why !",
             "plain words only", "it works ; mostly ."]
    data = d / "data.jsonl"
    data.write_text("".join(json.dumps({"id": f"p{i}", "sentence": t, "label": i % 2}) + "\n" for i, t in enumerate(texts)))
    model = str(tiny_model_factory("bert"))
    parts = []
    for i in range(2):
        out = d / f"s{i}.h5"
        run_extract(ExtractOptions(model=model, data=DataOptions(task="sst2", data=str(data)), device="cpu", quiet=True, shard=f"{i}/2"),
                    out, command="test")
        parts.append(out)
    return d, parts


def test_merged_punctuation_mass_skips_examples_without_punctuation(punct_shards: tuple[Path, list[Path]]) -> None:
    """Mutation: merged means count an example without the token as 0 (the demo data always has punctuation)."""
    from bertsecrets_cli.store.merge import merge_attention_stores

    d, parts = punct_shards
    merged = d / "merged.h5"
    merge_attention_stores(parts, merged, force=True)
    per, without = [], 0
    with open_store(merged) as st:
        for i in range(st.n_examples):
            cols = [k for k, t in enumerate(st.tokens(i).text) if is_punctuation_token(t)]
            if not cols:
                without += 1
                continue
            per.append(st.attention(i).astype(np.float64)[..., cols].sum(-1).mean(-1))
        stored = st.heads()["stat_punct"].values
    assert without == 3 and len(per) == 3
    np.testing.assert_allclose(stored, np.mean(per, axis=0), atol=2e-3)


# ------------------------------------------------------------------------------------------------
# classify: each pattern_share_<type> grid is the share of that type, under that type's name


@pytest.mark.slow
def test_each_pattern_share_grid_holds_its_own_types_share(demo_store: Path, tmp_path: Path) -> None:
    """Mutation: the grids written under the next type's name. Reference: the rules applied here to each map."""
    from bertsecrets_cli.jobs.classify import ClassifyOptions, run_classify

    out = tmp_path / "pat.h5"
    run_classify(demo_store, out, ClassifyOptions(quiet=True))
    counts = None
    with open_store(demo_store) as st:
        for i in range(st.n_examples):
            tk = st.tokens(i)
            labels = P.classify_features(P.map_features(st.attention(i), tk.special, tk.type_ids))
            one_hot = labels[..., None] == np.arange(len(P.CLASSES))
            counts = one_hot.astype(int) if counts is None else counts + one_hot
        n = st.n_examples
    with open_store(out) as st:
        heads = st.heads()
        for c, slug in enumerate(P.SLUGS):
            np.testing.assert_allclose(heads[f"pattern_share_{slug}"].values, counts[..., c] / n, atol=1e-12, err_msg=slug)
    # the demo store holds more than one type, so a shifted name cannot match by chance
    assert sum(counts[..., c].any() for c in range(len(P.CLASSES))) >= 2


# ------------------------------------------------------------------------------------------------
# pure analysis: the block threshold, ties in the probe, the noise flag and the 95% level


def _two_sentence_map(within: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """[CLS] a b c d [SEP] e f g h [SEP]: every ordinary query puts 0.1 on [CLS], 0 on neighbours,
    ``within`` x 0.9 on far tokens of its own sentence and the rest on far tokens of the other."""
    special = np.array([1, 0, 0, 0, 0, 2, 0, 0, 0, 0, 2])
    type_ids = np.array([0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1])
    T = len(special)
    att = np.zeros((T, T))
    att[special > 0, 0] = 1.0
    for i in np.flatnonzero(special == 0):
        att[i, 0] = 0.1
        own = [j for j in range(T) if special[j] == 0 and type_ids[j] == type_ids[i] and abs(i - j) > 1]
        other = [j for j in range(T) if special[j] == 0 and type_ids[j] != type_ids[i] and abs(i - j) > 1]
        att[i, own] = within * 0.9 / len(own)
        att[i, other] = (1 - within) * 0.9 / len(other)
    return att, special, type_ids


def test_block_rule_holds_its_threshold_on_a_handmade_map() -> None:
    """Mutation: the block rule ignores block_min. Hand-worked: rest = 0.9 (>= 0.4), block = the within share."""
    for within, expected in ((0.95, P.BLOCK), (0.85, P.BLOCK), (0.7, P.HETEROGENEOUS), (0.5, P.HETEROGENEOUS)):
        att, special, type_ids = _two_sentence_map(within)
        labels, feats = P.classify_maps(att[None], special, type_ids)
        assert feats[0, P.FEATURES.index("block")] == pytest.approx(within, abs=1e-6)
        assert feats[0, P.FEATURES.index("rest")] == pytest.approx(0.9, abs=1e-6)
        assert labels[0] == expected, within
    # and the threshold is read from the Thresholds given, not a constant
    att, special, type_ids = _two_sentence_map(0.7)
    assert P.classify_maps(att[None], special, type_ids, P.Thresholds(block_min=0.6))[0][0] == P.BLOCK


def test_ties_count_against_the_probe_so_a_zero_probe_scores_zero() -> None:
    """Mutation: ties no longer count against the probe (a zero probe would score 1.0)."""
    from bertsecrets_cli.analysis.probe import Probe, ProbeData, uas

    # two dependents with 3 candidates each; gold rows 0 and 2; one feature
    x = np.array([[0.5], [0.5], [0.1], [0.2], [0.1], [0.9]], np.float32)
    data = ProbeData(x, np.zeros((6, 0), np.float32), np.zeros((6, 0), np.float32), np.array([0, 3, 6]), np.array([0, 2]), np.zeros(2, bool))
    zero = Probe(np.zeros(1), np.zeros((1, 0)), np.zeros((1, 0)))
    assert uas(zero, data) == 0.0  # every candidate ties
    one = Probe(np.ones(1), np.zeros((1, 0)), np.zeros((1, 0)))
    assert uas(one, data) == 0.5  # dependent 1: gold ties with another candidate; dependent 2: unique maximum


def test_an_interval_touching_zero_is_flagged_as_noise() -> None:
    """Mutation: the noise flag made strict. An interval with an end at exactly 0 covers 0."""
    from bertsecrets_cli.jobs.ablate import _noise

    for lo, hi in ((0.0, 0.05), (-0.05, 0.0), (-0.01, 0.02)):
        assert A.is_noise(lo, hi) and _noise(lo, hi) == "noise?"
    assert A.covers_zero(np.array([0.0, -0.05, -0.01, 0.01]), np.array([0.05, 0.0, 0.02, 0.03])).tolist() == [True, True, True, False]
    assert not A.is_noise(0.01, 0.03) and _noise(0.01, 0.03) == ""
    assert _noise(0.0, 0.0) == "no change"


def test_bootstrap_interval_is_the_2_5th_to_97_5th_percentile_of_the_paired_deltas() -> None:
    """Mutation: the '95%' interval computed at 90%. Hand-worked resamples: resample r holds example 0 r times,
    the variant fixes example 0 only, so its accuracy delta on resample r is r / 40, for r = 0..40."""
    n = 40
    gold = np.ones(n, int)
    base = np.ones(n, int)
    base[0] = 0
    variant = np.ones(n, int)
    idx = np.array([[0] * r + [1] * (n - r) for r in range(n + 1)])
    acc = lambda p, g: float(np.mean(p == g))  # noqa: E731
    r = A.paired_bootstrap("accuracy", acc, base, variant[None], gold, idx)
    # numpy's default (linear) percentile of 41 sorted values k/40: the q-th percentile sits at position q/100 * 40
    assert r.delta[0] == pytest.approx(1 / 40)
    assert r.low[0] == pytest.approx(0.025 * 40 / 40) and r.high[0] == pytest.approx(0.975 * 40 / 40)
    assert r.low[0] == pytest.approx(1 / 40) and r.high[0] == pytest.approx(39 / 40)


# ------------------------------------------------------------------------------------------------
# ablate: the per-head grids and the greedy search use the task's main metric (F1, MCC, Pearson)


def _classifier(tiny_model_factory, tmp_path_factory, num_labels: int) -> Path:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    src = tiny_model_factory("bert", classifier=True, num_labels=num_labels)
    model = AutoModelForSequenceClassification.from_pretrained(src)
    strengthen(model)
    out = tmp_path_factory.mktemp(f"strong-{num_labels}")
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(src).save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def classifiers(tiny_model_factory, tmp_path_factory) -> dict[int, Path]:
    return {k: _classifier(tiny_model_factory, tmp_path_factory, k) for k in (1, 2)}


def _predictions(r, logits: np.ndarray) -> np.ndarray:
    return logits[:, 0] if r.task == "stsb" else logits.argmax(-1)


@pytest.mark.slow
@pytest.mark.parametrize("task", ["mrpc", "cola", "stsb"])
def test_per_head_grids_use_the_tasks_main_metric(task: str, classifiers: dict[int, Path], tmp_path: Path) -> None:
    """Mutation: grids of the last metric (accuracy, Spearman) instead of the main one (F1, MCC, Pearson)."""
    from bertsecrets_cli.jobs.ablate import AblateOptions, read_ablation, run_ablate
    from bertsecrets_cli.jobs.extract import DataOptions

    out = tmp_path / "a.h5"
    run_ablate(AblateOptions(model=str(classifiers[1 if task == "stsb" else 2]), data=DataOptions(task=task, limit=24), bootstrap=20,
                             device="cpu", quiet=True), out, command="test")
    r = read_ablation(out)
    metric = METRIC[task]
    gold = r.labels
    base = metric(_predictions(r, r.base_logits), gold)
    assert r.base_metrics[0] == pytest.approx(base, abs=1e-6)
    with open_store(out, kind="ablation") as st:
        heads = st.heads()
        score, delta = heads["ablation_score"].values, heads["ablation_delta"].values
        assert st.attrs("heads/ablation_score")["metric"] == r.metric_names[0]
    expected = np.full(score.shape, np.nan)
    for j, (name, kind) in enumerate(zip(r.names, r.kinds)):
        if kind == "head":
            l, h = int(name[1]) - 1, int(name[3]) - 1
            expected[l, h] = metric(r.predictions[j], gold)
    assert np.isfinite(expected).sum() == 8
    np.testing.assert_allclose(score, expected, atol=1e-6)
    np.testing.assert_allclose(delta, expected - base, atol=1e-6)
    # the last metric differs from the main one somewhere, so a grid of it would fail above
    assert not np.allclose(r.metrics[:, 0], r.metrics[:, -1])


@pytest.mark.slow
def test_greedy_search_scores_the_main_metric_from_the_baseline(classifiers: dict[int, Path], tmp_path: Path) -> None:
    """Mutations: greedy on the last metric; greedy's first step compared with 0 instead of the baseline."""
    from bertsecrets_cli.jobs.ablate import AblateOptions, read_ablation, run_ablate
    from bertsecrets_cli.jobs.extract import DataOptions

    out = tmp_path / "g.h5"
    run_ablate(AblateOptions(model=str(classifiers[2]), data=DataOptions(task="mrpc", limit=24), bootstrap=20, greedy=True, sweep=False,
                             device="cpu", quiet=True), out, command="test")
    r = read_ablation(out)
    g = r.greedy
    base = f1_positive(r.base_logits.argmax(-1), r.labels)
    singles = [f1_positive(r.predictions[j], r.labels) for j, k in enumerate(r.kinds) if k == "head"]
    best = max(singles)
    if best > base:
        assert g.heads and g.score[0] == pytest.approx(best, abs=1e-9)
        assert g.gain[0] == pytest.approx(best - base, abs=1e-9)
        assert np.all(np.diff(np.concatenate([[base], g.score])) > 0)
    else:  # no single head beats the baseline: greedy must stop before its first step
        assert not g.heads and f"<= {base:.4f}" in g.stopped


def test_merged_statistic_sums_do_not_depend_on_the_block_size(punct_shards: tuple[Path, list[Path]]) -> None:
    """The shards' per-example statistics are summed block by block: one row at a time gives the same sums and
    counts as the whole array at once, NaN (no such token) left out, and appends every row in order."""
    from bertsecrets_cli.store import schema as S
    from bertsecrets_cli.store.merge import _concat_stats

    _, parts = punct_shards
    stores = [open_store(p) for p in parts]
    try:
        rows: list[np.ndarray] = []

        class Appender:
            def append(self, block: np.ndarray) -> None:
                rows.extend(block)

        sums, counts = _concat_stats(stores, S.STATS_PER_EXAMPLE, Appender(), block_rows=1)
        every = np.concatenate([st.stats()[1] for st in stores]).astype(np.float64)
    finally:
        for st in stores:
            st.close()
    assert len(rows) == len(every) == 6
    np.testing.assert_allclose(np.stack(rows), every, equal_nan=True)
    np.testing.assert_array_equal(counts, np.isfinite(every).sum(0))
    np.testing.assert_allclose(sums, np.nansum(every, axis=0), rtol=1e-6)
    assert (counts[..., 3] == 3).all()  # punctuation: only the three sentences that have some


def test_diff_table_of_a_quantity_no_example_has_is_blank_not_an_error() -> None:
    """stat_punct of stores without punctuation is NaN everywhere: its means are NaN and no head is named."""
    from bertsecrets_cli.jobs.diff import summary_tables

    nan = np.full((2, 3), np.nan)
    ok = np.arange(6.0).reshape(2, 3)
    (t,) = summary_tables(None, None, {"stat_punct": (nan, nan, ""), "stat_cls": (ok, ok + 1, "")}, 5, "cosine")
    rows = {r[0]: r for r in t.rows}
    assert all(np.isnan(x) for x in rows["stat_punct"][1:4])
    assert list(rows["stat_cls"][1:4]) == [2.5, 3.5, 1.0] and rows["stat_punct"][5] == ""


def test_pairing_refuses_a_duplicate_id_and_compares_only_shared_quantities() -> None:
    """Found by mutmut: a duplicate id in A went unnoticed when A and B hold different ids; a quantity only one
    store holds must be left out of B - A, not looked up in the other."""
    from types import SimpleNamespace

    from bertsecrets_cli.errors import InputError
    from bertsecrets_cli.jobs.diff import compare_quantities, pair_examples

    assert pair_examples(["a", "b", "c"], ["c", "a"], "A", "B") == ([0, 2], [1, 0])
    with pytest.raises(InputError, match="'a' occurs twice"):
        pair_examples(["a", "b", "a"], ["a", "b"], "A", "B")
    q = lambda v: SimpleNamespace(values=np.full((1, 2), v, np.float32), description="")  # noqa: E731
    got = compare_quantities({"stat_cls": q(0.25), "only_a": q(1.0)}, {"stat_cls": q(0.75), "only_b": q(2.0)})
    assert list(got) == ["stat_cls"]
    a, b, _ = got["stat_cls"]
    assert a.dtype == np.float64 and (b - a).tolist() == [[0.5, 0.5]]
