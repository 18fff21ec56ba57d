"""``bertsecrets check``: verify stores; non-zero exit on any problem."""

from __future__ import annotations

from typing import Annotated

import typer

from bertsecrets_cli.cli import common as c


def check(
    stores: Annotated[list[str], typer.Argument(help="Stores to verify ('-' reads one from stdin).")],
    no_locking: c.NoLockingOpt = False,
    fmt: c.FormatOpt = "table",
    quiet: c.QuietOpt = False,
    verbose: c.VerboseOpt = 0,
    debug: c.DebugOpt = False,
) -> None:
    """Verify stores: schema and version, completeness, offsets, virtual sources, checksums, rows summing to 1.

    Exits 0 only if every store passes; the first problem is reported as one line (exit 4).
    """
    c.check_format(fmt)

    def body() -> None:
        from bertsecrets_cli.jobs.check import check_store
        from bertsecrets_cli.render.tables import emit
        from bertsecrets_cli.cli.spool import input_path

        for s in stores:
            with input_path(s) as p:
                rep = check_store(p, locking=False if no_locking else None)
            if not quiet:
                emit(rep.table(), fmt)

    c.run("check", body, quiet=quiet, verbose=verbose, debug=debug)
