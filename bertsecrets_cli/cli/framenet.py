"""``bertsecrets framenet``: options and help only; the work is jobs.framenet.run_relations."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from bertsecrets_cli.cli import common as c


def framenet(
    output: Annotated[str, typer.Option("--output", "-o", help="Store to write (.h5); '-' writes it to stdout.")],
    framenet_dir: Annotated[Optional[str], typer.Option("--framenet", help="FrameNet 1.7 release folder (fndata-1.7, or NLTK's framenet_v17): frame/, fulltext/, lu/.")] = None,
    conllu: Annotated[Optional[str], typer.Option("--conllu", help="A CoNLL-U file: score dependency relations instead (Clark et al. 2019).")] = None,
    model: c.ModelOpt = None,
    device: c.DeviceOpt = "auto",
    batch_size: c.BatchOpt = 32,
    max_length: c.MaxLenOpt = 128,
    limit: Annotated[Optional[int], typer.Option("--limit", "-n", help="At most this many selected sentences (FrameNet) or sentences (CoNLL-U).")] = None,
    sentences: Annotated[str, typer.Option("--sentences", help="FrameNet sentences: both, fulltext, or exemplars (lu/*.xml, what the authors used).")] = "both",
    max_sentence_tokens: Annotated[int, typer.Option("--max-sentence-tokens", help="Keep sentences of at most this many word pieces, or words with --units words (paper: 12; 0 = no limit).")] = 12,
    max_fe_tokens: Annotated[int, typer.Option("--max-fe-tokens", help="Keep frame elements of at most this many word pieces, or words with --units words (paper: 3; 0 = no limit).")] = 3,
    min_distance: Annotated[int, typer.Option("--min-distance", help="Keep links whose frame element and target are at least this many pieces (or words) apart (paper: 2).")] = 2,
    units: Annotated[str, typer.Option("--units", help="FrameNet: score links between tokens (word pieces, the paper) or words "
                                       "(word-level maps: mean over the attending word's pieces, sum over the attended word's).")] = "tokens",
    core_only: Annotated[bool, typer.Option("--core-only/--all-fes", help="Only core frame elements (the paper), or all of them.")] = True,
    core_definition: Annotated[str, typer.Option("--core-definition", help="coretype: Core or Core-Unexpressed in frame/*.xml (default); coreset: members of the frame's FEcoreSets (the authors' code).")] = "coretype",
    first_pair: Annotated[bool, typer.Option("--first-pair", help="Score only zip(fe_tokens, target_tokens) pairs, as the authors' code did, instead of all pairs.")] = False,
    rank_by: Annotated[str, typer.Option("--rank-by", help="fe-to-target (query FE, key target: the paper's direction) or target-to-fe.")] = "fe-to-target",
    baseline_samples: Annotated[int, typer.Option("--baseline-samples", help="Random same-distance placements per link for the baseline and its 99th percentile (0 = none).")] = 100,
    max_offset: Annotated[int, typer.Option("--max-offset", help="Fixed-offset baseline: the target assumed at 1..N pieces either side of the frame element (at least --min-distance away).")] = 5,
    base_relations: Annotated[bool, typer.Option("--base-relations", help="CoNLL-U: count subtyped relations under their base label (nsubj:pass as nsubj).")] = False,
    min_count: Annotated[int, typer.Option("--min-count", help="CoNLL-U: table relations with at least this many arcs (all are stored).")] = 10,
    definition: c.DefinitionOpt = "ours",
    top: Annotated[int, typer.Option("--top", "-k", help="Heads shown in the ranking.")] = 10,
    examples: Annotated[int, typer.Option("--examples", help="FrameNet: show the strongest link of this many top heads.")] = 3,
    seed: c.SeedOpt = 0,
    quantity: c.QuantityOpt = "weights",
    shard: c.ShardOpt = None,
    force: c.ForceOpt = False,
    no_locking: c.NoLockingOpt = False,
    fmt: c.FormatOpt = "table",
    table: c.TableOpt = None,
    quiet: c.QuietOpt = False,
    verbose: c.VerboseOpt = 0,
    debug: c.DebugOpt = False,
) -> None:
    """Find heads that attend along frame-semantic links (FrameNet 1.7) or dependency relations (CoNLL-U).

    FrameNet (Kovaleva et al. 2019, sec. 4.2): each frame-evoking target is linked to its core frame elements;
    a head's score is its max attention over the link's word-piece pairs, averaged over links, in both
    directions, against random links at the same distance and fixed positional offsets.
    CoNLL-U (Clark et al. 2019): per relation, how often each head's most-attended word is the governor
    (and the reverse), against the best fixed offset; --definition authors applies Clark's released rule
    (the word itself and [CLS]/[SEP] excluded, reverse by transpose, offsets -3..+2, one best head). Prints the ranked heads and writes every per-head
    array to the store (/heads/framenet_* or /heads/dep_*) for plot, show and diff.
    """
    out_fmt = c.check_format(fmt, table)

    def body() -> None:
        from bertsecrets_cli.jobs.framenet import FrameNetOptions, run_relations
        from bertsecrets_cli.render.console import info
        from bertsecrets_cli.render.tables import emit
        from bertsecrets_cli.cli.spool import output_path

        opts = FrameNetOptions(
            framenet=framenet_dir, conllu=conllu, model=model, device=device, batch_size=batch_size, max_length=max_length,
            sentences=sentences, max_sentence_tokens=max_sentence_tokens, max_fe_tokens=max_fe_tokens, min_distance=min_distance,
            core_only=core_only, core_definition=core_definition, first_pair=first_pair, limit=limit, baseline_samples=baseline_samples,
            max_offset=max_offset, seed=seed, top=top, examples=examples, rank_by=rank_by, base_relations=base_relations,
            min_count=min_count, definition=definition, units=units, force=force or output == "-", quiet=quiet, shard=shard, quantity=quantity, locking=False if no_locking else None,
        )
        with output_path(output) as path:
            res = run_relations(opts, path)
            emit(res.tables, out_fmt, c.table_stream(output))
        what = "links" if res.kind == "framenet" else "arcs"
        info(f"scored {res.n_links} {what} in {res.n_sentences} sentences x {res.n_layers} layers x {res.n_heads} heads; "
             f"wrote {output if output != '-' else 'stdout'}")

    c.run("framenet", body, quiet=quiet, verbose=verbose, debug=debug, inputs=[framenet_dir, conllu, model], outputs=[output])
