"""``framenet``: heads that attend along frame-semantic links (FrameNet 1.7) or dependency relations (CoNLL-U).

Both modes read their corpus, build the sentences as model inputs, run them through the model with the same
batching as ``extract`` (jobs/attention_batches.py) and score every map as soon as it comes out of the model:
no map is kept, so memory does not grow with the corpus. Results go to a ``framenet`` or ``dependency``
store whose per-head arrays (``/heads/framenet_*``, ``/heads/dep_*``) ``plot``, ``show`` and ``diff`` read.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bertsecrets_cli.errors import InputError, ModelError
from bertsecrets_cli.heads import head_name
from bertsecrets_cli.render.console import info, note
from bertsecrets_cli.render.tables import Table

SENTENCE_SOURCES = {"both": ("fulltext", "exemplars"), "fulltext": ("fulltext",), "exemplars": ("exemplars",)}
RANK_BY = ("fe-to-target", "target-to-fe")
UNITS = ("tokens", "words")  # what FrameNet links join and the selection's sizes count
PAPER_SENTENCES = 473
WORD_RULE = "mean over the attending word's pieces, sum over the attended word's pieces"


@dataclass
class FrameNetOptions:
    """Every threshold of the paper's selection is an option; defaults are the paper's."""

    framenet: str | None = None  # release folder (fndata-1.7 or NLTK's framenet_v17)
    conllu: str | None = None  # or a CoNLL-U file: dependency relations instead
    model: str | None = None
    device: str = "auto"
    batch_size: int = 32
    max_length: int = 128
    sentences: str = "both"  # fulltext, exemplars (lu/*.xml, the authors' choice) or both
    max_sentence_tokens: int = 12  # 0 = no limit
    max_fe_tokens: int = 3  # 0 = no limit
    min_distance: int = 2
    core_only: bool = True
    core_definition: str = "coretype"  # or "coreset": the frame's FEcoreSets, as the authors' code
    first_pair: bool = False  # the authors' zip(fe_tokens, target_tokens) pairs instead of all pairs
    limit: int | None = None  # at most this many (selected) sentences
    baseline_samples: int = 100
    max_offset: int = 5
    seed: int = 0
    top: int = 10
    examples: int = 3
    rank_by: str = "fe-to-target"
    base_relations: bool = False  # CoNLL-U: 'nsubj:pass' counts as 'nsubj'
    min_count: int = 10  # CoNLL-U: relations with fewer instances are stored but not tabled
    definition: str = "ours"  # CoNLL-U: "authors" scores heads by Clark et al.'s released rule (analysis/relations.py)
    force: bool = False
    quiet: bool = False
    locking: bool | None = None  # False: --no-locking (NFS/Lustre)
    shard: str | None = None  # "i/n" or "auto": score only that contiguous range of the selected sentences
    quantity: str = "weights"  # which maps to score (schema.QUANTITIES), computed on the fly like the weights
    units: str = "tokens"  # FrameNet: "tokens" (word pieces, the paper) or "words" (word-level maps, Clark et al.'s rule)


@dataclass
class RelationsJobResult:
    path: Path
    kind: str  # "framenet" or "dependency"
    tables: list[Table]
    n_sentences: int
    n_links: int  # frame-element links, or dependency arcs scored
    n_layers: int
    n_heads: int
    timings: dict[str, float] = field(default_factory=dict)


def _check(opts: FrameNetOptions) -> None:
    from bertsecrets_cli.jobs.quantities import check_flow_length, check_quantity

    check_quantity(opts.quantity)
    check_flow_length([opts.quantity], opts.max_length)
    if (opts.framenet is None) == (opts.conllu is None):
        raise InputError("give exactly one of --framenet DIR (frame-semantic links) or --conllu FILE (dependency relations)")
    if opts.batch_size < 1:
        raise InputError(f"--batch-size {opts.batch_size}: must be at least 1")
    if not 4 <= opts.max_length <= 4096:
        raise InputError(f"--max-length {opts.max_length}: must be between 4 and 4096")
    if opts.sentences not in SENTENCE_SOURCES:
        raise InputError(f"--sentences {opts.sentences}: choose one of {', '.join(SENTENCE_SOURCES)}")
    if opts.core_definition not in ("coretype", "coreset"):
        raise InputError(f"--core-definition {opts.core_definition}: choose coretype or coreset")
    if opts.units not in UNITS:
        raise InputError(f"--units {opts.units}: choose one of {', '.join(UNITS)}")
    from bertsecrets_cli.analysis.definitions import DEFINITIONS

    if opts.definition not in DEFINITIONS:
        raise InputError(f"--definition {opts.definition}: choose one of {', '.join(DEFINITIONS)}")
    if opts.framenet is not None and opts.definition != "ours":
        raise InputError(f"--definition {opts.definition}: applies to dependency heads (--conllu); the FrameNet choices of "
                         "Kovaleva et al.'s code are --core-definition coreset and --first-pair")
    if opts.conllu is not None and opts.units != "tokens":
        raise InputError(f"--units {opts.units}: dependency relations (--conllu) are always scored on the treebank's words; --units is for --framenet")
    if opts.rank_by not in RANK_BY:
        raise InputError(f"--rank-by {opts.rank_by}: choose one of {', '.join(RANK_BY)}")
    for name, v, low in (("--max-sentence-tokens", opts.max_sentence_tokens, 0), ("--max-fe-tokens", opts.max_fe_tokens, 0),
                         ("--min-distance", opts.min_distance, 0), ("--baseline-samples", opts.baseline_samples, 0),
                         ("--max-offset", opts.max_offset, 1), ("--top", opts.top, 1), ("--examples", opts.examples, 0),
                         ("--min-count", opts.min_count, 1)):
        if v < low:
            raise InputError(f"{name} {v}: must be at least {low}")
    if opts.limit is not None and opts.limit < 1:
        raise InputError(f"--limit {opts.limit}: must be at least 1")


def run_relations(opts: FrameNetOptions, out: str | Path, *, command: str | None = None) -> RelationsJobResult:
    """Score every head of ``opts.model`` on FrameNet links (``opts.framenet``) or dependencies (``opts.conllu``)."""
    from bertsecrets_cli.store.writer import check_output_path

    _check(opts)
    check_output_path(out, force=opts.force)
    if opts.framenet is not None:
        return _run_framenet(opts, out, command)
    return _run_dependency(opts, out, command)


def _heads_of(lm: Any, quantity: str) -> int:
    """Maps per layer of ``quantity``: the model's heads, or 1 for rollout and flow."""
    from bertsecrets_cli.store import schema as S

    return lm.n_heads if S.quantity(quantity).per_head else 1


def _job_options(config: dict[str, Any]) -> dict[str, Any]:
    """The options in the job fingerprint; the defaults of later options (``quantity`` weights, ``units`` tokens) are
    left out, so a job's fingerprint is the one it had before those options existed."""
    return {k: v for k, v in config.items() if k not in _NOT_IN_JOB and not (k == "quantity" and v == "weights") and not (k == "units" and v == "tokens")}


def _on_quantity(tables: list[Table], quantity: str) -> list[Table]:
    """Titles say which maps were scored unless they are the weights."""
    if quantity != "weights":
        for t in tables:
            t.title = f"{t.title} [on {quantity}]"
    return tables


