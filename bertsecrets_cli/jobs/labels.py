"""The annotation TSV that ``classify annotate`` appends to and ``classify train`` reads: shareable, resumable.

Columns: store, example, layer, head, label, example_id; layer and head 1-based; the store path relative to the TSV.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from bertsecrets_cli.analysis import patterns as P
from bertsecrets_cli.errors import InputError
TSV_COLUMNS = ("store", "example", "layer", "head", "label", "example_id")
TSV_HEADER_NOTE = "# bertsecrets pattern annotations: layer and head are 1-based; label is a class name or 'skip'"
SKIP = "skip"


@dataclass
class LabelRow:
    store: Path  # resolved
    example: int
    layer: int  # 0-based inside
    head: int
    label: str  # a class name or 'skip'
    example_id: str
    where: str  # file:line, for error messages


def read_labels(path: str | Path) -> list[LabelRow]:
    """Rows of an annotation TSV; store paths are relative to the TSV's folder. Bad lines are one InputError."""
    from bertsecrets_cli.inputs import check_input_file, text_lines

    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: no such labels file")
    check_input_file(p, what="labels file")
    rows: list[LabelRow] = []
    for n, line in text_lines(p, what="labels file"):
        if not line.strip() or line.startswith("#"):
            continue
        cells = line.rstrip("\n").split("\t")
        if cells[:2] == ["store", "example"]:
            continue
        where = f"{p}:{n}"
        if len(cells) < 5:
            raise InputError(f"{where}: expected tab-separated store, example, layer, head, label; got {len(cells)} field(s)")
        try:
            ex, layer, head = int(cells[1]), int(cells[2]), int(cells[3])
        except ValueError:
            raise InputError(f"{where}: example, layer and head must be whole numbers (layer and head 1-based)") from None
        if ex < 0 or layer < 1 or head < 1:
            raise InputError(f"{where}: example counts from 0, layer and head from 1")
        label = cells[4].strip().lower()
        if label != SKIP:
            c = P.parse_class(label)
            if c < 0:
                raise InputError(f"{where}: unknown label {cells[4]!r}; use one of {', '.join(P.CLASSES)} or skip")
            label = P.CLASSES[c]
        store = Path(cells[0])
        if not store.is_absolute():
            store = p.parent / store
        rows.append(LabelRow(store.resolve(), ex, layer - 1, head - 1, label, cells[5] if len(cells) > 5 else "", where))
    return rows


def store_ref(store: Path, tsv: Path) -> str:
    """The store as the TSV records it: relative to the TSV's folder when possible, so both can be shared together."""
    try:
        return os.path.relpath(store.resolve(), tsv.resolve().parent)
    except ValueError:  # another drive on Windows
        return str(store.resolve())


def stores_named(paths: list[str]) -> list[str]:
    """The stores that the annotation TSVs ``paths`` refer to: inputs of ``classify train`` too (cli.clobber)."""
    return sorted({str(r.store) for p in paths if Path(p).is_file() for r in read_labels(p)})
