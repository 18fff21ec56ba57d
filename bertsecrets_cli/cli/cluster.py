"""``bertsecrets cluster``: options and help only; the work is jobs.cluster.run_cluster."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from bertsecrets_cli.cli import common as c


def cluster(
    store: Annotated[str, typer.Argument(help="Attention store (extract: word pieces, as Clark et al.'s released code) or words store (words: word level); '-' reads stdin.")],
    output: Annotated[str, typer.Option("--output", "-o", help="Clusters store to write (.h5); '-' writes it to stdout.")],
    measure: Annotated[Optional[str], typer.Option("--measure", autocompletion=c.complete_from("bertsecrets_cli.jobs.choices", "MEASURES"),
                                                   help="js-distance (square root of each row's Jensen-Shannon divergence, base 2, a metric; the default), js-divergence "
                                                   "(base 2), or js-smoothed (Clark's code: rows smoothed 0.001/T + 0.999a, natural log, summed; the default of --definition authors).")] = None,
    definition: c.DefinitionOpt = "ours",
    top: Annotated[int, typer.Option("--top", "-k", help="Nearest heads listed per head.")] = 3,
    patterns: Annotated[Optional[str], typer.Option("--patterns", help="A patterns store of the same model (classify run): colour the heads by majority pattern type.")] = None,
    figure: Annotated[Optional[str], typer.Option("--figure", help="Also draw the embedding to this file (.png, .svg or .pdf).")] = None,
    width: Annotated[Optional[int], typer.Option("--width", help="Terminal columns of the scatter plot (default: the terminal's, 80 when not a terminal).")] = None,
    shard: c.ShardOpt = None,
    force: c.ForceOpt = False,
    no_locking: c.NoLockingOpt = False,
    fmt: c.FormatOpt = "table",
    table: c.TableOpt = None,
    quiet: c.QuietOpt = False,
    verbose: c.VerboseOpt = 0,
    debug: c.DebugOpt = False,
) -> None:
    """Cluster the heads by how alike they attend (Clark et al. 2019, Figure 6).

    Jensen-Shannon distance between every pair of heads, row by row, pooled over every token of every example
    (one pass, memory flat in the number of examples); a deterministic classical-MDS embedding in
    2-D (--definition authors: Clark's released setting instead: word pieces, smoothed JS divergence summed
    over rows and examples, seeded metric MDS from scikit-learn); each head's nearest heads; how much closer heads of one layer are to each other than to other layers.
    Prints the tables and a terminal scatter (coloured by layer, or by pattern type with --patterns) and writes
    the distances, the embedding and /heads/cluster_* to the store.
    """
    out_fmt = c.check_format(fmt, table)

    def body() -> None:
        import shutil

        from bertsecrets_cli.jobs.cluster import ClusterOptions, run_cluster
        from bertsecrets_cli.render.console import debug as log_debug, info
        from bertsecrets_cli.render.tables import emit
        from bertsecrets_cli.cli.spool import input_path, output_path

        stream = c.table_stream(output)
        cols = width or (shutil.get_terminal_size().columns if stream.isatty() else 80)
        opts = ClusterOptions(measure=measure, definition=definition, top=top, patterns=patterns, figure=figure, width=cols, force=force or output == "-",
                              locking=False if no_locking else None, quiet=quiet, shard=shard)
        with input_path(store) as src, output_path(output) as path:
            res = run_cluster(src, path, opts, name=store)
            emit(res.tables, out_fmt, stream)
            if fmt == "table" and table is None:  # the scatter plot is for people, not for cut or jq
                from rich.console import Console

                console = Console(file=stream, highlight=False, width=cols, soft_wrap=False)
                for line in res.lines:
                    console.print(line)
        log_debug("timings: " + ", ".join(f"{k} {v:.3f}" for k, v in res.timings.items()))
        if res.figure is not None:
            info(f"wrote {res.figure}")
        info(f"compared {res.n_layers * res.n_heads} heads over {res.n_examples} examples ({res.n_rows} rows of {res.level}); "
             f"wrote {output if output != '-' else 'stdout'}")

    c.run("cluster", body, quiet=quiet, verbose=verbose, debug=debug, inputs=[store, patterns], outputs=[output, figure])
