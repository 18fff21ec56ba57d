"""``words``: the word-level attention maps of an attention store (Clark et al. 2019's conversion), as a store.

One streaming pass over the input: each example's pieces are grouped into words from the tokenizer's
character offsets and its own texts (analysis/wordlevel.py), its maps converted with the paper's rule (mean
over the attending word's pieces, sum over the attended word's pieces) and appended to a ``words`` store
(store/words.py). Memory holds one block of the input and one example of output, whatever the store's size.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bertsecrets_cli.errors import InputError, OutputError

RULE = "mean over the attending word's pieces, sum over the attended word's pieces (Clark et al. 2019)"


@dataclass
class WordsOptions:
    boundaries: str = "punctuation"  # or "whitespace": what separates words in the stored texts
    force: bool = False
    locking: bool | None = None
    quiet: bool = False
    shard: str | None = None  # "i/n" or "auto": convert only that contiguous range of the examples (join with `merge`)


@dataclass
class WordsResult:
    path: Path
    n_examples: int
    n_pieces: int
    n_words: int
    n_layers: int
    n_heads: int
    max_row_error: float  # max |sum of a word row - 1| over all maps: 0 up to float rounding
    timings: dict[str, float] = field(default_factory=dict)


def run_words(store_path: str | Path, out: str | Path, opts: WordsOptions, *, name: str | None = None, command: str | None = None) -> WordsResult:
    """Convert every map of the attention store ``store_path`` (or of one shard of its examples) to word level
    and write a ``words`` store."""
    from bertsecrets_cli.analysis.wordlevel import BOUNDARIES, example_units, word_attention
    from bertsecrets_cli.jobs.provenance import provenance_texts, tool_attrs
    from bertsecrets_cli.jobs.shard import fingerprint, input_identity, resolve_shard, store_slice
    from bertsecrets_cli.render.progress import progress
    from bertsecrets_cli.store import StoreWriter, open_store
    from bertsecrets_cli.store.reader import iter_tokens
    from bertsecrets_cli.store.words import KIND, WordMapsWriter, copy_word_examples
    from bertsecrets_cli.store.writer import check_output_path, copy_model_from

    if opts.boundaries not in BOUNDARIES:
        raise InputError(f"--word-boundaries {opts.boundaries}: choose one of {', '.join(BOUNDARIES)}")
    shard = resolve_shard(opts.shard) if opts.shard else None
    outp = check_output_path(out, force=opts.force)
    if outp.exists() and Path(store_path).exists() and outp.resolve() == Path(store_path).resolve():
        raise OutputError(f"{out}: is the input store; input stores are never modified, give another -o")
    t0 = time.perf_counter()
    with open_store(store_path, kind="attention", locking=opts.locking) as st:
        L, H, n_total = st.n_layers, st.n_heads, st.n_examples
        prov = st.provenance()
        s0, s1, shard_attrs = store_slice(shard, prov, n_total, str(name or store_path), "convert", "words")
        N = s1 - s0
        texts_a = st.strings("examples/text_a")
        texts_b = st.strings("examples/text_b") if st.has("examples/text_b") else [""] * n_total
        n_pieces = n_words = 0
        worst = 0.0
        with StoreWriter(outp, KIND, force=opts.force, locking=opts.locking) as w:
            copy_model_from(w, st)
            copy_word_examples(w, st, s0, s1)
            wm = WordMapsWriter(w, boundaries=opts.boundaries, rule=RULE)
            with progress(N, f"words {name or store_path}", quiet=opts.quiet) as advance:
                pieces = st.iter_attention(list(range(s0, s1)) if shard is not None else None)
                for (i, att), (j, tok) in zip(pieces, iter_tokens(st, start=s0, end=s1)):
                    assert i == j, "attention and tokens are both read in store order"
                    u = example_units(tok.text, tok.offsets, tok.special, tok.type_ids, (texts_a[i], texts_b[i]), opts.boundaries)
                    maps = word_attention(att, u.matrix)
                    if maps.size:
                        worst = max(worst, float(np.nanmax(np.abs(maps.sum(-1) - 1.0))))
                    wm.add(u.texts, u.spans, u.segment, u.special, maps)
                    n_pieces += len(tok.text)
                    n_words += len(u.texts)
                    advance(1)
            wm.close(L, H)
            config = {"input": str(store_path), **{k: v for k, v in asdict(opts).items() if k not in ("force", "locking", "quiet")}}
            keep = {k: prov[k] for k in ("model", "model_path", "model_revision", "model_fingerprint", "tokenizer", "task", "data_source", "split",
                                         "is_demo_data", "max_length", "attn_implementation") if k in prov}
            # shards of one conversion (or conversions of one extract job's shards) share it; merge checks it
            job = fingerprint({"input": input_identity(st), "word_boundaries": opts.boundaries, "word_attention": RULE})
            w.set_provenance({**tool_attrs(), **keep, "source_store": str(Path(store_path).expanduser()), "word_boundaries": opts.boundaries,
                              "word_attention": RULE, "n_examples": N, "n_pieces": n_pieces, "n_words": n_words, "max_row_error": worst,
                              "job_fingerprint": job, "input_job_fingerprint": str(prov.get("job_fingerprint", "")), **shard_attrs},
                             provenance_texts({"words": config}, command))
    return WordsResult(outp, N, n_pieces, n_words, L, H, worst, {"total_s": time.perf_counter() - t0})


def combine_words(paths: list[str], out: str | Path, *, force: bool = False, locking: bool | None = None, command: str | None = None) -> WordsResult:
    """Join the words stores of ``words --shard i/n`` (or of words runs on an extract job's shards) into one,
    equal to one unsharded conversion: the maps are converted per example, so the shards' values are the run's."""
    from bertsecrets_cli.store import StoreWriter
    from bertsecrets_cli.store.merge import merged_provenance, open_shards, order_shards
    from bertsecrets_cli.store.words import KIND, merge_word_stores
    from bertsecrets_cli.store.writer import copy_model_from

    t0 = time.perf_counter()
    outp, stores = open_shards(paths, out, KIND, force=force, locking=locking)
    try:
        ordered = order_shards(stores, ("word_boundaries", "job_fingerprint"), shards_only=True)
        provs = [st.provenance() for st in ordered]
        n = int(sum(st.n_examples for st in ordered))
        n_pieces, n_words = (int(sum(int(p.get(k, 0)) for p in provs)) for k in ("n_pieces", "n_words"))
        worst = float(np.max([float(p.get("max_row_error", float("nan"))) for p in provs]))  # NaN: a shard did not record it
        with StoreWriter(outp, KIND, force=force, locking=locking) as w:
            copy_model_from(w, ordered[0])
            merge_word_stores(w, ordered)
            w.set_provenance(*merged_provenance(ordered, outp, command, n_examples=n, n_pieces=n_pieces, n_words=n_words, max_row_error=worst))
        L, H = ordered[0].n_layers, ordered[0].n_heads
    finally:
        for st in stores:
            st.close()
    return WordsResult(outp, n, n_pieces, n_words, L, H, worst, {"total_s": time.perf_counter() - t0})


def word_level_summary(res: WordsResult) -> Any:
    """One table: what the conversion did."""
    from bertsecrets_cli.render.tables import Table

    t = Table("word-level attention", ["quantity", "value"], name="words")
    t.add("examples", res.n_examples)
    t.add("word pieces", res.n_pieces)
    t.add("word units (words + special tokens)", res.n_words)
    t.add("pieces per unit", res.n_pieces / res.n_words if res.n_words else float("nan"))
    t.add("max |row sum - 1|", res.max_row_error)
    return t
