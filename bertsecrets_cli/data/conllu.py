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
from bertsecrets_cli.inputs import check_input_file, text_lines

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
    p = check_input_file(path, what=".conllu file")
    lines = text_lines(p, shown=str(path), what=".conllu file")
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
        _check_tree(words, word_lines, path)
        return ConlluSentence(meta.get("sent_id", f"{p.name}:{first}"), list(words), first, meta.get("text"), list(empty), newdoc, list(comments))

    try:
        for lineno, line in lines:
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
    finally:
        lines.close()


def _check_tree(words: list[Word], lines: list[int], path: str | Path) -> None:
    """HEAD must form a tree: following governors from any word reaches the root (0) without a cycle."""
    state = [0] * (len(words) + 1)  # 0 unseen, 1 on the current walk, 2 reaches the root
    state[0] = 2
    for start in range(1, len(words) + 1):
        walk = []
        k: int | None = start
        while k is not None and state[k] == 0:
            state[k] = 1
            walk.append(k)
            k = words[k - 1].head
        if k is not None and state[k] == 1:
            cycle = walk[walk.index(k):]
            raise InputError(f"{path}:{lines[k - 1]}: HEAD values form a cycle ({' -> '.join(map(str, [*cycle, k]))}), "
                             "not a tree; every word's chain of heads must reach 0")
        for w in walk:
            state[w] = 2
