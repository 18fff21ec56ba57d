"""FrameNet link selection and scoring, and dependency-head scoring, on planted attention arrays."""

from __future__ import annotations

import numpy as np
import pytest

from bertsecrets_cli.analysis.framenet import (
    Candidate,
    FrameNetScorer,
    Link,
    SelectionCounts,
    SelectionOptions,
    link_pairs,
    pieces_for_span,
    rank_heads,
    select_links,
)
from bertsecrets_cli.analysis.relations import DependencyScorer, relation_key, word_attention, word_piece_matrix


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    from bertsecrets_cli.model.load import embedded_model_dir

    return AutoTokenizer.from_pretrained(embedded_model_dir())


def encode(tokenizer, text: str, max_length: int = 128):
    from bertsecrets_cli.model.tokenize import encode_examples

    return encode_examples(tokenizer, [(text, None)], max_length)[0]


# ---------------------------------------------------------------------------------------- spans


def test_character_spans_map_to_pieces_through_offsets_with_inclusive_ends(tokenizer) -> None:
    text = "The Café unbelievably abandoned it."
    enc = encode(tokenizer, text)
    assert enc.tokens[3:8] == ["un", "##bel", "##ie", "##va", "##bly"]
    assert pieces_for_span(enc.offsets, enc.special, 9, 20, text).tolist() == [3, 4, 5, 6, 7]  # "unbelievably"
    # a one-character span: FrameNet's end is inclusive, so start == end is the '.'
    assert pieces_for_span(enc.offsets, enc.special, 34, 34, text).tolist() == [10]
    assert [enc.tokens[i] for i in pieces_for_span(enc.offsets, enc.special, 4, 7, text)] == ["cafe"]  # accent stripped, offsets intact
    assert pieces_for_span(enc.offsets, enc.special, 8, 8, text) is None  # only the space between words


def test_spans_cut_off_by_truncation_are_not_mapped(tokenizer) -> None:
    text = "one two three four five six seven"
    enc = encode(tokenizer, text, max_length=5)  # [CLS] one two three [SEP]
    assert pieces_for_span(enc.offsets, enc.special, 4, 6, text).tolist() == [2]
    assert pieces_for_span(enc.offsets, enc.special, 8, 17, text) is None  # "three four": half of it is gone


def test_each_filter_counts_the_sentences_and_links_it_keeps(tokenizer) -> None:
    text = "The boys quickly abandoned the old car near the very old and rusty house ."
    enc = encode(tokenizer, text)
    tgt = ((17, 25),)  # "abandoned"

    def cand(fe: str, a: int, b: int, core: bool = True) -> Candidate:
        return Candidate("Abandonment", "abandon.v", fe, core, (a, b), tgt)

    cands = [cand("Agent", 0, 7),  # "The boys": 2 pieces, 2 apart from the target -> kept
             cand("Theme", 27, 37),  # "the old car": adjacent to the target -> too close
             cand("Place", 39, 71, core=False),  # peripheral
             cand("Goal", 44, 71)]  # "the very old and rusty house": 6 pieces
    counts = SelectionCounts()
    links = select_links(cands, enc.offsets, enc.special, text, SelectionOptions(max_sentence_tokens=20), counts)
    assert [lk.fe for lk in links] == ["Agent"]
    assert links[0].fe_pieces.tolist() == [1, 2] and links[0].target_pieces.tolist() == [4] and links[0].distance == 2
    assert [(n, s, k) for n, s, k in counts.rows()] == [
        ("annotated FE links", 1, 4), ("core FEs (coretype)", 1, 3), ("sentence <= 20 tokens", 1, 3),
        ("spans found in the tokenisation", 1, 3), ("FE span <= 3 tokens", 1, 2), ("ends >= 2 tokens apart", 1, 1)]
    # the paper's 12-token limit drops this 15-piece sentence; --all-fes keeps the peripheral Place
    counts12 = SelectionCounts()
    assert select_links(cands, enc.offsets, enc.special, text, SelectionOptions(), counts12) == []
    assert counts12.rows()[2] == ("sentence <= 12 tokens", 0, 0)
    kept = select_links(cands, enc.offsets, enc.special, text, SelectionOptions(None, None, 0, core_only=False), SelectionCounts())
    assert {lk.fe for lk in kept} == {"Agent", "Theme", "Place", "Goal"}


# ---------------------------------------------------------------------------------------- scoring

L, H, T = 3, 4, 12


def background(seed: int) -> np.ndarray:
    """Random attention rows: every head attends somewhere, a little everywhere."""
    return np.random.default_rng(seed).dirichlet(np.ones(T), size=(L, H, T)).astype(np.float32)


def plant(att: np.ndarray, layer: int, head: int, rows: list[int], col: int, mass: float = 0.9) -> None:
    for r in rows:
        att[layer, head, r] *= (1 - mass) / att[layer, head, r].sum()
        att[layer, head, r, col] += mass


