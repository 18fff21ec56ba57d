"""CoNLL-U reader (Universal Dependencies): the words of each sentence with their governor and relation.

Only syntactic words are kept. Multiword-token lines (ID ``1-2``, e.g. Spanish "del" = "de" + "el") and
empty nodes of enhanced graphs (ID ``1.1``) are skipped: the words inside a multiword range are still read
from their own lines, and skipping either kind leaves word numbering and HEAD references intact.
Every malformed line is an InputError naming ``file:line``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from bertsecrets_cli.errors import InputError

_RANGE = re.compile(r"^\d+-\d+$")
_EMPTY = re.compile(r"^\d+\.\d+$")


@dataclass
class Word:
    form: str
    head: int | None  # 1-based governor word, 0 for the root, None where HEAD is "_"
    deprel: str
    upos: str = "_"
    misc: str = "_"  # the MISC column (CorefUD keeps coreference there: Entity=...)
    line: int = 0  # its line in the file, for messages


@dataclass
class ConlluSentence:
    id: str  # "# sent_id" when present, else "<file>:<first line>"
    words: list[Word]
    line: int  # line number of the sentence's first line, for messages
    text: str | None = None  # "# text" when present
    empty: list[tuple[int, str, int]] = field(default_factory=list)  # empty nodes: (words before it, MISC, line)
    newdoc: bool = False  # a "# newdoc" comment opened a new document here
    comments: list[tuple[str, str]] = field(default_factory=list)  # every "# key = value" comment, in order


def read_conllu(path: str | Path) -> Iterator[ConlluSentence]:
    """Yield the sentences of a CoNLL-U file in order; raises InputError on the first malformed line."""
    p = Path(path).expanduser()
    if not p.exists():
        raise InputError(f"{path}: no such file")
    if p.is_dir():
        raise InputError(f"{path}: is a folder; pass a .conllu file")
    try:
        fh = open(p, encoding="utf-8")  # noqa: SIM115 - closed in finally
    except OSError as e:
        raise InputError(f"{path}: cannot read: {e.strerror}") from e
    words: list[Word] = []
    word_lines: list[int] = []
    meta: dict[str, str] = {}
    comments: list[tuple[str, str]] = []
    empty: list[tuple[int, str, int]] = []
    newdoc = False
    first = 0
    lineno = 0

    def finish() -> ConlluSentence:
        for w, ln in zip(words, word_lines):
            if w.head is not None and w.head > len(words):
                raise InputError(f"{path}:{ln}: HEAD {w.head} points past the sentence's {len(words)} words")
        return ConlluSentence(meta.get("sent_id", f"{p.name}:{first}"), list(words), first, meta.get("text"), list(empty), newdoc, list(comments))

    try:
        for lineno, raw in enumerate(fh, 1):
            line = raw.rstrip("\r\n")
            if not line.strip():
                if words:
                    yield finish()
                words.clear()
                word_lines.clear()
                meta = {}
                comments.clear()
                empty.clear()
                newdoc = False
                first = 0
                continue
            if not first:
                first = lineno
            if line.startswith("#"):
                key, sep, value = line[1:].partition("=")
                if sep:
                    meta[key.strip()] = value.strip()
                comments.append((key.strip(), value.strip()))
                newdoc = newdoc or key.strip().split(" ")[0] == "newdoc"
                continue
            cols = line.split("\t")
            if len(cols) != 10:
                hint = " (fields must be separated by tabs)" if len(cols) == 1 and " " in line else ""
                raise InputError(f"{path}:{lineno}: expected 10 tab-separated fields, found {len(cols)}{hint}")
            wid = cols[0]
            if _EMPTY.match(wid):
                empty.append((len(words), cols[9], lineno))  # not a word of the basic tree; its MISC may hold coreference
                continue
            if _RANGE.match(wid):
                continue  # multiword token: its words follow on their own lines
            if not wid.isdigit():
                raise InputError(f"{path}:{lineno}: ID {wid!r} is not a word number, a range (1-2) or an empty node (1.1)")
            if int(wid) != len(words) + 1:
                raise InputError(f"{path}:{lineno}: word ID {wid} out of order (expected {len(words) + 1})")
            head_s = cols[6]
            if head_s == "_":
                head: int | None = None
            elif head_s.isdigit():
                head = int(head_s)
            else:
                raise InputError(f"{path}:{lineno}: HEAD {head_s!r} is not a word number")
            if head is not None and head == int(wid):
                raise InputError(f"{path}:{lineno}: word {wid} is its own HEAD")
            words.append(Word(cols[1], head, cols[7], cols[3], cols[9], lineno))
            word_lines.append(lineno)
        if words:
            yield finish()
    except UnicodeDecodeError as e:
        raise InputError(f"{path}:{lineno + 1}: not UTF-8 text ({e.reason})") from e
    finally:
        fh.close()
