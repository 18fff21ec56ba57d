"""``reproduce`` stopped by SIGTERM at a seeded moment inside every one of its steps, then continued with
``--resume`` (itself stopped in the next step, in a chain): each stop exits 75 naming the step, and the folder
the chain finally leaves equals an uninterrupted run's, store by store and tensor by tensor."""

from __future__ import annotations

import os
import random
import re
import signal
import threading
from pathlib import Path

import h5py
import numpy as np
import pytest
from typer.testing import CliRunner

from bertsecrets_cli.cli.app import app
from bertsecrets_cli.errors import EXIT_INTERRUPTED
from bertsecrets_cli.jobs import reproduce as R

SEED = 20261207
STEP = re.compile(r"\[reproduce\] step (\d+) of (\d+): ")


def _args(model: Path, out: Path) -> list[str]:
    return ["reproduce", "-o", str(out), "--tasks", "sst2", "--max-steps", "2", "--eval-limit", "4", "--bootstrap", "4",
            "--device", "cpu", "--model", str(model), "--train-limit", "8"]


class _Killer:
    """Counts the units of work of each step in the main thread (every HDF5 read or write and every module call
    of a model: the same sequence in every run of a step) and SIGTERMs this process at unit ``at`` of step
    ``target``: a seeded point that does not depend on how loaded the machine is."""

    def __init__(self, target: int | None = None, at: int = 0) -> None:
        self.target, self.at = target, at
        self.step = 0
        self.counts: dict[int, int] = {}
        self.fired = False

    def on_info(self, msg: str) -> None:
        m = STEP.search(msg)
        if m:
            self.step = int(m.group(1))

    def unit(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        c = self.counts[self.step] = self.counts.get(self.step, 0) + 1
        if self.step == self.target and c == self.at and not self.fired:
            self.fired = True
            os.kill(os.getpid(), signal.SIGTERM)


def _counting(fn, killer: _Killer):
    def wrapped(*a, **kw):
        killer.unit()
        return fn(*a, **kw)

    return wrapped


def _run(args: list[str], killer: _Killer, monkeypatch: pytest.MonkeyPatch):
    import torch

    with monkeypatch.context() as mp:
        real = R.info
        mp.setattr(R, "info", lambda msg: (killer.on_info(msg), real(msg)))
        for cls, name in ((h5py.Dataset, "__getitem__"), (h5py.Dataset, "__setitem__"), (torch.nn.Module, "__call__")):
            mp.setattr(cls, name, _counting(getattr(cls, name), killer))
        return CliRunner().invoke(app, args)


def _files(root: Path) -> set[str]:
    """What a finished run leaves that must not depend on stops: stores, models, tables (not the timings in the
    index, not the figures' pixels, not the hidden record of fingerprints)."""
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file() and not any(x.startswith(".") for x in p.relative_to(root).parts)
            and p.suffix in (".h5", ".safetensors", ".md") and p.name != "index.md"} | {
            p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file() and p.suffix in (".png", ".html") and "figures" in p.parts}


def _same_h5(a: Path, b: Path) -> None:
    with h5py.File(a, "r") as fa, h5py.File(b, "r") as fb:
        names: list[str] = []
        # not the provenance (commands, times) nor Trainer's log (its runtime, and a resumed run's loss average)
        fa.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) and not n.startswith("provenance")
                      and n != "training/log_history" else None)
        assert names
        for n in names:
            x, y = fa[n][()], fb[n][()]
            if isinstance(x, np.ndarray) and x.dtype.kind == "f":
                assert np.array_equal(x, y, equal_nan=True), (a.name, n)
            else:
                assert np.array_equal(np.asarray(x), np.asarray(y)), (a.name, n)


def _same_folder(ref: Path, got: Path) -> None:
    from safetensors.numpy import load_file

    files = _files(ref)
    assert files == _files(got), files ^ _files(got)
    for rel in sorted(files):
        a, b = ref / rel, got / rel
        if rel.endswith(".h5"):
            _same_h5(a, b)
        elif rel.endswith(".safetensors"):
            ta, tb = load_file(a), load_file(b)
            assert ta.keys() == tb.keys() and all(np.array_equal(ta[k], tb[k]) for k in ta), rel
        elif rel.endswith(".md"):  # the same text but for the folder's own name
            assert a.read_text().replace(str(ref), "OUT") == b.read_text().replace(str(got), "OUT"), rel
    assert not [p for p in got.rglob("*") if ".parts" in p.name or ".partial" in p.name or "ablate-resume" in p.name]


@pytest.mark.slow
def test_reproduce_stopped_inside_every_step_resumes_to_the_uninterrupted_folder(tiny_model_factory, tmp_path: Path,
                                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    model = tiny_model_factory("bert")
    old = signal.signal(signal.SIGTERM, lambda *a: None)  # never end pytest, whatever happens
    try:
        ref = tmp_path / "ref"
        watch = _Killer()
        res = _run(_args(model, ref), watch, monkeypatch)
        assert res.exit_code == 0, res.stderr
        n = int(STEP.search(res.stderr).group(2))
        assert all(watch.counts.get(k, 0) > 0 for k in range(1, n + 1)), watch.counts
        rng = random.Random(SEED)
        out = tmp_path / "chain"
        report: list[str] = []
        for k in range(1, n + 1):
            at = rng.randint(1, watch.counts[k])
            res = _run(_args(model, out) + (["--resume"] if out.exists() else []), _Killer(k, at), monkeypatch)
            assert res.exit_code == EXIT_INTERRUPTED, (k, res.exit_code, res.stderr[-2000:])
            line = res.stderr.strip().splitlines()[-1]
            m = re.search(r"(stopped in|after) step (\d+) of (\d+) \(([^)]*)\)", line)
            assert m and int(m.group(2)) == k and int(m.group(3)) == n, (k, line)
            assert "Traceback" not in res.stderr and "--resume" in line or k == n, line
            where = "stopped inside the step" if m.group(1) == "stopped in" else "step finished its work, then stopped"
            report.append(f"step {k} of {n} ({m.group(4)}): SIGTERM at unit {at} of {watch.counts[k]}: exit 75, {where}")
        res = _run(_args(model, out) + ["--resume"], _Killer(), monkeypatch)
        assert res.exit_code == 0, res.stderr
        assert res.stderr.count("done already") == n - 1  # every step but the index was kept
        _same_folder(ref, out)
        print("\n" + "\n".join(report))
    finally:
        signal.signal(signal.SIGTERM, old)
