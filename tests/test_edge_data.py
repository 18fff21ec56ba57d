"""The edges real data has and the demo data does not: no [SEP]-like token, a single example, ties, ablations
where nothing moves, pattern types no head ever takes; plus labels pinned on the embedded model's real store
and the paper's reference numbers checked against the paper's own statements."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from bertsecrets_cli.analysis import patterns as P
from bertsecrets_cli.store import open_store
from bertsecrets_cli.tokens import CLS, NORMAL, SEP


# ------------------------------------------------------------------------------------------------
# no [SEP]-like token


def test_an_example_without_separator_or_classification_token() -> None:
    """A tokenizer that adds no special tokens: their masses are NaN (skipped in means), never 0, and no map is
    vertical by special tokens alone; a stripe on one ordinary token still counts as vertical."""
    import torch

    from bertsecrets_cli.analysis.stats import head_stats
    from bertsecrets_cli.analysis.token_features import token_attention, token_groups
    from bertsecrets_cli.model.batch_stats import batch_head_stats

    T = 5
    special = np.full(T, NORMAL)
    punct = np.array([False, False, False, False, True])
    att = np.zeros((1, 2, T, T))
    att[0, 0] = np.eye(T)  # each token on itself
    att[0, 1, :, 2] = 1.0  # every token on token 2: a stripe
    stats = head_stats(att, special, punct)
    assert np.isnan(stats[..., 1]).all() and np.isnan(stats[..., 2]).all()  # cls, sep
    np.testing.assert_allclose(stats[0, :, 3], [1 / T, 0.0])  # punct: the last token's column, mean over rows
    np.testing.assert_allclose(stats[0, :, 4], [1.0, 1 / T])  # self
    # the torch twin extract uses agrees, NaN included
    tb = batch_head_stats(torch.tensor(att[None]), torch.ones(1, T, dtype=torch.bool), torch.zeros(1, T, dtype=torch.bool),
                          torch.zeros(1, T, dtype=torch.bool), torch.tensor(punct[None]))
    np.testing.assert_allclose(tb[0], stats, atol=1e-6, equal_nan=True)
    labels, feats = P.classify_maps(att[0], special, np.zeros(T, int))
    assert (feats[:, P.FEATURES.index("special")] == 0).all() and np.isnan(feats[:, P.FEATURES.index("block")]).all()
    # head 1: the stripe is vertical (1.0) and rows 1, 2, 3 put it on a neighbour or themselves (3/5 diagonal): both
    assert feats[1, P.FEATURES.index("vertical")] == pytest.approx(1.0) and feats[1, P.FEATURES.index("diagonal")] == pytest.approx(0.6)
    assert labels.tolist() == [P.DIAGONAL, P.MIXED]
    groups = token_groups(["a", "b", "c", "d", "."], np.zeros((T, 2), int), special, np.zeros(T, int))
    tok = token_attention(att[0], groups)
    assert np.isnan(tok[:, 0]).all() and np.isnan(tok[:, 1]).all()  # cls, sep: absent


# ------------------------------------------------------------------------------------------------
# a single example


@pytest.fixture(scope="module")
def one_example(tmp_path_factory: pytest.TempPathFactory, tiny_model_factory) -> Path:
    from bertsecrets_cli.jobs.extract import DataOptions, ExtractOptions, run_extract

    out = tmp_path_factory.mktemp("one") / "one.h5"
    run_extract(ExtractOptions(model=str(tiny_model_factory("bert")), data=DataOptions(task="sst2", limit=1), device="cpu", quiet=True),
                out, command="test")
    return out


@pytest.mark.slow
def test_a_single_example_store_diffs_and_classifies(one_example: Path, tmp_path: Path) -> None:
    from bertsecrets_cli.jobs.classify import ClassifyOptions, run_classify
    from bertsecrets_cli.jobs.diff import DiffOptions, run_diff

    d = run_diff(one_example, one_example, tmp_path / "d.h5", DiffOptions(quiet=True))
    assert d.n_examples == 1
    np.testing.assert_allclose(d.cosine, 1.0, atol=1e-6)
    assert (d.js_divergence == 0).all()
    res = run_classify(one_example, tmp_path / "p.h5", ClassifyOptions(quiet=True))
    with open_store(one_example) as st:
        tk = st.tokens(0)
        labels = P.classify_features(P.map_features(st.attention(0), tk.special, tk.type_ids))
        stat_cls = st.heads()["stat_cls"].values
    with open_store(tmp_path / "p.h5") as st:
        for c, slug in enumerate(P.SLUGS):  # one example: each head's share is 1 for its label, 0 otherwise
            np.testing.assert_array_equal(st.heads()[f"pattern_share_{slug}"].values, (labels == c).astype(float))
    assert res.n_examples == 1 and np.isfinite(stat_cls).all()


@pytest.mark.slow
def test_two_one_example_shards_merge_into_their_mean(tiny_model_factory, tmp_path: Path) -> None:
    from bertsecrets_cli.jobs.extract import DataOptions, ExtractOptions, run_extract
    from bertsecrets_cli.store.merge import merge_attention_stores

    model = str(tiny_model_factory("bert"))
    parts = []
    for i in range(2):
        p = tmp_path / f"s{i}.h5"
        run_extract(ExtractOptions(model=model, data=DataOptions(task="sst2", limit=2), device="cpu", quiet=True, shard=f"{i}/2"), p, command="test")
        parts.append(p)
    cls = []
    for p in parts:
        with open_store(p) as st:
            assert st.n_examples == 1
            (c,) = np.nonzero(st.tokens(0).special == CLS)[0]
            cls.append(st.attention(0).astype(np.float64)[..., c].mean(-1))
    merge_attention_stores(parts, tmp_path / "m.h5")
    with open_store(tmp_path / "m.h5") as st:
        np.testing.assert_allclose(st.heads()["stat_cls"].values, np.mean(cls, axis=0), atol=2e-3)


# ------------------------------------------------------------------------------------------------
# ties


def test_majority_ties_go_to_the_earlier_type_and_shares_still_sum_to_one() -> None:
    counts = np.zeros((1, 3, 5), int)
    counts[0, 0] = [2, 2, 0, 0, 0]  # vertical = diagonal: vertical (earlier)
    counts[0, 1] = [0, 0, 0, 3, 3]  # block = heterogeneous: block
    counts[0, 2] = [0, 0, 0, 0, 0]  # never seen: shares all 0, majority the first type with share 0
    maj, share = P.majority(counts)
    assert maj.tolist() == [[P.VERTICAL, P.BLOCK, P.VERTICAL]] and share.tolist() == [[0.5, 0.5, 0.0]]
    np.testing.assert_allclose(P.head_shares(counts).sum(-1), [[1.0, 1.0, 0.0]])


def test_equal_ablation_deltas_rank_in_plan_order() -> None:
    """Heads whose removal changes the score by the same amount are listed in the plan's order (L1H1 first)."""
    from bertsecrets_cli.jobs.ablate import AblationResult, ablation_tables

    L, H = 1, 3
    masks = np.zeros((3, L, H), bool)
    for j in range(3):
        masks[j, 0, j] = True
    delta = np.array([[0.1], [0.1], [-0.2]])
    r = AblationResult(n_layers=L, n_heads=H, mode="uniform", task="sst2", metric_names=["accuracy"], ids=["a"], labels=np.array([1.0]),
                       base_metrics=np.array([0.5]), base_logits=np.zeros((1, 2)), names=["L1H1", "L1H2", "L1H3"], kinds=["head"] * 3,
                       index=np.arange(3), n_variants_total=3, masks=masks, metrics=0.5 + delta, delta=delta, ci_low=delta - 0.05,
                       ci_high=delta + 0.05, predictions=None, bootstrap=10, bootstrap_seed=0, engine="fast", model={"name": "m"}, provenance={})
    tables = {t.name: t for t in ablation_tables(r)}
    # only heads beyond noise are listed (issue 27): the two equal helping heads in plan order, the hurting one alone
    assert [row[0] for row in tables["helps"].rows] == ["L1H1", "L1H2"]
    assert [row[0] for row in tables["hurts"].rows] == ["L1H3"]


