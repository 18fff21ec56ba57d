"""Per-head summaries of one example's attention (the store's stats/per_example)."""

from __future__ import annotations

import numpy as np

from bertsecrets_cli.model.tokenize import CLS, SEP

EPS = 1e-12


def column_mass(att: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """Mean over query rows of the attention mass on the key columns in ``columns`` (bool [T]).

    [L, H, T, T] -> [L, H]; NaN when no column is selected (the example lacks the token).
    """
    if not columns.any():
        return np.full(att.shape[:2], np.nan, dtype=np.float32)
    return att[..., columns].sum(-1).mean(-1)


def head_stats(att: np.ndarray, special: np.ndarray, punct: np.ndarray) -> np.ndarray:
    """[L, H, T, T] attention of one example -> [L, H, 7] in schema.STAT_NAMES order.

    ``special`` holds the tokenizer-derived kinds (CLS/SEP/...), ``punct`` marks punctuation pieces.
    prev/next are NaN for one-token inputs, where no neighbour exists.
    """
    L, H, T, _ = att.shape
    out = np.empty((L, H, 7), dtype=np.float32)
    out[..., 0] = -(att * np.log(np.maximum(att, EPS))).sum(-1).mean(-1)
    out[..., 1] = column_mass(att, special == CLS)
    out[..., 2] = column_mass(att, special == SEP)
    out[..., 3] = column_mass(att, punct)
    diag = np.diagonal(att, axis1=2, axis2=3)
    out[..., 4] = diag.mean(-1)
    if T > 1:
        out[..., 5] = np.diagonal(att, offset=-1, axis1=2, axis2=3).mean(-1)
        out[..., 6] = np.diagonal(att, offset=1, axis1=2, axis2=3).mean(-1)
    else:
        out[..., 5:] = np.nan
    return out


def batch_head_stats(probs, real, cls, sep, punct):  # type: ignore[no-untyped-def]
    """Batched torch version of :func:`head_stats` for a padded batch (on the model's device).

    probs [B, L, H, T, T]; real/cls/sep/punct bool [B, T]. Returns float32 numpy [B, L, H, 7].
    Padded query rows are excluded; padded key columns hold zero mass already.
    """
    import torch

    B, L, H, T, _ = probs.shape
    p = probs.float()
    rows = real.float()  # [B, T]
    n = rows.sum(-1).clamp_min(1)  # [B]

    def row_mean(x: torch.Tensor, w: torch.Tensor, count: torch.Tensor) -> torch.Tensor:
        # x [B, L, H, t], w [B, t] -> [B, L, H]
        return (x * w[:, None, None, :]).sum(-1) / count[:, None, None]

    def mass(cols: torch.Tensor) -> torch.Tensor:
        m = row_mean((p * cols.float()[:, None, None, None, :]).sum(-1), rows, n)
        return torch.where(cols.any(-1)[:, None, None], m, torch.full_like(m, float("nan")))

    out = torch.empty(B, L, H, 7, dtype=torch.float32, device=p.device)
    out[..., 0] = row_mean(-(p * torch.log(p.clamp_min(EPS))).sum(-1), rows, n)
    out[..., 1] = mass(cls)
    out[..., 2] = mass(sep)
    out[..., 3] = mass(punct)
    out[..., 4] = row_mean(torch.diagonal(p, dim1=-2, dim2=-1), rows, n)
    if T > 1:
        # previous: query i, key i-1 for 1 <= i < n; next: query i, key i+1 for 0 <= i < n-1
        w_prev = rows[:, 1:] * rows[:, :-1]
        cnt = w_prev.sum(-1)
        prev = row_mean(torch.diagonal(p, offset=-1, dim1=-2, dim2=-1), w_prev, cnt.clamp_min(1))
        nxt = row_mean(torch.diagonal(p, offset=1, dim1=-2, dim2=-1), w_prev, cnt.clamp_min(1))
        none = (cnt == 0)[:, None, None]
        out[..., 5] = torch.where(none, torch.full_like(prev, float("nan")), prev)
        out[..., 6] = torch.where(none, torch.full_like(nxt, float("nan")), nxt)
    else:
        out[..., 5:] = float("nan")
    return out.cpu().numpy()


def mean_of_finite(x: np.ndarray) -> float | None:
    """Mean of the finite values of ``x``; None when there is none (an empty category: a blank cell, not NaN and a numpy warning)."""
    v = np.asarray(x, dtype=np.float64)
    v = v[np.isfinite(v)]
    return float(v.mean()) if v.size else None
