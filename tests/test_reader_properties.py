"""Property-based (hypothesis) tests of every reader and of the store reader: arbitrary bytes and structurally
mutated valid files either parse or end with one line (an InputError, exit 3, or a StoreError, exit 4), never
another exception (a traceback for the user), never a hang. In-process and bounded: a few seconds in all."""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from bertsecrets_cli.errors import EXIT_INPUT, EXIT_STORE, BertsecretsError  # noqa: E402

BOUNDED = settings(max_examples=60, deadline=2000, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
                   derandomize=True, database=None)

CONLLU = (b"# sent_id = s1\n# text = The cat sat .\n"
          b"1\tThe\tthe\tDET\t_\t_\t2\tdet\t_\tEntity=(e1\n2\tcat\tcat\tNOUN\t_\t_\t3\tnsubj\t_\tEntity=e1)\n"
          b"3\tsat\tsit\tVERB\t_\t_\t0\troot\t_\t_\n4\t.\t.\tPUNCT\t_\t_\t3\tpunct\t_\t_\n\n")
COREF_JSONL = (json.dumps({"id": "d1", "sentences": [["The", "cat", "sat"], ["It", "slept"]],
                           "mentions": [{"sentence": 0, "start": 0, "end": 2, "entity": "c", "head": 1},
                                        {"sentence": 1, "start": 0, "end": 1, "entity": "c", "type": "pronoun"}]}) + "\n").encode()
LABELS = b"store\texample\tlayer\thead\tlabel\nx.h5\t0\t1\t1\tvertical\nx.h5\t1\t2\t3\tskip\n"
TSV = b"sentence\tlabel\nit is good\t1\nit is bad\t0\n"
CSV = b'sentence,label\n"it is good, really",1\nbad,0\n'
JSONL = b'{"sentence": "it is good", "label": 1}\n{"sentence": "bad", "label": 0}\n'


def mutations(valid: bytes) -> st.SearchStrategy[bytes]:
    """Structural mutations of a valid file: delete, duplicate, swap or overwrite a slice; insert hostile bytes."""
    hostile = st.sampled_from([b"\x00", b"\xff", b"\xef\xbb\xbf", b"\t", b"\n", b"\r", b"-1", b"0.7", b"true", b"\"", b"{", b"]",
                               b"99999999999999999999", b"\xe2\x80\xa8", b"1-2", b"1.1", b"_", b"(", b")", b"<", b"&"])

    @st.composite
    def mutate(draw: Callable) -> bytes:
        data = bytearray(valid)
        for _ in range(draw(st.integers(1, 4))):
            i = draw(st.integers(0, len(data)))
            j = draw(st.integers(i, min(len(data), i + 12)))
            op = draw(st.sampled_from(["delete", "dup", "insert", "overwrite"]))
            if op == "delete":
                del data[i:j]
            elif op == "dup":
                data[i:i] = data[i:j]
            elif op == "insert":
                data[i:i] = draw(hostile)
            else:
                data[i:j] = draw(hostile)
        return bytes(data)

    return mutate()


def any_bytes_or(valid: bytes) -> st.SearchStrategy[bytes]:
    return st.one_of(st.binary(max_size=300), mutations(valid))


def _parses_or_one_line(read: Callable[[Path], object], path: Path, codes: tuple[int, ...] = (EXIT_INPUT,)) -> None:
    try:
        read(path)
    except BertsecretsError as e:
        assert e.exit_code in codes, (type(e), str(e))
        msg = str(e)
        assert msg and "\n" not in msg.strip() and "Traceback" not in msg, msg


def _file(data: bytes, name: str) -> Path:
    d = Path(tempfile.mkdtemp(prefix="bs-prop-"))
    p = d / name
    p.write_bytes(data)
    return p


def _run(read: Callable[[Path], object], data: bytes, name: str, codes: tuple[int, ...] = (EXIT_INPUT,)) -> None:
    p = _file(data, name)
    try:
        _parses_or_one_line(read, p, codes)
    finally:
        shutil.rmtree(p.parent, ignore_errors=True)


@BOUNDED
@given(any_bytes_or(CONLLU))
def test_conllu_reader_parses_or_gives_one_line(data: bytes) -> None:
    from bertsecrets_cli.data.conllu import read_conllu

    _run(lambda p: list(read_conllu(p)), data, "x.conllu")


@BOUNDED
@given(any_bytes_or(CONLLU))
def test_corefud_reader_parses_or_gives_one_line(data: bytes) -> None:
    from bertsecrets_cli.data.coref import read_corefud

    _run(read_corefud, data, "x.conllu")


