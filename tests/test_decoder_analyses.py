"""Relation heads, coref, probe, cluster and flow on causal decoders (issue 30): each definition read on
lower-triangular maps (README "Decoder models"), proved on hand-built causal maps, and each command run through
the real command line on tiny random GPT-2 and Llama models."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from bertsecrets_cli.cli.app import app
from bertsecrets_cli.store import open_store

from conftest import DECODER_TOKENIZERS, build_tiny_model, build_tokenizer

runner = CliRunner()


@pytest.fixture(scope="module")
def decoders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Tiny random GPT-2 (no BOS: the first word is the sink) and Llama (a BOS) models, and the demo treebank."""
    from bertsecrets_cli.data.demo_treebank import write_demo_treebank

    root = tmp_path_factory.mktemp("decoder-analyses")
    out = {f: build_tiny_model(root / f, f, tokenizer=build_tokenizer(*DECODER_TOKENIZERS[f])) for f in ("gpt2", "llama")}
    out["train"] = write_demo_treebank(root / "train.conllu", 8, seed=0)
    out["test"] = write_demo_treebank(root / "test.conllu", 3, seed=1)
    return out


def _prev_word_map(W: int) -> np.ndarray:
    """A causal word map whose every word attends exactly to the previous word (the first to itself)."""
    m = np.zeros((W, W))
    m[0, 0] = 1.0
    m[np.arange(1, W), np.arange(W - 1)] = 1.0
    return m


def _uniform_causal(T: int) -> np.ndarray:
    """Row i uniform over keys 0..i."""
    return np.tril(np.ones((T, T))) / np.arange(1, T + 1)[:, None]


def test_llama_sentencepiece_pieces_become_words_without_cls_or_sep() -> None:
    """'<s> ▁The ▁c at ▁ sat' over "The cat sat" (Llama: a BOS, no [SEP]; offsets that include the '▁' space, and a lone
    '▁' piece): the BOS is no word, a marker's space does not move a piece, and a lone marker joins the next word."""
    from bertsecrets_cli.analysis.wordlevel import word_piece_matrix

    offsets = np.array([(0, 0), (0, 3), (3, 5), (5, 7), (7, 8), (8, 11)])
    M = word_piece_matrix(offsets, np.array([1, 0, 0, 0, 0, 0]), [(0, 3), (4, 7), (8, 11)], "The cat sat")
    assert M.tolist() == [[0, 1, 0, 0, 0, 0], [0, 0, 1, 1, 0, 0], [0, 0, 0, 0, 1, 1]]


# ------------------------------------------------------------------------------------------ dependency heads


