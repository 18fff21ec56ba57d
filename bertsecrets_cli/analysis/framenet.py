"""Frame-semantic relation heads (Kovaleva et al. 2019, section 4.2): selection of links and per-head scores.

A *link* joins a frame-evoking target (the lexical unit) and one of its frame elements (FE) in a sentence.
Character spans become word pieces through the tokenizer's offset mapping, never by string search.
The paper's selection is every threshold a parameter: core FEs only, sentences of at most 12 tokens, FE
spans of at most 3 tokens, link ends at least 2 tokens apart. "Tokens" are word pieces of the model's
tokenizer without [CLS]/[SEP] (the authors tokenised with BERT's tokenizer), and the distance of a link is
the smallest gap between one of its FE pieces and one of its target pieces.

At word level (``--units words``) every index is a word unit instead (analysis/wordlevel.py: special tokens
alone, words split at white space and punctuation): the maps are converted with Clark et al.'s rule first,
the sizes count words, and the same selection and scorer run unchanged on the word maps.

A head's score for a link is the maximum attention over the link's piece pairs, taken in each direction
separately: FE -> target (query row = FE piece, key column = target piece: the authors' direction) and
target -> FE. Scores are averaged over links. ``first_pair`` reproduces the authors' code, which paired
pieces with ``zip(fe_tokens, target_tokens)``, usually a single pair, instead of all pairs.

Baselines, per head, computed from the same maps:
* *same distance*: the link moved as a whole to a random other place in the same sentence (same span
  sizes, same distance between the ends), ``samples`` draws per link. The mean over links of one draw per
  link is one sample of what the score would be for random positions; the 99th percentile of those
  samples is the head's own significance threshold (a head whose score merely reflects positional habits
  does not pass it).
* *fixed offset*: the target replaced by the pieces at a fixed offset ``k`` from the FE's first piece
  (keeping the target's shape), for every ``k`` within ``max_offset`` whose pretend link is at least
  ``min_distance`` apart, like the selected links; the best offset's score is kept.
The paper's own flag is "above the 99th percentile of all heads' scores"; both flags are reported.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

CORE_DEFINITIONS = ("coretype", "coreset")


@dataclass
class SelectionOptions:
    """The paper's filters; ``None`` (or 0 from the CLI) switches a size limit off."""

    max_sentence_tokens: int | None = 12
    max_fe_tokens: int | None = 3
    min_distance: int = 2
    core_only: bool = True
    core_definition: str = "coretype"
    unit: str = "tokens"  # what the sizes count: "tokens" (word pieces) or "words" (--units words)

    def __post_init__(self) -> None:
        if self.max_sentence_tokens is not None and self.max_sentence_tokens < 1:
            self.max_sentence_tokens = None
        if self.max_fe_tokens is not None and self.max_fe_tokens < 1:
            self.max_fe_tokens = None
        if self.min_distance < 0:
            raise ValueError("min_distance must be >= 0")
        if self.core_definition not in CORE_DEFINITIONS:
            raise ValueError(f"core_definition must be one of {CORE_DEFINITIONS}")


@dataclass(frozen=True)
class Candidate:
    """A link as annotated, before any filter (character spans, end inclusive)."""

    frame: str
    lu: str
    fe: str
    core: bool
    fe_span: tuple[int, int]
    target_spans: tuple[tuple[int, int], ...]


@dataclass
class Link:
    """A selected link: word-piece indices into its sentence's encoding (with [CLS] at 0)."""

    frame: str
    lu: str
    fe: str
    fe_pieces: np.ndarray
    target_pieces: np.ndarray
    distance: int
    fe_span: tuple[int, int]
    target_spans: tuple[tuple[int, int], ...]
    sentence: int = -1  # index of the selected sentence, set by the caller

    def key(self) -> tuple:
        return (self.frame, self.fe, tuple(self.fe_pieces.tolist()), tuple(self.target_pieces.tolist()))


def pieces_for_span(offsets: np.ndarray, special: np.ndarray, start: int, end: int, text: str | None = None) -> np.ndarray | None:
    """Indices of the word pieces overlapping characters ``start..end`` (``end`` INCLUSIVE, as in FrameNet).

    None when no piece overlaps, or when the span runs past the last piece (the input was truncated) and
    the uncovered part is more than white space.
    """
    real = (special == 0) & (offsets[:, 1] > offsets[:, 0])
    if not real.any():
        return None
    stop = end + 1
    hit = real & (offsets[:, 0] < stop) & (offsets[:, 1] > start)
    if not hit.any():
        return None
    covered_end = int(offsets[real, 1].max())
    if stop > covered_end and (text is None or text[covered_end:stop].strip()):
        return None
    return np.flatnonzero(hit)


