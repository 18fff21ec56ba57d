"""A real extract process killed mid-way, then resumed, gives the same data as an uninterrupted run."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from helpers import covers

from bertsecrets_cli.errors import EXIT_INTERRUPTED
from bertsecrets_cli.store import open_store

ARGS = ["extract", "--task", "sst2", "--limit", "48", "--part-size", "8", "--batch-size", "4", "--device", "cpu", "-q"]


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "bertsecrets_cli", *args]


def _wait_for_parts(parts: Path, n: int, proc: subprocess.Popen, timeout: float = 120) -> None:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if parts.exists() and len(list(parts.glob("part-*.h5"))) >= n:
            return
        if proc.poll() is not None:
            pytest.fail(f"extract ended before it could be killed: {proc.stderr.read() if proc.stderr else ''}")
        time.sleep(0.05)
    pytest.fail("no part appeared in time")


def _same(a: Path, b: Path) -> None:
    with open_store(a) as sa, open_store(b) as sb:
        assert sa.example_ids() == sb.example_ids()
        assert np.array_equal(sa.array("tokens/ids"), sb.array("tokens/ids"))
        assert np.array_equal(sa.array("attention/maps"), sb.array("attention/maps"))
        assert np.array_equal(sa.stats()[1], sb.stats()[1], equal_nan=True)


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ref") / "ref.h5"
    subprocess.run(_cli(*ARGS, "-o", str(out)), check=True, capture_output=True)
    return out


@covers("extract", "--resume")
@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_killed_extract_resumes_to_identical_store(tmp_path: Path, reference: Path, sig: signal.Signals) -> None:
    out = tmp_path / "run.h5"
    parts = tmp_path / ".run.h5.parts"
    proc = subprocess.Popen(_cli(*ARGS, "-o", str(out)), stderr=subprocess.PIPE, text=True)
    _wait_for_parts(parts, 2, proc)
    proc.send_signal(sig)
    rc = proc.wait(timeout=60)
    assert not out.exists(), "a killed run must not leave a final store"
    if sig == signal.SIGTERM:
        assert rc == EXIT_INTERRUPTED, proc.stderr.read()
    done = len(list(parts.glob("part-*.h5")))
    assert 2 <= done < 6
    # without --resume the leftover is reported, not silently overwritten
    again = subprocess.run(_cli(*ARGS, "-o", str(out)), capture_output=True, text=True)
    assert again.returncode == 6 and "--resume" in again.stderr
    res = subprocess.run(_cli(*ARGS, "-o", str(out), "--resume"), capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert not parts.exists()
    _same(out, reference)


def test_resume_refuses_parts_from_other_options(tmp_path: Path) -> None:
    out = tmp_path / "x.h5"
    parts = tmp_path / ".x.h5.parts"
    parts.mkdir()
    (parts / "manifest.json").write_text('{"key": "something else"}')
    res = subprocess.run(_cli(*ARGS, "-o", str(out), "--resume"), capture_output=True, text=True)
    assert res.returncode == 6 and "other options" in res.stderr
    assert not out.exists()


def test_parts_left_after_the_store_was_renamed_into_place_are_removed_by_the_next_run(tmp_path: Path, reference: Path) -> None:
    """A kill between the atomic rename and deleting the parts leaves a whole store and its parts (marked committing
    in the manifest): the next run on that output deletes them; parts of an unfinished run are never touched."""
    import shutil

    out = tmp_path / "x.h5"
    shutil.copy(reference, out)
    parts = tmp_path / ".x.h5.parts"
    parts.mkdir()
    (parts / "part-000001.h5").write_bytes(b"a finished part, already copied into the store")
    (parts / "manifest.json").write_text('{"key": "k", "committing": true}')
    res = subprocess.run(_cli(*ARGS, "-o", str(out), "--resume"), capture_output=True, text=True)
    assert res.returncode == 6 and "nothing to resume" in res.stderr, res.stderr
    assert not parts.exists() and out.exists()
    _same(out, reference)

    parts.mkdir()  # without the mark: an interrupted run's work, kept whatever is beside it
    (parts / "manifest.json").write_text('{"key": "k"}')
    res = subprocess.run(_cli(*ARGS, "-o", str(out)), capture_output=True, text=True)
    assert res.returncode == 6 and parts.exists()
