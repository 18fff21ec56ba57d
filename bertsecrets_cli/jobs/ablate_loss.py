"""``ablate --metric loss``: disable heads of a causal decoder and measure its language-model loss on a corpus.

The corpus (``--data``: .txt or .jsonl, as ``extract --stride``) is cut into non-overlapping windows of
--max-length tokens; per window the summed next-token cross-entropy (nats) and the number of predicted
tokens are kept. Modes: uniform (over each query's causal prefix), zero, mean (the head's output averaged
over every real token of the windows). loss = sum of cross-entropy / predicted tokens (per token, over the whole corpus),
perplexity = exp(loss). A variant's delta is its loss minus the baseline's (positive: the heads helped the
model), with a 95% paired bootstrap interval over windows (the same resampled windows for baseline and
variant, the ratio recomputed on each resample).
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np

from bertsecrets_cli.errors import InputError, ModelError

LOSS_METRICS = ["loss", "perplexity"]


def _metrics(ce: np.ndarray, count: np.ndarray) -> np.ndarray:
    loss = float(ce.sum() / max(int(count.sum()), 1))
    return np.asarray([loss, float(np.exp(loss))])


def run_loss_ablation(opts, out: str | Path, *, command: str | None = None):  # noqa: ANN001, ANN201 - AblateOptions -> AblationResult
    """Baseline and every planned variant on the corpus' windows; writes the ablation store ``out``."""
    import torch

    from bertsecrets_cli.analysis.ablation import bootstrap_indices
    from bertsecrets_cli.data.windows import window_dataset
    from bertsecrets_cli.jobs.ablate import AblationResult, modes_of, plan_variants, write_ablation
    from bertsecrets_cli.jobs.provenance import provenance_texts, tool_attrs
    from bertsecrets_cli.model.attention import ATTN_IMPLEMENTATION, Intervention
    from bertsecrets_cli.model.lm_loss import window_losses
    from bertsecrets_cli.model.sweep import collect_mean_outputs
    from bertsecrets_cli.model.load import load_model
    from bertsecrets_cli.model.tokenize import collate, encode_examples
    from bertsecrets_cli.render.progress import progress
    from bertsecrets_cli.store.writer import check_output_path

    from bertsecrets_cli.jobs.ablate import _check_syntax
    from bertsecrets_cli.jobs.extract import check_common

    check_common(opts.max_length, opts.batch_size)
    if opts.bootstrap < 0:
        raise InputError(f"--bootstrap {opts.bootstrap}: must be 0 (no intervals) or more resamples")
    _check_syntax(opts)
    if opts.mode not in ("uniform", "zero", "mean"):
        raise InputError(f"--mode {opts.mode}: choose uniform, zero or mean")
    for flag, given in (("--greedy", opts.greedy), ("--importance", opts.importance), ("--shard", opts.shard is not None), ("--resume", opts.resume)):
        if given:
            raise InputError(f"{flag} with --metric loss: not available yet")
    if not opts.data.data:
        raise InputError("--metric loss: pass --data CORPUS (.txt: one document; .jsonl: a 'text' per line)")
    check_output_path(out, force=opts.force)
    lm = load_model(opts.model, device=opts.device, causal_lm=True)
    if not lm.causal:
        raise ModelError(f"--model {lm.name}: model type {lm.model_type!r}: --metric loss needs a causal language model (next-token loss)")
    size = opts.max_length - lm.tokenizer.num_special_tokens_to_add(pair=False)
    ds, windows = window_dataset(opts.data.data, lm.tokenizer, opts.max_length, max(size, 1))
    examples = ds.examples
    n = len(examples)
    enc = encode_examples(lm.tokenizer, [(e.text_a, None) for e in examples], opts.max_length)
    pad = lm.tokenizer.pad_token_id if lm.tokenizer.pad_token_id is not None else 0
    batches = [(list(range(b, min(b + opts.batch_size, n))), collate(enc[b : b + opts.batch_size], pad, lm.device, lm.token_types))
               for b in range(0, n, opts.batch_size)]
    L, H = lm.n_layers, lm.n_heads
    plan = plan_variants(opts, L, H)
    base_ce, count = window_losses(lm, batches, n)
    # mode mean: each head's output vector averaged over every real token of the corpus' windows
    means = collect_mean_outputs(lm, batches) if opts.mode == "mean" else {}
    base = _metrics(base_ce, count)
    idx = bootstrap_indices(n, opts.bootstrap, opts.bootstrap_seed) if opts.bootstrap > 0 else None

    def resampled_loss(ce: np.ndarray) -> np.ndarray:
        return ce[idx].sum(1) / np.maximum(count[idx].sum(1), 1)

    base_r = resampled_loss(base_ce) if idx is not None else None
    V = len(plan)
    metrics, delta = np.zeros((V, 2)), np.zeros((V, 2))
    lo, hi = np.full((V, 2), np.nan), np.full((V, 2), np.nan)
    masks = np.zeros((V, L, H), dtype=bool)
    with progress(V, "ablate (loss)", quiet=opts.quiet) as advance:
        for j, v in enumerate(plan):
            for l, h in v.heads:
                masks[j, l, h] = True
            ce, _ = window_losses(lm, batches, n, Intervention(head_modes=modes_of(v.heads, opts.mode), mean_outputs=means))
            metrics[j] = _metrics(ce, count)
            delta[j] = metrics[j] - base
            if idx is not None:
                d = resampled_loss(ce) - base_r
                lo[j, 0], hi[j, 0] = np.percentile(d, [2.5, 97.5])
                dp = np.exp(resampled_loss(ce)) - np.exp(base_r)
                lo[j, 1], hi[j, 1] = np.percentile(dp, [2.5, 97.5])
            advance(1)
    provenance = {
        **tool_attrs(),
        "model": lm.name, "model_path": lm.path, "model_revision": lm.revision, "model_fingerprint": lm.fingerprint,
        "tokenizer": lm.path, "task": "lm", "data_source": ds.source, "split": ds.split, "is_demo_data": 0,
        "selection": {"n": n, "tokens_predicted": int(count.sum())},
        "attn_implementation": ATTN_IMPLEMENTATION, "max_length": opts.max_length, "device": str(lm.device),
        "torch_threads": torch.get_num_threads(), "metric": "loss",
        "windows": {"document": [w.document for w in windows], "char_start": [w.start for w in windows], "char_end": [w.end for w in windows]},
    }
    result = AblationResult(
        n_layers=L, n_heads=H, mode=opts.mode, task="lm", metric_names=list(LOSS_METRICS), ids=[e.id for e in examples],
        labels=np.zeros(n), base_metrics=base, base_logits=(base_ce / np.maximum(count, 1))[:, None].astype(np.float32),
        names=[v.name for v in plan], kinds=[v.kind for v in plan], index=np.arange(V, dtype=np.int64), n_variants_total=V,
        masks=masks, metrics=metrics, delta=delta, ci_low=lo, ci_high=hi, predictions=None, bootstrap=opts.bootstrap,
        bootstrap_seed=opts.bootstrap_seed, engine="naive",
        model={"model_type": lm.model_type, "name": lm.name, "path": lm.path, "fingerprint": lm.fingerprint, "label_names": []},
        provenance=provenance, texts=provenance_texts({"ablate": asdict(opts)}, command),
    )
    write_ablation(result, out, force=opts.force, locking=opts.locking)
    return result
