"""Load task examples from shipped demo data, a GLUE folder or file, a CSV/TSV/JSONL file, or the hub.

Every problem with the input becomes an ``InputError`` whose one-line message names the file (and
the line, where there is one) and what is wrong, so the CLI can report it without a traceback.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from bertsecrets_cli.data.tasks import TaskSpec
from bertsecrets_cli.errors import InputError

DEMO_DIR = Path(__file__).resolve().parent / "demo"
_DATA_HINT = "pass a local GLUE folder or a .tsv/.csv/.jsonl file with --data"
_FILE_SUFFIXES = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".json": "jsonl"}
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")

# Demo label 1 of the 'pair' set means "the two sentences say the same thing"; each pair task
# calls that class differently, so it is looked up by name, never by position.
_SAME_MEANING_NAMES = ("equivalent", "duplicate", "entailment")


@dataclass
class Example:
    id: str  # stable id: a GLUE row's index/id column, else f"{split}-{row}"
    text_a: str
    text_b: str | None  # None for single-sentence tasks
    label: float | int | None  # class index, float score (regression), None when unlabeled


@dataclass
class Dataset:
    examples: list[Example]
    source: str  # human description of where the examples came from
    split: str
    is_demo: bool
    notes: list[str] = field(default_factory=list)  # for the user, said by the job that loaded it (e.g. no labels)


@dataclass(frozen=True)
class _GlueLayout:
    """Column names of a task's files in the standard GLUE download."""

    text: tuple[str, ...]
    label: str
    id: str | None
    headerless: tuple[str, ...] | None = None  # column names of header-less train/dev files


_GLUE_LAYOUTS: dict[str, _GlueLayout] = {
    "cola": _GlueLayout(("sentence",), "label", "index", ("source", "label", "original_label", "sentence")),
    "sst2": _GlueLayout(("sentence",), "label", "index"),
    "mrpc": _GlueLayout(("#1 String", "#2 String"), "Quality", "index"),
    "qqp": _GlueLayout(("question1", "question2"), "is_duplicate", "id"),
    "stsb": _GlueLayout(("sentence1", "sentence2"), "score", "index"),
    "mnli": _GlueLayout(("sentence1", "sentence2"), "gold_label", "index"),
    "qnli": _GlueLayout(("question", "sentence"), "label", "index"),
    "rte": _GlueLayout(("sentence1", "sentence2"), "label", "index"),
    "wnli": _GlueLayout(("sentence1", "sentence2"), "label", "index"),
}

_SPLIT_ALIASES = {"dev": "dev", "validation": "dev", "val": "dev", "train": "train", "test": "test",
                  "dev_matched": "dev_matched", "dev_mismatched": "dev_mismatched",
                  "validation_matched": "dev_matched", "validation_mismatched": "dev_mismatched",
                  "test_matched": "test_matched", "test_mismatched": "test_mismatched"}


# --------------------------------------------------------------------------- public API


def load_dataset(
    task: TaskSpec,
    data: str | None = None,
    split: str = "dev",
    *,
    text_columns: tuple[str, ...] | None = None,
    label_column: str | None = None,
    id_column: str | None = None,
    file_format: str | None = None,
) -> Dataset:
    """Load one split of ``task`` from ``data`` (None: the shipped demo set of the same kind)."""
    split = _normalise_split(task, split)
    if text_columns is not None and len(text_columns) != len(task.text_columns):
        raise InputError(
            f"task {task.name} needs {len(task.text_columns)} text column(s), got {len(text_columns)}: "
            f"{', '.join(text_columns)}"
        )
    if file_format is not None and file_format.lower().lstrip(".") not in {"csv", "tsv", "jsonl", "json"}:
        raise InputError(f"unknown data format {file_format!r}", hint="use csv, tsv or jsonl")
    columns = _Columns(text_columns, label_column, id_column)
    if data is None:
        return _load_demo(task, split)
    if data.startswith("hub:"):
        return _load_hub(task, data[4:], split)
    path = Path(data).expanduser()
    if path.is_dir():
        return _load_glue_folder(task, path, split, columns)
    if path.is_file():
        return _load_file(task, path, split, columns, file_format)
    if path.exists():
        raise InputError(f"{data}: not a regular file or folder")
    if _HUB_ID.match(data) and path.suffix.lower() not in _FILE_SUFFIXES:
        return _load_hub(task, data, split, also_missing_path=True)
    raise InputError(f"{data}: no such file or folder", hint=_DATA_HINT)


