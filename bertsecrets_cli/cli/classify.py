"""``bertsecrets classify``: options and help only; the work is in jobs.classify, jobs.annotate and jobs.train_classifier.

``classify`` is a small group: ``classify STORE ...`` is short for ``classify run STORE ...`` (label the maps),
``classify annotate`` labels maps by hand, ``classify train`` trains the paper's CNN from those labels.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any, Optional

import typer
from typer.core import TyperGroup

from bertsecrets_cli.cli import common as c
from bertsecrets_cli.jobs.classifiers import rules_help


class _DefaultRun(TyperGroup):
    """Anything that is not a subcommand name (a store path, '-', an option) goes to ``run``."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ctx.help_option_names:
            import difflib
            import os

            near = difflib.get_close_matches(args[0], list(self.commands), n=1, cutoff=0.75)
            if near and not os.path.exists(args[0]) and not ctx.resilient_parsing:
                ctx.fail(f"no store or subcommand {args[0]!r}; did you mean '{near[0]}'?")
            args = ["run", *args]
        return super().parse_args(ctx, args)


_RULES = rules_help()

classify_app = typer.Typer(
    cls=_DefaultRun,
    no_args_is_help=True,
    help="Label every attention map with one of the paper's five pattern types (vertical, diagonal, vertical+diagonal, "
    "block, heterogeneous); print shares per layer and per head.\n\n"
    "bertsecrets classify STORE -o pat.h5 is short for 'classify run'. Hand labels: 'classify annotate STORE --labels l.tsv'; "
    "the paper's CNN: 'classify train l.tsv -o clf.pt', then 'classify STORE --classifier clf.pt'.\n\n" + _RULES,
)


_RUN_HELP = (
    "Label every (example, layer, head) map; print pattern shares per layer, each head's majority type and the heterogeneous share.\n\n"
    "The store is read in a streaming way (memory stays bounded) and never modified. The patterns store holds the labels "
    "(examples x layers x heads), the features behind them, attention to tokens of interest, and per-head quantities under "
    "/heads (pattern_share_<type>, pattern_majority, pattern_majority_share, token_cls, token_sep, token_punct, token_negation) "
    "for plot, show and diff. Shares depend on the classifier: its name and validation score go with them.\n\n" + _RULES
)