@BOUNDED
@given(any_bytes_or(COREF_JSONL))
def test_coref_jsonl_reader_parses_or_gives_one_line(data: bytes) -> None:
    from bertsecrets_cli.data.coref import read_coref_jsonl

    _run(read_coref_jsonl, data, "x.jsonl")


JSON_VALUES = st.recursive(st.none() | st.booleans() | st.floats(allow_nan=False) | st.integers(-3, 9) | st.text(max_size=4),
                           lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=3), c, max_size=3), max_leaves=8)
MENTION = st.dictionaries(st.sampled_from(["start", "end", "head", "sentence", "entity", "type"]), JSON_VALUES | st.integers(0, 3), max_size=6)


@BOUNDED
@given(st.lists(MENTION | JSON_VALUES, max_size=3) | JSON_VALUES, st.none() | JSON_VALUES)
def test_coref_jsonl_reader_on_arbitrary_mention_values(mentions: object, upos: object) -> None:
    """Valid sentences with any JSON as mentions (and upos): whole-number positions or one line."""
    from bertsecrets_cli.data.coref import read_coref_jsonl

    doc = {"sentences": [["The", "cat", "sat"], ["It", "slept"]], "mentions": mentions, **({"upos": upos} if upos is not None else {})}
    _run(read_coref_jsonl, json.dumps(doc).encode() + b"\n", "x.jsonl")


@BOUNDED
@given(any_bytes_or(LABELS))
def test_labels_reader_parses_or_gives_one_line(data: bytes) -> None:
    from bertsecrets_cli.jobs.labels import read_labels

    _run(read_labels, data, "labels.tsv")


@BOUNDED
@given(st.sampled_from([("x.tsv", TSV), ("x.csv", CSV), ("x.jsonl", JSONL)]).flatmap(
    lambda nv: st.tuples(st.just(nv[0]), any_bytes_or(nv[1]))))
def test_data_file_readers_parse_or_give_one_line(case: tuple[str, bytes]) -> None:
    from bertsecrets_cli.data.sources import load_dataset
    from bertsecrets_cli.data.tasks import get_task

    name, data = case
    _run(lambda p: load_dataset(get_task("sst2"), str(p)), data, name)


@BOUNDED
@given(st.data())
def test_framenet_reader_reads_or_gives_one_line(data: st.DataObject) -> None:
    from test_framenet_reader import FULLTEXT, write_release

    from bertsecrets_cli.data.framenet import FrameNetRelease

    root = Path(tempfile.mkdtemp(prefix="bs-fn-"))
    try:
        write_release(root)
        text = data.draw(any_bytes_or(FULLTEXT.encode()))
        (root / "fulltext" / "mutated.xml").write_bytes(text)

        def read(p: Path) -> None:
            fn = FrameNetRelease(p)
            fn.frames()
            list(fn.sentences())

        _parses_or_one_line(read, root)
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def small_store(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A complete, small store (a words-kind store would do as well: the reader's checks are the same)."""
    from bertsecrets_cli.store.writer import StoreWriter

    p = tmp_path_factory.mktemp("prop-store") / "s.h5"
    with StoreWriter(p, "ablation") as w:
        w.set_model(n_layers=2, n_heads=2, name="m")
        w.put_json("ablation/summary", {"a": 1})
        w.put_array("heads/x", [[0.1, 0.2], [0.3, 0.4]])
    return p.read_bytes()


@settings(max_examples=40, deadline=3000, suppress_health_check=[HealthCheck.function_scoped_fixture], derandomize=True, database=None)
@given(st.data())
def test_store_reader_opens_or_gives_one_line(small_store: bytes, data: st.DataObject) -> None:
    """Truncations and overwritten slices of a real store, and arbitrary bytes: open_store and reading the
    per-head table either work or end as one StoreError/InputError line."""
    from bertsecrets_cli.store import open_store

    raw = bytearray(small_store)
    kind = data.draw(st.sampled_from(["truncate", "overwrite", "bytes"]))
    if kind == "truncate":
        raw = raw[: data.draw(st.integers(0, len(raw) - 1))]
    elif kind == "overwrite":
        i = data.draw(st.integers(0, len(raw) - 8))
        raw[i : i + 8] = data.draw(st.binary(min_size=8, max_size=8))
    else:
        raw = bytearray(data.draw(st.binary(max_size=200)))

    def read(p: Path) -> None:
        with open_store(p, validate=True) as s:
            s.heads()
            s.provenance()

    _run(read, bytes(raw), "s.h5", (EXIT_INPUT, EXIT_STORE))