def test_causal_dependency_heads_score_each_arc_only_in_the_direction_that_can_reach_it() -> None:
    """Five words: det(1<-2), nsubj(2<-3), root 3, obj(4<-3), obl(5<-3). Head 0 attends to the previous word,
    head 1 is uniform over each prefix (its argmax: the first word). Arcs whose governor comes later are out of
    the dependent -> governor denominator and in the governor -> dependent one, and the reverse."""
    from bertsecrets_cli.analysis.relations import DependencyScorer

    heads, rels = [2, 3, 0, 3, 3], ["det", "nsubj", "root", "obj", "obl"]
    att = np.stack([_prev_word_map(5), _uniform_causal(5)])[None]  # [1, 2, 5, 5]
    sc = DependencyScorer(1, 2, causal=True)
    sc.add(att, heads, rels, np.ones(5, bool))
    by = {r.label: r for r in sc.results()}
    al = sc.overall()
    # independent count: governor earlier -> forward (obj, obl); dependent earlier -> reverse (det, nsubj)
    assert (al.count, al.forward_count, al.reverse_count) == (4, 2, 2)
    # previous-word head: obj (governor = previous word) right, obl (two back) wrong; reverse: both governors'
    # previous word is their dependent
    assert al.accuracy[0, 0] == 0.5 and al.reverse_accuracy[0, 0] == 1.0
    assert by["obj"].accuracy[0, 0] == 1.0 and by["det"].reverse_accuracy[0, 0] == 1.0 and by["nsubj"].reverse_accuracy[0, 0] == 1.0
    # uniform prefix: ties go to the first word: obj/obl miss (the governor is word 3), det's governor (word 2) predicts word 1: right
    assert al.accuracy[0, 1] == 0.0 and by["det"].reverse_accuracy[0, 1] == 1.0 and by["nsubj"].reverse_accuracy[0, 1] == 0.0
    # an unreachable direction is undefined, not 0
    assert np.isnan(by["obj"].reverse_accuracy).all() and np.isnan(by["det"].accuracy).all() and np.isnan(by["det"].offset_accuracy)
    # offsets: look-backs only, each over its own direction's arcs (forward -1 and -2 tie: the nearer)
    assert (al.offset_k, al.offset_accuracy) == (-1, 0.5) and (al.reverse_offset_k, al.reverse_offset_accuracy) == (-1, 1.0)
    assert (by["obl"].offset_k, by["obl"].offset_accuracy) == (-2, 1.0)
    # shards add up to the same counts; causal and encoder counts never mix
    two = DependencyScorer(1, 2, causal=True)
    two.absorb(sc.state())
    assert two.overall().forward_count == 2 and np.array_equal(two.overall().reverse_accuracy, al.reverse_accuracy)
    with pytest.raises(ValueError, match="causal"):
        DependencyScorer(1, 2).absorb(sc.state())
    with pytest.raises(ValueError, match="causal maps"):
        DependencyScorer(1, 2, causal=True, definition="authors")


def test_encoder_dependency_counts_are_unchanged_by_the_causal_reading() -> None:
    """Read as an encoder (the default), the same maps keep every arc in both denominators."""
    from bertsecrets_cli.analysis.relations import DependencyScorer

    att = np.stack([_prev_word_map(5), _uniform_causal(5)])[None]
    sc = DependencyScorer(1, 2)
    sc.add(att, [2, 3, 0, 3, 3], ["det", "nsubj", "root", "obj", "obl"], np.ones(5, bool))
    al = sc.overall()
    assert al.accuracy[0, 0] == 0.25 and al.reverse_accuracy[0, 0] == 0.5 and not al.causal and "causal" not in sc.state()["meta"]


@pytest.mark.slow
@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_dependency_heads_of_a_decoder_through_the_command_line(family, decoders, tmp_path) -> None:
    """framenet --conllu on a decoder: each direction's denominator is the treebank's arcs it can reach."""
    from bertsecrets_cli.data.conllu import read_conllu

    from helpers import one_line_error

    out = tmp_path / "dep.h5"
    res = runner.invoke(app, ["framenet", "--conllu", str(decoders["train"]), "--model", str(decoders[family]), "--device", "cpu", "-o", str(out),
                              "--min-count", "1"])
    assert res.exit_code == 0, res.stderr
    arcs = [(i + 1, w.head) for s in read_conllu(decoders["train"]) for i, w in enumerate(s.words) if w.head]
    fwd, rev = sum(g < d for d, g in arcs), sum(d < g for d, g in arcs)
    with open_store(out) as st:
        assert st.causal
        rows = {r["label"]: r for r in st.json("dependency/relations")}
        assert (rows["all"]["count"], rows["all"]["forward_count"], rows["all"]["reverse_count"]) == (len(arcs), fwd, rev)
        assert rows["all"]["offset_k"] < 0 and rows["all"]["reverse_offset_k"] < 0  # look-backs only
        acc = st.heads()["dep_all_accuracy"].values
        assert np.isfinite(acc).all() and 0 <= acc.min() and acc.max() <= 1
        assert np.isnan(st.heads()["ling_cls_noun"].values).all()  # the first row sees only itself: undefined
        det = st.heads()["dep_det_accuracy"].values  # determiners precede their noun: no forward arc
        assert rows["det"]["forward_count"] == 0 and np.isnan(det).all()
    text = " ".join(res.stdout.split())
    assert "causal decoder" in text and "left out of that direction's denominator" in text and "attention of [CLS]" not in text
    one_line_error(runner.invoke(app, ["framenet", "--conllu", str(decoders["train"]), "--model", str(decoders[family]), "--device", "cpu",
                                       "-o", str(tmp_path / "a.h5"), "--definition", "authors"]), 5, "causal decoder", "--definition ours")
    assert not (tmp_path / "a.h5").exists()
    if family == "gpt2":  # shards join into the unsharded counts, each direction's denominators included
        for i in (0, 1):
            res = runner.invoke(app, ["framenet", "--conllu", str(decoders["train"]), "--model", str(decoders[family]), "--device", "cpu",
                                      "-o", str(tmp_path / f"s{i}.h5"), "-q", "--shard", f"{i}/2"])
            assert res.exit_code == 0, res.stderr
        res = runner.invoke(app, ["merge", str(tmp_path / "s0.h5"), str(tmp_path / "s1.h5"), "-o", str(tmp_path / "m.h5")])
        assert res.exit_code == 0, res.stderr
        with open_store(tmp_path / "m.h5") as st:
            merged = {r["label"]: r for r in st.json("dependency/relations")}
        for lab, r in rows.items():
            assert {k: v for k, v in merged[lab].items() if "accuracy" not in k} == {k: v for k, v in r.items() if "accuracy" not in k}
            np.testing.assert_allclose([merged[lab][k] for k in r if "accuracy" in k], [r[k] for k in r if "accuracy" in k], atol=1e-12)


