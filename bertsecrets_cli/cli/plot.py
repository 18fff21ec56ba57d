"""``bertsecrets plot``: options and help only; the work is jobs.plot.run_plot."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from bertsecrets_cli.cli import common as c


def plot(
    store: Annotated[str, typer.Argument(help="Any bertsecrets store ('-' reads stdin).")],
    list_figures: Annotated[bool, typer.Option("--list", help="Show what can be plotted from the store, and how.")] = False,
    quantity: Annotated[Optional[str], typer.Option("--quantity", help="Per-head quantity to draw (see --list); several, comma-separated, for --figure layers. "
                                                                                 "A map kind (norms, norms_normalised, rollout, flow) draws from those maps instead of the weights: "
                                                                                 "--quantity norms/stat_cls, or --quantity norms --example 0 --head L1H1.")] = None,
    figure: Annotated[Optional[str], typer.Option("--figure", autocompletion=c.complete_from("bertsecrets_cli.jobs.choices", "FIGURES"), help="grid (layers x heads), layers (per-layer curves), shares (stacked pattern shares) or map; default: chosen from the store and options.")] = None,
    example: Annotated[Optional[str], typer.Option("--example", "-e", help="Attention map of this example: its id, or its index in the store (from 0).")] = None,
    layer: Annotated[Optional[str], typer.Option("--layer", "-l", help="Layer of the map, 1-based (7 or L7).")] = None,
    head: Annotated[Optional[str], typer.Option("--head", help="Head of the map, 1-based: 6 (with --layer) or L7H6.")] = None,
    out: Annotated[Optional[str], typer.Option("--output", "-o", "--out", help="Write the figure to this file (.png, .svg or .pdf) instead of drawing in the terminal.")] = None,
    title: Annotated[Optional[str], typer.Option("--title", help="Figure title.")] = None,
    vmin: Annotated[Optional[float], typer.Option("--vmin", help="Lower end of the colour scale of a head grid.")] = None,
    vmax: Annotated[Optional[float], typer.Option("--vmax", help="Upper end of the colour scale of a head grid.")] = None,
    width: Annotated[Optional[int], typer.Option("--width", help="Terminal columns to draw in (default: the terminal's, 80 when not a terminal).")] = None,
    force: c.ForceOpt = False,
    no_locking: c.NoLockingOpt = False,
    no_validate: c.NoValidateOpt = False,
    fmt: c.FormatOpt = "table",
    table: c.TableOpt = None,
    quiet: c.QuietOpt = False,
    verbose: c.VerboseOpt = 0,
    debug: c.DebugOpt = False,
) -> None:
    """Draw a store's figures: head grids, per-layer curves, pattern-share bars, single attention maps.

    In the terminal by default (coloured cells with values and a legend; readable at 80 columns and without colour); -o FILE writes PNG, SVG or PDF with matplotlib, no display needed. Heads and layers are 1-based.
    """
    out_fmt = c.check_format(fmt, table)

    def body() -> None:
        import shutil
        import sys

        from bertsecrets_cli.cli.spool import input_path
        from bertsecrets_cli.jobs.plot import PlotOptions, list_store_figures, run_plot
        from bertsecrets_cli.render.console import info
        from bertsecrets_cli.render.tables import emit

        with input_path(store) as path:
            if list_figures:
                emit(list_store_figures(path, store, locking=False if no_locking else None), out_fmt)
                return
            cols = width or (shutil.get_terminal_size().columns if sys.stdout.isatty() else 80)
            qs = tuple(q.strip() for q in quantity.split(",") if q.strip()) if quantity else ()
            opts = PlotOptions(figure=figure, quantities=qs, example=example, layer=layer, head=head, out=out, force=force,
                               title=title, vmin=vmin, vmax=vmax, width=cols, locking=False if no_locking else None)
            res = run_plot(path, opts, name=store)
        if res.path is not None:
            info(f"wrote {res.path} ({res.figure}: {res.what})")
            return
        from rich.console import Console

        console = Console(file=sys.stdout, highlight=False, width=cols, soft_wrap=False)
        for line in res.lines:
            console.print(line)

    c.run("plot", body, quiet=quiet, verbose=verbose, debug=debug, inputs=[store], outputs=[out], no_validate=no_validate)
