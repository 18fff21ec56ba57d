"""Coreference chains for ``coref``: CorefUD CoNLL-U (``Entity=`` in MISC) or a simple JSONL of mention spans.

CorefUD convention (https://ufal.mff.cuni.cz/corefud), as read here:

- ``Entity=(e1-person-1`` on a word opens a mention of entity ``e1``; ``Entity=e1)`` on a later word of the
  same sentence closes it; ``Entity=(e2-place-2)`` is a one-word mention; brackets concatenate on one word,
  ``Entity=(e1-person-1(e2-place-1)`` (nested mentions). A mention never crosses a sentence.
- The attributes after the id are named by the file's ``# global.Entity = eid-etype-head-...`` comment
  (default ``eid-etype-head-other``); ``head`` is the 1-based position of the mention's head word among its
  words. Without it (or out of range) the head is read from the dependency tree: the first mention word whose
  governor lies outside the mention, else its last word.
- Discontinuous mentions split into parts ``(e5[1/2]`` ... ``e5[1/2])`` ... ``(e5[2/2]`` ... ``e5[2/2])``.
- Empty nodes (``1.1``) may carry brackets: a mention opened there starts at the next word, one closed there
  ends at the previous word; a mention of empty nodes only (a zero pronoun) has no word and is skipped.
- Multiword tokens (``1-2``) are not words: brackets sit on their words' lines.
- Chains are entities within a document (``# newdoc``); without it the file is one document.

Every malformed bracket is an InputError naming ``file:line``.

JSONL: one document per line, ``{"id": "d1", "sentences": [["John", "said", "he", "left"]],
"mentions": [{"sentence": 0, "start": 0, "end": 1, "entity": "e1"}, {"sentence": 0, "start": 2, "end": 3,
"entity": "e1", "type": "pronoun"}]}``; ``end`` is exclusive; optional per mention ``head`` (word index in the
sentence) and ``type`` (pronoun, proper, nominal); optional per document ``upos`` (lists like ``sentences``).
Without ``type`` or ``upos`` a mention's type comes from its head word: an English pronoun list, else proper
when capitalised (not sentence-initially), else nominal.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bertsecrets_cli.errors import InputError
from bertsecrets_cli.inputs import check_input_file, text_lines

TYPES = ("pronoun", "proper", "nominal")
_BRACKET = re.compile(r"\(([^()]+)(\))?|([^()]+)\)")
_PART = re.compile(r"^([^\[\]]+)(?:\[(\d+)/(\d+)\])?$")
DEFAULT_FIELDS = ("eid", "etype", "head", "other")
PRONOUNS = frozenset("""i me my mine myself you your yours yourself yourselves he him his himself she her hers herself it its itself
we us our ours ourselves they them their theirs themselves this that these those who whom whose which what one oneself""".split())


@dataclass
class Mention:
    words: tuple[int, ...]  # word indices in the sentence, 0-based, sorted
    head: int  # the head word's index in the sentence
    entity: str
    type: str  # pronoun, proper or nominal
    line: int = 0  # where it was opened, for messages


@dataclass
class CorefSentence:
    words: list[str]
    mentions: list[Mention] = field(default_factory=list)
    id: str = ""


@dataclass
class CorefDocument:
    id: str
    sentences: list[CorefSentence]


@dataclass
class ReadCounts:
    mentions: int = 0
    zero_mentions: int = 0  # only on empty nodes: no word to attend from


def mention_type(upos: str, form: str, sentence_initial: bool) -> str:
    """Pronoun, proper or nominal, from the head word's UPOS when known, else from its form."""
    if upos and upos != "_":
        return "pronoun" if upos == "PRON" else "proper" if upos == "PROPN" else "nominal"
    if form.lower() in PRONOUNS:
        return "pronoun"
    return "proper" if form[:1].isupper() and not sentence_initial else "nominal"


def _tree_head(words: tuple[int, ...], heads: list[int | None]) -> int:
    inside = set(words)
    for w in words:
        g = heads[w]
        if g is None or g == 0 or g - 1 not in inside:
            return w
    return words[-1]


def read_corefud(path: str | Path, counts: ReadCounts | None = None) -> list[CorefDocument]:
    """The documents of a CorefUD CoNLL-U file, with their mentions."""
    from bertsecrets_cli.data.conllu import read_conllu

    counts = counts if counts is not None else ReadCounts()
    fields = DEFAULT_FIELDS
    docs: list[CorefDocument] = []
    for sent in read_conllu(path):
        for key, value in sent.comments:
            if key == "global.Entity" and value:
                fields = tuple(value.split("-"))
        if sent.newdoc or not docs:
            doc_id = next((v for k, v in sent.comments if k.split(" ")[0] == "newdoc" and v), sent.id)
            docs.append(CorefDocument(doc_id, []))
        docs[-1].sentences.append(_sentence_mentions(path, sent, fields, counts))
    return docs


