"""Clustering heads by behaviour (Clark et al. 2019, sec. 6 / Figure 6): how alike two heads' attention is.

The distance between heads i and j is their Jensen-Shannon divergence row by row, pooled over every query
row (token) of every example, as in the paper (they sum over the tokens of the data; we divide by their
number so stores of any size are comparable). ``measure="js-distance"`` takes the square root of each row's
divergence first (base 2, so in [0, 1]): the mean of metrics is a metric, which MDS and nearest-neighbour
tables read more faithfully. The accumulator keeps only a [K, K] sum and a row count (K = layers x heads),
so memory is flat in the number of examples and shards add exactly.

The 2-D embedding is classical (Torgerson) MDS: deterministic up to the sign of each axis, which is fixed
(largest |coordinate| positive) so the same store always gives the same picture. Any number of layers and
heads (the paper's code hard-coded 144).

``measure="js-smoothed"`` is the measure of Clark et al.'s released code (clarkkev/attention-analysis,
head_distances.py lines 29-38, commit b609cfc): each row is smoothed as ``0.001 / T + 0.999 a`` (T the map's
length), the JS divergence is in natural log, and it is summed over the rows and over the examples (the total,
not divided by anything: ``mean`` returns it as is). Its embedding is metric MDS (jobs/cluster.py ``metric_mds``:
SMACOF from scikit-learn with General_Analysis.ipynb cell 18's settings, n_init=5, max_iter=1000, eps=1e-10, seeded).

Causal decoders (``causal=True``): query row i sees i + 1 keys, and the first row sees only itself, so every
head's first row is the same one-hot and every pair's distance there is 0 by construction: that row is left out
(of the sums and of the row count). The rows after it are kept, each weighing one row as in an encoder, though the
early ones compare distributions over very few positions (row 1: two), where two heads can only differ in how they
split the mass between the first token and themselves.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

MEASURES = ("js-distance", "js-divergence", "js-smoothed")
SMOOTHING = 0.001  # head_distances.py line 31: 0.001 / T + 0.999 a


def _plogp_ratio(p: np.ndarray, m: np.ndarray) -> np.ndarray:
    """sum p log2(p / m) over the last axis, 0 log 0 = 0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(p > 0, p * (np.log2(np.where(p > 0, p, 1.0)) - np.log2(np.where(m > 0, m, 1.0))), 0.0)
    return t.sum(-1)


def pairwise_js_smoothed(P: np.ndarray) -> np.ndarray:
    """[K, T, T] maps of K heads -> [K, K] Clark's summed JS divergence: rows smoothed ``0.001 / T + 0.999 a``
    (not renormalised, as in his code), natural log, summed over every cell."""
    P = np.asarray(P, dtype=np.float64)
    P = SMOOTHING / P.shape[1] + (1.0 - SMOOTHING) * P
    logP = np.log(P)
    K = P.shape[0]
    out = np.zeros((K, K))
    for i in range(K - 1):
        Q, logQ = P[i + 1 :], logP[i + 1 :]
        M = 0.5 * (P[i][None] + Q)
        logM = np.log(M)
        js = 0.5 * (P[i][None] * (logP[i][None] - logM) + Q * (logQ - logM))
        v = js.sum((-1, -2))
        out[i, i + 1 :] = v
        out[i + 1 :, i] = v
    return out


def pairwise_js(P: np.ndarray, measure: str = "js-distance") -> np.ndarray:
    """[K, R, C] row distributions of K heads -> [K, K] sum over the R rows of each pair's per-row JS
    divergence (base 2) or its square root. Rows are renormalised (float16 storage rounds them).
    ``js-smoothed``: Clark's (``pairwise_js_smoothed``)."""
    if measure not in MEASURES:
        raise ValueError(f"measure must be one of {MEASURES}, not {measure!r}")
    if measure == "js-smoothed":
        return pairwise_js_smoothed(P)
    P = np.clip(np.asarray(P, dtype=np.float64), 0.0, None)
    s = P.sum(-1, keepdims=True)
    P = np.divide(P, s, out=np.zeros_like(P), where=s > 0)
    K = P.shape[0]
    out = np.zeros((K, K))
    for i in range(K - 1):
        Q = P[i + 1 :]
        M = 0.5 * (P[i][None] + Q)
        js = np.clip(0.5 * (_plogp_ratio(np.broadcast_to(P[i], Q.shape), M) + _plogp_ratio(Q, M)), 0.0, 1.0)  # [K-i-1, R]
        v = (np.sqrt(js) if measure == "js-distance" else js).sum(-1)
        out[i, i + 1 :] = v
        out[i + 1 :, i] = v
    return out


