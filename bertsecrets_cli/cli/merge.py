"""``bertsecrets merge``: combine shard stores into one."""

from __future__ import annotations

from typing import Annotated

import typer

from bertsecrets_cli.cli import common as c


def merge(
    shards: Annotated[list[str], typer.Argument(help="Shard stores (any order; all shards of one job).")],
    output: Annotated[str, typer.Option("--output", "-o", help="Merged store to write.")],
    copy: Annotated[bool, typer.Option("--copy", help="Attention stores: copy the maps into a self-contained store instead of referencing the shards (HDF5 virtual dataset).")] = False,
    top: Annotated[int, typer.Option("--top", "-k", help="Heads or variants listed in the merged results' tables.")] = 10,
    force: c.ForceOpt = False,
    no_locking: c.NoLockingOpt = False,
    fmt: c.FormatOpt = "table",
    table: c.TableOpt = None,
    quiet: c.QuietOpt = False,
    verbose: c.VerboseOpt = 0,
    debug: c.DebugOpt = False,
) -> None:
    """Merge the shards of one job: extract, classify, diff, framenet, ablate, cluster, coref or words run with --shard i/n (or under torchrun/Slurm arrays).

    Refuses overlapping, missing or mismatched shards (other model, tokenizer, data or options). Attention
    stores: without --copy the merged store references the shard files by relative paths: keep them next to
    it (`bertsecrets check` verifies they are all there). Other stores are small and always copied; their
    per-head results are recomputed from the shards' per-example values (classify, diff) or scorer states
    (framenet), and words stores' maps are concatenated, so the merged store equals one unsharded run.
    Classify, diff or words stores made from the shards of an extract job merge the same way.
    """
    out_fmt = c.check_format(fmt, table)

    def body() -> None:
        from bertsecrets_cli.jobs.merge import merge_stores
        from bertsecrets_cli.render.console import info
        from bertsecrets_cli.render.tables import emit

        emit(merge_stores(shards, output, copy=copy, force=force, locking=False if no_locking else None, top=top), out_fmt)
        info(f"merged {len(shards)} shards into {output}")

    c.run("merge", body, quiet=quiet, verbose=verbose, debug=debug, inputs=shards, outputs=[output])
