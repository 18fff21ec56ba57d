"""The ``bertsecrets`` command: registers the subcommands that work."""

from __future__ import annotations

import typer

from bertsecrets_cli import __version__
from bertsecrets_cli.cli.ablate import ablate
from bertsecrets_cli.cli.check import check
from bertsecrets_cli.cli.classify import classify_app
from bertsecrets_cli.cli.diff import diff
from bertsecrets_cli.cli.plot import plot
from bertsecrets_cli.cli.show import show
from bertsecrets_cli.cli.extract import extract
from bertsecrets_cli.cli.finetune import finetune
from bertsecrets_cli.cli.merge import merge
from bertsecrets_cli.cli.reproduce import reproduce
from bertsecrets_cli.cli.framenet import framenet
from bertsecrets_cli.cli.view import view
from bertsecrets_cli.cli import common as c

app = typer.Typer(
    name="bertsecrets",
    help="Analyse the self-attention heads of BERT-like encoders (Kovaleva et al. 2019, 'Revealing the Dark Secrets of BERT', and more).\n\n"
    "Heads are named L<layer>H<head>, 1-based. Results go to stdout, diagnostics to stderr. "
    "Exit codes: 0 ok, 1 internal error, 2 usage, 3 bad input, 4 bad store, 5 model, 6 output, 75 interrupted (rerun; with --resume where the command kept its work).",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    context_settings={"auto_envvar_prefix": "BERTSECRETS", "help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        print(f"bertsecrets {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version and exit.")) -> None:
    """Analyse the self-attention heads of BERT-like encoders."""


app.command("extract")(extract)
app.command("finetune")(finetune)
app.command("check")(check)
app.command("merge")(merge)
app.command("reproduce")(reproduce)
app.command("diff")(diff)
app.command("plot")(plot)
app.command("show")(show)
app.command("framenet")(framenet)
app.command("ablate")(ablate)
app.command("view", epilog=c.examples("bertsecrets view pre.h5 -o view.html",
                                      "bertsecrets view ft.h5 --patterns ft.pat.h5 --diff diff.h5 --ablation abl.h5 --sample -n 16 -o view.html"))(view)
app.add_typer(classify_app, name="classify")


def main() -> None:
    from bertsecrets_cli.entry import main as entry

    entry()
