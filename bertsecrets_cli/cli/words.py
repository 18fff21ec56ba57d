"""``bertsecrets words``: options and help only; the work is jobs.words.run_words."""

from __future__ import annotations

from typing import Annotated

import typer

from bertsecrets_cli.cli import common as c

WordBoundariesOpt = Annotated[str, typer.Option("--word-boundaries", autocompletion=c.complete_from("bertsecrets_cli.jobs.choices", "BOUNDARIES"), help="What separates words in the texts: punctuation (spaces, and every punctuation mark is a word, as in treebanks) or whitespace.")]


def words(
    store: Annotated[str, typer.Argument(help="Attention store written by extract ('-' reads stdin).")],
    output: Annotated[str, typer.Option("--output", "-o", help="Words store to write (.h5); '-' writes it to stdout.")],
    word_boundaries: WordBoundariesOpt = "punctuation",
    shard: c.ShardOpt = None,
    force: c.ForceOpt = False,
    no_locking: c.NoLockingOpt = False,
    no_validate: c.NoValidateOpt = False,
    fmt: c.FormatOpt = "table",
    table: c.TableOpt = None,
    quiet: c.QuietOpt = False,
    verbose: c.VerboseOpt = 0,
    debug: c.DebugOpt = False,
) -> None:
    """Convert an attention store to word-level attention (Clark et al. 2019): a words store.

    Pieces are grouped into words by the tokenizer's character offsets (WordPiece, BPE, SentencePiece alike);
    attention FROM a split word is the mean of its pieces' rows, attention TO it the sum of its pieces'
    columns, so every word row still sums to 1. [CLS]/[SEP] stay units of their own. cluster reads it.
    --shard i/n converts one contiguous range of the examples; 'bertsecrets merge' joins the shards.
    """
    out_fmt = c.check_format(fmt, table)

    def body() -> None:
        from bertsecrets_cli.jobs.words import WordsOptions, run_words, word_level_summary
        from bertsecrets_cli.render.console import debug as log_debug, info
        from bertsecrets_cli.render.tables import emit
        from bertsecrets_cli.cli.spool import input_path, output_path

        opts = WordsOptions(boundaries=word_boundaries, force=force or output == "-", locking=False if no_locking else None, quiet=quiet,
                            shard=shard)
        with input_path(store) as src, output_path(output) as path:
            res = run_words(src, path, opts, name=store)
            emit([word_level_summary(res)], out_fmt, c.table_stream(output))
        log_debug("timings: " + ", ".join(f"{k} {v:.3f}" for k, v in res.timings.items()))
        info(f"converted {res.n_examples} examples ({res.n_pieces} pieces -> {res.n_words} units) x {res.n_layers} layers x {res.n_heads} heads; "
             f"wrote {output if output != '-' else 'stdout'}")

    c.run("words", body, quiet=quiet, verbose=verbose, debug=debug, inputs=[store], outputs=[output], no_validate=no_validate)
