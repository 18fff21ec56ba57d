"""``merge`` of patterns stores: shards of ``classify run`` (or classify run on each extract shard) joined into one."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bertsecrets_cli.analysis import patterns as P
from bertsecrets_cli.analysis.token_features import TOKEN_FEATURES
from bertsecrets_cli.jobs.classifiers import ClassifierInfo
from bertsecrets_cli.jobs.classify import ClassifyResult, put_heads, result_tables, token_tables


def combine_patterns(paths: list[str], out: str | Path, *, force: bool = False, locking: bool | None = None,
                     command: str | None = None) -> ClassifyResult:
    """Join the patterns stores of ``classify --shard i/n`` (or of classify run on each extract shard) into one.

    Labels, features and token attention are concatenated; counts, shares, majorities and token means are
    recomputed from them, so the result equals one unsharded run (token means to float rounding).
    """
    from bertsecrets_cli.store import StoreWriter
    from bertsecrets_cli.store.merge import merged_provenance, open_shards, order_shards
    from bertsecrets_cli.store.reader import iter_pattern_blocks
    from bertsecrets_cli.store.writer import G_PATTERNS, PATTERN_DATASETS, copy_model_from, put_pattern_shares

    outp, stores = open_shards(paths, out, "patterns", force=force, locking=locking)
    try:
        ordered = order_shards(stores, ("job_fingerprint",), shards_only=True)
        first, prov = ordered[0], ordered[0].provenance()
        L, H = first.n_layers, first.n_heads
        cinfo = ClassifierInfo(str(prov.get("classifier", "")), str(prov.get("classifier_kind", "")), float(prov.get("classifier_score", float("nan"))),
                               str(prov.get("classifier_score_text", "")), str(prov.get("classifier_file", "")), str(prov.get("classifier_sha256", "")))
        C, K = len(P.CLASSES), len(TOKEN_FEATURES)
        counts = np.zeros((L, H, C), dtype=np.int64)
        tok_sum = np.zeros((L, H, K))
        tok_n = np.zeros(K, dtype=np.int64)
        for st in ordered:
            for lab, tok in iter_pattern_blocks(st):
                for c in range(C):
                    counts[..., c] += (lab == c).sum(0)
                present = ~np.isnan(tok[:, 0, 0, :])  # [B, K]: the example has such a token
                tok_sum += np.where(present[:, None, None, :], tok, 0.0).sum(0, dtype=np.float64)
                tok_n += present.sum(0)
        n = int(sum(st.n_examples for st in ordered))
        two = int(sum(int(st.provenance().get("two_sentence_examples", 0)) for st in ordered))
        with np.errstate(invalid="ignore", divide="ignore"):
            token_means = tok_sum / np.where(tok_n > 0, tok_n, np.nan)
        res = ClassifyResult(outp, n, L, H, cinfo, counts, token_means, tok_n, two, quantity=first.result_quantity())
        with StoreWriter(outp, "patterns", force=force, locking=locking) as w:
            copy_model_from(w, first)
            for name in first.h5["examples"]:
                w.concat_from(f"examples/{name}", ordered)
            w.copy_group_attrs(G_PATTERNS, first)
            for name in PATTERN_DATASETS:
                w.concat_from(name, ordered)
            put_pattern_shares(w, res.layer_shares, res.overall_shares)
            put_heads(w, res)
            w.set_provenance(*merged_provenance(ordered, outp, command, n_examples=n, two_sentence_examples=two))
    finally:
        for st in stores:
            st.close()
    res.tables = result_tables(res)
    res.feature_tables = token_tables(res)
    return res
