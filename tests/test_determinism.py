"""Same options, same store: byte for byte, once the creation time is pinned (SOURCE_DATE_EPOCH)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import covers


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


def _in_process_twice(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str]) -> tuple[bytes, bytes]:
    """Run ``bertsecrets ARGS -o s.h5`` in two fresh folders (same relative output name, so the recorded command is the same)."""
    from typer.testing import CliRunner

    from bertsecrets_cli.cli.app import app

    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    out = []
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        monkeypatch.chdir(tmp_path / name)
        res = CliRunner().invoke(app, [*args, "-o", "s.h5", "-q"])
        assert res.exit_code == 0, res.stderr
        out.append((tmp_path / name / "s.h5").read_bytes())
    return out[0], out[1]


def test_ablate_twice_gives_bit_identical_stores(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tiny_model_factory) -> None:
    model = str(tiny_model_factory("bert", classifier=True))
    a, b = _in_process_twice(tmp_path, monkeypatch, ["ablate", "-m", model, "-n", "16", "--bootstrap", "50", "--device", "cpu"])
    assert a == b


@covers("diff", "--shard")
@covers("classify run", "--shard")
@pytest.mark.parametrize("command", ["classify", "classify-shard", "diff"])
def test_store_analyses_twice_give_bit_identical_stores(command: str, demo_store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    args = {"classify": ["classify", str(demo_store)], "classify-shard": ["classify", str(demo_store), "--shard", "1/2"],
            "diff": ["diff", str(demo_store), str(demo_store)]}[command]
    a, b = _in_process_twice(tmp_path, monkeypatch, args)
    assert a == b
