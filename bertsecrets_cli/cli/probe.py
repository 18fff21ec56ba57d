"""``bertsecrets probe``: options and help only; the work is jobs.probe.run_probe."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from bertsecrets_cli.cli import common as c


def probe(
    train: Annotated[str, typer.Option("--train", help="CoNLL-U file to train the probes on.")],
    test: Annotated[str, typer.Option("--test", help="CoNLL-U file to score them on (unlabeled attachment score).")],
    output: Annotated[str, typer.Option("--output", "-o", help="Probe store to write (.h5); '-' writes it to stdout.")],
    model: c.ModelOpt = None,
    device: c.DeviceOpt = "auto",
    batch_size: c.BatchOpt = 32,
    max_length: c.MaxLenOpt = 128,
    limit: Annotated[Optional[int], typer.Option("--limit", "-n", help="At most this many training sentences.")] = None,
    embedding_dims: Annotated[int, typer.Option("--embedding-dims", help="Principal components of the input embeddings for the attention + words probe (0: train the attention-only probe alone).")] = 8,
    l2: Annotated[float, typer.Option("--l2", help="L2 penalty on the probe's weights.")] = 1e-3,
    max_iter: Annotated[int, typer.Option("--max-iter", help="L-BFGS iterations at most.")] = 300,
    definition: c.DefinitionOpt = "ours",
    force: c.ForceOpt = False,
    no_locking: c.NoLockingOpt = False,
    fmt: c.FormatOpt = "table",
    table: c.TableOpt = None,
    quiet: c.QuietOpt = False,
    verbose: c.VerboseOpt = 0,
    debug: c.DebugOpt = False,
) -> None:
    """Train the attention probe of Clark et al. 2019 (sec. 6): predict each word's syntactic head from all heads' attention.

    The attention-only probe weights every head's word-level attention in both directions (dependent ->
    candidate, candidate -> dependent); the attention + words probe lets those weights depend on the two
    words' input embeddings. Trained on --train by L-BFGS on CPU, scored on --test by UAS next to the
    right-branching baseline and the best single head (chosen on --train). Learned weights go to
    /heads/probe_* in the store. --definition authors follows Clark's released probe: ROOT is a candidate
    (attention to [CLS] and [SEP]), root words are trained and scored, punctuation is not scored.
    """
    out_fmt = c.check_format(fmt, table)

    def body() -> None:
        from bertsecrets_cli.jobs.probe import ProbeOptions, run_probe
        from bertsecrets_cli.render.console import debug as log_debug, info
        from bertsecrets_cli.render.tables import emit
        from bertsecrets_cli.cli.spool import output_path

        opts = ProbeOptions(train=train, test=test, model=model, device=device, batch_size=batch_size, max_length=max_length, limit=limit,
                            embedding_dims=embedding_dims, l2=l2, max_iter=max_iter, definition=definition, force=force or output == "-", quiet=quiet, locking=False if no_locking else None)
        with output_path(output) as path:
            res = run_probe(opts, path)
            emit(res.tables, out_fmt, c.table_stream(output))
        log_debug("timings: " + ", ".join(f"{k} {v:.3f}" for k, v in res.timings.items()))
        info(f"trained on {res.n_train} sentences, scored {res.n_test} x {res.n_layers} layers x {res.n_heads} heads; "
             f"wrote {output if output != '-' else 'stdout'}")

    c.run("probe", body, quiet=quiet, verbose=verbose, debug=debug, inputs=[train, test, model], outputs=[output])