def select_examples(
    examples: list[Example], limit: int | None, seed: int | None = 0, sample: bool = False
) -> list[Example]:
    """The first ``limit`` examples, or a seeded random sample of them kept in file order."""
    if limit is None:
        return list(examples)
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise InputError(f"--limit must be at least 1 (got {limit!r})")
    if limit >= len(examples):
        return list(examples)
    if not sample:
        return list(examples[:limit])
    import numpy as np

    chosen = np.random.default_rng(seed).choice(len(examples), size=limit, replace=False)
    return [examples[i] for i in sorted(int(i) for i in chosen)]


# --------------------------------------------------------------------------- splits and labels


def _normalise_split(task: TaskSpec, split: str) -> str:
    """Canonical local split name: 'train', 'dev', 'test', or MNLI's matched/mismatched ones."""
    key = _SPLIT_ALIASES.get(split.strip().lower())
    if key is None:
        raise InputError(f"unknown split {split!r}", hint="use train, dev or test")
    if task.name == "mnli":
        return {"dev": "dev_matched", "test": "test_matched"}.get(key, key)
    if key not in ("train", "dev", "test"):
        raise InputError(f"split {split!r} exists only for mnli", hint="use train, dev or test")
    return key


def _hub_split(task: TaskSpec, split: str) -> str:
    if split == "dev":
        return task.dev_split
    return {"dev_matched": "validation_matched", "dev_mismatched": "validation_mismatched"}.get(split, split)


def _parse_label(task: TaskSpec, value: Any, where: str) -> int | float | None:
    """A raw label as a class index or a float score; names are mapped via ``task.label_names``.

    ``None`` and empty strings mean "unlabeled" (GLUE test files, hub test splits use -1 elsewhere).
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if task.is_regression:
        try:
            score = float(value)
        except (TypeError, ValueError):
            msg = f"{where}: label {_show(value)} is not a number (task {task.name} is regression)"
            raise InputError(msg) from None
        if not math.isfinite(score):
            raise InputError(f"{where}: label {_show(value)} is not a finite number")
        return score
    names = task.label_names
    if isinstance(value, str):
        text = value.strip()
        lowered = [n.lower() for n in names]
        if text.lower() in lowered:
            return lowered.index(text.lower())
        if re.fullmatch(r"[+-]?\d+(\.0*)?", text):
            value = int(float(text))
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < len(names):
        return value
    allowed = ", ".join(f"{i}={n}" for i, n in enumerate(names))
    raise InputError(f"{where}: label {_show(value)} is not a {task.name} label ({allowed})")


def _show(value: Any, width: int = 60) -> str:
    """A value for an error message: repr'd (so it stays on one line) and shortened."""
    text = repr(value)
    return text if len(text) <= width else text[: width - 3] + "..."


# --------------------------------------------------------------------------- demo data


def _load_demo(task: TaskSpec, split: str) -> Dataset:
    if task.demo is None:
        raise InputError(f"no demo data for task {task.name}", hint=_DATA_HINT)
    if split not in ("train", "dev"):
        raise InputError(f"demo data has only train and dev splits, not {split!r}", hint=_DATA_HINT)
    path = DEMO_DIR / f"{task.demo}_{split}.jsonl"
    same = next((i for i, n in enumerate(task.label_names) if n in _SAME_MEANING_NAMES), None)
    examples = []
    for line_no, record in _iter_jsonl(path):
        label = record["label"]
        if task.demo == "pair" and same is not None:  # demo 1 = same meaning; 0 = different
            label = same if label == 1 else 1 - same
        examples.append(Example(str(record["id"]), record["text_a"],
                                record["text_b"] if task.is_pair else None, label))
    if not examples:
        raise InputError(f"{path}: demo data file has no examples")
    return Dataset(examples, f"demo data {task.demo!r} (bertsecrets demo, not GLUE)", split, True)


# --------------------------------------------------------------------------- GLUE folder and files


@dataclass(frozen=True)
class _Columns:
    text: tuple[str, ...] | None
    label: str | None
    id: str | None

    @property
    def given(self) -> bool:
        return any(v is not None for v in (self.text, self.label, self.id))


def _load_glue_folder(task: TaskSpec, folder: Path, split: str, columns: _Columns) -> Dataset:
    """Read ``<folder>/<split>.tsv``; a ``glue_data`` root holding the task's folder works too."""
    if not (folder / f"{split}.tsv").is_file() and (folder / task.glue_dir).is_dir():
        folder = folder / task.glue_dir
    path = folder / f"{split}.tsv"
    if not path.is_file():
        found = sorted(p.name for p in folder.iterdir() if p.suffix == ".tsv")
        listing = ", ".join(found) if found else "no .tsv files"
        raise InputError(f"{folder}: no {split}.tsv for task {task.name} in this GLUE folder (found: {listing})")
    dataset = _load_table(task, path, split, "tsv", columns)
    dataset.source = f"GLUE folder {folder} {path.name}"
    return dataset


