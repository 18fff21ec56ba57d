"""Pure bookkeeping for ablation: paired bootstrap intervals, greedy search, Michel-style importance.

The paper's single-head gains are at most 1.2 points and often 0.1-0.2, inside seed-to-seed noise.
A paired bootstrap (resample the evaluation examples, score baseline and variant on the SAME resample)
gives each delta an interval; a delta whose 95% interval covers 0 is flagged as noise.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

MetricFn = Callable[[np.ndarray, np.ndarray], float]


def bootstrap_indices(n: int, n_resamples: int, seed: int) -> np.ndarray:
    """[R, n] example indices drawn with replacement; shared by every variant (paired), seeded."""
    rng = np.random.default_rng(seed)
    dtype = np.int32 if n < 2**31 else np.int64
    return rng.integers(0, n, size=(n_resamples, n), dtype=dtype)


def _rank_rows(x: np.ndarray) -> np.ndarray:
    from scipy.stats import rankdata

    return rankdata(x, axis=1)  # average ranks for ties, as scipy.stats.spearmanr


def _corr_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson r of each row pair; NaN where either row is constant (as analysis.metrics)."""
    a = a - a.mean(1, keepdims=True)
    b = b - b.mean(1, keepdims=True)
    sa, sb = np.sqrt((a * a).sum(1)), np.sqrt((b * b).sum(1))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (a * b).sum(1) / (sa * sb)
    r[(sa <= 1e-12 * np.sqrt(a.shape[1])) | (sb <= 1e-12 * np.sqrt(a.shape[1]))] = np.nan
    return np.clip(r, -1.0, 1.0)


def _vectorised(name: str, pred: np.ndarray, gold: np.ndarray, idx: np.ndarray) -> np.ndarray | None:
    """The metric on every resample at once, for the task metrics we know; None for others."""
    p, g = pred[idx], gold[idx]
    if name == "accuracy":
        return (p == g).mean(1)
    if name in ("f1", "mcc"):
        pp, gg = p == 1, g == 1
        tp = (pp & gg).sum(1).astype(np.float64)
        fp = (pp & ~gg).sum(1).astype(np.float64)
        fn = (~pp & gg).sum(1).astype(np.float64)
        if name == "f1":
            denom = 2 * tp + fp + fn
            return np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0)
        tn = (~pp & ~gg).sum(1).astype(np.float64)
        denom = np.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
        return np.divide(tp * tn - fp * fn, denom, out=np.zeros_like(tp), where=denom > 0)
    if name == "pearson":
        return _corr_rows(p.astype(np.float64), g.astype(np.float64))
    if name == "spearman":
        return _corr_rows(_rank_rows(p), _rank_rows(g))
    return None