def _model_attrs(lm: Any) -> dict[str, Any]:
    attrs = {"model_type": lm.model_type, "name": lm.name, "path": lm.path, "fingerprint": lm.fingerprint,
             "cls_token": lm.tokenizer.cls_token or lm.tokenizer.bos_token or "", "sep_token": lm.tokenizer.sep_token or lm.tokenizer.eos_token or ""}
    # a decoder's result stores say so (StoreReader.causal), as extract's do; encoders' attributes stay as they were
    return attrs | ({"causal": 1} if getattr(lm, "causal", False) else {})


def _provenance(lm: Any, extra: dict[str, Any]) -> dict[str, Any]:
    from bertsecrets_cli.jobs.provenance import tool_attrs
    from bertsecrets_cli.model.attention import ATTN_IMPLEMENTATION

    return {**tool_attrs(), "model": lm.name, "model_path": lm.path, "model_revision": lm.revision, "model_fingerprint": lm.fingerprint,
            "tokenizer": lm.path, "attn_implementation": ATTN_IMPLEMENTATION, **extra}


# ------------------------------------------------------------------------------------------------
# FrameNet


@dataclass
class _Selected:
    id: str
    text: str
    enc: Any
    links: list[Any]
    keys: set[tuple]
    words: Any = None  # --units words: the sentence's WordUnits (links index them, maps are converted to them)


def _link_space(enc: Any, text: str, units: str) -> tuple[np.ndarray, np.ndarray, Any]:
    """(offsets, special, word units) the links of one sentence are indexed in: its pieces, or its words."""
    if units == "tokens":
        return enc.offsets, enc.special, None
    from bertsecrets_cli.analysis.wordlevel import example_units

    u = example_units(enc.tokens, enc.offsets, enc.special, enc.type_ids, (text,))
    return u.spans, u.special, u


def _candidates(sent: Any, frames: dict[str, Any], definition: str, missing: set[str]) -> list[Any]:
    from bertsecrets_cli.analysis.framenet import Candidate

    out = []
    for ann in sent.annotations:
        frame = frames.get(ann.frame)
        if frame is None:
            missing.add(ann.frame)
        for fe in ann.fes:
            core = frame.is_core(fe.name, definition) if frame is not None else False
            out.append(Candidate(ann.frame, ann.lu, fe.name, core, (fe.start, fe.end), tuple(ann.target)))
    return out


def _select_framenet(release: Any, frames: dict[str, Any], tokenizer: Any, opts: FrameNetOptions) -> tuple[list[_Selected], Any, bool]:
    """Stream the corpus through the filters; keep only the selected sentences (with their encodings)."""
    from bertsecrets_cli.analysis.framenet import SelectionCounts, SelectionOptions

    sel = SelectionOptions(opts.max_sentence_tokens or None, opts.max_fe_tokens or None, opts.min_distance, opts.core_only, opts.core_definition,
                           unit=opts.units)
    counts = SelectionCounts()
    selected: list[_Selected] = []
    by_text: dict[str, int] = {}
    missing: set[str] = set()
    stopped = False
    from bertsecrets_cli.render.progress import progress

    sources = SENTENCE_SOURCES[opts.sentences]
    n_files = (len(release.fulltext_files) if "fulltext" in sources else 0) + (len(release.lu_files) if "exemplars" in sources else 0)
    with progress(n_files, "reading FrameNet files", quiet=opts.quiet) as advance:
        for sent in release.sentences(sources, on_file=advance):
            if _select_one(sent, frames, tokenizer, opts, sel, counts, selected, by_text, missing):
                stopped = True
                break
    counts.set("distinct sentences and links", len(selected), sum(len(s.links) for s in selected))
    if missing:
        info(f"warning: {len(missing)} frame(s) named in annotations have no frame/*.xml file (their FEs count as non-core), e.g. {sorted(missing)[0]}")
    return selected, counts, stopped


def _select_one(sent: Any, frames: dict[str, Any], tokenizer: Any, opts: FrameNetOptions, sel: Any, counts: Any, selected: list[_Selected],
                by_text: dict[str, int], missing: set[str]) -> bool:
    """One sentence through the filters into ``selected``; True when --limit stops the reading."""
    from bertsecrets_cli.analysis.framenet import select_links
    from bertsecrets_cli.model.tokenize import encode_examples

    cands = _candidates(sent, frames, opts.core_definition, missing)
    if not cands:
        return False
    enc = encode_examples(tokenizer, [(sent.text, None)], opts.max_length)[0]
    offsets, special, words = _link_space(enc, sent.text, opts.units)
    links = select_links(cands, offsets, special, sent.text, sel, counts)
    if not links:
        return False
    j = by_text.get(sent.text)
    if j is None:
        if opts.limit is not None and len(selected) >= opts.limit:
            return True
        by_text[sent.text] = j = len(selected)
        selected.append(_Selected(f"{sent.source}:{sent.id}", sent.text, enc, [], set(), words))
    s = selected[j]
    for lk in links:
        if lk.key() not in s.keys:  # the same sentence annotated twice (e.g. in two files) counts once
            s.keys.add(lk.key())
            lk.sentence = j
            s.links.append(lk)
    return False


def _sources_used(release: Any, sentences: str) -> tuple[str, dict[str, Any]]:
    """Which sentence sources were really read: ``--sentences both`` on a release without lu/ (or fulltext/)
    silently becomes one source; the note says so and the store records it."""
    wanted = SENTENCE_SOURCES[sentences]
    present = {"fulltext": bool(release.fulltext_files), "exemplars": bool(release.lu_files)}
    used = [s for s in wanted if present[s]]
    missing = [s for s in wanted if not present[s]]
    text = ""
    if "exemplars" in missing:
        text = (f"{release.root} has no lu/*.xml (lexical-unit exemplars, the sentences the paper used): only full-text sentences are scored")
    elif "fulltext" in missing:
        text = f"{release.root} has no fulltext/*.xml: only lexical-unit exemplars are scored"
    return text, {"sentence_sources_used": ",".join(used), "sentence_sources_missing": ",".join(missing)}


def _mark(text: str, link: Any) -> str:
    """The sentence with the target in {braces} and the frame element in <angle brackets>=name.

    (Square brackets would be eaten by rich's markup when the table is printed.)"""
    marks: list[tuple[int, str]] = []
    for s, e in link.target_spans:
        marks += [(s, "{"), (e + 1, "}")]
    marks += [(link.fe_span[0], "<"), (link.fe_span[1] + 1, f">={link.fe}")]
    out, prev = [], 0
    for pos, m in sorted(marks, key=lambda x: (x[0], x[1][0] not in ">}")):  # a span closes before the next opens
        out.append(text[prev:pos])
        out.append(m)
        prev = pos
    out.append(text[prev:])
    return "".join(out).strip()


