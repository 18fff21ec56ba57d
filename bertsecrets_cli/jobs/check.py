"""``check``: verify a store end to end (schema, offsets, checksums, normalised rows), like samtools quickcheck."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bertsecrets_cli.errors import StoreError
from bertsecrets_cli.store import schema as S
from bertsecrets_cli.store.validation import REQUIRED
from bertsecrets_cli.render.tables import Table


@dataclass
class CheckReport:
    path: Path
    kind: str
    n_examples: int
    checks: list[tuple[str, str]] = field(default_factory=list)  # (what, result)

    def table(self) -> Table:
        return reports_table([self])


def reports_table(reports: list[CheckReport]) -> Table:
    """One table for all the stores checked, so tsv/json stay one table per call."""
    t = Table("check " + ", ".join(str(r.path) for r in reports), ["store", "check", "result"], name="check")
    for r in reports:
        for what, res in r.checks:
            t.add(str(r.path), what, res)
    return t


def check_store(path: str | Path, *, locking: bool | None = None) -> CheckReport:
    """Raise StoreError at the first problem; return what was verified otherwise.

    Verifies everything readers validate (store.validation) and more: every part the kind requires, the
    offsets, each value in [0, 1], and each example's rows, however the command was told to validate.
    """
    from bertsecrets_cli.store import open_store
    from bertsecrets_cli.store.failures import shown
    from bertsecrets_cli.store.validation import missing_parts

    name = shown(path)
    with open_store(path, locking=locking, validate=False) as st:
        missing = missing_parts(st.h5, st.kind)
        if missing:
            raise StoreError(f"{name}: {S.a_store(st.kind)} without {', '.join(missing)}: damaged or edited by hand")
        rep = CheckReport(Path(name), st.kind, st.n_examples)
        rep.checks.append(("schema", f"{st.kind} store, version {st.version}"))
        rep.checks.append(("required parts", f"all {len(REQUIRED.get(st.kind, ()))} of {S.a_store(st.kind)}"))
        for problem in st.verify_sources():
            raise StoreError(f"{name}: {problem}")
        n = st.n_examples
        rows = [f"examples/{k}" for k in (st.h5["examples"] if st.has("examples") else [])] + [k for k in S.PER_EXAMPLE_DATASETS if st.has(k)]
        for ds in rows:
            if st.h5[ds].shape[0] != n:
                raise StoreError(f"{name}: {ds} has {st.h5[ds].shape[0]} rows for {n} examples")
        if rows:
            rep.checks.append(("rows per example", f"{len(rows)} datasets of {n} rows"))
        prov = st.provenance()
        if "shard_count" in prov:
            rep.checks.append(("shard", f"{prov['shard_index']}/{prov['shard_count']}: items {prov['shard_start']}..{int(prov['shard_end']) - 1}"
                               + (f" of {prov['n_total']}" if "n_total" in prov else "") + " (join the shards with merge)"))
        elif "merged_from" in prov:
            src = prov["merged_from"]
            if isinstance(src, str):
                src = json.loads(src) if src.startswith("[") else [src]
            rep.checks.append(("merged", f"from {len(src)} shards: {', '.join(src[:4])}{', ...' if len(src) > 4 else ''}"))
        for q in st.quantities() or [st.result_quantity()]:
            _check_quantity(st, name, q, rep)
    return rep


def _check_quantity(st: Any, name: str, q: str, rep: Any) -> None:
    """Offsets, sizes, values (finite, not negative; rows summing to 1 for distribution kinds only) and
    per-head shapes of one quantity's maps; ``name``: what messages call the store."""
    from bertsecrets_cli.store.validation import quantity_problem

    st.select_quantity(q)
    spec = S.quantity(q)
    tag = "" if q == S.Q_WEIGHTS else f" ({q})"
    what = "attention" if q == S.Q_WEIGHTS else q
    if q == S.Q_WEIGHTS and st.maps_mode != S.MAPS_FULL:
        _check_sparse_maps(st, name, rep)
    elif st.has(spec.maps):
        lengths = st.lengths().astype(np.int64)
        if (lengths < 1).any():
            raise StoreError(f"{name}: example {int(np.argmin(lengths))} has length {int(lengths.min())}")
        L, H = st.n_layers, st.n_heads
        off = st.array(spec.offset)
        expect = np.concatenate([[0], np.cumsum(L * H * lengths**2)[:-1]]) if len(lengths) else off
        if not np.array_equal(off, expect):
            raise StoreError(f"{name}: {what} offsets are inconsistent with the example lengths")
        total = int((L * H * lengths**2).sum())
        if st.h5[spec.maps].shape[0] != total:
            raise StoreError(f"{name}: {what} array holds {st.h5[spec.maps].shape[0]} values, the index says {total}")
        rep.checks.append((f"offsets{tag}", f"{len(lengths)} examples, {total} values"))
        worst = 0.0
        enc = st.encoding
        for i, att in st.iter_attention():  # a failed checksum is a StoreError naming the store (Store._read)
            # weights: none negative and rows summing to 1, so none above 1 either; norms, flow: finite, not negative
            problem = quantity_problem(att, enc, q)
            if problem is not None:
                raise StoreError(f"{name}: example {i} has {problem if q == S.Q_WEIGHTS else f'{q}: {problem}'}")
            if spec.distribution and att.size:
                rows = att.sum(-1)
                # norms_normalised: a head whose value vectors are all zero keeps all-zero rows
                err = np.abs(rows - 1) if q != "norms_normalised" else np.minimum(np.abs(rows - 1), np.abs(rows))
                worst = max(worst, float(err.max()))
        rep.checks.append((f"checksums + values + rows{tag}",
                           f"all values in [0, 1], all rows sum to 1 (max error {worst:.1e})" if spec.distribution
                           else "checksums read; all values finite and not negative"))
    for qname, hq in st.heads().items():
        if hq.values.shape != (st.n_layers, st.n_heads):
            raise StoreError(f"{name}: per-head quantity {qname}{tag} has shape {hq.values.shape}, expected {(st.n_layers, st.n_heads)}")
    rep.checks.append((f"per-head quantities{tag}", f"{len(st.heads())} of shape {st.n_layers}x{st.n_heads}"))


