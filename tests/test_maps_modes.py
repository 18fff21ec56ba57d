"""extract --maps full|topk:K|none: what a store keeps of the maps, and what each analysis can do with it.

The top-k and statistics-only stores are extracted with the same options (and so the same batches) as the
session's full ``demo_store``; every comparison is against that full store read independently.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers import covers, one_line_error
from typer.testing import CliRunner

from bertsecrets_cli.cli.app import app
from bertsecrets_cli.errors import EXIT_INPUT, EXIT_STORE
from bertsecrets_cli.store import open_store

runner = CliRunner()
K = 3


def invoke(*args: str):  # noqa: ANN202
    return runner.invoke(app, list(args))


@pytest.fixture(scope="module")
def sparse_stores(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The demo_store's 24 examples again, kept as top-3 rows and as statistics only (through the command line)."""
    d = tmp_path_factory.mktemp("maps")
    out = {}
    for mode in (f"topk:{K}", "none"):
        out[mode] = d / f"{mode.replace(':', '')}.h5"
        res = invoke("extract", "-o", str(out[mode]), "-n", "24", "--device", "cpu", "--maps", mode, "-q")
        assert res.exit_code == 0, res.stderr
    return out


def test_topk_rows_hold_the_full_maps_largest_weights_argmax_first(demo_store: Path, sparse_stores: dict[str, Path]) -> None:
    with open_store(demo_store) as full, open_store(sparse_stores[f"topk:{K}"]) as top:
        assert top.maps_mode == f"topk:{K}" and full.maps_mode == "full"
        assert top.provenance()["maps"] == f"topk:{K}"
        np.testing.assert_array_equal(top.stats()[1], full.stats()[1])  # the statistics come from the full maps
        for i in range(full.n_examples):
            att = full.attention(i)
            index, values, rest = top.topk_attention(i)
            assert index.shape == (*att.shape[:3], min(K, att.shape[-1]))
            np.testing.assert_array_equal(index[..., 0], att.argmax(-1))  # the first of equal maxima, as numpy
            np.testing.assert_array_equal(values, np.take_along_axis(att, index, -1))  # the stored values themselves
            kth = np.sort(att, -1)[..., -index.shape[-1]]
            assert (values[..., -1] == kth).all()  # nothing larger was left out
            np.testing.assert_allclose(rest, 1 - values.sum(-1), atol=3e-3)
            dense = top.sparse_attention(i)
            np.testing.assert_array_equal(dense[dense > 0], att[dense > 0])
    with open_store(sparse_stores["none"]) as none, open_store(demo_store) as full:
        assert none.maps_mode == "none" and none.h5["attention/maps"].shape == (0,)
        np.testing.assert_array_equal(none.stats()[1], full.stats()[1])


@covers("extract", "--maps")
def test_analyses_needing_maps_refuse_a_store_without_them_naming_the_option(sparse_stores: dict[str, Path], tmp_path: Path) -> None:
    top, none = str(sparse_stores[f"topk:{K}"]), str(sparse_stores["none"])
    for cmd in (["cluster", none, "-o", str(tmp_path / "c.h5")],
                ["words", top, "-o", str(tmp_path / "w.h5")], ["diff", top, top, "-o", str(tmp_path / "d.h5")]):
        one_line_error(invoke(*cmd), EXIT_STORE, "rerun extract with --maps full")
    one_line_error(invoke("view", none, "-o", str(tmp_path / "v.html")), EXIT_STORE, "--maps topk:K")
    assert not list(tmp_path.iterdir())  # nothing half-written
    one_line_error(invoke("extract", "-o", str(tmp_path / "x.h5"), "-n", "2", "--maps", "topk:0"), EXIT_INPUT, "--maps", "topk:K")
    one_line_error(invoke("extract", "-o", str(tmp_path / "x.h5"), "-n", "2", "--maps", "none", "--quantities", "weights,norms"),
                   EXIT_INPUT, "--maps none")


def test_view_and_plot_read_the_strong_links_of_a_topk_store(sparse_stores: dict[str, Path], tmp_path: Path) -> None:
    top = str(sparse_stores[f"topk:{K}"])
    res = invoke("view", top, "-n", "2", "-o", str(tmp_path / "v.html"))
    assert res.exit_code == 0 and (tmp_path / "v.html").stat().st_size > 0, res.stderr
    res = invoke("plot", top, "--layer", "1", "--head", "1", "--example", "0", "-o", str(tmp_path / "m.png"))
    assert res.exit_code == 0 and (tmp_path / "m.png").read_bytes()[:4] == b"\x89PNG", res.stderr


def test_check_and_merge_understand_topk_shards(tmp_path: Path) -> None:
    shards = [tmp_path / f"s{i}.h5" for i in range(2)]
    for i, s in enumerate(shards):
        res = invoke("extract", "-o", str(s), "-n", "6", "--max-length", "16", "--device", "cpu", "--maps", "topk:2", "--shard", f"{i}/2", "-q")
        assert res.exit_code == 0, res.stderr
    merged = tmp_path / "m.h5"
    assert invoke("merge", *map(str, shards), "-o", str(merged)).exit_code == 0
    res = invoke("check", str(merged))
    assert res.exit_code == 0 and "top 2 per row" in res.stdout, res.stdout
    with open_store(merged) as m, open_store(shards[0]) as a, open_store(shards[1]) as b:
        assert m.maps_mode == "topk:2" and m.n_examples == a.n_examples + b.n_examples
        got = [m.topk_attention(i) for i in range(m.n_examples)]
        want = [s.topk_attention(i) for s in (a, b) for i in range(s.n_examples)]
        for g, w in zip(got, want):
            for x, y in zip(g, w):
                np.testing.assert_array_equal(x, y)
    full = tmp_path / "f.h5"
    assert invoke("extract", "-o", str(full), "-n", "3", "--max-length", "16", "--device", "cpu", "-q").exit_code == 0
    one_line_error(invoke("merge", str(shards[0]), str(full), "-o", str(tmp_path / "x.h5")), EXIT_STORE)


def test_classify_on_stores_without_maps_gives_the_full_maps_labels_and_shares(demo_store: Path, sparse_stores: dict[str, Path], tmp_path: Path) -> None:
    """The rule classifier's features are computed during extraction from the values a full store holds."""
    from bertsecrets_cli.store.reader import read_patterns

    outs = {}
    for name, src in (("full", demo_store), *sparse_stores.items()):
        outs[name] = tmp_path / f"p-{name.replace(':', '')}.h5"
        res = invoke("classify", str(src), "-o", str(outs[name]), "-q")
        assert res.exit_code == 0, res.stderr
    with open_store(outs["full"]) as f:
        want = read_patterns(f)
        want_shares = f.array("patterns/overall_shares"), f.array("patterns/layer_shares")
    for name in sparse_stores:
        with open_store(outs[name]) as g:
            got = read_patterns(g)
            np.testing.assert_array_equal(got.labels, want.labels)
            np.testing.assert_array_equal(got.features, want.features)
            np.testing.assert_array_equal(g.array("patterns/overall_shares"), want_shares[0])
            np.testing.assert_array_equal(g.array("patterns/layer_shares"), want_shares[1])
