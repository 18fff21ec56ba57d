"""``--definition authors`` against the authors' published formulas, written here from their released code and
run on the same maps as our commands (docs/guide/clark.md: Whose definition).

Clark et al. 2019, clarkkev/attention-analysis, Syntax_Analysis.ipynb (commit b609cfc): cell 6 defines
``attn_head_predictor`` (diagonal set to 0, [CLS]/[SEP] cropped, np.argmax + 1; "transpose" transposes the map
first), ``offset_predictor`` (max(0, min(i + k + 1, n)) for k in range(-3, 3)) and ``evaluate_predictor`` (every
word scored, the 'poss' + "'s" special case); cell 8 picks ``sorted((acc, layer, head, direction))[-1]`` and
``max((acc, k))``. Cell 14's probe: ROOT candidate from attention to [CLS] and [SEP], UAS without 'punct'.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from bertsecrets_cli.analysis.relations import DependencyScorer
from helpers import covers

# ------------------------------------------------------------------ Clark's formulas, from the notebook's text


def clark_predict(full: np.ndarray, mode: str) -> np.ndarray:
    """One head's map over [CLS] + words + [SEP] -> 1-based predicted head of each word."""
    a = np.array(full, dtype=float)
    if mode == "transpose":
        a = a.T
    a[range(a.shape[0]), range(a.shape[0])] = 0
    a = a[1:-1, 1:-1]
    return np.argmax(a, axis=-1) + 1


def clark_evaluate(examples: list[dict], predict) -> dict[str, float]:  # noqa: ANN001
    right, wrong = Counter(), Counter()
    for ex in examples:
        words, p = ex["words"], predict(ex)
        for i, (pi, y, r) in enumerate(zip(p, ex["heads"], ex["relns"])):
            ok = pi == y
            if r == "poss" and pi < len(words) and i + 1 < len(words) and words[i + 1] in ("'s", "s'"):
                ok = p[i + 1] == y
            for key in (r, "all"):
                (right if ok else wrong)[key] += 1
    return {k: right[k] / (right[k] + wrong[k]) for k in set(right) | set(wrong)}


def clark_offsets(examples: list[dict]) -> dict[int, dict[str, float]]:
    return {k: clark_evaluate(examples, lambda ex, k=k: [max(0, min(i + k + 1, len(ex["words"]))) for i in range(len(ex["words"]))])
            for k in range(-3, 3)}


def clark_tables(examples: list[dict], L: int, H: int) -> dict[str, tuple]:
    """relation -> (best (acc, layer, head, direction), best (offset acc, k), forward acc [L, H], reverse acc [L, H])."""
    scores = {d: [[clark_evaluate(examples, lambda ex, l=l, h=h, m=m: clark_predict(ex["attns"][l][h], m)) for h in range(H)] for l in range(L)]
              for d, m in (("dep->head", "normal"), ("head<-dep", "transpose"))}
    base = clark_offsets(examples)
    out = {}
    for rel in scores["dep->head"][0][0]:
        best = sorted((scores[d][l][h][rel], l, h, d) for d in scores for l in range(L) for h in range(H))[-1]
        boff = max((base[k].get(rel, 0.0), k) for k in base)
        fwd = np.array([[scores["dep->head"][l][h][rel] for h in range(H)] for l in range(L)])
        rev = np.array([[scores["head<-dep"][l][h][rel] for h in range(H)] for l in range(L)])
        out[rel] = (best, boff, fwd, rev)
    return out


# ------------------------------------------------------------------ same maps, our scorer


