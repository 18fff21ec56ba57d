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

from bertsecrets_cli.analysis.stats import EPS  # log(max(p, EPS)), as batch_stats
from bertsecrets_cli.model.batch_stats import rows_in_reach
from bertsecrets_cli.model.device import device_type
from bertsecrets_cli.model.capture_worker import LayerWorker
from bertsecrets_cli.model.tokenize import CLS, SEP, Encoded

STORED_DTYPES = {"float16": torch.float16, "float32": torch.float32, "uint8": torch.uint8}
MAPPED_BYTES = 1 << 20  # host buffers of a batch at least this large are mappings of their own (batch_buffer)


def batch_buffer(shape: tuple[int, ...] | int, dtype: torch.dtype, device: Any) -> torch.Tensor:
    """An uninitialised tensor that lives as long as one batch (the stored maps: until the writer has them).

    On the CPU a large one is an anonymous mapping of its own, returned to the system when the tensor is freed,
    not a block of the C heap: blocks that outlive the forward's temporaries, in sizes that change with every
    batch, fragment the heap (with ``--memory fast``, peak RSS at 1,000 long-tailed examples over 100: 1.14
    with them on the heap, 1.11 without; bertsecrets_cli.host_memory)."""
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    n = int(np.prod(shape, dtype=np.int64))
    nbytes = n * dtype.itemsize
    if device_type(device) != "cpu" or nbytes < MAPPED_BYTES:
        return torch.empty(shape, dtype=dtype, device=device)
    import mmap

    return torch.from_numpy(np.frombuffer(mmap.mmap(-1, nbytes), dtype=np.uint8)).view(dtype).view(shape)

def scratch(shape: tuple[int, ...], device: torch.device) -> torch.Tensor:
    """A float32 work buffer of ``shape`` for the statistics' temporaries, fresh for each use.

    One buffer reused across batches made the statistics depend on the batches computed before in the same
    process: an extract resumed after a kill differed from an uninterrupted one (tests/test_kill_points.py).
    """
    return torch.empty(shape, dtype=torch.float32, device=device)


