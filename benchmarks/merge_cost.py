"""The cost of ``merge``: 4 shards of a 400-example extraction, merged virtually and with --copy; then
the same 4-way split of ``classify`` over the extraction, whose patterns shards merge too.

Prints, for each mode, the merge time (in-process, and the whole ``bertsecrets merge`` command with
its start-up) and the merged store's bytes as a fraction of the shards' bytes, then checks the merged
store, that it holds exactly the shards' data, and how far it is from an unsharded extraction. Embedded model, CPU, demo sst2 train sentences.
Usage: python benchmarks/merge_cost.py [--n 400] [--shards 4]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=400)
    ap.add_argument("--shards", type=int, default=4)
    args = ap.parse_args()

    import numpy as np

    from bertsecrets_cli.jobs.check import check_store
    from bertsecrets_cli.jobs.extract import DataOptions, ExtractOptions, run_extract
    from bertsecrets_cli.store import open_store
    from bertsecrets_cli.render.console import set_verbosity
    from bertsecrets_cli.store.merge import merge_attention_stores

    set_verbosity(-1)

    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        data = DataOptions(task="sst2", split="train", limit=args.n)
        t0 = time.perf_counter()
        shards = []
        for i in range(args.shards):
            p = d / f"shard-{i}.h5"
            run_extract(ExtractOptions(data=data, device="cpu", quiet=True, shard=f"{i}/{args.shards}"), p)
            shards.append(str(p))
        t_extract = time.perf_counter() - t0
        full = d / "full.h5"
        run_extract(ExtractOptions(data=data, device="cpu", quiet=True), full)
        shard_bytes = sum(os.path.getsize(s) for s in shards)
        print(f"{args.n} examples in {args.shards} shards: extraction {t_extract:.1f} s, shards {shard_bytes / 1e6:.2f} MB")
        print(f"{'mode':<8} {'merge s (in-process)':>21} {'bertsecrets merge s':>20} {'merged bytes':>13} {'extra / shards':>15}")
        for mode, copy in (("virtual", False), ("copy", True)):
            out = d / f"merged-{mode}.h5"
            t0 = time.perf_counter()
            rep = merge_attention_stores(shards, out, copy=copy)
            t_merge = time.perf_counter() - t0
            check_store(out)
            with open_store(out) as a, open_store(full) as b:
                assert a.example_ids() == b.example_ids()
                assert np.array_equal(a.array("tokens/ids"), b.array("tokens/ids"))
                merged_maps = a.array("attention/maps")
                parts = []
                for sp in shards:
                    with open_store(sp) as sh:
                        parts.append(sh.array("attention/maps"))
                assert np.array_equal(merged_maps, np.concatenate(parts)), "merge changed the attention data"
                # an unsharded run batches other examples together (other padding): float noise only
                diff = float(np.abs(merged_maps.astype(np.float32) - b.array("attention/maps").astype(np.float32)).max())
            out_cli = d / f"cli-{mode}.h5"
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-m", "bertsecrets_cli", "merge", *shards, "-o", str(out_cli), "-q"] + (["--copy"] if copy else []),
                           check=True, capture_output=True)
            t_cli = time.perf_counter() - t0
            merged = os.path.getsize(out)
            print(f"{mode:<8} {t_merge:>21.3f} {t_cli:>20.2f} {merged:>13,} {merged / shard_bytes:>14.2%}")
        print(f"both merged stores pass check, hold exactly the shards' attention values, and the unsharded run's ids and tokens;"
              f" max |merged - unsharded| attention = {diff:.1e} (other batches, other padding)")

        # classify sharded over the same store: merge time, bytes, and equality with one unsharded classify
        from bertsecrets_cli.jobs.classify import ClassifyOptions, run_classify
        from bertsecrets_cli.jobs.classify_merge import combine_patterns
        from bertsecrets_cli.store.reader import read_patterns

        pats = []
        for i in range(args.shards):
            p = d / f"pat-{i}.h5"
            run_classify(full, p, ClassifyOptions(quiet=True, shard=f"{i}/{args.shards}"))
            pats.append(str(p))
        t0 = time.perf_counter()
        run_classify(full, d / "pat-one.h5", ClassifyOptions(quiet=True))
        t_one = time.perf_counter() - t0
        t0 = time.perf_counter()
        combine_patterns(pats, d / "pat-merged.h5")
        t_pm = time.perf_counter() - t0
        pat_bytes = sum(os.path.getsize(x) for x in pats)
        with open_store(d / "pat-one.h5") as a, open_store(d / "pat-merged.h5") as b:
            same = bool(np.array_equal(read_patterns(a).labels, read_patterns(b).labels))
            heads = max(float(np.nanmax(np.abs(a.heads()[k].values - b.heads()[k].values))) for k in a.heads())
        print(f"classify in {args.shards} shards: patterns merge {t_pm:.3f} s (one unsharded classify {t_one:.2f} s), merged "
              f"{os.path.getsize(d / 'pat-merged.h5'):,} bytes = {os.path.getsize(d / 'pat-merged.h5') / pat_bytes:.1%} of the shards; "
              f"labels identical: {same}; max |per-head difference| {heads:.1e}")


if __name__ == "__main__":
    main()
