"""Word-level attention from word-piece attention (Clark et al. 2019, sec. 2 / appendix).

Every analysis that scores *words* (dependency heads, coreference, the attention probe, head clustering on
words) needs maps between words, not pieces. The paper's rule: attention TO a split word is the SUM of the
attention to its pieces (mass split across pieces is added back up); attention FROM a split word is the
MEAN of its pieces' rows (each row is a distribution, so the mean is one too). Each word row therefore
still sums to 1 when every piece belongs to one unit. Clark et al.'s released code took the FIRST piece's
row instead of the mean; this module does not reproduce that defect (tests/test_wordlevel.py proves it).

Pieces are grouped into words from the tokenizer's character offsets only, so the rule holds for any
tokenizer: WordPiece (``##`` continuations), byte-level BPE (``Ġ`` space marker, offsets with or without the
space) and SentencePiece (``▁`` marker, sometimes a piece that is only the marker). A piece's span is
trimmed of whitespace first; a piece that covers only whitespace (a lone ``▁``) joins the word that follows.
Special tokens ([CLS], [SEP], <s>, </s>) are units of their own, as in the paper's word-level data.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

BOUNDARIES = ("punctuation", "whitespace")


def _is_punct(ch: str) -> bool:
    """Unicode punctuation, plus the ASCII symbols BERT's basic tokenizer also splits off ($, +, <, ...)."""
    cp = ord(ch)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(ch).startswith("P")


def word_spans(text: str, boundaries: str = "punctuation") -> list[tuple[int, int]]:
    """Character spans (end exclusive) of the words of ``text``.

    ``whitespace``: maximal runs of non-space characters. ``punctuation``: as well, each punctuation
    character is a word of its own ("film." -> "film", "."), as Penn/UD tokenization and BERT's basic
    tokenizer do, so word units match the treebank words the paper scores.
    """
    if boundaries not in BOUNDARIES:
        raise ValueError(f"boundaries must be one of {BOUNDARIES}, not {boundaries!r}")
    spans: list[tuple[int, int]] = []
    start: int | None = None
    for i, ch in enumerate(text):
        if ch.isspace():
            if start is not None:
                spans.append((start, i))
                start = None
        elif boundaries == "punctuation" and _is_punct(ch):
            if start is not None:
                spans.append((start, i))
                start = None
            spans.append((i, i + 1))
        elif start is None:
            start = i
    if start is not None:
        spans.append((start, len(text)))
    return spans


def _trim(text: str | None, s: int, e: int) -> tuple[int, int]:
    """A piece's span without the whitespace a BPE/SentencePiece offset may include."""
    if text is None:
        return s, e
    while s < e and text[s].isspace():
        s += 1
    while e > s and text[e - 1].isspace():
        e -= 1
    return s, e


def assign_pieces(offsets: np.ndarray, special: np.ndarray, word_spans: Sequence[tuple[int, int]], text: str | None = None) -> np.ndarray:
    """int [T]: the word (index into ``word_spans``) each piece belongs to; -1 for special tokens and
    pieces that touch no word. A piece overlapping two words goes to the one holding its first character."""
    starts = np.asarray([s for s, _ in word_spans], dtype=np.int64)
    ends = np.asarray([e for _, e in word_spans], dtype=np.int64)
    out = np.full(len(offsets), -1, dtype=np.int64)
    pending: list[int] = []  # whitespace-only pieces waiting for the next word
    for t, (s0, e0) in enumerate(np.asarray(offsets).tolist()):
        if special[t] != 0:
            pending.clear()
            continue
        s, e = _trim(text, int(s0), int(e0))
        if e <= s:
            if text is not None:
                pending.append(t)
            continue
        hit = np.nonzero((starts < e) & (ends > s))[0]
        if len(hit):
            w = int(hit[0])
            out[t] = w
            for p in pending:  # a lone marker piece belongs to the word it precedes
                out[p] = w
            pending.clear()
    return out


