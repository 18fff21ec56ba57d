"""``merge``: combine the shard stores of one job into one store, whatever command wrote them.

The first store's kind picks the joiner: attention stores (extract) are joined by store/merge.py without
copying the maps; patterns (classify), diff, framenet/dependency, ablation, clusters, coreference and words
stores by their own job module, which recomputes every per-head result from the shards' per-example values or
scorer states (words stores: the word maps and units, concatenated with their offsets rebuilt).
"""

from __future__ import annotations

import time
from pathlib import Path

from bertsecrets_cli.render.tables import Table

MERGEABLE = ("attention", "patterns", "diff", "framenet", "dependency", "ablation", "clusters", "coreference", "words")


def store_kind(path: str | Path, locking: bool | None = None) -> str:
    from bertsecrets_cli.errors import StoreError
    from bertsecrets_cli.store import open_store
    from bertsecrets_cli.store.schema import a_store

    with open_store(path, locking=locking) as st:
        kind = st.kind
    if kind not in MERGEABLE:
        raise StoreError(f"{path}: {a_store(kind)}; merge joins shards of {', '.join(MERGEABLE)} stores")
    return kind


def merge_stores(paths: list[str], out: str | Path, *, copy: bool = False, force: bool = False, locking: bool | None = None,
                 top: int = 10) -> list[Table]:
    """Merge the shards of one job into ``out``; returns a summary table, then the merged results' tables."""
    from bertsecrets_cli.errors import InputError

    if not paths:
        raise InputError("give the shard stores to merge")
    kind = store_kind(paths[0], locking)
    t0 = time.perf_counter()
    if kind == "attention":
        from bertsecrets_cli.store.merge import merge_attention_stores

        rep = merge_attention_stores(paths, out, copy=copy, force=force, locking=locking)
        t = Table(f"merged {rep.n_shards} shards into {rep.path}", ["examples", "shards", "attention data", "merged bytes", "shard bytes", "extra", "seconds"], name="merge")
        t.add(rep.n_examples, rep.n_shards, "referenced (virtual)" if rep.virtual else "copied", rep.merged_bytes, rep.shard_bytes,
              f"{rep.merged_bytes / max(1, rep.shard_bytes):.1%}", round(time.perf_counter() - t0, 3))
        return [t]
    if kind == "patterns":
        from bertsecrets_cli.jobs.classify_merge import combine_patterns

        res = combine_patterns(paths, out, force=force, locking=locking)
        n, unit, tables = res.n_examples, "examples", res.tables
    elif kind == "diff":
        from bertsecrets_cli.jobs.diff import combine_diff

        dres = combine_diff(paths, out, top=top, force=force, locking=locking)
        n, unit, tables = dres.n_examples, "paired examples", dres.tables
    elif kind in ("framenet", "dependency"):
        from bertsecrets_cli.jobs.framenet import combine_relations

        rres = combine_relations(paths, out, top=top, force=force, locking=locking)
        n, unit, tables = rres.n_sentences, "sentences", rres.tables
    elif kind == "clusters":
        from bertsecrets_cli.jobs.cluster import combine_clusters

        cres = combine_clusters(paths, out, force=force, locking=locking)
        n, unit, tables = cres.n_examples, "examples", cres.tables
    elif kind == "words":
        from bertsecrets_cli.jobs.words import combine_words, word_level_summary

        wres = combine_words(paths, out, force=force, locking=locking)
        n, unit, tables = wres.n_examples, "examples", [word_level_summary(wres)]
    elif kind == "coreference":
        from bertsecrets_cli.jobs.coref import combine_coref

        kres = combine_coref(paths, out, top=top, force=force, locking=locking)
        n, unit, tables = kres.n_segments, "segments", kres.tables
    else:
        from bertsecrets_cli.jobs.ablate import ablation_tables, combine_ablation

        ares = combine_ablation(paths, out, force=force, locking=locking)
        n, unit, tables = len(ares.names), "variants", ablation_tables(ares, top)
    shard_bytes = sum(Path(p).stat().st_size for p in paths)
    merged = Path(out).stat().st_size
    t = Table(f"merged {len(paths)} {kind} shards into {out}", [unit, "shards", "merged bytes", "shard bytes", "seconds"], name="merge")
    t.add(n, len(paths), merged, shard_bytes, round(time.perf_counter() - t0, 3))
    return [t, *tables]
