"""Head clustering (Clark et al. 2019, Figure 6): JS distances, classical MDS, the cluster command and its shards."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from helpers import covers, one_line_error
from typer.testing import CliRunner

from bertsecrets_cli.analysis.clustering import HeadDistanceAccumulator, classical_mds, layer_cohesion, nearest_heads, pairwise_js
from bertsecrets_cli.cli.app import app

runner = CliRunner()


def _planted(T: int, rng: np.random.Generator) -> np.ndarray:
    """[2 layers, 3 heads, T, T]: layer 1 attends to the previous token, layer 2 to the first token, with noise."""
    att = np.zeros((2, 3, T, T))
    for h in range(3):
        prev = np.eye(T, k=-1)
        prev[0, 0] = 1
        att[0, h] = 0.9 * prev + 0.1 * rng.dirichlet(np.ones(T), size=T)
        first = np.zeros((T, T))
        first[:, 0] = 1
        att[1, h] = 0.9 * first + 0.1 * rng.dirichlet(np.ones(T), size=T)
    return att


def test_js_matches_scipy_and_is_a_symmetric_distance() -> None:
    from scipy.spatial.distance import jensenshannon

    rng = np.random.default_rng(0)
    P = rng.dirichlet(np.ones(5), size=(4, 3))  # 4 heads, 3 rows, 5 keys
    P[3] = P[0]
    for measure, power in (("js-distance", 1), ("js-divergence", 2)):
        D = pairwise_js(P, measure)
        assert np.allclose(D, D.T) and np.allclose(np.diag(D), 0) and D[0, 3] == pytest.approx(0, abs=1e-12)
        expected = sum(jensenshannon(P[1, r], P[2, r], base=2) ** power for r in range(3))
        assert D[1, 2] == pytest.approx(expected, rel=1e-9)
    one_hot = np.zeros((2, 1, 2))
    one_hot[0, 0, 0] = one_hot[1, 0, 1] = 1
    assert pairwise_js(one_hot)[0, 1] == pytest.approx(1.0)  # disjoint supports: the maximum
    with pytest.raises(ValueError):
        pairwise_js(P, "cosine")


def test_classical_mds_recovers_planar_distances_deterministically() -> None:
    rng = np.random.default_rng(1)
    pts = rng.normal(size=(9, 2))
    D = np.linalg.norm(pts[:, None] - pts[None], axis=-1)
    X, explained = classical_mds(D)
    assert np.allclose(np.linalg.norm(X[:, None] - X[None], axis=-1), D, atol=1e-9)
    assert explained.sum() == pytest.approx(1.0)
    X2, _ = classical_mds(D.copy())
    assert np.array_equal(X, X2)


def test_planted_layers_are_each_others_nearest_and_shards_add_exactly() -> None:
    rng = np.random.default_rng(2)
    maps = [_planted(T, rng) for T in (5, 8, 6, 7)]
    whole = HeadDistanceAccumulator(2, 3)
    for m in maps:
        whole.add(m)
    a, b = HeadDistanceAccumulator(2, 3), HeadDistanceAccumulator(2, 3)
    for m in maps[:1]:
        a.add(m)
    for m in maps[1:]:
        b.add(m)
    a.absorb(b.total, b.rows, b.examples)
    assert a.rows == whole.rows == 26 and np.allclose(a.mean(), whole.mean())
    D = whole.mean()
    idx, _ = nearest_heads(D, 2)
    assert (idx // 3 == (np.arange(6) // 3)[:, None]).all()  # both nearest heads are in the head's own layer
    within, between = layer_cohesion(D, 2, 3)
    assert (within < 0.5 * between).all()
    X, _ = classical_mds(D)
    assert np.sign(X[:3, 0]).tolist() != np.sign(X[3:, 0]).tolist()  # the layers lie on either side of the first axis


# ---------------------------------------------------------------------------------------------- the command


@pytest.fixture(scope="module")
def words_store(demo_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from bertsecrets_cli.jobs.words import WordsOptions, run_words

    return run_words(demo_store, tmp_path_factory.mktemp("cluster") / "words.h5", WordsOptions(quiet=True)).path


@pytest.fixture(scope="module")
def patterns_store(demo_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from bertsecrets_cli.jobs.classify import ClassifyOptions, run_classify

    out = tmp_path_factory.mktemp("cluster") / "pat.h5"
    run_classify(demo_store, out, ClassifyOptions(quiet=True))
    return out


@covers("cluster", "--output", "--format", "--top")
def test_cluster_writes_distances_embedding_and_head_quantities(words_store: Path, tmp_path: Path) -> None:
    from bertsecrets_cli.jobs.cluster import DISTANCE, EMBEDDING
    from bertsecrets_cli.store import open_store

    out = tmp_path / "c.h5"
    res = runner.invoke(app, ["cluster", str(words_store), "--output", str(out), "--format", "json", "--table", "nearest", "--top", "2", "-q"])
    assert res.exit_code == 0, res.stderr
    nearest = json.loads(res.stdout)  # json only: the terminal scatter is drawn with --format table
    assert len(nearest) == 72 and [c for c in nearest[0] if c.startswith("#")] == ["#1", "#2"]
    with open_store(out, kind="clusters") as st:
        D, X = st.array(DISTANCE), st.array(EMBEDDING)
        assert D.shape == (72, 72) and np.allclose(D, D.T) and (np.diag(D) == 0).all() and (D[~np.eye(72, dtype=bool)] > 0).all()
        assert X.shape == (72, 2)
        assert {"cluster_x", "cluster_y", "cluster_nearest", "cluster_mean"} <= set(st.heads())
        prov = st.provenance()
        assert prov["level"] == "words" and prov["measure"] == "js-distance" and int(prov["n_examples"]) == st.n_examples == 24
        first = nearest[0]
        assert first["head"] == "L1H1" and first["d1"] == pytest.approx(float(np.sort(D[0])[1]), rel=1e-6)  # the store's distances


@covers("cluster", "--measure", "--width")
def test_measure_changes_the_distances_and_width_the_scatter(demo_store: Path, tmp_path: Path) -> None:
    from bertsecrets_cli.jobs.cluster import DISTANCE
    from bertsecrets_cli.store import open_store

    a, b = tmp_path / "a.h5", tmp_path / "b.h5"
    ra = runner.invoke(app, ["cluster", str(demo_store), "-o", str(a), "--width", "60", "-q"])
    rb = runner.invoke(app, ["cluster", str(demo_store), "-o", str(b), "--measure", "js-divergence", "--width", "100", "-q"])
    assert ra.exit_code == 0 and rb.exit_code == 0, (ra.stderr, rb.stderr)
    with open_store(a) as sa, open_store(b) as sb:
        da, db = sa.array(DISTANCE), sb.array(DISTANCE)
        assert sa.provenance()["level"] == "word pieces" and sb.provenance()["measure"] == "js-divergence"
        off = ~np.eye(len(da), dtype=bool)
        assert (db[off] <= da[off] + 1e-12).all() and not np.allclose(da, db)  # mean of x^2 <= mean of x for x in [0, 1]
    frame = [ln for ln in ra.stdout.splitlines() if ln.startswith("+-")]
    assert frame and len(frame[0]) == 60
    assert len([ln for ln in rb.stdout.splitlines() if ln.startswith("+-")][0]) == 100
    bad = runner.invoke(app, ["cluster", str(demo_store), "-o", str(tmp_path / "x.h5"), "--measure", "cosine"])
    one_line_error(bad, 3, "--measure cosine")


@covers("cluster", "--patterns", "--figure")
def test_patterns_colour_the_scatter_and_the_figure(words_store: Path, patterns_store: Path, tmp_path: Path) -> None:
    from bertsecrets_cli.store import open_store

    plain = runner.invoke(app, ["cluster", str(words_store), "-o", str(tmp_path / "p.h5"), "--figure", str(tmp_path / "p.svg"), "-q"])
    res = runner.invoke(app, ["cluster", str(words_store), "-o", str(tmp_path / "c.h5"), "--patterns", str(patterns_store),
                              "--figure", str(tmp_path / "c.svg"), "-q"])
    assert plain.exit_code == 0 and res.exit_code == 0, (plain.stderr, res.stderr)
    assert "vertical" in res.stdout and "L1" not in res.stdout.splitlines()[-2]  # legend: pattern types, not layers
    assert "L1" in plain.stdout.splitlines()[-2]
    svg, plain_svg = (tmp_path / "c.svg").read_text(), (tmp_path / "p.svg").read_text()
    assert "by majority pattern type" in svg and "by majority pattern type" not in plain_svg
    with open_store(tmp_path / "c.h5") as st:
        assert st.provenance()["patterns_store"] == str(patterns_store)
    one_line_error(runner.invoke(app, ["cluster", str(words_store), "-o", str(tmp_path / "x.h5"), "--patterns", str(words_store)]), 4, "patterns store")
    one_line_error(runner.invoke(app, ["cluster", str(words_store), "-o", str(tmp_path / "y.h5"), "--figure", str(tmp_path / "f.gif")]), 3, "f.gif")
    assert not (tmp_path / "x.h5").exists() and not (tmp_path / "y.h5").exists()


@covers("cluster", "--shard")
def test_shards_merge_into_the_unsharded_result(words_store: Path, tmp_path: Path) -> None:
    from bertsecrets_cli.jobs.cluster import DISTANCE, EMBEDDING
    from bertsecrets_cli.store import open_store

    whole = tmp_path / "whole.h5"
    assert runner.invoke(app, ["cluster", str(words_store), "-o", str(whole), "-q"]).exit_code == 0
    parts = []
    for i in range(3):
        p = tmp_path / f"s{i}.h5"
        r = runner.invoke(app, ["cluster", str(words_store), "-o", str(p), "--shard", f"{i}/3", "-q"])
        assert r.exit_code == 0, r.stderr
        parts.append(str(p))
    with open_store(parts[1]) as st:
        assert st.n_examples == 8 and int(st.provenance()["shard_index"]) == 1
    merged = tmp_path / "merged.h5"
    r = runner.invoke(app, ["merge", *parts, "-o", str(merged), "-q"])
    assert r.exit_code == 0, r.stderr
    with open_store(whole) as a, open_store(merged) as b:
        assert np.allclose(a.array(DISTANCE), b.array(DISTANCE), rtol=1e-10, atol=1e-13)
        assert np.allclose(a.array(EMBEDDING), b.array(EMBEDDING), atol=1e-9)
        assert a.example_ids() == b.example_ids()
    one_line_error(runner.invoke(app, ["merge", parts[0], parts[2], "-o", str(tmp_path / "gap.h5")]), 4, "missing")


@covers("cluster", "--force", "--quiet", "--verbose", "--debug")
def test_cluster_refuses_its_inputs_and_existing_outputs_and_talks_as_asked(words_store: Path, tmp_path: Path) -> None:
    out = tmp_path / "c.h5"
    loud = runner.invoke(app, ["cluster", str(words_store), "-o", str(out), "--verbose", "-f", "tsv"])
    assert loud.exit_code == 0 and "timings:" in loud.stderr and "compared 72 heads" in loud.stderr
    one_line_error(runner.invoke(app, ["cluster", str(words_store), "-o", str(out)]), 6, "exists")
    quiet = runner.invoke(app, ["cluster", str(words_store), "-o", str(out), "--force", "--quiet", "-f", "tsv"])
    assert quiet.exit_code == 0 and quiet.stderr == ""
    before = words_store.stat().st_mtime_ns
    one_line_error(runner.invoke(app, ["cluster", str(words_store), "-o", str(words_store), "--force"]), 6, "input store")
    assert words_store.stat().st_mtime_ns == before
    dbg = runner.invoke(app, ["cluster", str(out), "-o", str(tmp_path / "d.h5"), "--debug"])
    assert dbg.exit_code == 4 and "Traceback" in dbg.stderr and "clusters store" in dbg.stderr


@covers("cluster", "--no-locking")
@covers("words", "--no-locking", "--force", "--format", "--quiet", "--verbose", "--debug")
def test_no_locking_reaches_hdf5_and_words_talks_as_asked(demo_store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import h5py

    seen: list[object] = []
    real = h5py.File

    def spy(*args: object, **kwargs: object) -> object:
        seen.append(kwargs.get("locking"))
        return real(*args, **kwargs)

    monkeypatch.setattr(h5py, "File", spy)
    monkeypatch.delenv("BERTSECRETS_NO_LOCKING", raising=False)
    w = tmp_path / "w.h5"
    r = runner.invoke(app, ["words", str(demo_store), "-o", str(w), "--no-locking", "--format", "json", "--verbose"])
    assert r.exit_code == 0, r.stderr
    assert seen and all(x is False for x in seen) and "timings:" in r.stderr
    assert json.loads(r.stdout)[0]["quantity"] == "examples"
    seen.clear()
    assert runner.invoke(app, ["words", str(demo_store), "-o", str(w), "--force", "--quiet"]).stderr == ""
    assert False not in seen  # without the flag, HDF5's default locking
    seen.clear()
    r = runner.invoke(app, ["cluster", str(w), "-o", str(tmp_path / "c.h5"), "--no-locking", "-q"])
    assert r.exit_code == 0 and seen and all(x is False for x in seen)
    monkeypatch.setattr(h5py, "File", real)
    dbg = runner.invoke(app, ["words", str(w), "-o", str(tmp_path / "x.h5"), "--debug"])
    assert dbg.exit_code == 4 and "Traceback" in dbg.stderr


def test_cluster_is_deterministic(words_store: Path, tmp_path: Path) -> None:
    from bertsecrets_cli.jobs.cluster import ClusterOptions, run_cluster

    a = run_cluster(words_store, tmp_path / "a.h5", ClusterOptions(quiet=True))
    b = run_cluster(words_store, tmp_path / "b.h5", ClusterOptions(quiet=True))
    assert np.array_equal(a.distance, b.distance) and np.array_equal(a.embedding, b.embedding)


def test_patterns_of_other_examples_are_refused(words_store: Path, patterns_store: Path, tmp_path: Path) -> None:
    """The colours are the majority type over the examples clustered: patterns of another example set are refused."""
    import shutil

    import h5py

    other = tmp_path / "other.pat.h5"
    shutil.copy(patterns_store, other)
    with h5py.File(other, "r+") as f:
        ids = f["examples/id"]
        ids[0] = b"not-in-the-words-store"
    res = runner.invoke(app, ["cluster", str(words_store), "-o", str(tmp_path / "c.h5"), "--patterns", str(other)])
    one_line_error(res, 3, "other.pat.h5", "patterns of other examples")
    assert not (tmp_path / "c.h5").exists()
