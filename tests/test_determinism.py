"""Same options, same store: byte for byte, once the creation time is pinned (SOURCE_DATE_EPOCH)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


def _run(folder: Path, env: dict) -> bytes:
    folder.mkdir()
    subprocess.run([sys.executable, "-m", "bertsecrets_cli", "extract", "--limit", "12", "--batch-size", "5", "-o", "s.h5", "-q"],
                   cwd=folder, env=env, check=True, capture_output=True)
    return (folder / "s.h5").read_bytes()


@pytest.mark.slow
def test_extract_twice_gives_bit_identical_stores(tmp_path: Path) -> None:
    env = {**os.environ, "SOURCE_DATE_EPOCH": "1700000000"}
    a = _run(tmp_path / "a", env)
    b = _run(tmp_path / "b", env)
    assert a == b


def test_reader_of_a_store_being_written_gets_incomplete_error(tmp_path: Path) -> None:
    from bertsecrets_cli.errors import StoreError
    from bertsecrets_cli.store import open_store

    (tmp_path / ".x.h5.parts").mkdir()
    with pytest.raises(StoreError, match="incomplete store"):
        open_store(tmp_path / "x.h5")
