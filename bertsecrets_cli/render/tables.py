"""Result tables as rich tables, TSV or JSON: the ``--format`` switch of every command."""

from __future__ import annotations

import json
import math
import re
import sys
from dataclasses import dataclass, field
from typing import Any, TextIO

FORMATS = ("table", "tsv", "json")


@dataclass(frozen=True)
class OutputFormat:
    """What ``--format`` and ``--table`` asked for. tsv and json print ONE table per call (so cut, sort and jq
    read it directly): the one named by ``table``, else the command's first table, with a note naming the others."""

    fmt: str = "table"
    table: str | None = None


@dataclass
class Table:
    title: str
    columns: list[str]
    rows: list[list[Any]] = field(default_factory=list)
    caption: str | None = None
    digits: int = 3
    name: str = ""  # what --table picks it by (see key)
    # terminal headers for long column names, so a table fits 80 columns without cutting a header; the terminal
    # table lists them in a legend under the caption; tsv and json keep the full names as their keys
    short: dict[str, str] = field(default_factory=dict)

    @property
    def key(self) -> str:
        """The short name ``--table`` selects it by."""
        return self.name or "-".join(re.findall(r"[a-z0-9]+", self.title.lower())[:3])

    def add(self, *row: Any) -> None:
        self.rows.append(list(row))

    def records(self) -> list[dict[str, Any]]:
        return [{c: _jsonable(v) for c, v in zip(self.columns, r)} for r in self.rows]


def _jsonable(v: Any) -> Any:
    if hasattr(v, "item"):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def _cell(v: Any, digits: int) -> str:
    if hasattr(v, "item"):
        v = v.item()
    if v is None:
        return ""
    if isinstance(v, float):
        return "nan" if math.isnan(v) else f"{v:.{digits}f}"
    return str(v)


def select(tables: list[Table], table: str | None) -> list[Table]:
    """The tables ``--table NAME`` keeps; an unknown name is refused with the names there are."""
    if table is None or table == "all":
        return tables
    chosen = [t for t in tables if t.key == table]
    if not chosen:
        from bertsecrets_cli.errors import InputError

        raise InputError(f"--table {table}: this command prints {', '.join(t.key for t in tables) or 'no tables'}")
    return chosen


def emit(tables: list[Table] | Table, fmt: str | OutputFormat = "table", stream: TextIO | None = None) -> None:
    """Write tables to ``stream`` (stdout by default) in the chosen format.

    table: rich tables (boxes on a terminal, plain aligned columns otherwise); tsv: a header line and rows;
    json: an array of records. tsv and json write one table; the names of the others go to stderr.
    ``--table all`` with json: one object {table name: records} of every table.
    """
    spec = fmt if isinstance(fmt, OutputFormat) else OutputFormat(fmt)
    tables = select([tables] if isinstance(tables, Table) else list(tables), spec.table)
    out = stream or sys.stdout
    if spec.fmt == "json" and spec.table == "all":  # every table in one document: {name: records}
        out.write(json.dumps({t.key: t.records() for t in tables}, indent=1) + "\n")
    elif spec.fmt == "tsv" and spec.table == "all":
        from bertsecrets_cli.errors import InputError

        raise InputError("--table all: only with --format json (tsv holds one table per call)")
    elif spec.fmt in ("json", "tsv") and tables:
        t = tables[0]
        if len(tables) > 1:
            from bertsecrets_cli.render.console import info

            info(f"{spec.fmt}: printed table {t.key!r}; choose another with --table: {', '.join(x.key for x in tables[1:])}")
        if spec.fmt == "json":
            out.write(json.dumps(t.records(), indent=1) + "\n")
        else:
            out.write("\t".join(_tsv(c) for c in t.columns) + "\n")
            for r in t.rows:
                out.write("\t".join(_tsv(_cell(v, 6)) for v in r) + "\n")
    elif spec.fmt == "table":
        from rich import box
        from rich.console import Console
        from rich.markup import escape
        from rich.table import Table as RichTable

        plain = not _is_terminal(out)  # a pipe or a file gets aligned columns without box drawing
        # a pipe or a file (a Slurm log) has no width: nothing is wrapped or folded there, so a cell or a path stays
        # on its line whole; only a terminal's width is honoured
        console = Console(file=out, highlight=False, soft_wrap=False, **({"width": PLAIN_WIDTH} if plain else {}))
        for t in tables:
            caption = terminal_caption(t)
            if plain:  # title and caption as lines of their own: rich would wrap them at the table's width
                out.write(f"{t.title}\n")
                out.flush()
            rt = RichTable(title=None if plain else escape(t.title), caption=escape(caption) if caption and not plain else None,
                           title_justify="left", caption_justify="left",
                           box=None if plain else box.HEAVY_HEAD, show_edge=not plain, pad_edge=not plain)
            for k, c in enumerate(t.columns):
                numeric = any(isinstance(_jsonable(r[k]), (int, float)) and not isinstance(r[k], bool) for r in t.rows if k < len(r))
                # fold, never an ellipsis: a narrow terminal wraps a header or cell instead of cutting it
                rt.add_column(escape(t.short.get(c, c)), justify="right" if numeric else "left", overflow="fold")
            for r in t.rows:
                rt.add_row(*(escape(_cell(v, t.digits)) for v in r))  # data, never markup: "[their homes]" must show
            console.print(rt)
            if plain and caption:
                out.write(f"{caption}\n")
    elif spec.fmt not in FORMATS:
        raise ValueError(spec.fmt)
    out.flush()


PLAIN_WIDTH = 1 << 16  # columns of the "terminal" a pipe or a file gets: in effect, no wrapping


def _tsv(text: str) -> str:
    """A TSV cell: tabs and newlines inside a value would break the columns."""
    return str(text).replace("\t", " ").replace("\n", " ")


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def terminal_caption(t: Table) -> str | None:
    """The caption, followed by the legend of the short headers the terminal table shows."""
    legend = "; ".join(f"{t.short[c]}: {c}" for c in t.columns if c in t.short and t.short[c] != c)
    return "; ".join(x for x in (legend, t.caption) if x) or None


def to_markdown(t: Table) -> str:
    """A GitHub-flavoured Markdown table (for report files)."""
    def cell(v: Any) -> str:
        return _cell(v, t.digits).replace("|", "\\|")

    lines = ["| " + " | ".join(t.columns) + " |", "|" + "---|" * len(t.columns)]
    lines += ["| " + " | ".join(cell(v) for v in r) + " |" for r in t.rows]
    if t.caption:
        lines += ["", f"_{t.caption}_"]
    return "\n".join(lines)
