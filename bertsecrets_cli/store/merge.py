"""Combine attention stores written by parallel shards into one store.

By default the attention data are not copied: the merged ``attention/maps`` is an HDF5 virtual dataset
whose sources are the shard files, named by paths relative to the merged file's folder (so the
folder can be moved as a whole). ``copy=True`` writes a self-contained store instead. The small
index arrays (offsets) cannot be concatenated virtually: they are copied and rebased.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bertsecrets_cli.errors import InputError, StoreError
from bertsecrets_cli.store import schema as S
from bertsecrets_cli.store.reader import Store, open_store
from bertsecrets_cli.store.writer import StoreWriter, check_output_path

# provenance fields that must agree between shards of one job
JOB_FIELDS = ("job_fingerprint", "model_fingerprint", "tokenizer", "data_source", "split", "max_length", "truncation", "encoding", "attn_implementation")


@dataclass
class MergeReport:
    path: Path
    n_examples: int
    n_shards: int
    virtual: bool
    shard_bytes: int
    merged_bytes: int
    order: list[str] = field(default_factory=list)


def order_shards(stores: list[Store], fields: tuple[str, ...] = JOB_FIELDS, *, shards_only: bool = False) -> list[Store]:
    """Sort shards by index and refuse overlapping, missing or foreign ones.

    ``fields``: provenance that must agree between shards of one job. Without ``shards_only``, stores that are
    not shards may be joined too when their example ids do not overlap (attention stores of disjoint data).
    """
    provs = [s.provenance() for s in stores]
    first = provs[0]
    for st in stores:
        if st.kind != stores[0].kind:
            raise StoreError(f"{st.path}: {S.a_store(st.kind)}, {stores[0].path} is {S.a_store(stores[0].kind)}; merge shards of one kind")
    for st, p in zip(stores, provs):
        for k in fields:
            if str(p.get(k, "")) != str(first.get(k, "")):
                raise StoreError(f"{st.path}: {k} differs from {stores[0].path} ({p.get(k)!r} vs {first.get(k)!r}); shards of different jobs cannot be merged")
        if (st.n_layers, st.n_heads) != (stores[0].n_layers, stores[0].n_heads):
            raise StoreError(f"{st.path}: model has {st.n_layers}x{st.n_heads} heads, {stores[0].path} has {stores[0].n_layers}x{stores[0].n_heads}")
    sharded = ["shard_count" in p for p in provs]
    if shards_only and not all(sharded):
        lone = stores[sharded.index(False)]
        raise StoreError(f"{lone.path}: is not a shard (written without --shard); only shards of one job can be merged")
    if any(sharded) and not all(sharded):
        raise StoreError("some inputs are shards and some are not; merge the shards of one job")
    if all(sharded):
        count = int(first["shard_count"])
        by_index: dict[int, Store] = {}
        for st, p in zip(stores, provs):
            if int(p["shard_count"]) != count:
                raise StoreError(f"{st.path}: shard of {p['shard_count']}, others of {count}")
            i = int(p["shard_index"])
            if i in by_index:
                raise StoreError(f"{st.path}: shard {i}/{count} given twice (also {by_index[i].path}); shards overlap")
            by_index[i] = st
        missing = [i for i in range(count) if i not in by_index]
        if missing:
            raise StoreError(f"shard(s) {', '.join(f'{i}/{count}' for i in missing)} missing; give all {count} shards")
        ordered = [by_index[i] for i in range(count)]
        for a, b in zip(ordered, ordered[1:]):
            if int(a.provenance()["shard_end"]) != int(b.provenance()["shard_start"]):
                raise StoreError(f"{b.path}: starts at example {b.provenance()['shard_start']}, the previous shard ends at {a.provenance()['shard_end']}")
        p0, pz = ordered[0].provenance(), ordered[-1].provenance()
        if int(p0.get("shard_start", 0)) != 0 or ("n_total" in pz and int(pz["shard_end"]) != int(pz["n_total"])):
            raise StoreError(f"the shards cover examples {p0.get('shard_start')}..{pz.get('shard_end')} of {pz.get('n_total')}; give all shards of the job")
        return ordered
    seen: dict[str, Path] = {}
    for st in stores:
        for i in st.example_ids():
            if i in seen:
                raise StoreError(f"{st.path}: example {i!r} is also in {seen[i]}; stores overlap")
            seen[i] = st.path
    return stores


TEXT_FIELDS = ("command", "config", "environment")


def merged_provenance(ordered: list[Store], out: Path, command: str | None = None, **extra: Any) -> tuple[dict[str, Any], dict[str, str]]:
    """Provenance of a merged store: the first shard's, without its shard fields, plus where it came from."""
    prov = {k: v for k, v in ordered[0].provenance().items() if not k.startswith("shard_") and k not in TEXT_FIELDS}
    prov["merged_from"] = [os.path.relpath(s.path.resolve(), out.resolve().parent) for s in ordered]
    prov.update(extra)
    texts = {k: ordered[0].provenance().get(k, "") for k in ("config", "environment")}
    texts["command"] = "\n".join(s.provenance().get("command", "") for s in ordered) if command is None else command
    return prov, texts