FN_LINKS, FN_SELECTION, FN_READER, FN_SCORER, FN_STATE = "framenet/links", "framenet/selection", "framenet/reader", "framenet/scorer", "framenet/state"
DEP_RELATIONS, DEP_STATE = "dependency/relations", "dependency/state"
DEP_FEATURES = "dependency/features"  # sums and counts of analysis/linguistic.FeatureMeans (shards add them)
ARROW = {"fe_to_target": "FE->target", "target_to_fe": "target->FE"}
# terminal headers of the wide tables (10 and 8 columns): they fit 80 columns, a legend names them in full
RANKING_SHORT = {"FE->target": "FE>T", "target->FE": "T>FE", "same-dist. baseline": "base", "baseline p99": "b.p99",
                 "best offset": "off", "offset k": "k", "> p99 of heads": ">p99", "> baseline p99": ">bp99", "beats strongest baseline": "ok"}
DEPENDENCY_SHORT = {"dep->gov head": "d>g", "accuracy": "acc", "gov->dep head": "g>d", "reverse acc.": "r.acc",
                    "best offset": "offset", "offset acc.": "o.acc", "head beats offset": "beats", "best offset acc.": "o.acc", "beats offset": "beats",
                    "best (both)": "both", "dir.": "dir", "best acc.": "b.acc", "few arcs": "few", "95% +-": "+-"}
# options that change no stored number: shards of one job may differ in them
_NOT_IN_JOB = ("top", "examples", "rank_by", "min_count", "force", "quiet", "device", "batch_size", "shard")


def _shard_of(opts: FrameNetOptions) -> Any:
    from bertsecrets_cli.jobs.shard import resolve_shard

    return resolve_shard(opts.shard) if opts.shard else None


def _framenet_heads(res: Any) -> dict[str, tuple[np.ndarray, str]]:
    heads: dict[str, tuple[np.ndarray, str]] = {
        "framenet_fe_to_target": (res.fe_to_target, "mean over FrameNet links of the max attention from a frame-element piece (query) to a target piece (key)"),
        "framenet_target_to_fe": (res.target_to_fe, "mean over FrameNet links of the max attention from a target piece (query) to a frame-element piece (key)"),
    }
    for d, suffix in (("fe_to_target", ""), ("target_to_fe", "_target_to_fe")):
        heads[f"framenet_baseline_same_distance{suffix}"] = (res.same_distance[d], f"{ARROW[d]} score of the links moved to random other positions of their sentence (same distance)")
        heads[f"framenet_baseline_same_distance{suffix}_p99"] = (res.same_distance_p99[d], f"99th percentile of the {ARROW[d]} same-distance baseline over {res.samples} draws")
        heads[f"framenet_baseline_offset{suffix}"] = (res.offset_best[d], f"{ARROW[d]} score with the target replaced by the pieces at the head's best fixed offset from the FE")
        heads[f"framenet_baseline_offset{suffix}_k"] = (res.offset_best_k[d], f"that best offset, in pieces from the FE's first piece ({ARROW[d]})")
        heads[f"framenet_beats_baseline{suffix}"] = (res.beats_baseline(d).astype(np.float64),
                                                     f"1 where the {ARROW[d]} score exceeds the head's strongest baseline (the larger of the same-distance p99 "
                                                     "and the best fixed offset), else 0")
    return heads


def _strongest(res: Any, direction: str, layer: int, h: int) -> str:
    """'offset +2 (0.212)' or 'same-dist. p99 (0.180)': the baseline a head has to beat."""
    best, which = res.strongest_baseline(direction)
    v = float(best[layer, h])
    if not np.isfinite(v):
        return "none"
    if which[layer, h]:
        k = res.offset_best_k[direction][layer, h]
        return f"offset {int(k):+d} ({v:.3f})" if np.isfinite(k) else f"offset ({v:.3f})"
    return f"same-dist. p99 ({v:.3f})"


def framenet_notes(res: Any, rank_by: str, top: int, n_links: int) -> dict[str, Any]:
    """How many heads beat their strongest baseline, and whether the links reach MIN_LINKS: the summary line,
    the notes for stderr and the attributes the store keeps."""
    from bertsecrets_cli.analysis.framenet import MIN_LINKS, rank_heads

    direction = rank_by.replace("-", "_")
    beats = res.beats_baseline(direction)
    ranked = rank_heads(res.scores(direction))[:top]
    top_beat = sum(bool(beats[li, h]) for li, h in ranked)
    total = int(beats.size)
    summary = (f"{int(beats.sum())} of {total} heads beat their strongest baseline ({ARROW[direction]}; the larger of the same-distance p99 "
               f"and the best fixed offset); {top_beat} of the top {len(ranked)} shown do")
    notes = []
    if ranked and not beats[ranked[0]]:
        li, h = ranked[0]
        notes.append(f"note: the top head {head_name(li, h)} ({float(res.scores(direction)[li, h]):.3f}) does not beat its "
                     f"{_strongest(res, direction, li, h)}: position explains it as well")
    if n_links < MIN_LINKS:
        notes.append(f"note: only {n_links} links survived the selection, fewer than the minimum of {MIN_LINKS} (docs/guide/reading-results.md): "
                     "the ranking is not stable; the paper kept 473 sentences")
    return {"summary": summary, "notes": notes, "attrs": {"n_heads_beating_baseline": int(beats.sum()), "n_top_heads_beating_baseline": top_beat,
                                                          "min_links": MIN_LINKS, "below_min_links": int(n_links < MIN_LINKS)}}


def _framenet_tables(res: Any, selection: list[dict[str, Any]], stopped: bool, n_sentences: int, rank_by: str, first_pair: bool, top: int,
                     examples: int, link_rows: list[dict[str, Any]], link_base: int, texts: list[str], text_base: int,
                     sources_note: str = "") -> list[Table]:
    """Selection counts, the head ranking and the strongest links; ``link_rows``/``texts`` start at global index ``*_base``."""
    from types import SimpleNamespace

    from bertsecrets_cli.analysis.framenet import rank_heads

    direction = rank_by.replace("-", "_")
    other = "target_to_fe" if direction == "fe_to_target" else "fe_to_target"
    sel_t = Table("FrameNet selection (sentences and links surviving each filter)", ["filter", "sentences", "links"], name="selection",
                  caption=f"the paper kept {PAPER_SENTENCES} sentences: bert-base's tokenizer, lexical-unit exemplars read by NLTK, one target per "
                          "sentence, core FEs from the frames' FEcoreSets; its text does not say which exemplars it read, so a count from another "
                          "tokenizer, release part (--sentences) or core definition (--core-definition) is not expected to match; "
                          "'tokens' are this model's word pieces"
                  + ("; counts cover the corpus read until --limit was reached" if stopped else "")
                  + (f"; {sources_note}" if sources_note else ""))
    for row in selection:
        sel_t.add(row["step"], row["sentences"], row["links"])
    score = res.scores(direction)
    flag_heads, flag_base = res.above_heads_p99(direction), res.above_baseline_p99(direction)
    beats = res.beats_baseline(direction)
    cols = ["rank", "head", ARROW[direction], ARROW[other], "same-dist. baseline", "baseline p99", "best offset", "offset k", "> p99 of heads", "> baseline p99",
            "beats strongest baseline"]
    summary = framenet_notes(res, rank_by, top, res.n_links)["summary"]
    rank_t = Table(f"heads ranked by {ARROW[direction]} mean max-attention over {res.n_links} links in {n_sentences} sentences"
                   + (" (first-pair variant)" if first_pair else ""), cols, name="heads",
                   caption="scores are attention mass (0-1); '> p99 of heads': above the 99th percentile of all heads (the paper's flag; with "
                   f"{score.size} heads it can mark at most {max(1, int(np.ceil(0.01 * score.size)))}); "
                   "'> baseline p99': above the 99th percentile of the head's own same-distance baseline; "
                   f"'beats strongest baseline': above both that p99 and the best fixed offset. {summary}",
                   short=RANKING_SHORT)
    ranked = rank_heads(score)
    for r, (layer, h) in enumerate(ranked[:top], 1):
        k = res.offset_best_k[direction][layer, h]
        rank_t.add(r, head_name(layer, h), float(score[layer, h]), float(res.scores(other)[layer, h]),
                   float(res.same_distance[direction][layer, h]), float(res.same_distance_p99[direction][layer, h]),
                   float(res.offset_best[direction][layer, h]), "" if np.isnan(k) else f"{int(k):+d}",
                   "yes" if flag_heads[layer, h] else "", "yes" if flag_base[layer, h] else "",
                   "yes" if beats[layer, h] else "no")
    tables = [sel_t, rank_t]
    if examples:
        ex_t = Table(f"strongest link of each top head ({ARROW[direction]}): {{target}}, <frame element>", ["head", "attention", "frame", "FE", "sentence"], name="examples")
        for layer, h in ranked[:examples]:
            lid = int(res.best_link[direction][layer, h]) - link_base
            if not 0 <= lid < len(link_rows):
                continue
            lk = SimpleNamespace(**link_rows[lid])
            ex_t.add(head_name(layer, h), float(res.best_value[direction][layer, h]), lk.frame, lk.fe, _mark(texts[lk.sentence - text_base], lk))
        tables.append(ex_t)
    return tables


