"""``merge``: combine shard stores of one job into one store."""

from __future__ import annotations

import time
from pathlib import Path

from bertsecrets_cli.render.tables import Table


def merge_stores(paths: list[str], out: str | Path, *, copy: bool = False, force: bool = False, locking: bool | None = None) -> Table:
    """Merge attention-store shards (virtual by default); returns the summary table."""
    from bertsecrets_cli.store.merge import merge_attention_stores

    t0 = time.perf_counter()
    rep = merge_attention_stores(paths, out, copy=copy, force=force, locking=locking)
    t = Table(f"merged {rep.n_shards} shards into {rep.path}", ["examples", "shards", "attention data", "merged bytes", "shard bytes", "extra", "seconds"])
    t.add(rep.n_examples, rep.n_shards, "referenced (virtual)" if rep.virtual else "copied", rep.merged_bytes, rep.shard_bytes,
          f"{rep.merged_bytes / max(1, rep.shard_bytes):.1%}", round(time.perf_counter() - t0, 3))
    return t