# ------------------------------------------------------------------------------------------------
# ablations where nothing moves (all noise), and heads that never win


@pytest.mark.slow
def test_an_ablation_that_changes_no_prediction_reports_no_change_and_greedy_takes_no_step(tiny_model_factory, tmp_path: Path) -> None:
    """An untrained tiny classifier (0.02 init): disabling a head moves the logits too little to flip a prediction,
    so every delta is exactly 0 with a zero-width interval, no head is ranked as helping or hurting, every layer row
    says "no change", and greedy stops before step 1."""
    from bertsecrets_cli.jobs.ablate import AblateOptions, ablation_tables, read_ablation, run_ablate
    from bertsecrets_cli.jobs.extract import DataOptions

    out = tmp_path / "flat.h5"
    run_ablate(AblateOptions(model=str(tiny_model_factory("bert", classifier=True)), data=DataOptions(task="sst2", limit=12), bootstrap=30,
                             greedy=True, device="cpu", quiet=True), out, command="test")
    r = read_ablation(out)
    base_pred = r.base_logits.argmax(-1)
    assert all((p == base_pred).all() for p in r.predictions)  # the premise, checked
    assert (r.delta == 0).all() and (r.ci_low == 0).all() and (r.ci_high == 0).all()
    tables = {t.name: t for t in ablation_tables(r)}
    assert {row[-1] for row in tables["layers"].rows} == {"no change"}
    for name in ("helps", "hurts"):  # no head is listed as helping or hurting, and the table says why
        assert tables[name].rows == [] and tables[name].caption.startswith("none: every head's interval covers 0")
    assert r.greedy is not None and r.greedy.heads == [] and "no single further head improves" in r.greedy.stopped


