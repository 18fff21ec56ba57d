"""Every table the commands print stays readable in an 80-column terminal: no header is cut to an ellipsis or
broken inside a word (long names get short headers and a legend), and no line is wider than the terminal."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bertsecrets_cli.cli.app import app
from bertsecrets_cli.render import tables as T

WIDTH = 80
ANSI = re.compile(r"\x1b\[[0-9;]*m")


class _Terminal(io.StringIO):
    """A stream that says it is a terminal: the table format for people, not the plain one for pipes."""

    def isatty(self) -> bool:
        return True


def render(t: T.Table, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("COLUMNS", str(WIDTH))
    monkeypatch.setenv("NO_COLOR", "1")
    buf = _Terminal()
    T.emit(t, "table", buf)
    return ANSI.sub("", buf.getvalue())


def header_cells(text: str) -> list[str]:
    """The header of a rendered table, column by column, its wrapped lines joined with spaces."""
    lines = text.splitlines()
    top = next(i for i, ln in enumerate(lines) if ln.lstrip().startswith("┏"))
    end = next(i for i, ln in enumerate(lines) if ln.lstrip().startswith("┡"))
    cols: list[list[str]] = []
    for ln in lines[top + 1 : end]:
        cells = ln.strip().strip("┃").split("┃")
        cols += [[] for _ in range(len(cells) - len(cols))]
        for k, cell in enumerate(cells):
            if cell.strip():
                cols[k].append(cell.strip())
    return [" ".join(c) for c in cols]


def check_readable(t: T.Table, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    text = render(t, monkeypatch)
    problems = []
    if "…" in text:
        problems.append(f"{t.title!r}: an ellipsis:\n{text}")
    wide = [ln for ln in text.splitlines() if len(ln) > WIDTH]
    if wide:
        problems.append(f"{t.title!r}: {len(wide)} line(s) wider than {WIDTH}")
    want = [" ".join(t.short.get(c, c).split()) for c in t.columns]
    got = header_cells(text)
    if got != want:
        problems.append(f"{t.title!r}: headers read {got}, expected {want} (cut inside a word?)\n{text}")
    return problems


@pytest.fixture(scope="module")
def printed(demo_store: Path, demo_pair_store: Path, tiny_model_factory, tmp_path_factory) -> dict[str, list[T.Table]]:
    """The tables of one small run of every command that prints tables, caught on their way to emit()."""
    from test_framenet_cli import CONLLU, write_release

    tmp = tmp_path_factory.mktemp("tables")
    caught: dict[str, list[T.Table]] = {}
    real = T.emit
    current = {"name": ""}

    def catch(tables, fmt="table", stream=None):  # noqa: ANN001, ANN202 - emit's own signature
        caught.setdefault(current["name"], []).extend([tables] if isinstance(tables, T.Table) else list(tables))
        return real(tables, fmt, stream)

    classifier = tiny_model_factory("bert", classifier=True)
    (tmp / "dev.conllu").write_text(CONLLU)
    from bertsecrets_cli.data.demo_treebank import write_demo_treebank

    write_demo_treebank(tmp / "tb.conllu", 3)
    runs = {
        "extract": ["extract", "-n", "3", "--device", "cpu", "-o", str(tmp / "x.h5")],
        "show": ["show", str(demo_store)],
        "check": ["check", str(demo_store)],
        "plot --list": ["plot", str(demo_store), "--list"],
        "classify": ["classify", "run", str(demo_pair_store), "--features", "-o", str(tmp / "pat.h5")],
        "classify shard": ["classify", "run", str(demo_pair_store), "--shard", "0/2", "-o", str(tmp / "p0.h5")],
        "classify shard 2": ["classify", "run", str(demo_pair_store), "--shard", "1/2", "-o", str(tmp / "p1.h5")],
        "merge": ["merge", "-o", str(tmp / "pm.h5"), str(tmp / "p0.h5"), str(tmp / "p1.h5")],
        "classify train": ["classify", "train", "--synthetic", "40", "--epochs", "1", "--device", "cpu", "-o", str(tmp / "clf.pt")],
        "diff": ["diff", str(demo_store), str(tmp / "x.h5"), "-o", str(tmp / "d.h5")],
        "framenet": ["framenet", "--framenet", str(write_release(tmp / "fndata-1.7")), "-m", str(tiny_model_factory("bert")),
                     "--device", "cpu", "-o", str(tmp / "fn.h5")],
        "framenet --conllu": ["framenet", "--conllu", str(tmp / "dev.conllu"), "-m", str(tiny_model_factory("bert")), "--device", "cpu",
                              "--min-count", "1", "-o", str(tmp / "dep.h5")],
        "ablate": ["ablate", "-m", str(classifier), "-n", "6", "--bootstrap", "10", "--device", "cpu", "-o", str(tmp / "abl.h5")],
        "words": ["words", str(demo_store), "-o", str(tmp / "w.h5")],
        "cluster": ["cluster", str(tmp / "w.h5"), "-o", str(tmp / "cl.h5")],
        "coref": ["coref", str(tmp / "tb.conllu"), "-m", str(tiny_model_factory("bert")), "--device", "cpu", "--bootstrap", "10", "-o", str(tmp / "co.h5")],
        "probe": ["probe", "--train", str(tmp / "tb.conllu"), "--test", str(tmp / "tb.conllu"), "-m", str(tiny_model_factory("bert")),
                  "--device", "cpu", "--max-iter", "3", "-o", str(tmp / "pr.h5")],
    }
    mp = pytest.MonkeyPatch()
    mp.setattr(T, "emit", catch)
    try:
        for name, args in runs.items():
            current["name"] = name
            res = CliRunner().invoke(app, [*args, "-q"])
            assert res.exit_code == 0, f"{name}: {res.output}"
    finally:
        mp.undo()
    return caught


def test_every_table_of_every_command_reads_well_at_80_columns(printed, monkeypatch):
    assert {"extract", "classify", "framenet", "framenet --conllu", "ablate", "diff", "classify train", "words", "cluster", "coref", "probe"} <= set(printed)
    problems = [f"{name}: {p}" for name, tables in printed.items() for t in tables for p in check_readable(t, monkeypatch)]
    assert not problems, "\n\n".join(problems)


def test_a_cut_header_is_caught():
    """The check itself: a header rich would cut to 'FE->…' at 80 columns is reported, and a short header fixes it."""
    mp = pytest.MonkeyPatch()
    cols = ["rank", "head", "FE->target", "target->FE", "same-dist. baseline", "baseline p99", "best offset", "offset k",
            "> p99 of heads", "> baseline p99"]
    t = T.Table("ranking", cols)
    t.add(1, "L10H12", 0.123, 0.456, 0.789, 0.111, 0.222, "+1", "yes", "yes")
    try:
        assert check_readable(t, mp)
        t.short = {"FE->target": "FE>T", "target->FE": "T>FE", "same-dist. baseline": "base", "baseline p99": "b99",
                   "best offset": "off", "offset k": "k", "> p99 of heads": ">p99", "> baseline p99": ">b99"}
        assert check_readable(t, mp) == []
        assert "FE>T: FE->target" in render(t, mp)  # the legend
    finally:
        mp.undo()


def test_short_headers_leave_tsv_and_json_keys_alone():
    t = T.Table("t", ["same-dist. baseline"], short={"same-dist. baseline": "base"})
    t.add(0.5)
    buf = io.StringIO()
    T.emit(t, "tsv", buf)
    assert buf.getvalue().splitlines()[0] == "same-dist. baseline"
    assert t.records() == [{"same-dist. baseline": 0.5}]
