"""``bertsecrets finetune``: options and help only; the work is jobs.finetune.run_finetune / run_eval_only."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from bertsecrets_cli.cli import common as c

_H = "Hyperparameters (override --preset)"
_D = "Data"
_E = "Evaluation and baselines"
_R = "Run control"


def finetune(
    output: Annotated[Optional[str], typer.Option("--output", "-o", help="Model folder to write (e.g. runs/rte). With --eval-only: an optional evaluation store (.h5; '-' = stdout).")] = None,
    model: c.ModelOpt = None,
    task: Annotated[Optional[str], typer.Option("--task", "-t", autocompletion=c.complete_from("bertsecrets_cli.jobs.choices", "TASKS"), help="GLUE task: cola, sst2, mrpc, qqp, stsb, mnli, qnli, rte, wnli (default: the task a fine-tuned --model records, else sst2).")] = None,
    data: Annotated[Optional[str], typer.Option("--data", "-d", help="GLUE task folder (train.tsv + dev.tsv), hub data set id, or a .tsv/.csv/.jsonl training file; default: the shipped demo data.", rich_help_panel=_D)] = None,
    eval_data: Annotated[Optional[str], typer.Option("--eval-data", help="Evaluation data when it is not the --split of --data (needed when --data is a single file).", rich_help_panel=_D)] = None,
    split: Annotated[str, typer.Option("--split", autocompletion=c.complete(c.SPLIT_CHOICES), help="Split to evaluate on: dev (dev_matched for MNLI), dev_mismatched, train.", rich_help_panel=_D)] = "dev",
    train_limit: Annotated[Optional[int], typer.Option("--train-limit", help="Train on at most this many examples (the first ones; --sample for a seeded sample).", rich_help_panel=_D)] = None,
    eval_limit: Annotated[Optional[int], typer.Option("--eval-limit", help="Evaluate on at most this many examples.", rich_help_panel=_D)] = None,
    sample: Annotated[bool, typer.Option("--sample", help="--train-limit/--eval-limit take a seeded random sample instead of the first examples.", rich_help_panel=_D)] = False,
    text_columns: Annotated[Optional[str], typer.Option("--text-columns", help="Comma-separated text column(s) of a CSV/TSV/JSONL file.", rich_help_panel=_D)] = None,
    label_column: Annotated[Optional[str], typer.Option("--label-column", help="Label column of a CSV/TSV/JSONL file.", rich_help_panel=_D)] = None,
    id_column: Annotated[Optional[str], typer.Option("--id-column", help="Id column of a CSV/TSV/JSONL file.", rich_help_panel=_D)] = None,
    preset: Annotated[str, typer.Option("--preset", autocompletion=c.complete_from("bertsecrets_cli.jobs.choices", "PRESETS"), help="paper: batch 32, 3 epochs, lr 5e-5, max length 128, warmup 0.1, weight decay 0.01, seed 42 (Kovaleva et al. 2019 and their code). demo: batch 16, 2 epochs, lr 1e-4, max length 64 (a quick CPU run on the demo data).", rich_help_panel=_H)] = "paper",
    lr: Annotated[Optional[float], typer.Option("--lr", help="Peak learning rate (AdamW, linear warmup then linear decay).", rich_help_panel=_H)] = None,
    epochs: Annotated[Optional[float], typer.Option("--epochs", help="Training epochs.", rich_help_panel=_H)] = None,
    batch_size: Annotated[Optional[int], typer.Option("--batch-size", "-b", help="TOTAL batch size, split over torchrun processes and --grad-accum steps.", rich_help_panel=_H)] = None,
    max_length: Annotated[Optional[int], typer.Option("--max-length", help="Truncate inputs to this many tokens (training and evaluation).", rich_help_panel=_H)] = None,
    warmup: Annotated[Optional[float], typer.Option("--warmup", help="Warmup: a fraction of the steps (< 1) or a number of steps.", rich_help_panel=_H)] = None,
    weight_decay: Annotated[Optional[float], typer.Option("--weight-decay", help="AdamW weight decay (not on biases and LayerNorm).", rich_help_panel=_H)] = None,
    seed: Annotated[Optional[int], typer.Option("--seed", help="Seed of the classification head, dropout, data order and --sample.", rich_help_panel=_H)] = None,
    max_steps: Annotated[Optional[int], typer.Option("--max-steps", help="Stop after this many optimisation steps (overrides --epochs).", rich_help_panel=_H)] = None,
    grad_accum: Annotated[Optional[int], typer.Option("--grad-accum", help="Gradient accumulation steps (the total batch stays --batch-size).", rich_help_panel=_H)] = None,
    precision: Annotated[Optional[str], typer.Option("--precision", help="fp32 (default), bf16, or fp16 (CUDA only).", rich_help_panel=_H)] = None,
    init: Annotated[str, typer.Option("--init", help="pretrained (default), or random: the same architecture with fresh N(0, 0.02) weights (the paper's Table 1 baseline).")] = "pretrained",
    eval_only: Annotated[bool, typer.Option("--eval-only", help="Only evaluate --model (a fine-tuned folder; or with --untrained-head / --init random, the Table 1 baselines).", rich_help_panel=_E)] = False,
    untrained_head: Annotated[bool, typer.Option("--untrained-head", help="With --eval-only: give a model without a classification head a fresh (seeded) one.", rich_help_panel=_E)] = False,
    no_baselines: Annotated[bool, typer.Option("--no-baselines", help="Skip the untrained-head evaluation before training (and the majority row with --eval-only).", rich_help_panel=_E)] = False,
    eval_batch_size: Annotated[int, typer.Option("--eval-batch-size", help="Examples per evaluation forward pass.", rich_help_panel=_E)] = 64,
    save_steps: Annotated[int, typer.Option("--save-steps", help="Save a checkpoint for --resume every N steps, and when stopped by SIGTERM/SIGINT (0: never; --resume then starts over).", rich_help_panel=_R)] = 500,
    logging_steps: Annotated[int, typer.Option("--logging-steps", help="Print the training loss on stderr every N steps.", rich_help_panel=_R)] = 10,
    device: c.DeviceOpt = "auto",
    resume: Annotated[bool, typer.Option("--resume", help="Continue an interrupted run from the last checkpoint in <output>.partial (same options).", rich_help_panel=_R)] = False,
    force: c.ForceOpt = False,
    no_locking: c.NoLockingOpt = False,
    fmt: c.FormatOpt = "table",
    table: c.TableOpt = None,
    quiet: c.QuietOpt = False,
    verbose: c.VerboseOpt = 0,
    debug: c.DebugOpt = False,
) -> None:
    """Fine-tune a model on a GLUE task with transformers' Trainer, evaluate it, and print the metrics.

    Writes a model folder (weights, tokenizer, config with the label names) that every other subcommand takes as --model, holding eval.h5 (per-example logits, predictions, labels, metrics, provenance) and finetune.json. The table shows the majority-class and untrained-head baselines beside the fine-tuned model. Training happens in <output>.partial/ (checkpoints for --resume), renamed when complete. Exit codes: 3 bad data/option, 5 model unusable (e.g. no classification head with --eval-only), 6 output exists, 75 interrupted (rerun with --resume).

    """
    out_fmt = c.check_format(fmt, table)

    def body() -> None:
        from bertsecrets_cli.errors import InputError
        from bertsecrets_cli.jobs.finetune import FinetuneOptions, run_eval_only, run_finetune
        from bertsecrets_cli.render.console import info
        from bertsecrets_cli.render.tables import emit
        from bertsecrets_cli.cli.spool import output_path

        cols = tuple(x.strip() for x in text_columns.split(",") if x.strip()) if text_columns else None
        for name, v in (("--train-limit", train_limit), ("--eval-limit", eval_limit)):
            if v is not None and v < 1:
                raise InputError(f"{name} {v}: must be at least 1")
        if untrained_head and not eval_only:
            raise InputError("--untrained-head goes with --eval-only (training always starts from a fresh head)")
        opts = FinetuneOptions(
            model=model, task=task, data=data, eval_data=eval_data, split=split, text_columns=cols, label_column=label_column,
            id_column=id_column, train_limit=train_limit, eval_limit=eval_limit, sample=sample, preset=preset,
            overrides={"lr": lr, "epochs": epochs, "batch_size": batch_size, "max_length": max_length, "warmup": warmup,
                       "weight_decay": weight_decay, "seed": seed, "max_steps": max_steps, "grad_accum": grad_accum, "precision": precision},
            init=init, eval_only=eval_only, untrained_head=untrained_head, baselines=not no_baselines, eval_batch_size=eval_batch_size,
            save_steps=save_steps, logging_steps=logging_steps, device=device, resume=resume, force=force or output == "-",
            quiet=quiet, locking=False if no_locking else None,
        )
        if eval_only:
            if resume:
                raise InputError("--resume continues a training run; it does not go with --eval-only")
            if output is None:
                res = run_eval_only(opts, None)
                emit(res.table, out_fmt)
                return
            with output_path(output) as path:
                res = run_eval_only(opts, path)
                emit(res.table, out_fmt, c.table_stream(output))
            info(f"wrote the evaluation of {res.n_eval} examples to {output if output != '-' else 'stdout'}")
            return
        if output is None:
            raise InputError("--output/-o: give the model folder to write (for example -o runs/sst2), or pass --eval-only")
        res = run_finetune(opts, output)
        if res.table is not None:
            emit(res.table, out_fmt)

    c.run("finetune", body, quiet=quiet, verbose=verbose, debug=debug, inputs=[model, data, eval_data], outputs=[output])
