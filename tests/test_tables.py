"""Tables: cells are data, never markup; tsv/json are machine-readable."""

from __future__ import annotations

import io
import json

from bertsecrets_cli.render.tables import Table, emit


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
    emit([t, t], "tsv", buf)
    assert buf.getvalue().splitlines()[:2] == ["# t", "head\tv"]