def link_distance(a: np.ndarray, b: np.ndarray) -> int:
    """Smallest gap between a piece of ``a`` and a piece of ``b`` (0 when they overlap)."""
    return int(np.abs(a[:, None] - b[None, :]).min())


class SelectionCounts:
    """Sentences and links surviving each filter, in the order applied."""

    def __init__(self) -> None:
        self.steps: list[str] = []
        self.sentences: Counter[str] = Counter()
        self.links: Counter[str] = Counter()

    def record(self, step: str, n_links: int) -> None:
        if step not in self.steps:
            self.steps.append(step)
        if n_links:
            self.sentences[step] += 1
            self.links[step] += n_links

    def set(self, step: str, n_sentences: int, n_links: int) -> None:
        if step not in self.steps:
            self.steps.append(step)
        self.sentences[step], self.links[step] = n_sentences, n_links

    def rows(self) -> list[tuple[str, int, int]]:
        return [(s, self.sentences[s], self.links[s]) for s in self.steps]


def step_names(opts: SelectionOptions) -> list[str]:
    """The filter names, in order; the counts table always shows every step."""
    return [
        "annotated FE links",
        f"core FEs ({opts.core_definition})" if opts.core_only else "all FEs (--all-fes)",
        f"sentence <= {opts.max_sentence_tokens} {opts.unit}" if opts.max_sentence_tokens else "sentence length (no limit)",
        "spans found in the tokenisation",
        f"FE span <= {opts.max_fe_tokens} {opts.unit}" if opts.max_fe_tokens else "FE span length (no limit)",
        f"ends >= {opts.min_distance} {opts.unit} apart",
    ]


def select_links(candidates: list[Candidate], offsets: np.ndarray, special: np.ndarray, text: str, opts: SelectionOptions,
                 counts: SelectionCounts) -> list[Link]:
    """Apply the filters to one sentence's candidate links, recording what survives each step."""
    names = step_names(opts)
    for n in names:
        if n not in counts.steps:
            counts.steps.append(n)
    counts.record(names[0], len(candidates))
    kept = [c for c in candidates if c.core] if opts.core_only else list(candidates)
    counts.record(names[1], len(kept))
    n_tokens = int(((special == 0) & (offsets[:, 1] > offsets[:, 0])).sum())
    if opts.max_sentence_tokens is not None and n_tokens > opts.max_sentence_tokens:
        kept = []
    counts.record(names[2], len(kept))
    mapped: list[Link] = []
    for c in kept:
        fe = pieces_for_span(offsets, special, *c.fe_span, text)
        parts = [pieces_for_span(offsets, special, s, e, text) for s, e in c.target_spans]
        if fe is None or any(p is None for p in parts):
            continue
        target = np.unique(np.concatenate(parts))
        mapped.append(Link(c.frame, c.lu, c.fe, fe, target, link_distance(fe, target), c.fe_span, c.target_spans))
    counts.record(names[3], len(mapped))
    if opts.max_fe_tokens is not None:
        mapped = [lk for lk in mapped if len(lk.fe_pieces) <= opts.max_fe_tokens]
    counts.record(names[4], len(mapped))
    mapped = [lk for lk in mapped if lk.distance >= opts.min_distance]
    counts.record(names[5], len(mapped))
    return mapped


# -------------------------------------------------------------------------------------------------
# scoring