def metric_on_resamples(name: str, metric: MetricFn, pred: np.ndarray, gold: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """[R] values of ``metric`` on each resample ``idx[r]``.

    Known task metrics are vectorised; the vectorised value on the full data must equal ``metric``
    (the task's own function) or the slow exact loop is used, so the two can never silently differ.
    """
    pred, gold = np.asarray(pred), np.asarray(gold)
    fast = _vectorised(name, pred, gold, idx)
    if fast is not None:
        ident = _vectorised(name, pred, gold, np.arange(len(gold))[None])[0]
        ref = metric(pred, gold)
        if (np.isnan(ident) and np.isnan(ref)) or abs(ident - ref) <= 1e-9:
            return fast
    return np.asarray([metric(pred[i], gold[i]) for i in idx], dtype=np.float64)


@dataclass
class DeltaCI:
    delta: np.ndarray  # [V] variant - baseline on the full data
    low: np.ndarray  # [V] 2.5th percentile of the paired bootstrap deltas
    high: np.ndarray  # [V] 97.5th percentile


def paired_bootstrap(name: str, metric: MetricFn, base_pred: np.ndarray, variant_preds: np.ndarray, gold: np.ndarray,
                     idx: np.ndarray | None, level: float = 0.95) -> DeltaCI:
    """Deltas of ``metric`` (variant - baseline) and their paired bootstrap percentile intervals.

    ``idx`` from :func:`bootstrap_indices` (None or zero resamples: intervals are NaN).
    """
    variant_preds = np.asarray(variant_preds)
    V = variant_preds.shape[0]
    base_full = metric(np.asarray(base_pred), np.asarray(gold))
    delta = np.asarray([metric(variant_preds[j], gold) - base_full for j in range(V)], dtype=np.float64)
    if idx is None or len(idx) == 0:
        return DeltaCI(delta, np.full(V, np.nan), np.full(V, np.nan))
    base_r = metric_on_resamples(name, metric, base_pred, gold, idx)
    lo_q, hi_q = 100 * (1 - level) / 2, 100 * (1 + level) / 2
    low, high = np.full(V, np.nan), np.full(V, np.nan)
    for j in range(V):
        d = metric_on_resamples(name, metric, variant_preds[j], gold, idx) - base_r
        d = d[~np.isnan(d)]
        if len(d):
            low[j], high[j] = np.percentile(d, [lo_q, hi_q])
    return DeltaCI(delta, low, high)


def is_noise(low: float, high: float) -> bool:
    """True when the interval covers 0 (or is unknown): the delta may be noise."""
    return not (np.isfinite(low) and np.isfinite(high)) or (low <= 0.0 <= high)


def covers_zero(low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """Bool array: the 95% interval [low, high] is known and includes 0 (the cells a grid marks 'noise?')."""
    low, high = np.asarray(low, dtype=float), np.asarray(high, dtype=float)
    with np.errstate(invalid="ignore"):
        return np.isfinite(low) & np.isfinite(high) & (low <= 0.0) & (high >= 0.0)


def normalise_importance(raw: np.ndarray, exponent: float = 2.0) -> np.ndarray:
    """Michel et al.: divide each layer's head importances by their L-``exponent`` norm."""
    raw = np.abs(np.asarray(raw, dtype=np.float64))
    norm = np.power(np.power(raw, exponent).sum(-1, keepdims=True), 1.0 / exponent)
    return raw / (norm + 1e-20)


def head_grid(kinds: list[str], masks: np.ndarray, values: np.ndarray) -> np.ndarray:
    """[L, H] values of the single-head variants (NaN for heads not evaluated alone).

    ``masks`` [V, L, H] bool: which heads each variant disables; ``kinds`` names each variant.
    """
    V, L, H = masks.shape
    grid = np.full((L, H), np.nan)
    for j in range(V):
        if kinds[j] == "head":
            (l,), (h,) = np.nonzero(masks[j].any(1))[0], np.nonzero(masks[j].any(0))[0]
            grid[l, h] = values[j]
    return grid


def layer_vector(kinds: list[str], masks: np.ndarray, values: np.ndarray) -> np.ndarray:
    """[L] values of the single-layer variants (NaN where not evaluated)."""
    V, L, _ = masks.shape
    out = np.full(L, np.nan)
    for j in range(V):
        if kinds[j] == "layer":
            (l,) = np.nonzero(masks[j].any(1))[0]
            out[l] = values[j]
    return out


@dataclass
class GreedyStep:
    head: tuple[int, int]  # the head disabled at this step, 0-based
    score: float  # main metric with every head so far disabled
    gain: float  # improvement over the previous score: score - previous (a loss: previous - score)


@dataclass
class GreedyPath:
    """The greedy search's record: start score, each step, and why it stopped.

    ``lower_better``: the score is a loss (ablate --metric loss), so the head whose removal lowers it most is taken.
    """

    start: float
    steps: list[GreedyStep] = field(default_factory=list)
    stopped: str = ""
    lower_better: bool = False

    @property
    def disabled(self) -> list[tuple[int, int]]:
        return [s.head for s in self.steps]

    @property
    def score(self) -> float:
        return self.steps[-1].score if self.steps else self.start

    def choose(self, candidates: list[tuple[int, int]], scores: np.ndarray) -> tuple[int, int] | None:
        """Take the candidate whose removal helps most; None (and record why) when none helps.

        Ties go to the first candidate in the given order (layer-major), so runs are reproducible.
        """
        scores = np.asarray(scores, dtype=np.float64)
        ok = ~np.isnan(scores)
        if not len(candidates) or not ok.any():
            self.stopped = "no heads left to disable" if not len(candidates) else "no candidate could be scored"
            return None
        sign = -1.0 if self.lower_better else 1.0  # a loss: the lowest score is the best
        best = int(np.nanargmax(sign * scores))
        if not sign * scores[best] > sign * self.score:
            self.stopped = (f"no single further head lowers the loss ({scores[best]:.4f} >= {self.score:.4f})" if self.lower_better
                            else f"no single further head improves the score ({scores[best]:.4f} <= {self.score:.4f})")
            return None
        self.steps.append(GreedyStep(candidates[best], float(scores[best]), float(sign * (scores[best] - self.score))))
        return candidates[best]