def _entity_value(misc: str) -> str | None:
    for item in misc.split("|"):
        if item.startswith("Entity="):
            return item[len("Entity="):]
    return None


def _sentence_mentions(path: str | Path, sent: object, fields: tuple[str, ...], counts: ReadCounts) -> CorefSentence:
    words = sent.words  # type: ignore[attr-defined]
    # events in file order: (first word at or after the line, last word at or before it, MISC, line)
    events: list[tuple[int, int, str, int]] = []
    empty = list(sent.empty)  # type: ignore[attr-defined]
    e = 0
    for i, w in enumerate(words):
        while e < len(empty) and empty[e][0] <= i:
            k, misc, ln = empty[e]
            events.append((k, k - 1, misc, ln))
            e += 1
        events.append((i, i, w.misc, w.line))
    for k, misc, ln in empty[e:]:
        events.append((k, k - 1, misc, ln))
    head_field = fields.index("head") if "head" in fields else None
    open_: dict[tuple[str, str], list[tuple[int, str | None, int]]] = {}
    parts: dict[tuple[str, int], list[tuple[int, tuple[int, ...], str | None, int]]] = {}
    spans: list[tuple[str, tuple[int, ...], str | None, int]] = []
    for start_at, end_at, misc, ln in events:
        value = _entity_value(misc)
        if value is None or value in ("", "_"):
            continue
        pos = 0
        while pos < len(value):
            m = _BRACKET.match(value, pos)
            if m is None or m.end() == pos:
                raise InputError(f"{path}:{ln}: malformed Entity {value!r} at character {pos + 1} (expected '(eid...' or 'eid)')")
            pos = m.end()
            if m.group(1) is not None:
                attrs = m.group(1).split("-")
                pm = _PART.match(attrs[0])
                if pm is None or not pm.group(1):
                    raise InputError(f"{path}:{ln}: malformed entity id {attrs[0]!r} in Entity {value!r}")
                key = (attrs[0], pm.group(1))
                head = attrs[head_field] if head_field is not None and head_field < len(attrs) else None
                if m.group(2):  # "(e2-...)" on one line: a one-word mention (none on an empty node)
                    _finish(spans, parts, pm, tuple(range(start_at, end_at + 1)), head, ln, path)
                else:
                    open_.setdefault(key, []).append((start_at, head, ln))
            else:
                ident = m.group(3)
                pm = _PART.match(ident)
                if pm is None:
                    raise InputError(f"{path}:{ln}: malformed entity id {ident!r} in Entity {value!r}")
                key = (ident, pm.group(1))
                if not open_.get(key):
                    raise InputError(f"{path}:{ln}: Entity closes {ident!r}, which no bracket of this sentence opened")
                s0, head, ln0 = open_[key].pop()
                _finish(spans, parts, pm, tuple(range(s0, end_at + 1)), head, ln0, path)
    for (ident, _), stack in open_.items():
        if stack:
            raise InputError(f"{path}:{stack[-1][2]}: Entity opens {ident!r} but its sentence never closes it")
    for (eid, n), got in parts.items():
        if len(got) % n:
            raise InputError(f"{path}:{got[-1][3]}: discontinuous mention of {eid!r} has {len(got)} part(s), not a multiple of {n}")
        got.sort(key=lambda g: (g[3], g[0]))
        for b in range(0, len(got), n):
            group = got[b : b + n]
            if sorted(g[0] for g in group) != list(range(1, n + 1)):
                raise InputError(f"{path}:{group[0][3]}: discontinuous mention of {eid!r}: parts {[g[0] for g in group]}, expected 1..{n}")
            ws = tuple(sorted({w for g in group for w in g[1]}))
            spans.append((eid, ws, next((g[2] for g in group if g[2]), None), group[0][3]))
    heads = [w.head for w in words]
    out = CorefSentence([w.form for w in words], [], getattr(sent, "id", ""))
    for eid, ws, head_attr, ln in sorted(spans, key=lambda s: (s[1][:1] or (len(words),), -len(s[1]), s[3])):
        counts.mentions += 1
        if not ws:
            counts.zero_mentions += 1
            continue
        h = None
        if head_attr is not None and head_attr.isdigit() and 1 <= int(head_attr) <= len(ws):
            h = ws[int(head_attr) - 1]
        if h is None:
            h = _tree_head(ws, heads)
        out.mentions.append(Mention(ws, h, eid, mention_type(words[h].upos, words[h].form, h == 0), ln))
    return out