class BatchCapture:
    """Call it with ``(layer, probs [B, H, T, T], key_is_real)`` for every layer, then take ``results()``."""

    def __init__(self, encoded: Sequence[Encoded], n_layers: int, n_heads: int, encoding: str, device: Any, windows: Sequence[int] = (),
                 maps: str = "full", topk: int = 0, worker: LayerWorker | None = None) -> None:
        """``maps``: full (every map kept), topk (each row's ``topk`` largest stored values, their key positions and the
        row's remaining mass; schema.TOPK_*) or none (statistics only). ``worker``: each layer's work runs there,
        overlapping the forward's next layer (model.capture_worker), instead of in the hook."""
        if encoding not in STORED_DTYPES:
            raise ValueError(f"unknown encoding {encoding!r}")
        if maps not in ("full", "topk", "none") or (maps == "topk" and topk < 1):
            raise ValueError(f"unknown maps mode {maps!r} (k={topk})")
        self.encoding = encoding
        self.mode, self.k = maps, topk
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
        # local (sliding-window) layers: per kind, the real rows that can reach a cls/sep/punct column
        self.reach = {layer: [rows_in_reach(masks[1 + k], masks[0], w) for k in range(3)] for layer, w in enumerate(windows) if w >= 0}
        self.n = self.rows.sum(-1).clamp_min(1)  # [B]
        # the mass on the cls/sep/punct key columns: where every example has at most two such columns
        # (cls and sep nearly always) the masked row sum is exactly the sum of those (at most two) values,
        # gathered; otherwise the masked product is summed as in batch_head_stats
        counts = m[1:].sum(-1).max(-1)  # [3]
        self.gathered = [k for k in range(3) if counts[k] <= 2]
        self.summed = [k for k in range(3) if counts[k] > 2]
        idx = np.zeros((B, 2 * len(self.gathered)), dtype=np.int64)
        val = np.zeros((B, 2 * len(self.gathered)), dtype=np.float32)
        for g, k in enumerate(self.gathered):
            for j in range(B):
                cols = np.flatnonzero(m[1 + k, j])
                idx[j, 2 * g : 2 * g + len(cols)] = cols
                val[j, 2 * g : 2 * g + len(cols)] = 1.0
        self.gather_index = torch.from_numpy(idx).to(device)[:, None, None, :].expand(B, n_heads, T, -1)
        self.gather_valid = torch.from_numpy(val).to(device)[:, None, None, :]
        self.columns_t = masks[1:][self.summed].transpose(0, 1).float()  # [B, k, T]
        self.has_column = masks[1:].any(-1).T  # [B, 3]
        self.w_prev = self.rows[:, 1:] * self.rows[:, :-1]  # query i with key i-1 (or i+1) both real
        # per query row, before the means: entropy, cls, sep, punct, self [B, L, H, 5, T]; previous, next [B, L, H, 2, T-1]
        self.row_values = batch_buffer((B, n_layers, n_heads, 5, T), torch.float32, device)  # every entry is written
        self.neighbour_values = batch_buffer((B, n_layers, n_heads, 2, max(T - 1, 0)), torch.float32, device)
        # what is kept per example: t * t values per map (full), t * min(k, t) (topk), nothing (none)
        per_row = {"full": lambda t: t, "topk": lambda t: min(topk, t), "none": lambda t: 0}[maps]
        sizes = [n_layers * n_heads * t * per_row(t) for t in self.lengths]
        self.offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        self.flat = batch_buffer(int(self.offsets[-1]), STORED_DTYPES[encoding], device)
        # runs of equal length (a length-sorted batch has few): one copy per run and layer, not per example
        self.runs: list[tuple[int, int, int, torch.Tensor]] = []
        j0 = 0
        for j in range(1, B + 1):
            if j == B or self.lengths[j] != self.lengths[j0]:
                t = self.lengths[j0]
                view = self.flat[int(self.offsets[j0]) : int(self.offsets[j])].view(j - j0, n_layers, n_heads, t, per_row(t))
                self.runs.append((j0, j, t, view))
                j0 = j
        if maps == "topk":
            self.index = batch_buffer(int(self.offsets[-1]), torch.int32, device)
            self.rest_offsets = np.concatenate([[0], np.cumsum([n_layers * n_heads * t for t in self.lengths])]).astype(np.int64)
            self.rest = batch_buffer(int(self.rest_offsets[-1]), torch.float32, device)
            self.topk_views = [(self.index[int(self.offsets[j0]) : int(self.offsets[j1])].view(j1 - j0, n_layers, n_heads, t, min(topk, t)),
                                self.rest[int(self.rest_offsets[j0]) : int(self.rest_offsets[j1])].view(j1 - j0, n_layers, n_heads, t))
                               for j0, j1, t, _ in self.runs]
        # topk, none: each example's stored maps kept for this batch too, for the classifier's features (extract's writer)
        self.dense: torch.Tensor | None = None
        if maps != "full":
            full_sizes = [n_layers * n_heads * t * t for t in self.lengths]
            self.dense_offsets = np.concatenate([[0], np.cumsum(full_sizes)]).astype(np.int64)
            self.dense = batch_buffer(int(self.dense_offsets[-1]), STORED_DTYPES[encoding], device)
            self.dense_views = [self.dense[int(self.dense_offsets[j0]) : int(self.dense_offsets[j1])].view(j1 - j0, n_layers, n_heads, t, t)
                                for j0, j1, t, _ in self.runs]
        self.seen = 0
        self.worker = worker
        self._work: dict[str, torch.Tensor] = {}  # this batch's work buffers, reused by its layers (see _buffer)

    def _buffer(self, name: str, shape: tuple[int, ...], device: torch.device) -> torch.Tensor:
        """A float32 work buffer of ``shape`` shared by this batch's layers: one fresh allocation per batch, not per
        layer (a buffer of a megabyte or more may be a fresh mmap, page faults and all: bertsecrets_cli.host_memory). Never
        shared across batches: that made the statistics depend on earlier batches (see :func:`scratch`)."""
        buf = self._work.get(name)
        if buf is None or tuple(buf.shape) != tuple(shape) or buf.device != device:
            buf = self._work[name] = scratch(shape, device)
        return buf

    def __call__(self, layer: int, probs: torch.Tensor, real: torch.Tensor) -> None:
        if self.worker is None:
            self._layer(layer, probs)
        else:
            self.worker.submit(self._layer, layer, probs)

    def _layer(self, layer: int, probs: torch.Tensor) -> None:
        """One layer's statistics and stored copy."""
        p = probs.float()  # no copy for a float32 model
        self._statistics(layer, p)
        for r, (j0, j1, t, view) in enumerate(self.runs):
            src = p[j0:j1, :, :t, :t]
            if self.encoding == "uint8":
                src = torch.round(src.clamp(0.0, 1.0) * 255.0)  # as store.writer.encode_values: rint(clip(x) * 255)
            if self.mode == "full":
                view[:, layer].copy_(src)
                continue
            self.dense_views[r][:, layer].copy_(src)
            if self.mode == "none":
                continue
            # top-k of the values as stored (so they equal a full store's values there), largest first and, among
            # equal values, the lower key position first: position 0 is then the full map's np.argmax
            stored = src.to(STORED_DTYPES[self.encoding]).float()
            k = min(self.k, t)
            values, order = torch.sort(stored, dim=-1, descending=True, stable=True)
            index, rest = self.topk_views[r]
            view[:, layer].copy_(values[..., :k])
            index[:, layer].copy_(order[..., :k])
            kept = torch.gather(p[j0:j1, :, :t, :t], -1, order[..., :k]).sum(-1)
            rest[:, layer].copy_((1.0 - kept).clamp_min_(0.0))
        self.seen += 1

    def _statistics(self, layer: int, p: torch.Tensor) -> None:
        """Per query row: entropy, mass on cls/sep/punct columns, self, previous, next -> into the row buffers.

        The formulas of model.batch_stats.batch_head_stats, so the float32 values are the same bit for bit
        (stores stay byte-identical to the stacked version's); the means over query rows wait for
        ``results``, where they run once per batch: few, small operations per layer, which is what
        counts on a busy CPU, and temporaries of at most one layer's size (the masses of columns that
        are more than two per example: that many).
        """
        rows = self.row_values[:, layer]  # [B, H, 5, T]
        tmp = self._buffer("entropy", tuple(p.shape), p.device)
        torch.clamp_min(p, EPS, out=tmp)
        rows[:, :, 0] = tmp.log_().mul_(p).sum(-1).neg_()
        if self.gathered:
            g = torch.gather(p, -1, self.gather_index).mul_(self.gather_valid)  # [B, H, T, 2k]; x1 and x0 are exact
            for i, k in enumerate(self.gathered):
                rows[:, :, 1 + k] = g[..., 2 * i] + g[..., 2 * i + 1]
        if self.summed:
            B, H, T, _ = p.shape
            prod = self._buffer("columns", (B, H, T, len(self.summed), T), p.device)
            dense = torch.mul(p[:, :, :, None, :], self.columns_t[:, None, None], out=prod).sum(-1)  # [B, H, T, k]
            for i, k in enumerate(self.summed):
                rows[:, :, 1 + k] = dense[..., i]
        rows[:, :, 4] = torch.diagonal(p, dim1=-2, dim2=-1)
        if p.shape[-1] > 1:
            nb = self.neighbour_values[:, layer]  # [B, H, 2, T-1]
            nb[:, :, 0] = torch.diagonal(p, offset=-1, dim1=-2, dim2=-1)
            nb[:, :, 1] = torch.diagonal(p, offset=1, dim1=-2, dim2=-1)

    def results(self) -> tuple[list[Any], np.ndarray]:
        """-> (per example: its stored maps [L, H, T, T] in the encoding (full), the tuple (key positions uint16 [L, H, T, K'],
        values [L, H, T, K'], remaining mass float32 [L, H, T]) (topk), or None (none), views of host buffers;
        stats float32 [B, L, H, 7])."""
        if self.worker is not None:
            self.worker.wait()
        if self.seen != self.L:
            raise RuntimeError(f"captured {self.seen} layers, expected {self.L}")
        self._work.clear()
        stats = torch.empty(*self.row_values.shape[:3], 7, dtype=torch.float32, device=self.rows.device)
        # means over real query rows, as batch_head_stats: (x * w).sum(-1) / count
        stats[..., :5] = (self.row_values * self.rows[:, None, None, None, :]).sum(-1) / self.n[:, None, None, None]
        nan = torch.tensor(float("nan"), device=stats.device)
        stats[..., 1:4] = torch.where(self.has_column[:, None, None, :], stats[..., 1:4], nan)
        for layer, reach in self.reach.items():  # a local layer: rows out of a column's reach are masked there, not 0
            for k, vis in enumerate(reach):
                cnt = vis.sum(-1)  # [B]
                m = (self.row_values[:, layer, :, 1 + k] * vis[:, None, :]).sum(-1) / cnt.clamp_min(1)[:, None]
                stats[:, layer, :, 1 + k] = torch.where((cnt == 0)[:, None], nan, m)
        if self.neighbour_values.shape[-1]:
            count = self.w_prev.sum(-1)
            nb = (self.neighbour_values * self.w_prev[:, None, None, None, :]).sum(-1) / count.clamp_min(1)[:, None, None, None]
            stats[..., 5:] = torch.where((count == 0)[:, None, None, None], nan, nb)
        else:
            stats[..., 5:] = nan
        if self.mode == "none":
            return [None] * len(self.lengths), stats.cpu().numpy()
        host = self.flat.cpu().numpy()
        if self.mode == "full":
            maps = [host[int(self.offsets[j]) : int(self.offsets[j + 1])].reshape(self.L, self.H, t, t) for j, t in enumerate(self.lengths)]
            return maps, stats.cpu().numpy()
        index = self.index.cpu().numpy().astype(np.uint16)
        rest = self.rest.cpu().numpy()
        out: list[Any] = []
        for j, t in enumerate(self.lengths):
            a, b = int(self.offsets[j]), int(self.offsets[j + 1])
            shape = (self.L, self.H, t, min(self.k, t))
            out.append((index[a:b].reshape(shape), host[a:b].reshape(shape),
                        rest[int(self.rest_offsets[j]) : int(self.rest_offsets[j + 1])].reshape(self.L, self.H, t)))
        return out, stats.cpu().numpy()

    def stored_maps(self) -> list[np.ndarray] | None:
        """topk, none: each example's maps [L, H, T, T] as a full store would hold them (encoded), for this batch only; full: None."""
        if self.dense is None:
            return None
        host = self.dense.cpu().numpy()
        return [host[int(self.dense_offsets[j]) : int(self.dense_offsets[j + 1])].reshape(self.L, self.H, t, t) for j, t in enumerate(self.lengths)]
