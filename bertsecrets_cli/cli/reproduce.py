"""``bertsecrets reproduce``: the paper's analyses in one command, into one folder with an index."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from bertsecrets_cli.cli import common as c


def reproduce(
    output: Annotated[str, typer.Option("--output", "-o", help="Folder for models, stores, figures, tables, views and index.md / index.html.")],
    model: c.ModelOpt = None,
    data: Annotated[Optional[str], typer.Option("--data", "-d", help="A glue_data folder (one subfolder per task, the GLUE download layout); default: the shipped demo data.")] = None,
    tasks: Annotated[str, typer.Option("--tasks", help="Comma-separated GLUE tasks; default: the demo tasks sst2,mrpc,stsb. The paper: mrpc,stsb,sst2,qqp,rte,qnli,mnli.")] = "sst2,mrpc,stsb",
    preset: Annotated[str, typer.Option("--preset", autocompletion=c.complete_from("bertsecrets_cli.jobs.choices", "PRESETS"), help="Fine-tuning preset: demo (quick CPU run) or paper (batch 32, 3 epochs, lr 5e-5).")] = "demo",
    eval_limit: Annotated[int, typer.Option("--eval-limit", help="Dev examples analysed per task (the paper: 1000).")] = 200,
    train_limit: Annotated[Optional[int], typer.Option("--train-limit", help="At most this many training examples per task.")] = None,
    max_steps: Annotated[Optional[int], typer.Option("--max-steps", help="Stop fine-tuning after this many steps.")] = None,
    bootstrap: Annotated[int, typer.Option("--bootstrap", help="Bootstrap resamples for the ablation confidence intervals.")] = 1000,
    framenet: Annotated[Optional[str], typer.Option("--framenet", help="FrameNet 1.7 folder (fndata-1.7 or NLTK's framenet_v17): adds the relation-head analysis.")] = None,
    conllu: Annotated[Optional[str], typer.Option("--conllu", help="A CoNLL-U file: adds dependency-relation heads.")] = None,
    coref: Annotated[Optional[str], typer.Option("--coref", help="Coreference chains (CorefUD CoNLL-U or JSONL): adds Clark et al.'s coreference heads.")] = None,
    probe_test: Annotated[Optional[str], typer.Option("--probe-test", help="A CoNLL-U test file: adds the attention probe, trained on --conllu.")] = None,
    device: c.DeviceOpt = "auto",
    resume: Annotated[bool, typer.Option("--resume", help="Continue a stopped run: skip the steps finished with the same options and inputs "
                                                          "(their fingerprints), continue the stopped step from its parts or checkpoint, run the rest.")] = False,
    force: c.ForceOpt = False,
    fmt: c.FormatOpt = "table",
    table: c.TableOpt = None,
    quiet: c.QuietOpt = False,
    verbose: c.VerboseOpt = 0,
    debug: c.DebugOpt = False,
) -> None:
    """Reproduce the paper end to end: fine-tune, extract, classify, diff, ablate (and FrameNet), with an index.

    Writes OUTPUT/index.md (and the same as OUTPUT/index.html, with an interactive attention view per task from views/) showing every table and figure and the paper's headline numbers next to ours.
    With the defaults (embedded model, demo data) it took 3.5 minutes on a quiet 2-core CPU (30 on one shared with
    other jobs); it says "step k of N" with an estimate as it goes. Ctrl-C or SIGTERM stops it with exit 75 keeping
    every finished step; the same command with --resume continues. With
    --model bert-base-uncased --data glue_data --tasks mrpc,stsb,sst2,qqp,rte,qnli,mnli --preset paper
    --eval-limit 1000 it runs the paper's setup (a GPU is advised).
    """
    out_fmt = c.check_format(fmt, table)

    def body() -> None:
        from bertsecrets_cli.jobs.reproduce import ReproduceOptions, run_reproduce
        from bertsecrets_cli.render.console import info
        from bertsecrets_cli.render.tables import emit

        opts = ReproduceOptions(model=model, data=data, tasks=tuple(x.strip() for x in tasks.split(",") if x.strip()), preset=preset,
                                train_limit=train_limit, max_steps=max_steps, eval_limit=eval_limit, bootstrap=bootstrap,
                                framenet=framenet, conllu=conllu, coref=coref, probe_test=probe_test, device=device, resume=resume, force=force, quiet=quiet)
        res = run_reproduce(opts, output)
        if res.comparison is not None:
            emit(res.comparison, out_fmt)
        info(f"wrote {res.index} ({res.seconds:.0f} s of work)")

    c.run("reproduce", body, quiet=quiet, verbose=verbose, debug=debug, inputs=[model, data, framenet, conllu], outputs=[output])
