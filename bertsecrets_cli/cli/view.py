"""``bertsecrets view``: options and help only; the work is jobs.view.run_view."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from bertsecrets_cli.cli import common as c


def view(
    store: Annotated[str, typer.Argument(help="An attention store written by extract, or a words store (word level) ('-' reads stdin).")],
    output: Annotated[str, typer.Option("--output", "-o", help="The HTML file to write (one self-contained page: opens from disk, no network; '-' writes it to stdout).")],
    patterns: Annotated[Optional[str], typer.Option("--patterns", help="A patterns store (classify) of the same examples: pattern-type grids, and each shown map's type.")] = None,
    diff: Annotated[Optional[str], typer.Option("--diff", help="A diff store: cosine and JS divergence per head as heat grids (and per shown example).")] = None,
    ablation: Annotated[Optional[str], typer.Option("--ablation", help="An ablation store: score deltas per head as heat grids.")] = None,
    examples: Annotated[Optional[str], typer.Option("--examples", "-e", help="Comma-separated example ids or 0-based indices to show; default: the first --limit (8), or a --sample.")] = None,
    limit: c.LimitOpt = None,
    sample: c.SampleOpt = False,
    seed: c.SeedOpt = 0,
    quantity: c.QuantityOpt = "weights",
    encoding: Annotated[str, typer.Option("--encoding", autocompletion=c.complete(("float16", "uint8")), help="Values in the page: float16 (exact to 3 digits) or uint8 (round(p*255), half the size).")] = "float16",
    title: Annotated[Optional[str], typer.Option("--title", help="The page's title (default: store and model name).")] = None,
    allow_mismatch: Annotated[bool, typer.Option("--allow-mismatch", help="Embed --patterns/--diff/--ablation stores made from another model, task or "
                                                                       "example set than STORE (refused by default); a warning names what differs.")] = False,
    force: c.ForceOpt = False,
    no_locking: c.NoLockingOpt = False,
    no_validate: c.NoValidateOpt = False,
    quiet: c.QuietOpt = False,
    verbose: c.VerboseOpt = 0,
    debug: c.DebugOpt = False,
) -> None:
    """Write an interactive HTML view of a store: head view, model view and per-head result grids.

    Head view: tokens on both sides, lines weighted by attention, layer and head selectable, hover a token to focus it; word-level
    attention on a switch. Model view: the layers x heads grid of maps of one example, click to enlarge. With --patterns, --diff or
    --ablation, their per-head results as heat grids whose cells select that head. Only the chosen examples go in the file.
    """

    def body() -> None:
        from bertsecrets_cli.jobs.view import ViewOptions, run_view
        from bertsecrets_cli.render.console import debug as note, info
        from bertsecrets_cli.cli.spool import input_path, output_path

        wanted = tuple(x.strip() for x in examples.split(",") if x.strip()) if examples else ()
        opts = ViewOptions(patterns=patterns, diff=diff, ablation=ablation, examples=wanted, limit=limit, sample=sample, seed=seed,
                           quantity=quantity, encoding=encoding, title=title, force=force, locking=False if no_locking else None,
                           allow_mismatch=allow_mismatch)
        with input_path(store) as path, output_path(output) as out:
            res = run_view(path, out, opts, name=store if store != "-" else "stdin")
        note(f"examples shown (0-based store indices): {', '.join(map(str, res.indices))}; per-head grids: {', '.join(res.head_grids) or 'none'}")
        info(f"wrote {output if output != '-' else 'stdout'}: {res.n_examples} example(s), {len(res.head_grids)} per-head grid(s), {res.size_text}")

    c.run("view", body, quiet=quiet, verbose=verbose, debug=debug, inputs=[store, patterns, diff, ablation], outputs=[output], no_validate=no_validate)
