"""The store: round trip, ragged offsets, normalised rows, atomicity, validation on open."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from bertsecrets_cli.errors import InputError, OutputError, StoreError
from bertsecrets_cli.model.tokenize import CLS, SEP
from bertsecrets_cli.store import open_store
from bertsecrets_cli.store import schema as S
from bertsecrets_cli.store.writer import StoreWriter


def test_round_trip_keeps_examples_tokens_and_provenance(demo_store: Path) -> None:
    with open_store(demo_store, kind="attention") as st:
        assert st.n_examples == 24 and (st.n_layers, st.n_heads) == (6, 12)
        ids = st.example_ids()
        assert len(set(ids)) == 24
        prov = st.provenance()
        assert prov["task"] == "sst2" and prov["attn_implementation"] == "bertsecrets"
        assert "demo" in prov["data_source"] and prov["command"] == "test"
        assert "transformers" in prov["environment"]
        tok = st.tokens(0)
        assert tok.special[0] == CLS and tok.special[-1] == SEP
        assert tok.text[0] == "[CLS]" and len(tok.text) == st.lengths()[0]
        texts = st.strings("examples/text_a")
        assert texts[0].split()[0].lower().strip(".,!?") in " ".join(tok.text).lower()


def test_ragged_offsets_are_cumulative_and_cover_the_flat_array(demo_store: Path) -> None:
    with open_store(demo_store) as st:
        L, H = st.n_layers, st.n_heads
        lengths = st.lengths().astype(np.int64)
        off = st.array("examples/attention_offset")
        assert off[0] == 0
        assert np.array_equal(np.diff(off), L * H * lengths[:-1] ** 2)
        assert st.h5[S.ATTENTION_MAPS].shape[0] == int((L * H * lengths**2).sum())
        tok_off = st.array("examples/token_offset")
        assert np.array_equal(np.diff(tok_off), lengths[:-1])
        assert len(lengths) == len(set(lengths.tolist())) or lengths.min() != lengths.max()  # data are really ragged


def test_every_stored_attention_row_sums_to_one(demo_store: Path) -> None:
    with open_store(demo_store) as st:
        n = 0
        for i, att in st.iter_attention(block_values=50_000):
            assert att.shape[-1] == st.lengths()[i]
            np.testing.assert_allclose(att.sum(-1), 1.0, atol=3e-3)
            n += 1
        assert n == st.n_examples


def test_iter_attention_matches_random_access(demo_store: Path) -> None:
    with open_store(demo_store) as st:
        for i, att in st.iter_attention(indices=[3, 4, 9]):
            assert np.array_equal(att, st.attention(i))


def test_stats_and_head_means_are_consistent(demo_store: Path) -> None:
    with open_store(demo_store) as st:
        names, stats = st.stats()
        assert names == list(S.STAT_NAMES)
        heads = st.heads()
        np.testing.assert_allclose(heads["stat_sep"].values, np.nanmean(stats[..., names.index("sep")], 0), rtol=1e-5)
        # stats recomputed from the stored maps agree with the stored ones
        att = st.attention(0)
        tok = st.tokens(0)
        np.testing.assert_allclose(stats[0, ..., names.index("cls")], att[..., tok.special == CLS].sum(-1).mean(-1), atol=2e-3)


def test_open_refuses_missing_non_hdf5_foreign_and_future_stores(tmp_path: Path, demo_store: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        open_store(tmp_path / "nope.h5")
    (tmp_path / "text.h5").write_text("hello")
    with pytest.raises(StoreError, match="not an HDF5 file"):
        open_store(tmp_path / "text.h5")
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f["x"] = 1
    with pytest.raises(StoreError, match="another tool"):
        open_store(tmp_path / "other.h5")
    future = tmp_path / "future.h5"
    future.write_bytes(demo_store.read_bytes())
    with h5py.File(future, "r+") as f:
        f.attrs[S.A_VERSION] = "99"
    with pytest.raises(StoreError, match="schema version 99"):
        open_store(future)


def test_truncated_store_is_reported_not_crashed(tmp_path: Path, demo_store: Path) -> None:
    cut = tmp_path / "cut.h5"
    data = demo_store.read_bytes()
    cut.write_bytes(data[: len(data) // 3])
    with pytest.raises(StoreError):
        with open_store(cut) as st:
            for _ in st.iter_attention():
                pass


def test_writer_is_atomic_and_never_replaces_without_force(tmp_path: Path) -> None:
    out = tmp_path / "r.h5"
    with pytest.raises(RuntimeError):
        with StoreWriter(out, "diff") as w:
            w.set_model(n_layers=1, n_heads=1)
            raise RuntimeError("boom")
    assert not out.exists() and not list(tmp_path.iterdir())
    with StoreWriter(out, "diff") as w:
        w.set_model(n_layers=1, n_heads=2)
        w.put_head_quantity("q", np.array([[1.0, 2.0]]), "test")
    before = out.read_bytes()
    with pytest.raises(OutputError, match="exists"):
        StoreWriter(out, "diff")
    with pytest.raises(RuntimeError):
        with StoreWriter(out, "diff", force=True) as w:
            raise RuntimeError("boom")
    assert out.read_bytes() == before
    with open_store(out, kind="diff") as st:
        assert st.heads()["q"].values.tolist() == [[1.0, 2.0]]


def test_incomplete_store_is_refused(tmp_path: Path) -> None:
    p = tmp_path / "half.h5"
    w = StoreWriter(p, "diff").__enter__()
    w.set_model(n_layers=1, n_heads=1)
    w.h5.flush()
    p.write_bytes(w.tmp.read_bytes())  # what a reader would see of an unfinished file
    w.abort()
    with pytest.raises(StoreError, match="incomplete"):
        open_store(p)


def test_output_in_missing_folder_is_refused_before_work(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match="does not exist"):
        StoreWriter(tmp_path / "no" / "x.h5", "diff")


def test_uint8_encoding_is_lossy_within_tolerance(tmp_path: Path) -> None:
    from bertsecrets_cli.jobs.extract import DataOptions, ExtractOptions, run_extract

    a = tmp_path / "a.h5"
    b = tmp_path / "b.h5"
    opts = dict(data=DataOptions(task="sst2", limit=4), device="cpu", quiet=True)
    run_extract(ExtractOptions(**opts), a, command="t")
    run_extract(ExtractOptions(**opts, encoding="uint8"), b, command="t")
    with open_store(a) as sa, open_store(b) as sb:
        assert sb.attrs("attention")["encoding"] == "uint8"
        assert np.abs(sa.attention(1) - sb.attention(1)).max() <= 0.0025


def _interleaved_store(path: Path, block_bytes: int, monkeypatch: pytest.MonkeyPatch) -> bytes:
    """Two appenders of one file growing in turn (maps and tokens, as extract's part writer), written through the WriteQueue."""
    import bertsecrets_cli.store.writer as W

    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    monkeypatch.setattr(W, "BLOCK_BYTES", block_bytes)
    rng = np.random.default_rng(0)
    with StoreWriter(path, "part", final=False) as w:
        w._writes = W.WriteQueue(block_bytes)
        maps = w.appender("maps", np.float16, chunk_rows=1024, fletcher32=True, writeback=True)
        ids = w.appender("ids", np.int32, chunk_rows=300)
        for _ in range(200):
            n = int(rng.integers(5, 40))
            maps.append(rng.random(n * n).astype(np.float16))
            ids.append(np.arange(n, dtype=np.int32))
    return path.read_bytes()


def test_writing_due_chunks_in_blocks_keeps_the_file_byte_for_byte(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # block 0: every due chunk written at once (the chunk-at-a-time writing of before); 4 MiB: the default blocks
    one = _interleaved_store(tmp_path / "a.h5", 0, monkeypatch)
    blocked = _interleaved_store(tmp_path / "b.h5", 4 << 20, monkeypatch)
    assert one == blocked
    with h5py.File(tmp_path / "b.h5") as f:
        assert f["maps"].shape[0] > 100_000 and f["ids"].shape[0] == f["ids"][()].size
