"""extract's capture on its own thread gives what the inline capture gives, bit for bit; ``--memory`` picks the
heap policy (recorded in the provenance) and never changes a stored value."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from bertsecrets_cli.errors import EXIT_INPUT
from helpers import covers


def _capture(lm, pairs, maps: str, k: int, worker) -> tuple[list, np.ndarray, list | None]:
    from bertsecrets_cli.model.attention import forward_streaming
    from bertsecrets_cli.model.capture import BatchCapture
    from bertsecrets_cli.model.tokenize import collate, encode_examples, sink_first

    enc = sorted(encode_examples(lm.tokenizer, pairs, 48), key=lambda e: e.length)
    batch = collate(enc, lm.tokenizer.pad_token_id if lm.tokenizer.pad_token_id is not None else 0, lm.device, lm.token_types)
    if lm.causal:
        enc = [sink_first(e) for e in enc]
    cap = BatchCapture(enc, lm.n_layers, lm.n_heads, "float16", lm.device, lm.windows, maps, k, worker=worker)
    forward_streaming(lm.model, batch, lm.n_layers, cap)
    out, stats = cap.results()
    return out, stats, cap.stored_maps()


def _same(a, b) -> None:
    if a is None or b is None:
        assert a is None and b is None
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            _same(x, y)
    else:
        assert a.dtype == b.dtype and np.array_equal(a, b, equal_nan=True)


@pytest.mark.parametrize("family", ["bert", "gpt2"])
@pytest.mark.parametrize("maps", ["full", "topk:3", "none"])
def test_capture_on_its_own_thread_equals_the_inline_capture_bit_for_bit(family: str, maps: str, tiny_model_factory) -> None:
    from bertsecrets_cli.model.capture_worker import LayerWorker
    from bertsecrets_cli.model.load import load_model

    lm = load_model(None, device="cpu") if family == "bert" else load_model(str(tiny_model_factory(family)), device="cpu")
    pairs = [("A film.", None), ("Nothing about this film worked, sadly.", None), ("One; two, three.", None),
             ("The cat sat on the mat, and then it left; nobody noticed.", None), ("Yes.", None)]
    mode, k = (maps.split(":")[0], int(maps.split(":")[1])) if ":" in maps else (maps, 0)
    inline = _capture(lm, pairs, mode, k, None)
    with LayerWorker() as w:
        threaded = _capture(lm, pairs, mode, k, w)
    _same(list(inline), list(threaded))


def test_a_failure_on_the_capture_thread_is_raised_in_the_caller_and_the_thread_ends() -> None:
    from bertsecrets_cli.model.capture_worker import LayerWorker

    done: list[int] = []

    def work(i: int) -> None:
        if i == 1:
            raise ValueError("layer 1 failed")
        done.append(i)

    w = LayerWorker(pending=1)
    with pytest.raises(ValueError, match="layer 1 failed"):
        with w:
            for i in range(4):
                w.submit(work, i)
            w.wait()
    assert done[0] == 0 and 1 not in done
    assert w._pool._shutdown  # joined: no thread left behind


def test_the_capture_thread_is_used_only_when_torch_leaves_a_core_free(monkeypatch: pytest.MonkeyPatch) -> None:
    import bertsecrets_cli.model.capture_worker as cw

    monkeypatch.setattr(cw, "cpu_threads", lambda: 2)
    monkeypatch.setattr(torch, "get_num_threads", lambda: 1)
    assert cw.offload_capture(torch.device("cpu"))
    assert not cw.offload_capture(torch.device("meta"))  # not a CPU: its kernels are not the forward's thread's
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    assert not cw.offload_capture(torch.device("cpu"))
    monkeypatch.setattr(cw, "FORCE", True)
    assert cw.offload_capture(torch.device("cpu"))


def test_memory_auto_is_fast_on_the_cpu_and_flat_on_an_accelerator() -> None:
    from bertsecrets_cli.host_memory import resolve_memory

    assert resolve_memory("auto", "cpu") == "fast"
    assert resolve_memory("auto", "cuda") == "flat" and resolve_memory("auto", "mps") == "flat"
    assert resolve_memory("flat", "cpu") == "flat" and resolve_memory("fast", "cuda") == "fast"
    with pytest.raises(ValueError, match="unknown memory mode"):
        resolve_memory("small", "cpu")


def _extract(folder: Path, *args: str) -> subprocess.CompletedProcess:
    folder.mkdir()
    env = {**os.environ, "SOURCE_DATE_EPOCH": "1700000000", "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "bertsecrets_cli", "extract", "--limit", "20", "--batch-size", "6", "-o", "s.h5", "-q", *args],
                          cwd=folder, env=env, capture_output=True, text=True)


def _datasets(path: Path) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, obj: out.__setitem__(name, obj[...]) if isinstance(obj, h5py.Dataset) and not name.startswith("provenance") else None)
    return out


@pytest.mark.slow
@covers("extract", "--memory")
def test_memory_flat_and_fast_store_the_same_values_and_say_which_was_used(tmp_path: Path) -> None:
    from bertsecrets_cli.store import open_store

    runs = {m: _extract(tmp_path / m, "--memory", m) for m in ("flat", "fast", "auto")}
    for m, r in runs.items():
        assert r.returncode == 0, r.stderr
    with open_store(tmp_path / "flat" / "s.h5") as a, open_store(tmp_path / "fast" / "s.h5") as b, open_store(tmp_path / "auto" / "s.h5") as c:
        assert a.provenance()["memory"] == "flat" and b.provenance()["memory"] == "fast"
        assert c.provenance()["memory"] == "fast"  # auto on the CPU
    da, db = _datasets(tmp_path / "flat" / "s.h5"), _datasets(tmp_path / "fast" / "s.h5")
    assert da.keys() == db.keys() and "attention/maps" in da
    for name in da:
        assert np.array_equal(da[name], db[name]), name


def test_an_unknown_memory_mode_is_one_line_and_writes_nothing(tmp_path: Path) -> None:
    r = _extract(tmp_path / "x", "--memory", "tiny")
    assert r.returncode == EXIT_INPUT
    assert r.stderr.strip().count("\n") == 0 and "--memory tiny" in r.stderr and "auto, fast, flat" in r.stderr
    assert not (tmp_path / "x" / "s.h5").exists()
