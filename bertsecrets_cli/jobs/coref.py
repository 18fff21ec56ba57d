"""``coref``: heads that attend from a mention to its antecedent (Clark et al. 2019, sec. 4.4 and Table 2).

Reads coreference chains (data/coref.py: CorefUD CoNLL-U or JSONL), packs consecutive sentences of a
document into segments that fit ``--max-length`` pieces (chains are only scored inside a segment: the model
sees nothing else), runs them through the model with extract's batching and scores every word-level map as
it comes out (analysis/coreference.py); no map is kept. Results go to a ``coreference`` store whose
/heads/coref_* arrays plot, show and diff read, plus the per-mention hits behind the intervals.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bertsecrets_cli.errors import InputError
from bertsecrets_cli.heads import head_name
from bertsecrets_cli.render.console import info
from bertsecrets_cli.render.tables import Table

KIND = "coreference"
HITS = "coreference/hits"
BASELINE_HITS = "coreference/baseline_hits"
MENTION_TYPES = "coreference/mention_types"


@dataclass
class CorefOptions:
    data: str = ""  # CorefUD .conllu or .jsonl
    model: str | None = None
    device: str = "auto"
    batch_size: int = 32
    max_length: int = 128
    limit: int | None = None  # at most this many segments
    bootstrap: int = 1000
    seed: int = 0
    top: int = 10
    force: bool = False
    quiet: bool = False
    shard: str | None = None  # "i/n" or "auto": score only that contiguous range of the segments
    locking: bool | None = None  # False: --no-locking (NFS/Lustre)
    quantity: str = "weights"  # which maps to score (schema.QUANTITIES), computed on the fly like the weights


@dataclass
class CorefResult:
    path: Path
    n_segments: int
    n_mentions: int  # scored (with an antecedent in their segment)
    n_layers: int
    n_heads: int
    rows: list[Any]
    tables: list[Table] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)


def _check(opts: CorefOptions) -> None:
    from bertsecrets_cli.model.device import check_device_spec

    check_device_spec(opts.device)
    if opts.batch_size < 1:
        raise InputError(f"--batch-size {opts.batch_size}: must be at least 1")
    if not 8 <= opts.max_length <= 4096:
        raise InputError(f"--max-length {opts.max_length}: must be between 8 and 4096")
    if opts.bootstrap < 0:
        raise InputError(f"--bootstrap {opts.bootstrap}: must be at least 0")
    if opts.top < 1:
        raise InputError(f"--top {opts.top}: must be at least 1")
    if opts.limit is not None and opts.limit < 1:
        raise InputError(f"--limit {opts.limit}: must be at least 1")


@dataclass
class _Segment:
    id: str
    words: list[str]
    mentions: list[Any]
    outside: int = 0  # anaphoric mentions whose antecedents all lie in earlier segments of the document (not scored)


def pack_segments(docs: list[Any], piece_count: Any, budget: int) -> tuple[list[_Segment], int]:
    """Greedily pack each document's consecutive sentences into segments of at most ``budget`` pieces;
    returns (segments, sentences too long on their own)."""
    from bertsecrets_cli.analysis.coreference import SegmentMention

    out: list[_Segment] = []
    too_long = 0
    for doc in docs:
        cur: list[Any] = []
        used = 0
        seen: set[str] = set()  # entities mentioned in the document's earlier segments

        def flush() -> None:
            if not cur:
                return
            words: list[str] = []
            ments: list[SegmentMention] = []
            for s in cur:
                off = len(words)
                words += s.words
                ments += [SegmentMention(m.head + off, m.entity, m.type) for m in s.mentions]
            first = cur[0].id or str(len(out))
            outside = sum(1 for m in ments if m.entity in seen and not any(p.entity == m.entity and p.head < m.head for p in ments))
            seen.update(m.entity for m in ments)
            out.append(_Segment(f"{doc.id}/{first}" if first != doc.id else doc.id, words, ments, outside))

        for s in doc.sentences:
            if not s.words:
                continue
            n = piece_count(" ".join(s.words))
            if n > budget:
                too_long += 1
                flush()
                cur, used = [], 0
                continue
            if used + n > budget:
                flush()
                cur, used = [], 0
            cur.append(s)
            used += n
        flush()
    return out, too_long


def run_coref(opts: CorefOptions, out: str | Path, *, command: str | None = None) -> CorefResult:
    """Score every head of ``opts.model`` on the coreference chains of ``opts.data``."""
    from bertsecrets_cli.analysis.coreference import CorefScorer, state_meta, summarize
    from bertsecrets_cli.analysis.wordlevel import word_attention, word_piece_matrix
    from bertsecrets_cli.data.coref import ReadCounts, read_coref
    from bertsecrets_cli.jobs.attention_batches import iter_attention
    from bertsecrets_cli.jobs.framenet import _model_attrs, _provenance
    from bertsecrets_cli.jobs.provenance import provenance_texts
    from bertsecrets_cli.jobs.shard import fingerprint, resolve_shard, shard_provenance, shard_slice
    from bertsecrets_cli.model.load import load_model
    from bertsecrets_cli.model.tokenize import encode_examples
    from bertsecrets_cli.store.writer import StoreWriter, check_output_path

    _check(opts)
    from bertsecrets_cli.jobs.framenet import _heads_of, _job_options, _on_quantity
    from bertsecrets_cli.jobs.quantities import check_flow_length, check_quantity

    check_quantity(opts.quantity)
    check_flow_length([opts.quantity], opts.max_length)
    shard = resolve_shard(opts.shard) if opts.shard else None
    outp = check_output_path(out, force=opts.force)
    if Path(opts.data).exists() and outp.exists() and outp.resolve() == Path(opts.data).resolve():
        raise InputError(f"{out}: is the input file; give another -o")
    t0 = time.perf_counter()
    counts = ReadCounts()
    docs = read_coref(opts.data, counts)  # the whole file is checked before the model loads
    if counts.mentions == 0:
        raise InputError(f"{opts.data}: holds no coreference mentions (CoNLL-U: no Entity= in any MISC column; JSONL: no 'mentions')")
    if counts.zero_mentions:
        info(f"skipped {counts.zero_mentions} mention(s) on empty nodes only (no word to attend from)")
    lm = load_model(opts.model, device=opts.device)
    t_model = time.perf_counter()
    tok = lm.tokenizer
    n_special = len(encode_examples(tok, [("", None)], opts.max_length)[0].ids)
    segments, too_long = pack_segments(docs, lambda text: len(tok(text, add_special_tokens=False)["input_ids"]), opts.max_length - n_special)
    if too_long:
        info(f"skipped {too_long} sentence(s) longer than --max-length {opts.max_length} pieces")
    segments = [s for s in segments if s.mentions]
    if opts.limit is not None:
        segments = segments[: opts.limit]
    if not segments:
        raise InputError(f"{opts.data}: no segment with mentions fits in --max-length {opts.max_length}")
    all_ids = [s.id for s in segments]
    s0, s1 = shard_slice(shard, len(segments), "segments")
    shard_attrs = shard_provenance(shard, s0, s1, len(segments)) if shard is not None else {}
    if shard is not None:
        info(f"shard {shard} ({shard.origin}): segments {s0}..{s1 - 1} of {len(segments)}")
    segments = segments[s0:s1]
    encoded, matrices = [], []
    for seg in segments:
        spans, pos = [], 0
        for wd in seg.words:
            spans.append((pos, pos + len(wd)))
            pos += len(wd) + 1
        text = " ".join(seg.words)
        enc = encode_examples(tok, [(text, None)], opts.max_length)[0]
        encoded.append(enc)
        matrices.append(word_piece_matrix(enc.offsets, enc.special, spans, text))
    t_select = time.perf_counter()
    H = _heads_of(lm, opts.quantity)
    scorer = CorefScorer(lm.n_layers, H)
    for i, _enc, att in iter_attention(lm, encoded, opts.batch_size, description=f"coreference {lm.name}", quiet=opts.quiet,
                                      quantity=opts.quantity):
        M = matrices[i]
        scorer.add(word_attention(att, M), M.sum(1) > 0, segments[i].mentions, segments[i].words)
    if scorer.n == 0 and shard is None:
        raise InputError(f"{opts.data}: no mention has an antecedent inside its segment; nothing to score")
    if scorer.n == 0:
        info(f"shard {shard}: no mention with an antecedent here; the store is kept for merge")
    if scorer.skipped_unmapped:
        info(f"skipped {scorer.skipped_unmapped} mention(s) whose head word or antecedent has no word piece")
    outside = sum(s.outside for s in segments)
    if outside:  # coverage: these anaphoric mentions are not in any row below
        info(f"skipped {outside} of {outside + scorer.n + scorer.skipped_unmapped} anaphoric mention(s) whose antecedents all lie "
             f"outside their {opts.max_length}-piece segment (earlier segments of the document)")
    hits, base, types = scorer.arrays()
    rows = summarize(hits, base, types, samples=opts.bootstrap, seed=opts.seed) if scorer.n else []
    t_score = time.perf_counter()

    config = {k: v for k, v in asdict(opts).items() if k not in ("force", "quiet")}
    job = fingerprint({"model": lm.fingerprint, "data": str(Path(opts.data).expanduser()), "ids": all_ids,
                       "options": {k: v for k, v in _job_options(config).items() if k not in ("top", "device", "batch_size", "shard")}})
    # a decoder: how many scored mentions a first-token sink gets right for free (the first word, when no BOS comes before it)
    sink_is_word = lm.causal and bool(encoded) and int(encoded[0].special[0]) == 0
    causal = {"causal_sink_is_first_word": int(sink_is_word), "causal_first_word_antecedents": scorer.first_word} if lm.causal else {}
    with StoreWriter(outp, KIND, force=opts.force, locking=opts.locking) as w:
        w.set_model(n_layers=lm.n_layers, n_heads=H, **_model_attrs(lm))
        w.set_provenance(_provenance(lm, {"data_source": str(Path(opts.data).expanduser()), "n_segments": len(segments), "n_mentions": scorer.n,
                                          "max_length": opts.max_length, "bootstrap": opts.bootstrap, "seed": opts.seed, "job_fingerprint": job,
                                          "word_attention": "mean over the attending word's pieces, sum over the attended word's pieces",
                                          "skipped_unmapped": scorer.skipped_unmapped, "skipped_antecedent_outside_segment": outside,
                                          **shard_attrs, "quantity": opts.quantity, **causal}),
                         provenance_texts({"coref": config}, command))
        w.put_strings("examples/id", [s.id for s in segments])
        w.put_strings("examples/text_a", [" ".join(s.words) for s in segments])
        w.put_array("examples/length", np.asarray([e.length for e in encoded], dtype=np.int32))
        w.put_array(HITS, hits.astype(np.uint8), attrs={"description": "per scored mention and head: 1 when the head's most-attended word is an antecedent's head word"})
        w.put_array(BASELINE_HITS, base.astype(np.uint8), attrs={"names": ", ".join(state_meta(scorer)["baselines"])})
        w.put_array(MENTION_TYPES, types, attrs={"names": ", ".join(state_meta(scorer)["types"])})
        _put_results(w, rows)
    timings = {"load_model_s": t_model - t0, "read_pack_s": t_select - t_model, "forward_score_s": t_score - t_select,
               "write_s": time.perf_counter() - t_score}
    tables = _on_quantity(coref_tables(rows, opts.top, opts.bootstrap), opts.quantity)
    if lm.causal:
        tables[0].caption = ((tables[0].caption + " ") if tables[0].caption else "") + causal_caption(scorer.first_word, scorer.n, sink_is_word)
    return CorefResult(outp, len(segments), scorer.n, lm.n_layers, H, rows, tables, timings)


def causal_caption(first_word: int, n: int, sink_is_word: bool) -> str:
    """What the table means on a causal decoder's maps (README: Decoder models)."""
    return ("causal decoder: a mention's head word attends to itself and earlier words, and its antecedents come earlier, so every "
            f"scored mention is reachable and none is left out; {first_word} of {n} have the segment's first word as an antecedent"
            + ("; this tokenizer adds no BOS, so that word is the attention sink, which a sink head picks from every row and gets right "
               "without reading them" if sink_is_word else "; the BOS before it is the sink and is never a candidate"))


