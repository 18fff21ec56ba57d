"""Options shared by every subcommand, and the wrapper that turns failures into one line + exit code."""

from __future__ import annotations

import os
import sys
import traceback
import warnings
from collections.abc import Callable, Iterable
from typing import Annotated, Any, Optional

import typer

from bertsecrets_cli.errors import EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_OUTPUT, BertsecretsError

# --- completion of option values with a fixed set of choices (bash, zsh and fish call back into the program) ---
def complete(values: Callable[[], Iterable[str]] | Iterable[str]) -> Callable[[str], list[str]]:
    """An ``autocompletion`` callback: the choices that start with what was typed. ``values`` may be a function,
    so the library's own list is imported only when a shell asks (start-up stays fast)."""

    def fn(incomplete: str) -> list[str]:
        return [v for v in (values() if callable(values) else values) if v.startswith(incomplete)]

    return fn


def complete_from(module: str, name: str) -> Callable[[str], list[str]]:
    """Complete from the library's own list ``module.name`` (a tuple, or the keys of a dict), imported when asked."""
    import importlib

    return complete(lambda: list(getattr(importlib.import_module(module), name)))


FORMAT_CHOICES = ("table", "tsv", "json")
DEVICE_CHOICES = ("auto", "cpu", "cuda", "cuda:0", "cuda:1")
SPLIT_CHOICES = ("train", "dev", "dev_mismatched", "test")
PRESET_CHOICES = ("demo", "paper")