def _check_sparse_maps(st: Any, name: str, rep: Any) -> None:
    """A store extracted with --maps topk:K or none: no map values; top-k offsets, sizes, positions and weights."""
    L, H = st.n_layers, st.n_heads
    lengths = st.lengths().astype(np.int64)
    if st.h5[S.ATTENTION_MAPS].shape[0] != 0 or np.any(st.array("examples/attention_offset") != 0):
        raise StoreError(f"{name}: extracted with --maps {st.maps_mode} but holds full map values")
    if st.maps_mode == S.MAPS_NONE:
        rep.checks.append(("maps", "none kept (extract --maps none): statistics only"))
        return
    k = np.minimum(lengths, st.topk)
    per_ex = L * H * lengths * k
    expect = np.concatenate([[0], np.cumsum(per_ex)[:-1]]) if len(lengths) else np.zeros(0, np.int64)
    if not np.array_equal(st.array(S.TOPK_OFFSET), expect):
        raise StoreError(f"{name}: top-k offsets are inconsistent with the example lengths")
    for ds, n in ((S.TOPK_INDEX, int(per_ex.sum())), (S.TOPK_VALUE, int(per_ex.sum())), (S.TOPK_REST, int(L * H * lengths.sum()))):
        if st.h5[ds].shape[0] != n:
            raise StoreError(f"{name}: {ds} holds {st.h5[ds].shape[0]} values, the index says {n}")
    worst = 0.0
    for i in range(len(lengths)):
        _, values, rest = st.topk_attention(i)  # positions in range, weights finite and not negative, checksums read
        if values.size and (np.any(np.diff(values, axis=-1) > 0) or values.max() > 1 + 1e-3):
            raise StoreError(f"{name}: example {i} has top-k weights out of order or above 1")
        worst = max(worst, float(np.abs(values.sum(-1) + rest - 1).max()) if values.size else 0.0)
    rep.checks.append(("maps", f"top {st.topk} per row (extract --maps {st.maps_mode}): {len(lengths)} examples, "
                               f"rows' top-k plus remaining mass sum to 1 (max error {worst:.1e})"))