def _examples(seed: int, L: int = 2, H: int = 3) -> list[dict]:
    """Sentences with root, punctuation, a 'poss' + 's pair, and maps quantised so that rows tie often."""
    rng = np.random.default_rng(seed)
    sents = [(["John", "'s", "dog", "barked", "."], [3, 1, 4, 0, 4], ["poss", "possessive", "nsubj", "root", "punct"]),
             (["the", "cat", "sat", "on", "the", "mat"], [2, 3, 0, 6, 6, 3], ["det", "nsubj", "root", "case", "det", "obl"]),
             (["she", "sold", "it", "."], [2, 0, 2, 2], ["nsubj", "root", "obj", "punct"])]
    out = []
    for _ in range(4):
        for words, heads, relns in sents:
            n = len(words) + 2
            att = np.round(rng.dirichlet(np.full(n, 0.5), size=(L, H, n)) * 4) / 4  # many exact ties, some rows all 0
            out.append({"words": words, "heads": heads, "relns": relns, "attns": att})
    return out


def test_authors_dependency_rule_matches_clarks_formula_on_the_same_maps() -> None:
    L, H = 2, 3
    exs = _examples(0, L, H)
    ref = clark_tables(exs, L, H)
    sc = DependencyScorer(L, H, definition="authors")
    for ex in exs:  # our pipeline's word maps have [CLS]/[SEP] cropped already
        sc.add(ex["attns"][..., 1:-1, 1:-1], ex["heads"], ex["relns"], np.ones(len(ex["words"]), bool), ex["words"])
    from bertsecrets_cli.analysis.relations import authors_best_head

    ours = {r.label: r for r in sc.results()} | {"all": sc.overall()}
    assert set(ours) == set(ref)  # root and punct are scored, as in evaluate_predictor
    for rel, (best, (oacc, k), fwd, rev) in ref.items():
        r = ours[rel]
        np.testing.assert_allclose(r.accuracy, fwd, err_msg=rel)
        np.testing.assert_allclose(r.reverse_accuracy, rev, err_msg=rel)
        assert (r.offset_k, r.offset_accuracy) == pytest.approx((k, oacc)), rel
        bl, bh, bd = authors_best_head(r.accuracy, r.reverse_accuracy)
        assert (bl, bh, ("dep->head", "head<-dep")[bd]) == best[1:], rel
    assert ours["root"].accuracy.max() == 0.0  # no head predicts ROOT


def test_our_definition_differs_from_clarks_where_the_readme_says() -> None:
    L, H = 2, 3
    exs = _examples(1, L, H)
    ours = DependencyScorer(L, H)
    for ex in exs:
        ours.add(ex["attns"][..., 1:-1, 1:-1], ex["heads"], ex["relns"], np.ones(len(ex["words"]), bool), ex["words"])
    labels = {r.label for r in ours.results()}
    assert "root" not in labels  # ours scores no root words; Clark's counts them as misses
    ref = clark_tables(exs, L, H)
    assert not np.allclose(ours.overall().accuracy, ref["all"][2])  # the diagonal and the root words make the difference


def test_shards_under_different_definitions_do_not_join() -> None:
    a, b = DependencyScorer(1, 1, definition="authors"), DependencyScorer(1, 1)
    with pytest.raises(ValueError, match="definition"):
        b.absorb(a.state())
    with pytest.raises(ValueError, match="definition must be one of"):
        DependencyScorer(1, 1, definition="paper")


# ------------------------------------------------------------------ end to end: the tiny model, the project's CoNLL-U


