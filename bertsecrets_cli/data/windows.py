"""Long texts as examples: a plain-text or JSONL corpus cut into windows of tokens (extract --stride).

Each document is tokenised once without special tokens; window k covers tokens [k * stride, k * stride + size)
(the last window ends at the document's end), with size = max_length minus the special tokens the tokenizer
adds. A window becomes an example whose text is the document's characters from its first token's start to
its last token's end, and whose provenance (document id, character span) the store keeps. extract tokenises
that text again: a window may then differ from the cut by a piece at its edges (a word that lost its leading
space), never by more than the truncation to --max-length allows.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bertsecrets_cli.data.sources import Dataset, Example
from bertsecrets_cli.errors import InputError


@dataclass
class Window:
    document: str  # the document's id
    start: int  # character span of the window in its document
    end: int


def read_corpus(path: str | Path) -> list[tuple[str, str]]:
    """(document id, text) of every document: a .jsonl file holds one per line ('text', optional 'id'), any other
    file is one plain-text document (its file name is its id)."""
    p = Path(path)
    try:
        raw = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"--data {path}: cannot read it as UTF-8 text ({e.__class__.__name__})") from e
    if p.suffix.lower() != ".jsonl":
        return [(p.name, raw)] if raw.strip() else []
    docs = []
    for n, line in enumerate(raw.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise InputError(f"--data {path}: line {n} is not JSON ({e.msg})") from e
        if not isinstance(row, dict) or not isinstance(row.get("text"), str):
            raise InputError(f"--data {path}: line {n} has no string field 'text'")
        docs.append((str(row.get("id", f"doc-{n}")), row["text"]))
    return docs


def window_dataset(path: str | Path, tokenizer: Any, max_length: int, stride: int) -> tuple[Dataset, list[Window]]:
    """The corpus at ``path`` as windows of at most ``max_length`` tokens starting every ``stride`` tokens."""
    size = max_length - tokenizer.num_special_tokens_to_add(pair=False)
    if size < 1:
        raise InputError(f"--max-length {max_length}: leaves no room for a token besides the tokenizer's special tokens")
    if not 1 <= stride <= size:
        raise InputError(f"--stride {stride}: must be between 1 and the window's {size} tokens (--max-length {max_length} minus special tokens)")
    docs = read_corpus(path)
    examples, windows = [], []
    for doc_id, text in docs:
        offsets = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
        n = len(offsets)
        starts = list(range(0, max(n - size, 0) + 1, stride))
        if starts and starts[-1] + size < n:  # the tail, so that every token is in some window
            starts.append(n - size)
        for k, s in enumerate(starts):
            e = min(s + size, n)
            a, b = int(offsets[s][0]), int(offsets[e - 1][1])
            examples.append(Example(f"{doc_id}#w{k}", text[a:b], None, None))
            windows.append(Window(doc_id, a, b))
    if not examples:
        raise InputError(f"--data {path}: no text to cut into windows")
    ds = Dataset(examples, f"corpus {Path(path).name} ({len(docs)} document(s), windows of {size} tokens every {stride})", "corpus", False)
    return ds, windows