def _load_file(task: TaskSpec, path: Path, split: str, columns: _Columns, file_format: str | None) -> Dataset:
    fmt = (file_format or "").lower().lstrip(".") or _FILE_SUFFIXES.get(path.suffix.lower())
    if fmt is None:
        raise InputError(f"{path}: unknown data file type {path.suffix or '(none)'!r}",
                         hint="use .csv, .tsv or .jsonl, or give the format with --format")
    if fmt == "json":
        fmt = "jsonl"
    stem_split = _SPLIT_ALIASES.get(path.stem.lower())
    if fmt == "tsv" and stem_split is not None:  # a GLUE file such as dev_matched.tsv names its split
        split = _normalise_split(task, stem_split)
    if fmt == "jsonl":
        return _load_jsonl(task, path, split, columns)
    return _load_table(task, path, split, fmt, columns)


def _read_text(path: Path) -> str:
    """The file as text; UTF-8 (a BOM, as in GLUE's MRPC files, is dropped); a regular file, no NUL byte
    (bertsecrets_cli.inputs: a bad byte is reported as file:line:column)."""
    from bertsecrets_cli.inputs import read_text

    return read_text(path, what="data file")


def _split_lines(text: str) -> list[tuple[int, str]]:
    """(1-based line number, line) for the non-blank lines; splits on newlines only.

    ``str.splitlines`` would also split on form feeds and Unicode separators found inside GLUE text.
    """
    out = []
    for number, line in enumerate(text.split("\n"), start=1):
        line = line.removesuffix("\r")
        if line.strip():
            out.append((number, line))
    return out


def _table_rows(path: Path, fmt: str) -> list[tuple[int, list[str]]]:
    """(line number, fields) of a TSV (no quote processing: GLUE has stray quotes) or a CSV."""
    text = _read_text(path)
    if not text.strip():
        raise InputError(f"{path}: file is empty")
    if fmt == "tsv":
        return [(n, line.split("\t")) for n, line in _split_lines(text)]
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    rows = []
    try:
        for fields in reader:
            if any(f.strip() for f in fields):
                rows.append((reader.line_num, fields))
    except csv.Error as exc:
        raise InputError(f"{path}:{reader.line_num}: bad CSV ({exc})") from None
    return rows


def _unlabelled_note(path: Path, what: str, looked_for: list[str]) -> str:
    """A file without labels is fine for attention, but the user should know labels are absent, not zero."""
    names = " or ".join(repr(n) for n in dict.fromkeys(looked_for))
    return f"note: {path}: no label {what} ({names}; --label-column names another): the examples are stored unlabelled"


def _load_table(task: TaskSpec, path: Path, split: str, fmt: str, columns: _Columns) -> Dataset:
    rows = _table_rows(path, fmt)
    layout = _GLUE_LAYOUTS.get(task.name)
    first_line, header = rows[0]
    body = rows[1:]
    glue_like = False
    if (fmt == "tsv" and layout is not None and layout.headerless is not None and not columns.given
            and len(header) == len(layout.headerless) and header[1].strip() in ("0", "1")):
        header, body, glue_like = list(layout.headerless), rows, True  # CoLA train/dev: no header row
    header = [h.strip() for h in header]
    if not columns.given and layout is not None and all(c in header for c in layout.text):
        glue_like = True
    text_cols = _pick_text_columns(task, path, header, columns.text, layout if glue_like else None)
    label_col = _pick_optional(path, header, columns.label,
                               ([layout.label] if glue_like and layout else []) + ["label"])
    id_col = _pick_optional(path, header, columns.id,
                            ([layout.id] if glue_like and layout and layout.id else []) + ["id", "idx", "index"])
    index = {name: i for i, name in enumerate(header)}
    examples = []
    for row, (line_no, fields) in enumerate(body):
        where = f"{path}:{line_no}"
        if len(fields) != len(header):
            raise InputError(f"{where}: expected {len(header)} {'tab' if fmt == 'tsv' else 'comma'}-separated "
                             f"fields, found {len(fields)}")
        texts = [fields[index[c]] for c in text_cols]
        label = _parse_label(task, fields[index[label_col]], where) if label_col else None
        ex_id = fields[index[id_col]].strip() if id_col else f"{split}-{row}"
        examples.append(Example(ex_id, texts[0], texts[1] if task.is_pair else None, label))
    if not examples:
        raise InputError(f"{path}: no examples (only a header line)")
    notes = [_unlabelled_note(path, "column", ([layout.label] if glue_like and layout else []) + ["label"])] if label_col is None else []
    kind = "GLUE file" if glue_like else "file"
    return Dataset(examples, f"{kind} {path}", split, False, notes)


