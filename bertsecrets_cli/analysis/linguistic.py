"""Attention to linguistic features per head (Kovaleva et al. 2019, sec. 4.4): nouns, verbs, pronouns, subjects
and objects, next to the token features of analysis/token_features.py and by the same rule.

Per example and head: the column mean over the real tokens (every query row) of the attention a feature word
receives, the word's pieces summed first; with several such words the largest; an example without the feature
is skipped (NaN here, left out of the mean over examples), as for negation. Beside it, the attention of the
[CLS] row to the feature word (the paper shows the last layer's [CLS] attention to each feature).

The paper names the features but not the tags behind them; ours, from Universal Dependencies tags (CoNLL-U
UPOS and DEPREL, or a spaCy pipeline's ``pos_`` and ``dep_``): noun = NOUN or PROPN, verb = VERB, pronoun = PRON,
subject = nsubj / csubj and their subtypes (spaCy's nsubjpass, csubjpass), object = obj / iobj (spaCy's dobj,
dative).
"""

from __future__ import annotations

import numpy as np

LINGUISTIC_FEATURES = ("noun", "verb", "pronoun", "subject", "object")
LINGUISTIC_LABELS = {"noun": "nouns", "verb": "verbs", "pronoun": "pronouns", "subject": "subjects", "object": "objects"}
_UPOS = {"noun": ("NOUN", "PROPN"), "verb": ("VERB",), "pronoun": ("PRON",)}
_DEPREL = {"subject": ("nsubj", "csubj", "nsubjpass", "csubjpass"), "object": ("obj", "iobj", "dobj", "dative")}


def word_features(upos: str, deprel: str) -> list[str]:
    """The features a word with these tags has (a word may have two: a pronoun subject)."""
    base = deprel.split(":", 1)[0].lower()
    out = [f for f, tags in _UPOS.items() if upos.upper() in tags]
    return out + [f for f, rels in _DEPREL.items() if base in rels]


def feature_groups(pieces: list[list[int]], tags: list[tuple[str, str]]) -> dict[str, list[list[int]]]:
    """Words' piece indices and (upos, deprel) tags -> per feature, the piece lists of its words."""
    out: dict[str, list[list[int]]] = {f: [] for f in LINGUISTIC_FEATURES}
    for ps, (upos, deprel) in zip(pieces, tags):
        if ps:
            for f in word_features(upos, deprel):
                out[f].append(list(ps))
    return out


def feature_attention(att: np.ndarray, groups: dict[str, list[list[int]]], cls: int | None) -> tuple[np.ndarray, np.ndarray]:
    """att [..., T, T] of one example -> ([..., F] column-mean attention to each feature, [..., F] attention of
    the [CLS] row (position ``cls``) to it); NaN where the example has no such word."""
    a = np.asarray(att, dtype=np.float32)
    col = a.mean(-2)
    row = a[..., cls, :] if cls is not None else None
    out = np.full((*col.shape[:-1], len(LINGUISTIC_FEATURES)), np.nan, dtype=np.float32)
    out_cls = out.copy()
    for k, name in enumerate(LINGUISTIC_FEATURES):
        gs = groups.get(name) or []
        if gs:
            out[..., k] = np.stack([col[..., g].sum(-1) for g in gs], -1).max(-1)
            if row is not None:
                out_cls[..., k] = np.stack([row[..., g].sum(-1) for g in gs], -1).max(-1)
    return out, out_cls


class FeatureMeans:
    """Sums over examples of ``feature_attention``: per-head means, examples counted per feature; shards add."""

    def __init__(self, n_layers: int, n_heads: int) -> None:
        F = len(LINGUISTIC_FEATURES)
        self.sums = np.zeros((2, n_layers, n_heads, F))  # [column mean, [CLS] row]
        self.counts = np.zeros(F, dtype=np.int64)

    def add(self, att: np.ndarray, groups: dict[str, list[list[int]]], cls: int | None) -> None:
        col, row = feature_attention(att, groups, cls)
        present = ~np.isnan(col.reshape(-1, col.shape[-1])[0])
        self.sums[0][..., present] += col[..., present]
        self.sums[1][..., present] += np.nan_to_num(row[..., present])
        self.counts += present

    def absorb(self, sums: np.ndarray, counts: np.ndarray) -> None:
        self.sums += sums
        self.counts += np.asarray(counts, dtype=np.int64)

    def means(self) -> tuple[np.ndarray, np.ndarray]:
        """([L, H, F] attention to each feature, [L, H, F] [CLS]-row attention to it); NaN where no example had it."""
        with np.errstate(invalid="ignore", divide="ignore"):
            d = np.where(self.counts > 0, self.counts, np.nan)
            return self.sums[0] / d, self.sums[1] / d
