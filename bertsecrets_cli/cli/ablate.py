"""``bertsecrets ablate``: options and help only; the work is jobs.ablate.run_ablate / combine_ablation."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from bertsecrets_cli.cli import common as c


def ablate(
    output: Annotated[str, typer.Option("--output", "-o", help="Ablation store to write (.h5); '-' writes it to stdout.")],
    stores: Annotated[Optional[list[str]], typer.Argument(help="With --combine: the shard stores to join.", show_default=False)] = None,
    model: c.ModelOpt = None,
    task: Annotated[Optional[str], typer.Option("--task", "-t", autocompletion=c.complete_from("bertsecrets_cli.jobs.choices", "TASKS"), help="GLUE task: cola, sst2, mrpc, qqp, stsb, mnli, qnli, rte, wnli (default: the task the fine-tuned --model records, else sst2).", show_default=False)] = None,
    data: c.DataOpt = None,
    split: c.SplitOpt = "dev",
    limit: c.LimitOpt = None,
    sample: c.SampleOpt = False,
    seed: c.SeedOpt = 0,
    max_length: c.MaxLenOpt = 128,
    batch_size: c.BatchOpt = 32,
    text_columns: c.TextColsOpt = None,
    label_column: c.LabelColOpt = None,
    id_column: c.IdColOpt = None,
    mode: Annotated[str, typer.Option("--mode", autocompletion=c.complete_from("bertsecrets_cli.jobs.choices", "MODES"), help="uniform: the head attends 1/L to each of the L real tokens (the paper's disabling); "
                                      "zero: the head's output is zeroed (Michel et al., old head_mask); mean: its output is replaced by its mean over the data.")] = "uniform",
    heads: Annotated[Optional[list[str]], typer.Option("--heads", help="A set of heads disabled together, e.g. L7H6,L1H2 (1-based); repeat for more sets.")] = None,
    layers: Annotated[Optional[list[str]], typer.Option("--layers", help="A set of whole layers disabled together, e.g. L1 or 1,2; repeat for more sets.")] = None,
    sweep: Annotated[Optional[bool], typer.Option("--sweep/--no-sweep", help="Every single head and every single layer (default: on unless --heads/--layers are given).", show_default=False)] = None,
    greedy: Annotated[bool, typer.Option("--greedy", help="Keep disabling the head whose removal helps most (with --metric loss: lowers the loss most) until none helps; print the path.")] = False,
    greedy_steps: Annotated[Optional[int], typer.Option("--greedy-steps", help="Stop the greedy search after this many heads.")] = None,
    importance: Annotated[bool, typer.Option("--importance", help="Also rank heads by gradient importance (Michel et al.: |d loss / d gate|, normalised per layer; the task's loss, or with --metric loss the next-token loss).")] = False,
    bootstrap: Annotated[int, typer.Option("--bootstrap", help="Paired bootstrap resamples for the 95% intervals of each delta (0: none).")] = 1000,
    bootstrap_seed: Annotated[int, typer.Option("--bootstrap-seed", help="Seed of the bootstrap resamples.")] = 0,
    shard: Annotated[Optional[str], typer.Option("--shard", help="Evaluate only shard i of n (0-based, contiguous variant ranges), e.g. 0/4; "
                                                 "'auto' reads RANK/WORLD_SIZE or SLURM_ARRAY_TASK_ID/_MIN/_COUNT. Join the stores with --combine.")] = None,
    combine: Annotated[bool, typer.Option("--combine", help="Join the shard stores given as arguments into -o, instead of evaluating.")] = False,
    engine: Annotated[str, typer.Option("--engine", autocompletion=c.complete_from("bertsecrets_cli.jobs.choices", "ENGINES"), help="auto: the fast sweep where the model family supports it; naive: one full evaluation per variant (the reference).")] = "auto",
    top: Annotated[int, typer.Option("--top", "-k", help="Rows in the helps/hurts-most tables.")] = 10,
    metric: Annotated[str, typer.Option("--metric", autocompletion=c.complete_from("bertsecrets_cli.jobs.choices", "METRICS"), help="task: the task score of a fine-tuned classifier (default); loss: a causal language model's next-token loss and perplexity on the corpus --data (.txt or .jsonl), cut into windows of --max-length tokens, intervals over windows.")] = "task",
    device: c.DeviceOpt = "auto",
    resume: c.ResumeOpt = False,
    force: c.ForceOpt = False,
    no_locking: c.NoLockingOpt = False,
    fmt: c.FormatOpt = "table",
    table: c.TableOpt = None,
    quiet: c.QuietOpt = False,
    verbose: c.VerboseOpt = 0,
    debug: c.DebugOpt = False,
) -> None:
    """Disable attention heads and layers of a fine-tuned classifier and measure the task (paper section 4.6).

    By default evaluates the baseline, every single head and every single layer disabled, prints the heads and layers whose removal helps or hurts most with 95% bootstrap intervals ('noise?' where the interval covers 0), and writes a store with per-head grids under /heads (ablation_delta, ablation_ci_low, ablation_ci_high, importance) for plot, show and diff.

    Sharding: run `--shard i/n -o abl-i.h5` for i = 0..n-1 (or `--shard auto` in a Slurm array), then `bertsecrets ablate --combine -o abl.h5 abl-*.h5`.

    Stops: on SIGTERM/SIGINT the finished part of the sweep is kept (also saved every minute) and the command exits 75; rerun it with --resume.
    """
    out_fmt = c.check_format(fmt, table)
    if stores and not combine:
        raise typer.BadParameter(f"unexpected argument {stores[0]!r}; store arguments go with --combine", param_hint="STORES")

    def body() -> None:
        from bertsecrets_cli.jobs.ablate import AblateOptions, ablation_tables, combine_ablation, run_ablate
        from bertsecrets_cli.render.console import info
        from bertsecrets_cli.render.tables import emit
        from bertsecrets_cli.cli.spool import output_path

        with output_path(output) as path:
            if combine:
                res = combine_ablation(list(stores or []), path, force=force or output == "-", locking=False if no_locking else None)
            else:
                opts = AblateOptions(
                    model=model, data=c.data_options(task or "", data, split, limit, sample, seed, text_columns, label_column, id_column),
                    mode=mode, heads=tuple(heads or ()), layers=tuple(layers or ()), sweep=sweep, greedy=greedy, greedy_steps=greedy_steps,
                    importance=importance, bootstrap=bootstrap, bootstrap_seed=bootstrap_seed, shard=shard, engine=engine,
                    max_length=max_length, batch_size=batch_size, device=device, top=top, force=force or output == "-", quiet=quiet,
                    resume=resume, checkpoint=output != "-", locking=False if no_locking else None, metric=metric,
                )
                if metric == "loss":
                    from bertsecrets_cli.jobs.ablate_loss import run_loss_ablation

                    res = run_loss_ablation(opts, path)
                else:
                    res = run_ablate(opts, path)
            emit(ablation_tables(res, top), out_fmt, c.table_stream(output))
        info(f"wrote {len(res.names)} variants ({res.mode} mode) to {output if output != '-' else 'stdout'}")

    c.run("ablate", body, quiet=quiet, verbose=verbose, debug=debug, inputs=[model, data, *(stores or [])], outputs=[output])
