"""bertsecrets_cli.outputs, the one way every file is written: exclusive temporaries that no planted symlink can
redirect, no-replace commits (of two writers exactly one wins), destinations that are not regular files refused
or written through, and every output (figures included) checked before any work."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from helpers import one_line_error
from typer.testing import CliRunner

from bertsecrets_cli import outputs
from bertsecrets_cli.cli.app import app
from bertsecrets_cli.errors import EXIT_OUTPUT, OutputError

runner = CliRunner()


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "bertsecrets_cli", *args]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent), "HF_HUB_OFFLINE": "1"}


# ------------------------------------------------------------------------------------------ the temporary


def test_the_temporary_is_a_new_private_file_next_to_the_output_whatever_was_planted(tmp_path: Path) -> None:
    """Symlinks planted at every name the old scheme (.NAME.PID.tmp) would use never receive a byte."""
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    out = tmp_path / "v.html"
    for pid in range(os.getpid() - 5, os.getpid() + 200):
        (tmp_path / f".v.html.{pid}.tmp").symlink_to(victim)
    fd, tmp = outputs.create_temporary(out)
    os.close(fd)
    st = os.lstat(tmp)
    assert stat.S_ISREG(st.st_mode) and st.st_size == 0 and stat.S_IMODE(st.st_mode) == 0o600
    assert tmp.parent == tmp_path and tmp.name.startswith(".v.html.") and tmp.name.endswith(f".{os.getpid()}.tmp")
    tmp.unlink()
    outputs.check_output(out)
    outputs.write_text(out, "page")
    assert victim.read_text() == "precious" and out.read_text() == "page" and not out.is_symlink()


@pytest.mark.slow
def test_view_and_words_never_write_through_planted_symlinks(demo_store: Path, tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    pid = os.getpid()  # CliRunner runs in this process: the names an attacker would guess
    for name in ("v.html", "w.h5"):
        for p in range(pid - 2, pid + 50):
            (tmp_path / f".{name}.{p}.tmp").symlink_to(victim)
    for args, out in ((["view", str(demo_store), "-n", "1"], tmp_path / "v.html"), (["words", str(demo_store)], tmp_path / "w.h5")):
        res = runner.invoke(app, [*args, "-o", str(out)])
        assert res.exit_code == 0, res.stderr
        assert not out.is_symlink() and out.stat().st_size > 100
    assert victim.read_text() == "precious"


def test_a_dead_writers_temporary_is_removed_and_a_live_ones_kept(tmp_path: Path) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f".o.h5.abcd1234.{dead.pid}.tmp"
    live = tmp_path / f".o.h5.abcd1234.{os.getpid()}.tmp"
    other = tmp_path / f".o.h5.x.abcd1234.{dead.pid}.tmp"  # the temporary of o.h5.x, not of o.h5
    for p in (stale, live, other):
        p.write_bytes(b"x")
    assert outputs.remove_stale_temporaries(tmp_path / "o.h5") == [stale]
    assert live.exists() and other.exists()


# ------------------------------------------------------------------------------------------ the commit


def test_the_commit_never_replaces_an_output_that_appeared_meanwhile(tmp_path: Path) -> None:
    out = tmp_path / "r.tsv"
    outputs.check_output(out, force=False)
    out.write_text("someone else's")
    with pytest.raises(OutputError, match="created by someone else while this command ran") as e:
        outputs.write_text(out, "mine")
    assert e.value.exit_code == EXIT_OUTPUT
    assert out.read_text() == "someone else's" and [p.name for p in tmp_path.iterdir()] == ["r.tsv"]


def test_with_force_the_commit_replaces_and_the_new_file_gets_ordinary_permissions(tmp_path: Path) -> None:
    out = tmp_path / "r.tsv"
    out.write_text("old")
    outputs.check_output(out, force=True)
    outputs.write_text(out, "new")
    umask = os.umask(0)
    os.umask(umask)
    assert out.read_text() == "new" and stat.S_IMODE(out.stat().st_mode) == 0o666 & ~umask


def test_of_two_writers_that_both_passed_the_check_exactly_one_wins(tmp_path: Path) -> None:
    out = tmp_path / "r.h5"
    outputs.check_output(out)
    barrier = threading.Barrier(2)
    results: list[str] = []

    def writer(text: str) -> None:
        try:
            with outputs.writing(out) as fh:
                fh.write(text.encode())
                barrier.wait()
            results.append(f"won {text}")
        except OutputError as e:
            results.append(f"lost: {e}")

    threads = [threading.Thread(target=writer, args=(t,)) for t in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    won = [r for r in results if r.startswith("won")]
    assert len(won) == 1 and out.read_text() == won[0][-1]
    assert any("created by someone else" in r for r in results)
    assert [p.name for p in tmp_path.iterdir()] == ["r.h5"]


@pytest.mark.slow
def test_two_concurrent_view_runs_of_one_output_one_exits_0_the_other_6_with_one_line(demo_store: Path, tmp_path: Path) -> None:
    out = tmp_path / "v.html"
    procs = [subprocess.Popen(_cli("view", str(demo_store), "-n", "1", "-o", str(out)), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env=_env()) for _ in range(2)]
    done = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
    codes = sorted(rc for rc, _ in done)
    assert codes == [0, EXIT_OUTPUT], done
    err = next(e for rc, e in done if rc == EXIT_OUTPUT)
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and "error:" in lines[0] and str(out) in lines[0] and "Traceback" not in err, err
    assert "<!DOCTYPE html>" in out.read_text() and [p.name for p in tmp_path.iterdir()] == ["v.html"]


# ------------------------------------------------------------------------------------------ what the output is


@pytest.mark.parametrize("command", [["view", "-n", "1"], ["words"], ["plot", "--quantity", "stat_cls"]], ids=["view", "words", "plot"])
def test_a_device_is_never_replaced_even_with_force(demo_store: Path, tmp_path: Path, command: list[str]) -> None:
    link = tmp_path / "null-link.png"
    link.symlink_to(os.devnull)
    for out in (os.devnull, str(link)) if command[0] != "plot" else (str(link),):  # plot needs the .png name
        res = runner.invoke(app, [command[0], str(demo_store), *command[1:], "-o", out, "--force"])
        one_line_error(res, EXIT_OUTPUT, "character device", "not a regular file")
    assert stat.S_ISCHR(os.stat(os.devnull).st_mode) and link.is_symlink()


def test_a_symlink_to_a_missing_file_is_refused(tmp_path: Path) -> None:
    link = tmp_path / "o.h5"
    link.symlink_to(tmp_path / "nowhere" / "x")
    with pytest.raises(OutputError, match="symbolic link to a missing file"):
        outputs.check_output(link)


def test_a_fifo_is_written_through_like_standard_output(demo_store: Path, tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.html"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()))
    reader.start()
    res = runner.invoke(app, ["view", str(demo_store), "-n", "1", "-o", str(fifo)])
    reader.join(timeout=60)
    assert res.exit_code == 0, res.stderr
    assert got and got[0].startswith(b"<!DOCTYPE html>") and stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert [p.name for p in tmp_path.iterdir()] == ["pipe.html"]


@pytest.mark.slow
def test_a_link_to_standard_output_is_written_through_and_stays_a_link(demo_store: Path, tmp_path: Path) -> None:
    link = tmp_path / "out.html"
    link.symlink_to("/proc/self/fd/1")
    res = subprocess.run(_cli("view", str(demo_store), "-n", "1", "-o", str(link), "--force"), capture_output=True, env=_env(), timeout=300)
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith(b"<!DOCTYPE html>") and link.is_symlink()


def test_a_planted_symlink_as_the_parts_folder_is_refused(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    parts = tmp_path / ".x.h5.parts"
    parts.symlink_to(elsewhere)
    with pytest.raises(OutputError, match="symbolic link"):
        outputs.private_folder(parts)
    assert list(elsewhere.iterdir()) == []


# ------------------------------------------------------------------------------------------ checked before any work


def test_cluster_refuses_an_existing_figure_without_force_before_writing_the_store(demo_store: Path, tmp_path: Path) -> None:
    fig = tmp_path / "mine.png"
    fig.write_bytes(b"my own picture")
    out = tmp_path / "c.h5"
    res = runner.invoke(app, ["cluster", str(demo_store), "-o", str(out), "--figure", str(fig)])
    one_line_error(res, EXIT_OUTPUT, str(fig), "exists", "--force")
    assert fig.read_bytes() == b"my own picture" and not out.exists()


def test_cluster_finds_a_missing_figure_folder_before_writing_the_store(demo_store: Path, tmp_path: Path) -> None:
    out = tmp_path / "c.h5"
    res = runner.invoke(app, ["cluster", str(demo_store), "-o", str(out), "--figure", str(tmp_path / "no" / "f.png")])
    one_line_error(res, EXIT_OUTPUT, "does not exist")
    assert not out.exists() and [p.name for p in tmp_path.iterdir()] == []


# ------------------------------------------------------------------------------------------ spools of '-'


def test_the_next_run_removes_the_stdin_and_stdout_spools_a_killed_run_left(demo_store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale_in = tmp_path / f"bertsecrets-stdin-k3j4l5m6.{dead.pid}.h5"
    stale_in.write_bytes(b"half a store")
    stale_out = tmp_path / f"bertsecrets-stdout-a1b2c3d4.{dead.pid}"
    stale_out.mkdir()
    (stale_out / "store.h5").write_bytes(b"x")
    live = tmp_path / f"bertsecrets-stdin-zzzzzzzz.{os.getpid()}.h5"
    live.write_bytes(b"a running reader's")
    res = runner.invoke(app, ["show", "-"], input=demo_store.read_bytes())
    assert res.exit_code == 0, res.stderr
    assert not stale_in.exists() and live.exists()
    res = runner.invoke(app, ["words", str(demo_store), "-o", "-"])
    assert res.exit_code == 0 and not stale_out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [live.name]  # this run's own spools are gone too


def test_a_finished_model_folder_never_replaces_one_that_appeared_meanwhile_without_force(tmp_path: Path) -> None:
    from bertsecrets_cli.jobs.finetune import _publish

    out = tmp_path / "model"
    partial = tmp_path / ".model.partial"
    partial.mkdir()
    (partial / "config.json").write_text("{}")
    out.mkdir()
    (out / "theirs.txt").write_text("another run's model")
    with pytest.raises(OutputError, match="created by someone else while this command ran"):
        _publish(partial, out, force=False)
    assert (out / "theirs.txt").exists() and (partial / "config.json").exists()
    _publish(partial, out, force=True)
    assert sorted(p.name for p in out.iterdir()) == ["config.json"] and not partial.exists()
    other = tmp_path / ".other.partial"
    other.mkdir()
    _publish(other, tmp_path / "fresh", force=False)
    assert (tmp_path / "fresh").is_dir()


def test_annotate_refuses_a_labels_file_that_is_not_a_regular_file(demo_store: Path, tmp_path: Path) -> None:
    fifo = tmp_path / "labels.tsv"
    os.mkfifo(fifo)
    res = runner.invoke(app, ["classify", "annotate", str(demo_store), "--labels", str(fifo), "--limit", "1"], input="v\n")
    one_line_error(res, EXIT_OUTPUT, "not a regular file")
    res = runner.invoke(app, ["classify", "annotate", str(demo_store), "--labels", os.devnull, "--limit", "1"], input="v\n")
    one_line_error(res, EXIT_OUTPUT, "not a regular file")
