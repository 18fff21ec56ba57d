"""The store's per-example head statistics computed on the model's device, for a whole padded batch at once.

The torch twin of :func:`bertsecrets_cli.analysis.stats.head_stats` (which stays pure numpy); extract calls this
one so the attention never leaves the GPU, and tests/test_stats.py proves both agree.
"""

from __future__ import annotations

from bertsecrets_cli.analysis.stats import EPS


def batch_head_stats(probs, real, cls, sep, punct):  # type: ignore[no-untyped-def]
    """Batched torch version of :func:`analysis.stats.head_stats` for a padded batch (on the model's device).

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
