"""``ablate --metric loss``: disable heads of a causal decoder and measure its language-model loss on a corpus.

The corpus (``--data``: .txt or .jsonl, as ``extract --stride``) is cut into non-overlapping windows of
--max-length tokens; per window the summed next-token cross-entropy (nats) and the number of predicted
tokens are kept. Modes: uniform (over each query's causal prefix), zero, mean (the head's output averaged
over every real token of the windows). loss = sum of cross-entropy / predicted tokens (per token, over the whole corpus),
perplexity = exp(loss). A variant's delta is its loss minus the baseline's (positive: the heads helped the
model), with a 95% paired bootstrap interval over windows (the same resampled windows for baseline and
variant, the ratio recomputed on each resample).

Everything else is the task metric's machinery (``jobs.ablate``), with the loss as the metric and lower
better: the variant plan and ``--shard`` slices, the checkpoint and ``--resume`` (units: variants), the
greedy search (each step takes the head whose removal lowers the loss most) and Michel et al.'s gradient
importance (|d loss / d gate| of the summed next-token loss, divided by the predicted tokens).
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np

from bertsecrets_cli.errors import InputError, Interrupted, ModelError

LOSS_METRICS = ["loss", "perplexity"]


def _metrics(ce: np.ndarray, count: np.ndarray) -> np.ndarray:
    loss = float(ce.sum() / max(int(count.sum()), 1))
    return np.asarray([loss, float(np.exp(loss))])


class LossScorer:
    """The loss and perplexity of per-window summed cross-entropies, and paired bootstrap deltas over windows
    (the task scorer's interface, ``jobs.ablate._Scorer``: a variant's "predictions" are its windows' losses)."""

    lower_better = True

    def __init__(self, count: np.ndarray, n_resamples: int, seed: int) -> None:
        from bertsecrets_cli.analysis.ablation import bootstrap_indices

        self.count = count
        self.idx = bootstrap_indices(len(count), n_resamples, seed) if n_resamples > 0 else None

    def score(self, out: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        ce = np.asarray(out, dtype=np.float64).reshape(-1)
        return ce, _metrics(ce, self.count)

    def _resampled(self, ce: np.ndarray) -> np.ndarray:
        return ce[self.idx].sum(1) / np.maximum(self.count[self.idx].sum(1), 1)

    def deltas(self, base_ce: np.ndarray, ces: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """[V, 2] delta, ci_low, ci_high of loss and perplexity (NaN intervals without resamples)."""
        V = len(ces)
        base = _metrics(base_ce, self.count)
        d = np.zeros((V, 2))
        lo, hi = np.full((V, 2), np.nan), np.full((V, 2), np.nan)
        base_r = self._resampled(base_ce) if self.idx is not None else None
        for j in range(V):
            d[j] = _metrics(ces[j], self.count) - base
            if base_r is not None:
                r = self._resampled(ces[j])
                lo[j, 0], hi[j, 0] = np.percentile(r - base_r, [2.5, 97.5])
                lo[j, 1], hi[j, 1] = np.percentile(np.exp(r) - np.exp(base_r), [2.5, 97.5])
        return d, lo, hi


def run_loss_ablation(opts, out: str | Path, *, command: str | None = None):  # noqa: ANN001, ANN201 - AblateOptions -> AblationResult
    """Baseline and every planned variant (of this shard) on the corpus' windows; writes the ablation store ``out``."""
    import torch

    from bertsecrets_cli.data.windows import window_dataset
    from bertsecrets_cli.jobs.ablate import (AblationResult, _after_sweep, _check_syntax, modes_of, open_checkpoint, plan_variants, refuse_pending,
                                             resolve_shard, shard_range, write_result)
    from bertsecrets_cli.jobs.extract import check_common
    from bertsecrets_cli.jobs.provenance import provenance_texts, tool_attrs
    from bertsecrets_cli.jobs.signals import graceful_stop
    from bertsecrets_cli.model.attention import ATTN_IMPLEMENTATION
    from bertsecrets_cli.model.lm_loss import next_token_loss, predicted_tokens, window_ce
    from bertsecrets_cli.model.load import load_model
    from bertsecrets_cli.model.sweep import collect_mean_outputs, sweep_logits
    from bertsecrets_cli.model.tokenize import collate, encode_examples
    from bertsecrets_cli.render.console import info
    from bertsecrets_cli.render.progress import reporter
    from bertsecrets_cli.store.writer import check_output_path

    check_common(opts.max_length, opts.batch_size)
    if opts.bootstrap < 0:
        raise InputError(f"--bootstrap {opts.bootstrap}: must be 0 (no intervals) or more resamples")
    if opts.greedy_steps is not None and opts.greedy_steps < 1:
        raise InputError(f"--greedy-steps {opts.greedy_steps}: must be at least 1")
    _check_syntax(opts)
    if opts.mode not in ("uniform", "zero", "mean"):
        raise InputError(f"--mode {opts.mode}: choose uniform, zero or mean")
    if opts.engine == "fast":
        raise InputError("--engine fast: the fast engine knows classifier heads only; --metric loss runs one full evaluation per variant (auto or naive)")
    shard = resolve_shard(opts.shard)
    if shard is not None and opts.greedy:
        raise InputError("--greedy is a sequential search and cannot be split with --shard; run it in one job")
    if not opts.data.data:
        raise InputError("--metric loss: pass --data CORPUS (.txt: one document; .jsonl: a 'text' per line)")
    check_output_path(out, force=opts.force)
    refuse_pending(opts, out)
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
    start, end = shard_range(len(plan), shard)
    mine = plan[start:end]
    if shard is not None:
        info(f"shard {shard[0]}/{shard[1]}: variants {start}..{end - 1} of {len(plan)}")
    count = predicted_tokens(batches, n)
    scorer = LossScorer(count, opts.bootstrap, opts.bootstrap_seed)
    # mode mean: each head's output vector averaged over every real token of the corpus' windows
    means = collect_mean_outputs(lm, batches) if opts.mode == "mean" else None
    ckpt, state = open_checkpoint(opts, out, lm, ds, [e.id for e in examples], shard, len(mine))
    try:
        with graceful_stop() as stop:
            res = sweep_logits(lm, batches, n, [modes_of(v.heads, opts.mode) for v in mine], mean_outputs=means, progress=reporter(opts.quiet),
                               desc=f"ablate (loss) {len(mine)} variants", stop=stop, state=state, on_unit=ckpt.progress, evaluate=window_ce)
            parts = _after_sweep(opts, lm, batches, n, mine, res, scorer, next_token_loss, means, shard, stop, evaluate=window_ce)
    except Interrupted as e:
        raise Interrupted(f"{out}: {e}; {ckpt.save_latest()}") from None
    base_ce, base, _, metrics, delta, lo, hi, greedy, importance, raw = parts
    V = len(mine)
    masks = np.zeros((V, L, H), dtype=bool)
    for j, v in enumerate(mine):
        for l, h in v.heads:
            masks[j, l, h] = True
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
        names=[v.name for v in mine], kinds=[v.kind for v in mine], index=np.arange(start, end, dtype=np.int64), n_variants_total=len(plan),
        masks=masks, metrics=np.asarray(metrics).reshape(V, len(LOSS_METRICS)), delta=delta, ci_low=lo, ci_high=hi, predictions=None,
        bootstrap=opts.bootstrap, bootstrap_seed=opts.bootstrap_seed, engine=res.engine,
        model={"model_type": lm.model_type, "name": lm.name, "path": lm.path, "fingerprint": lm.fingerprint, "label_names": []},
        provenance=provenance, texts=provenance_texts({"ablate": asdict(opts)}, command),
        importance=importance, importance_raw=raw, greedy=greedy, shard=shard,
    )
    return write_result(result, opts, out, ckpt)
