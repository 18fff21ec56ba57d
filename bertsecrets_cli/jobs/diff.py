"""``diff``: how attention changes between two models on the same examples (Kovaleva et al. 2019, sec. 4.3).

Both stores are streamed side by side, one contiguous block at a time (``Store.iter_attention``), so memory
stays bounded whatever their size; only per-example per-head numbers are kept. Examples are paired by id
and must have identical tokens, or the maps would not be comparable cell by cell.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from itertools import pairwise
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bertsecrets_cli.errors import Interrupted, InputError, StoreError
from bertsecrets_cli.heads import head_name, layer_name
from bertsecrets_cli.render.console import info
from bertsecrets_cli.render.progress import progress
from bertsecrets_cli.render.tables import Table
from bertsecrets_cli.store import schema as S

# names inside a diff store (the writer API takes names; plot/show find /heads by themselves)
PER_EXAMPLE_COSINE = "per_example/cosine"
PER_EXAMPLE_JS = "per_example/js_divergence"
EXAMPLE_FIELDS = ("id", "text_a", "text_b", "label", "length")


@dataclass
class DiffOptions:
    padded: bool = False  # the authors' 200x200 canvas instead of maps cropped to the real length
    canvas: int = 200
    top: int = 10
    block_values: int = 1 << 21  # attention values read per block and store: bounds memory (8 MiB as float32)
    force: bool = False
    locking: bool | None = None
    quiet: bool = False
    shard: str | None = None  # "i/n" or "auto": compare only that contiguous range of the paired examples
    quantity: str = "weights"  # which stored maps of both stores to compare (schema.QUANTITIES)
    part_size: int = 4096  # paired examples per resumable part of a run with -o (0: one pass)
    resume: bool = False  # continue an interrupted run from its finished parts


@dataclass
class DiffResult:
    path: Path | None
    n_examples: int
    n_layers: int
    n_heads: int
    cosine: np.ndarray | None  # [layers, heads], mean over paired examples
    js_divergence: np.ndarray | None
    deltas: dict[str, np.ndarray] = field(default_factory=dict)  # name -> B - A, [layers, heads]
    tables: list[Table] = field(default_factory=list)
    quantity: str = "weights"


def pair_examples(ids_a: list[str], ids_b: list[str], name_a: str, name_b: str) -> tuple[list[int], list[int]]:
    """Indices into A and B of the examples both hold, in A's order; duplicate ids pair only by position."""
    for ids, name in ((ids_a, name_a), (ids_b, name_b)):
        if not ids:
            raise StoreError(f"{name}: holds no examples; nothing to compare")
    if ids_a == ids_b:
        return list(range(len(ids_a))), list(range(len(ids_b)))
    pos_b: dict[str, int] = {}
    for j, x in enumerate(ids_b):
        if x in pos_b:
            raise InputError(f"{name_b}: example id {x!r} occurs twice, so examples cannot be paired by id")
        pos_b[x] = j
    ia, ib, seen = [], [], set()
    for i, x in enumerate(ids_a):
        if x in seen:
            raise InputError(f"{name_a}: example id {x!r} occurs twice, so examples cannot be paired by id")
        seen.add(x)
        if x in pos_b:
            ia.append(i)
            ib.append(pos_b[x])
    if not ia:
        raise InputError(f"{name_a} and {name_b}: no example id in common (e.g. {ids_a[0]!r} vs {ids_b[0]!r}); extract both from the same data")
    if len(ia) < max(len(ids_a), len(ids_b)):
        info(f"pairing {len(ia)} examples by id ({len(ids_a) - len(ia)} only in {name_a}, {len(ids_b) - len(ia)} only in {name_b})")
    return ia, ib


