"""Real ``bertsecrets extract`` and ``ablate`` runs killed at seeded random moments (SIGKILL and SIGTERM).

After every kill, whatever exists under the output name is either rejected by ``check`` or the whole,
correct result (a kill after the atomic rename);
``--resume`` (itself killed again, in chains) must finally give exactly the uninterrupted result.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from bertsecrets_cli.errors import EXIT_INTERRUPTED, StoreError
from bertsecrets_cli.jobs.check import check_store
from bertsecrets_cli.store import open_store

ARGS = ["extract", "--limit", "40", "--part-size", "5", "--batch-size", "5", "--device", "cpu", "-q"]
TARGET_KILLS = 12  # runs actually killed (the issue asks for at least 10)
MAX_CHAINS = 16  # independent outputs (a cap, rarely reached: most chains yield 3-4 kills), each killed and resumed until it completes
KILLS_PER_CHAIN = 4  # kill attempts per output before the final --resume
SEED = 20240611


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "bertsecrets_cli", *args]


def _env() -> dict[str, str]:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "SOURCE_DATE_EPOCH": "1700000000"}


def _wait_for(parts: Path, proc: subprocess.Popen, timeout: float = 120) -> bool:
    """Until this run has (re)written the parts' manifest, i.e. its writer has started; False if it ended first."""
    manifest = parts / "manifest.json"
    since = time.time() - 0.01
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        try:
            if manifest.stat().st_mtime >= since:
                return True
        except FileNotFoundError:
            pass
        if proc.poll() is not None:
            return False
        time.sleep(0.02)
    return False


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, float, float]:
    """The uninterrupted store, its start-up time (until the parts folder appears) and its extraction time (until the store is renamed into place)."""
    out = tmp_path_factory.mktemp("ref") / "ref.h5"
    t0 = time.monotonic()
    proc = subprocess.Popen(_cli(*ARGS, "-o", str(out)), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=_env())
    _wait_for(out.with_name(f".{out.name}.parts"), proc)
    t1 = time.monotonic()
    while not out.exists() and proc.poll() is None:
        time.sleep(0.01)
    t2 = time.monotonic()  # the store is complete here; the rest is printing and interpreter exit
    assert proc.wait(timeout=300) == 0, proc.stderr.read() if proc.stderr else ""
    return out, t1 - t0, t2 - t1


def _assert_same(a: Path, b: Path) -> None:
    with open_store(a) as sa, open_store(b) as sb:
        assert sa.example_ids() == sb.example_ids()
        assert sa.strings("tokens/text") == sb.strings("tokens/text")
        for name in ("tokens/ids", "examples/length", "examples/attention_offset", "attention/maps"):
            assert np.array_equal(sa.array(name), sb.array(name)), name
        assert np.array_equal(sa.stats()[1], sb.stats()[1], equal_nan=True)
        for k, q in sa.heads().items():
            assert np.array_equal(q.values, sb.heads()[k].values, equal_nan=True), k


def _complete(path: Path) -> bool:
    """Whether ``check`` accepts what a killed run left under the output name."""
    if not path.exists():
        return False
    try:
        check_store(path)
    except StoreError:
        return False
    return True


