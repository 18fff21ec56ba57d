"""Coreference heads (Clark et al. 2019, sec. 4.4 / Table 2), whose code the authors never released.

Antecedent selection accuracy: for each mention that has an antecedent in the input (an earlier mention of
the same entity), a head is right when the word it attends to most FROM the mention's head word is the head
word of one of those antecedents. "Earlier" and "nearest" are by head-word position; mentions sharing the
current mention's head word (nested spans) are never candidates. Word-level attention (mean over the
attending word's pieces, sum over the attended word's pieces) comes from analysis/wordlevel.py.

Baselines, as in the paper: the nearest preceding mention; the nearest preceding mention with the same head
word (lower-cased; no such mention counts as wrong); and the rule-based "same head word, else nearest".
On a causal decoder's maps nothing changes: the mention's head word sees every earlier word, and antecedents
are earlier by definition, so every scored mention is reachable and none is left out. Where the tokenizer adds no
BOS (GPT-2, Qwen) the first word is the attention sink, which a sink head picks from every row: ``first_word``
counts the mentions such a head gets right without reading them.
Results are split by the mention's type (pronoun, proper, nominal) and carry bootstrap intervals over mentions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

TYPES = ("pronoun", "proper", "nominal")
BASELINES = ("nearest", "head word match", "rule-based")


@dataclass
class SegmentMention:
    head: int  # word index in the segment
    entity: str
    type: str


@dataclass
class CorefScorer:
    """Per scored mention: whether each head and each baseline found an antecedent."""

    n_layers: int
    n_heads: int
    skipped_unmapped: int = 0
    first_word: int = 0  # scored mentions with the segment's first word among their antecedents (a causal model's sink, without a BOS)
    _hits: list[np.ndarray] = field(default_factory=list, repr=False)  # [L*H] bool per mention
    _base: list[tuple[bool, bool, bool]] = field(default_factory=list, repr=False)
    _types: list[int] = field(default_factory=list, repr=False)

    def add(self, word_att: np.ndarray, has_pieces: np.ndarray, mentions: list[SegmentMention], forms: list[str]) -> int:
        """One segment: word attention [L, H, W, W]; returns how many mentions it scored."""
        masked = np.where(has_pieces[None, None, None, :], np.nan_to_num(word_att, nan=-np.inf), -np.inf)
        lower = [f.lower() for f in forms]
        n = 0
        for m in mentions:
            before = [p for p in mentions if p.head < m.head]
            antecedents = {p.head for p in before if p.entity == m.entity}
            if not antecedents:
                continue
            if not has_pieces[m.head] or not all(has_pieces[a] for a in antecedents):
                self.skipped_unmapped += 1
                continue
            pred = masked[:, :, m.head, :].argmax(-1).reshape(-1)
            self._hits.append(np.isin(pred, sorted(antecedents)))
            self.first_word += int(0 in antecedents)
            cands = sorted({p.head for p in before})
            nearest = cands[-1]
            same = [c for c in cands if lower[c] == lower[m.head]]
            match = same[-1] if same else None
            self._base.append((nearest in antecedents, match is not None and match in antecedents,
                               (match if match is not None else nearest) in antecedents))
            self._types.append(TYPES.index(m.type))
            n += 1
        return n

    @property
    def n(self) -> int:
        return len(self._hits)

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(head hits [M, L, H] bool, baseline hits [M, 3] bool, mention types [M] int)."""
        L, H = self.n_layers, self.n_heads
        hits = np.stack(self._hits).reshape(-1, L, H) if self._hits else np.zeros((0, L, H), bool)
        return hits, np.asarray(self._base, dtype=bool).reshape(-1, 3), np.asarray(self._types, dtype=np.int64)


@dataclass
class CorefRow:
    type: str  # "all" or a mention type
    count: int
    accuracy: np.ndarray  # [L, H]
    best: tuple[int, int]
    best_interval: tuple[float, float]
    baselines: dict[str, float]
    baseline_intervals: dict[str, tuple[float, float]]


def summarize(hits: np.ndarray, base: np.ndarray, types: np.ndarray, *, samples: int = 1000, seed: int = 0, level: float = 0.95) -> list[CorefRow]:
    """Per mention type (and all): every head's accuracy, the best head, the baselines; percentile bootstrap
    intervals over mentions (the best head is chosen on the full data, so its interval ignores that choice)."""
    rng = np.random.default_rng(seed)
    rows: list[CorefRow] = []
    lo_q, hi_q = (1 - level) / 2, 1 - (1 - level) / 2
    for name in ("all", *TYPES):
        sel = np.ones(len(types), bool) if name == "all" else types == TYPES.index(name)
        n = int(sel.sum())
        if n == 0:
            continue
        h, b = hits[sel], base[sel]
        acc = h.mean(0)
        best = np.unravel_index(int(np.argmax(acc)), acc.shape)
        col = h[:, best[0], best[1]].astype(float)
        draws = rng.integers(0, n, size=(samples, n)) if samples else None

        def ci(x: np.ndarray) -> tuple[float, float]:
            if draws is None:
                return (float("nan"), float("nan"))
            means = x[draws].mean(1)
            return float(np.quantile(means, lo_q)), float(np.quantile(means, hi_q))

        rows.append(CorefRow(name, n, acc, (int(best[0]), int(best[1])), ci(col),
                             {bn: float(b[:, k].mean()) for k, bn in enumerate(BASELINES)},
                             {bn: ci(b[:, k].astype(float)) for k, bn in enumerate(BASELINES)}))
    return rows


def state_meta(scorer: CorefScorer) -> dict[str, Any]:
    return {"skipped_unmapped": scorer.skipped_unmapped, "types": list(TYPES), "baselines": list(BASELINES)}