SPECIAL = np.array([1] + [0] * (T - 2) + [2])


def make_link(fe: list[int], target: list[int]) -> Link:
    f, t = np.array(fe), np.array(target)
    return Link("F", "lu.v", "FE", f, t, int(np.abs(f[:, None] - t[None]).min()), (0, 0), ((0, 0),))


def test_planted_fe_to_target_head_ranks_first_and_beats_its_baseline() -> None:
    scorer = FrameNetScorer(L, H, samples=200, seed=1)
    geometry = [([2, 3], [6]), ([8], [4]), ([1], [9, 10]), ([5, 6, 7], [2])]
    for i, (fe, tgt) in enumerate(geometry):
        att = background(i)
        plant(att, 1, 2, fe, tgt[0])  # L2H3: FE pieces (queries) attend to the target (key)
        scorer.add(att, [make_link(fe, tgt)], SPECIAL)
    res = scorer.result()
    assert rank_heads(res.fe_to_target)[0] == (1, 2)
    assert res.fe_to_target[1, 2] > 0.85
    assert res.target_to_fe[1, 2] < 0.5  # the planted direction only
    assert res.above_baseline_p99("fe_to_target")[1, 2]
    assert res.above_heads_p99("fe_to_target").sum() == 1 and res.above_heads_p99("fe_to_target")[1, 2]
    assert res.same_distance["fe_to_target"][1, 2] < 0.5  # moved elsewhere, the link loses the planted attention
    # ([1], [9, 10]) spans every real piece (1..10): it cannot be moved, so it has no same-distance baseline
    assert res.n_links == 4 and res.n_links_baseline == 3


def test_target_to_fe_direction_is_scored_separately() -> None:
    scorer = FrameNetScorer(L, H, samples=20)
    for i in range(3):
        att = background(10 + i)
        plant(att, 2, 0, [7], 3)  # target piece 7 (query) attends to FE piece 3 (key)
        scorer.add(att, [make_link([3], [7])], SPECIAL)
    res = scorer.result()
    assert rank_heads(res.target_to_fe)[0] == (2, 0)
    assert rank_heads(res.fe_to_target)[0] != (2, 0)


def test_positional_head_scores_high_but_not_above_its_same_distance_baseline() -> None:
    """A head that always looks 2 pieces ahead explains links at distance 2 by position alone."""
    scorer = FrameNetScorer(L, H, samples=200, max_offset=4, seed=3)
    for i, fe in enumerate([1, 3, 5, 2]):
        att = background(20 + i)
        for r in range(1, T - 3):
            plant(att, 0, 1, [r], r + 2)  # L1H2: next-next-token head
        scorer.add(att, [make_link([fe], [fe + 2])], SPECIAL)
    res = scorer.result()
    assert res.fe_to_target[0, 1] > 0.85
    assert not res.above_baseline_p99("fe_to_target")[0, 1]
    assert res.same_distance["fe_to_target"][0, 1] > 0.8
    assert res.offset_best_k["fe_to_target"][0, 1] == 2 and res.offset_best["fe_to_target"][0, 1] > 0.85


def test_offset_baseline_skips_offsets_closer_than_the_selection_allows() -> None:
    """A previous-token head would win every offset baseline at k=-1, though no selected link is that close."""
    att = background(50)
    for r in range(2, T - 1):
        plant(att, 0, 0, [r], r - 1, mass=0.99)  # L1H1: previous-token head
    near, far = FrameNetScorer(L, H, samples=0, max_offset=3), FrameNetScorer(L, H, samples=0, max_offset=3, min_distance=2)
    for sc in (near, far):
        sc.add(att, [make_link([5], [8])], SPECIAL)
    assert near.result().offset_best_k["fe_to_target"][0, 0] == -1
    assert abs(far.result().offset_best_k["fe_to_target"][0, 0]) >= 2 and far.result().offset_best["fe_to_target"][0, 0] < 0.5


def test_first_pair_variant_scores_only_the_zipped_pairs() -> None:
    att = background(30)
    plant(att, 1, 1, [2], 6)  # FE's SECOND piece attends to the target's FIRST piece
    link = make_link([1, 2], [6, 7])
    assert link_pairs(link.fe_pieces, link.target_pieces, True)[0].tolist() == [1, 2]
    assert link_pairs(link.fe_pieces, link.target_pieces, True)[1].tolist() == [6, 7]
    every, first = FrameNetScorer(L, H, samples=0), FrameNetScorer(L, H, samples=0, first_pair=True)
    every.add(att, [link], SPECIAL)
    first.add(att, [link], SPECIAL)
    assert every.result().fe_to_target[1, 1] > 0.85
    assert first.result().fe_to_target[1, 1] < 0.5  # zip((1, 2), (6, 7)) never pairs 2 with 6