def assignment_matrix(assign: np.ndarray, n_units: int) -> np.ndarray:
    """[W, T] 0/1 matrix from a piece -> unit assignment (-1: no unit)."""
    M = np.zeros((n_units, len(assign)), dtype=np.float32)
    t = np.nonzero(assign >= 0)[0]
    M[assign[t], t] = 1.0
    return M


def word_piece_matrix(offsets: np.ndarray, special: np.ndarray, word_spans: Sequence[tuple[int, int]], text: str | None = None) -> np.ndarray:
    """[W, T] 0/1 matrix: piece ``t`` belongs to word ``w`` (character spans, end exclusive)."""
    return assignment_matrix(assign_pieces(offsets, special, word_spans, text), len(word_spans))


def word_attention(att: np.ndarray, M: np.ndarray) -> np.ndarray:
    """[..., T, T] piece attention -> [..., W, W] word attention: the MEAN over the attending word's pieces
    (rows), the SUM over the attended word's pieces (columns). Words without pieces get rows of NaN and
    columns of 0."""
    to_words = att @ M.T  # [..., T, W]: sum over the attended word's pieces
    n = M.sum(1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_rows = np.where(n > 0, M / n, np.nan)  # [W, T]
    return np.einsum("wt,...tv->...wv", mean_rows, to_words, optimize=True)


@dataclass
class WordUnits:
    """The word-level units of one encoded example: special tokens and words, in piece order."""

    texts: list[str]  # "[CLS]", "the", "film", ".", "[SEP]"
    spans: np.ndarray  # int32 [W, 2] character span in its segment's text (special tokens: 0, 0)
    segment: np.ndarray  # int8 [W] 0 first text, 1 second
    special: np.ndarray  # int8 [W] the piece kind of special units (0 for words)
    assign: np.ndarray  # int64 [T] unit of each piece (-1: none, e.g. a piece of whitespace only)

    @property
    def matrix(self) -> np.ndarray:
        return assignment_matrix(self.assign, len(self.texts))


def example_units(tokens: Sequence[str], offsets: np.ndarray, special: np.ndarray, type_ids: np.ndarray,
                  texts: Sequence[str], boundaries: str = "punctuation") -> WordUnits:
    """Group one example's pieces into units: each special token alone, the other pieces by the word of
    their segment's text (``texts[segment]``) they fall in. Units are numbered by their first piece."""
    T = len(offsets)
    raw = np.full(T, -1, dtype=np.int64)  # a provisional key per piece, then renumbered in piece order
    keys: dict[tuple, int] = {}
    meta: list[tuple[str, tuple[int, int], int, int]] = []
    per_segment: dict[int, tuple[list[tuple[int, int]], np.ndarray]] = {}
    for seg in sorted(set(int(x) for x in np.asarray(type_ids)[np.asarray(special) == 0].tolist())):
        text = texts[seg] if seg < len(texts) else ""
        spans = word_spans(text, boundaries)
        mine = (np.asarray(type_ids) == seg) & (np.asarray(special) == 0)
        sub = assign_pieces(np.asarray(offsets)[mine], np.zeros(int(mine.sum()), dtype=np.int8), spans, text)
        full = np.full(T, -1, dtype=np.int64)
        full[np.nonzero(mine)[0]] = sub
        per_segment[seg] = (spans, full)
    for t in range(T):
        if special[t] != 0:
            key: tuple = ("special", t)
            if key not in keys:
                keys[key] = len(meta)
                meta.append((str(tokens[t]), (0, 0), int(type_ids[t]), int(special[t])))
            raw[t] = keys[key]
            continue
        seg = int(type_ids[t])
        spans, full = per_segment[seg]
        w = int(full[t])
        if w < 0:
            continue
        key = ("word", seg, w)
        if key not in keys:
            text = texts[seg] if seg < len(texts) else ""
            s, e = spans[w]
            keys[key] = len(meta)
            meta.append((text[s:e], (s, e), seg, 0))
        raw[t] = keys[key]
    return WordUnits([m[0] for m in meta], np.asarray([m[1] for m in meta], dtype=np.int32).reshape(-1, 2),
                     np.asarray([m[2] for m in meta], dtype=np.int8), np.asarray([m[3] for m in meta], dtype=np.int8), raw)
