"""``bertsecrets extract``: options and help only; the work is jobs.extract.run_extract."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from bertsecrets_cli.cli import common as c


def extract(
    output: Annotated[str, typer.Option("--output", "-o", help="Store to write (.h5); '-' writes it to stdout.")],
    model: c.ModelOpt = None,
    task: c.TaskOpt = "sst2",
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
    encoding: Annotated[str, typer.Option("--encoding", autocompletion=c.complete_from("bertsecrets_cli.jobs.choices", "ENCODINGS"), help="Stored values: float16 (default), float32, or uint8 (lossy, 6x smaller, abs error <= 0.002).")] = "float16",
    compression: Annotated[str, typer.Option("--compression", autocompletion=c.complete_from("bertsecrets_cli.jobs.choices", "COMPRESSIONS"), help="none (default, fastest), lzf or gzip.")] = "none",
    part_size: c.PartSizeOpt = 4096,
    quantities: c.QuantitiesOpt = "weights",
    stride: Annotated[Optional[int], typer.Option("--stride", help="Read --data as a corpus (.txt: one document; .jsonl: 'text' per line) cut into windows of --max-length tokens starting every STRIDE tokens; each window is an example, its document and character span are stored.")] = None,
    maps: Annotated[str, typer.Option("--maps", autocompletion=c.complete_from("bertsecrets_cli.jobs.choices", "MAPS"), help="What to keep of the maps: full (default), topk:K (each row's K largest weights, "
                                      "their key positions and the row's remaining mass; view and plot --example read it) or none "
                                      "(statistics and classify's features only). See docs/guide/extract.md, 'Maps at scale'.")] = "full",
    memory: Annotated[str, typer.Option("--memory", autocompletion=c.complete_from("bertsecrets_cli.jobs.choices", "MEMORY"), help="auto (default: flat on a GPU, fast on the CPU), fast (the C heap as any PyTorch program uses it; "
                                        "peak memory grows ~10% per tenfold examples on long-tailed data) or flat (peak memory flat in the number of examples; "
                                        "on a CPU 30-50% slower for small models). Results are identical. See docs/guide/extract.md, 'Memory and speed'.")] = "auto",
    shard: c.ShardOpt = None,
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
    """Extract the attention maps of a model over a data set into a store.

    Stores every example's [layer, head, query, key] attention cropped to its real length, its tokens,
    and per-head summaries (entropy; mass on [CLS], [SEP], punctuation, self, previous and next token).
    Prints the per-layer summary table. With --quantities, the same pass also stores norm-based attention
    (||alpha f(x)||, Kobayashi et al. 2020) and per-layer rollout or flow (Abnar & Zuidema 2020), each with
    its own per-head summaries; every analysis reads them with --quantity.
    """
    out_fmt = c.check_format(fmt, table)

    def body() -> None:
        from bertsecrets_cli.jobs.extract import ExtractOptions, run_extract
        from bertsecrets_cli.render.console import info
        from bertsecrets_cli.render.tables import emit
        from bertsecrets_cli.cli.spool import output_path

        opts = ExtractOptions(
            model=model, data=c.data_options(task, data, split, limit, sample, seed, text_columns, label_column, id_column),
            max_length=max_length, batch_size=batch_size, device=device, encoding=encoding, compression=compression,
            part_size=part_size, shard=shard, quantities=tuple(quantities.split(",")), stride=stride, maps=maps, memory=memory, resume=resume, force=force or output == "-", locking=False if no_locking else None, quiet=quiet,
        )
        with output_path(output) as path:
            res = run_extract(opts, path)
            emit(res.summary, out_fmt, c.table_stream(output))
        info(f"wrote {res.n_examples} examples x {res.n_layers} layers x {res.n_heads} heads to {output if output != '-' else 'stdout'}")

    c.run("extract", body, quiet=quiet, verbose=verbose, debug=debug, inputs=[data, model], outputs=[output])