def _causal_attrs(link_rows: list[dict[str, Any]], first_pair: bool) -> dict[str, int]:
    """Provenance of a decoder's framenet store: links each direction can reach on causal maps."""
    from bertsecrets_cli.analysis.framenet import causal_reach

    r = causal_reach([(np.asarray(x["fe_pieces"]), np.asarray(x["target_pieces"])) for x in link_rows], first_pair)
    return {f"causal_links_reachable_{d}": n for d, n in r.items()}


def _causal_framenet_caption(tables: list[Table], reach: dict[str, int], n_links: int) -> None:
    """The ranking table of a causal decoder says how many links each direction could reach at all."""
    for t in tables:
        if t.name == "heads":
            t.caption += (f" Causal decoder: a piece attends only to itself and earlier pieces; FE->target can reach "
                          f"{reach['causal_links_reachable_fe_to_target']} of the {n_links} links, target->FE "
                          f"{reach['causal_links_reachable_target_to_fe']}; a link whose other end lies wholly in the future scores 0 and stays "
                          "in the mean (counted as a miss), as in the same-distance baseline, which keeps each link's order, and in the fixed "
                          "offsets, where a forward offset scores 0 (README: Decoder models).")


def _put_features(w: Any, features: Any, causal: bool = False) -> None:
    from bertsecrets_cli.jobs.linguistic import put_feature_heads

    w.put_array(f"{DEP_FEATURES}/sums", features.sums)
    w.put_array(f"{DEP_FEATURES}/counts", features.counts)
    put_feature_heads(w, features, "sentences", causal=causal)


def _put_state(w: Any, group: str, state: dict[str, Any]) -> None:
    for k, v in state.items():
        if k == "meta":
            w.put_json(f"{group}/meta", v)
        else:
            w.put_array(f"{group}/{k}", np.asarray(v))


def _read_state(st: Any, group: str) -> dict[str, Any]:
    from bertsecrets_cli.errors import StoreError

    if not st.has(group):
        raise StoreError(f"{st.path}: holds no {group} (written by an older bertsecrets); rerun framenet to merge its shards")
    return {k: (st.json(f"{group}/{k}") if k == "meta" else st.array(f"{group}/{k}")) for k in st.h5[group]}