@pytest.mark.slow
def test_a_pattern_type_no_map_takes_has_share_zero_on_every_head(demo_store: Path) -> None:
    """One-sentence inputs: block never wins, on any head; the summary says why."""
    from bertsecrets_cli.jobs.classify import ClassifyOptions, run_classify

    res = run_classify(demo_store, None, ClassifyOptions(quiet=True))
    assert (res.head_shares[..., P.BLOCK] == 0).all() and res.two_segments == 0
    summary = {row[0]: row[1] for row in res.tables[2].rows}
    assert "block needs two sentences" in summary["two-sentence examples"]


# ------------------------------------------------------------------------------------------------
# pinned on a real store: the embedded all-MiniLM-L6-v2 on the 24 demo sentences


@pytest.mark.slow
def test_pattern_labels_and_shares_pinned_on_the_embedded_models_demo_store(demo_store: Path) -> None:
    """Three heads are vertical on all 24 sentences with a wide margin: their [CLS]/[SEP] mass read off the maps
    is >= 0.5 in every example and their diagonal mass small. Overall shares pinned as measured (2026-12)."""
    from bertsecrets_cli.jobs.classify import ClassifyOptions, run_classify

    res = run_classify(demo_store, None, ClassifyOptions(quiet=True))
    vertical_heads = [(2, 7), (2, 9), (4, 5)]  # L3H8, L3H10, L5H6
    with open_store(demo_store) as st:
        for i in range(st.n_examples):
            att = st.attention(i).astype(np.float64)
            sp = np.isin(st.tokens(i).special, (CLS, SEP))
            for l, h in vertical_heads:
                assert att[l, h][:, sp].sum(-1).mean() >= 0.5
    maj, share = P.majority(res.counts)
    for l, h in vertical_heads:
        assert maj[l, h] == P.VERTICAL and share[l, h] == 1.0 and res.head_shares[l, h, P.VERTICAL] == 1.0
    # overall shares of the 24 x 72 maps (vertical, diagonal, vertical+diagonal, block, heterogeneous)
    np.testing.assert_allclose(res.overall_shares, [0.488, 0.013, 0.126, 0.0, 0.373], atol=0.01)


# ------------------------------------------------------------------------------------------------
# the paper's reference numbers


def test_kovaleva_reference_numbers_agree_with_the_papers_own_statements() -> None:
    """The figure read-outs the reproduce index compares with must agree with what the paper's text states."""
    from bertsecrets_cli.reference import paper_numbers

    ref = paper_numbers()
    assert ref["model"] == "bert-base-uncased"
    # sec. 4.3: "the last two layers change most for every task but QQP" (L1, L10, L11, L12 columns)
    cos = {t: v for t, v in ref["cosine_per_layer_figure"].items() if not t.startswith("_")}
    assert ref["cosine_per_layer_figure"]["_columns"] == "L1, L10, L11, L12"
    last_two_lowest = {t for t, (l1, l10, l11, l12) in cos.items() if max(l11, l12) < min(l1, l10)}
    assert last_two_lowest == set(cos) - {"QQP"}
    assert all(0 < x <= 1 for v in cos.values() for x in v)
    # sec. 4.6: the best single head gains +0.1 (STS-B) to +1.2 points (MRPC); Fig. 8's MRPC best head agrees
    abl = ref["ablation_figure"]
    gain = 100 * (abl["MRPC"]["best_head"][1] - abl["MRPC"]["base"])
    assert gain == pytest.approx(ref["ablation_stated"]["best_single_head_gain_points"]["MRPC"], abs=0.15)
    for task, row in abl.items():
        if task == "worst_layer_points":
            continue
        assert row["worst_head"][1] < row["base"] < row["best_head"][1], task  # every task has a head whose removal helps
        assert row["base"] == pytest.approx(ref["baseline_scores_figure"][task], abs=1e-3), task
    # sec. 4.1: heterogeneous share 32% (MRPC) .. 61% (QQP) stated; shares of two types never exceed 100%
    shares = {t: v for t, v in ref["pattern_shares_figure_percent"].items() if not t.startswith("_")}
    assert ref["pattern_shares_figure_percent"]["_columns"] == "heterogeneous, vertical"
    assert all(0 <= h and 0 <= v and h + v <= 100 for h, v in shares.values())
    stated = ref["pattern_shares_stated"]
    assert min(shares, key=lambda t: shares[t][0]) == "MRPC" and max(shares, key=lambda t: shares[t][0]) in ("QQP", "MNLI")
    assert stated["heterogeneous_min_percent"] < stated["heterogeneous_max_percent"]
    assert json.dumps(ref)  # plain JSON, as the reproduce index reads it


def test_merging_a_single_store_gives_its_own_means(one_example: Path, tmp_path: Path) -> None:
    """One input is a legal merge (a 0/1 shard, or a store re-packed): the means are its own, to float32 rounding."""
    from bertsecrets_cli.store.merge import merge_attention_stores

    merge_attention_stores([one_example], tmp_path / "m.h5", copy=True)
    with open_store(one_example) as a, open_store(tmp_path / "m.h5") as m:
        for name in ("stat_cls", "stat_sep", "stat_entropy"):
            np.testing.assert_allclose(m.heads()[name].values, a.heads()[name].values, rtol=1e-6)
        assert m.n_examples == 1