@dataclass
class HeadDistanceAccumulator:
    """Sums of per-row head distances over examples; ``mean`` is the distance matrix. Shards add exactly."""

    n_layers: int
    n_heads: int
    measure: str = "js-distance"
    causal: bool = False  # lower-triangular maps: the first query row (only itself to see) is left out
    total: np.ndarray = field(init=False)
    rows: int = 0
    examples: int = 0

    def __post_init__(self) -> None:
        K = self.n_layers * self.n_heads
        self.total = np.zeros((K, K))

    def add(self, att: np.ndarray) -> None:
        """One example's maps [L, H, R, C] (pieces or words)."""
        L, H, R, C = att.shape
        if (L, H) != (self.n_layers, self.n_heads):
            raise ValueError(f"maps of {L}x{H} heads, accumulator of {self.n_layers}x{self.n_heads}")
        if self.causal:
            att, R = att[:, :, 1:, :], R - 1
        if R <= 0:
            return
        self.total += pairwise_js(att.reshape(L * H, R, C), self.measure)
        self.rows += R
        self.examples += 1

    def absorb(self, total: np.ndarray, rows: int, examples: int) -> None:
        self.total += total
        self.rows += int(rows)
        self.examples += int(examples)

    def mean(self) -> np.ndarray:
        """The distance matrix: the mean over rows; for ``js-smoothed`` Clark's total (summed, never divided)."""
        if not self.rows:
            return np.full_like(self.total, np.nan)
        return self.total.copy() if self.measure == "js-smoothed" else self.total / self.rows


def classical_mds(D: np.ndarray, dims: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Torgerson MDS of a distance matrix: ([K, dims] coordinates, share of the positive eigenvalue mass
    each axis explains). Signs are fixed so the result is deterministic."""
    D = np.asarray(D, dtype=np.float64)
    K = D.shape[0]
    J = np.eye(K) - 1.0 / K
    B = -0.5 * J @ (D**2) @ J
    vals, vecs = np.linalg.eigh((B + B.T) / 2)
    order = np.argsort(vals)[::-1][:dims]
    lam = np.clip(vals[order], 0.0, None)
    X = vecs[:, order] * np.sqrt(lam)
    for d in range(X.shape[1]):
        j = int(np.argmax(np.abs(X[:, d])))
        if X[j, d] < 0:
            X[:, d] = -X[:, d]
    pos = np.clip(vals, 0.0, None).sum()
    return X, (lam / pos if pos > 0 else np.zeros_like(lam))


def nearest_heads(D: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """([K, k] indices, [K, k] distances) of each head's k nearest other heads (ties: lower index first)."""
    K = D.shape[0]
    k = min(k, K - 1)
    masked = D + np.diag(np.full(K, np.inf))
    idx = np.argsort(masked, axis=1, kind="stable")[:, :k]
    return idx, np.take_along_axis(masked, idx, 1)


def layer_cohesion(D: np.ndarray, n_layers: int, n_heads: int) -> tuple[np.ndarray, np.ndarray]:
    """Per layer: mean distance between two heads of that layer, and from its heads to heads of other layers.
    The paper's observation "heads of the same layer behave alike" is within < between."""
    layer = np.repeat(np.arange(n_layers), n_heads)
    off = ~np.eye(len(layer), dtype=bool)
    within, between = np.full(n_layers, np.nan), np.full(n_layers, np.nan)
    for ly in range(n_layers):
        a = layer == ly
        w = D[np.ix_(a, a)][off[np.ix_(a, a)]]
        b = D[np.ix_(a, ~a)]
        within[ly] = w.mean() if w.size else np.nan
        between[ly] = b.mean() if b.size else np.nan
    return within, between
