"""Per-window language-model loss of a causal decoder, under an optional intervention (ablate --metric loss)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from bertsecrets_cli.model.attention import Intervention, model_logits


def token_losses(logits: torch.Tensor, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
    """-> (next-token cross-entropy [B, T-1] in nats, which pairs count [B, T-1]).

    Position t predicts token t + 1; only pairs of two real tokens count (right padding: the real tokens lead).
    """
    ids, mask = batch["input_ids"], batch["attention_mask"].bool()
    target, valid = ids[:, 1:], mask[:, 1:] & mask[:, :-1]
    tok = torch.nn.functional.cross_entropy(logits[:, :-1].float().transpose(1, 2), target, reduction="none")
    return tok * valid, valid


def next_token_loss(logits: torch.Tensor, idx: list[int], batch: dict[str, Any]) -> tuple[torch.Tensor, int]:
    """The batch's summed next-token loss and its number of predicted tokens (``model.sweep.BatchLoss``:
    the loss whose gradient ranks heads by importance for ablate --metric loss)."""
    tok, valid = token_losses(logits, batch)
    return tok.sum(), int(valid.sum())


def window_losses(lm: Any, batches: list[tuple[list[int], dict[str, Any]]], n: int, intervention: Intervention | None = None) -> tuple[np.ndarray, np.ndarray]:
    """-> (summed next-token cross-entropy in nats [n], predicted tokens [n]) per window, in example order."""
    ce = np.zeros(n, dtype=np.float64)
    count = np.zeros(n, dtype=np.int64)
    with torch.inference_mode():
        for idx, batch in batches:
            tok, valid = token_losses(model_logits(lm.model, batch, intervention), batch)
            ce[idx] = tok.sum(-1).double().cpu().numpy()
            count[idx] = valid.sum(-1).cpu().numpy()
    return ce, count


def window_ce(lm: Any, batches: list[tuple[list[int], dict[str, Any]]], n: int, intervention: Intervention | None = None) -> np.ndarray:
    """[n, 1] summed cross-entropy per window: one evaluation of the ablation sweep (``model.sweep.Evaluate``)."""
    return window_losses(lm, batches, n, intervention)[0][:, None]


def predicted_tokens(batches: list[tuple[list[int], dict[str, Any]]], n: int) -> np.ndarray:
    """[n] next-token predictions each window holds (pairs of two real tokens): the same with every intervention."""
    count = np.zeros(n, dtype=np.int64)
    for idx, batch in batches:
        mask = batch["attention_mask"].bool()
        count[idx] = (mask[:, 1:] & mask[:, :-1]).sum(-1).cpu().numpy()
    return count
