"""Dependency-relation heads, as in Clark et al. 2019 ("What Does BERT Look At?", section 4).

Word-level attention comes from analysis/wordlevel.py (mean over the attending word's pieces, sum over the
attended word's pieces, the paper's rule). Special tokens ([CLS], [SEP]) are not words: they are never predicted.

A head predicts a word's governor as the word it attends to most (dependent -> head). The reverse
direction asks whether the governor attends most to the dependent (head -> dependent). Per relation
label, each head's accuracy is compared with the best fixed-offset baseline: always predicting the word
``k`` positions away, for the single ``k`` that does best on that relation.

Two definitions (``DEFINITIONS``), chosen by ``--definition``:

``ours`` (the default, and every store written before the switch existed): the argmax runs over the whole
row, the word itself included; the reverse direction asks whether the governor's most-attended word is the
dependent; root words are not scored; the best fixed offset is any ``governor - dependent`` seen, ties to the
smaller distance; the best head is chosen per direction, ties to the lowest layer and head.

``authors`` follows the code that produced Clark et al.'s Table 1 (clarkkev/attention-analysis,
Syntax_Analysis.ipynb, cells 6 and 8, commit b609cfc): in ``attn_head_predictor`` the diagonal is set to 0 and
[CLS]/[SEP] are cropped before the row argmax (np.argmax: ties to the lowest word); the reverse direction
("head<-dep") transposes the map, so a dependent's predicted governor is the word that attends to it most;
``evaluate_predictor`` scores every word, root words included (a head never predicts ROOT, so they count as
misses); ``offset_predictor`` predicts ``max(0, min(i + k + 1, n))`` (1-based, 0 = ROOT) for k in
``range(-3, 3)``, the best offset is ``max((accuracy, k))`` (ties to the larger k); the best head is the last of
``sorted((accuracy, layer, head, direction))`` over both directions (ties to the higher layer, then head, then
"head<-dep"); and a ``poss`` dependent followed by "'s" / "s'" is judged by the prediction of that next word
(the notebook's special case for Stanford Dependencies; UD's ``nmod:poss`` is not touched).

Causal decoders (``causal=True``, definition ``ours`` only): a word's row holds only itself and earlier words, so
each arc is reachable in exactly one direction: dependent -> governor when the governor comes first, governor ->
dependent when the dependent comes first. Each direction's accuracy is over the arcs it can reach (an arc whose
target lies in the attending word's future is left out of that direction's denominator, not counted as a miss),
and each direction has its own offset baseline over the same arcs: the best fixed look-back ``k < 0`` words from
the attending word (for the reverse direction, ``dependent - governor``).
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bertsecrets_cli.analysis.definitions import DEFINITIONS, check_definition  # noqa: F401 - the one vocabulary
from bertsecrets_cli.analysis.wordlevel import word_attention, word_piece_matrix  # noqa: F401 - the word-level rule lives there


# Clark et al.'s offsets: Syntax_Analysis.ipynb cell 6, ``baseline_scores = {i: ... for i in range(-3, 3)}``
AUTHORS_OFFSETS = tuple(range(-3, 3))


def predictions(word_att: np.ndarray, has_pieces: np.ndarray, *, exclude_self: bool = False) -> np.ndarray:
    """[L, H, W, W] -> [L, H, W]: each word's most-attended word, among words that have pieces (and, with
    ``exclude_self``, other than itself: Clark's zeroed diagonal; a row of zeros elsewhere still picks the
    lowest word, as np.argmax on his cropped map does)."""
    masked = np.where(has_pieces[None, None, None, :], np.nan_to_num(word_att, nan=-np.inf), -np.inf)
    if exclude_self:
        W = masked.shape[-1]
        # his diagonal is 0, not -inf: a word whose other attention is all 0 ties at 0 and np.argmax takes the first
        masked[..., np.arange(W), np.arange(W)] = np.where(has_pieces, 0.0, -np.inf)
    return masked.argmax(-1)


def authors_best_head(forward: np.ndarray, reverse: np.ndarray) -> tuple[int, int, int]:
    """(layer, head, direction 0 forward / 1 reverse) of Clark's pick: the last of sorted (accuracy, layer, head,
    direction name) over both directions, i.e. ties to the higher layer, then head, then "head<-dep"
    ("h" sorts after "d"). Syntax_Analysis.ipynb cell 8: ``sorted(s for s in get_all_scores(reln))[-1]``."""
    cands = [(float(np.nan_to_num(a[li, h], nan=-1.0)), li, h, name, d)
             for d, (a, name) in enumerate(((forward, "dep->head"), (reverse, "head<-dep")))
             for li in range(a.shape[0]) for h in range(a.shape[1])]
    _, li, h, _, d = sorted(cands)[-1]
    return li, h, d


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
    definition: str = "ours"
    # causal maps: arcs each direction can reach (its denominator) and the reverse direction's own offset baseline
    causal: bool = False
    forward_count: int | None = None
    reverse_count: int | None = None
    reverse_offset_k: int | None = None
    reverse_offset_accuracy: float | None = None


@dataclass
class DependencyScorer:
    """Accumulates, sentence by sentence, how often each head's most-attended word is right."""

    n_layers: int
    n_heads: int
    base_relations: bool = False  # 'nsubj:pass' counts as 'nsubj'
    definition: str = "ours"  # DEFINITIONS; "authors": Clark et al.'s released rule (module docstring)
    skipped_unmapped: int = 0  # relation instances whose dependent or governor has no word piece
    causal: bool = False  # lower-triangular maps: each arc scored in the one direction that can reach it (module docstring)
    _correct: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    _rcorrect: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    _count: Counter[str] = field(default_factory=Counter, repr=False)
    _offsets: dict[str, Counter[int]] = field(default_factory=lambda: defaultdict(Counter), repr=False)
    # causal: arcs reachable dependent -> governor (governor earlier) and governor -> dependent, and the latter's offsets
    _fcount: Counter[str] = field(default_factory=Counter, repr=False)
    _rcount: Counter[str] = field(default_factory=Counter, repr=False)
    _roffsets: dict[str, Counter[int]] = field(default_factory=lambda: defaultdict(Counter), repr=False)

    def __post_init__(self) -> None:
        check_definition(self.definition)
        if self.causal and self.definition == "authors":
            raise ValueError("the authors' definition reads encoder maps ([CLS]/[SEP] cropped, transposed maps); causal maps use 'ours'")

    def label(self, deprel: str) -> str:
        return deprel.split(":", 1)[0] if self.base_relations else deprel

    def add(self, word_att: np.ndarray, heads: list[int | None], deprels: list[str], has_pieces: np.ndarray,
            forms: list[str] | None = None) -> None:
        """One sentence: word attention [L, H, W, W], 1-based governors (0 root, None unknown), labels, and
        (for the authors' ``poss`` rule) the word forms."""
        if self.definition == "authors":
            self._add_authors(word_att, heads, deprels, has_pieces, forms)
            return
        pred = predictions(word_att, has_pieces)
        for dep, (gov, rel) in enumerate(zip(heads, deprels)):
            if gov is None or gov == 0 or rel in ("_", ""):
                continue
            g = gov - 1
            if not (has_pieces[dep] and has_pieces[g]):
                self.skipped_unmapped += 1
                continue
            lab = self._slot(rel)
            self._count[lab] += 1
            if self.causal:  # only the later word of the arc can attend to the earlier one
                if g < dep:
                    self._correct[lab] += pred[:, :, dep] == g
                    self._fcount[lab] += 1
                    self._offsets[lab][g - dep] += 1
                else:
                    self._rcorrect[lab] += pred[:, :, g] == dep
                    self._rcount[lab] += 1
                    self._roffsets[lab][dep - g] += 1
                continue
            self._correct[lab] += pred[:, :, dep] == g
            self._rcorrect[lab] += pred[:, :, g] == dep
            self._offsets[lab][g - dep] += 1

    def _slot(self, rel: str) -> str:
        lab = self.label(rel)
        if lab not in self._correct:
            self._correct[lab] = np.zeros((self.n_layers, self.n_heads))
            self._rcorrect[lab] = np.zeros((self.n_layers, self.n_heads))
        return lab

    def _add_authors(self, word_att: np.ndarray, heads: list[int | None], deprels: list[str], has_pieces: np.ndarray,
                     forms: list[str] | None) -> None:
        """Clark's ``evaluate_predictor`` with ``attn_head_predictor`` normal and transposed and the offsets."""
        W = len(heads)
        pred = predictions(word_att, has_pieces, exclude_self=True)  # dep -> head
        pred_t = predictions(np.swapaxes(word_att, -1, -2), has_pieces, exclude_self=True)  # head <- dep
        for dep, (gov, rel) in enumerate(zip(heads, deprels)):
            if gov is None or rel in ("_", ""):
                continue
            g = gov - 1  # -1: ROOT, which no head predicts
            if not has_pieces[dep] or (g >= 0 and not has_pieces[g]):
                self.skipped_unmapped += 1
                continue
            lab = self._slot(rel)
            fwd, rev = pred[:, :, dep], pred_t[:, :, dep]
            # Clark's special case (cell 6), for every predictor: when a 'poss' word's prediction p is not the last
            # word (``p < len(words)``, 1-based) and the next word is 's / s', the next word's prediction is judged
            poss = lab == "poss" and forms is not None and dep + 1 < W and forms[dep + 1] in ("'s", "s'")
            if poss:
                fwd = np.where(fwd + 1 < W, pred[:, :, dep + 1], fwd)
                rev = np.where(rev + 1 < W, pred_t[:, :, dep + 1], rev)
            self._correct[lab] += fwd == g
            self._rcorrect[lab] += rev == g
            self._count[lab] += 1
            for k in AUTHORS_OFFSETS:  # offset_predictor: max(0, min(i + k + 1, n)), 1-based, 0 = ROOT
                p = max(0, min(dep + k + 1, W))
                if poss and p < W:
                    p = max(0, min(dep + k + 2, W))
                self._offsets[lab][k] += int(p == gov)

    def state(self) -> dict[str, Any]:
        """The counts behind ``results``: arrays [relations, L, H] and a JSON-able ``meta``; joined by ``absorb``."""
        labels = sorted(self._count)
        empty = np.zeros((0, self.n_layers, self.n_heads))
        return {
            "correct": np.stack([self._correct[lab] for lab in labels]) if labels else empty,
            "reverse_correct": np.stack([self._rcorrect[lab] for lab in labels]) if labels else empty,
            "meta": {"labels": labels, "counts": [self._count[lab] for lab in labels], "skipped_unmapped": self.skipped_unmapped,
                     "definition": self.definition,
                     "offsets": [{str(k): n for k, n in sorted(self._offsets[lab].items())} for lab in labels]}
            | ({"causal": True, "forward_counts": [self._fcount[lab] for lab in labels], "reverse_counts": [self._rcount[lab] for lab in labels],
                "reverse_offsets": [{str(k): n for k, n in sorted(self._roffsets[lab].items())} for lab in labels]} if self.causal else {}),
        }

    def absorb(self, state: dict[str, Any]) -> None:
        """Add another shard's ``state`` (counts only: the order of shards does not matter)."""
        meta = state["meta"]
        if meta.get("definition", "ours") != self.definition:
            raise ValueError(f"a shard scored under the {meta.get('definition', 'ours')!r} definition cannot join {self.definition!r} counts")
        if bool(meta.get("causal", False)) != self.causal:
            raise ValueError("a shard of causal (decoder) counts cannot join encoder counts, nor the reverse")
        self.skipped_unmapped += int(meta["skipped_unmapped"])
        for r, lab in enumerate(meta["labels"]):
            if lab not in self._correct:
                self._correct[lab] = np.zeros((self.n_layers, self.n_heads))
                self._rcorrect[lab] = np.zeros((self.n_layers, self.n_heads))
            self._correct[lab] += state["correct"][r]
            self._rcorrect[lab] += state["reverse_correct"][r]
            self._count[lab] += int(meta["counts"][r])
            self._offsets[lab].update({int(k): int(n) for k, n in meta["offsets"][r].items()})
            if self.causal:
                self._fcount[lab] += int(meta["forward_counts"][r])
                self._rcount[lab] += int(meta["reverse_counts"][r])
                self._roffsets[lab].update({int(k): int(n) for k, n in meta["reverse_offsets"][r].items()})

    def _best_offset(self, offs: Counter[int]) -> tuple[int, int]:
        """(k, hits): ours: the most frequent governor - dependent offset, ties to the smaller distance; the
        authors': the k of -3..+2 with most clamped hits, ties to the larger k (``max((score, i))``, cell 8)."""
        if self.definition == "authors":
            hits, k = max((offs.get(k, 0), k) for k in AUTHORS_OFFSETS)
            return k, hits
        if not offs:  # causal: no arc reachable in this direction
            return 0, 0
        return max(offs.items(), key=lambda kv: (kv[1], -abs(kv[0])))

    def _result(self, lab: str, n: int, correct: np.ndarray, rcorrect: np.ndarray, offs: Counter[int], nf: int = 0, nr: int = 0,
                roffs: Counter[int] | None = None) -> RelationResult:
        k, hits = self._best_offset(offs)
        if not self.causal:
            return RelationResult(lab, n, correct / n, rcorrect / n, int(k), hits / n, self.definition)
        nan = np.full((self.n_layers, self.n_heads), np.nan)  # no arc reachable in a direction: undefined, not 0
        rk, rhits = self._best_offset(roffs or Counter())
        return RelationResult(lab, n, correct / nf if nf else nan, rcorrect / nr if nr else nan.copy(), int(k), hits / nf if nf else float("nan"),
                              self.definition, True, nf, nr, int(rk), rhits / nr if nr else float("nan"))

    def results(self) -> list[RelationResult]:
        """One result per relation, most frequent first."""
        return [self._result(lab, n, self._correct[lab], self._rcorrect[lab], self._offsets[lab], self._fcount[lab], self._rcount[lab], self._roffsets[lab])
                for lab, n in sorted(self._count.items(), key=lambda kv: (-kv[1], kv[0]))]

    def overall(self) -> RelationResult | None:
        """All relations pooled (the offset baseline is the single best offset for all of them)."""
        n = sum(self._count.values())
        if not n:
            return None
        offs: Counter[int] = Counter()
        roffs: Counter[int] = Counter()
        for c in self._offsets.values():
            offs.update(c)
        for c in self._roffsets.values():
            roffs.update(c)
        return self._result("all", n, sum(self._correct.values()), sum(self._rcorrect.values()), offs, sum(self._fcount.values()),
                            sum(self._rcount.values()), roffs)
