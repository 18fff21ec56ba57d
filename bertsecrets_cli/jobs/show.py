"""``show``: read a store back without recomputing: what it is, and head rankings of any per-head quantity.

A store written by ablate, diff, classify or extract answers "which heads matter" from its /heads
quantities in well under a second: nothing but small arrays and attributes is read.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bertsecrets_cli.errors import InputError
from bertsecrets_cli.heads import head_name, parse_layer
from bertsecrets_cli.render.tables import Table
from bertsecrets_cli.store import schema as S

# provenance attributes too long or too internal for the overview
_SKIP_PROVENANCE = {"config", "environment", "tool"}
_MAX_VALUE = 100


@dataclass
class ShowOptions:
    quantities: tuple[str, ...] = ()
    top: int = 10  # 0: all heads
    bottom: bool = False  # lowest first
    by_abs: bool = False  # largest magnitude first
    layer: str | None = None  # 1-based, '3' or 'L3'
    locking: bool | None = None
    rank: bool = False  # a ranking option was given (--top, --bottom, --abs, --layer): rank even without --quantity


# what ``show STORE --top 10`` ranks when no --quantity is named: the quantity a store of that kind is made for
DEFAULT_RANKING = {"ablation": "ablation_delta", "diff": "cosine", "framenet": "framenet_fe_to_target"}


def _short(v: Any) -> str:
    s = str(v).replace("\n", " ")
    return s if len(s) <= _MAX_VALUE else s[: _MAX_VALUE - 3] + "..."


def _contents(st: Any) -> str:
    held = []
    if st.has(S.ATTENTION_MAPS):
        held.append("attention maps (" + ", ".join(st.quantities()) + ")")
    if st.has(S.STATS_PER_EXAMPLE):
        held.append("per-example statistics")
    n = len(st.heads())
    held.append(f"{n} per-head quantit{'y' if n == 1 else 'ies'}")
    return ", ".join(held)


def overview_tables(st: Any, name: str) -> list[Table]:
    """What the store is (kind, model, examples, provenance) and the per-head quantities it holds."""
    root = st.attrs("/")
    model = st.attrs(S.G_MODEL)
    t = Table(f"store {name}", ["field", "value"], name="store")
    t.add("kind", st.kind)
    t.add("schema version", st.version)
    t.add("written by", f"bertsecrets {root.get(S.A_TOOL_VERSION, '?')}, {root.get(S.A_CREATED, '?')}")
    t.add("model", _short(model.get("name", "") if isinstance(model.get("name", ""), str) else ""))
    t.add("layers x heads", f"{st.n_layers} x {st.n_heads}")
    t.add("examples", st.n_examples)
    t.add("contents", _contents(st))
    kind = st.quantity if st.has(S.ATTENTION_MAPS) else st.result_quantity()
    t.add("quantity shown", kind)
    shown = {"model": model.get("name", "")}
    for k, v in sorted(st.provenance().items()):
        if k in _SKIP_PROVENANCE or k in ("tool_version",) or v in ("", None) or shown.get(k) == v:
            continue
        t.add(k, _short(v))
    from bertsecrets_cli.jobs.quantities import qualified

    on = "" if kind == S.Q_WEIGHTS else f" ({kind})"
    others = [k for k in (st.quantities() if st.has(S.ATTENTION_MAPS) else []) if k != kind]
    q = Table(f"per-head quantities{on}", ["quantity", "min", "mean", "max", "max at", "description"], name="quantities",
              caption=f"rank heads with: bertsecrets show {name} --quantity {qualified(st.quantity, 'NAME')} --top 10"
                      + (f"; other kinds: --quantity {' or '.join(others)}" if others else ""))
    for qname, hq in sorted(st.heads().items()):
        v = np.asarray(hq.values, float)
        ok = np.isfinite(v)
        if ok.any():
            li, h = np.unravel_index(int(np.argmax(np.where(ok, v, -np.inf))), v.shape)
            q.add(qname, float(v[ok].min()), float(v[ok].mean()), float(v[ok].max()), head_name(int(li), int(h)), _short(hq.description))
        else:
            q.add(qname, math.nan, math.nan, math.nan, "", _short(hq.description))
    return [t, q]


def store_context(st: Any) -> tuple[str, str, int | None, str]:
    """(model, data, N, what N counts) of a store, from its provenance: what every title names."""
    prov = st.provenance()
    model = st.attrs(S.G_MODEL).get("name", "") or prov.get("model", "")
    data = str(prov.get("data_source", "") or "")
    task, split = str(prov.get("task", "") or ""), str(prov.get("split", "") or "")
    head = " ".join(x for x in (task, split) if x)
    if head and head not in data:
        data = f"{head}, {data}" if data else head
    if "n_links" in prov:
        return str(model), data, int(prov["n_links"]), f"links in {int(prov.get('n_sentences', st.n_examples))} sentences"
    if "n_arcs" in prov:
        return str(model), data, int(prov["n_arcs"]), f"arcs in {int(prov.get('n_sentences', st.n_examples))} sentences"
    return str(model), data, int(st.n_examples), "examples"


def quantity_label_of(st: Any, heads: dict[str, Any], q: str) -> Any:
    """The :class:`render.labels.QuantityLabel` of a stored quantity (its metric attribute fills '{metric}')."""
    from bertsecrets_cli.render.labels import quantity_label

    # another kind's per-head quantities live under heads/<kind>/ (Store.heads)
    kind = st.quantity if st.has(S.ATTENTION_MAPS) else S.Q_WEIGHTS
    path = f"{S.G_HEADS}/{S.quantity(kind).head_name(q)}"
    attrs = st.attrs(path) if st.has(path) else {}
    metric = attrs.get("metric", "")
    label = quantity_label(q, metric=metric if isinstance(metric, str) else "", description=heads[q].description if q in heads else "")
    if q.split("/")[-1] == "stat_cls" and bool(getattr(st, "causal", False)):  # a decoder: the first position is the sink
        from dataclasses import replace

        label = replace(label, words="first-token mass (the sink)")
    return label


def require_quantity(heads: dict[str, Any], q: str, name: str) -> None:
    """InputError for an unknown quantity, suggesting close names (or listing them all)."""
    if q in heads:
        return
    import difflib

    close = difflib.get_close_matches(q, list(heads), n=3, cutoff=0.4)
    hint = f"; did you mean {', '.join(close)}?" if close else (f"; it holds {', '.join(sorted(heads))}" if heads else "; it holds none")
    raise InputError(f"{name}: no per-head quantity {q!r}{hint}")


def ranking_table(values: np.ndarray, quantity: str, description: str, opts: ShowOptions, n_layers: int,
                  label: Any = None, context: str = "") -> Table:
    """Heads of one quantity (``norms/stat_sep`` for another kind than weights), ranked; --layer keeps one layer.
    ``label`` (a QuantityLabel) and ``context`` (model, data, N) name what the values are in the title; values
    stay as stored, in the unit the title says."""
    from bertsecrets_cli.analysis.similarity import rank_heads

    layer = parse_layer(opts.layer, n_layers) if opts.layer is not None else None
    ranked = rank_heads(np.asarray(values, float), top=opts.top, ascending=opts.bottom, by_abs=opts.by_abs, layer=layer)
    where = f" in L{layer + 1}" if layer is not None else ""
    count = "all" if opts.top <= 0 else f"{'bottom' if opts.bottom else 'top'} {opts.top}"
    title = f"{quantity}, {count}{' by |value|' if opts.by_abs else ''}{where}"
    if label is not None:
        unit = label.unit if label.scale == 1.0 else f"a fraction; x{label.scale:g} = {label.unit}"  # stored, unscaled: say so
        title += f": {label.words}" + (f" ({unit})" if unit else "")
    caption = "; ".join(x for x in (context, description) if x)
    t = Table(title, ["rank", "head", "layer", quantity], caption=caption or None, name="ranking")
    for r, (li, h, v) in enumerate(ranked, 1):
        t.add(r, head_name(li, h), f"L{li + 1}", v)
    return t


def run_show(store: str | Path, opts: ShowOptions, *, name: str | None = None) -> list[Table]:
    """Overview of ``store`` when no quantity is named; else one ranking table per named quantity."""
    from bertsecrets_cli.store import open_store

    name = name or str(store)
    if opts.top < 0:
        raise InputError(f"--top {opts.top}: must be 0 (all heads) or more")
    if opts.bottom and opts.by_abs:
        raise InputError("--bottom and --abs: choose one order")
    from bertsecrets_cli.jobs.quantities import qualified, split_kind

    kind, names = split_kind(opts.quantities)
    with open_store(store, locking=opts.locking, quantity=kind) as st:
        heads = st.heads()
        if not names and opts.rank:
            default = DEFAULT_RANKING.get(st.kind)
            if default is None or default not in heads:
                raise InputError(f"--top, --bottom, --abs and --layer rank the heads by a quantity: name one with --quantity "
                                 f"({name} holds {', '.join(sorted(heads)[:8]) or 'none'}{', ...' if len(heads) > 8 else ''})")
            names = [default]
        if not names:
            return overview_tables(st, name)
        tables = []
        for q in names:
            require_quantity(heads, q, name)
            kind = st.quantity if st.has(S.ATTENTION_MAPS) else S.Q_WEIGHTS
            model, data, n, counts = store_context(st)
            from bertsecrets_cli.render.labels import context

            tables.append(ranking_table(heads[q].values, qualified(kind, q), heads[q].description, opts, st.n_layers,
                                        quantity_label_of(st, heads, q), context(model, data, n, counts=counts)))
        return tables