@pytest.mark.slow
def test_framenet_links_on_a_decoder_count_unreachable_links_as_zeros(decoders, tmp_path) -> None:
    """FrameNet links on GPT-2: every FE of the release precedes or follows 'abandoned'; a link whose key side lies
    in the query's future scores exactly 0 in that direction, and the caption counts the links each can reach."""
    from bertsecrets_cli.analysis.framenet import causal_reach

    from test_framenet_cli import write_release

    out = tmp_path / "fn.h5"
    res = runner.invoke(app, ["framenet", "--framenet", str(write_release(tmp_path / "fn")), "--model", str(decoders["gpt2"]), "--device", "cpu",
                              "-o", str(out), "--baseline-samples", "5", "--max-sentence-tokens", "0", "--max-fe-tokens", "0"])
    assert res.exit_code == 0, res.stderr
    with open_store(out) as st:
        links, prov = st.json("framenet/links"), st.provenance()
        fe_first = sum(max(lk["fe_pieces"]) < min(lk["target_pieces"]) for lk in links)  # target wholly after the FE
        assert prov["causal_links_reachable_fe_to_target"] == len(links) - fe_first
        assert prov["causal_links_reachable_target_to_fe"] == fe_first
    assert 0 < fe_first < len(links)
    assert f"FE->target can reach {len(links) - fe_first} of the {len(links)} links" in " ".join(res.stdout.split())
    # the rule on its own: the FE at pieces 1-2, the target at 4 (after it) or 0 (before it)
    assert causal_reach([(np.array([1, 2]), np.array([4])), (np.array([1, 2]), np.array([0]))]) == {"fe_to_target": 1, "target_to_fe": 1}


# ------------------------------------------------------------------------------------------ coreference


def test_causal_coref_every_antecedent_is_reachable_and_first_word_antecedents_are_counted() -> None:
    """A causal word map where 'she' (word 4) attends to 'Mary' (word 0) and 'it' (word 6) to itself: the first
    head is right on 'she', and 'she' is counted as a mention a first-word sink would get right for free."""
    from bertsecrets_cli.analysis.coreference import CorefScorer, SegmentMention

    forms = ["Mary", "bought", "a", "car", "she", "sold", "it"]
    m = _uniform_causal(7)
    m[4] = 0.0
    m[4, 0] = 1.0
    m[6] = 0.0
    m[6, 6] = 1.0
    mentions = [SegmentMention(0, "e1", "proper"), SegmentMention(3, "e2", "nominal"), SegmentMention(4, "e1", "pronoun"),
                SegmentMention(6, "e2", "pronoun")]
    sc = CorefScorer(1, 1)
    assert sc.add(m[None, None], np.ones(7, bool), mentions, forms) == 2
    hits, _, _ = sc.arrays()
    assert hits[:, 0, 0].tolist() == [True, False] and sc.first_word == 1


