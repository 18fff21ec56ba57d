"""Per-head summaries of one example's attention (the store's stats/per_example)."""

from __future__ import annotations

import numpy as np

from bertsecrets_cli.tokens import CLS, SEP

EPS = 1e-12


def column_mass(att: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """Mean over query rows of the attention mass on the key columns in ``columns`` (bool [T]).

    [L, H, T, T] -> [L, H]; NaN when no column is selected (the example lacks the token).
    """
    if not columns.any():
        return np.full(att.shape[:2], np.nan, dtype=np.float32)
    return att[..., columns].sum(-1).mean(-1)


def windowed_column_mass(att: np.ndarray, columns: np.ndarray, window: int) -> np.ndarray:
    """:func:`column_mass` of a local layer [H, T, T] that attends within ``window`` positions: the mean
    over the query rows with a selected column in reach (the others' 0 is masked, not chosen); NaN if none."""
    T = att.shape[-1]
    cols = np.flatnonzero(columns)
    reach = np.array([bool(np.any(np.abs(cols - i) <= window)) for i in range(T)], dtype=bool)
    if not reach.any():
        return np.full(att.shape[:1], np.nan, dtype=np.float32)
    return att[..., columns].sum(-1)[..., reach].mean(-1)


def head_stats(att: np.ndarray, special: np.ndarray, punct: np.ndarray, windows: tuple[int, ...] | np.ndarray = ()) -> np.ndarray:
    """[L, H, T, T] attention of one example -> [L, H, 7] in schema.STAT_NAMES order.

    ``special`` holds the tokenizer-derived kinds (CLS/SEP/...), ``punct`` marks punctuation pieces.
    prev/next are NaN for one-token inputs, where no neighbour exists. ``windows`` (per layer, -1 for
    global attention; the store's attention windows) restricts a local layer's column masses to the
    rows that can reach the column.
    """
    L, H, T, _ = att.shape
    out = np.empty((L, H, 7), dtype=np.float32)
    out[..., 0] = -(att * np.log(np.maximum(att, EPS))).sum(-1).mean(-1)
    out[..., 1] = column_mass(att, special == CLS)
    out[..., 2] = column_mass(att, special == SEP)
    out[..., 3] = column_mass(att, punct)
    for layer, w in enumerate(windows):
        if w >= 0:
            for k, cols in enumerate((special == CLS, special == SEP, punct)):
                out[layer, :, 1 + k] = windowed_column_mass(att[layer], cols, int(w))
    diag = np.diagonal(att, axis1=2, axis2=3)
    out[..., 4] = diag.mean(-1)
    if T > 1:
        out[..., 5] = np.diagonal(att, offset=-1, axis1=2, axis2=3).mean(-1)
        out[..., 6] = np.diagonal(att, offset=1, axis1=2, axis2=3).mean(-1)
    else:
        out[..., 5:] = np.nan
    return out


def mean_of_finite(x: np.ndarray) -> float | None:
    """Mean of the finite values of ``x``; None when there is none (an empty category: a blank cell, not NaN and a numpy warning)."""
    v = np.asarray(x, dtype=np.float64)
    v = v[np.isfinite(v)]
    return float(v.mean()) if v.size else None
