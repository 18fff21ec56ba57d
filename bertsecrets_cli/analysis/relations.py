"""Dependency-relation heads, as in Clark et al. 2019 ("What Does BERT Look At?", section 4).

Word-level attention comes from analysis/wordlevel.py (mean over the attending word's pieces, sum over the
attended word's pieces, the paper's rule). Special tokens ([CLS], [SEP]) are not words: they are never predicted.

A head predicts a word's governor as the word it attends to most (dependent -> head). The reverse
direction asks whether the governor attends most to the dependent (head -> dependent). Per relation
label, each head's accuracy is compared with the best fixed-offset baseline: always predicting the word
``k`` positions away, for the single ``k`` that does best on that relation.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bertsecrets_cli.analysis.wordlevel import word_attention, word_piece_matrix  # noqa: F401 - the word-level rule lives there


def predictions(word_att: np.ndarray, has_pieces: np.ndarray) -> np.ndarray:
    """[L, H, W, W] -> [L, H, W]: each word's most-attended word, among words that have pieces."""
    masked = np.where(has_pieces[None, None, None, :], np.nan_to_num(word_att, nan=-np.inf), -np.inf)
    return masked.argmax(-1)


def relation_key(label: str) -> str:
    """A store-safe name for a relation label: 'nsubj:pass' -> 'nsubj_pass'."""
    return re.sub(r"[^A-Za-z0-9]+", "_", label).strip("_") or "unlabelled"


# below this many arcs one arc moves an accuracy by more than 0.01, and the ranking of the top heads is not stable
MIN_ARCS = 100


@dataclass
class RelationResult:
    label: str
    count: int
    accuracy: np.ndarray  # [L, H] dependent -> governor
    reverse_accuracy: np.ndarray  # [L, H] governor -> dependent
    offset_k: int  # best fixed offset (governor position - dependent position)
    offset_accuracy: float


@dataclass
class DependencyScorer:
    """Accumulates, sentence by sentence, how often each head's most-attended word is right."""

    n_layers: int
    n_heads: int
    base_relations: bool = False  # 'nsubj:pass' counts as 'nsubj'
    skipped_unmapped: int = 0  # relation instances whose dependent or governor has no word piece
    _correct: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    _rcorrect: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    _count: Counter[str] = field(default_factory=Counter, repr=False)
    _offsets: dict[str, Counter[int]] = field(default_factory=lambda: defaultdict(Counter), repr=False)

    def label(self, deprel: str) -> str:
        return deprel.split(":", 1)[0] if self.base_relations else deprel

    def add(self, word_att: np.ndarray, heads: list[int | None], deprels: list[str], has_pieces: np.ndarray) -> None:
        """One sentence: word attention [L, H, W, W], 1-based governors (0 root, None unknown), labels."""
        pred = predictions(word_att, has_pieces)
        for dep, (gov, rel) in enumerate(zip(heads, deprels)):
            if gov is None or gov == 0 or rel in ("_", ""):
                continue
            g = gov - 1
            if not (has_pieces[dep] and has_pieces[g]):
                self.skipped_unmapped += 1
                continue
            lab = self.label(rel)
            if lab not in self._correct:
                self._correct[lab] = np.zeros((self.n_layers, self.n_heads))
                self._rcorrect[lab] = np.zeros((self.n_layers, self.n_heads))
            self._correct[lab] += pred[:, :, dep] == g
            self._rcorrect[lab] += pred[:, :, g] == dep
            self._count[lab] += 1
            self._offsets[lab][g - dep] += 1

    def state(self) -> dict[str, Any]:
        """The counts behind ``results``: arrays [relations, L, H] and a JSON-able ``meta``; joined by ``absorb``."""
        labels = sorted(self._count)
        empty = np.zeros((0, self.n_layers, self.n_heads))
        return {
            "correct": np.stack([self._correct[lab] for lab in labels]) if labels else empty,
            "reverse_correct": np.stack([self._rcorrect[lab] for lab in labels]) if labels else empty,
            "meta": {"labels": labels, "counts": [self._count[lab] for lab in labels], "skipped_unmapped": self.skipped_unmapped,
                     "offsets": [{str(k): n for k, n in sorted(self._offsets[lab].items())} for lab in labels]},
        }

    def absorb(self, state: dict[str, Any]) -> None:
        """Add another shard's ``state`` (counts only: the order of shards does not matter)."""
        meta = state["meta"]
        self.skipped_unmapped += int(meta["skipped_unmapped"])
        for r, lab in enumerate(meta["labels"]):
            if lab not in self._correct:
                self._correct[lab] = np.zeros((self.n_layers, self.n_heads))
                self._rcorrect[lab] = np.zeros((self.n_layers, self.n_heads))
            self._correct[lab] += state["correct"][r]
            self._rcorrect[lab] += state["reverse_correct"][r]
            self._count[lab] += int(meta["counts"][r])
            self._offsets[lab].update({int(k): int(n) for k, n in meta["offsets"][r].items()})

    def results(self) -> list[RelationResult]:
        """One result per relation, most frequent first."""
        out = []
        for lab, n in sorted(self._count.items(), key=lambda kv: (-kv[1], kv[0])):
            k, hits = max(self._offsets[lab].items(), key=lambda kv: (kv[1], -abs(kv[0])))
            out.append(RelationResult(lab, n, self._correct[lab] / n, self._rcorrect[lab] / n, int(k), hits / n))
        return out

    def overall(self) -> RelationResult | None:
        """All relations pooled (the offset baseline is the single best offset for all of them)."""
        n = sum(self._count.values())
        if not n:
            return None
        offs: Counter[int] = Counter()
        for c in self._offsets.values():
            offs.update(c)
        k, hits = max(offs.items(), key=lambda kv: (kv[1], -abs(kv[0])))
        return RelationResult("all", n, sum(self._correct.values()) / n, sum(self._rcorrect.values()) / n, int(k), hits / n)
