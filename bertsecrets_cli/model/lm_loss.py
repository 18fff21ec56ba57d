"""Per-window language-model loss of a causal decoder, under an optional intervention (ablate --metric loss)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from bertsecrets_cli.model.attention import Intervention, model_logits


def window_losses(lm: Any, batches: list[tuple[list[int], dict[str, Any]]], n: int, intervention: Intervention | None = None) -> tuple[np.ndarray, np.ndarray]:
    """-> (summed next-token cross-entropy in nats [n], predicted tokens [n]) per window, in example order.

    Position t predicts token t + 1; only pairs of two real tokens count (right padding: the real tokens lead).
    """
    ce = np.zeros(n, dtype=np.float64)
    count = np.zeros(n, dtype=np.int64)
    with torch.inference_mode():
        for idx, batch in batches:
            logits = model_logits(lm.model, batch, intervention)
            ids, mask = batch["input_ids"], batch["attention_mask"].bool()
            target, valid = ids[:, 1:], mask[:, 1:] & mask[:, :-1]
            tok = torch.nn.functional.cross_entropy(logits[:, :-1].float().transpose(1, 2), target, reduction="none")
            ce[idx] = (tok * valid).sum(-1).double().cpu().numpy()
            count[idx] = valid.sum(-1).cpu().numpy()
    return ce, count