def _run_framenet(opts: FrameNetOptions, out: str | Path, command: str | None) -> RelationsJobResult:
    from bertsecrets_cli.analysis.framenet import FrameNetScorer
    from bertsecrets_cli.analysis.wordlevel import word_attention
    from bertsecrets_cli.data.framenet import FrameNetRelease
    from bertsecrets_cli.jobs.attention_batches import iter_attention
    from bertsecrets_cli.jobs.provenance import provenance_texts
    from bertsecrets_cli.jobs.shard import fingerprint, shard_provenance, shard_slice
    from bertsecrets_cli.model.load import load_model
    from bertsecrets_cli.render.console import debug
    from bertsecrets_cli.store.writer import StoreWriter

    t0 = time.perf_counter()
    shard = _shard_of(opts)
    release = FrameNetRelease(opts.framenet, warn=info, detail=debug)
    frames = release.frames()
    if not frames:
        raise InputError(f"{opts.framenet}: no readable frame/*.xml file; core frame elements cannot be told apart")
    lm = load_model(opts.model, device=opts.device)
    t_model = time.perf_counter()
    selected, counts, stopped = _select_framenet(release, frames, lm.tokenizer, opts)
    rs = release.summary
    info(f"read {rs.files} FrameNet files: {rs.sentences} sentences, {rs.annotation_sets} frame annotation sets, {rs.frames} frames"
         + (f"; {rs.problems} problem(s) in {rs.files_with_problems} file(s), skipped" if rs.problems else ""))
    sources_note, source_attrs = _sources_used(release, opts.sentences)
    if sources_note:
        note(f"note: {sources_note}")
    index = release.fulltext_index() if "fulltext" in SENTENCE_SOURCES[opts.sentences] else None
    if index is not None:  # coverage: documents the release's index lists that are not in fulltext/
        present = {p.name for p in release.fulltext_files}
        absent = [n for n in index if n not in present]
        source_attrs = {**source_attrs, "fulltext_documents_listed": len(index), "fulltext_documents_read": len(index) - len(absent)}
        if absent:
            note(f"note: read {len(index) - len(absent)} of the {len(index)} full-text documents fulltextIndex.xml lists; "
                 f"{len(absent)} are not in {Path(opts.framenet) / 'fulltext'} (e.g. {absent[0]})")
    links = [lk for s in selected for lk in s.links]
    if not links:
        raise InputError(f"{opts.framenet}: no link survived the selection (see the thresholds: --max-sentence-tokens, --max-fe-tokens, --min-distance, --all-fes)")
    # shards: contiguous ranges of the selected sentences; link ids stay global, so the random baseline
    # draws (seeded per link) and the strongest links are those of one unsharded run
    s0, s1 = shard_slice(shard, len(selected), "selected sentences")
    shard_attrs = shard_provenance(shard, s0, s1, len(selected)) if shard is not None else {}
    if shard is not None:
        info(f"shard {shard} ({shard.origin}): selected sentences {s0}..{s1 - 1} of {len(selected)}")
    t_select = time.perf_counter()

    scorer_params = {"first_pair": opts.first_pair, "samples": opts.baseline_samples, "max_offset": opts.max_offset,
                     "min_distance": opts.min_distance, "seed": opts.seed}
    H = _heads_of(lm, opts.quantity)
    scorer = FrameNetScorer(lm.n_layers, H, **scorer_params)
    first_id = np.cumsum([0] + [len(s.links) for s in selected])
    mine = selected[s0:s1]
    for i, enc, att in iter_attention(lm, [s.enc for s in mine], opts.batch_size, description=f"framenet {lm.name}", quiet=opts.quiet,
                                      quantity=opts.quantity):
        g = s0 + i
        special = enc.special
        if selected[g].words is not None:  # word-level maps: mean over the attending word's pieces, sum over the attended word's
            att, special = word_attention(att, selected[g].words.matrix), selected[g].words.special
        scorer.add(att, selected[g].links, special, list(range(first_id[g], first_id[g + 1])))
    res = scorer.result()
    t_score = time.perf_counter()
    notes = framenet_notes(res, opts.rank_by, opts.top, len(links))
    for line in notes["notes"]:
        note(line)

    link_rows = [{"sentence": lk.sentence, "frame": lk.frame, "lu": lk.lu, "fe": lk.fe, "fe_pieces": lk.fe_pieces.tolist(),
                  "target_pieces": lk.target_pieces.tolist(), "distance": lk.distance, "fe_span": list(lk.fe_span),
                  "target_spans": [list(t) for t in lk.target_spans]} for lk in links]
    my_rows = link_rows[int(first_id[s0]) : int(first_id[s1])]
    reach = _causal_attrs(my_rows, opts.first_pair) if lm.causal else {}
    selection = [{"step": st, "sentences": n, "links": m} for st, n, m in counts.rows()]
    config = {k: v for k, v in asdict(opts).items() if k not in ("conllu", "base_relations", "min_count", "force", "quiet")}
    job = fingerprint({"model": lm.fingerprint, "tokenizer": lm.path, "data": str(Path(opts.framenet).expanduser()), "ids": [s.id for s in selected],
                       "options": _job_options(config)})
    with StoreWriter(out, "framenet", force=opts.force, locking=opts.locking) as w:
        w.set_model(n_layers=lm.n_layers, n_heads=H, **_model_attrs(lm))
        w.set_provenance(_provenance(lm, {"data_source": str(Path(opts.framenet).expanduser()), "sentences": opts.sentences,
                                          "selection": {"max_sentence_tokens": opts.max_sentence_tokens, "max_fe_tokens": opts.max_fe_tokens,
                                                        "min_distance": opts.min_distance, "core_only": opts.core_only,
                                                        "core_definition": opts.core_definition, "limit": opts.limit},
                                          "first_pair": int(opts.first_pair), "baseline_samples": opts.baseline_samples, "seed": opts.seed,
                                          "n_sentences": len(mine), "n_links": len(my_rows), "max_length": opts.max_length, "rank_by": opts.rank_by,
                                          "selection_stopped_by_limit": int(stopped), "job_fingerprint": job, **source_attrs,
                                          **notes["attrs"], **shard_attrs, "quantity": opts.quantity, "link_units": opts.units,
                                          **({"word_attention": WORD_RULE} if opts.units == "words" else {}), **reach}),
                         provenance_texts({"framenet": config}, command))
        w.put_strings("examples/id", [s.id for s in mine])
        w.put_strings("examples/text_a", [s.text for s in mine])
        w.put_array("examples/length", np.asarray([s.enc.length for s in mine], dtype=np.int32))
        for name, (values, desc) in _framenet_heads(res).items():
            w.put_head_quantity(name, values, desc)
        w.put_json(FN_SELECTION, selection)
        w.put_json(FN_LINKS, my_rows)
        w.put_json(FN_READER, rs.as_dict())
        w.put_json(FN_SCORER, scorer_params)
        _put_state(w, FN_STATE, scorer.state())
    t_write = time.perf_counter()

    tables = _on_quantity(_framenet_tables(res, selection, stopped, len(mine), opts.rank_by, opts.first_pair, opts.top, opts.examples,
                                           link_rows, 0, [s.text for s in selected], 0, sources_note), opts.quantity)
    if reach:
        _causal_framenet_caption(tables, reach, len(my_rows))
    timings = {"load_model_s": t_model - t0, "read_select_s": t_select - t_model, "forward_score_s": t_score - t_select, "write_s": t_write - t_score}
    return RelationsJobResult(Path(out), "framenet", tables, len(mine), len(my_rows), lm.n_layers, H, timings)


# ------------------------------------------------------------------------------------------------
# dependency relations (CoNLL-U)


def _dependency_outputs(w: Any | None, overall: Any, results: list[Any]) -> list[dict[str, Any]]:
    """Per-relation rows (best heads, offset baseline); with a writer, also every per-head array and the rows."""
    from bertsecrets_cli.analysis.framenet import rank_heads
    from bertsecrets_cli.analysis.relations import authors_best_head, relation_key

    keys: dict[str, str] = {}
    for r in results:
        k = relation_key(r.label)
        while k in keys.values():  # two labels that differ only in punctuation keep separate arrays
            k += "_"
        keys[r.label] = k
    rows = []
    for r in [overall, *results]:
        k = "all" if r is overall else keys[r.label]
        if w is not None:
            # n: the arcs of this relation, what a figure of it must say (not all arcs of the store); causal: the arcs
            # each direction can reach (governor earlier / dependent earlier), its denominator
            nf, nr = (r.forward_count, r.reverse_count) if r.causal else (r.count, r.count)
            reach = (" whose governor comes first", " whose dependent comes first") if r.causal else ("", "")
            w.put_head_quantity(f"dep_{k}_accuracy", r.accuracy, f"accuracy of the most-attended word as the governor of '{r.label}' dependents ({nf} arcs{reach[0]})",
                                n=nf, n_counts=f"'{r.label}' arcs{reach[0]}" if r is not overall else f"arcs{reach[0]}")
            w.put_head_quantity(f"dep_{k}_reverse_accuracy", r.reverse_accuracy, f"accuracy of the governor's most-attended word as its '{r.label}' dependent ({nr} arcs{reach[1]})",
                                n=nr, n_counts=f"'{r.label}' arcs{reach[1]}" if r is not overall else f"arcs{reach[1]}")
        (li, hi), (lr, hr) = rank_heads(r.accuracy)[0], rank_heads(r.reverse_accuracy)[0]
        row = {"label": r.label, "key": k, "count": r.count, "offset_k": r.offset_k, "offset_accuracy": r.offset_accuracy,
               "best_head": head_name(li, hi), "best_accuracy": float(r.accuracy[li, hi]),
               "best_reverse_head": head_name(lr, hr), "best_reverse_accuracy": float(r.reverse_accuracy[lr, hr]),
               "definition": r.definition}
        if r.causal:
            row |= {"forward_count": r.forward_count, "reverse_count": r.reverse_count, "reverse_offset_k": r.reverse_offset_k,
                    "reverse_offset_accuracy": r.reverse_offset_accuracy}
        if r.definition == "authors":  # Clark's Table 1 cell: one head over both directions, his tie-break
            bl, bh, bd = authors_best_head(r.accuracy, r.reverse_accuracy)
            row |= {"best_both_head": head_name(bl, bh), "best_both_direction": ("dep->head", "head<-dep")[bd],
                    "best_both_accuracy": float((r.accuracy, r.reverse_accuracy)[bd][bl, bh])}
        rows.append(row)
    if w is not None:
        w.put_json(DEP_RELATIONS, rows)
    return rows


