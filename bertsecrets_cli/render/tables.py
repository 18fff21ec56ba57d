"""Result tables as rich tables, TSV or JSON: the ``--format`` switch of every command."""

from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass, field
from typing import Any, TextIO

FORMATS = ("table", "tsv", "json")


@dataclass
class Table:
    title: str
    columns: list[str]
    rows: list[list[Any]] = field(default_factory=list)
    caption: str | None = None
    digits: int = 3
    # terminal headers for long column names, so a table fits 80 columns without cutting a header; the terminal
    # table lists them in a legend under the caption; tsv and json keep the full names as their keys
    short: dict[str, str] = field(default_factory=dict)

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


def emit(tables: list[Table] | Table, fmt: str = "table", stream: TextIO | None = None) -> None:
    """Write tables to ``stream`` (stdout by default) in the chosen format.

    json: one object {title: [records]} for all tables; tsv: each table with a '# title' line.
    """
    if isinstance(tables, Table):
        tables = [tables]
    out = stream or sys.stdout
    if fmt == "json":
        obj = {t.title: t.records() for t in tables}
        out.write(json.dumps(obj if len(tables) > 1 else tables[0].records(), indent=1) + "\n")
    elif fmt == "tsv":
        for i, t in enumerate(tables):
            if len(tables) > 1:
                out.write(("\n" if i else "") + f"# {t.title}\n")
            out.write("\t".join(t.columns) + "\n")
            for r in t.rows:
                out.write("\t".join(_cell(v, 6) for v in r) + "\n")
    elif fmt == "table":
        from rich.console import Console
        from rich.markup import escape
        from rich.table import Table as RichTable

        console = Console(file=out, highlight=False, soft_wrap=False)
        for t in tables:
            caption = terminal_caption(t)
            rt = RichTable(title=escape(t.title), caption=escape(caption) if caption else None, title_justify="left", caption_justify="left")
            for k, c in enumerate(t.columns):
                numeric = any(isinstance(_jsonable(r[k]), (int, float)) and not isinstance(r[k], bool) for r in t.rows if k < len(r))
                # fold, never an ellipsis: a narrow terminal wraps a header or cell instead of cutting it
                rt.add_column(escape(t.short.get(c, c)), justify="right" if numeric else "left", overflow="fold")
            for r in t.rows:
                rt.add_row(*(escape(_cell(v, t.digits)) for v in r))  # data, never markup: "[their homes]" must show
            console.print(rt)
    else:
        raise ValueError(fmt)
    out.flush()


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