def test_best_link_per_head_points_at_the_strongest_example() -> None:
    scorer = FrameNetScorer(L, H, samples=0)
    a, b = background(40), background(41)
    plant(b, 0, 3, [2], 8, mass=0.99)
    scorer.add(a, [make_link([2], [8])], SPECIAL, link_ids=[0])
    scorer.add(b, [make_link([2], [8])], SPECIAL, link_ids=[1])
    res = scorer.result()
    assert res.best_link["fe_to_target"][0, 3] == 1 and res.best_value["fe_to_target"][0, 3] > 0.98


# ---------------------------------------------------------------------------------------- dependency relations


def test_word_attention_sums_attended_pieces_and_averages_attending_pieces() -> None:
    # [CLS] a b1 b2 [SEP]: word a = piece 1, word b = pieces 2-3
    offsets = np.array([[0, 0], [0, 1], [2, 4], [4, 6], [0, 0]])
    special = np.array([1, 0, 0, 0, 2])
    M = word_piece_matrix(offsets, special, [(0, 1), (2, 6)])
    assert M.tolist() == [[0, 1, 0, 0, 0], [0, 0, 1, 1, 0]]
    att = np.zeros((1, 1, 5, 5))
    att[0, 0, 1] = [0.1, 0.2, 0.3, 0.3, 0.1]  # a -> b: 0.3 + 0.3 (summed)
    att[0, 0, 2] = [0.0, 0.8, 0.1, 0.1, 0.0]  # b1 -> a: 0.8
    att[0, 0, 3] = [0.0, 0.2, 0.4, 0.4, 0.0]  # b2 -> a: 0.2; mean over b's pieces: 0.5
    wa = word_attention(att, M)[0, 0]
    assert wa[0, 1] == pytest.approx(0.6)
    assert wa[1, 0] == pytest.approx(0.5)  # Clark et al.'s code (first piece only) would say 0.8
    assert wa[1, 1] == pytest.approx((0.2 + 0.8) / 2)


def test_planted_governor_head_is_the_best_head_and_offsets_are_the_baseline() -> None:
    # "the cat sat on the mat": det(cat<-the) det(mat<-the) nsubj(sat<-cat) case(mat<-on) obl(sat<-mat)
    heads = [2, 3, 0, 6, 6, 3]
    rels = ["det", "nsubj", "root", "case", "det", "obl:loc"]
    W = len(heads)
    scorer = DependencyScorer(2, 3)
    for seed in range(3):
        wa = np.random.default_rng(seed).dirichlet(np.ones(W), size=(2, 3, W))
        for dep, gov in enumerate(heads):
            if gov:
                wa[1, 0, dep] = 0.01
                wa[1, 0, dep, gov - 1] = 0.9  # L2H1: every dependent attends to its governor
        scorer.add(wa, heads, rels, np.ones(W, bool))
    res = {r.label: r for r in scorer.results()}
    assert set(res) == {"det", "nsubj", "case", "obl:loc"}  # root has no governor word
    assert res["det"].count == 6 and res["det"].accuracy[1, 0] == 1.0
    assert rank_heads(scorer.overall().accuracy)[0] == (1, 0)
    assert (res["det"].offset_k, res["det"].offset_accuracy) == (1, 1.0)
    assert (res["case"].offset_k, res["case"].offset_accuracy) == (2, 1.0)
    base = DependencyScorer(2, 3, base_relations=True)
    base.add(wa, heads, rels, np.ones(W, bool))
    assert "obl" in {r.label for r in base.results()}
    assert relation_key("obl:loc") == "obl_loc" and relation_key("nsubj:pass") == "nsubj_pass"


def test_reverse_direction_asks_whether_the_governor_attends_to_the_dependent() -> None:
    heads, rels = [2, 0], ["nsubj", "root"]
    wa = np.full((1, 2, 2, 2), 0.5)
    wa[0, 0, 1] = [0.9, 0.1]  # head 0: governor 'sat' attends to its subject
    wa[0, 1, 0] = [0.1, 0.9]  # head 1: the subject attends to its governor
    wa[0, 1, 1] = [0.1, 0.9]  # ... and the governor to itself
    wa[0, 0, 0] = [0.9, 0.1]  # head 0: the subject attends to itself
    s = DependencyScorer(1, 2)
    s.add(wa, heads, rels, np.ones(2, bool))
    (r,) = s.results()
    assert r.reverse_accuracy.tolist() == [[1.0, 0.0]]
    assert r.accuracy.tolist() == [[0.0, 1.0]]


def test_words_without_pieces_are_never_predicted_and_their_arcs_are_skipped() -> None:
    heads, rels = [2, 0, 2], ["nsubj", "root", "obj"]
    wa = np.zeros((1, 1, 3, 3))
    wa[0, 0, 0] = [0.0, 0.1, 0.9]  # would pick word 2, which has no piece
    s = DependencyScorer(1, 1)
    s.add(wa, heads, rels, np.array([True, True, False]))
    (r,) = s.results()
    assert r.label == "nsubj" and r.accuracy[0, 0] == 1.0
    assert s.skipped_unmapped == 1