def _put_results(w: Any, rows: list[Any]) -> None:
    w.put_json("coreference/summary", [_row_json(r) for r in rows])
    for r in rows:
        # the baselines in the description: a grid of the heads alone cannot say that none beats head-word match
        base = ", ".join(f"{k} {float(v):.3f}" for k, v in r.baselines.items())
        best = float(np.nanmax(r.accuracy)) if np.size(r.accuracy) else float("nan")
        beaten = [k for k, v in r.baselines.items() if best > float(v)]
        verdict = (f"the best head ({best:.3f}) beats {', '.join(beaten)}" if beaten else f"no head beats any baseline (best head {best:.3f})")
        w.put_head_quantity(f"coref_{r.type}", r.accuracy, f"antecedent selection accuracy, {r.type} mentions ({r.count}); baselines: {base}; {verdict}",
                            count=r.count, n=r.count, n_counts=f"{r.type} mentions")


def combine_coref(paths: list[str], out: str | Path, *, top: int = 10, force: bool = False, locking: bool | None = None,
                  command: str | None = None) -> CorefResult:
    """Join the coreference stores of ``coref --shard i/n``: the per-mention hits are concatenated in segment
    order and every result recomputed, bootstrap included (same seed, same mentions: equal to one run)."""
    from bertsecrets_cli.analysis.coreference import summarize
    from bertsecrets_cli.store import StoreWriter
    from bertsecrets_cli.store.merge import merged_provenance, open_shards, order_shards
    from bertsecrets_cli.store.writer import copy_model_from

    outp, stores = open_shards(paths, out, KIND, force=force, locking=locking)
    try:
        ordered = order_shards(stores, ("job_fingerprint",), shards_only=True)
        first = ordered[0]
        prov, L, H = first.provenance(), first.n_layers, first.n_heads
        hits = np.concatenate([st.array(HITS) for st in ordered]).astype(bool)
        base = np.concatenate([st.array(BASELINE_HITS) for st in ordered]).astype(bool)
        types = np.concatenate([st.array(MENTION_TYPES) for st in ordered])
        samples, seed = int(prov.get("bootstrap", 1000)), int(prov.get("seed", 0))
        rows = summarize(hits, base, types, samples=samples, seed=seed)
        n_seg = int(sum(st.n_examples for st in ordered))
        causal = ({"causal_first_word_antecedents": sum(int(st.provenance().get("causal_first_word_antecedents", 0)) for st in ordered)}
                  if first.causal else {})
        sink_is_word = bool(int(prov.get("causal_sink_is_first_word", 0)))
        with StoreWriter(outp, KIND, force=force, locking=locking) as w:
            copy_model_from(w, first)
            for nm in first.h5["examples"]:
                w.concat_from(f"examples/{nm}", ordered)
            for name in (HITS, BASELINE_HITS, MENTION_TYPES):
                w.concat_from(name, ordered)
            w.set_provenance(*merged_provenance(ordered, outp, command, n_segments=n_seg, n_mentions=len(types),
                                                skipped_unmapped=sum(int(st.provenance().get("skipped_unmapped", 0)) for st in ordered),
                                                skipped_antecedent_outside_segment=sum(int(st.provenance().get("skipped_antecedent_outside_segment", 0))
                                                                                       for st in ordered), **causal))
            _put_results(w, rows)
    finally:
        for st in stores:
            st.close()
    from bertsecrets_cli.jobs.framenet import _on_quantity

    tables = _on_quantity(coref_tables(rows, top, samples), str(prov.get("quantity") or "weights"))
    if causal:
        tables[0].caption = ((tables[0].caption + " ") if tables[0].caption else "") + causal_caption(causal["causal_first_word_antecedents"], len(types), sink_is_word)
    return CorefResult(outp, n_seg, len(types), L, H, rows, tables)