def _finish(spans: list, parts: dict, pm: re.Match, ws: tuple[int, ...], head: str | None, ln: int, path: str | Path) -> None:
    eid = pm.group(1)
    if pm.group(2) is None:
        spans.append((eid, ws, head, ln))
        return
    k, n = int(pm.group(2)), int(pm.group(3))
    if not 1 <= k <= n:
        raise InputError(f"{path}:{ln}: discontinuous part [{k}/{n}] of {eid!r} is out of range")
    parts.setdefault((eid, n), []).append((k, ws, head, ln))


def _short(v: Any, width: int = 60) -> str:
    s = json.dumps(v, ensure_ascii=False) if not isinstance(v, str) else repr(v)
    return s if len(s) <= width else s[: width - 1] + "…"


def read_coref_jsonl(path: str | Path, counts: ReadCounts | None = None) -> list[CorefDocument]:
    """The documents of a JSONL file of mention spans (see the module's docstring)."""
    counts = counts if counts is not None else ReadCounts()
    p = check_input_file(path, what="coreference file")
    docs: list[CorefDocument] = []
    # every text file is read through bertsecrets_cli.inputs (regular files, UTF-8, no NUL, capped lines)
    for ln, raw in text_lines(p, shown=str(path), what="coreference file"):
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw)
        except json.JSONDecodeError as e:
            raise InputError(f"{path}:{ln}: not JSON ({e.msg})") from e
        if not isinstance(obj, dict) or not isinstance(obj.get("sentences"), list):
            raise InputError(f"{path}:{ln}: expected an object with a 'sentences' list of word lists")
        sents = obj["sentences"]
        if not all(isinstance(s, list) and all(isinstance(w, str) and w and not any(c.isspace() for c in w) for w in s) for s in sents):
            raise InputError(f"{path}:{ln}: 'sentences' must be lists of words (non-empty strings without spaces)")
        upos = obj.get("upos")
        doc = CorefDocument(str(obj.get("id", f"{p.name}:{ln}")), [CorefSentence(list(s), [], f"{obj.get('id', ln)}:{k}") for k, s in enumerate(sents)])
        mentions = obj.get("mentions", [])
        if not isinstance(mentions, list):
            raise InputError(f"{path}:{ln}: 'mentions' must be a list of objects, found {type(mentions).__name__}")
        for m in mentions:
            if not isinstance(m, dict):
                raise InputError(f"{path}:{ln}: each mention must be an object with 'start', 'end', 'entity'; found {_short(m)}")
            si, s0, s1 = m.get("sentence", 0), m.get("start"), m.get("end")
            h = m.get("head")
            for key, v in (("sentence", si), ("start", s0), ("end", s1), ("head", h)):
                if (v is not None or key in ("start", "end")) and (type(v) is not int):  # 0.7, true, "3" are no positions
                    raise InputError(f"{path}:{ln}: mention {_short(m)}: '{key}' must be a whole number (a word position), found {_short(v)}")
            if "entity" not in m or isinstance(m["entity"], (dict, list)) or m["entity"] is None:
                raise InputError(f"{path}:{ln}: mention {_short(m)}: needs an 'entity' (a name or number)")
            ent = str(m["entity"])
            if not 0 <= si < len(sents) or not 0 <= s0 < s1 <= len(sents[si]):
                raise InputError(f"{path}:{ln}: mention {_short(m)} lies outside its sentence")
            h = h if h is not None else s1 - 1
            if not s0 <= h < s1:
                raise InputError(f"{path}:{ln}: mention {_short(m)}: head {h} outside [start, end)")
            t = m.get("type")
            if t is None:
                tag = upos[si][h] if isinstance(upos, list) and si < len(upos) and isinstance(upos[si], list) and h < len(upos[si]) else "_"
                tag = tag if isinstance(tag, str) else "_"
                t = mention_type(tag, sents[si][h], h == 0)
            if not isinstance(t, str) or t not in TYPES:
                raise InputError(f"{path}:{ln}: mention type {t!r}: choose one of {', '.join(TYPES)}")
            counts.mentions += 1
            doc.sentences[si].mentions.append(Mention(tuple(range(s0, s1)), h, ent, t, ln))
        for s in doc.sentences:
            s.mentions.sort(key=lambda x: (x.words[0], -len(x.words)))
        docs.append(doc)
    if not docs:
        raise InputError(f"{path}: no documents")
    return docs


def read_coref(path: str | Path, counts: ReadCounts | None = None) -> list[CorefDocument]:
    """CorefUD CoNLL-U (.conllu) or JSONL (.jsonl / .json), by extension."""
    suffix = Path(path).suffix.lower()
    if suffix in (".jsonl", ".json"):
        return read_coref_jsonl(path, counts)
    return read_corefud(path, counts)