def _pick_text_columns(task: TaskSpec, path: Path, header: list[str], given: tuple[str, ...] | None,
                       layout: _GlueLayout | None) -> tuple[str, ...]:
    """Text columns: the ones asked for, else the GLUE/hub names of the task, else common names."""
    if given is not None:
        missing = [c for c in given if c not in header]
        if missing:
            raise InputError(f"{path}: no column {missing[0]!r} (columns: {', '.join(header)})")
        return tuple(given)
    candidates = [task.text_columns]
    if layout is not None:
        candidates.insert(0, layout.text)
    if task.is_pair:
        candidates += [("sentence1", "sentence2"), ("text_a", "text_b")]
    else:
        candidates += [("sentence",), ("text",), ("text_a",)]
    for cand in candidates:
        if all(c in header for c in cand):
            return cand
    want = " + ".join(task.text_columns)
    raise InputError(f"{path}: no text column(s) {want} for task {task.name} (columns: {', '.join(header)})",
                     hint="name them with --text-columns")


def _pick_optional(path: Path, header: list[str], given: str | None, defaults: list[str]) -> str | None:
    if given is not None:
        if given not in header:
            raise InputError(f"{path}: no column {given!r} (columns: {', '.join(header)})")
        return given
    return next((c for c in defaults if c in header), None)


def _iter_jsonl(path: Path) -> Iterable[tuple[int, dict[str, Any]]]:
    text = _read_text(path)
    if not text.strip():
        raise InputError(f"{path}: file is empty")
    for line_no, line in _split_lines(text):
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"{path}:{line_no}: not valid JSON ({exc.msg} at column {exc.colno})") from None
        if not isinstance(record, dict):
            raise InputError(f"{path}:{line_no}: expected a JSON object, found {type(record).__name__}")
        yield line_no, record


def _load_jsonl(task: TaskSpec, path: Path, split: str, columns: _Columns) -> Dataset:
    examples = []
    text_cols: tuple[str, ...] | None = None
    for row, (line_no, record) in enumerate(_iter_jsonl(path)):
        where = f"{path}:{line_no}"
        if text_cols is None:  # columns are chosen from the first record, then required in every one
            text_cols = _pick_text_columns(task, path, list(record), columns.text, None)
        missing = [c for c in text_cols if c not in record]
        if missing:
            raise InputError(f"{where}: no field {missing[0]!r}")
        texts = []
        for c in text_cols:
            if not isinstance(record[c], str):
                raise InputError(f"{where}: field {c!r} is {_show(record[c])}, not a string")
            texts.append(record[c])
        for asked in (columns.label, columns.id):
            if asked is not None and asked not in record:
                raise InputError(f"{where}: no field {asked!r}")
        label = _parse_label(task, record.get(columns.label or "label"), where)
        id_col = columns.id or next((c for c in ("id", "idx") if c in record), None)
        ex_id = str(record[id_col]) if id_col else f"{split}-{row}"
        examples.append(Example(ex_id, texts[0], texts[1] if task.is_pair else None, label))
    if not examples:
        raise InputError(f"{path}: no examples")
    unlabelled = columns.label is None and all(e.label is None for e in examples)
    return Dataset(examples, f"file {path}", split, False, [_unlabelled_note(path, "field", ["label"])] if unlabelled else [])


# --------------------------------------------------------------------------- hub


def _load_hub(task: TaskSpec, name: str, split: str, *, also_missing_path: bool = False) -> Dataset:
    """Fetch from the Hugging Face hub (or its local cache); any failure is one clean line."""
    name = name.strip()
    config = task.hub_config if name.split("/")[-1].lower() == "glue" else None
    hub_split = _hub_split(task, split)
    what = f"{name}" + (f" ({config})" if config else "") + f" split {hub_split}"
    prefix = f"{name}: no such file or folder, and " if also_missing_path else ""
    try:
        import datasets

        rows = datasets.load_dataset(name, config, split=hub_split)
        records = list(rows)
    except Exception as exc:  # offline, unknown name, missing split: all reported the same way
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"{prefix}could not fetch hub data set {what}: {_show(reason, 160)[1:-1]}",
                         hint=_DATA_HINT) from None
    examples = []
    cols: tuple[str, ...] | None = None
    for row, record in enumerate(records):
        if cols is None:
            cols = _pick_text_columns(task, Path(f"hub {name}"), list(record), None, None)
        raw = record.get("label")
        label = None if raw is None or raw == -1 else _parse_label(task, raw, f"hub {what} row {row}")
        ex_id = str(record["idx"]) if "idx" in record else f"{split}-{row}"
        texts = [record[c] for c in cols]
        examples.append(Example(ex_id, texts[0], texts[1] if task.is_pair else None, label))
    if not examples:
        raise InputError(f"hub data set {what} has no examples")
    return Dataset(examples, f"hub {name}{' ' + config if config else ''} {hub_split}", split, False)