@pytest.fixture(scope="module")
def treebank(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from bertsecrets_cli.data.demo_treebank import write_demo_treebank

    return write_demo_treebank(tmp_path_factory.mktemp("tb") / "dev.conllu", 6, seed=3)


def clark_examples(model_dir: Path, conllu: Path) -> list[dict]:
    """Clark's word-level data ({words, heads, relns, attns over [CLS] + words + [SEP]}) from the model's maps:
    attention to a word summed over its pieces, from a word averaged over them (the paper's rule)."""
    from bertsecrets_cli.analysis.wordlevel import word_attention, word_piece_matrix
    from bertsecrets_cli.data.conllu import read_conllu
    from bertsecrets_cli.jobs.attention_batches import iter_attention
    from bertsecrets_cli.model.load import load_model
    from bertsecrets_cli.model.tokenize import encode_examples

    lm = load_model(str(model_dir), device="cpu")
    sents = list(read_conllu(str(conllu)))
    encs, mats = [], []
    for s in sents:
        text, spans, pos = " ".join(w.form for w in s.words), [], 0
        for w in s.words:
            spans.append((pos, pos + len(w.form)))
            pos += len(w.form) + 1
        enc = encode_examples(lm.tokenizer, [(text, None)], 128)[0]
        specials = np.nonzero(enc.special)[0]
        M = word_piece_matrix(enc.offsets, enc.special, spans, text)
        ends = np.zeros((2, M.shape[1]))
        ends[0, specials[0]] = ends[1, specials[-1]] = 1
        encs.append(enc)
        mats.append(np.concatenate([ends[:1], M, ends[1:]]))
    out = [dict() for _ in sents]
    for i, _, att in iter_attention(lm, encs, 8, quiet=True):
        s = sents[i]
        out[i] = {"words": [w.form for w in s.words], "heads": [w.head for w in s.words], "relns": [w.deprel for w in s.words],
                  "attns": word_attention(att, mats[i])}  # float32, as the command computes them
    return out


@pytest.mark.slow
@covers("framenet", "--definition")
def test_framenet_conllu_definition_authors_stores_clarks_numbers(treebank: Path, tiny_model_factory, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from bertsecrets_cli.cli.app import app
    from bertsecrets_cli.store import open_store

    model = tiny_model_factory("bert")
    runner = CliRunner()
    outs = {}
    for d in ("ours", "authors"):
        res = runner.invoke(app, ["framenet", "--conllu", str(treebank), "--model", str(model), "--device", "cpu", "--definition", d,
                                  "--min-count", "1", "-o", str(tmp_path / f"{d}.h5"), "-f", "json", "--table", "relations"])
        assert res.exit_code == 0, res.stderr
        outs[d] = {r["relation"]: r for r in json.loads(res.stdout)}
    with open_store(tmp_path / "authors.h5") as st:
        assert st.provenance()["definition"] == "authors"
        heads = {k: v.values for k, v in st.heads().items()}
        rows = {r["label"]: r for r in st.json("dependency/relations")}
    ref = clark_tables(clark_examples(model, treebank), *heads["dep_all_accuracy"].shape)
    for rel, (best, (oacc, k), fwd, rev) in ref.items():
        key = rows[rel]["key"]
        np.testing.assert_allclose(heads[f"dep_{key}_accuracy"], fwd, atol=1e-12, err_msg=rel)
        np.testing.assert_allclose(heads[f"dep_{key}_reverse_accuracy"], rev, atol=1e-12, err_msg=rel)
        assert (rows[rel]["offset_k"], rows[rel]["offset_accuracy"]) == pytest.approx((k, oacc))
        assert rows[rel]["best_both_accuracy"] == pytest.approx(best[0])
        assert rows[rel]["best_both_direction"] == best[3]
    assert "root" in outs["authors"] and "root" not in outs["ours"]
    assert outs["authors"]["all"]["best (both)"]  # one head over both directions
    assert outs["authors"]["all"]["accuracy"] != outs["ours"]["all"]["accuracy"]
    err = runner.invoke(app, ["framenet", "--conllu", str(treebank), "--definition", "paper", "-o", str(tmp_path / "x.h5")])
    assert err.exit_code == 3 and "--definition paper: choose one of ours, authors" in err.stderr


# ------------------------------------------------------------------ the probe (cell 14), with ROOT_start = ROOT_end = 1


def clark_probe_uas(examples: list[dict], w: np.ndarray) -> float:
    """Clark's attention-only logits for weights ``w`` [2 x layers x heads] (the maps, then their transposes),
    argmax over ROOT + words, UAS over words whose relation is not punct."""
    correct = total = 0
    for ex in examples:
        a = np.asarray(ex["attns"], dtype=np.float64)
        L, H, n, _ = a.shape
        maps = np.concatenate([a, np.swapaxes(a, -1, -2)], 0).reshape(2 * L * H, n, n)
        root = 1.0 * maps[:, 1:-1, 0] + 1.0 * maps[:, 1:-1, -1]
        maps = np.concatenate([root[..., None], maps[:, 1:-1, 1:-1]], -1)
        logits = np.einsum("k,kij->ij", w, maps)
        for head, pred, rel in zip(ex["heads"], logits.argmax(-1), ex["relns"]):
            if rel != "punct":
                correct += int(head == pred)
                total += 1
    return correct / total


def test_authors_probe_features_and_uas_match_clarks_probe_on_the_same_maps() -> None:
    from bertsecrets_cli.analysis.probe import Probe, pair_features, stack, train_probe, uas

    L, H = 2, 3
    exs = [dict(ex, attns=np.random.default_rng(k).dirichlet(np.ones(len(ex["words"]) + 2), size=(L, H, len(ex["words"]) + 2)))
           for k, ex in enumerate(_examples(2, L, H))]
    data = stack([pair_features(ex["attns"], ex["heads"], ex["relns"], definition="authors") for ex in exs], [len(ex["words"]) for ex in exs])
    K = L * H
    for seed in range(3):
        w = np.random.default_rng(seed).normal(size=2 * K)
        assert uas(Probe(w, np.zeros((2 * K, 0)), np.zeros((2 * K, 0))), data) == pytest.approx(clark_probe_uas(exs, w))
    trained = train_probe(data, embeddings=False)
    assert uas(trained, data) == pytest.approx(clark_probe_uas(exs, trained.w))
    assert data.scored_mask().sum() == sum(r != "punct" for ex in exs for r in ex["relns"])  # root words scored, punct not


@pytest.mark.slow
@covers("probe", "--definition")
def test_probe_definition_authors_scores_as_clarks_probe(treebank: Path, tiny_model_factory, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from bertsecrets_cli.cli.app import app
    from bertsecrets_cli.store import open_store

    model = tiny_model_factory("bert")
    runner = CliRunner()
    res = {}
    for d in ("ours", "authors"):
        r = runner.invoke(app, ["probe", "--train", str(treebank), "--test", str(treebank), "--model", str(model), "--device", "cpu",
                                "--embedding-dims", "0", "--definition", d, "-o", str(tmp_path / f"{d}.h5"), "-f", "json", "--table", "uas"])
        assert r.exit_code == 0, r.stderr
        res[d] = {row["model"]: row["UAS"] for row in json.loads(r.stdout)}
    with open_store(tmp_path / "authors.h5") as st:
        h = {k: v.values for k, v in st.heads().items()}
        assert st.provenance()["definition"] == "authors"
    w = np.concatenate([h["probe_weight_dep_to_head"].ravel(), h["probe_weight_head_to_dep"].ravel()])
    assert res["authors"]["attention-only probe"] == pytest.approx(clark_probe_uas(clark_examples(model, treebank), w), abs=1e-9)
    assert res["authors"] != res["ours"]


# ------------------------------------------------------------------ cluster (head_distances.py; General_Analysis.ipynb cell 18)


def clark_head_distances(docs: list[np.ndarray]) -> np.ndarray:
    """head_distances.py, in words: per document, each head's map against all heads' maps, both smoothed as
    0.001 / T + 0.999 a, JS divergence in natural log summed over the map; summed over the documents."""
    K = docs[0].shape[0] * docs[0].shape[1]
    total = np.zeros((K, K))
    for att in docs:
        flat = np.asarray(att, dtype=np.float64).reshape(K, att.shape[2], att.shape[3])
        for head in range(K):
            one = 0.001 / flat.shape[1] + 0.999 * flat[head][None]
            every = 0.001 / flat.shape[1] + 0.999 * flat
            m = (one + every) / 2
            js = (-one * np.log(m / one) - every * np.log(m / every)) / 2
            total[head] += js.sum(-1).sum(-1)
    return total


def mds_stress(X: np.ndarray, D: np.ndarray) -> float:
    """Raw stress of an embedding: half the sum over ordered pairs of squared residuals (scikit-learn's, metric)."""
    E = np.sqrt(((X[:, None] - X[None]) ** 2).sum(-1))
    return float(((E - D) ** 2).sum() / 2)


@pytest.mark.slow
@covers("cluster", "--definition")
def test_cluster_definition_authors_is_clarks_head_distances_and_metric_mds(demo_store: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from bertsecrets_cli.cli.app import app
    from bertsecrets_cli.jobs.cluster import DISTANCE, EMBEDDING
    from bertsecrets_cli.store import open_store

    runner = CliRunner()
    out = tmp_path / "clark.h5"
    res = runner.invoke(app, ["cluster", str(demo_store), "-o", str(out), "--definition", "authors", "-f", "json", "--table", "summary"])
    assert res.exit_code == 0, res.stderr
    with open_store(demo_store) as st:
        docs = [att for _, att in st.iter_attention(list(range(st.n_examples)))]
    with open_store(out) as st:
        D, X = st.array(DISTANCE), st.array(EMBEDDING)
        prov = st.provenance()
    assert prov["definition"] == "authors" and prov["measure"] == "js-smoothed" and prov["level"] == "word pieces"
    want = clark_head_distances(docs)
    np.testing.assert_allclose(D, want, rtol=1e-9, atol=1e-9)
    from sklearn.manifold import MDS  # the notebook's call: metric MDS on the precomputed divergences

    try:
        ref = MDS(n_components=2, metric_mds=True, metric="precomputed", n_init=5, eps=1e-10, max_iter=1000, random_state=0, init="random")
    except TypeError:  # scikit-learn before 1.8
        ref = MDS(n_components=2, metric=True, dissimilarity="precomputed", n_init=5, eps=1e-10, max_iter=1000, random_state=0)
    Y = ref.fit_transform(want)
    assert mds_stress(X, want) == pytest.approx(mds_stress(Y, want), rel=1e-6)  # the same SMACOF optimum
    rows = {r["quantity"]: r["value"] for r in json.loads(res.stdout)}
    assert "metric MDS stress" in rows
    bad = runner.invoke(app, ["cluster", str(demo_store), "-o", str(tmp_path / "x.h5"), "--definition", "authors", "--measure", "js-distance"])
    assert bad.exit_code == 3 and "leave --measure out" in bad.stderr


# ------------------------------------------------------------------ flow (samiraabnar/attention_flow, attention_graph_util.py line 84)


@pytest.mark.slow
def test_flow_is_stored_row_normalised_and_format_1_stores_are_read_so_with_a_note(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    import shutil

    import h5py

    from bertsecrets_cli.jobs.extract import DataOptions, ExtractOptions, run_extract
    from bertsecrets_cli.store import open_store
    from bertsecrets_cli.store import schema as S

    new = tmp_path / "flow.h5"
    run_extract(ExtractOptions(data=DataOptions(task="sst2", limit=2), max_length=16, device="cpu", quiet=True,
                               quantities=("weights", "flow", "flow_raw")), new, command="test")
    with open_store(new) as st:
        assert st.version == S.VERSION == "2"
        raw = st.select_quantity("flow_raw").attention(1)
        normalised = st.select_quantity("flow").attention(1)
    assert raw.sum(-1).max() > 1.5  # raw max-flow rows sum to more than 1
    abnar = raw / raw.sum(-1, keepdims=True)  # compute_flows: flow_values[u] /= flow_values[u].sum()
    np.testing.assert_allclose(normalised, abnar, atol=2e-3)
    # a format-1 store kept the raw values under 'flow': read row-normalised, with a note
    old = tmp_path / "v1.h5"
    shutil.copy(new, old)
    with h5py.File(old, "r+") as f:
        f["flow/maps"][...] = f["flow_raw/maps"][...]
        f.attrs[S.A_VERSION] = "1"
    capsys.readouterr()
    with open_store(old) as st:
        legacy = st.select_quantity("flow").attention(1)
        streamed = dict(st.iter_attention([1]))[1]
    assert "format-1 store: its flow maps are raw max-flow values" in capsys.readouterr().err
    np.testing.assert_allclose(legacy, abnar, atol=2e-3)
    np.testing.assert_array_equal(streamed, legacy)
    from bertsecrets_cli.errors import InputError
    from bertsecrets_cli.store.merge import open_shards

    with pytest.raises(InputError, match="raw flow maps; re-extract"):
        open_shards([old, new], tmp_path / "m.h5", "attention")


# ------------------------------------------------------------------ linguistic features (Kovaleva et al. sec. 4.4)

NOUN_TAGS, VERB_TAGS, PRON_TAGS = {"NOUN", "PROPN"}, {"VERB"}, {"PRON"}


def kovaleva_feature(att: np.ndarray, words: list[list[int]], cls: int) -> tuple[np.ndarray, np.ndarray]:
    """Sec. 4.4 in words: the mean over all tokens of the attention a feature token receives (a word's pieces
    together), the max over the sentence's feature tokens; and the [CLS] row's attention to it."""
    col = np.max([[[att[l, h][:, p].sum(-1).mean() for h in range(att.shape[1])] for l in range(att.shape[0])] for p in words], 0)
    row = np.max([[[att[l, h, cls, p].sum() for h in range(att.shape[1])] for l in range(att.shape[0])] for p in words], 0)
    return col, row


def _reference_means(examples: list[tuple[np.ndarray, list[tuple[list[int], str, str]], int]]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """feature -> (mean attention, mean [CLS] attention) over the examples that have it."""
    tests = {"noun": lambda u, d: u in NOUN_TAGS, "verb": lambda u, d: u in VERB_TAGS, "pronoun": lambda u, d: u in PRON_TAGS,
             "subject": lambda u, d: d.split(":")[0] in ("nsubj", "csubj", "nsubjpass", "csubjpass"),
             "object": lambda u, d: d.split(":")[0] in ("obj", "iobj", "dobj", "dative")}
    out = {}
    for f, has in tests.items():
        vals = [kovaleva_feature(att, [p for p, u, d in ws if has(u, d) and p], cls) for att, ws, cls in examples
                if any(has(u, d) and p for p, u, d in ws)]
        out[f] = (np.mean([v[0] for v in vals], 0), np.mean([v[1] for v in vals], 0)) if vals else None
    return out


@pytest.mark.slow
def test_linguistic_features_from_conllu_match_the_papers_rule(treebank: Path, tiny_model_factory, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from bertsecrets_cli.analysis.wordlevel import word_piece_matrix
    from bertsecrets_cli.cli.app import app
    from bertsecrets_cli.data.conllu import read_conllu
    from bertsecrets_cli.jobs.attention_batches import iter_attention
    from bertsecrets_cli.model.load import load_model
    from bertsecrets_cli.model.tokenize import encode_examples
    from bertsecrets_cli.store import open_store

    model = tiny_model_factory("bert")
    res = CliRunner().invoke(app, ["framenet", "--conllu", str(treebank), "--model", str(model), "--device", "cpu", "-o", str(tmp_path / "d.h5"),
                                   "-f", "json", "--table", "features"])
    assert res.exit_code == 0, res.stderr
    layers = json.loads(res.stdout)
    assert [r["layer"] for r in layers] == ["L1", "L2"] and set(layers[0]) >= {"nouns", "verbs", "pronouns", "subjects", "objects"}
    lm = load_model(str(model), device="cpu")
    sents = list(read_conllu(str(treebank)))
    encs, ws = [], []
    for s in sents:
        text, spans, pos = " ".join(w.form for w in s.words), [], 0
        for w in s.words:
            spans.append((pos, pos + len(w.form)))
            pos += len(w.form) + 1
        enc = encode_examples(lm.tokenizer, [(text, None)], 128)[0]
        M = word_piece_matrix(enc.offsets, enc.special, spans, text)
        encs.append(enc)
        ws.append([(np.flatnonzero(M[k]).tolist(), w.upos, w.deprel) for k, w in enumerate(s.words)])
    examples = [(att.astype(np.float64), ws[i], 0) for i, _, att in iter_attention(lm, encs, 8, quiet=True)]
    ref = _reference_means(examples)
    with open_store(tmp_path / "d.h5") as st:
        heads = {k: v.values for k, v in st.heads().items()}
    for f, r in ref.items():
        assert r is not None, f  # the demo treebank has every feature
        np.testing.assert_allclose(heads[f"ling_{f}"], r[0], rtol=1e-5, atol=1e-6, err_msg=f)
        np.testing.assert_allclose(heads[f"ling_cls_{f}"], r[1], rtol=1e-5, atol=1e-6, err_msg=f)


@pytest.mark.slow
@covers("classify run", "--spacy")
def test_classify_spacy_pipeline_tags_the_texts_for_the_linguistic_features(demo_store: Path, tmp_path: Path) -> None:
    spacy = pytest.importorskip("spacy")
    from typer.testing import CliRunner

    from bertsecrets_cli.cli.app import app
    from bertsecrets_cli.store import open_store
    from bertsecrets_cli.store.reader import iter_tokens

    nlp = spacy.blank("en")  # a small pipeline built here: no model download
    ruler = nlp.add_pipe("attribute_ruler")
    ruler.add([[{"LOWER": {"IN": ["film", "movie", "story", "acting", "plot", "cast"]}}]], {"POS": "NOUN", "DEP": "nsubj"})
    ruler.add([[{"LOWER": {"IN": ["is", "was", "loved", "hated", "feels", "makes"]}}]], {"POS": "VERB"})
    ruler.add([[{"LOWER": {"IN": ["it", "i", "you", "we", "this"]}}]], {"POS": "PRON", "DEP": "dobj"})
    pipe = tmp_path / "pipe"
    nlp.to_disk(pipe)
    out = tmp_path / "p.h5"
    runner = CliRunner()
    res = runner.invoke(app, ["classify", "run", str(demo_store), "-o", str(out), "--spacy", str(pipe), "--features", "-f", "json", "--table", "features"])
    assert res.exit_code == 0, res.stderr
    examples = []
    with open_store(demo_store) as st:
        texts = st.strings("examples/text_a")
        toks = dict(iter_tokens(st))
        for i, att in st.iter_attention():
            tk, doc = toks[i], nlp(texts[i])
            ok = tk.special == 0
            ws = [(np.flatnonzero(ok & (tk.offsets[:, 0] < t.idx + len(t.text)) & (tk.offsets[:, 1] > t.idx)).tolist(), t.pos_, t.dep_) for t in doc]
            examples.append((att.astype(np.float64), ws, int(np.flatnonzero(tk.special == 1)[0])))
    ref = _reference_means(examples)
    with open_store(out) as st:
        heads = {k: v.values for k, v in st.heads().items()}
        assert st.provenance()["spacy_pipeline"] == str(pipe)
    for f, r in ref.items():
        if r is None:
            assert np.isnan(heads[f"ling_{f}"]).all(), f
            continue
        np.testing.assert_allclose(heads[f"ling_{f}"], r[0], rtol=1e-4, atol=1e-5, err_msg=f)
        np.testing.assert_allclose(heads[f"ling_cls_{f}"], r[1], rtol=1e-4, atol=1e-5, err_msg=f)
    assert ref["noun"] is not None and ref["verb"] is not None
    bad = runner.invoke(app, ["classify", "run", str(demo_store), "--spacy", str(tmp_path / "nothing")])
    assert bad.exit_code == 3 and "cannot load this spaCy pipeline" in bad.stderr


# ------------------------------------------------------------------ coverage notes


def test_coref_counts_anaphoric_mentions_whose_antecedents_fall_outside_their_segment(treebank: Path) -> None:
    from bertsecrets_cli.data.coref import read_coref
    from bertsecrets_cli.jobs.coref import pack_segments

    docs = read_coref(str(treebank))
    whole, _ = pack_segments(docs, lambda text: len(text.split()), 10_000)  # one segment per document
    assert sum(s.outside for s in whole) == 0
    split, _ = pack_segments(docs, lambda text: 1, 1)  # one sentence per segment
    want = 0
    for doc in docs:  # a mention is anaphoric in its document but has no antecedent in its own sentence
        seen: set[str] = set()
        for s in doc.sentences:
            want += sum(1 for m in s.mentions if m.entity in seen and not any(p.entity == m.entity and p.head < m.head for p in s.mentions))
            seen.update(m.entity for m in s.mentions)
    assert want > 0 and sum(s.outside for s in split) == want


@pytest.mark.slow
@covers("framenet", "--framenet")
def test_framenet_says_which_indexed_documents_it_read_and_shows_progress(tmp_path: Path, tiny_model_factory) -> None:
    from typer.testing import CliRunner

    from bertsecrets_cli.cli.app import app
    from bertsecrets_cli.store import open_store
    from test_framenet_cli import write_release

    root = write_release(tmp_path)
    ns = 'xmlns="http://framenet.icsi.berkeley.edu"'
    (root / "fulltextIndex.xml").write_text(f'<?xml version="1.0"?><fulltextIndex {ns}><corpus name="ANC" ID="1"><document name="doc" ID="2"/>'
                                            f'<document name="other" ID="3"/></corpus><corpus name="NTI" ID="4"><document name="x" ID="5"/></corpus>'
                                            '</fulltextIndex>')
    res = CliRunner().invoke(app, ["framenet", "--framenet", str(root), "--model", str(tiny_model_factory("bert")), "--device", "cpu",
                                   "-o", str(tmp_path / "fn.h5"), "-f", "json", "--table", "selection"])
    assert res.exit_code == 0, res.stderr
    assert "read 1 of the 3 full-text documents fulltextIndex.xml lists; 2 are not in" in res.stderr
    assert "reading FrameNet files:" in res.stderr  # progress while reading
    with open_store(tmp_path / "fn.h5") as st:
        prov = st.provenance()
    assert (prov["fulltext_documents_listed"], prov["fulltext_documents_read"]) == (3, 1)


@pytest.mark.slow
def test_plot_of_one_relation_names_that_relations_arcs_not_all_arcs(treebank: Path, tiny_model_factory, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from bertsecrets_cli.cli.app import app
    from bertsecrets_cli.store import open_store

    runner = CliRunner()
    dep = tmp_path / "d.h5"
    assert runner.invoke(app, ["framenet", "--conllu", str(treebank), "--model", str(tiny_model_factory("bert")), "--device", "cpu", "-o", str(dep), "-q"]).exit_code == 0
    with open_store(dep) as st:
        rows = {r["label"]: r for r in st.json("dependency/relations")}
    res = runner.invoke(app, ["plot", str(dep), "--quantity", "dep_det_accuracy", "--width", "120"])
    assert res.exit_code == 0, res.stderr
    # the title names the model's and the treebank's paths: where it wraps depends on their length (longer under
    # pytest-xdist's per-worker temporary folders), so the words are compared with the line breaks taken out
    out = " ".join(res.stdout.split())
    assert f"N={rows['det']['count']} 'det' arcs" in out and f"N={rows['all']['count']} " not in out