@pytest.mark.slow
def test_coref_of_a_decoder_through_the_command_line(decoders, tmp_path) -> None:
    """coref on GPT-2 (no BOS): the store's per-mention hits are each head's argmax, and the sink caveat is printed."""
    out = tmp_path / "coref.h5"
    res = runner.invoke(app, ["coref", str(decoders["train"]), "--model", str(decoders["gpt2"]), "--device", "cpu", "-o", str(out), "--bootstrap", "50"])
    assert res.exit_code == 0, res.stderr
    with open_store(out) as st:
        prov, hits = st.provenance(), st.array("coreference/hits")
        assert st.causal and prov["causal_sink_is_first_word"] == 1 and 0 <= prov["causal_first_word_antecedents"] <= hits.shape[0] > 0
        np.testing.assert_allclose(st.heads()["coref_all"].values, hits.mean(0), atol=1e-6)
    text = " ".join(res.stdout.split())
    assert "every scored mention is reachable" in text and "adds no BOS" in text


# ------------------------------------------------------------------------------------------ probe


def test_probe_features_of_a_causal_map_have_one_informative_direction_per_pair() -> None:
    """Previous-word map: for dependent i, candidate j > i has A[i, j] = 0, candidate j < i has A[j, i] = 0; the
    single 'dependent -> head' feature finds exactly the governors that are the previous word."""
    from bertsecrets_cli.analysis.probe import pair_features, single_feature_uas, stack

    heads = [2, 3, 0, 3, 4]  # word 5's governor is word 4 (the previous word), word 4's is 3 (previous), 1's is 2 (next)
    parts = pair_features(_prev_word_map(5)[None, None], heads)
    feats, dep, cand = parts[0], parts[1], parts[2]
    assert (feats[cand > dep, 0] == 0).all() and (feats[cand < dep, 1] == 0).all()
    uas = single_feature_uas(stack([parts], [5]))
    want = np.mean([g - 1 == i - 1 for i, g in enumerate(heads) if g])  # governor = previous word: words 4 and 5 of 4 scored
    assert uas[0] == pytest.approx(want) == 0.5


@pytest.mark.slow
def test_probe_of_a_decoder_through_the_command_line(decoders, tmp_path) -> None:
    from bertsecrets_cli.data.conllu import read_conllu

    from helpers import one_line_error

    args = ["probe", "--train", str(decoders["train"]), "--test", str(decoders["test"]), "--model", str(decoders["llama"]), "--device", "cpu",
            "--embedding-dims", "0"]
    res = runner.invoke(app, [*args, "-o", str(tmp_path / "p.h5")])
    assert res.exit_code == 0, res.stderr
    sides = [w.head < i + 1 for s in read_conllu(decoders["test"]) for i, w in enumerate(s.words) if w.head]
    text = " ".join(res.stdout.split())
    assert f"governors that come first ({np.mean(sides):.3f} of the test file's words)" in text
    first_train = np.mean([w.head < i + 1 for s in read_conllu(decoders["train"]) for i, w in enumerate(s.words) if w.head])
    with open_store(tmp_path / "p.h5") as st:  # single heads on the training file: each bounded by the side of governors it can see
        assert st.heads()["probe_single_uas_dep_to_head"].values.max() <= first_train + 1e-9
        assert st.heads()["probe_single_uas_head_to_dep"].values.max() <= 1 - first_train + 1e-9
    one_line_error(runner.invoke(app, [*args, "-o", str(tmp_path / "a.h5"), "--definition", "authors"]), 5, "causal decoder", "--definition ours")


# ------------------------------------------------------------------------------------------ cluster and flow