@pytest.mark.slow
def test_killed_runs_never_look_complete_and_resume_to_the_reference(tmp_path: Path, reference: tuple[Path, float, float]) -> None:
    ref, startup, work = reference
    rng = random.Random(SEED)
    kills: list[tuple[str, str, float, int]] = []  # (signal, phase, delay, exit status)
    chain = 0
    while len(kills) < TARGET_KILLS and chain < MAX_CHAINS:
        out = tmp_path / f"run{chain}.h5"
        parts = out.with_name(f".{out.name}.parts")
        chain += 1
        for attempt in range(KILLS_PER_CHAIN):
            sig = rng.choice([signal.SIGKILL, signal.SIGTERM])
            # one kill in four lands during start-up (imports, model load), the others while parts are written
            phase = "startup" if rng.random() < 0.25 else "work"
            delay = rng.uniform(0.2, startup) if phase == "startup" else rng.uniform(0.0, work)
            args = [*ARGS, "-o", str(out)] + (["--resume"] if parts.exists() else [])
            proc = subprocess.Popen(_cli(*args), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=_env())
            if phase == "work":
                _wait_for(parts, proc)
            time.sleep(delay)
            if proc.poll() is not None:  # finished before the kill: this chain is done
                assert proc.returncode == 0, proc.stderr.read() if proc.stderr else ""
                break
            proc.send_signal(sig)
            rc = proc.wait(timeout=120)
            err = proc.stderr.read() if proc.stderr else ""
            if rc == 0:  # the signal arrived as the process was exiting
                break
            kills.append((sig.name, phase, round(delay, 2), rc))
            assert "Traceback" not in err, err
            if sig == signal.SIGTERM:
                # stopped cleanly (75), start-up included: the entry point installs the handler before any import.
                # The default action remains only before that (the interpreter's own start) and after Python has
                # restored it on exit (the store is then complete)
                early = phase == "startup" and delay < 0.5
                assert rc == EXIT_INTERRUPTED or (rc == -signal.SIGTERM and (early or _complete(out))), (rc, phase, delay, err)
                assert rc != EXIT_INTERRUPTED or len(err.strip().splitlines()) == 1, err
            if _complete(out):
                # killed after the atomic rename (while printing the summary): the store must be the whole, right one
                _assert_same(out, ref)
                break
        if not out.exists():
            res = subprocess.run(_cli(*ARGS, "-o", str(out), *(["--resume"] if parts.exists() else [])), capture_output=True, text=True, env=_env())
            assert res.returncode == 0, res.stderr
        check_store(out)
        _assert_same(out, ref)
        if parts.exists():  # killed between the rename and removing the parts: the next run on this output removes them
            res = subprocess.run(_cli(*ARGS, "-o", str(out), "--resume"), capture_output=True, text=True, env=_env())
            assert res.returncode == 6 and "nothing to resume" in res.stderr, res.stderr
        assert not parts.exists()
        assert not [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")], "a killed run left a temporary file behind"
    print(f"\nkill points survived: {len(kills)} in {chain} chains: {kills}")
    assert len(kills) >= TARGET_KILLS, f"only {len(kills)} runs were actually killed: {kills}"


def test_resume_removes_the_temporary_file_of_a_writer_killed_while_assembling(tmp_path: Path) -> None:
    """A SIGKILL during assembly leaves ``.NAME.<pid>.tmp`` (part 0 moved there); --resume deletes it, a live writer's is kept."""
    from bertsecrets_cli.store.writer import remove_stale_temporaries

    out = tmp_path / "x.h5"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f".x.h5.{dead.pid}.tmp"
    live = tmp_path / f".x.h5.{os.getpid()}.tmp"
    other = tmp_path / f".y.h5.{dead.pid}.tmp"
    for p in (stale, live, other):
        p.write_bytes(b"x")
    assert remove_stale_temporaries(out) == [stale]
    assert not stale.exists() and live.exists() and other.exists()


def test_every_store_writer_removes_a_dead_writers_temporary_of_its_output(tmp_path: Path) -> None:
    """Not only extract: any command's store (ablate, classify, ...) killed while being written leaves a temporary
    that the next writer of the same output deletes before it writes."""
    from bertsecrets_cli.store.writer import StoreWriter

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f".abl.h5.{dead.pid}.tmp"
    stale.write_bytes(b"half a store")
    with StoreWriter(tmp_path / "abl.h5", "ablation") as w:
        w.put_json("x", {"a": 1})
    assert not stale.exists() and (tmp_path / "abl.h5").exists()


# ---------------------------------------------------------------------------------------------
# ablate: the same, for a sweep (its kept work is the .OUT.ablate-resume.npz checkpoint, not part files)

ABLATE_ARGS = ["ablate", "-n", "32", "--batch-size", "2", "--bootstrap", "50", "--device", "cpu"]
ABLATE_ATTEMPTS = 12  # kill attempts, until both signals have landed and one SIGTERM kept part of the sweep
# what ablate --resume says on stderr just before its sweep starts (with or without a checkpoint to continue)
SWEEP_STARTS = ("--resume: no interrupted run", "resuming:")


def _until_sweep(proc: subprocess.Popen) -> list[str]:
    """Read the run's stderr until its sweep starts (or it ends); the lines read."""
    lines: list[str] = []
    for line in proc.stderr:  # type: ignore[union-attr]
        lines.append(line)
        if line.startswith(SWEEP_STARTS):
            break
    return lines


@pytest.fixture(scope="module")
def strong_classifier(tiny_model_factory, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from helpers import strengthen
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    src = tiny_model_factory("bert", classifier=True)
    model = AutoModelForSequenceClassification.from_pretrained(src)
    strengthen(model)
    out = tmp_path_factory.mktemp("strong-bert-kill")
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(src).save_pretrained(out)
    return out


def _same_ablation(a: Path, b: Path) -> None:
    from bertsecrets_cli.jobs.ablate import read_ablation

    ra, rb = read_ablation(a), read_ablation(b)
    np.testing.assert_array_equal(ra.base_logits, rb.base_logits)
    for attr in ("metrics", "delta", "ci_low", "ci_high", "predictions"):
        np.testing.assert_array_equal(getattr(ra, attr), getattr(rb, attr), err_msg=attr)


@pytest.mark.slow
def test_killed_ablate_sweeps_resume_to_the_uninterrupted_result(tmp_path: Path, strong_classifier: Path) -> None:
    """Chains of runs on one output, each killed at a seeded moment of its sweep and resumed; a chain ends when a run
    completes (or was killed after its store was renamed into place: that store must be the whole, right one)."""
    args = [*ABLATE_ARGS, "-m", str(strong_classifier), "--resume"]
    ref = tmp_path / "ref.h5"
    proc = subprocess.Popen(_cli(*args, "-o", str(ref)), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=_env())
    _until_sweep(proc)
    t0 = time.monotonic()
    while not ref.exists() and proc.poll() is None:
        time.sleep(0.01)
    sweep = time.monotonic() - t0  # the sweep and writing the store
    assert proc.wait(timeout=600) == 0 and ref.exists(), proc.stderr.read() if proc.stderr else ""
    rng = random.Random(SEED)
    kills: list[tuple[str, float, int, bool]] = []  # (signal, delay into the sweep, exit status, checkpoint kept)
    chain = 0
    out = tmp_path / f"abl{chain}.h5"
    for attempt in range(ABLATE_ATTEMPTS):
        ckpt = out.with_name(f".{out.name}.ablate-resume.npz")
        sig = signal.SIGKILL if attempt % 2 else signal.SIGTERM
        # a SIGTERM keeps work only once the sweep's first unit is done (the fast engine's units are few on this tiny model)
        delay = rng.uniform(0.0 if sig == signal.SIGKILL else 0.25, 0.9) * sweep
        proc = subprocess.Popen(_cli(*args, "-o", str(out)), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=_env())
        head = _until_sweep(proc)
        time.sleep(delay)
        if proc.poll() is None:
            proc.send_signal(sig)
        rc = proc.wait(timeout=300)
        err = "".join(head) + (proc.stderr.read() if proc.stderr else "")
        assert "Traceback" not in err, err
        if rc != 0:
            kills.append((sig.name, round(delay, 2), rc, ckpt.exists()))
            # SIGTERM removes its own temporary; a SIGKILL while the store is written cannot (the next writer of that
            # output does, and a run stopped before writing leaves an earlier one for the run after)
            own = [p.name for p in tmp_path.iterdir() if p.name.endswith(f".{proc.pid}.tmp")]
            assert not own or sig == signal.SIGKILL, f"a stopped sweep left its temporary file ({sig.name}, {delay:.2f} s of {sweep:.2f} s, rc {rc}): {own}"
        if out.exists():  # finished, or killed while printing after the atomic rename
            assert rc in (0, EXIT_INTERRUPTED, -signal.SIGKILL, -signal.SIGTERM), (rc, err)  # -SIGTERM: as Python exits
            _same_ablation(ref, out)
            chain += 1
            out = tmp_path / f"abl{chain}.h5"
        elif sig == signal.SIGTERM:
            lines = [ln for ln in err.splitlines() if ln.strip()]
            assert rc == EXIT_INTERRUPTED and "error:" in lines[-1] and sum("error:" in ln for ln in lines) == 1, (rc, err)
        else:
            assert rc == -signal.SIGKILL, (rc, err)
        if {"SIGKILL", "SIGTERM"} <= {k[0] for k in kills} and any(k[0] == "SIGTERM" and k[3] for k in kills):
            break
    if out.with_name(f".{out.name}.ablate-resume.npz").exists() or not out.exists():
        r = subprocess.run(_cli(*args, "-o", str(out)), capture_output=True, text=True, env=_env(), timeout=600)
        assert r.returncode == 0, r.stderr
        _same_ablation(ref, out)
        assert not out.with_name(f".{out.name}.ablate-resume.npz").exists()
    assert not [p.name for p in tmp_path.iterdir() if ".tmp" in p.name], "a SIGKILLed writer's temporary outlived the next run"
    print(f"\nablate kill points (sweep {sweep:.2f} s): {kills}")
    assert {k[0] for k in kills} == {"SIGKILL", "SIGTERM"}, kills
    assert any(k[0] == "SIGTERM" and k[3] for k in kills), f"no SIGTERM landed in the sweep: {kills}"


def test_a_stop_that_python_wraps_while_a_class_is_built_is_still_exit_75(capsys: pytest.CaptureFixture[str]) -> None:
    """A SIGTERM landing in a descriptor's __set_name__ (rich's ConsoleThreadLocals during import, found by this
    file's kill test) reaches the command as RuntimeError; it must end as a stop (75), not an internal error (1)."""
    import typer

    from bertsecrets_cli.cli.common import run
    from bertsecrets_cli.errors import EXIT_INTERRUPTED, Interrupted

    class Field:
        def __set_name__(self, owner: type, name: str) -> None:
            raise Interrupted("stopped by SIGTERM before the work was saved")

    def body() -> None:
        type("Locals", (), {"buffer": Field()})  # Python wraps the stop: RuntimeError('Error calling __set_name__ ...')

    with pytest.raises(RuntimeError):
        body()
    with pytest.raises(typer.Exit) as e:
        run("extract", body)
    assert e.value.exit_code == EXIT_INTERRUPTED
    err = capsys.readouterr().err
    assert "stopped by SIGTERM" in err and "internal error" not in err

    def broken() -> None:
        raise RuntimeError("a real bug")

    with pytest.raises(typer.Exit) as e:
        run("extract", broken)
    assert e.value.exit_code == 1 and "internal error" in capsys.readouterr().err