@classify_app.command("run", help=_RUN_HELP, epilog=c.examples("bertsecrets classify pre.h5 -o pat.h5", "bertsecrets extract --task mrpc -o - | bertsecrets classify - --features --format tsv --table token-heads"))
def run(
    store: Annotated[str, typer.Argument(help="Attention store written by extract ('-' reads it from stdin).")],
    output: Annotated[Optional[str], typer.Option("--output", "-o", help="Patterns store to write (.h5); '-' writes it to stdout. Without it, only the tables are printed.")] = None,
    classifier: Annotated[Optional[str], typer.Option("--classifier", help="A CNN file from 'classify train' instead of the default rules.")] = None,
    features: Annotated[bool, typer.Option("--features", help="Also print attention to [CLS], [SEP], punctuation and negation words per layer and head (paper sec. 4.4).")] = False,
    spacy: Annotated[Optional[str], typer.Option("--spacy", help="A spaCy pipeline (package name or folder; optional extra 'spacy') that tags the store's texts: "
                                                 "also attention to nouns, verbs, pronouns, subjects and objects, and the last layer's [CLS] attention to each (paper sec. 4.4; tables with --features, /heads/ling_*). One pass, no --shard.")] = None,
    quantity: c.QuantityOpt = "weights",
    device: c.DeviceOpt = "auto",
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
    """Label every map of a store (help text: _RUN_HELP, which includes the rules)."""
    out_fmt = c.check_format(fmt, table)

    def body() -> None:
        from bertsecrets_cli.jobs.classify import ClassifyOptions, run_classify
        from bertsecrets_cli.jobs.classify_parts import run_classify_resumable
        from bertsecrets_cli.render.console import info
        from bertsecrets_cli.render.tables import emit
        from bertsecrets_cli.cli.spool import input_path, output_path

        opts = ClassifyOptions(classifier=classifier, device=device, force=force or output == "-",
                               locking=False if no_locking else None, quiet=quiet, shard=shard, quantity=quantity,
                               part_size=0 if output == "-" else part_size, resume=resume, spacy=spacy)
        with input_path(store) as src:
            name = "stdin" if store == "-" else store
            if output is None:
                res = run_classify(src, None, opts, source=name)
            else:
                with output_path(output) as dst:
                    res = run_classify_resumable(src, dst, opts, source=name)
        stream = c.table_stream(output)
        emit(res.tables + (res.feature_tables if features else []), out_fmt, stream)
        if output is not None:
            info(f"wrote the pattern labels of {res.n_examples} examples x {res.n_layers} layers x {res.n_heads} heads to {output if output != '-' else 'stdout'}")

    c.run("classify", body, quiet=quiet, verbose=verbose, debug=debug, inputs=[store, classifier], outputs=[output], no_validate=no_validate)


@classify_app.command("annotate", epilog=c.examples("bertsecrets classify annotate pre.h5 --labels labels.tsv --limit 100"))
def annotate(
    store: Annotated[str, typer.Argument(help="Attention store written by extract.")],
    labels: Annotated[str, typer.Option("--labels", help="TSV to append labels to (created if missing; maps already in it are skipped).")],
    limit: Annotated[Optional[int], typer.Option("--limit", "-n", help="Stop after this many maps in this session.")] = None,
    heads: Annotated[Optional[str], typer.Option("--heads", help="Only these heads, e.g. L1H2,L7H6.")] = None,
    seed: c.SeedOpt = 0,
    hint: Annotated[bool, typer.Option("--hint", help="Show the default rules' guess and features under each map (may bias you).")] = False,
    max_tokens: Annotated[int, typer.Option("--max-tokens", help="Show at most this many tokens of a map.")] = 48,
    no_locking: c.NoLockingOpt = False,
    no_validate: c.NoValidateOpt = False,
    fmt: c.FormatOpt = "table",
    table: c.TableOpt = None,
    quiet: c.QuietOpt = False,
    verbose: c.VerboseOpt = 0,
    debug: c.DebugOpt = False,
) -> None:
    """Label maps by hand: one heatmap with its tokens at a time, one key per label.

    Keys: v vertical, d diagonal, m vertical+diagonal (mixed), b block, h heterogeneous, s skip, q quit.
    Maps come in a seeded random order over examples, layers and heads. Every key press is appended to the TSV
    at once (columns: store, example, layer, head, label, example_id; layer/head 1-based, the store path relative
    to the TSV), so quitting loses nothing, a rerun resumes where you stopped, and the TSV and store can be shared.
    When stdin is not a terminal, keys are read from it (e.g. printf 'vvdh' | bertsecrets classify annotate ...).
    """
    out_fmt = c.check_format(fmt, table)

    def body() -> None:
        from bertsecrets_cli.heads import parse_heads
        from bertsecrets_cli.jobs.annotate import AnnotateOptions, run_annotate
        from bertsecrets_cli.render.console import info
        from bertsecrets_cli.render.tables import emit

        if limit is not None and limit < 1:
            from bertsecrets_cli.errors import InputError

            raise InputError(f"--limit {limit}: must be at least 1")
        opts = AnnotateOptions(limit=limit, seed=seed, heads=parse_heads(heads) if heads else None, hint=hint,
                               locking=False if no_locking else None, max_tokens=max_tokens)
        res = run_annotate(store, labels, opts)
        emit(res.table, out_fmt)
        info(f"{res.labelled} labelled, {res.skipped} skipped in this session; {res.remaining} maps left; labels in {labels}")

    c.run("classify annotate", body, quiet=quiet, verbose=verbose, debug=debug, inputs=[store], outputs=[labels], no_validate=no_validate)


@classify_app.command("train", epilog=c.examples("bertsecrets classify train labels.tsv -o clf.pt", "bertsecrets classify train --synthetic 2000 --epochs 5 -o synth.pt"))
def train(
    labels: Annotated[Optional[list[str]], typer.Argument(help="Annotation TSVs from 'classify annotate' (several are merged).")] = None,
    output: Annotated[str, typer.Option("--output", "-o", help="Classifier file to write (e.g. clf.pt).")] = "classifier.pt",
    synthetic: Annotated[int, typer.Option("--synthetic", help="Add this many generated maps of the five types (try it without annotations).")] = 0,
    noise: Annotated[Optional[float], typer.Option("--noise", help="Noise of the generated maps, 0-1 (default: the generator's, 0.2).")] = None,
    epochs: Annotated[int, typer.Option("--epochs", help="Training epochs (the paper's code: 200).")] = 200,
    batch_size: c.BatchOpt = 64,
    lr: Annotated[float, typer.Option("--lr", help="Adam learning rate.")] = 1e-3,
    val_fraction: Annotated[float, typer.Option("--val-fraction", help="Stratified validation share.")] = 0.2,
    patience: Annotated[int, typer.Option("--patience", help="Stop after this many epochs without a better validation accuracy (0: never).")] = 0,
    input_: Annotated[str, typer.Option("--input", help="scaled (map x length; default, trains faster) or raw (probabilities, as the paper's code).")] = "scaled",
    seed: c.SeedOpt = 0,
    device: c.DeviceOpt = "auto",
    force: c.ForceOpt = False,
    no_locking: c.NoLockingOpt = False,
    fmt: c.FormatOpt = "table",
    table: c.TableOpt = None,
    quiet: c.QuietOpt = False,
    verbose: c.VerboseOpt = 0,
    debug: c.DebugOpt = False,
) -> None:
    """Train the paper's CNN (8 convolutions with ReLU) on annotated maps; print validation F1 per class and the confusion matrix.

    Stratified train/validation split; Adam; the epoch with the best validation accuracy is kept. The file records
    the training data (labels files with their sha256, or the synthetic settings), options, scores, and the default
    rules' score on the same validation maps. Apply it with 'bertsecrets classify STORE --classifier FILE'.
    """
    out_fmt = c.check_format(fmt, table)

    def body() -> None:
        from bertsecrets_cli.jobs.train_classifier import TrainOptions, run_train
        from bertsecrets_cli.render.console import info
        from bertsecrets_cli.render.tables import emit

        opts = TrainOptions(labels=list(labels or []), synthetic=synthetic, noise=noise, epochs=epochs, batch_size=batch_size, lr=lr,
                            val_fraction=val_fraction, patience=patience, input=input_, seed=seed, device=device, force=force,
                            locking=False if no_locking else None, quiet=quiet)
        res = run_train(opts, output)
        emit(res.tables, out_fmt)
        info(f"wrote {res.path}: validation macro-F1 {res.scores['macro_f1']:.3f}, accuracy {res.scores['accuracy']:.3f} (epoch {res.best_epoch})")

    c.run("classify train", body, quiet=quiet, verbose=verbose, debug=debug, inputs=_labels_and_their_stores(labels or []), outputs=[output])


def _labels_and_their_stores(labels: list[str]) -> Iterator[str]:
    """The label files and the stores they refer to, read lazily: inside run(), where a bad file is one error line."""
    yield from labels
    from bertsecrets_cli.jobs.labels import stores_named

    yield from stores_named(labels)