def dependency_notes(overall: Any, top: int) -> dict[str, Any]:
    """How many heads beat the best fixed offset over all relations, and whether the arcs reach MIN_ARCS:
    the summary line, the notes for stderr and the attributes the store keeps."""
    from bertsecrets_cli.analysis.framenet import rank_heads
    from bertsecrets_cli.analysis.relations import MIN_ARCS

    with np.errstate(invalid="ignore"):
        beats = np.asarray(overall.accuracy) > overall.offset_accuracy
    ranked = rank_heads(overall.accuracy)[:top]
    top_beat = sum(bool(beats[li, h]) for li, h in ranked)
    summary = (f"{int(beats.sum())} of {beats.size} heads beat the best fixed offset ({overall.offset_k:+d}, accuracy {overall.offset_accuracy:.3f}); "
               f"{top_beat} of the top {len(ranked)} shown do")
    notes = []
    if ranked and not beats[ranked[0]]:
        li, h = ranked[0]
        notes.append(f"note: the top head {head_name(li, h)} ({float(overall.accuracy[li, h]):.3f}) does not beat the fixed offset "
                     f"{overall.offset_k:+d} ({overall.offset_accuracy:.3f}): position explains it as well")
    if overall.count < MIN_ARCS:
        notes.append(f"note: only {overall.count} arcs were scored, fewer than the minimum of {MIN_ARCS} (docs/guide/reading-results.md): the ranking is not stable")
    return {"summary": summary, "notes": notes, "beats": beats,
            "attrs": {"n_heads_beating_baseline": int(beats.sum()), "n_top_heads_beating_baseline": top_beat, "min_arcs": MIN_ARCS,
                      "below_min_arcs": int(overall.count < MIN_ARCS)}}


DEFINITION_CAPTIONS = {
    "ours": "the most-attended word over the whole row (the word itself included); reverse: the governor's most-attended word is the "
            "dependent; root words not scored; best offset over any governor - dependent offset",
    "authors": "Clark et al.'s rule: the word itself and [CLS]/[SEP] excluded; reverse: the map transposed (the word attending most to the "
               "dependent); root words scored (always missed); offsets -3..+2 clamped at the sentence ends; 'best (both)': one head over "
               "both directions (dir.: fwd dependent -> governor, rev transposed), ties to the higher layer and head",
}


CAUSAL_CAPTION = ("causal decoder: a word attends only to itself and earlier words, so each arc is scored in the one direction that can "
                  "reach it: dependent -> governor when the governor comes first (d>g arcs), governor -> dependent when the dependent comes "
                  "first (g>d arcs); an arc whose target is in the attending word's future is left out of that direction's denominator (not "
                  "a miss), and each direction has its own best offset over the same arcs, a look-back k < 0 from the attending word "
                  "(reverse: dependent - governor); n/a: no arc in that direction. The first position is the sink: without a BOS (GPT-2, "
                  "Qwen) it is the first word, which a sink head predicts for every word")
CAUSAL_SHORT = {"dep->gov arcs": "d>g n", "gov->dep arcs": "g>d n", "rev. offset": "r.off", "rev. offset acc.": "r.o.acc"}


def _fmt_offset(k: Any, acc: float) -> str:
    return "n/a" if not np.isfinite(acc) else f"{int(k):+d}"


def _causal_dependency_tables(rows: list[dict[str, Any]], overall: Any, n_sentences: int, min_count: int, top: int, on: str) -> list[Table]:
    """The relation and ranking tables of a causal decoder: each direction over the arcs it can reach (CAUSAL_CAPTION)."""
    from bertsecrets_cli.analysis.framenet import rank_heads
    from bertsecrets_cli.analysis.relations import MIN_ARCS

    shown = [row for row in rows if row["label"] == "all" or row["count"] >= min_count]
    rel_t = Table(f"best head per dependency relation ({on}{n_sentences} sentences, {overall.count} arcs; causal decoder)",
                  ["relation", "arcs", "dep->gov arcs", "dep->gov head", "accuracy", "best offset", "offset acc.", "gov->dep arcs", "gov->dep head",
                   "reverse acc.", "rev. offset", "rev. offset acc.", "head beats offset", "few arcs"],
                  name="relations", short=DEPENDENCY_SHORT | CAUSAL_SHORT,
                  caption=f"relations with at least {min_count} arcs (--min-count); accuracy = share of the arcs its direction can reach (0-1); "
                          "'head beats offset': in either direction the best head's accuracy exceeds that direction's offset; "
                          f"'few arcs': fewer than {MIN_ARCS} arcs. {CAUSAL_CAPTION}")
    for row in shown:
        fwd_ok = row["forward_count"] > 0 and row["best_accuracy"] > row["offset_accuracy"]
        rev_ok = row["reverse_count"] > 0 and row["best_reverse_accuracy"] > row["reverse_offset_accuracy"]
        rel_t.add(row["label"], row["count"], row["forward_count"], row["best_head"] if row["forward_count"] else "n/a", row["best_accuracy"],
                  _fmt_offset(row["offset_k"], row["offset_accuracy"]), row["offset_accuracy"], row["reverse_count"],
                  row["best_reverse_head"] if row["reverse_count"] else "n/a", row["best_reverse_accuracy"],
                  _fmt_offset(row["reverse_offset_k"], row["reverse_offset_accuracy"]), row["reverse_offset_accuracy"],
                  "yes" if fwd_ok or rev_ok else "no", "yes" if row["count"] < MIN_ARCS else "no")
    notes = dependency_notes(overall, top)
    n = max(1, int(overall.forward_count or 0))
    rank_t = Table(f"heads ranked by accuracy over all relations (dependent -> governor; {on}N={overall.forward_count} arcs whose governor comes "
                   "first; causal decoder)", ["rank", "head", "accuracy", "95% +-", "reverse acc.", "best offset acc.", "beats offset"], name="heads",
                   short=DEPENDENCY_SHORT,
                   caption=f"accuracy = share of the {overall.forward_count} arcs whose governor comes before the dependent (0-1) where the governor is "
                           f"the dependent's most-attended word; reverse acc.: over the {overall.reverse_count} arcs whose dependent comes first; "
                           f"'95% +-': half-width of the normal-approximation 95% interval. {notes['summary']}")
    for rk, (layer, h) in enumerate(rank_heads(overall.accuracy)[:top], 1):
        p = float(overall.accuracy[layer, h])
        rank_t.add(rk, head_name(layer, h), p, 1.96 * float(np.sqrt(p * (1 - p) / n)) if np.isfinite(p) else float("nan"),
                   float(overall.reverse_accuracy[layer, h]), overall.offset_accuracy, "yes" if notes["beats"][layer, h] else "no")
    return [rel_t, rank_t]


