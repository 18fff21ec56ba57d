"""extract's pipeline: per-layer capture equals the stacked reference bit for bit; the writer thread stops both sides on failure."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from bertsecrets_cli.errors import OutputError
from bertsecrets_cli.jobs.writer_thread import WriterThread


@pytest.fixture(scope="module")
def embedded():
    from bertsecrets_cli.model.load import load_model

    return load_model(None, device="cpu")


def _demo_pairs(n: int) -> list[tuple[str, str | None]]:
    from bertsecrets_cli.data.sources import load_dataset
    from bertsecrets_cli.data.tasks import get_task

    return [(e.text_a, e.text_b) for e in load_dataset(get_task("mrpc"), None, "dev").examples[:n]]


@pytest.mark.parametrize("encoding", ["float16", "float32", "uint8", "pairs"])
def test_streamed_capture_equals_the_stacked_reference_bit_for_bit(embedded, encoding: str) -> None:
    from bertsecrets_cli.model.batch_stats import batch_head_stats
    from bertsecrets_cli.model.attention import forward_streaming, forward_with_attention
    from bertsecrets_cli.model.capture import BatchCapture
    from bertsecrets_cli.model.tokenize import collate, encode_examples, token_masks
    from bertsecrets_cli.store.writer import encode_values

    lm = embedded
    pairs = [("A film.", None), ("Nothing about this film worked, sadly.", None), ("Nothing about this film worked, badly.", None),
             ("One.", None), ("The cat sat on the mat, and then it left; nobody noticed.", None)]
    if encoding == "pairs":  # two [SEP] columns each, punctuation in both sentences
        pairs, encoding = _demo_pairs(6) + [("Yes, no; maybe.", "Well... fine!")], "float16"
    enc = sorted(encode_examples(lm.tokenizer, pairs, 64), key=lambda e: e.length)
    if not enc[0].type_ids.any():
        assert len({e.length for e in enc}) < len(enc)  # a run of equal lengths is copied in one go
    batch = collate(enc, lm.tokenizer.pad_token_id, lm.device, lm.model_type)
    _, probs = forward_with_attention(lm.model, batch, lm.n_layers)
    ref_stats = batch_head_stats(probs, *token_masks(enc, lm.device))
    cap = BatchCapture(enc, lm.n_layers, lm.n_heads, encoding, lm.device)
    forward_streaming(lm.model, batch, lm.n_layers, cap)
    maps, stats = cap.results()
    assert np.array_equal(stats, ref_stats, equal_nan=True)
    host = probs.to(torch.float16 if encoding == "float16" else torch.float32).numpy()
    for j, e in enumerate(enc):
        T = e.length
        want = encode_values(host[j, :, :, :T, :T], encoding)
        assert maps[j].dtype == want.dtype and maps[j].shape == (lm.n_layers, lm.n_heads, T, T)
        assert np.array_equal(maps[j], want)


def test_capture_refuses_a_missing_layer(embedded) -> None:
    from bertsecrets_cli.model.capture import BatchCapture
    from bertsecrets_cli.model.tokenize import encode_examples

    enc = encode_examples(embedded.tokenizer, [("Short.", None)], 16)
    cap = BatchCapture(enc, embedded.n_layers, embedded.n_heads, "float16", "cpu")
    cap(0, torch.full((1, embedded.n_heads, enc[0].length, enc[0].length), 1 / enc[0].length), None)
    with pytest.raises(RuntimeError, match="captured 1 layers"):
        cap.results()


# --- the writer thread -------------------------------------------------------------------------------


def test_writer_thread_handles_items_in_order_and_closes_cleanly() -> None:
    seen, closed = [], []
    with WriterThread(seen.append, closed.append, maxsize=2) as w:
        for i in range(50):
            w.submit(i)
    assert seen == list(range(50)) and closed == [False]


def test_a_writer_failure_is_raised_in_the_producer_and_stops_it() -> None:
    closed = []

    def handle(item: int) -> None:
        if item == 3:
            raise OutputError("x.h5: no space left on the device; nothing was written")

    submitted = 0
    with pytest.raises(OutputError, match="no space left"):
        with WriterThread(handle, closed.append, maxsize=1) as w:
            for i in range(10_000):
                w.submit(i)
                submitted += 1
    assert closed == [True]
    assert submitted < 100  # the producer stopped soon after the failure, it did not run to the end


def test_a_producer_failure_cancels_the_writer_which_cleans_up() -> None:
    seen, closed = [], []
    release = threading.Event()

    def handle(item: int) -> None:
        release.wait(5)
        seen.append(item)

    with pytest.raises(KeyboardInterrupt):
        with WriterThread(handle, closed.append, maxsize=8) as w:
            for i in range(5):
                w.submit(i)
            release.set()
            raise KeyboardInterrupt
    assert closed == [True]
    assert len(seen) < 5  # queued items were dropped, not written after the stop


def test_the_queue_is_bounded_so_a_slow_writer_slows_the_producer() -> None:
    release = threading.Event()
    done = []
    with WriterThread(lambda item: release.wait(5), lambda failed: None, maxsize=2) as w:
        producer = threading.Thread(target=lambda: [w.submit(i) for i in range(6)] and done.append(True))
        producer.start()
        time.sleep(0.5)
        assert not done  # 1 in hand + 2 queued: the 4th submit waits
        release.set()
        producer.join(5)
    assert done == [True]


# --- through run_extract -----------------------------------------------------------------------------


def _opts(limit: int, **kw):
    from bertsecrets_cli.jobs.extract import DataOptions, ExtractOptions

    return ExtractOptions(data=DataOptions(task="sst2", limit=limit), device="cpu", quiet=True, **kw)


def test_a_write_failure_mid_part_fails_the_run_and_keeps_only_complete_parts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from bertsecrets_cli.jobs.extract import run_extract
    from bertsecrets_cli.store import writer as W

    real_add, calls = W.AttentionPartWriter.add, []

    def failing_add(self, *a, **k):
        calls.append(1)
        if len(calls) == 13:  # inside the second part of 8
            raise OutputError(f"{tmp_path / 'x.h5'}: no space left on the device; nothing was written")
        return real_add(self, *a, **k)

    monkeypatch.setattr(W.AttentionPartWriter, "add", failing_add)
    out = tmp_path / "x.h5"
    with pytest.raises(OutputError, match="no space left"):
        run_extract(_opts(20, batch_size=4, part_size=8), out, command="test")
    parts = out.with_name(f".{out.name}.parts")
    assert not out.exists()
    assert sorted(p.name for p in parts.iterdir()) == ["manifest.json", "part-000000.h5"]  # no half part, no temporary
    monkeypatch.setattr(W.AttentionPartWriter, "add", real_add)
    run_extract(_opts(20, batch_size=4, part_size=8, resume=True), out, command="test")
    from bertsecrets_cli.store import open_store

    with open_store(out) as st:
        assert st.n_examples == 20


def test_a_forward_failure_stops_the_writer_and_leaves_no_temporary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from bertsecrets_cli.jobs.extract import run_extract
    from bertsecrets_cli.model import capture

    real, calls = capture.BatchCapture.results, []

    def failing(self):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("CUDA out of memory (simulated)")
        return real(self)

    monkeypatch.setattr(capture.BatchCapture, "results", failing)
    out = tmp_path / "y.h5"
    with pytest.raises(RuntimeError, match="out of memory"):
        run_extract(_opts(12, batch_size=2, part_size=4), out, command="test")
    parts = out.with_name(f".{out.name}.parts")
    assert sorted(p.name for p in parts.iterdir()) == ["manifest.json", "part-000000.h5"]
    # the writer thread is gone (other threads, such as tqdm's monitor started by an earlier test, may remain)
    assert not [p for p in tmp_path.rglob("*.tmp")] and not [t for t in threading.enumerate() if t.name == "bertsecrets-writer"]
