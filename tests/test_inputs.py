"""bertsecrets_cli.inputs, the one way every text file is read, and the readers' schema checks: each unfit file
ends with one line naming file:line(:column), never a traceback, a hang or a silently truncated value."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest
from helpers import one_line_error
from typer.testing import CliRunner

from bertsecrets_cli import inputs
from bertsecrets_cli.cli.app import app
from bertsecrets_cli.data.conllu import read_conllu
from bertsecrets_cli.data.coref import read_coref_jsonl
from bertsecrets_cli.errors import EXIT_INPUT, InputError
from bertsecrets_cli.jobs.labels import read_labels

runner = CliRunner()

ROW = "{i}\tw{i}\tw{i}\tNOUN\t_\t_\t{h}\tdep\t_\t_"


def _conllu(heads: list[int]) -> str:
    return "\n".join(ROW.format(i=i + 1, h=h) for i, h in enumerate(heads)) + "\n\n"


def test_a_fifo_is_refused_at_once_instead_of_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "x.conllu"
    os.mkfifo(fifo)
    done: list[BaseException] = []
    t = threading.Thread(target=lambda: done.append(pytest.raises(InputError, list, read_conllu(fifo)).value), daemon=True)
    t.start()
    t.join(timeout=10)
    assert done and "FIFO" in str(done[0]) and "not a regular file" in str(done[0])


def test_a_device_is_refused_before_a_byte_is_read() -> None:
    with pytest.raises(InputError, match="character device, not a regular file"):
        list(read_conllu("/dev/zero"))


def test_a_byte_order_mark_is_dropped(tmp_path: Path) -> None:
    f = tmp_path / "bom.conllu"
    f.write_bytes(b"\xef\xbb\xbf" + _conllu([0, 1]).encode())
    [s] = list(read_conllu(f))
    assert [w.form for w in s.words] == ["w1", "w2"] and [w.head for w in s.words] == [0, 1]


def test_a_bad_byte_is_reported_at_its_own_line_and_column(tmp_path: Path) -> None:
    f = tmp_path / "far.conllu"
    body = _conllu([0, 1]) * 500  # 1500 lines
    f.write_bytes(body.encode() + b"1\tab\xffc\tx\tNOUN\t_\t_\t0\troot\t_\t_\n")
    with pytest.raises(InputError) as e:
        list(read_conllu(f))
    assert str(e.value) == f"{f}:1501:5: byte 0xff is not UTF-8 (invalid start byte); save the file as UTF-8"


def test_a_nul_byte_is_refused_with_its_position(tmp_path: Path) -> None:
    f = tmp_path / "labels.tsv"
    f.write_bytes(b"store\texample\tlayer\thead\tlabel\nx.h5\t0\t1\t1\tvert\x00ical\n")
    with pytest.raises(InputError, match=r"labels\.tsv:2:16: byte 0x00 \(NUL\)"):
        read_labels(f)


def test_a_line_over_the_cap_is_refused(tmp_path: Path) -> None:
    f = tmp_path / "long.txt"
    f.write_bytes(b"a" * 5000 + b"\n")
    with pytest.raises(InputError, match=r"long\.txt:1: line longer than 1,000 bytes"):
        list(inputs.text_lines(f, max_line=1000))


@pytest.mark.parametrize("heads, cycle", [([2, 1], "1 -> 2 -> 1"), ([0, 3, 4, 2], "2 -> 3 -> 4 -> 2")])
def test_conllu_heads_that_form_a_cycle_are_refused(tmp_path: Path, heads: list[int], cycle: str) -> None:
    f = tmp_path / "cycle.conllu"
    f.write_text(_conllu(heads))
    with pytest.raises(InputError, match=f"cycle \\({cycle}\\), not a tree"):
        list(read_conllu(f))


def test_conllu_tree_check_accepts_a_real_tree(tmp_path: Path) -> None:
    f = tmp_path / "tree.conllu"
    f.write_text(_conllu([2, 0, 2, 3, 4]))
    [s] = list(read_conllu(f))
    assert [w.head for w in s.words] == [2, 0, 2, 3, 4]


DOC = {"sentences": [["The", "cat", "sat", "."]], "mentions": []}


@pytest.mark.parametrize("mentions, needle", [
    ([1, 2], "each mention must be an object"),
    ([{"start": 0, "end": 2, "entity": "e", "head": "x"}], "'head' must be a whole number"),
    ([{"start": 0.7, "end": 2, "entity": "e"}], "'start' must be a whole number"),
    ([{"start": True, "end": 2, "entity": "e"}], "'start' must be a whole number"),
    ([{"start": 0, "end": "2", "entity": "e"}], "'end' must be a whole number"),
    ([{"start": 0, "end": 2, "entity": "e", "sentence": 0.0}], "'sentence' must be a whole number"),
    ([{"start": 0, "end": 2}], "needs an 'entity'"),
    ({"start": 0}, "'mentions' must be a list"),
])
def test_coref_positions_must_be_whole_numbers(tmp_path: Path, mentions: object, needle: str) -> None:
    f = tmp_path / "c.jsonl"
    f.write_text(json.dumps({**DOC, "mentions": mentions}) + "\n")
    with pytest.raises(InputError, match=needle) as e:
        read_coref_jsonl(f)
    assert str(e.value).startswith(f"{f}:1: ")


def test_coref_latin1_bytes_are_a_decoding_error_with_the_column(tmp_path: Path) -> None:
    f = tmp_path / "c.jsonl"
    f.write_bytes(json.dumps({**DOC, "sentences": [["caf\u00e9"]]}, ensure_ascii=False).encode("latin-1") + b"\n")
    with pytest.raises(InputError, match=r"c\.jsonl:1:\d+: byte 0xe9 is not UTF-8"):
        read_coref_jsonl(f)


def test_coref_valid_positions_still_read(tmp_path: Path) -> None:
    f = tmp_path / "c.jsonl"
    f.write_text(json.dumps({**DOC, "mentions": [{"start": 0, "end": 2, "entity": 3, "head": 1}]}) + "\n")
    [doc] = read_coref_jsonl(f)
    [m] = doc.sentences[0].mentions
    assert m.words == (0, 1) and m.head == 1 and m.entity == "3"


# ------------------------------------------------------------------------------------------ through the command line


def test_extract_refuses_a_nul_byte_in_a_tsv_text_and_leaves_no_parts_folder(tmp_path: Path) -> None:
    data = tmp_path / "d.tsv"
    data.write_bytes(b"sentence\tlabel\nfine text\t1\nbad\x00text\t0\n")
    out = tmp_path / "x.h5"
    res = runner.invoke(app, ["extract", "--task", "sst2", "--data", str(data), "-o", str(out)])
    one_line_error(res, EXIT_INPUT, "d.tsv:3:4: byte 0x00 (NUL)")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.tsv"]


def test_probe_refuses_a_conllu_cycle_on_the_command_line(tmp_path: Path) -> None:
    f = tmp_path / "c.conllu"
    f.write_text(_conllu([2, 1, 0]))
    res = runner.invoke(app, ["probe", "--train", str(f), "--test", str(f), "-o", str(tmp_path / "p.h5")])
    one_line_error(res, EXIT_INPUT, "c.conllu:1: HEAD values form a cycle")
    assert not (tmp_path / "p.h5").exists()


def test_coref_refuses_a_fifo_on_the_command_line(tmp_path: Path) -> None:
    fifo = tmp_path / "c.jsonl"
    os.mkfifo(fifo)
    res = runner.invoke(app, ["coref", str(fifo), "-o", str(tmp_path / "c.h5")])
    one_line_error(res, EXIT_INPUT, "FIFO", "not a regular file")


def test_classify_train_refuses_a_labels_file_with_a_bad_byte(tmp_path: Path) -> None:
    f = tmp_path / "l.tsv"
    f.write_bytes(b"store\texample\tlayer\thead\tlabel\nx.h5\t0\t1\t1\tvertical\t\xe9t\xe9\n")
    res = runner.invoke(app, ["classify", "train", str(f), "-o", str(tmp_path / "c.pt")])
    one_line_error(res, EXIT_INPUT, "l.tsv:2:21: byte 0xe9 is not UTF-8")
    assert not (tmp_path / "c.pt").exists()


def test_framenet_refuses_a_conllu_with_a_bom_and_a_cycle_at_the_cycle_not_the_bom(tmp_path: Path) -> None:
    f = tmp_path / "fn.conllu"
    f.write_bytes(b"\xef\xbb\xbf" + _conllu([0, 3, 2]).encode())
    res = runner.invoke(app, ["framenet", "--conllu", str(f), "-o", str(tmp_path / "f.h5")])
    one_line_error(res, EXIT_INPUT, "fn.conllu:2: HEAD values form a cycle (2 -> 3 -> 2)")


def test_show_refuses_random_bytes_as_a_store_with_one_line(tmp_path: Path) -> None:
    f = tmp_path / "s.h5"
    f.write_bytes(os.urandom(4096))
    res = runner.invoke(app, ["show", str(f)])
    one_line_error(res, 4, "not an HDF5 file")