def _dependency_tables(rows: list[dict[str, Any]], overall: Any, n_sentences: int, min_count: int, top: int, data: str = "") -> list[Table]:
    from bertsecrets_cli.analysis.definitions import title_note
    from bertsecrets_cli.analysis.framenet import rank_heads
    from bertsecrets_cli.analysis.relations import MIN_ARCS

    if getattr(overall, "causal", False):
        return _causal_dependency_tables(rows, overall, n_sentences, min_count, top, f"{data}, " if data else "")
    definition = getattr(overall, "definition", "ours")
    authors = definition == "authors"
    shown = [row for row in rows if row["label"] == "all" or row["count"] >= min_count]
    cols = ["relation", "arcs", "dep->gov head", "accuracy", "gov->dep head", "reverse acc."]
    cols += ["best (both)", "dir.", "best acc."] if authors else []
    on = f"{data}, " if data else ""
    rel_t = Table(f"best head per dependency relation ({on}{n_sentences} sentences, {overall.count} arcs; {title_note(definition, 'dependency')})",
                  [*cols, "best offset", "offset acc.", "head beats offset", "few arcs"],
                  name="relations", short=DEPENDENCY_SHORT,
                  caption=f"relations with at least {min_count} arcs (--min-count); accuracy = share of arcs (0-1); "
                          "offset = governor position - dependent position; 'head beats offset': the best head's accuracy exceeds the offset's; "
                          f"'few arcs': fewer than {MIN_ARCS}, one arc moves the accuracy by more than 0.01 and the ranking is not stable. "
                          f"Definition: {DEFINITION_CAPTIONS[definition]}")
    for row in shown:
        best = row["best_both_accuracy"] if authors else row["best_accuracy"]
        extra = [row["best_both_head"], "fwd" if row["best_both_direction"] == "dep->head" else "rev", row["best_both_accuracy"]] if authors else []
        rel_t.add(row["label"], row["count"], row["best_head"], row["best_accuracy"], row["best_reverse_head"], row["best_reverse_accuracy"], *extra,
                  f"{row['offset_k']:+d}", row["offset_accuracy"], "yes" if best > row["offset_accuracy"] else "no",
                  "yes" if row["count"] < MIN_ARCS else "no")
    notes = dependency_notes(overall, top)
    rank_t = Table(f"heads ranked by accuracy over all relations (dependent -> governor; {on}N={overall.count} arcs; {title_note(definition, 'dependency')})",
                   ["rank", "head", "accuracy", "95% +-", "reverse acc.", "best offset acc.", "beats offset"], name="heads", short=DEPENDENCY_SHORT,
                   caption=f"accuracy = share of arcs (0-1) whose governor is the dependent's most-attended word; '95% +-': half-width of its "
                           "normal-approximation 95% interval over the arcs (heads within it of each other are not told apart; arcs of one "
                           f"sentence are not independent, so it is a lower bound). {notes['summary']}")
    n = max(1, overall.count)
    for rk, (layer, h) in enumerate(rank_heads(overall.accuracy)[:top], 1):
        p = float(overall.accuracy[layer, h])
        rank_t.add(rk, head_name(layer, h), p, 1.96 * float(np.sqrt(p * (1 - p) / n)), float(overall.reverse_accuracy[layer, h]),
                   overall.offset_accuracy, "yes" if notes["beats"][layer, h] else "no")
    return [rel_t, rank_t]


def _run_dependency(opts: FrameNetOptions, out: str | Path, command: str | None) -> RelationsJobResult:
    from bertsecrets_cli.analysis.relations import DependencyScorer, word_attention, word_piece_matrix
    from bertsecrets_cli.data.conllu import read_conllu
    from bertsecrets_cli.jobs.attention_batches import iter_attention
    from bertsecrets_cli.jobs.provenance import provenance_texts
    from bertsecrets_cli.jobs.shard import fingerprint, shard_provenance, shard_slice
    from bertsecrets_cli.model.load import load_model
    from bertsecrets_cli.model.tokenize import encode_examples
    from bertsecrets_cli.store.writer import StoreWriter

    t0 = time.perf_counter()
    shard = _shard_of(opts)
    # the whole file is checked before the model loads: a malformed line fails fast
    sentences = [s for s in read_conllu(opts.conllu) if s.words]
    if not sentences:
        raise InputError(f"{opts.conllu}: no sentences")
    if opts.limit is not None:
        sentences = sentences[: opts.limit]
    lm = load_model(opts.model, device=opts.device)
    if lm.causal and opts.definition == "authors":
        raise ModelError(f"--model {lm.name}: model type {lm.model_type!r} is a causal decoder; --definition authors is Clark et al.'s rule for "
                         "encoder maps ([CLS]/[SEP] cropped, the map transposed, offsets -3..+2 both ways): use --definition ours, which scores each "
                         "arc in the direction a causal map can reach (README: Decoder models)")
    t_model = time.perf_counter()
    kept, encoded, matrices, too_long = [], [], [], 0
    for s in sentences:
        spans, pos = [], 0
        for wd in s.words:  # words joined by single spaces: every piece then lies inside one word
            spans.append((pos, pos + len(wd.form)))
            pos += len(wd.form) + 1
        text = " ".join(wd.form for wd in s.words)
        enc = encode_examples(lm.tokenizer, [(text, None)], opts.max_length)[0]
        real = enc.offsets[enc.special == 0]
        if len(real) and int(real[:, 1].max()) < len(text.rstrip()):
            too_long += 1  # truncated: the words past --max-length would look unattended
            continue
        M = word_piece_matrix(enc.offsets, enc.special, spans, text)
        kept.append((s, text))
        encoded.append(enc)
        matrices.append(M)
    if too_long:
        info(f"skipped {too_long} sentence(s) longer than --max-length {opts.max_length} pieces")
    if not kept:
        raise InputError(f"{opts.conllu}: no sentence fits in --max-length {opts.max_length}")
    s0, s1 = shard_slice(shard, len(kept), "sentences")
    shard_attrs = shard_provenance(shard, s0, s1, len(kept)) if shard is not None else {}
    if shard is not None:
        info(f"shard {shard} ({shard.origin}): sentences {s0}..{s1 - 1} of {len(kept)}")
    t_select = time.perf_counter()

    from bertsecrets_cli.analysis.linguistic import FeatureMeans, feature_groups
    from bertsecrets_cli.jobs.linguistic import feature_tables
    from bertsecrets_cli.tokens import CLS

    H = _heads_of(lm, opts.quantity)
    scorer = DependencyScorer(lm.n_layers, H, base_relations=opts.base_relations, definition=opts.definition, causal=lm.causal)
    features = FeatureMeans(lm.n_layers, H)  # Kovaleva et al. sec. 4.4's nouns, verbs, ... from UPOS and DEPREL
    for i, enc, att in iter_attention(lm, encoded[s0:s1], opts.batch_size, description=f"dependencies {lm.name}", quiet=opts.quiet,
                                      quantity=opts.quantity):
        s = kept[s0 + i][0]
        M = matrices[s0 + i]
        scorer.add(word_attention(att, M), [wd.head for wd in s.words], [wd.deprel for wd in s.words], M.sum(1) > 0, [wd.form for wd in s.words])
        cls = np.flatnonzero(enc.special == CLS)
        features.add(att, feature_groups([np.flatnonzero(row).tolist() for row in M], [(wd.upos, wd.deprel) for wd in s.words]),
                     int(cls[0]) if len(cls) and not lm.causal else None)
    results = scorer.results()
    overall = scorer.overall()
    if overall is None:
        raise InputError(f"{opts.conllu}: no dependency arc with a HEAD and DEPREL to score" + (f" in shard {shard}" if shard else ""))
    if scorer.skipped_unmapped:
        info(f"skipped {scorer.skipped_unmapped} arc(s) whose dependent or governor has no word piece")
    notes = dependency_notes(overall, opts.top)
    for line in notes["notes"]:
        note(line)
    t_score = time.perf_counter()

    config = {k: v for k, v in asdict(opts).items() if k not in ("framenet", "sentences", "max_sentence_tokens", "max_fe_tokens", "min_distance",
                                                                   "core_only", "core_definition", "first_pair", "baseline_samples", "max_offset",
                                                                   "rank_by", "units", "force", "quiet")}
    job = fingerprint({"model": lm.fingerprint, "tokenizer": lm.path, "data": str(Path(opts.conllu).expanduser()), "ids": [s.id for s, _ in kept],
                       "options": _job_options(config)})
    mine = kept[s0:s1]
    with StoreWriter(out, "dependency", force=opts.force, locking=opts.locking) as w:
        w.set_model(n_layers=lm.n_layers, n_heads=H, **_model_attrs(lm))
        w.set_provenance(_provenance(lm, {"data_source": str(Path(opts.conllu).expanduser()), "n_sentences": len(mine), "n_arcs": overall.count,
                                          "base_relations": int(opts.base_relations), "max_length": opts.max_length,
                                          "definition": opts.definition,
                                          "word_attention": WORD_RULE,
                                          "job_fingerprint": job, **notes["attrs"], **shard_attrs, "quantity": opts.quantity}),
                         provenance_texts({"framenet": config}, command))
        w.put_strings("examples/id", [s.id for s, _ in mine])
        w.put_strings("examples/text_a", [t for _, t in mine])
        w.put_array("examples/length", np.asarray([e.length for e in encoded[s0:s1]], dtype=np.int32))
        rel_rows = _dependency_outputs(w, overall, results)
        _put_state(w, DEP_STATE, scorer.state())
        _put_features(w, features, lm.causal)
    t_write = time.perf_counter()

    timings = {"load_model_s": t_model - t0, "read_select_s": t_select - t_model, "forward_score_s": t_score - t_select, "write_s": t_write - t_score}
    return RelationsJobResult(Path(out), "dependency", _on_quantity(_dependency_tables(rel_rows, overall, len(mine), opts.min_count, opts.top, Path(opts.conllu).name)
                                                                    + feature_tables(features, len(mine), f"UPOS/DEPREL of {Path(opts.conllu).name}", "sentences", causal=lm.causal), opts.quantity),
                              len(mine), overall.count, lm.n_layers, H, timings)


