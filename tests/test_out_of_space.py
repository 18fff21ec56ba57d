"""A full disk and a read-only folder, for every command that writes: exit 6, exactly one line naming the user's
output, no traceback, no crash, nothing left behind (no temporary, no parts folder).

Each case runs on a tiny tmpfs mounted in a private mount namespace (``unshare -m``, root only): the mount is
invisible to the rest of the machine and disappears with the process. Where that is not allowed the test is
skipped with the reason."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bertsecrets_cli.cli.app import app
from bertsecrets_cli.errors import EXIT_OUTPUT

ROOT = Path(__file__).resolve().parent.parent

# runs inside the namespace: every command with -o in its own folder of the small mount (two at a time, one per
# core), then what it left there; a full mount fails every case whichever fills it
DRIVER = r"""
import json, os, subprocess, sys
from concurrent.futures import ThreadPoolExecutor
mount, cases = sys.argv[1], json.loads(sys.argv[2])
def run(k):
    name, args = cases[k]
    where = os.path.join(mount, str(k))
    if not os.path.isdir(where):
        where = mount  # a read-only mount: no folder could be made
    p = subprocess.run([sys.executable, "-m", "bertsecrets_cli", *[a.replace("@MNT@", where) for a in args]],
                       capture_output=True, text=True, timeout=300)
    left = sorted(f for f in os.listdir(where) if where != mount or not f.isdigit())
    return {"name": name, "rc": p.returncode, "stderr": p.stderr, "left": left}
for k in range(len(cases)):
    try:
        os.mkdir(os.path.join(mount, str(k)))
    except OSError:
        pass
with ThreadPoolExecutor(2) as pool:
    print(json.dumps(list(pool.map(run, range(len(cases))))))
"""


def _namespace_reason() -> str | None:
    if not shutil.which("unshare") or os.geteuid() != 0:
        return "needs root and unshare(1) to mount a small tmpfs in a private mount namespace"
    r = subprocess.run(["unshare", "-m", "sh", "-c", "mount -t tmpfs -o size=16k tmpfs /mnt && umount /mnt"], capture_output=True, text=True)
    return None if r.returncode == 0 else f"this machine does not allow a private tmpfs mount: {r.stderr.strip()}"


def _run_on_tmpfs(tmp: Path, options: str, cases: list[tuple[str, list[str]]]) -> list[dict]:
    mnt = tmp / "mnt"
    mnt.mkdir()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    script = f'mount -t tmpfs -o {options} tmpfs "$1" && exec "$2" -c "$3" "$1" "$4"'
    r = subprocess.run(["unshare", "-m", "sh", "-c", script, "sh", str(mnt), sys.executable, DRIVER, json.dumps(cases)],
                       capture_output=True, text=True, env=env, timeout=1200)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, demo_store: Path, tiny_model_factory) -> dict[str, Path]:
    from bertsecrets_cli.data.demo_treebank import write_demo_treebank
    from bertsecrets_cli.jobs.extract import DataOptions, ExtractOptions, run_extract

    d = tmp_path_factory.mktemp("full-disk")
    for i in range(2):
        run_extract(ExtractOptions(data=DataOptions(task="sst2", limit=2), device="cpu", quiet=True, shard=f"{i}/2", batch_size=2),
                    d / f"s{i}.h5", command="t")
    write_demo_treebank(d / "chains.conllu", 2)
    labels = d / "labels.tsv"
    res = CliRunner().invoke(app, ["classify", "annotate", str(demo_store), "--labels", str(labels), "--limit", "5", "-q"],
                             input="\n".join("vdmbh") + "\n")
    assert res.exit_code == 0, res.stderr
    return {"a": demo_store, "s0": d / "s0.h5", "s1": d / "s1.h5", "chains": d / "chains.conllu", "labels": labels,
            "encoder": tiny_model_factory("bert")}


def _cases(i: dict[str, Path]) -> list[tuple[str, list[str]]]:
    a, o = str(i["a"]), "@MNT@/out.h5"
    return [
        ("extract", ["extract", "--limit", "3", "--batch-size", "3", "-o", o]),
        ("view", ["view", a, "-n", "2", "-o", "@MNT@/v.html"]),
        ("plot", ["plot", a, "--quantity", "stat_cls", "-o", "@MNT@/f.png"]),
        ("merge", ["merge", str(i["s0"]), str(i["s1"]), "-o", o]),
        ("classify train", ["classify", "train", str(i["labels"]), "--synthetic", "40", "--epochs", "1", "--val-fraction", "0.25", "-o", "@MNT@/c.pt"]),
        ("coref", ["coref", str(i["chains"]), "--model", str(i["encoder"]), "--bootstrap", "10", "-o", o]),
        ("probe", ["probe", "--train", str(i["chains"]), "--test", str(i["chains"]), "--model", str(i["encoder"]), "--embedding-dims", "0",
                   "--max-iter", "3", "-o", o]),
    ]


def _assert_clean(results: list[dict], needle: str) -> None:
    bad = []
    for r in results:
        lines = [ln for ln in r["stderr"].splitlines() if ln.strip()]
        errors = [ln for ln in lines if "error:" in ln]
        if not (r["rc"] == EXIT_OUTPUT and len(errors) == 1 and lines[-1] == errors[0] and needle in errors[0] and "@MNT@" not in errors[0]
                and "/mnt/" in errors[0] and "Traceback" not in r["stderr"] and "internal error" not in r["stderr"] and r["left"] == []):
            bad.append(r)
    assert not bad, json.dumps(bad, indent=1)


@pytest.mark.slow
def test_every_writer_on_a_full_disk_exits_6_with_one_line_and_leaves_nothing(inputs: dict[str, Path], tmp_path: Path) -> None:
    reason = _namespace_reason()
    if reason:
        pytest.skip(reason)
    results = _run_on_tmpfs(tmp_path, "size=4k", _cases(inputs))
    assert [r["name"] for r in results] == [n for n, _ in _cases(inputs)]
    _assert_clean(results, "no space left on the device")


@pytest.mark.slow
def test_every_writer_into_a_read_only_folder_exits_6_before_any_work(inputs: dict[str, Path], tmp_path: Path) -> None:
    reason = _namespace_reason()
    if reason:
        pytest.skip(reason)
    results = _run_on_tmpfs(tmp_path, "ro,size=4k", [("view", _cases(inputs)[1][1]), ("words", ["words", str(inputs["a"]), "-o", "@MNT@/w.h5"])])
    _assert_clean(results, "read-only")


def test_a_failed_write_of_another_file_never_fails_this_writer(tmp_path: Path) -> None:
    """h5py reports failed writes while freeing objects without raising; each writer counts only its own file's."""
    from bertsecrets_cli.store import writer as W

    other = RuntimeError("Can't decrement id ref count (file write failed: filename = '/proc/self/fd/99999', errno = 28, "
                         "error message = 'No space left on device')")
    before = len(W._SEEN_FAILURES)
    try:
        with W.StoreWriter(tmp_path / "a.h5", "ablation") as w:
            W._SEEN_FAILURES.append(other)
            w.put_json("x", {"a": 1})
    finally:
        del W._SEEN_FAILURES[before:]
    assert (tmp_path / "a.h5").exists() and not W.has_failed_handles()
