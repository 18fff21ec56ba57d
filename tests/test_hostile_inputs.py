"""Hostile inputs across every subcommand: each fails with its documented exit code and ONE last
``error:`` line, no traceback, inputs byte-for-byte untouched, and no partial output left behind.

Exit codes (README "Exit codes"): 2 usage, 3 bad input, 4 bad store, 5 model, 6 output.
Runs in-process with typer's CliRunner (fast); the real full-disk cases run a subprocess on a
tiny tmpfs, because a failed HDF5 write ends the process (see store/writer.py _FAILED_HANDLES).
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from bertsecrets_cli.cli.app import app

USAGE, INPUT, STORE, MODEL, OUTPUT = 2, 3, 4, 5, 6


# ---------------------------------------------------------------------------------------------
# hostile files, built once per module from the session's real demo stores


def _flip_attention_bytes(path: Path) -> None:
    """Flip bytes in the middle of an attention chunk on disk: its fletcher32 checksum fails on read."""
    import h5py

    with h5py.File(path, "r") as f:
        ds = f["attention/maps"]
        info = ds.id.get_chunk_info(0)  # holds example 0
        at = info.byte_offset + info.size // 2
    with open(path, "r+b") as fh:
        fh.seek(at)
        b = bytearray(fh.read(16))
        fh.seek(at)
        fh.write(bytes(x ^ 0xFF for x in b))


def _set_root_attr(path: Path, key: str, value: object) -> None:
    import h5py

    with h5py.File(path, "r+") as f:
        f.attrs[key] = value


def _zero_example_store(path: Path) -> None:
    """A structurally valid attention store that holds no example."""
    from bertsecrets_cli.store import schema as S
    from bertsecrets_cli.store.writer import StoreWriter

    with StoreWriter(path, "attention") as w:
        w.set_model(n_layers=6, n_heads=12, model_type="bert", name="empty")
        w.put_array(S.ATTENTION_MAPS, np.zeros(0, np.float16))
        w.h5[S.G_ATTENTION].attrs["encoding"] = "float16"
        for name, dt in (("examples/length", np.int32), ("examples/attention_offset", np.int64), ("examples/token_offset", np.int64),
                         ("tokens/ids", np.int32), ("tokens/type_ids", np.int8), ("tokens/special", np.int8)):
            w.put_array(name, np.zeros(0, dt))
        w.put_array("tokens/offsets", np.zeros((0, 2), np.int32))
        w.put_array(S.STATS_PER_EXAMPLE, np.zeros((0, 6, 12, len(S.STAT_NAMES)), np.float32))
        w.put_strings("examples/id", [])
        w.put_strings("tokens/text", [])


@pytest.fixture(scope="module")
def bad(tmp_path_factory: pytest.TempPathFactory, demo_store: Path) -> dict[str, Path]:
    import h5py

    d = tmp_path_factory.mktemp("hostile")
    out: dict[str, Path] = {}
    raw = demo_store.read_bytes()

    def copy(name: str) -> Path:
        p = d / name
        p.write_bytes(raw)
        out[name.removesuffix(".h5")] = p
        return p

    (d / "truncated.h5").write_bytes(raw[: len(raw) // 2])
    out["truncated"] = d / "truncated.h5"
    _flip_attention_bytes(copy("flipped.h5"))
    _set_root_attr(copy("v2.h5"), "encoding-version", "99")
    _set_root_attr(copy("incomplete.h5"), "complete", 0)
    with h5py.File(copy("nan.h5"), "r+") as f:
        f["attention/maps"][100:400] = np.nan
    with h5py.File(d / "foreign.h5", "w") as f:
        f["x"] = np.arange(10)
        f.attrs["creator"] = "some other tool"
    out["foreign"] = d / "foreign.h5"
    (d / "empty.h5").write_bytes(b"")
    out["empty"] = d / "empty.h5"
    (d / "text.h5").write_text("this is not a store\n")
    out["text"] = d / "text.h5"
    _zero_example_store(d / "zero.h5")
    out["zero"] = d / "zero.h5"
    return out


@pytest.fixture(scope="module")
def tiny_store(tmp_path_factory: pytest.TempPathFactory, tiny_model_factory) -> Path:
    """The demo sst2 examples through another model (2 layers x 4 heads)."""
    from bertsecrets_cli.jobs.extract import DataOptions, ExtractOptions, run_extract

    out = tmp_path_factory.mktemp("tiny") / "tiny.h5"
    run_extract(ExtractOptions(model=str(tiny_model_factory("bert")), data=DataOptions(task="sst2", limit=24), device="cpu", quiet=True), out)
    return out


@pytest.fixture(scope="module")
def data_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("data")
    files = {
        "ragged.tsv": "sentence\tlabel\ngood film\t1\nbad\tfilm\t0\textra\n".encode(),
        "nocol.tsv": b"foo\tbar\nfine\tstuff\n",
        "quote.csv": b'sentence,label\n"an unterminated quote,1\nok,0\n',
        "broken.jsonl": b'{"sentence": "fine", "label": 1}\n{"sentence": "broken", "label\n',
        "array.jsonl": b'[1, 2, 3]\n',
        "latin1.tsv": "sentence\tlabel\nun film tr\u00e8s r\u00e9ussi\t1\n".encode("latin-1"),
        "utf16.jsonl": '{"sentence": "fine", "label": 1}\n'.encode("utf-16"),
        "utf16.tsv": "sentence\tlabel\nfine\t1\n".encode("utf-16"),
        "empty.tsv": b"",
        "bad.conllu": b"# text = A dog .\n1\tA\ta\tDET\n2\tdog\n\n",
        "badhead.conllu": b"1\tA\ta\tDET\t_\t_\t7\tdet\t_\t_\n\n",
        "latin1.conllu": "1\tcaf\u00e9\tcaf\u00e9\tNOUN\t_\t_\t0\troot\t_\t_\n\n".encode("latin-1"),
    }
    out = {}
    for name, data in files.items():
        (d / name).write_bytes(data)
        out[name] = d / name
    fn = d / "fn_broken"
    for sub in ("frame", "fulltext", "lu"):
        (fn / sub).mkdir(parents=True)
    (fn / "frame" / "Motion.xml").write_bytes(b"<frame name='Motion'><FE name='Theme' coreType='Core'></frame")
    (fn / "fulltext" / "doc.xml").write_bytes(b"<fullTextAnnotation><sentence><text>unclosed")
    (fn / "lu" / "lu1.xml").write_bytes(b"<lexUnit name='go.v'>\x00\x01</lexUnit")
    (fn / "frameIndex.xml").write_bytes(b"<frameIndex><frame ID='1' name='Motion'/>")
    (fn / "luIndex.xml").write_bytes(b"<luIndex")
    out["fn_broken"] = fn
    return out


# ---------------------------------------------------------------------------------------------
# the assertion every case shares


def _snapshot(paths: list[Path]) -> dict[Path, bytes | None]:
    snap: dict[Path, bytes | None] = {}
    for p in paths:
        if p.is_dir():
            for q in sorted(p.rglob("*")):
                if q.is_file():
                    snap[q] = q.read_bytes()
        elif p.exists():
            snap[p] = p.read_bytes()
    return snap


def _leftovers(folder: Path) -> list[str]:
    if not folder.is_dir():
        return []
    return [q.name for q in folder.iterdir() if q.name.endswith(".tmp") or q.name.endswith(".partial")]


def assert_clean_failure(args: list[str], code: int, *, inputs: list[Path], outputs: list[Path], env: dict[str, str] | None = None) -> str:
    """Run ``bertsecrets ARGS`` in-process; assert the documented failure contract. Returns the error line."""
    before = _snapshot(inputs)
    res = CliRunner().invoke(app, args, env=env, catch_exceptions=True)
    stderr = res.stderr
    where = f"bertsecrets {' '.join(args)}\n--- stderr:\n{stderr}\n--- stdout:\n{res.stdout}"
    assert res.exception is None or isinstance(res.exception, SystemExit), f"uncaught {res.exception!r}: {where}"
    assert res.exit_code == code, where
    assert "Traceback" not in stderr + res.stdout, where
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    if code == USAGE:  # click/typer's own usage message (a boxed "Error" panel), not ours
        assert "Invalid value" in stderr or "Usage" in stderr, where
        errors = [stderr]
    else:
        errors = [ln for ln in lines if "error:" in ln]
        assert len(errors) == 1 and lines[-1] == errors[0], where
        assert "internal error" not in errors[0], where
    assert _snapshot(inputs) == before, f"an input was modified: {where}"
    for o in outputs:
        assert not o.exists(), f"partial output {o} left: {where}"
        assert not _leftovers(o.parent), f"temporary files {_leftovers(o.parent)} left: {where}"
    return errors[0]


# ---------------------------------------------------------------------------------------------
# damaged, foreign, empty and mismatched stores


@dataclass
class StoreCase:
    args: Callable[[dict[str, Path], Path, Path], list[str]]  # (bad stores, demo store, out folder) -> argv
    code: int
    needle: str = ""  # a word the error line must contain
    input_names: tuple[str, ...] = field(default_factory=tuple)


STORE_CASES = {
    "check-truncated": StoreCase(lambda b, d, o: ["check", str(b["truncated"])], STORE, "truncated", ("truncated",)),
    "show-truncated": StoreCase(lambda b, d, o: ["show", str(b["truncated"])], STORE, "truncated", ("truncated",)),
    "classify-truncated": StoreCase(lambda b, d, o: ["classify", str(b["truncated"]), "-o", str(o / "p.h5"), "--device", "cpu"], STORE, "", ("truncated",)),
    "check-bitflip": StoreCase(lambda b, d, o: ["check", str(b["flipped"])], STORE, "checksum", ("flipped",)),
    "classify-bitflip": StoreCase(lambda b, d, o: ["classify", str(b["flipped"]), "-o", str(o / "p.h5"), "--device", "cpu"], STORE, "corrupt", ("flipped",)),
    "diff-bitflip": StoreCase(lambda b, d, o: ["diff", str(d), str(b["flipped"]), "-o", str(o / "d.h5")], STORE, "corrupt", ("flipped",)),
    "plot-map-bitflip": StoreCase(lambda b, d, o: ["plot", str(b["flipped"]), "--example", "0", "--head", "L6H12", "--out", str(o / "m.png")], STORE, "corrupt", ("flipped",)),
    "check-other-version": StoreCase(lambda b, d, o: ["check", str(b["v2"])], STORE, "version", ("v2",)),
    "show-other-version": StoreCase(lambda b, d, o: ["show", str(b["v2"])], STORE, "version", ("v2",)),
    "merge-other-version": StoreCase(lambda b, d, o: ["merge", str(b["v2"]), "-o", str(o / "m.h5")], STORE, "version", ("v2",)),
    "check-incomplete": StoreCase(lambda b, d, o: ["check", str(b["incomplete"])], STORE, "incomplete", ("incomplete",)),
    "diff-incomplete": StoreCase(lambda b, d, o: ["diff", str(b["incomplete"]), str(d)], STORE, "incomplete", ("incomplete",)),
    "check-other-tool": StoreCase(lambda b, d, o: ["check", str(b["foreign"])], STORE, "another tool", ("foreign",)),
    "diff-other-tool": StoreCase(lambda b, d, o: ["diff", str(b["foreign"]), str(d)], STORE, "another tool", ("foreign",)),
    "classify-other-tool": StoreCase(lambda b, d, o: ["classify", str(b["foreign"]), "-o", str(o / "p.h5")], STORE, "another tool", ("foreign",)),
    "plot-other-tool": StoreCase(lambda b, d, o: ["plot", str(b["foreign"])], STORE, "another tool", ("foreign",)),
    "check-text-file": StoreCase(lambda b, d, o: ["check", str(b["text"])], STORE, "not an HDF5", ("text",)),
    "check-empty-file": StoreCase(lambda b, d, o: ["check", str(b["empty"])], STORE, "empty", ("empty",)),
    "show-empty-file": StoreCase(lambda b, d, o: ["show", str(b["empty"])], STORE, "empty", ("empty",)),
    "diff-empty-file": StoreCase(lambda b, d, o: ["diff", str(d), str(b["empty"]), "-o", str(o / "d.h5")], STORE, "empty", ("empty",)),
    "plot-empty-file": StoreCase(lambda b, d, o: ["plot", str(b["empty"]), "--out", str(o / "g.png")], STORE, "empty", ("empty",)),
    "merge-empty-file": StoreCase(lambda b, d, o: ["merge", str(b["empty"]), "-o", str(o / "m.h5")], STORE, "empty", ("empty",)),
    "check-nan-maps": StoreCase(lambda b, d, o: ["check", str(b["nan"])], STORE, "NaN", ("nan",)),
    "classify-zero-examples": StoreCase(lambda b, d, o: ["classify", str(b["zero"]), "-o", str(o / "p.h5")], STORE, "no example", ("zero",)),
    "diff-zero-examples": StoreCase(lambda b, d, o: ["diff", str(d), str(b["zero"]), "-o", str(o / "d.h5")], STORE, "no example", ("zero",)),
    "plot-map-zero-examples": StoreCase(lambda b, d, o: ["plot", str(b["zero"]), "--example", "0", "--head", "L1H1"], INPUT, "holds 0 examples", ("zero",)),
    "merge-same-store-twice": StoreCase(lambda b, d, o: ["merge", str(d), str(d), "-o", str(o / "m.h5")], STORE, "overlap"),
    "merge-missing-shard-file": StoreCase(lambda b, d, o: ["merge", str(o / "shard-0.h5"), "-o", str(o / "m.h5")], INPUT, "no such file"),
    "check-missing-file": StoreCase(lambda b, d, o: ["check", str(o / "nothing.h5")], INPUT, "no such file"),
    "show-folder": StoreCase(lambda b, d, o: ["show", str(o)], INPUT, "folder"),
    "view-bitflip": StoreCase(lambda b, d, o: ["view", str(b["flipped"]), "-o", str(o / "v.html")], STORE, "corrupt", ("flipped",)),
    "view-truncated": StoreCase(lambda b, d, o: ["view", str(b["truncated"]), "-o", str(o / "v.html")], STORE, "truncated", ("truncated",)),
    "view-other-tool": StoreCase(lambda b, d, o: ["view", str(b["foreign"]), "-o", str(o / "v.html")], STORE, "another tool", ("foreign",)),
    "view-empty-file": StoreCase(lambda b, d, o: ["view", str(b["empty"]), "-o", str(o / "v.html")], STORE, "empty", ("empty",)),
    "view-zero-examples": StoreCase(lambda b, d, o: ["view", str(b["zero"]), "-o", str(o / "v.html")], INPUT, "no examples", ("zero",)),
    "view-side-store-bitflip-as-patterns": StoreCase(lambda b, d, o: ["view", str(d), "--patterns", str(b["flipped"]), "-o", str(o / "v.html")], STORE, "patterns store", ("flipped",)),
}


@pytest.mark.parametrize("name", list(STORE_CASES))
def test_hostile_store_fails_cleanly(name: str, bad: dict[str, Path], demo_store: Path, tmp_path: Path) -> None:
    case = STORE_CASES[name]
    args = case.args(bad, demo_store, tmp_path)
    inputs = [bad[n] for n in case.input_names] + [demo_store]
    outputs = [tmp_path / n for n in ("p.h5", "d.h5", "m.h5", "m.png", "g.png", "v.html")]
    line = assert_clean_failure(args, case.code, inputs=inputs, outputs=outputs)
    assert case.needle.lower() in line.lower(), line


def test_diff_of_stores_from_different_models_is_refused(demo_store: Path, tiny_store: Path, tmp_path: Path) -> None:
    line = assert_clean_failure(["diff", str(demo_store), str(tiny_store), "-o", str(tmp_path / "d.h5")], INPUT,
                                inputs=[demo_store, tiny_store], outputs=[tmp_path / "d.h5"])
    assert "layers" in line


def test_diff_of_stores_on_different_examples_is_refused(demo_store: Path, demo_pair_store: Path, tmp_path: Path) -> None:
    line = assert_clean_failure(["diff", str(demo_store), str(demo_pair_store), "-o", str(tmp_path / "d.h5")], INPUT,
                                inputs=[demo_store, demo_pair_store], outputs=[tmp_path / "d.h5"])
    assert "in common" in line


def test_merge_of_shards_from_different_models_is_refused(tmp_path: Path, tiny_model_factory) -> None:
    from bertsecrets_cli.jobs.extract import DataOptions, ExtractOptions, run_extract

    a, b = tmp_path / "s0.h5", tmp_path / "s1.h5"
    run_extract(ExtractOptions(model=str(tiny_model_factory("bert")), data=DataOptions(limit=6), shard="0/2", device="cpu", quiet=True), a)
    run_extract(ExtractOptions(model=str(tiny_model_factory("roberta")), data=DataOptions(limit=6), shard="1/2", device="cpu", quiet=True), b)
    line = assert_clean_failure(["merge", str(a), str(b), "-o", str(tmp_path / "m.h5")], STORE, inputs=[a, b], outputs=[tmp_path / "m.h5"])
    assert "differs" in line or "different" in line


@pytest.mark.parametrize("damage", ["truncated", "bit-flipped"])
def test_merge_of_a_damaged_patterns_shard_fails_cleanly(damage: str, demo_store: Path, tmp_path: Path) -> None:
    from bertsecrets_cli.jobs.classify import ClassifyOptions, run_classify

    parts = [tmp_path / f"p{i}.h5" for i in range(2)]
    for i, p in enumerate(parts):
        run_classify(demo_store, p, ClassifyOptions(quiet=True, shard=f"{i}/2"))
    data = bytearray(parts[1].read_bytes())
    if damage == "truncated":
        data = data[: len(data) // 2]
    else:  # the superblock's signature: the file no longer reads as HDF5
        data[0:8] = bytes(b ^ 0xFF for b in data[0:8])
    parts[1].write_bytes(bytes(data))
    assert_clean_failure(["merge", *map(str, parts), "-o", str(tmp_path / "m.h5")], STORE, inputs=parts, outputs=[tmp_path / "m.h5"])


# ---------------------------------------------------------------------------------------------
# malformed data files, wrong encodings, absurd option values


DATA_CASES: dict[str, tuple[Callable[[dict[str, Path], Path], list[str]], int, str]] = {
    "extract-ragged-tsv": (lambda f, o: ["extract", "--data", str(f["ragged.tsv"]), "-o", str(o / "x.h5")], INPUT, "ragged.tsv"),
    "extract-tsv-without-text-column": (lambda f, o: ["extract", "--data", str(f["nocol.tsv"]), "-o", str(o / "x.h5")], INPUT, "column"),
    "extract-csv-unterminated-quote": (lambda f, o: ["extract", "--data", str(f["quote.csv"]), "-o", str(o / "x.h5")], INPUT, "quote.csv"),
    "extract-jsonl-broken-line": (lambda f, o: ["extract", "--data", str(f["broken.jsonl"]), "-o", str(o / "x.h5")], INPUT, "broken.jsonl"),
    "extract-jsonl-not-objects": (lambda f, o: ["extract", "--data", str(f["array.jsonl"]), "-o", str(o / "x.h5")], INPUT, "array.jsonl"),
    "extract-latin1-tsv": (lambda f, o: ["extract", "--data", str(f["latin1.tsv"]), "-o", str(o / "x.h5")], INPUT, "utf-8"),
    "extract-utf16-jsonl": (lambda f, o: ["extract", "--data", str(f["utf16.jsonl"]), "-o", str(o / "x.h5")], INPUT, "utf"),
    "extract-utf16-tsv": (lambda f, o: ["extract", "--data", str(f["utf16.tsv"]), "-o", str(o / "x.h5")], INPUT, "utf"),
    "extract-empty-tsv": (lambda f, o: ["extract", "--data", str(f["empty.tsv"]), "-o", str(o / "x.h5")], INPUT, "empty.tsv"),
    "extract-huge-max-length": (lambda f, o: ["extract", "--max-length", "1000000000", "--limit", "2", "-o", str(o / "x.h5")], INPUT, "--max-length"),
    "extract-bad-shard": (lambda f, o: ["extract", "--shard", "4/4", "--limit", "2", "-o", str(o / "x.h5")], INPUT, "--shard"),
    "extract-max-length-not-a-number": (lambda f, o: ["extract", "--max-length", "lots", "-o", str(o / "x.h5")], USAGE, "max-length"),
    "ablate-huge-max-length": (lambda f, o: ["ablate", "--heads", "L1H1", "--limit", "4", "--max-length", "1000000000", "--bootstrap", "0", "-o", str(o / "x.h5")], INPUT, "--max-length"),
    "ablate-malformed-csv": (lambda f, o: ["ablate", "--heads", "L1H1", "--data", str(f["quote.csv"]), "--bootstrap", "0", "-o", str(o / "x.h5")], INPUT, "quote.csv"),
    "finetune-utf16-train-file": (lambda f, o: ["finetune", "--data", str(f["utf16.jsonl"]), "--eval-data", str(f["utf16.jsonl"]), "-o", str(o / "x")], INPUT, "utf"),
    "finetune-huge-max-length": (lambda f, o: ["finetune", "--max-length", "1000000000", "--max-steps", "1", "-o", str(o / "x")], INPUT, "--max-length"),
    "framenet-huge-max-length": (lambda f, o: ["framenet", "--conllu", str(f["bad.conllu"]), "--max-length", "1000000000", "-o", str(o / "x.h5")], INPUT, "--max-length"),
    "framenet-conllu-too-few-columns": (lambda f, o: ["framenet", "--conllu", str(f["bad.conllu"]), "-o", str(o / "x.h5")], INPUT, "bad.conllu"),
    "framenet-conllu-head-out-of-range": (lambda f, o: ["framenet", "--conllu", str(f["badhead.conllu"]), "-o", str(o / "x.h5")], INPUT, "HEAD"),
    "framenet-conllu-latin1": (lambda f, o: ["framenet", "--conllu", str(f["latin1.conllu"]), "-o", str(o / "x.h5")], INPUT, "latin1.conllu"),
    "framenet-malformed-xml": (lambda f, o: ["framenet", "--framenet", str(f["fn_broken"]), "-o", str(o / "x.h5")], INPUT, "fn_broken"),
    "framenet-missing-folder": (lambda f, o: ["framenet", "--framenet", str(o / "fndata-1.7"), "-o", str(o / "x.h5")], INPUT, "no such folder"),
    "reproduce-unknown-task": (lambda f, o: ["reproduce", "--tasks", "sst2,nosuchtask", "-o", str(o / "x")], INPUT, "nosuchtask"),
    "reproduce-malformed-conllu": (lambda f, o: ["reproduce", "--conllu", str(f["bad.conllu"]), "-o", str(o / "x")], INPUT, "bad.conllu"),
}


@pytest.mark.parametrize("name", list(DATA_CASES))
def test_malformed_data_fails_cleanly(name: str, data_files: dict[str, Path], tmp_path: Path) -> None:
    build, code, needle = DATA_CASES[name]
    line = assert_clean_failure(build(data_files, tmp_path), code, inputs=list(data_files.values()), outputs=[tmp_path / "x.h5", tmp_path / "x"])
    assert needle.lower() in line.lower(), line
    assert not list(tmp_path.glob(".x.h5.parts")), "a run refused up front must not leave a resumable state"


# ---------------------------------------------------------------------------------------------
# heads and layers that do not exist


HEAD_CASES: dict[str, tuple[Callable[[Path, Path, str], list[str]], str]] = {  # (store, out folder, tiny classifier) -> argv
    "ablate-L13H1": (lambda s, o, m: ["ablate", "--model", m, "--heads", "L13H1", "--limit", "4", "--bootstrap", "0", "-o", str(o / "a.h5")], "L13H1"),
    "ablate-L1H13": (lambda s, o, m: ["ablate", "--model", m, "--heads", "L1H13", "--limit", "4", "--bootstrap", "0", "-o", str(o / "a.h5")], "L1H13"),
    "ablate-L0H1": (lambda s, o, m: ["ablate", "--model", m, "--heads", "L0H1", "--limit", "4", "--bootstrap", "0", "-o", str(o / "a.h5")], "L0H1"),
    "ablate-garbage-head": (lambda s, o, m: ["ablate", "--model", m, "--heads", "head7", "--limit", "4", "--bootstrap", "0", "-o", str(o / "a.h5")], "head7"),
    "ablate-layer-3-of-2": (lambda s, o, m: ["ablate", "--model", m, "--layers", "L3", "--limit", "4", "--bootstrap", "0", "-o", str(o / "a.h5")], "3"),
    "plot-head-L13H1": (lambda s, o, m: ["plot", str(s), "--example", "0", "--head", "L13H1", "--out", str(o / "m.png")], "L13H1"),
    "plot-head-13-of-layer-1": (lambda s, o, m: ["plot", str(s), "--example", "0", "--layer", "1", "--head", "13", "--out", str(o / "m.png")], "13"),
    "plot-unknown-quantity": (lambda s, o, m: ["plot", str(s), "--quantity", "no_such_thing", "--out", str(o / "g.png")], "no_such_thing"),
    "plot-example-out-of-range": (lambda s, o, m: ["plot", str(s), "--example", "999", "--head", "L1H1", "--out", str(o / "m.png")], "999"),
    "show-layer-13": (lambda s, o, m: ["show", str(s), "--quantity", "stat_cls", "--layer", "13"], "13"),
    "show-unknown-quantity": (lambda s, o, m: ["show", str(s), "--quantity", "no_such_thing"], "no_such_thing"),
}


@pytest.mark.parametrize("name", list(HEAD_CASES))
def test_unknown_head_fails_cleanly(name: str, demo_store: Path, tmp_path: Path, tiny_model_factory) -> None:
    """The tiny classifier has 2 layers x 4 heads; the demo store 6 x 12."""
    build, needle = HEAD_CASES[name]
    line = assert_clean_failure(build(demo_store, tmp_path, str(tiny_model_factory("bert", classifier=True))), INPUT, inputs=[demo_store], outputs=[tmp_path / "a.h5", tmp_path / "m.png", tmp_path / "g.png"])
    assert needle.lower() in line.lower(), line


# ---------------------------------------------------------------------------------------------
# outputs that cannot be written: existing, read-only folder, full disk


def _mount_tmpfs(where: Path, options: str) -> bool:
    if shutil.which("mount") is None:
        return False
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)], capture_output=True)
    return r.returncode == 0


def _umount(where: Path) -> None:
    subprocess.run(["umount", str(where)], capture_output=True)


@pytest.fixture
def readonly_dir(tmp_path: Path) -> Iterator[Path]:
    """A folder nobody can write in: chmod 0o555, or (as root, who ignores modes) a read-only tmpfs."""
    d = tmp_path / "ro"
    d.mkdir()
    d.chmod(0o555)
    if not os.access(d, os.W_OK):
        yield d
        d.chmod(0o755)
        return
    d.chmod(0o755)
    if not _mount_tmpfs(d, "ro,size=64k"):
        pytest.skip("cannot make a read-only folder here (root ignores chmod, and mount is not allowed)")
    try:
        yield d
    finally:
        _umount(d)


READONLY_CASES: dict[str, Callable[[Path, Path, Path, str], list[str]]] = {  # (store, conllu, folder, tiny classifier) -> argv
    "extract": lambda s, p, o, m: ["extract", "--limit", "2", "-o", str(o / "x.h5")],
    "classify": lambda s, p, o, m: ["classify", str(s), "-o", str(o / "x.h5")],
    "diff": lambda s, p, o, m: ["diff", str(s), str(s), "-o", str(o / "x.h5")],
    "merge": lambda s, p, o, m: ["merge", str(s), "-o", str(o / "x.h5")],
    "plot": lambda s, p, o, m: ["plot", str(s), "--out", str(o / "x.png")],
    "finetune": lambda s, p, o, m: ["finetune", "--max-steps", "1", "--train-limit", "4", "--eval-limit", "4", "-o", str(o / "x")],
    "framenet": lambda s, p, o, m: ["framenet", "--conllu", str(p), "-o", str(o / "x.h5")],
    "ablate": lambda s, p, o, m: ["ablate", "--model", m, "--heads", "L1H1", "--limit", "4", "--bootstrap", "0", "-o", str(o / "x.h5")],
    "reproduce": lambda s, p, o, m: ["reproduce", "-o", str(o / "x")],
}


@pytest.mark.parametrize("name", list(READONLY_CASES))
def test_read_only_output_folder_fails_before_work(name: str, demo_store: Path, readonly_dir: Path, tmp_path: Path, tiny_model_factory) -> None:
    conllu = tmp_path / "ok.conllu"
    conllu.write_text("1\tA\ta\tDET\t_\t_\t2\tdet\t_\t_\n2\tdog\tdog\tNOUN\t_\t_\t0\troot\t_\t_\n\n")
    args = READONLY_CASES[name](demo_store, conllu, readonly_dir, str(tiny_model_factory("bert", classifier=True)))
    line = assert_clean_failure(args, OUTPUT, inputs=[demo_store, conllu], outputs=[readonly_dir / "x.h5", readonly_dir / "x.png", readonly_dir / "x"])
    assert "ro" in line


@pytest.mark.parametrize("cmd", ["classify", "diff", "merge"])
def test_existing_output_is_refused_without_force(cmd: str, demo_store: Path, tmp_path: Path) -> None:
    out = tmp_path / "exists.h5"
    out.write_bytes(b"precious")
    args = {"classify": ["classify", str(demo_store)], "diff": ["diff", str(demo_store), str(demo_store)], "merge": ["merge", str(demo_store)]}[cmd]
    res = CliRunner().invoke(app, [*args, "-o", str(out)])
    assert res.exit_code == OUTPUT and "--force" in res.stderr.strip().splitlines()[-1], res.stderr
    assert out.read_bytes() == b"precious"


@pytest.mark.parametrize("cmd", ["classify", "diff"])
def test_disk_full_while_committing_is_exit_6_without_leftovers(cmd: str, demo_store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """ENOSPC raised by the final flush (simulated in-process): one line, exit 6, no temporary file."""
    import h5py

    def full(self: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(h5py.File, "flush", full)
    args = {"classify": ["classify", str(demo_store)], "diff": ["diff", str(demo_store), str(demo_store)]}[cmd]
    line = assert_clean_failure([*args, "-o", str(tmp_path / "x.h5")], OUTPUT, inputs=[demo_store], outputs=[tmp_path / "x.h5"])
    assert "no space left" in line


@pytest.fixture
def full_disk(tmp_path: Path) -> Iterator[Path]:
    """A real, nearly full 64 KiB tmpfs (needs mount; skipped elsewhere)."""
    d = tmp_path / "full"
    d.mkdir()
    if not _mount_tmpfs(d, "size=64k"):
        pytest.skip("mount is not allowed here: no tiny filesystem for a real full disk")
    try:
        (d / "ballast").write_bytes(b"\0" * 40_000)
        yield d
    finally:
        _umount(d)


@pytest.mark.parametrize("cmd", ["classify", "extract"])
def test_real_full_disk_is_exit_6_one_line_no_leftovers(cmd: str, demo_store: Path, full_disk: Path) -> None:
    """HDF5 hitting ENOSPC used to crash the process (SIGSEGV) or report an internal error."""
    out = full_disk / "x.h5"
    args = {"classify": ["classify", str(demo_store), "-o", str(out), "--device", "cpu"],
            "extract": ["extract", "--limit", "8", "--device", "cpu", "-q", "-o", str(out)]}[cmd]
    before = demo_store.read_bytes()
    r = subprocess.run([sys.executable, "-m", "bertsecrets_cli", *args], capture_output=True, text=True, timeout=300)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.returncode == OUTPUT, r.stderr
    assert "Traceback" not in r.stderr and "Exception ignored" not in r.stderr, r.stderr
    assert len([ln for ln in lines if "error:" in ln]) == 1 and "no space left" in lines[-1], r.stderr
    assert not out.exists() and not _leftovers(full_disk) and not _leftovers(full_disk / ".x.h5.parts")
    assert demo_store.read_bytes() == before
