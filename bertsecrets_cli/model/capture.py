"""Extract's consumer of one padded batch's attention, layer by layer, on the model's device.

As each layer's probabilities [B, H, T, T] come out of the softmax (``attention.forward_streaming``),
they are reduced to the per-head statistics (schema.STAT_NAMES) and copied once, converted to the
stored encoding and cropped to each example's length, into one flat buffer; the float32 maps of a
layer are then free. Nothing of size [B, layers, heads, T, T] in float32 is ever built (no stack, no
full-size temporaries: the largest temporary is one reused buffer of one layer's size), and the
buffer crosses to the host in one transfer.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from bertsecrets_cli.model.tokenize import CLS, SEP, Encoded

EPS = 1e-12  # as analysis.stats: log(max(p, EPS))
STORED_DTYPES = {"float16": torch.float16, "float32": torch.float32, "uint8": torch.uint8}


class BatchCapture:
    """Call it with ``(layer, probs [B, H, T, T], key_is_real)`` for every layer, then take ``results()``."""

    def __init__(self, encoded: Sequence[Encoded], n_layers: int, n_heads: int, encoding: str, device: Any) -> None:
        if encoding not in STORED_DTYPES:
            raise ValueError(f"unknown encoding {encoding!r}")
        self.encoding = encoding
        self.L, self.H = n_layers, n_heads
        self.lengths = [e.length for e in encoded]
        B, T = len(encoded), max(self.lengths)
        m = np.zeros((4, B, T), dtype=bool)
        for j, e in enumerate(encoded):
            n = e.length
            m[0, j, :n] = True
            m[1, j, :n] = e.special == CLS
            m[2, j, :n] = e.special == SEP
            m[3, j, :n] = e.punct
        masks = torch.from_numpy(m).to(device)
        self.rows = masks[0].float()  # [B, T] real query rows
        self.n = self.rows.sum(-1).clamp_min(1)[:, None]  # [B, 1]
        self.columns = masks[1:].permute(1, 2, 0).float()  # [B, T, 3]: cls, sep, punct key columns
        self.has_column = masks[1:].any(-1).T[:, None, :]  # [B, 1, 3]
        self.w_prev = self.rows[:, 1:] * self.rows[:, :-1]  # query i with key i-1 (or i+1) both real
        self.n_prev = self.w_prev.sum(-1)[:, None]  # [B, 1]
        self.stats = torch.empty(B, n_layers, n_heads, 7, dtype=torch.float32, device=device)
        sizes = [n_layers * n_heads * t * t for t in self.lengths]
        self.offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        self.flat = torch.empty(int(self.offsets[-1]), dtype=STORED_DTYPES[encoding], device=device)
        # runs of equal length (a length-sorted batch has few): one copy per run and layer, not per example
        self.runs: list[tuple[int, int, int, torch.Tensor]] = []
        j0 = 0
        for j in range(1, B + 1):
            if j == B or self.lengths[j] != self.lengths[j0]:
                t = self.lengths[j0]
                view = self.flat[int(self.offsets[j0]) : int(self.offsets[j])].view(j - j0, n_layers, n_heads, t, t)
                self.runs.append((j0, j, t, view))
                j0 = j
        self.seen = 0

    def __call__(self, layer: int, probs: torch.Tensor, real: torch.Tensor) -> None:
        p = probs.float()  # no copy for a float32 model
        self._statistics(layer, p)
        for j0, j1, t, view in self.runs:
            src = p[j0:j1, :, :t, :t]
            if self.encoding == "uint8":
                src = torch.round(src.clamp(0.0, 1.0) * 255.0)  # as store.writer.encode_values: rint(clip(x) * 255)
            view[:, layer].copy_(src)
        self.seen += 1

    @staticmethod
    def _row_mean(x: torch.Tensor, w: torch.Tensor, count: torch.Tensor) -> torch.Tensor:
        """x [B, H, t] weighted by w [B, t] over t, divided by count [B, 1] -> [B, H]."""
        return (x * w[:, None, :]).sum(-1) / count

    def _statistics(self, layer: int, p: torch.Tensor) -> None:
        """The formulas of analysis.stats.batch_head_stats, one layer at a time: the same float32 values,
        bit for bit (stores stay byte-identical to those of the stacked version), with temporaries of one
        layer's size (one buffer, reused) instead of all layers'."""
        out = self.stats[:, layer]  # [B, H, 7]
        T = p.shape[-1]
        tmp = torch.empty_like(p)
        torch.log(p.clamp_min(EPS), out=tmp)
        out[..., 0] = self._row_mean(-tmp.mul_(p).sum(-1), self.rows, self.n)
        for k in range(3):  # attention mass on the cls, sep and punct key columns
            torch.mul(p, self.columns[:, None, None, :, k], out=tmp)
            m = self._row_mean(tmp.sum(-1), self.rows, self.n)
            out[..., 1 + k] = torch.where(self.has_column[:, :, k], m, torch.full_like(m, float("nan")))
        out[..., 4] = self._row_mean(torch.diagonal(p, dim1=-2, dim2=-1), self.rows, self.n)
        if T > 1:
            count = self.n_prev.clamp_min(1)
            prev = self._row_mean(torch.diagonal(p, offset=-1, dim1=-2, dim2=-1), self.w_prev, count)
            nxt = self._row_mean(torch.diagonal(p, offset=1, dim1=-2, dim2=-1), self.w_prev, count)
            none = self.n_prev == 0
            out[..., 5] = torch.where(none, torch.full_like(prev, float("nan")), prev)
            out[..., 6] = torch.where(none, torch.full_like(nxt, float("nan")), nxt)
        else:
            out[..., 5:] = float("nan")

    def results(self) -> tuple[list[np.ndarray], np.ndarray]:
        """-> (each example's stored maps [L, H, T, T] in the encoding, views of one host buffer; stats float32 [B, L, H, 7])."""
        if self.seen != self.L:
            raise RuntimeError(f"captured {self.seen} layers, expected {self.L}")
        host = self.flat.cpu().numpy()
        maps = [host[int(self.offsets[j]) : int(self.offsets[j + 1])].reshape(self.L, self.H, t, t) for j, t in enumerate(self.lengths)]
        return maps, self.stats.cpu().numpy()
