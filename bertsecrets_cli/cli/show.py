"""``bertsecrets show``: options and help only; the work is jobs.show.run_show."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from bertsecrets_cli.cli import common as c


def show(
    store: Annotated[str, typer.Argument(help="Any bertsecrets store ('-' reads stdin).")],
    quantity: Annotated[Optional[str], typer.Option("--quantity", help="Rank the heads by this per-head quantity (several: comma-separated); without it, an overview of the store. "
                                                                               "A map kind (norms, norms_normalised, rollout, flow) shows that kind's quantities; KIND/NAME ranks one (norms/stat_sep).")] = None,
    top: Annotated[Optional[int], typer.Option("--top", "-k", help="How many heads to list (0: all; default 10). Without --quantity, ranks the store's own result "
                                                                     "(ablation_delta of an ablation store, cosine of a diff store).")] = None,
    bottom: Annotated[bool, typer.Option("--bottom", help="Lowest values first (e.g. the most changed heads by cosine).")] = False,
    by_abs: Annotated[bool, typer.Option("--abs", help="Largest magnitude first (differences, ablation deltas).")] = False,
    layer: Annotated[Optional[str], typer.Option("--layer", "-l", help="Only heads of this layer, 1-based (3 or L3).")] = None,
    no_locking: c.NoLockingOpt = False,
    no_validate: c.NoValidateOpt = False,
    fmt: c.FormatOpt = "table",
    table: c.TableOpt = None,
    quiet: c.QuietOpt = False,
    verbose: c.VerboseOpt = 0,
    debug: c.DebugOpt = False,
) -> None:
    """Print what a store holds, or rank its heads by any per-head quantity, without recomputing anything.
    """
    out_fmt = c.check_format(fmt, table)

    def body() -> None:
        from bertsecrets_cli.jobs.show import ShowOptions, run_show
        from bertsecrets_cli.render.tables import emit
        from bertsecrets_cli.cli.spool import input_path

        qs = tuple(q.strip() for q in quantity.split(",") if q.strip()) if quantity else ()
        opts = ShowOptions(quantities=qs, top=10 if top is None else top, bottom=bottom, by_abs=by_abs, layer=layer, locking=False if no_locking else None,
                           rank=top is not None or bottom or by_abs or layer is not None)
        with input_path(store) as path:
            tables = run_show(path, opts, name=store)
        emit(tables, out_fmt)

    c.run("show", body, quiet=quiet, verbose=verbose, debug=debug, inputs=[store], no_validate=no_validate)
