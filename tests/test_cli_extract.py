"""The extract CLI and the conventions every command shares: streams, formats, exit codes, bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from functools import partial
from pathlib import Path

import h5py
import pytest
from typer.testing import CliRunner

from bertsecrets_cli.cli.app import app
from bertsecrets_cli.store import open_store

from helpers import covers, one_line_error as _one_line_error

one_line_error = partial(_one_line_error, last=True)

runner = CliRunner()


def invoke(*args: str, env: dict | None = None):
    return runner.invoke(app, list(args), env=env)


def test_extract_writes_a_store_and_prints_the_layer_summary(tmp_path: Path) -> None:
    out = tmp_path / "pre.h5"
    res = invoke("extract", "--task", "sst2", "--limit", "6", "-o", str(out), "--device", "cpu")
    assert res.exit_code == 0, res.stderr
    assert "L6" in res.stdout and "[SEP]" in res.stdout and "entropy" in res.stdout
    assert "demo data" in res.stderr  # says so when demo data stands in for GLUE
    with open_store(out) as st:
        assert st.n_examples == 6
        assert "--limit 6" in st.provenance()["command"] or st.provenance()["command"]


def test_json_and_tsv_formats_are_machine_readable(tmp_path: Path) -> None:
    res = invoke("extract", "--limit", "3", "-o", str(tmp_path / "a.h5"), "--format", "json", "-q")
    rows = json.loads(res.stdout)
    assert [r["layer"] for r in rows] == [f"L{i}" for i in range(1, 7)] and res.stderr == ""
    res = invoke("extract", "--limit", "3", "-o", str(tmp_path / "b.h5"), "-f", "tsv", "-q")
    lines = res.stdout.strip().splitlines()
    assert lines[0].split("\t")[0] == "layer" and len(lines) == 7


def test_options_come_from_the_documented_environment_variables(tmp_path: Path) -> None:
    res = invoke("extract", "-o", str(tmp_path / "e.h5"), "-q", "--limit", "2", env={"BERTSECRETS_FORMAT": "json"})
    assert res.exit_code == 0, res.stderr
    with open_store(tmp_path / "e.h5") as st:
        assert st.n_examples == 2
    assert json.loads(res.stdout)


def test_store_streams_through_a_pipe(tmp_path: Path) -> None:
    """extract -o - | check - : the store goes through stdout and stdin."""
    cmd = f"{sys.executable} -m bertsecrets_cli extract --limit 3 -q -o - | {sys.executable} -m bertsecrets_cli check - --format json"
    res = subprocess.run(cmd, shell=True, capture_output=True, text=True, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)
    assert report[0]["result"].startswith("attention store")
    assert list(tmp_path.iterdir()) == []  # nothing left behind


def _write(p: Path, text: str | bytes) -> Path:
    p.write_bytes(text if isinstance(text, bytes) else text.encode())
    return p


@pytest.mark.parametrize(
    "case,code,needle",
    [
        ("missing data file", 3, "no such file"),
        ("unknown task", 3, "unknown task"),
        ("malformed tsv row", 3, ":3"),
        ("empty data", 3, "empty.tsv"),
        ("limit zero", 3, "--limit"),
        ("unknown model", 5, "no-such-org/no-model"),
        ("output in missing folder", 6, "does not exist"),
        ("existing output", 6, "--force"),
        ("bad device", 3, "--device"),
        ("huge max length", 3, "--max-length"),
        ("bad encoding", 3, "--encoding"),
        ("undecodable bytes", 3, "latin.tsv"),
    ],
)
@covers("extract", "-o", "--limit", "--model")
def test_bad_extract_input_gives_one_line_and_exit_code(tmp_path: Path, case: str, code: int, needle: str) -> None:
    out = tmp_path / "out.h5"
    base = ["extract", "-o", str(out), "--device", "cpu"]
    extra = {
        "missing data file": ["--data", str(tmp_path / "nope.tsv")],
        "unknown task": ["--task", "sst3"],
        "malformed tsv row": ["--data", str(_write(tmp_path / "SST-2.tsv", "sentence\tlabel\ngood film\t1\nbad\tfilm\t0\n"))],
        "empty data": ["--data", str(_write(tmp_path / "empty.tsv", "sentence\tlabel\n"))],
        "limit zero": ["--limit", "0"],
        "unknown model": ["--model", "no-such-org/no-model"],
        "output in missing folder": ["-o", str(tmp_path / "missing" / "x.h5")],
        "existing output": [],
        "bad device": ["--device", "gpu9"],
        "huge max length": ["--max-length", "1000000"],
        "bad encoding": ["--encoding", "int4"],
        "undecodable bytes": ["--data", str(_write(tmp_path / "latin.tsv", "sentence\tlabel\ncaf\xe9 au lait\t1\n".encode("latin-1")))],
    }[case]
    if case == "existing output":
        out.write_bytes(b"precious")
    res = invoke(*base, *extra)
    one_line_error(res, code, needle)
    if case == "existing output":
        assert out.read_bytes() == b"precious"
    else:
        assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp or part files left


@pytest.mark.parametrize(
    "case,needle",
    [("missing", "no such file"), ("not hdf5", "not an HDF5 file"), ("truncated", "cut.h5"), ("other schema", "schema version"), ("other tool", "another tool")],
)
def test_bad_store_input_gives_one_line_and_exit_code(tmp_path: Path, demo_store: Path, case: str, needle: str) -> None:
    if case == "missing":
        p = tmp_path / "missing.h5"
    elif case == "not hdf5":
        p = _write(tmp_path / "notes.h5", "just text")
    elif case == "truncated":
        data = demo_store.read_bytes()
        p = _write(tmp_path / "cut.h5", data[: len(data) // 2])
    elif case == "other schema":
        p = _write(tmp_path / "v2.h5", demo_store.read_bytes())
        with h5py.File(p, "r+") as f:
            f.attrs["encoding-version"] = "99"
    else:
        p = tmp_path / "foreign.h5"
        with h5py.File(p, "w") as f:
            f["data"] = [1, 2, 3]
    before = p.read_bytes() if p.exists() else None
    res = invoke("check", str(p))
    one_line_error(res, 3 if case == "missing" else 4, needle)
    if before is not None:
        assert p.read_bytes() == before  # inputs untouched


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    res = invoke("check", str(tmp_path / "nope.h5"), "--debug")
    assert res.exit_code == 3 and "Traceback" in res.stderr


def test_bad_format_is_a_usage_error(tmp_path: Path) -> None:
    res = invoke("extract", "-o", str(tmp_path / "x.h5"), "--format", "xml")
    assert res.exit_code == 2


def test_version_and_help() -> None:
    assert invoke("--version").stdout.startswith("bertsecrets ")
    res = invoke("extract", "--help")
    assert res.exit_code == 0 and "--max-length" in res.stdout