def link_pairs(fe: np.ndarray, target: np.ndarray, first_pair: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(FE pieces, target pieces) of the pairs a link is scored over: all pairs, or the authors' zip pairs."""
    if first_pair:
        n = min(len(fe), len(target))
        return fe[:n], target[:n]
    return np.repeat(fe, len(target)), np.tile(target, len(fe))


def pair_max(att: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """[L, H, T, T] -> [L, H]: the largest attention from a row piece to its paired column piece."""
    return att[:, :, rows, cols].max(-1)


def real_bounds(special: np.ndarray) -> tuple[int, int]:
    """First and last index of the sentence's own pieces (special tokens excluded)."""
    idx = np.flatnonzero(special == 0)
    return (int(idx[0]), int(idx[-1])) if len(idx) else (0, -1)


def offsets_for(max_offset: int) -> np.ndarray:
    return np.array([k for k in range(-max_offset, max_offset + 1) if k != 0], dtype=np.int64)


@dataclass
class FrameNetResult:
    """Per-head results ([layers, heads] arrays) and the facts needed to explain them."""

    fe_to_target: np.ndarray
    target_to_fe: np.ndarray
    same_distance: dict[str, np.ndarray]  # direction -> mean baseline
    same_distance_p99: dict[str, np.ndarray]  # direction -> 99th percentile of the baseline's draws
    offset_best: dict[str, np.ndarray]  # direction -> best fixed-offset score
    offset_best_k: dict[str, np.ndarray]  # direction -> that offset (pieces from the FE's first piece)
    best_link: dict[str, np.ndarray]  # direction -> index of the link with the head's highest score
    best_value: dict[str, np.ndarray]
    n_links: int
    n_links_baseline: int  # links that could be moved elsewhere in their sentence
    samples: int
    first_pair: bool

    def scores(self, direction: str) -> np.ndarray:
        return self.fe_to_target if direction == "fe_to_target" else self.target_to_fe

    def above_heads_p99(self, direction: str, q: float = 99.0) -> np.ndarray:
        """The paper's flag: heads whose score exceeds the ``q``-th percentile of all heads' scores."""
        v = self.scores(direction)
        return v > np.nanpercentile(v, q)

    def above_baseline_p99(self, direction: str) -> np.ndarray:
        """Heads whose score exceeds the 99th percentile of their own same-distance baseline."""
        with np.errstate(invalid="ignore"):
            return self.scores(direction) > self.same_distance_p99[direction]

    def strongest_baseline(self, direction: str) -> tuple[np.ndarray, np.ndarray]:
        """Per head, the larger of its same-distance p99 and its best fixed-offset score, and which it is
        (0 = same-distance p99, 1 = fixed offset; NaN baselines count as absent)."""
        p99 = np.nan_to_num(self.same_distance_p99[direction], nan=-np.inf)
        off = np.nan_to_num(self.offset_best[direction], nan=-np.inf)
        which = (off > p99).astype(np.int8)
        best = np.maximum(p99, off)
        return np.where(np.isfinite(best), best, np.nan), which

    def beats_baseline(self, direction: str) -> np.ndarray:
        """Heads whose score exceeds their strongest baseline: position alone does not explain them."""
        best, _ = self.strongest_baseline(direction)
        with np.errstate(invalid="ignore"):
            return self.scores(direction) > np.nan_to_num(best, nan=-np.inf)


DIRECTIONS = ("fe_to_target", "target_to_fe")
# below this many links a head's mean moves by more than 0.01 with one link, and the ranking of the top
# heads is not stable; the paper's selection kept 473 sentences
MIN_LINKS = 100


@dataclass
class FrameNetScorer:
    """Accumulates per-head link scores sentence by sentence, so no attention map is kept."""

    n_layers: int
    n_heads: int
    first_pair: bool = False
    samples: int = 100
    max_offset: int = 5
    min_distance: int = 0  # offsets that bring the pretend target closer than this are not baselines
    seed: int = 0
    n_links: int = 0
    n_links_baseline: int = 0

    def __post_init__(self) -> None:
        L, H = self.n_layers, self.n_heads
        self._offsets = offsets_for(self.max_offset)
        self._sum = {d: np.zeros((L, H)) for d in DIRECTIONS}
        self._null = {d: np.zeros((max(self.samples, 1), L, H)) for d in DIRECTIONS}
        self._off_sum = {d: np.zeros((len(self._offsets), L, H)) for d in DIRECTIONS}
        self._off_n = np.zeros(len(self._offsets), dtype=np.int64)
        self._best = {d: np.full((L, H), -np.inf) for d in DIRECTIONS}
        self._best_idx = {d: np.full((L, H), -1, dtype=np.int64) for d in DIRECTIONS}

    def add(self, att: np.ndarray, links: list[Link], special: np.ndarray, link_ids: list[int] | None = None) -> None:
        """Score one sentence's links on its attention ``att`` [L, H, T, T] (T = its encoded length)."""
        lo, hi = real_bounds(special)
        ids = link_ids if link_ids is not None else list(range(self.n_links, self.n_links + len(links)))
        for lk, lid in zip(links, ids):
            q, k = link_pairs(lk.fe_pieces, lk.target_pieces, self.first_pair)
            for d, (rows, cols) in zip(DIRECTIONS, ((q, k), (k, q))):
                v = pair_max(att, rows, cols)
                self._sum[d] += v
                better = v > self._best[d]
                self._best[d][better] = v[better]
                self._best_idx[d][better] = lid
            self.n_links += 1
            self._add_same_distance(att, lk, q, k, lo, hi, lid)
            self._add_offsets(att, lk, lo, hi)

    def _add_same_distance(self, att: np.ndarray, lk: Link, q: np.ndarray, k: np.ndarray, lo: int, hi: int, lid: int) -> None:
        if self.samples < 1:
            return
        ends = np.concatenate([lk.fe_pieces, lk.target_pieces])
        shifts = np.arange(lo - int(ends.min()), hi - int(ends.max()) + 1)
        shifts = shifts[shifts != 0]
        if not len(shifts):
            return
        # one generator per link, seeded by (seed, link id): the draws do not depend on which links came
        # before, so shards of the link list draw exactly what one run over all links draws
        s = np.random.default_rng([self.seed, lid]).choice(shifts, size=self.samples)
        for d, (rows, cols) in zip(DIRECTIONS, ((q, k), (k, q))):
            v = att[:, :, rows[None, :] + s[:, None], cols[None, :] + s[:, None]].max(-1)  # [L, H, S]
            self._null[d] += np.moveaxis(v, -1, 0)
        self.n_links_baseline += 1

    def _add_offsets(self, att: np.ndarray, lk: Link, lo: int, hi: int) -> None:
        fe, shape = lk.fe_pieces, lk.target_pieces - lk.target_pieces[0]
        for j, off in enumerate(self._offsets):
            tgt = shape + fe[0] + off
            if tgt.min() < lo or tgt.max() > hi or link_distance(fe, tgt) < max(self.min_distance, 1):
                continue
            q, k = link_pairs(fe, tgt, self.first_pair)
            for d, (rows, cols) in zip(DIRECTIONS, ((q, k), (k, q))):
                self._off_sum[d][j] += pair_max(att, rows, cols)
            self._off_n[j] += 1

    def state(self) -> dict[str, np.ndarray]:
        """Everything ``result`` needs, as arrays: stored with the results so shards can be joined (``absorb``)."""
        out = {"n_links": np.array(self.n_links), "n_links_baseline": np.array(self.n_links_baseline), "offset_n": self._off_n.copy()}
        for d in DIRECTIONS:
            out[f"sum_{d}"], out[f"null_{d}"], out[f"offset_sum_{d}"] = self._sum[d], self._null[d], self._off_sum[d]
            out[f"best_{d}"], out[f"best_link_{d}"] = self._best[d], self._best_idx[d]
        return out

    def absorb(self, state: dict[str, np.ndarray]) -> None:
        """Add a later shard's ``state`` (shards in order: on a tie the earlier link stays best, as in one pass)."""
        self.n_links += int(state["n_links"])
        self.n_links_baseline += int(state["n_links_baseline"])
        self._off_n += np.asarray(state["offset_n"], dtype=np.int64)
        for d in DIRECTIONS:
            self._sum[d] += state[f"sum_{d}"]
            self._null[d] += state[f"null_{d}"]
            self._off_sum[d] += state[f"offset_sum_{d}"]
            better = state[f"best_{d}"] > self._best[d]
            self._best[d][better] = state[f"best_{d}"][better]
            self._best_idx[d][better] = state[f"best_link_{d}"][better]

    def result(self) -> FrameNetResult:
        n = max(self.n_links, 1)
        nan = np.full((self.n_layers, self.n_heads), np.nan)
        mean = {d: self._sum[d] / n if self.n_links else nan.copy() for d in DIRECTIONS}
        same, p99, off_best, off_k = {}, {}, {}, {}
        for d in DIRECTIONS:
            if self.n_links_baseline and self.samples >= 1:
                draws = self._null[d] / self.n_links_baseline  # [S, L, H]: one baseline mean per draw
                same[d], p99[d] = draws.mean(0), np.percentile(draws, 99, axis=0)
            else:
                same[d], p99[d] = nan.copy(), nan.copy()
            ok = self._off_n > 0
            if ok.any():
                per_k = self._off_sum[d][ok] / self._off_n[ok][:, None, None]
                best = per_k.argmax(0)
                off_best[d] = np.take_along_axis(per_k, best[None], 0)[0]
                off_k[d] = self._offsets[ok][best].astype(np.float64)
            else:
                off_best[d], off_k[d] = nan.copy(), nan.copy()
        return FrameNetResult(mean["fe_to_target"], mean["target_to_fe"], same, p99, off_best, off_k,
                              {d: self._best_idx[d].copy() for d in DIRECTIONS}, {d: self._best[d].copy() for d in DIRECTIONS},
                              self.n_links, self.n_links_baseline, self.samples, self.first_pair)


def causal_reach(links: list[tuple[np.ndarray, np.ndarray]], first_pair: bool = False) -> dict[str, int]:
    """Causal maps: per direction, how many of the (FE pieces, target pieces) links have at least one pair whose key is
    not in the query's future (column <= row). The others score exactly 0 in that direction; they stay in the mean,
    as they stay in the same-distance baseline, which moves a link whole and so keeps its order."""
    out = dict.fromkeys(DIRECTIONS, 0)
    for fe, target in links:
        q, k = link_pairs(np.asarray(fe), np.asarray(target), first_pair)
        out["fe_to_target"] += int((k <= q).any())
        out["target_to_fe"] += int((q <= k).any())
    return out


def rank_heads(values: np.ndarray) -> list[tuple[int, int]]:
    """(layer, head) pairs, 0-based, best first; NaN last."""
    flat = np.where(np.isnan(values), -np.inf, values).reshape(-1)
    order = np.argsort(-flat, kind="stable")
    H = values.shape[1]
    return [(int(i // H), int(i % H)) for i in order]
