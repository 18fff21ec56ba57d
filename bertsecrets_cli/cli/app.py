"""The ``bertsecrets`` command: registers the subcommands that work."""

from __future__ import annotations

import typer

from bertsecrets_cli import __version__
from bertsecrets_cli.cli.ablate import ablate
from bertsecrets_cli.cli.common import examples
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
from bertsecrets_cli.cli.words import words
from bertsecrets_cli.cli.cluster import cluster
from bertsecrets_cli.cli.coref import coref
from bertsecrets_cli.cli.probe import probe
from bertsecrets_cli.cli import common as c

app = typer.Typer(
    name="bertsecrets",
    help="Analyse the self-attention heads of BERT-like encoders (Kovaleva et al. 2019, 'Revealing the Dark Secrets of BERT', and more).\n\n"
    "Heads are named L<layer>H<head>, 1-based. Results go to stdout, diagnostics to stderr. "
    "Exit codes: 0 ok, 1 internal error, 2 usage, 3 bad input, 4 bad store, 5 model, 6 output, 75 interrupted (rerun; with --resume where the command kept its work).",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    # no auto_envvar_prefix: click would then read BERTSECRETS_<OPTION> for every option, and a stray
    # BERTSECRETS_VERSION or BERTSECRETS_INSTALL_COMPLETION in a cluster's environment would hijack every
    # command. Only the variables docs/guide/conventions.md documents (declared with envvar= on their options) are read.
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        print(f"bertsecrets {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version and exit.")) -> None:
    """Analyse the self-attention heads of BERT-like encoders."""


# Every --help ends with these: real command lines, in the order a user meets them.
EXAMPLES = {
    "extract": ("bertsecrets extract --task sst2 --limit 100 -o pre.h5",
                "bertsecrets extract --model bert-base-uncased --task mrpc --data glue_data/MRPC --split dev --device cuda -o mrpc-pre.h5"),
    "finetune": ("bertsecrets finetune --task sst2 --preset demo -o runs/sst2",
                 "bertsecrets finetune --task rte --data glue_data/RTE --model bert-base-uncased --preset paper -o runs/rte"),
    "check": ("bertsecrets check pre.h5 pat.h5",
              "bertsecrets extract --task sst2 --limit 8 -o - | bertsecrets check -"),
    "merge": ("bertsecrets merge pre-0.h5 pre-1.h5 pre-2.h5 pre-3.h5 -o pre.h5",
              "bertsecrets merge pat-*.h5 -o pat.h5 --format tsv"),
    "reproduce": ("bertsecrets reproduce -o paper-demo",
                  "bertsecrets reproduce -o paper-bert-base --model bert-base-uncased --data glue_data --tasks mrpc,sst2 --preset paper --device cuda"),
    "diff": ("bertsecrets diff pre.h5 ft.h5 -o diff.h5",
             "bertsecrets diff pre.h5 ft.h5 --format tsv --table heads | sort -k3 -g | head"),
    "plot": ("bertsecrets plot diff.h5",
             "bertsecrets plot pre.h5 --example 3 --layer 2 --head 6 -o map.svg"),
    "show": ("bertsecrets show abl.h5 --top 10 --abs",
             "bertsecrets show diff.h5 --quantity cosine --bottom --layer 6 --format json | jq '.[0].head'"),
    "framenet": ("bertsecrets framenet --framenet ~/data/fndata-1.7 --model runs/sst2 -o fn.h5",
                 "bertsecrets framenet --conllu en_ewt-ud-dev.conllu -o dep.h5 --top 5 --format tsv --table heads"),
    "ablate": ("bertsecrets ablate --model runs/sst2 --task sst2 -o abl.h5",
               "bertsecrets ablate --model runs/sst2 --task sst2 --heads L2H3,L5H7 --no-sweep --bootstrap 1000 -o abl-two.h5"),
    "view": ("bertsecrets view pre.h5 -o view.html",
             "bertsecrets view ft.h5 --patterns ft.pat.h5 --diff diff.h5 --ablation abl.h5 --sample -n 16 -o view.html"),
}

for _name, _fn in (("extract", extract), ("finetune", finetune), ("check", check), ("merge", merge), ("reproduce", reproduce),
                   ("diff", diff), ("plot", plot), ("show", show), ("framenet", framenet), ("ablate", ablate),
                   ("view", view)):
    app.command(_name, epilog=examples(*EXAMPLES[_name]))(_fn)
app.add_typer(classify_app, name="classify")
app.command("words", epilog=c.examples("bertsecrets words pre.h5 -o words.h5", "bertsecrets words pre.h5 -o words.h5 --word-boundaries whitespace"))(words)
app.command("cluster", epilog=c.examples("bertsecrets cluster words.h5 -o clusters.h5 --figure heads.png", "bertsecrets cluster pre.h5 -o clusters.h5 --patterns pat.h5 -k 5"))(cluster)
app.command("coref", epilog=c.examples("bertsecrets coref en_gum-corefud-dev.conllu -o coref.h5", "bertsecrets coref mentions.jsonl -o coref.h5 --model bert-base-cased -k 5"))(coref)
app.command("probe", epilog=c.examples("bertsecrets probe --train en_ewt-ud-train.conllu --test en_ewt-ud-dev.conllu -o probe.h5", "bertsecrets probe --train train.conllu --test dev.conllu -o probe.h5 --embedding-dims 0 -n 2000"))(probe)