def test_causal_cluster_leaves_out_the_first_row_every_head_shares() -> None:
    """Two heads that differ only after the first row: the distance is the mean over the rows that could differ."""
    from bertsecrets_cli.analysis.clustering import HeadDistanceAccumulator

    a, b = _uniform_causal(4), _prev_word_map(4)
    enc, dec = HeadDistanceAccumulator(1, 2), HeadDistanceAccumulator(1, 2, causal=True)
    for acc in (enc, dec):
        acc.add(np.stack([a, b])[None])

    def js(p: np.ndarray, q: np.ndarray) -> float:  # base 2, square root: the js-distance of one row
        m = (p + q) / 2
        kl = (lambda x: float(np.sum(np.where(x > 0, x * np.log2(np.where(x > 0, x, 1) / np.where(m > 0, m, 1)), 0))))
        return np.sqrt(0.5 * kl(p) + 0.5 * kl(q))

    rows = [js(a[i], b[i]) for i in range(4)]
    assert rows[0] == 0 and dec.rows == 3 and enc.rows == 4
    assert dec.mean()[0, 1] == pytest.approx(np.mean(rows[1:])) and enc.mean()[0, 1] == pytest.approx(np.mean(rows))


def test_flow_and_rollout_of_uniform_causal_heads_equal_their_formulas() -> None:
    """Two layers of heads uniform over each prefix: A = 0.5 U + 0.5 I; rollout = A @ A; flow from (2, i) to input k
    is the sum over middle positions j of min(A[i, j], A[j, k]) (each path has its own two edges), 0 above the diagonal."""
    from bertsecrets_cli.analysis.quantities import flow, rollout

    T = 5
    U = _uniform_causal(T)
    w = np.broadcast_to(U, (2, 3, T, T)).copy()
    A = 0.5 * U + 0.5 * np.eye(T)
    want = np.array([[sum(min(A[i, j], A[j, k]) for j in range(T)) for k in range(T)] for i in range(T)])
    f = flow(w)
    np.testing.assert_allclose(f[0], A, atol=1e-6)
    np.testing.assert_allclose(f[1], want, atol=1e-6)
    np.testing.assert_allclose(rollout(w)[1], A @ A, atol=1e-6)
    assert np.triu(f[1], 1).max() == 0.0 and np.triu(want, 1).max() == 0.0


@pytest.mark.slow
def test_cluster_and_flow_of_a_decoder_through_the_command_line(decoders, tmp_path) -> None:
    """extract --quantities flow on GPT-2: the stored flow is the formula on the stored weights; cluster runs on the
    store and its distances equal an accumulator fed the maps without their first rows."""
    from bertsecrets_cli.analysis.clustering import HeadDistanceAccumulator
    from bertsecrets_cli.analysis.quantities import flow, row_normalise

    store = tmp_path / "x.h5"
    res = runner.invoke(app, ["extract", "-m", str(decoders["gpt2"]), "-n", "3", "--device", "cpu", "-q", "--quantities", "weights,flow",
                              "--max-length", "24", "-o", str(store)])
    assert res.exit_code == 0, res.stderr
    acc = HeadDistanceAccumulator(2, 4)
    with open_store(store) as st:
        weights = [st.attention(i).astype(np.float32) for i in range(st.n_examples)]
        flows = [st.select_quantity("flow").attention(i)[:, 0].astype(np.float32) for i in range(st.n_examples)]
    for w, got in zip(weights, flows):
        acc.add(w[:, :, 1:, :])
        np.testing.assert_allclose(got, row_normalise(flow(w)), atol=3e-3)
        assert np.triu(got, 1).max() == 0.0
    res = runner.invoke(app, ["cluster", str(store), "-o", str(tmp_path / "c.h5")])
    assert res.exit_code == 0, res.stderr
    assert "first row" in " ".join(res.stdout.split())
    with open_store(tmp_path / "c.h5") as st:
        from bertsecrets_cli.jobs.cluster import DISTANCE

        np.testing.assert_allclose(st.array(DISTANCE), acc.mean(), atol=1e-6)