# --- shared option types -------------------------------------------------------------------
FormatOpt = Annotated[str, typer.Option("--format", "-f", help="Table output: table, tsv or json.", autocompletion=complete(FORMAT_CHOICES), envvar="BERTSECRETS_FORMAT", show_envvar=False)]
TableOpt = Annotated[Optional[str], typer.Option("--table", help="With several result tables: print only this one, by its short name (tsv and json print one table per call, the first by default; with json, 'all' prints every table as one object).")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress or diagnostics on stderr: only errors, and notes that change how a result reads.")]
VerboseOpt = Annotated[int, typer.Option("--verbose", "-v", count=True, help="More diagnostics on stderr (repeatable).")]
DebugOpt = Annotated[bool, typer.Option("--debug", help="Show the traceback of an error.", envvar="BERTSECRETS_DEBUG", show_envvar=False)]
ForceOpt = Annotated[bool, typer.Option("--force", help="Replace an existing output (only once the new one is complete).")]
NoLockingOpt = Annotated[bool, typer.Option("--no-locking", help="Open HDF5 files without file locking (NFS/Lustre).", envvar="BERTSECRETS_NO_LOCKING", show_envvar=False)]
DeviceOpt = Annotated[str, typer.Option("--device", help="auto, cpu, cuda or cuda:N.", autocompletion=complete(DEVICE_CHOICES), envvar="BERTSECRETS_DEVICE", show_envvar=False)]
ModelOpt = Annotated[Optional[str], typer.Option("--model", "-m", help="Hub id, local save_pretrained folder, or 'embedded' (default: the MiniLM BERT shipped with the package).", envvar="BERTSECRETS_MODEL", show_envvar=False)]
TaskOpt = Annotated[str, typer.Option("--task", "-t", help="GLUE task: cola, sst2, mrpc, qqp, stsb, mnli, qnli, rte, wnli.", autocompletion=complete_from("bertsecrets_cli.jobs.choices", "TASKS"))]
DataOpt = Annotated[Optional[str], typer.Option("--data", "-d", help="GLUE task folder (glue_data/SST-2), a .tsv/.csv/.jsonl file, or a hub data set id; default: the shipped demo data.")]
SplitOpt = Annotated[str, typer.Option("--split", help="train, dev (dev_matched for MNLI), dev_mismatched or test.", autocompletion=complete(SPLIT_CHOICES))]
LimitOpt = Annotated[Optional[int], typer.Option("--limit", "-n", help="At most this many examples (the paper used 1000 dev examples).")]
SampleOpt = Annotated[bool, typer.Option("--sample", help="Take a seeded random sample of --limit examples instead of the first ones.")]
SeedOpt = Annotated[int, typer.Option("--seed", help="Seed for sampling (and training).")]
MaxLenOpt = Annotated[int, typer.Option("--max-length", help="Truncate inputs to this many tokens.")]
BatchOpt = Annotated[int, typer.Option("--batch-size", "-b", help="Examples per forward pass.")]
TextColsOpt = Annotated[Optional[str], typer.Option("--text-columns", help="Comma-separated text column(s) of a CSV/TSV/JSONL file.")]
LabelColOpt = Annotated[Optional[str], typer.Option("--label-column", help="Label column of a CSV/TSV/JSONL file.")]
IdColOpt = Annotated[Optional[str], typer.Option("--id-column", help="Id column of a CSV/TSV/JSONL file.")]
ShardOpt = Annotated[Optional[str], typer.Option("--shard", help="Do only shard i/n of the work (0-based, contiguous ranges), e.g. 0/4; "
                                               "'auto' reads RANK/WORLD_SIZE or SLURM_ARRAY_TASK_ID/_MIN/_COUNT (extract reads them even without it). "
                                               "Join the shard stores with 'bertsecrets merge'.")]
PartSizeOpt = Annotated[int, typer.Option("--part-size", help="Examples per resumable part: a stopped run keeps its finished parts for --resume.")]
QuantitiesOpt = Annotated[str, typer.Option("--quantities", help="Maps to store, comma-separated: weights (always), norms (||alpha f(x)||, Kobayashi et al. 2020), "
                                           "norms_normalised (rows sum to 1), rollout (per layer, Abnar & Zuidema 2020), flow (per layer, rows divided by their sums as Abnar's code; costly: --max-length <= 64), "
                                           "flow_raw (the max-flow values before that division). "
                                           "All from the same forward pass.")]
QuantityOpt = Annotated[str, typer.Option("--quantity", autocompletion=complete_from("bertsecrets_cli.jobs.choices", "QUANTITIES"), help="Which attention maps to analyse: weights (default), norms, norms_normalised, rollout, flow (rows normalised, as Abnar's code) or flow_raw "
                                          "(a store holds those given to extract --quantities; framenet computes them on the fly); tables name it.")]
# one vocabulary for every command where ours and the authors' definitions differ (analysis/definitions.py)
DefinitionOpt = Annotated[str, typer.Option("--definition", autocompletion=complete_from("bertsecrets_cli.jobs.choices", "DEFINITIONS"), help="Whose definition to follow where they differ: ours (default) or authors "
                                            "(the released code behind the paper's number; docs/guide/clark.md: Whose definition). Stored and named in every table title.")]
ResumeOpt = Annotated[bool, typer.Option("--resume", help="Continue an interrupted run with the same options.")]
NoValidateOpt = Annotated[bool, typer.Option("--no-validate", help="Trust the input stores: skip the check that they hold every part their kind needs and that attention is finite, in [0, 1] and sums to 1 per row (check always does it).",
                                             envvar="BERTSECRETS_NO_VALIDATE", show_envvar=False)]


def data_options(task: str, data: str | None, split: str, limit: int | None, sample: bool, seed: int,
                 text_columns: str | None, label_column: str | None, id_column: str | None) -> Any:
    from bertsecrets_cli.jobs.extract import DataOptions

    cols = tuple(c.strip() for c in text_columns.split(",") if c.strip()) if text_columns else None
    return DataOptions(task=task, data=data, split=split, limit=limit, sample=sample, seed=seed,
                       text_columns=cols, label_column=label_column, id_column=id_column)


def check_format(fmt: str, table: str | None = None) -> Any:
    """``--format`` and ``--table`` as one value for ``render.tables.emit``; a bad format is a usage error."""
    from bertsecrets_cli.render.tables import FORMATS, OutputFormat

    if fmt not in FORMATS:
        raise typer.BadParameter(f"{fmt!r}: choose one of {', '.join(FORMATS)}", param_hint="--format")
    return OutputFormat(fmt, table)


def run(command: str, body: Callable[[], Any], *, quiet: bool = False, verbose: int = 0, debug: bool = False,
        inputs: Iterable[str | None] = (), outputs: Iterable[str | None] = (), no_validate: bool = False) -> None:
    """Run a subcommand's body: expected failures become one stderr line and their exit code.

    ``outputs`` may never be any of ``inputs`` (cli.clobber), checked here for every command before
    its body; ``no_validate`` turns off the validation of the stores it reads (store.validation).
    """
    from bertsecrets_cli import __version__
    from bertsecrets_cli.render.console import debug as note_debug
    from bertsecrets_cli.render.console import set_verbosity

    set_verbosity(-1 if quiet else verbose)
    note_debug(f"bertsecrets {__version__} {command}: python {sys.version.split()[0]}, argv {' '.join(sys.argv[1:])}")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        from bertsecrets_cli.cli.clobber import refuse_inputs_as_outputs
        from bertsecrets_cli.jobs.integrity import set_validation

        refuse_inputs_as_outputs(list(outputs), list(inputs))
        set_validation(False if no_validate else None)
        try:
            with warnings.catch_warnings():
                warnings.showwarning = _warning_as_debug_note
                body()
        finally:
            set_validation(None)
    except BertsecretsError as e:
        if debug:
            traceback.print_exc()
        print(f"bertsecrets {command}: error: {e}", file=sys.stderr)
        _exit_now_if_hdf5_is_broken(e.exit_code)
        raise typer.Exit(e.exit_code) from None
    except KeyboardInterrupt:
        print(f"bertsecrets {command}: interrupted", file=sys.stderr)
        raise typer.Exit(EXIT_INTERRUPTED) from None
    except BrokenPipeError:
        # the reader of our stdout went away (| head): not an error of ours
        try:
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115
        finally:
            raise typer.Exit(0) from None
    except OSError as e:
        if debug:
            traceback.print_exc()
        from bertsecrets_cli.jobs.integrity import explain_os_error

        hdf5 = explain_os_error(e)  # raised inside h5py: diagnosed from the stores' files, not from its message
        if hdf5 is not None:
            print(f"bertsecrets {command}: error: {hdf5}", file=sys.stderr)
            raise typer.Exit(hdf5.exit_code) from None
        msg = e.strerror or (str(e).splitlines()[0] if str(e) else type(e).__name__)
        print(f"bertsecrets {command}: error: {getattr(e, 'filename', None) or ''}{': ' if getattr(e, 'filename', None) else ''}{msg}", file=sys.stderr)
        raise typer.Exit(EXIT_OUTPUT) from None
    except typer.Exit:
        raise
    except Exception as e:  # noqa: BLE001 - the last line of defence
        if debug:
            traceback.print_exc()
        stop = _signal_stop_inside(e)
        if stop is not None:
            print(f"bertsecrets {command}: error: {stop}", file=sys.stderr)
            raise typer.Exit(EXIT_INTERRUPTED) from None
        print(f"bertsecrets {command}: internal error: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''} (rerun with --debug for the traceback, and please report it)", file=sys.stderr)
        raise typer.Exit(EXIT_INTERNAL) from None


def _signal_stop_inside(e: BaseException) -> BaseException | None:
    """The stop a SIGTERM raised (jobs.signals) when Python re-raised it wrapped, else None.

    A signal handler's exception surfaces wherever the main thread is; inside a class body's ``__set_name__``
    (importing rich, say) Python wraps it in a RuntimeError, which must stay a stop (exit 75), not an internal error.
    """
    from bertsecrets_cli.errors import Interrupted

    seen: set[int] = set()
    cur: BaseException | None = e
    while cur is not None and id(cur) not in seen:
        if isinstance(cur, (Interrupted, KeyboardInterrupt)):
            return cur
        seen.add(id(cur))
        cur = cur.__cause__ or cur.__context__
    return None


def _warning_as_debug_note(message: Warning | str, category: type[Warning], filename: str, lineno: int, file: Any = None, line: str | None = None) -> None:
    """A library's warning is no message for the user: shown with -v as a note, never raw on stderr."""
    from bertsecrets_cli.render.console import debug

    debug(f"note: {category.__name__}: {message} ({os.path.basename(filename)}:{lineno})")


def _exit_now_if_hdf5_is_broken(code: int) -> None:
    """After a failed HDF5 write (disk full), freeing its handles crashes HDF5 (SIGSEGV): leave at once."""
    writer = sys.modules.get("bertsecrets_cli.store.writer")
    if writer is not None and writer.has_failed_handles():
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def table_stream(output: str | None) -> Any:
    """Tables go to stdout, unless a store is being written there (``-o -``)."""
    return sys.stderr if output == "-" else sys.stdout


def examples(*commands: str) -> str:
    """The epilog that ends every --help: one or two real command lines (each typed without the '$ ')."""
    return "Examples:\n\n" + "\n\n".join(f"  $ {cmd}" for cmd in commands)
