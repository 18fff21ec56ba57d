"""Static (input) word-piece embeddings of a loaded model: the table before any attention layer.

The attention probe (analysis/probe.py) lets its per-head weights depend on the two words; Clark et al. used
GloVe vectors, which cannot be downloaded here, so the model's own input embedding table stands in.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def input_embeddings(lm: Any, ids: np.ndarray) -> np.ndarray:
    """float32 [T, D]: the input embedding rows of token ``ids`` (no position or segment embeddings)."""
    import torch

    table = lm.model.get_input_embeddings()
    with torch.no_grad():
        return table(torch.as_tensor(np.asarray(ids, dtype=np.int64), device=table.weight.device)).float().cpu().numpy()


def word_embeddings(lm: Any, ids: np.ndarray, M: np.ndarray) -> np.ndarray:
    """float32 [W, D]: each word's mean piece embedding (M: [W, T] word-piece matrix); zeros for words without pieces."""
    E = input_embeddings(lm, ids)
    n = M.sum(1, keepdims=True)
    return (M @ E) / np.where(n > 0, n, 1.0)
