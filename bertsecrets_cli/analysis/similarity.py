"""How much two models' attention maps on the same input differ, per head (Kovaleva et al. 2019, sec. 4.3).

The paper compares each head's pretrained and fine-tuned maps by the cosine similarity of the flattened
maps, averaged over examples. Maps here are cropped to the example's real length: padding never enters.
The authors' code placed every map in a 200x200 canvas instead (:func:`head_cosine_padded`); zero padding
leaves a cosine unchanged, so the two agree except where a map is longer than the canvas (it is then cut)
or where the caller's maps still hold padding rows, which is what the authors' padded batches gave them.

Cosine only says whether two maps point the same way; the Jensen-Shannon divergence of each query row's
two distributions (base 2, so 0 = identical and 1 = disjoint supports) says how far apart the rows are
as probability distributions, and is symmetric and finite where KL divergence is not.

Everything works on any leading shape: ``[..., T, T]`` -> ``[...]`` (usually ``[layers, heads]``).
"""

from __future__ import annotations

import numpy as np

AUTHORS_CANVAS = 200  # the authors' padded map size


def _check(a: np.ndarray, b: np.ndarray) -> None:
    if a.shape != b.shape:
        raise ValueError(f"maps differ in shape: {a.shape} vs {b.shape}")


def head_cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine similarity of the flattened ``[T, T]`` maps, per leading index; NaN where a map is all zeros."""
    _check(a, b)
    dot = np.einsum("...ij,...ij->...", a, b).astype(np.float64)
    na = np.einsum("...ij,...ij->...", a, a).astype(np.float64)
    nb = np.einsum("...ij,...ij->...", b, b).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        cos = dot / (np.sqrt(na) * np.sqrt(nb))
    return np.clip(cos, -1.0, 1.0)


def pad_maps(a: np.ndarray, size: int = AUTHORS_CANVAS) -> np.ndarray:
    """Place ``[..., T, T]`` maps in the top-left corner of a zero ``[..., size, size]`` canvas (cut if T > size)."""
    n = min(a.shape[-1], size)
    out = np.zeros((*a.shape[:-2], size, size), dtype=a.dtype)
    out[..., :n, :n] = a[..., :n, :n]
    return out


def head_cosine_padded(a: np.ndarray, b: np.ndarray, size: int = AUTHORS_CANVAS) -> np.ndarray:
    """The authors' variant: cosine of the maps after :func:`pad_maps` to ``size`` x ``size``."""
    _check(a, b)
    n = min(a.shape[-1], size)
    # zeros add nothing to a dot product or a norm: cutting is all the canvas changes, so skip building it
    return head_cosine(a[..., :n, :n], b[..., :n, :n])


def _sum_plogp(p: np.ndarray, scratch: np.ndarray) -> np.ndarray:
    """sum over the last two axes of p * log2(p), with 0 log 0 = 0; ``scratch`` is a buffer like p."""
    np.maximum(p, np.finfo(p.dtype).tiny, out=scratch)
    np.log2(scratch, out=scratch)
    return np.einsum("...ij,...ij->...", p, scratch).astype(np.float64)


def head_js_divergence(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Mean over query rows of the Jensen-Shannon divergence (bits) of matching rows: ``[..., T, T]`` -> ``[...]``.

    JS(p, q) = H(m) - (H(p) + H(q)) / 2 with m = (p + q) / 2: three entropies instead of two KL terms, so
    zeros need no masking, and since only the mean over rows is wanted the entropies are summed over the
    whole map at once. Identical maps give exactly 0.
    """
    _check(a, b)
    dt = np.float64 if np.result_type(a, b) == np.float64 else np.float32
    a, b = np.asarray(a, dtype=dt), np.asarray(b, dtype=dt)
    scratch = np.empty_like(a)
    m = np.add(a, b)
    m *= a.dtype.type(0.5)
    js = (0.5 * (_sum_plogp(a, scratch) + _sum_plogp(b, scratch)) - _sum_plogp(m, scratch)) / a.shape[-2]
    return np.clip(js, 0.0, 1.0)  # rounding can leave -1e-9 where rows agree


def row_js_divergence(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Jensen-Shannon divergence (bits) of each pair of matching rows: ``[..., T, K]`` -> ``[..., T]``."""
    _check(a, b)
    m = 0.5 * (a + b)
    tiny = np.finfo(np.result_type(a, np.float32)).tiny

    def plogp(p: np.ndarray) -> np.ndarray:
        return (p * np.log2(np.maximum(p, tiny))).sum(-1)

    return np.clip(0.5 * (plogp(a) + plogp(b)) - plogp(m), 0.0, 1.0)


def layer_means(values: np.ndarray) -> np.ndarray:
    """[layers, heads] -> [layers], ignoring NaN heads (the per-layer summary under the paper's Fig. 5)."""
    out = np.full(values.shape[0], np.nan)
    for i, row in enumerate(values):
        ok = np.isfinite(row)
        if ok.any():
            out[i] = float(row[ok].mean())
    return out


def rank_heads(values: np.ndarray, *, top: int | None = None, ascending: bool = False, by_abs: bool = False,
               layer: int | None = None) -> list[tuple[int, int, float]]:
    """Heads ordered by value: [(layer, head, value)], 0-based, NaN heads left out.

    ``ascending`` puts the lowest first (the most changed heads by cosine); ``by_abs`` orders by
    magnitude (differences, ablation deltas); ``layer`` keeps one layer. Ties keep layer-major order.
    """
    L, H = values.shape
    cells = [(li, h, float(values[li, h])) for li in range(L) for h in range(H)
             if (layer is None or li == layer) and np.isfinite(values[li, h])]
    key = (lambda c: abs(c[2])) if by_abs else (lambda c: c[2])
    cells.sort(key=key, reverse=not ascending)
    return cells if top is None or top <= 0 else cells[:top]
