"""Tables: cells are data, never markup; tsv/json are machine-readable."""

from __future__ import annotations

import io
import json

import pytest

from bertsecrets_cli.errors import InputError
from bertsecrets_cli.render.tables import OutputFormat, Table, emit


def test_square_brackets_in_cells_survive_the_terminal_table() -> None:
    t = Table("t", ["token", "score"])
    t.add("[their homes]", 0.5)
    t.add("[CLS]", float("nan"))
    buf = io.StringIO()
    emit(t, "table", buf)
    assert "[their homes]" in buf.getvalue() and "[CLS]" in buf.getvalue()


def test_json_turns_nan_into_null_and_tsv_has_a_header() -> None:
    t = Table("t", ["head", "v"])
    t.add("L1H2", float("nan"))
    buf = io.StringIO()
    emit(t, "json", buf)
    assert json.loads(buf.getvalue()) == [{"head": "L1H2", "v": None}]
    buf = io.StringIO()
    emit(t, "tsv", buf)
    assert buf.getvalue().splitlines() == ["head\tv", "L1H2\tnan"]


def test_tsv_and_json_print_one_table_and_name_the_others_on_stderr(capsys) -> None:
    from bertsecrets_cli.render.console import set_verbosity

    set_verbosity(0)  # notes on (an earlier command in this process may have left -q set)
    a, b = Table("first table", ["x"], name="first"), Table("second table", ["y", "z"], name="second")
    a.add(1)
    b.add("p", "q")
    buf = io.StringIO()
    emit([a, b], "tsv", buf)
    assert buf.getvalue() == "x\n1\n"  # cut and sort get one header and its rows, nothing else
    err = capsys.readouterr().err
    assert "--table" in err and "second" in err
    buf = io.StringIO()
    emit([a, b], OutputFormat("json", "second"), buf)
    assert json.loads(buf.getvalue()) == [{"y": "p", "z": "q"}]
    with pytest.raises(InputError, match="--table third: this command prints first, second"):
        emit([a, b], OutputFormat("tsv", "third"), io.StringIO())
    buf = io.StringIO()
    emit([a, b], OutputFormat("json", "all"), buf)
    assert json.loads(buf.getvalue()) == {"first": [{"x": 1}], "second": [{"y": "p", "z": "q"}]}
    with pytest.raises(InputError, match="only with --format json"):
        emit([a, b], OutputFormat("tsv", "all"), io.StringIO())


def test_tsv_cells_never_break_the_columns() -> None:
    t = Table("t", ["a", "b"])
    t.add("tab\there", "new\nline")
    buf = io.StringIO()
    emit(t, "tsv", buf)
    assert buf.getvalue().splitlines()[1].split("\t") == ["tab here", "new line"]


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_terminal_tables_have_boxes_and_piped_tables_are_plain_columns() -> None:
    t = Table("t", ["head", "score"])
    t.add("L1H2", 0.5)
    piped, tty = io.StringIO(), _Tty()
    emit(t, "table", piped)
    emit(t, "table", tty)
    assert "┃" in tty.getvalue() or "│" in tty.getvalue()
    assert not any(ch in piped.getvalue() for ch in "┃│━─┏┡└") and "L1H2" in piped.getvalue()
    assert piped.getvalue().splitlines()[1].split() == ["head", "score"]


def test_piped_tables_never_wrap_titles_captions_cells_or_paths(monkeypatch) -> None:
    """stdout that is a file or a pipe (a Slurm log) has no width: each row, the title and the caption are one line
    each, and a long path in a cell is never cut, whatever COLUMNS says."""
    import io

    monkeypatch.setenv("COLUMNS", "40")
    path = "/scratch/project/a-rather-long-folder-name/runs/sst2-finetuned-with-the-paper-preset/stores/sst2-ft.pat.h5"
    t = Table("a title that is longer than forty columns, as most titles are", ["store", "value"],
              caption="a caption of more than forty columns that explains every column of the table")
    t.add(path, 0.5)
    t.add("short", 0.25)
    buf = io.StringIO()
    emit(t, "table", buf)
    lines = buf.getvalue().splitlines()
    assert lines[0] == t.title and lines[-1] == t.caption
    assert len(lines) == 5  # title, header, two rows, caption
    assert any(path in ln and "0.500" in ln for ln in lines)
