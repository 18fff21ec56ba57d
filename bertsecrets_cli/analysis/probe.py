"""The attention probe (Clark et al. 2019, sec. 6): predict each word's syntactic head from all heads' attention.

For a dependent word i and a candidate head j of its sentence, the score is a weighted sum of every head's
word-level attention in both directions, ``s_ij = sum_k w_k A_k[i, j] + u_k A_k[j, i]`` and p(j | i) is a
softmax over the sentence's other words (the "attention-only" probe). The "attention + words" probe lets
each head's weights depend on the two words: ``w_k + a_k . e_i + b_k . e_j`` (and the same for ``u_k``), with
``e`` the word's static input embedding reduced to a few principal components on the training set; the
paper used GloVe vectors, we use the model's own input embeddings (no download).

Training is full-batch L-BFGS (scipy) on the cross-entropy of the gold heads with an L2 penalty: a convex
problem for the attention-only probe, so the result does not depend on a seed. Memory holds the features
of every (dependent, candidate) pair once, as float32: 4 bytes x 2 x layers x heads x sum of W (W - 1) over
sentences (bert-base, 3,000 sentences of 20 words: 1.3 GB); training makes no copy of it (the word-dependent
weights enter as ``(X @ a) . e``, never as a pairs x features product).
Two definitions (``--definition``, analysis/definitions.py):

``ours``: root words have no head word and are neither trained on nor scored; a word's candidates are the
sentence's other words; scores are unlabeled attachment scores (UAS) over all other words, punctuation included.

``authors`` follows Clark et al.'s released probe (clarkkev/attention-analysis, Syntax_Analysis.ipynb cell 14,
commit b609cfc): the maps span [CLS] + words + [SEP]; every word is trained on and its candidates are ROOT and
every word of the sentence, itself included (``attn_maps[:, 1:-1, 1:-1]`` keeps the diagonal); ROOT's feature
is each map's attention to [CLS] and to [SEP] (``root_features``), in both directions (the transposed maps give
attention from [CLS]/[SEP] to the word); UAS skips words whose relation is ``punct`` ("it is standard to
ignore punct"). One difference stays, and the README says so: Clark learns two scalars ``ROOT_start`` and
``ROOT_end`` that weigh [CLS] against [SEP]; here ROOT's feature is their sum with both fixed at 1, so training
stays convex (and full-batch L-BFGS, where he ran one epoch of Adam with batch size 1).

On a causal decoder's maps (``ours`` only: ``authors`` needs [CLS] and [SEP] around the words) a word sees only
itself and earlier words, so of each pair's two features per head one is structurally 0: ``A[i, j]`` when the
candidate j comes after the dependent i, ``A[j, i]`` when it comes before. The probe still sees every pair through
the other feature: "dependent -> head" weights read governors that come first, "head -> dependent" weights
governors that come later, and a single feature can only find the governors on its own side.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class ProbeData:
    """Pairs of (dependent, candidate) for many sentences, flattened: rows of sentence s's dependent i are
    ``offsets[q] : offsets[q + 1]`` for its q-th scored dependent."""

    features: np.ndarray  # float32 [P, F]: every head's attention i->j, then j->i
    dep_emb: np.ndarray  # float32 [P, d] the dependent's reduced embedding (d may be 0)
    cand_emb: np.ndarray  # float32 [P, d] the candidate's
    offsets: np.ndarray  # int64 [Q + 1] candidate rows per scored dependent
    gold: np.ndarray  # int64 [Q] index of the gold head's row, within its dependent's rows
    right: np.ndarray  # bool [Q] the right-branching baseline is right (head = next word; the last word: previous)
    scored: np.ndarray | None = None  # bool [Q] dependents UAS counts (None: all; authors: not punct)

    def scored_mask(self) -> np.ndarray:
        return np.ones(len(self.gold), bool) if self.scored is None else self.scored


ROOT = -1  # the candidate index of ROOT (authors' definition); its embedding is zeros, as Clark's dummy


def pair_features(word_att: np.ndarray, heads: list[int | None], deprels: list[str] | None = None, *,
                  definition: str = "ours") -> tuple[np.ndarray, ...]:
    """One sentence: word attention and 1-based governors -> (features [P, F], dependent word [P], candidate
    word [P] (ROOT = -1), rows per dependent [Q], gold row [Q], right-branching hit [Q], scored [Q]).

    ``ours``: ``word_att`` is [L, H, W, W] over the words. ``authors``: [L, H, W + 2, W + 2] over [CLS], the
    words and [SEP] (Clark's word-level maps); ``deprels`` then decide which dependents UAS counts."""
    L, H, N, _ = word_att.shape
    authors = definition == "authors"
    W = N - 2 if authors else N
    A = np.nan_to_num(word_att.reshape(L * H, N, N), nan=0.0)
    if authors:
        root = np.concatenate([A[:, 1:-1, 0] + A[:, 1:-1, -1], A[:, 0, 1:-1] + A[:, -1, 1:-1]], axis=0)  # [2K, W]
        A = A[:, 1:-1, 1:-1]
    feats, dep, cand, counts, gold, right, scored = [], [], [], [], [], [], []
    for i, g in enumerate(heads):
        if g is None or (not authors and (g == 0 or W < 2)):
            continue
        if authors:  # ROOT first, then every word, the word itself included
            cands = np.concatenate([[ROOT], np.arange(W)])
            f = np.concatenate([root[:, i : i + 1], np.concatenate([A[:, i, :], A[:, :, i]], axis=0)], axis=1).T
            gold.append(0 if g == 0 else g)
            scored.append(deprels is None or deprels[i] != "punct")
        else:
            cands = np.array([j for j in range(W) if j != i])
            f = np.concatenate([A[:, i, cands], A[:, cands, i]], axis=0).T  # [W-1, 2K]
            gold.append(int(np.nonzero(cands == g - 1)[0][0]))
            scored.append(True)
        feats.append(f)
        dep.append(np.full(len(cands), i))
        cand.append(cands)
        counts.append(len(cands))
        rb = i + 1 if i + 1 < W else i - 1
        right.append(rb == g - 1)
    F = 2 * L * H
    ints = (lambda xs: np.concatenate(xs).astype(np.int64) if xs else np.zeros(0, np.int64))
    return (np.concatenate(feats).astype(np.float32) if feats else np.zeros((0, F), np.float32), ints(dep), ints(cand),
            np.asarray(counts, np.int64), np.asarray(gold, np.int64), np.asarray(right, bool), np.asarray(scored, bool))


def stack(parts: list[tuple[np.ndarray, ...]], n_words: list[int], emb: np.ndarray | None = None) -> ProbeData:
    """Many sentences' ``pair_features`` (with each sentence's word count) -> one ProbeData; ``emb``
    [sum of words, d] are the words' reduced embeddings, in sentence order (None: no embeddings); ROOT's is 0."""
    starts = np.concatenate([[0], np.cumsum(n_words)[:-1]]).astype(np.int64)
    total = int(sum(n_words))
    counts = np.concatenate([p[3] for p in parts])
    dep = np.concatenate([p[1] + s0 for p, s0 in zip(parts, starts)])
    cand = np.concatenate([np.where(p[2] == ROOT, total, p[2] + s0) for p, s0 in zip(parts, starts)])
    e = emb if emb is not None else np.zeros((total, 0), np.float32)
    e = np.concatenate([e, np.zeros((1, e.shape[1]), e.dtype)])  # row ``total``: ROOT
    return ProbeData(np.concatenate([p[0] for p in parts]), e[dep].astype(np.float32), e[cand].astype(np.float32),
                     np.concatenate([[0], np.cumsum(counts)]).astype(np.int64), np.concatenate([p[4] for p in parts]),
                     np.concatenate([p[5] for p in parts]), np.concatenate([p[6] for p in parts]))


def reduce_embeddings(train: np.ndarray, dims: int) -> tuple[np.ndarray, np.ndarray]:
    """(mean, [D, dims] principal axes scaled to unit variance) of training word embeddings [N, D]."""
    mu = train.mean(0)
    X = train - mu
    _, s, vt = np.linalg.svd(X, full_matrices=False)
    k = min(dims, vt.shape[0])
    scale = s[:k] / np.sqrt(max(1, len(X) - 1))
    axes = vt[:k].T / np.where(scale > 0, scale, 1.0)
    return mu, axes


@dataclass
class Probe:
    """Trained weights: ``w`` [F] per feature, ``a``/``b`` [F, d] their dependence on the two words."""

    w: np.ndarray
    a: np.ndarray
    b: np.ndarray
    iterations: int = 0
    loss: float = float("nan")
    history: list[float] = field(default_factory=list)

    def scores(self, data: ProbeData) -> np.ndarray:
        return _scores(data, self.w, self.a, self.b)


def _segment_softmax(s: np.ndarray, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per dependent (rows offsets[q]:offsets[q+1]): probabilities and log-normaliser."""
    seg = np.repeat(np.arange(len(offsets) - 1), np.diff(offsets))
    mx = np.full(len(offsets) - 1, -np.inf)
    np.maximum.at(mx, seg, s)
    e = np.exp(s - mx[seg])
    z = np.bincount(seg, weights=e, minlength=len(offsets) - 1)
    return e / z[seg], mx + np.log(z)


def _scores(data: ProbeData, w: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """s_p = X_p . w + sum_d e_dep[p, d] (X_p . a[:, d]) + sum_d e_cand[p, d] (X_p . b[:, d]), float64."""
    X = data.features
    s = (X @ w.astype(np.float32)).astype(np.float64)
    if a.shape[1]:
        s += np.einsum("pd,pd->p", (X @ a.astype(np.float32)).astype(np.float64), data.dep_emb)
        s += np.einsum("pd,pd->p", (X @ b.astype(np.float32)).astype(np.float64), data.cand_emb)
    return s


def train_probe(data: ProbeData, *, embeddings: bool, l2: float = 1e-3, max_iter: int = 300) -> Probe:
    """Fit the probe by L-BFGS on the mean cross-entropy of the gold heads plus ``l2`` * |weights|^2."""
    from scipy.optimize import minimize

    F = data.features.shape[1]
    d = data.dep_emb.shape[1] if embeddings else 0
    Q = len(data.gold)
    gold_rows = data.offsets[:-1] + data.gold
    X = data.features  # float32, never copied
    De, Ce = data.dep_emb.astype(np.float64), data.cand_emb.astype(np.float64)

    def unpack(theta: np.ndarray) -> Probe:
        return Probe(theta[:F], theta[F : F + F * d].reshape(F, d), theta[F + F * d :].reshape(F, d))

    history: list[float] = []

    def fg(theta: np.ndarray) -> tuple[float, np.ndarray]:
        p = unpack(theta)
        s = _scores(data, p.w, p.a, p.b) if d else (X @ p.w.astype(np.float32)).astype(np.float64)
        prob, lse = _segment_softmax(s, data.offsets)
        loss = float((lse - s[gold_rows]).mean()) + l2 * float(theta @ theta)
        r = prob.copy()
        r[gold_rows] -= 1.0
        r /= Q
        grads = [(X.T @ r.astype(np.float32)).astype(np.float64)]
        if d:  # d/da[f, k] = sum_p r_p X[p, f] e_dep[p, k]
            grads += [(X.T @ (r[:, None] * De).astype(np.float32)).astype(np.float64).reshape(-1),
                      (X.T @ (r[:, None] * Ce).astype(np.float32)).astype(np.float64).reshape(-1)]
        history.append(loss)
        return loss, np.concatenate(grads) + 2 * l2 * theta

    theta0 = np.zeros(F + 2 * F * d)
    res = minimize(fg, theta0, jac=True, method="L-BFGS-B", options={"maxiter": max_iter})
    out = unpack(res.x)
    out.iterations, out.loss, out.history = int(res.nit), float(res.fun), history
    return out


def uas(probe: Probe, data: ProbeData) -> float:
    """Share of dependents whose highest-scoring candidate is the gold head."""
    mask = data.scored_mask()
    if not mask.any():
        return float("nan")
    s = probe.scores(data)
    seg = np.repeat(np.arange(len(data.gold)), np.diff(data.offsets))
    best = np.full(len(data.gold), -np.inf)
    np.maximum.at(best, seg, s)
    gold_s = s[data.offsets[:-1] + data.gold]
    # ties count against the probe: the gold head must be the unique maximum (a zero probe scores 0)
    ties = np.bincount(seg, weights=(s >= best[seg]).astype(float), minlength=len(data.gold))
    return float(np.mean(((gold_s >= best) & (ties == 1))[mask]))


def single_feature_uas(data: ProbeData) -> np.ndarray:
    """[F] UAS of predicting each dependent's head as the candidate with the largest value of one feature."""
    F = data.features.shape[1]
    out = np.zeros(F)
    for f in range(F):
        w = np.zeros(F)
        w[f] = 1.0
        out[f] = uas(Probe(w, np.zeros((F, 0)), np.zeros((F, 0))), data)
    return out
