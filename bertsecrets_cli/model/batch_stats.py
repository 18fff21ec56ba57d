"""The store's per-example head statistics computed on the model's device, for a whole padded batch at once.

The torch twin of :func:`bertsecrets_cli.analysis.stats.head_stats` (which stays pure numpy); extract calls this
one so the attention never leaves the GPU, and tests/test_stats.py proves both agree.
"""

from __future__ import annotations

from bertsecrets_cli.analysis.stats import EPS


def rows_in_reach(columns, rows, window: int):  # type: ignore[no-untyped-def]
    """float [B, T]: real query rows with at least one of ``columns`` (bool [B, T]) within ``window`` positions.

    A local (sliding-window) layer cannot attend to a column farther away: such a row's 0 on it is
    masked, not chosen, and it is left out of the column's mean (``window`` < 0: every real row).
    """
    import torch

    if window < 0:
        return rows.float()
    T = columns.shape[-1]
    c = torch.nn.functional.pad(columns.long().cumsum(-1), (1, 0))  # c[:, i] = columns before i
    i = torch.arange(T, device=columns.device)
    hi = (i + window + 1).clamp_max(T)
    lo = (i - window).clamp_min(0)
    near = (c[:, hi] - c[:, lo]) > 0
    return (near & rows.bool()).float()


def batch_head_stats(probs, real, cls, sep, punct, windows=()):  # type: ignore[no-untyped-def]
    """Batched torch version of :func:`analysis.stats.head_stats` for a padded batch (on the model's device).

    probs [B, L, H, T, T]; real/cls/sep/punct bool [B, T]. Returns float32 numpy [B, L, H, 7].
    Padded query rows are excluded; padded key columns hold zero mass already. ``windows`` (per layer,
    -1 global) leaves out of a local layer's [CLS]/[SEP]/punctuation means the rows that cannot reach them.
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
    for layer, w in enumerate(windows):
        if w >= 0:
            for k, cols in enumerate((cls, sep, punct)):
                vis = rows_in_reach(cols, real, w)
                cnt = vis.sum(-1)
                m = row_mean((p[:, layer : layer + 1] * cols.float()[:, None, None, None, :]).sum(-1), vis, cnt.clamp_min(1))[:, 0]
                out[:, layer, :, 1 + k] = torch.where((cnt == 0)[:, None], torch.full_like(m, float("nan")), m)
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