def _token_index(st: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(all token ids, per-example token offsets, lengths): compact integer arrays, no strings."""
    return st.array(f"{S.G_TOKENS}/ids"), st.array(f"{S.G_EXAMPLES}/token_offset").astype(np.int64), st.lengths().astype(np.int64)


def check_tokens(st_a: Any, st_b: Any, ia: list[int], ib: list[int], name_a: str | None = None, name_b: str | None = None) -> None:
    """Raise InputError naming the first paired example whose tokens differ (the maps would not line up).

    Token ids are compared first (integer arrays, fast); an example whose ids differ is compared by its
    token strings, so two tokenizers that number the same pieces differently still pass.
    """
    name_a, name_b = name_a or str(st_a.path), name_b or str(st_b.path)
    ids_a, off_a, len_a = _token_index(st_a)
    ids_b, off_b, len_b = _token_index(st_b)
    if ia == ib and np.array_equal(len_a, len_b) and np.array_equal(ids_a, ids_b):
        return
    names = None
    for i, j in zip(ia, ib):
        if len_a[i] == len_b[j] and np.array_equal(ids_a[off_a[i] : off_a[i] + len_a[i]], ids_b[off_b[j] : off_b[j] + len_b[j]]):
            continue
        ta, tb = st_a.tokens(i).text, st_b.tokens(j).text
        if ta == tb:
            continue
        names = names or st_a.example_ids()
        k = next((k for k, (x, y) in enumerate(zip(ta, tb)) if x != y), min(len(ta), len(tb)))
        what = (f"token {k} is {ta[k]!r} in {name_a} but {tb[k]!r} in {name_b}" if k < min(len(ta), len(tb))
                else f"it has {len(ta)} tokens in {name_a} but {len(tb)} in {name_b}")
        raise InputError(f"example {names[i]!r}: {what}; diff needs both stores extracted with the same tokenizer, data and --max-length")


def _pairs(st_a: Any, st_b: Any, ia: list[int], ib: list[int], block_values: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(A map, B map) per pair, in A's order: both streamed when B's order follows A's, else B read per example."""
    if all(y > x for x, y in pairwise(ib)) and all(y > x for x, y in pairwise(ia)):
        for (_, a), (_, b) in zip(st_a.iter_attention(ia, block_values), st_b.iter_attention(ib, block_values)):
            yield a, b
        return
    info("the two stores hold the examples in different orders: reading B's one by one (slower)")
    order = dict(zip(ia, ib))
    for i, a in st_a.iter_attention(sorted(ia), block_values):
        yield a, st_b.attention(order[i])


def compare_quantities(heads_a: dict[str, Any], heads_b: dict[str, Any]) -> dict[str, tuple[np.ndarray, np.ndarray, str]]:
    """Every per-head quantity both stores hold: name -> (A values, B values, description)."""
    out = {}
    for name in sorted(set(heads_a) & set(heads_b)):
        a, b = np.asarray(heads_a[name].values, float), np.asarray(heads_b[name].values, float)
        if a.shape == b.shape:
            out[name] = (a, b, heads_a[name].description)
    return out


def paired_quantities(st_a: Any, st_b: Any, ia: list[int], ib: list[int], quantities: dict[str, tuple[np.ndarray, np.ndarray, str]],
                      name_a: str, name_b: str) -> tuple[dict[str, tuple[np.ndarray, np.ndarray, str]], tuple[int, int]]:
    """The per-head quantities over the paired examples only, and how many examples of A and of B were left out.

    A store's /heads means cover all of its examples; when some are not paired, each ``stat_*`` is recomputed
    from the stored per-example statistics of the paired ones (so B - A compares the same sentences), and a
    quantity that cannot be recomputed that way is left out with a note rather than compared over other examples.
    """
    n_a, n_b = st_a.n_examples, st_b.n_examples
    left = (n_a - len(set(ia)), n_b - len(set(ib)))
    if left == (0, 0):
        return quantities, left
    means_a, means_b = st_a.stat_means(ia), st_b.stat_means(ib)
    out, dropped = {}, []
    for name, (a, b, desc) in quantities.items():
        stat = name.removeprefix("stat_")
        if name.startswith("stat_") and means_a and means_b and stat in means_a[0] and stat in means_b[0]:
            ka, kb = means_a[0].index(stat), means_b[0].index(stat)
            out[name] = (means_a[1][..., ka], means_b[1][..., kb], desc)
        else:
            dropped.append(name)
    info(f"per-head quantities over the {len(ia)} paired examples only: {left[0]} of {name_a}'s {n_a} and {left[1]} of {name_b}'s {n_b} examples left out"
         + (f"; {', '.join(dropped)} left out too (no per-example values to recompute them from)" if dropped else ""))
    return out, left


def _nanmean(x: np.ndarray) -> float:
    ok = np.isfinite(x)
    return float(x[ok].mean()) if ok.any() else float("nan")


def summary_tables(cosine: np.ndarray | None, js: np.ndarray | None, quantities: dict[str, tuple[np.ndarray, np.ndarray, str]],
                   top: int, measure: str, context: str = "", *, quantity: str = "weights", over: str = "") -> list[Table]:
    """Per-layer similarity (the rows of the paper's Fig. 5), the most changed heads, and B - A per quantity.

    ``context`` (models, data, N: render.labels.context) goes into the similarity table's title. Titles name
    the ``quantity`` compared unless it is the weights (the titles of before quantities existed).
    """
    from bertsecrets_cli.analysis.similarity import layer_means, rank_heads

    on = "" if quantity == S.Q_WEIGHTS else f" on {quantity}"
    tables: list[Table] = []
    if cosine is not None and js is not None:
        t = Table(f"similarity per layer (A -> B){on}" + (f" ({context})" if context else ""), ["layer", "cosine", "min cosine", "least similar head", "JS divergence"],
                  name="layers", caption=f"{measure} (0-1; 1 = the same maps); JS divergence in bits (0 = the same rows); mean over heads and examples")
        cos_l, js_l = layer_means(cosine), layer_means(js)
        for li in range(cosine.shape[0]):
            row = cosine[li]
            h = int(np.nanargmin(row)) if np.isfinite(row).any() else 0
            t.add(layer_name(li), cos_l[li], float(row[h]), head_name(li, h), js_l[li])
        tables.append(t)
        t = Table(f"most changed heads{on}", ["rank", "head", "cosine", "JS divergence"],
                  caption=f"lowest mean cosine (0-1) first; JS divergence in bits; maps: {quantity}", name="heads")
        for r, (li, h, v) in enumerate(rank_heads(cosine, top=top, ascending=True), 1):
            t.add(r, head_name(li, h), v, float(js[li, h]))
        tables.append(t)
    if quantities:
        t = Table(f"per-head quantities (B - A){on}", ["quantity", "mean A", "mean B", "mean B-A", "largest |B-A|", "at head"], name="quantities",
                  caption=f"every /heads quantity both stores hold for {quantity}{over}; stored as delta_<name>")
        for name, (a, b, _) in quantities.items():
            d = b - a
            ranked = rank_heads(d, top=1, by_abs=True)
            li, h, v = ranked[0] if ranked else (0, 0, float("nan"))
            t.add(name, _nanmean(a), _nanmean(b), _nanmean(d), v, head_name(li, h) if ranked else "")
        tables.append(t)
    return tables


def _model_attr(st: Any, key: str) -> str:
    # Store.attrs, not model_attrs: the latter cannot read array attributes such as label_names
    v = st.attrs(S.G_MODEL).get(key, "")
    return v if isinstance(v, str) else ""


def _model_desc(st: Any) -> str:
    return _model_attr(st, "name") or str(st.provenance().get("model") or st.path)


def _run_diff_in_parts(a_path: str | Path, b_path: str | Path, out: str | Path, opts: DiffOptions, *, command: str | None,
                       names: tuple[str, str] | None) -> DiffResult | None:
    """Stores larger than one part are compared part by part (resumable), then joined as shards are; None: one pass."""
    from dataclasses import asdict, replace

    from bertsecrets_cli.jobs.resumable import leftover_parts, run_in_parts
    from bertsecrets_cli.jobs.shard import inherited_shard
    from bertsecrets_cli.store import open_store
    from bertsecrets_cli.store.writer import check_output_path

    leftover_parts(out, resume=opts.resume, force=opts.force)
    with open_store(a_path, locking=opts.locking) as a, open_store(b_path, locking=opts.locking) as b:
        n, pa, pb = min(a.n_examples, b.n_examples), a.provenance(), b.provenance()
        maps = a.has(S.ATTENTION_MAPS) and b.has(S.ATTENTION_MAPS)
    if n <= opts.part_size or not maps or inherited_shard(pa) or inherited_shard(pb):
        return None
    check_output_path(out, force=opts.force or opts.resume)
    key = {"inputs": [str(x) for x in (names or (a_path, b_path))], "jobs": [pa.get("job_fingerprint", ""), pb.get("job_fingerprint", "")], "n": n,
           "options": {k: v for k, v in asdict(opts).items() if k not in ("force", "quiet", "resume", "locking", "block_values", "top")}}
    part_opts = replace(opts, part_size=0, force=True, resume=False)
    return run_in_parts(out, n_items=n, part_size=opts.part_size, key=key, resume=opts.resume, what=f"diff of {n} examples",
                        run_part=lambda shard, path: run_diff(a_path, b_path, path, replace(part_opts, shard=shard), command=command, names=names),
                        combine=lambda paths: combine_diff(paths, out, top=opts.top, force=opts.force or opts.resume, locking=opts.locking, command=command))


def run_diff(a_path: str | Path, b_path: str | Path, out: str | Path | None, opts: DiffOptions, *,
             command: str | None = None, names: tuple[str, str] | None = None) -> DiffResult:
    """Compare store B with store A: per-head cosine and JS divergence of the maps, and B - A of every shared quantity.

    ``names`` are how the inputs are called in messages and provenance (the user's paths, even for '-').
    """
    from bertsecrets_cli.analysis.quantities import row_normalise
    from bertsecrets_cli.analysis.similarity import head_cosine, head_cosine_padded, head_js_divergence
    from bertsecrets_cli.jobs.provenance import provenance_texts, tool_attrs
    from bertsecrets_cli.jobs.shard import fingerprint, input_identity, input_shard, resolve_shard, shard_provenance, shard_slice
    from bertsecrets_cli.jobs.signals import graceful_stop
    from bertsecrets_cli.store import StoreWriter, open_store
    from bertsecrets_cli.store.writer import check_output_path

    if opts.top < 0:
        raise InputError(f"--top {opts.top}: must be 0 (all heads) or more")
    if opts.padded and opts.canvas < 1:
        raise InputError(f"--canvas {opts.canvas}: must be at least 1")
    if opts.part_size < 0:
        raise InputError(f"--part-size {opts.part_size}: must be 0 (one pass) or more")
    shard = resolve_shard(opts.shard) if opts.shard else None
    if out is not None and shard is None and opts.part_size:
        parted = _run_diff_in_parts(a_path, b_path, out, opts, command=command, names=names)
        if parted is not None:
            return parted
    if out is not None:
        check_output_path(out, force=opts.force)
    if shard is not None and out is None:
        raise InputError("--shard: give -o; each shard writes a diff store, then 'bertsecrets merge' joins them")
    name_a, name_b = names or (str(a_path), str(b_path))
    with ExitStack() as stack:
        st_a = stack.enter_context(open_store(a_path, locking=opts.locking, quantity=opts.quantity))
        st_b = stack.enter_context(open_store(b_path, locking=opts.locking, quantity=opts.quantity))
        distribution = S.quantity(st_a.quantity).distribution
        L, H = st_a.n_layers, st_a.n_heads
        if (st_b.n_layers, st_b.n_heads) != (L, H):
            raise InputError(f"{name_a} has {L} layers x {H} heads but {name_b} has {st_b.n_layers} x {st_b.n_heads}: "
                             "diff compares two stores of the same model architecture (e.g. pretrained vs fine-tuned)")
        maps_a, maps_b = st_a.has(S.ATTENTION_MAPS), st_b.has(S.ATTENTION_MAPS)
        quantities = compare_quantities(st_a.heads(), st_b.heads())
        if not (maps_a and maps_b):
            lacking = name_a if not maps_a else name_b
            if not quantities:
                raise InputError(f"{lacking} holds no attention maps and the two stores share no per-head quantity: nothing to compare")
            info(f"{lacking} holds no attention maps: comparing the {len(quantities)} per-head quantities both stores hold")
        measure = f"cosine of maps padded to {opts.canvas}x{opts.canvas}, as the authors' code" if opts.padded else "cosine of maps cropped to the real length"
        measure += f" ({st_a.quantity})"
        if shard is not None and not (maps_a and maps_b):
            raise InputError("--shard splits the attention maps of the paired examples; both stores must hold maps")
        shard_attrs = input_shard(shard, st_a.provenance(), str(name_a), "diff", "diff")
        cosine = js = None
        ia: list[int] = []
        left_out = (0, 0)
        if not (maps_a and maps_b) and st_a.has(f"{S.G_EXAMPLES}/id") and st_b.has(f"{S.G_EXAMPLES}/id"):
            ja, jb = pair_examples(st_a.example_ids(), st_b.example_ids(), name_a, name_b)
            quantities, left_out = paired_quantities(st_a, st_b, ja, jb, quantities, name_a, name_b)
            if not quantities:
                raise InputError(f"{name_a} and {name_b}: share {len(ja)} of their examples, and no per-head quantity can be recomputed over "
                                 "those alone; diff the stores these were computed from")
        writer = stack.enter_context(StoreWriter(out, "diff", force=opts.force, locking=opts.locking)) if out is not None else None
        if maps_a and maps_b:
            ia, ib = pair_examples(st_a.example_ids(), st_b.example_ids(), name_a, name_b)
            # over all paired examples, before any --shard slice: every shard then holds the same deltas
            quantities, left_out = paired_quantities(st_a, st_b, ia, ib, quantities, name_a, name_b)
            if shard is not None:
                s0, s1 = shard_slice(shard, len(ia), "paired examples")
                shard_attrs = shard_provenance(shard, s0, s1, len(ia))
                ia, ib = ia[s0:s1], ib[s0:s1]
                info(f"shard {shard} ({shard.origin}): paired examples {s0}..{s1 - 1}")
            check_tokens(st_a, st_b, ia, ib, name_a, name_b)
            cos_fn = (lambda x, y: head_cosine_padded(x, y, opts.canvas)) if opts.padded else head_cosine
            app_cos = writer.appender(PER_EXAMPLE_COSINE, np.float32, (L, H)) if writer else None
            app_js = writer.appender(PER_EXAMPLE_JS, np.float32, (L, H)) if writer else None
            cos_sum, js_sum = np.zeros((L, H)), np.zeros((L, H))
            cos_n = np.zeros((L, H))
            with graceful_stop() as stop, progress(len(ia), "diff", quiet=opts.quiet) as advance:
                for done, (a, b) in enumerate(_pairs(st_a, st_b, ia, ib, opts.block_values)):
                    if stop.requested:
                        raise Interrupted(f"{out or name_b}: stopped by {stop.signal} after {done} of {len(ia)} examples; nothing was written (rerun the command)")
                    # float32, as stored: a merge of shards recomputes the means from exactly these values
                    c = cos_fn(a, b).astype(np.float32)
                    # JS divergence compares distributions: raw norms and flow are taken with rows normalised to sum 1
                    j = (head_js_divergence(a, b) if distribution else head_js_divergence(row_normalise(a), row_normalise(b))).astype(np.float32)
                    ok = np.isfinite(c)
                    cos_sum += np.where(ok, c, 0.0)
                    cos_n += ok
                    js_sum += j
                    if app_cos is not None:
                        app_cos.append(c[None])
                        app_js.append(j[None])
                    advance(1)
            with np.errstate(invalid="ignore", divide="ignore"):
                cosine = cos_sum / cos_n
            js = js_sum / len(ia)
        deltas = {f"delta_{n}": b - a for n, (a, b, _) in quantities.items()}
        from bertsecrets_cli.render.labels import context

        data = str(st_a.provenance().get("data_source", "") or "")
        tables = summary_tables(cosine, js, quantities, opts.top, measure,
                                context(f"{_model_desc(st_a)} -> {_model_desc(st_b)}", data, len(ia), counts="paired examples"),
                                quantity=st_a.quantity,
                                over=(f", means over the {st_a.n_examples - left_out[0]} paired examples only ({left_out[0]} of A's and {left_out[1]} of B's left out)"
                                      if any(left_out) else ""))
        if writer is not None:
            writer.set_model(n_layers=L, n_heads=H, model_type=_model_attr(st_a, "model_type"), name=f"{_model_desc(st_a)} -> {_model_desc(st_b)}",
                             name_a=_model_desc(st_a), name_b=_model_desc(st_b))
            pa, pb = st_a.provenance(), st_b.provenance()
            writer.set_provenance(
                {**tool_attrs(), "store_a": name_a, "store_b": name_b, "model_a": pa.get("model", ""), "model_b": pb.get("model", ""),
                 "model_fingerprint_a": pa.get("model_fingerprint", ""), "model_fingerprint_b": pb.get("model_fingerprint", ""),
                 "data_source": pa.get("data_source", ""), "task": pa.get("task", ""), "measure": measure if cosine is not None else "",
                 "js_divergence": "Jensen-Shannon divergence in bits, mean over query rows" if js is not None else "",
                 "n_paired": len(ia), "left_out_a": left_out[0], "left_out_b": left_out[1], "padded": int(opts.padded), "canvas": opts.canvas, "quantity": st_a.quantity,
                 "job_fingerprint": fingerprint({"a": input_identity(st_a), "b": input_identity(st_b), "padded": opts.padded,
                                                 "canvas": opts.canvas if opts.padded else None,
                                                 **({"quantity": st_a.quantity} if st_a.quantity != S.Q_WEIGHTS else {})}), **shard_attrs},
                provenance_texts({"diff": {**asdict(opts), "a": name_a, "b": name_b}}, command),
            )
            if ia:
                _write_examples(writer, st_a, ia)
            if cosine is not None and js is not None:
                writer.put_head_quantity("cosine", cosine, f"mean over examples of the per-head {measure}, A -> B", measure="padded" if opts.padded else "cropped")
                writer.put_head_quantity("js_divergence", js, "mean over examples and query rows of the Jensen-Shannon divergence (bits) of A's and B's attention rows")
            for n, (a, b, desc) in quantities.items():
                writer.put_head_quantity(f"delta_{n}", b - a, f"B - A of {n}" + (f": {desc}" if desc else ""))
        path = Path(out) if out is not None else None
    return DiffResult(path, len(ia), L, H, cosine, js, deltas, tables, quantity=st_a.quantity)


def combine_diff(paths: list[str], out: str | Path, *, top: int = 10, force: bool = False, locking: bool | None = None,
                 command: str | None = None) -> DiffResult:
    """Join the diff stores of ``diff --shard i/n`` (or of diffs of matching extract shards) into one.

    Per-example cosine and JS divergence are concatenated and their per-head means recomputed, so the result
    equals one unsharded diff (to float rounding). A ``delta_*`` quantity is kept when every shard holds the
    same one (it comes from the whole input stores); one that differs between shards is left out, with a note.
    """
    from bertsecrets_cli.store import StoreWriter
    from bertsecrets_cli.store.merge import merged_provenance, open_shards, order_shards
    from bertsecrets_cli.store.writer import copy_model_from

    outp, stores = open_shards(paths, out, "diff", force=force, locking=locking)
    try:
        ordered = order_shards(stores, ("job_fingerprint",), shards_only=True)
        first = ordered[0]
        L, H = first.n_layers, first.n_heads
        cos_sum, cos_n, js_sum = np.zeros((L, H)), np.zeros((L, H)), np.zeros((L, H))
        n = 0
        for st in ordered:
            for c in st.iter_rows(PER_EXAMPLE_COSINE):
                ok = np.isfinite(c)
                cos_sum += np.where(ok, c, 0.0).sum(0, dtype=np.float64)
                cos_n += ok.sum(0)
                n += len(c)
            for j in st.iter_rows(PER_EXAMPLE_JS):
                js_sum += j.sum(0, dtype=np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            cosine = cos_sum / cos_n
        js = js_sum / max(n, 1)
        heads0 = first.heads()
        deltas: dict[str, np.ndarray] = {}
        for name in sorted(k for k in heads0 if k.startswith("delta_")):
            if all(name in st.heads() and np.array_equal(st.heads()[name].values, heads0[name].values, equal_nan=True) for st in ordered[1:]):
                deltas[name] = heads0[name].values
            else:
                info(f"{name}: differs between the shards (their inputs hold per-shard values); left out: diff the merged inputs for it")
        with StoreWriter(outp, "diff", force=force, locking=locking) as w:
            copy_model_from(w, first)
            for name in EXAMPLE_FIELDS:
                if first.has(f"{S.G_EXAMPLES}/{name}"):
                    w.concat_from(f"{S.G_EXAMPLES}/{name}", ordered)
            w.concat_from(PER_EXAMPLE_COSINE, ordered)
            w.concat_from(PER_EXAMPLE_JS, ordered)
            for name, values in (("cosine", cosine), ("js_divergence", js), *deltas.items()):
                attrs = {k: v for k, v in first.attrs(f"{S.G_HEADS}/{name}").items() if k != "description"}
                w.put_head_quantity(name, values, heads0[name].description, **attrs)
            w.set_provenance(*merged_provenance(ordered, outp, command, n_paired=n))
        measure = str(first.provenance().get("measure", ""))
        quantity = first.result_quantity()
    finally:
        for st in stores:
            st.close()
    return DiffResult(outp, n, L, H, cosine, js, deltas, summary_tables(cosine, js, {}, top, measure, quantity=quantity), quantity=quantity)


def _write_examples(writer: Any, st: Any, idx: list[int]) -> None:
    """The paired examples' index (ids, texts, labels, lengths) from store A, in pairing order."""
    sel = np.asarray(idx)
    for name in EXAMPLE_FIELDS:
        full = f"{S.G_EXAMPLES}/{name}"
        if not st.has(full):
            continue
        if name in ("id", "text_a", "text_b"):
            vals = st.strings(full)
            writer.put_strings(full, [vals[i] for i in idx])
        else:
            writer.put_array(full, st.array(full)[sel])
