"""``bertsecrets merge``: combine shard stores into one."""

from __future__ import annotations

from typing import Annotated

import typer

from bertsecrets_cli.cli import common as c


def merge(
    shards: Annotated[list[str], typer.Argument(help="Shard stores (any order; all shards of one job).")],
    output: Annotated[str, typer.Option("--output", "-o", help="Merged store to write.")],
    copy: Annotated[bool, typer.Option("--copy", help="Copy the attention data into a self-contained store instead of referencing the shards (HDF5 virtual dataset).")] = False,
    force: c.ForceOpt = False,
    no_locking: c.NoLockingOpt = False,
    fmt: c.FormatOpt = "table",
    quiet: c.QuietOpt = False,
    verbose: c.VerboseOpt = 0,
    debug: c.DebugOpt = False,
) -> None:
    """Merge the shards of one extract job (written with --shard i/n or under torchrun/Slurm arrays).

    Refuses overlapping, missing or mismatched shards (other model, tokenizer, data or options). Without
    --copy the merged store references the shard files by relative paths: keep them next to it
    (`bertsecrets check` verifies they are all there).
    """
    c.check_format(fmt)

    def body() -> None:
        from bertsecrets_cli.jobs.merge import merge_stores
        from bertsecrets_cli.render.tables import emit

        t = merge_stores(shards, output, copy=copy, force=force, locking=False if no_locking else None)
        emit(t, fmt)

    c.run("merge", body, quiet=quiet, verbose=verbose, debug=debug)
