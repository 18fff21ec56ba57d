"""``bertsecrets check``: verify stores; non-zero exit on any problem."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bertsecrets_cli.cli import common as c


def check(
    stores: Annotated[list[str], typer.Argument(help="Stores to verify ('-' reads one from stdin).")],
    no_locking: c.NoLockingOpt = False,
    fmt: c.FormatOpt = "table",
    table: c.TableOpt = None,
    quiet: c.QuietOpt = False,
    verbose: c.VerboseOpt = 0,
    debug: c.DebugOpt = False,
) -> None:
    """Verify stores: schema and version, completeness, offsets, virtual sources, checksums, rows summing to 1.

    Exits 0 only if every store passes; the first problem is reported as one line (exit 4).
    """
    out_fmt = c.check_format(fmt, table)

    def body() -> None:
        from bertsecrets_cli.jobs.check import check_store, reports_table
        from bertsecrets_cli.render.tables import emit
        from bertsecrets_cli.cli.spool import input_path

        reports = []
        for s in stores:
            with input_path(s) as p:
                rep = check_store(p, locking=False if no_locking else None)
            rep.path = Path(s)  # the name the user typed ('-', not the spool file)
            reports.append(rep)
        if not quiet:
            emit(reports_table(reports), out_fmt)

    c.run("check", body, quiet=quiet, verbose=verbose, debug=debug)
