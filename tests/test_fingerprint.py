"""Model fingerprints: hashed once per (path, size, mtime), exact whenever the weights change."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import pytest

from bertsecrets_cli.model import fingerprint as fp


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[Path]:
    """A fresh cache folder and memo; returns the list of files actually hashed."""
    monkeypatch.setenv("BERTSECRETS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(fp, "_MEMO", {})
    hashed: list[Path] = []
    real = fp.sha256_file

    def counting(path: Path) -> str:
        hashed.append(path)
        return real(path)

    monkeypatch.setattr(fp, "sha256_file", counting)
    return hashed


def _old_file(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    past = time.time() - 60
    os.utime(path, (past, past))
    return path


def test_fingerprint_is_the_sha256_and_is_hashed_once(tmp_path: Path, counted: list[Path], monkeypatch: pytest.MonkeyPatch) -> None:
    f = _old_file(tmp_path / "model.safetensors", b"weights" * 1000)
    want = "sha256:" + hashlib.sha256(f.read_bytes()).hexdigest()
    assert fp.weights_fingerprint(tmp_path) == want
    assert fp.weights_fingerprint(tmp_path) == want
    assert len(counted) == 1
    monkeypatch.setattr(fp, "_MEMO", {})  # a new process: the file cache answers
    assert fp.file_fingerprint(f) == want and len(counted) == 1
    assert (tmp_path / "cache" / fp.CACHE_NAME).exists()


def test_changed_size_or_mtime_is_hashed_again(tmp_path: Path, counted: list[Path]) -> None:
    f = _old_file(tmp_path / "model.safetensors", b"a" * 100)
    first = fp.file_fingerprint(f)
    _old_file(f, b"b" * 100)  # same size, other content: the mtime differs
    os.utime(f, (time.time() - 30, time.time() - 30))
    second = fp.file_fingerprint(f)
    _old_file(f, b"b" * 101)
    third = fp.file_fingerprint(f)
    assert len(counted) == 3 and len({first, second, third}) == 3
    assert second == "sha256:" + hashlib.sha256(b"b" * 100).hexdigest()


def test_a_file_written_just_now_is_never_cached(tmp_path: Path, counted: list[Path]) -> None:
    f = tmp_path / "model.safetensors"
    f.write_bytes(b"fresh")
    fp.file_fingerprint(f)
    fp.file_fingerprint(f)
    assert len(counted) == 2


def test_an_unusable_cache_folder_only_costs_the_hash(tmp_path: Path, counted: list[Path], monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    monkeypatch.setenv("BERTSECRETS_CACHE_DIR", str(blocker / "cache"))
    f = _old_file(tmp_path / "pytorch_model.bin", b"w")
    assert fp.weights_fingerprint(tmp_path) == "sha256:" + hashlib.sha256(b"w").hexdigest()
    assert fp.weights_fingerprint(tmp_path / "nothing-here") == "unknown"


def test_load_model_hashes_unchanged_weights_once(tiny_model_factory, counted: list[Path]) -> None:
    from bertsecrets_cli.model.load import load_model

    folder = tiny_model_factory("bert")
    weights = folder / "model.safetensors"
    past = time.time() - 60
    os.utime(weights, (past, past))
    a = load_model(str(folder), device="cpu")
    b = load_model(str(folder), device="cpu")
    assert a.fingerprint == b.fingerprint == "sha256:" + hashlib.sha256(weights.read_bytes()).hexdigest()
    assert counted == [weights.resolve()]
