"""``bertsecrets diff``: options and help only; the work is jobs.diff.run_diff."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from bertsecrets_cli.cli import common as c


def diff(
    store_a: Annotated[str, typer.Argument(metavar="A", help="First store, e.g. the pretrained model's ('-' reads stdin).")],
    store_b: Annotated[str, typer.Argument(metavar="B", help="Second store, e.g. the fine-tuned model's, on the same examples.")],
    output: Annotated[Optional[str], typer.Option("--output", "-o", help="Write a diff store (.h5; '-' writes it to stdout); default: print only.")] = None,
    top: Annotated[int, typer.Option("--top", "-k", help="How many of the most changed heads to list (0: all).")] = 10,
    padded: Annotated[bool, typer.Option("--padded", help="The authors' variant: cosine of maps zero-padded to a 200x200 canvas (maps longer than it are cut) instead of maps cropped to the real length.")] = False,
    canvas: Annotated[int, typer.Option("--canvas", help="Canvas size for --padded.")] = 200,
    quantity: c.QuantityOpt = "weights",
    shard: c.ShardOpt = None,
    part_size: c.PartSizeOpt = 4096,
    resume: c.ResumeOpt = False,
    force: c.ForceOpt = False,
    no_locking: c.NoLockingOpt = False,
    no_validate: c.NoValidateOpt = False,
    fmt: c.FormatOpt = "table",
    table: c.TableOpt = None,
    quiet: c.QuietOpt = False,
    verbose: c.VerboseOpt = 0,
    debug: c.DebugOpt = False,
) -> None:
    """Compare the attention of two stores on the same examples, head by head (the paper's Fig. 5).

    Pairs examples by id and requires identical tokens. Per head: mean cosine similarity of A's and B's maps (cropped to the real length) and mean Jensen-Shannon divergence of their rows; per-layer means and the most changed heads. Every per-head quantity both stores hold is compared too (B - A, stored as delta_NAME).
    """
    out_fmt = c.check_format(fmt, table)
    if store_a == "-" and store_b == "-":
        raise typer.BadParameter("only one of A and B can be '-' (standard input)", param_hint="A/B")

    def body() -> None:
        from bertsecrets_cli.jobs.diff import DiffOptions, run_diff
        from bertsecrets_cli.render.console import info
        from bertsecrets_cli.render.tables import emit
        from bertsecrets_cli.cli.spool import input_path, output_path

        opts = DiffOptions(padded=padded, canvas=canvas, top=top, force=force or output == "-",
                           locking=False if no_locking else None, quiet=quiet, shard=shard, quantity=quantity,
                           part_size=0 if output == "-" else part_size, resume=resume)
        with input_path(store_a) as pa, input_path(store_b) as pb:
            if output is None:
                res = run_diff(pa, pb, None, opts, names=(store_a, store_b))
            else:
                with output_path(output) as po:
                    res = run_diff(pa, pb, po, opts, names=(store_a, store_b))
                    emit(res.tables, out_fmt, c.table_stream(output))
                info(f"compared {res.n_examples} examples x {res.n_layers} layers x {res.n_heads} heads; wrote {output if output != '-' else 'stdout'}")
                return
        emit(res.tables, out_fmt, c.table_stream(output))

    c.run("diff", body, quiet=quiet, verbose=verbose, debug=debug, inputs=[store_a, store_b], outputs=[output], no_validate=no_validate)