def _row_json(r: Any) -> dict[str, Any]:
    return {"type": r.type, "count": r.count, "best_head": head_name(*r.best), "best_accuracy": float(r.accuracy[r.best]),
            "best_interval": list(r.best_interval), "baselines": r.baselines, "baseline_intervals": {k: list(v) for k, v in r.baseline_intervals.items()}}


def coref_tables(rows: list[Any], top: int, samples: int) -> list[Table]:
    """The paper's Table 2 (baselines and the best head per mention type), its bootstrap intervals, a ranking."""
    from bertsecrets_cli.analysis.coreference import BASELINES
    from bertsecrets_cli.analysis.framenet import rank_heads

    short = {"mention type": "type", "head word match": "head match", "rule-based": "rules", "best head acc.": "acc."}
    t = Table("antecedent selection accuracy (Clark et al. Table 2)", ["mention type", "mentions", *BASELINES, "best head", "best head acc."],
              name="accuracy", short=short)
    for r in rows:
        t.add(r.type, r.count, *[r.baselines[b] for b in BASELINES], head_name(*r.best), float(r.accuracy[r.best]))
    out = [t]
    if samples:
        ci = Table(f"95% bootstrap intervals ({samples} draws over mentions; the best head is chosen on all of them)",
                   ["mention type", *BASELINES, "best head"], name="intervals", short=short)
        for r in rows:
            ci.add(r.type, *[_interval(r.baseline_intervals[b]) for b in BASELINES], _interval(r.best_interval))
        out.append(ci)
    if not rows:
        return out
    cols = [r.type for r in rows]
    overall = rows[0]
    strongest = max(BASELINES, key=lambda b: overall.baselines[b])  # the strongest baseline shown, on all mentions
    bar = float(overall.baselines[strongest])
    n_beat = int((overall.accuracy > bar).sum())
    rank = Table("heads ranked by antecedent selection accuracy (all mentions)", ["rank", "head", *cols, "beats strongest baseline"], name="ranking",
                 caption=f"{n_beat} of {overall.accuracy.size} heads beat the strongest baseline on all mentions ({strongest}, {bar:.3f})",
                 short={"beats strongest baseline": "beats"})
    for k, (layer, h) in enumerate(rank_heads(overall.accuracy)[:top], 1):
        rank.add(k, head_name(layer, h), *[float(r.accuracy[layer, h]) for r in rows], "yes" if overall.accuracy[layer, h] > bar else "no")
    return [*out, rank]


def _interval(iv: tuple[float, float]) -> str:
    return f"{iv[0]:.3f}-{iv[1]:.3f}"
