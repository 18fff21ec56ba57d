"""``bertsecrets coref``: options and help only; the work is jobs.coref.run_coref."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from bertsecrets_cli.cli import common as c


def coref(
    data: Annotated[str, typer.Argument(metavar="CHAINS", help="Coreference chains: CorefUD CoNLL-U (Entity= in MISC) or JSONL of mention spans (.jsonl).")],
    output: Annotated[str, typer.Option("--output", "-o", help="Coreference store to write (.h5); '-' writes it to stdout.")],
    model: c.ModelOpt = None,
    device: c.DeviceOpt = "auto",
    batch_size: c.BatchOpt = 32,
    max_length: c.MaxLenOpt = 128,
    limit: Annotated[Optional[int], typer.Option("--limit", "-n", help="At most this many segments (packed consecutive sentences of a document).")] = None,
    bootstrap: Annotated[int, typer.Option("--bootstrap", help="Bootstrap draws over mentions for the 95% intervals (0: none).")] = 1000,
    seed: c.SeedOpt = 0,
    top: Annotated[int, typer.Option("--top", "-k", help="Heads shown in the ranking.")] = 10,
    quantity: c.QuantityOpt = "weights",
    shard: c.ShardOpt = None,
    force: c.ForceOpt = False,
    no_locking: c.NoLockingOpt = False,
    fmt: c.FormatOpt = "table",
    table: c.TableOpt = None,
    quiet: c.QuietOpt = False,
    verbose: c.VerboseOpt = 0,
    debug: c.DebugOpt = False,
) -> None:
    """Find coreference heads (Clark et al. 2019, sec. 4.4): antecedent selection accuracy of every head.

    A head is right on a mention when the word it attends to most from the mention's head word is the head
    word of an antecedent (an earlier mention of the same entity in the model's input). Against the paper's
    baselines (nearest mention, nearest mention with the same head word, rule-based: same head word else
    nearest), split by mention type (pronoun, proper, nominal), with bootstrap intervals. Consecutive sentences
    of a document are packed up to --max-length pieces; chains are scored within each such segment.
    """
    out_fmt = c.check_format(fmt, table)

    def body() -> None:
        from bertsecrets_cli.jobs.coref import CorefOptions, run_coref
        from bertsecrets_cli.render.console import debug as log_debug, info
        from bertsecrets_cli.render.tables import emit
        from bertsecrets_cli.cli.spool import output_path

        opts = CorefOptions(data=data, model=model, device=device, batch_size=batch_size, max_length=max_length, limit=limit,
                            bootstrap=bootstrap, seed=seed, top=top, force=force or output == "-", quiet=quiet, shard=shard, locking=False if no_locking else None,
                            quantity=quantity)
        with output_path(output) as path:
            res = run_coref(opts, path)
            emit(res.tables, out_fmt, c.table_stream(output))
        log_debug("timings: " + ", ".join(f"{k} {v:.3f}" for k, v in res.timings.items()))
        info(f"scored {res.n_mentions} mentions in {res.n_segments} segments x {res.n_layers} layers x {res.n_heads} heads; "
             f"wrote {output if output != '-' else 'stdout'}")

    c.run("coref", body, quiet=quiet, verbose=verbose, debug=debug, inputs=[data, model], outputs=[output])
