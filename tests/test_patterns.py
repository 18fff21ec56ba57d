"""The default pattern rules, their features, the scores, and the token statistics of paper sec. 4.4."""

from __future__ import annotations

import numpy as np
import pytest

from bertsecrets_cli.analysis import patterns as P
from bertsecrets_cli.analysis.synthetic import DEFAULT_NOISE, generate
from bertsecrets_cli.analysis.token_features import NEGATION_WORDS, TOKEN_FEATURES, token_attention, token_groups, words
from bertsecrets_cli.model.tokenize import CLS, NORMAL, SEP


def layout(T: int, pair_at: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    special = np.full(T, NORMAL, np.int8)
    special[0], special[-1] = CLS, SEP
    type_ids = np.zeros(T, np.int8)
    if pair_at is not None:
        special[pair_at] = SEP
        type_ids[pair_at + 1 :] = 1
    return special, type_ids


def rows_on(T: int, cols: dict[int, float]) -> np.ndarray:
    """Every row puts the given mass on the given columns, the rest uniformly."""
    rest = 1 - sum(cols.values())
    m = np.full((T, T), rest / T)
    for j, w in cols.items():
        m[:, j] += w
    return m


def label(att: np.ndarray, special: np.ndarray, type_ids: np.ndarray, **thr: float) -> str:
    t = P.Thresholds(**thr) if thr else P.THRESHOLDS
    return P.CLASSES[int(P.classify_maps(att, special, type_ids, t)[0])]


def test_default_rules_label_generated_maps_with_at_least_95_percent_accuracy() -> None:
    s = generate(1000, noise=DEFAULT_NOISE, seed=7)
    pred = np.array([P.classify_maps(m, sp, ty)[0] for m, sp, ty in zip(s.maps, s.special, s.type_ids)])
    sc = P.class_scores(pred, s.labels)
    assert sc["accuracy"] >= 0.95, sc["confusion"]
    assert (sc["f1"] >= 0.9).all(), sc["f1"]  # no class is sacrificed for the others


def test_each_rule_on_a_handmade_map() -> None:
    T = 12
    sp, ty = layout(T)
    assert label(rows_on(T, {0: 0.45, T - 1: 0.4}), sp, ty) == "vertical"
    prev = np.zeros((T, T))
    prev[np.arange(1, T), np.arange(T - 1)] = 0.8
    prev[0, 0] = 0.8
    prev += 0.2 / T
    assert label(prev, sp, ty) == "diagonal"
    assert label(0.5 * prev + 0.5 * rows_on(T, {0: 0.8}), sp, ty) == "vertical+diagonal"
    assert label(np.full((T, T), 1 / T), sp, ty) == "heterogeneous"


def test_block_needs_two_sentences_and_attention_inside_each() -> None:
    T, mid = 20, 9
    sp, ty = layout(T, pair_at=mid)
    own = (ty[:, None] == ty[None, :]) & (sp == NORMAL)[None, :]
    block = own / own.sum(1, keepdims=True)
    assert label(block, sp, ty) == "block"
    f = P.map_features(block, sp, ty)
    assert f[P.FEATURES.index("block")] == pytest.approx(1.0)
    # the same map read as one sentence: no block feature, so not block
    sp1, ty1 = layout(T)
    assert np.isnan(P.map_features(block, sp1, ty1)[P.FEATURES.index("block")])
    assert label(block, sp1, ty1) != "block"
    # uniform attention over both sentences is not block
    assert label(np.full((T, T), 1 / T), sp, ty) == "heterogeneous"


def test_a_stripe_on_one_ordinary_token_counts_as_vertical() -> None:
    T = 14
    sp, ty = layout(T)
    stripe = rows_on(T, {T - 2: 0.45, 0: 0.1})  # e.g. the final '.'
    f = P.map_features(stripe, sp, ty)
    assert f[P.FEATURES.index("special")] < P.THRESHOLDS.vertical_min <= f[P.FEATURES.index("vertical")]
    assert label(stripe, sp, ty) == "vertical"
    assert label(stripe, sp, ty, stripe_min=0.9) == "heterogeneous"  # the threshold decides


def test_thresholds_are_the_only_numbers_the_rules_use() -> None:
    T = 12
    sp, ty = layout(T)
    m = rows_on(T, {0: 0.6})
    assert label(m, sp, ty) == "vertical"
    assert label(m, sp, ty, vertical_min=0.9) == "heterogeneous"
    text = " ".join(P.rules_text(P.Thresholds(vertical_min=0.77, block_min=0.66)).values())
    assert "0.77" in text and "0.66" in text
    assert set(P.rules_text()) == set(P.CLASSES)


def test_features_of_all_heads_at_once_equal_features_map_by_map() -> None:
    rng = np.random.default_rng(0)
    T = 17
    sp, ty = layout(T, pair_at=8)
    att = rng.dirichlet(np.full(T, 0.3), size=(3, 4, T)).astype(np.float32)
    together = P.map_features(att, sp, ty)
    one_by_one = np.stack([[P.map_features(att[l, h], sp, ty) for h in range(4)] for l in range(3)])
    np.testing.assert_allclose(together, one_by_one, rtol=1e-5, atol=1e-6)
    assert together.shape == (3, 4, len(P.FEATURES))


def test_class_scores_macro_f1_ignores_classes_nobody_annotated() -> None:
    gold = np.array([0, 0, 1, 1, 4])
    pred = np.array([0, 1, 1, 1, 4])
    sc = P.class_scores(pred, gold)
    assert sc["accuracy"] == pytest.approx(0.8)
    assert sc["confusion"][0, 1] == 1 and sc["confusion"].sum() == 5
    f1_0, f1_1 = 2 * 1 / (2 + 1), 2 * 2 / (2 + 3)
    assert sc["macro_f1"] == pytest.approx((f1_0 + f1_1 + 1.0) / 3)


def test_majority_and_shares_per_head() -> None:
    counts = np.zeros((1, 2, 5), int)
    counts[0, 0] = [3, 0, 0, 0, 1]
    counts[0, 1] = [1, 1, 0, 0, 1]
    maj, share = P.majority(counts)
    assert maj.tolist() == [[0, 0]] and share[0, 0] == pytest.approx(0.75) and share[0, 1] == pytest.approx(1 / 3)
    np.testing.assert_allclose(P.head_shares(counts).sum(-1), 1.0)


def test_parse_class_accepts_names_keys_and_slugs() -> None:
    assert P.parse_class("m") == P.MIXED == P.parse_class("vertical_diagonal") == P.parse_class("Vertical+Diagonal")
    assert P.parse_class("H") == P.HETEROGENEOUS and P.parse_class("nonsense") == -1


# --- token statistics (paper sec. 4.4) ------------------------------------------------------------


def test_negation_words_split_into_pieces_count_as_one_word() -> None:
    toks = ["[CLS]", "i", "didn", "'", "t", "like", "it", ",", "not", "at", "all", ".", "[SEP]"]
    offs = np.array([[0, 0], [0, 1], [2, 6], [6, 7], [7, 8], [9, 13], [14, 16], [16, 17], [18, 21], [22, 24], [25, 28], [28, 29], [0, 0]])
    sp, ty = layout(len(toks))
    ws = dict(words(toks, offs, sp, ty))
    assert ws["didn't"] == [2, 3, 4] and ws["it"] == [6] and ws["not"] == [8] and ws["all"] == [10]
    g = token_groups(toks, offs, sp, ty)
    assert g["negation"] == [[2, 3, 4], [8]]
    assert g["punct"] == [[3], [7], [11]] and g["sep"] == [[12]] and g["cls"] == [[0]]
    assert len(NEGATION_WORDS) == 17


def test_token_attention_is_the_column_mean_max_over_tokens_and_nan_when_absent() -> None:
    T = 6
    toks = ["[CLS]", "a", "[SEP]", "b", "c", "[SEP]"]
    offs = np.array([[0, 0], [0, 1], [0, 0], [0, 1], [2, 3], [0, 0]])
    sp, ty = layout(T, pair_at=2)
    att = np.zeros((2, T, T))
    att[0, :, 2] = 0.7  # head 0: the first [SEP] gets 0.7 from every row
    att[0, :, 5] = 0.2
    att[0, :, 0] = 0.1
    att[1] = 1 / T
    v = token_attention(att, token_groups(toks, offs, sp, ty))
    k = {n: i for i, n in enumerate(TOKEN_FEATURES)}
    assert v[0, k["sep"]] == pytest.approx(0.7)  # the larger [SEP], not their sum
    assert v[0, k["cls"]] == pytest.approx(0.1) and v[1, k["cls"]] == pytest.approx(1 / T)
    assert np.isnan(v[:, k["negation"]]).all() and np.isnan(v[:, k["punct"]]).all()
