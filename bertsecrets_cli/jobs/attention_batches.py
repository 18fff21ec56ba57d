"""Attention maps of encoded examples, batch by batch, for commands that score maps on the fly.

Same batching as ``extract`` (sort by length inside windows of 4 batches, so padding stays small while
memory is bounded by the window, not the corpus), but nothing is written: each example's cropped map is
handed to the caller and can be dropped once scored.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from bertsecrets_cli.errors import Interrupted


def iter_attention(lm: Any, encoded: Sequence[Any], batch_size: int, *, description: str = "attention", quiet: bool = False,
                   intervention: Any = None, quantity: str = "weights") -> Iterator[tuple[int, Any, np.ndarray]]:
    """Yield ``(index, Encoded, attention float32 [layers, heads, T, T])`` for every example, in index order.

    ``lm`` is a ``model.load.LoadedModel``; SIGTERM/SIGINT stop between batches with ``Interrupted``.
    ``quantity`` (schema.QUANTITIES) yields those maps instead of the weights: norms from the same
    forward pass, rollout and flow ([layers, 1, T, T]) from the example's weights.
    """
    from bertsecrets_cli.jobs.quantities import batch_extras, needs_norms

    from bertsecrets_cli.jobs.signals import graceful_stop
    from bertsecrets_cli.model import attention
    from bertsecrets_cli.model.tokenize import collate
    from bertsecrets_cli.render.progress import progress

    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    pad = lm.tokenizer.pad_token_id if lm.tokenizer.pad_token_id is not None else 0
    window = 4 * batch_size
    with graceful_stop() as stop, progress(len(encoded), description, quiet=quiet) as advance:
        for w0 in range(0, len(encoded), window):
            order = sorted(range(w0, min(w0 + window, len(encoded))), key=lambda i: encoded[i].length)
            results: dict[int, np.ndarray] = {}
            for b in range(0, len(order), batch_size):
                if stop.requested:
                    raise Interrupted(f"stopped by {stop.signal} after {w0 + b} of {len(encoded)} examples; nothing was written")
                idx = order[b : b + batch_size]
                batch = collate([encoded[i] for i in idx], pad, lm.device, lm.token_types)
                if quantity != "weights":
                    _, probs, norms = attention.forward_with_norms(lm.model, batch, lm.n_layers, intervention, norms=needs_norms([quantity]))
                    extras = batch_extras(probs, norms, [encoded[i] for i in idx], [quantity], stats=False)
                    for j, i in enumerate(idx):
                        results[i] = np.ascontiguousarray(extras[j][quantity][0], dtype=np.float32)
                    advance(len(idx))
                    continue
                # looked up on the module at call time, so tests can plant attention by patching it
                _, probs = attention.forward_with_attention(lm.model, batch, lm.n_layers, intervention)
                probs_np = probs.float().cpu().numpy()
                for j, i in enumerate(idx):
                    T = encoded[i].length
                    results[i] = np.ascontiguousarray(probs_np[j, :, :, :T, :T])
                advance(len(idx))
            for i in sorted(results):
                yield i, encoded[i], results.pop(i)