# ------------------------------------------------------------------------------------------------
# joining shards


def combine_relations(paths: list[str], out: str | Path, *, top: int = 10, examples: int = 3, min_count: int = 10, force: bool = False,
                      locking: bool | None = None, command: str | None = None) -> RelationsJobResult:
    """Join the framenet or dependency stores of ``framenet --shard i/n`` into one.

    The shards' scorer states (sums, baseline draws, counts) are added and the per-head results computed
    from the total, so the store equals one unsharded run (sums to float rounding; counts exactly).
    """
    from bertsecrets_cli.analysis.framenet import FrameNetScorer
    from bertsecrets_cli.analysis.relations import DependencyScorer
    from bertsecrets_cli.store import StoreWriter
    from bertsecrets_cli.store.merge import merged_provenance, open_shards, order_shards
    from bertsecrets_cli.store.writer import copy_model_from

    outp, stores = open_shards(paths, out, ("framenet", "dependency"), force=force, locking=locking)
    try:
        ordered = order_shards(stores, ("job_fingerprint",), shards_only=True)
        first = ordered[0]
        kind, prov = first.kind, first.provenance()
        L, H = first.n_layers, first.n_heads
        n_sent = int(sum(st.n_examples for st in ordered))
        with StoreWriter(outp, kind, force=force, locking=locking) as w:
            copy_model_from(w, first)
            for name in first.h5["examples"]:
                w.concat_from(f"examples/{name}", ordered)
            if kind == "framenet":
                params = first.json(FN_SCORER)
                scorer = FrameNetScorer(L, H, **params)
                link_rows: list[dict[str, Any]] = []
                for st in ordered:
                    scorer.absorb(_read_state(st, FN_STATE))
                    link_rows += st.json(FN_LINKS)
                res = scorer.result()
                for name, (values, desc) in _framenet_heads(res).items():
                    w.put_head_quantity(name, values, desc)
                selection = first.json(FN_SELECTION)
                for name, obj in ((FN_SELECTION, selection), (FN_LINKS, link_rows), (FN_READER, first.json(FN_READER)), (FN_SCORER, params)):
                    w.put_json(name, obj)
                _put_state(w, FN_STATE, scorer.state())
                rank_by = str(prov.get("rank_by", "fe-to-target"))
                notes = framenet_notes(res, rank_by, top, len(link_rows))
                for line in notes["notes"]:
                    note(line)
                w.set_provenance(*merged_provenance(ordered, outp, command, n_sentences=n_sent, n_links=len(link_rows), **notes["attrs"],
                                                    **(_causal_attrs(link_rows, bool(params["first_pair"])) if first.causal else {})))
                texts = [t for st in ordered for t in st.strings("examples/text_a")]
                missing = str(prov.get("sentence_sources_missing", "") or "")
                sources_note = f"no {missing} sentences in the release: only {prov.get('sentence_sources_used', '')} scored" if missing else ""
                tables = _framenet_tables(res, selection, bool(int(prov.get("selection_stopped_by_limit", 0))), n_sent, rank_by,
                                          bool(params["first_pair"]), top, examples, link_rows, 0, texts, 0, sources_note)
                if first.causal:
                    _causal_framenet_caption(tables, _causal_attrs(link_rows, bool(params["first_pair"])), len(link_rows))
                n_scored = len(link_rows)
            else:
                dep = DependencyScorer(L, H, base_relations=bool(int(prov.get("base_relations", 0))), definition=str(prov.get("definition", "ours")),
                                       causal=first.causal)
                for st in ordered:
                    dep.absorb(_read_state(st, DEP_STATE))
                overall = dep.overall()
                rows = _dependency_outputs(w, overall, dep.results())
                _put_state(w, DEP_STATE, dep.state())
                from bertsecrets_cli.analysis.linguistic import FeatureMeans
                from bertsecrets_cli.jobs.linguistic import feature_tables

                features = FeatureMeans(L, H)
                for st in ordered:
                    if st.has(DEP_FEATURES):
                        features.absorb(st.array(f"{DEP_FEATURES}/sums"), st.array(f"{DEP_FEATURES}/counts"))
                _put_features(w, features, first.causal)
                notes = dependency_notes(overall, top)
                for line in notes["notes"]:
                    note(line)
                w.set_provenance(*merged_provenance(ordered, outp, command, n_sentences=n_sent, n_arcs=overall.count, **notes["attrs"]))
                tables = _dependency_tables(rows, overall, n_sent, min_count, top, Path(str(prov.get("data_source", ""))).name) + feature_tables(features, n_sent, f"UPOS/DEPREL of {Path(str(prov.get('data_source', ''))).name}", "sentences", causal=first.causal)
                n_scored = overall.count
        tables = _on_quantity(tables, first.result_quantity())
    finally:
        for st in stores:
            st.close()
    return RelationsJobResult(outp, kind, tables, n_sent, n_scored, L, H)