def open_shards(paths: list[str | Path], out: str | Path, kind: str | tuple[str, ...], *, force: bool = False, locking: bool | None = None) -> tuple[Path, list[Store]]:
    """Check the output path, open every shard read-only; the caller closes them."""
    if len(paths) < 1:
        raise InputError("give the shard stores to merge")
    out = check_output_path(out, force=force)
    if any(Path(p).resolve() == out.resolve() for p in paths):
        raise InputError(f"{out}: is also an input; write the merged store elsewhere")
    stores: list[Store] = []
    try:
        for p in paths:
            stores.append(open_store(p, kind=kind, locking=locking))
    except BaseException:
        for s in stores:
            s.close()
        raise
    # a format-1 store's flow maps are raw values, a format-2 store's row-normalised: they must not be copied together
    raw = [s for s in stores if s.version.split(".")[0] in S.RAW_FLOW_VERSIONS and S.quantity("flow").maps in s.h5]
    if raw:
        names = ", ".join(s.name for s in raw)
        for s in stores:
            s.close()
        raise InputError(f"{names}: format-1 store(s) with raw flow maps; re-extract them with this version before merging "
                         "(format 2 stores flow row-normalised)")
    return out, stores


def _concat_stats(ordered: list[Store], name: str, out: Any, block_rows: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """Append every shard's per-example statistics ``name`` to ``out``, block by block; their (sums, counts)
    over examples, NaN (no such token) left out, for the per-head means."""
    tail = ordered[0].h5[name].shape[1:]
    sums, counts = np.zeros(tail), np.zeros(tail)
    for s in ordered:
        st = s.h5[name]
        for s0 in range(0, st.shape[0], block_rows):
            block = st[s0 : s0 + block_rows]
            out.append(block)
            ok = ~np.isnan(block)
            sums += np.where(ok, block, 0).sum(0)
            counts += ok.sum(0)
    return sums, counts


def _merge_maps(f: Any, w: StoreWriter, ordered: list[Store], spec: S.Quantity, out: Path, copy: bool) -> None:
    """The maps of one quantity: the shards' arrays one after the other, copied or referenced (virtual dataset)."""
    import h5py

    sizes = [s.h5[spec.maps].shape[0] for s in ordered]
    dtype = ordered[0].h5[spec.maps].dtype
    if copy:
        maps = w.appender(spec.maps, dtype, chunk_rows=S.CHUNK_VALUES, fletcher32=True)
        for s in ordered:
            src = s.h5[spec.maps]
            for s0 in range(0, src.shape[0], S.CHUNK_VALUES * 16):
                maps.append(src[s0 : s0 + S.CHUNK_VALUES * 16])
        maps.flush()
    else:
        layout = h5py.VirtualLayout(shape=(int(sum(sizes)),), dtype=dtype)
        off = 0
        for s, n in zip(ordered, sizes):
            rel = os.path.relpath(s.path.resolve(), out.resolve().parent)
            layout[off : off + n] = h5py.VirtualSource(rel, spec.maps, shape=(n,))
            off += n
        f.create_virtual_dataset(spec.maps, layout, fillvalue=np.nan)


def merge_attention_stores(paths: list[str | Path], out: str | Path, *, copy: bool = False, force: bool = False, locking: bool | None = None, command: dict[str, str] | None = None) -> MergeReport:
    out, stores = open_shards(paths, out, "attention", force=force, locking=locking)
    try:
        ordered = order_shards(stores)
        L, H = ordered[0].n_layers, ordered[0].n_heads
        enc = ordered[0].attrs("attention").get("encoding", "float16")
        if any(s.attrs("attention").get("encoding", "float16") != enc for s in ordered):
            raise StoreError("shards use different --encoding")
        K = len(S.STAT_NAMES)
        mode = ordered[0].maps_mode
        for s in ordered[1:]:
            if s.maps_mode != mode:
                raise StoreError(f"{s.path}: extracted with --maps {s.maps_mode}, {ordered[0].path} with --maps {mode}; merge shards of one mode")
        with StoreWriter(out, "attention", force=force, locking=locking) as w:
            w.set_model(n_layers=L, n_heads=H, **{k: v for k, v in ordered[0].model_attrs().items() if k not in ("n_layers", "n_heads")})
            w.set_provenance(*merged_provenance(ordered, out, None if command is None else command.get("command", "")))
            f = w.h5
            # example index and tokens: copied, offsets rebased
            for name in ("id", "text_a", "text_b"):
                w.put_strings(f"examples/{name}", [x for s in ordered for x in s.strings(f"examples/{name}")])
            w.put_array("examples/label", np.concatenate([s.array("examples/label") for s in ordered]))
            length = np.concatenate([s.lengths() for s in ordered]).astype(np.int32)
            w.put_array("examples/length", length)
            per_ex = L * H * length.astype(np.int64) ** 2
            if mode == S.MAPS_FULL:
                w.put_array("examples/attention_offset", np.concatenate([[0], np.cumsum(per_ex)[:-1]]).astype(np.int64))
            else:
                w.put_array("examples/attention_offset", np.zeros(len(length), np.int64))
            if mode != S.MAPS_FULL:  # the classifier's features of every map
                feats = w.appender(S.MAP_FEATURES, np.float32, ordered[0].h5[S.MAP_FEATURES].shape[1:])
                _concat_stats(ordered, S.MAP_FEATURES, feats)
                feats.flush()
                feats.ds.attrs["names"] = ordered[0].h5[S.MAP_FEATURES].attrs["names"]
            if mode.startswith("topk:"):  # the sparse maps are copied (they are small), their offsets rebuilt
                t = length.astype(np.int64)
                sizes = L * H * t * np.minimum(t, ordered[0].topk)
                w.put_array(S.TOPK_OFFSET, np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64))
                for name in (S.TOPK_INDEX, S.TOPK_VALUE, S.TOPK_REST):
                    a = w.appender(name, ordered[0].h5[name].dtype, chunk_rows=S.CHUNK_VALUES, fletcher32=True)
                    for s in ordered:
                        src = s.h5[name]
                        for s0 in range(0, src.shape[0], S.CHUNK_VALUES * 16):
                            a.append(src[s0 : s0 + S.CHUNK_VALUES * 16])
                    a.flush()
            w.put_array("examples/token_offset", np.concatenate([[0], np.cumsum(length)[:-1]]).astype(np.int64))
            for name, dt, tail in (("ids", np.int32, ()), ("type_ids", np.int8, ()), ("special", np.int8, ()), ("offsets", np.int32, (2,))):
                a = w.appender(f"tokens/{name}", dt, tail)
                for s in ordered:
                    a.append(s.array(f"tokens/{name}"))
            w.put_strings("tokens/text", [x for s in ordered for x in s.strings("tokens/text")])
            sums, counts = _concat_stats(ordered, S.STATS_PER_EXAMPLE, w.appender(S.STATS_PER_EXAMPLE, np.float32, (L, H, K)))
            f[S.G_STATS].attrs["names"] = json.dumps(list(S.STAT_NAMES))
            quantities = ordered[0].quantities()
            for s in ordered[1:]:
                if s.quantities() != quantities:
                    raise StoreError(f"{s.path}: holds {', '.join(s.quantities())}, {ordered[0].path} holds {', '.join(quantities)}")
            for q in quantities:
                spec = S.quantity(q)
                _merge_maps(f, w, ordered, spec, out, copy or (q == S.Q_WEIGHTS and mode != S.MAPS_FULL))  # nothing to reference
                g = f[spec.group]
                for k, v in ordered[0].attrs(spec.group).items():
                    g.attrs[k] = v
                g.attrs["virtual"] = 0 if copy else 1
                if q == S.Q_WEIGHTS:
                    continue
                Hq = H if spec.per_head else 1
                w.put_array(spec.offset, np.concatenate([[0], np.cumsum(L * Hq * length.astype(np.int64) ** 2)[:-1]]).astype(np.int64))
                qstats = w.appender(spec.per_example, np.float32, (L, Hq, K))
                qsums, qcounts = _concat_stats(ordered, spec.per_example, qstats)
                qstats.flush()
                f[spec.per_example].attrs["names"] = json.dumps(list(S.STAT_NAMES))
                with np.errstate(invalid="ignore", divide="ignore"):
                    qmeans = qsums / qcounts
                for k, name in enumerate(S.STAT_NAMES):
                    w.put_head_quantity(spec.head_name(f"stat_{name}"), qmeans[..., k],
                                        f"{S.STAT_DESCRIPTIONS[name]} (mean over examples; {q}, rows normalised to sum 1)")
            with np.errstate(invalid="ignore", divide="ignore"):
                means = sums / counts
            for k, name in enumerate(S.STAT_NAMES):
                w.put_head_quantity(f"stat_{name}", means[..., k], S.STAT_DESCRIPTIONS[name] + " (mean over examples)")
        shard_bytes = sum(s.path.stat().st_size for s in ordered)
        return MergeReport(out, int(len(length)), len(ordered), not copy, shard_bytes, out.stat().st_size, [str(s.path) for s in ordered])
    finally:
        for s in stores:
            s.close()
