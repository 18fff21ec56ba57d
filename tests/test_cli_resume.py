"""classify and diff with -o work in resumable parts (--part-size): a stop keeps the finished parts, --resume
continues them with the same options, and the result equals one uninterrupted pass."""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from bertsecrets_cli.cli.app import app
from bertsecrets_cli.store import open_store
from helpers import covers, one_line_error

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def stop_during_pass(monkeypatch, n: int) -> None:
    """Act as if SIGTERM arrived during the ``n``-th (1-based) pass over a part: its loop stops at its first check."""
    from bertsecrets_cli.jobs import signals

    real = signals.graceful_stop
    calls = {"n": 0}

    @contextlib.contextmanager
    def fake():
        with real() as flag:
            calls["n"] += 1
            if calls["n"] == n:
                flag.signal = "SIGTERM"
            yield flag

    monkeypatch.setattr(signals, "graceful_stop", fake)


def labels(path: Path) -> np.ndarray:
    with open_store(path) as st:
        return st.array("patterns/labels")


@covers("classify run", "--part-size", "--resume")
def test_classify_resumes_its_finished_parts_to_the_same_store(demo_store, tmp_path, monkeypatch):
    whole = tmp_path / "whole.h5"
    assert invoke("classify", "run", demo_store, "--part-size", "0", "-o", whole, "-q").exit_code == 0
    out = tmp_path / "pat.h5"
    args = ["classify", "run", demo_store, "--part-size", "10", "-o", out]
    stop_during_pass(monkeypatch, 2)
    stopped = invoke(*args)
    assert stopped.exit_code == 75 and "1 of 3 parts" in stopped.stderr and "--resume" in stopped.stderr, stopped.stderr
    assert not out.exists() and (tmp_path / ".pat.h5.parts" / "part-00000.h5").exists()
    monkeypatch.undo()
    one_line_error(invoke(*args), 6, "--resume")  # the finished part is never thrown away silently
    one_line_error(invoke("classify", "run", demo_store, "--part-size", "8", "-o", out, "--resume"), 3, "other inputs or options")
    resumed = invoke(*args, "--resume")
    assert resumed.exit_code == 0, resumed.stderr
    assert "1 of 3 parts" in resumed.stderr and not (tmp_path / ".pat.h5.parts").exists()
    np.testing.assert_array_equal(labels(out), labels(whole))
    with open_store(out) as a, open_store(whole) as b:
        for name, q in b.heads().items():
            np.testing.assert_allclose(a.heads()[name].values, q.values, rtol=1e-9, err_msg=name)


@covers("diff", "--part-size", "--resume")
def test_diff_resumes_its_finished_parts_to_the_same_store(demo_store, tmp_path, monkeypatch):
    other = tmp_path / "b.h5"
    shutil.copy(demo_store, other)
    whole = tmp_path / "whole.h5"
    assert invoke("diff", demo_store, other, "--part-size", "0", "-o", whole, "-q").exit_code == 0
    out = tmp_path / "d.h5"
    args = ["diff", demo_store, other, "--part-size", "7", "-o", out]
    stop_during_pass(monkeypatch, 3)
    stopped = invoke(*args)
    assert stopped.exit_code == 75 and "2 of 4 parts" in stopped.stderr, stopped.stderr
    monkeypatch.undo()
    forced = invoke(*args, "--force", "--part-size", "24")  # --force starts over (one part: no parts folder)
    assert forced.exit_code == 0 and not (tmp_path / ".d.h5.parts").exists()
    out.unlink()
    stop_during_pass(monkeypatch, 2)
    assert invoke(*args).exit_code == 75
    monkeypatch.undo()
    assert invoke(*args, "--resume").exit_code == 0
    with open_store(out) as a, open_store(whole) as b:
        np.testing.assert_allclose(a.heads()["cosine"].values, b.heads()["cosine"].values, rtol=1e-9)
        assert a.n_examples == b.n_examples == 24
    one_line_error(invoke("diff", demo_store, other, "--part-size", "-1", "-o", tmp_path / "x.h5"), 3, "--part-size")
