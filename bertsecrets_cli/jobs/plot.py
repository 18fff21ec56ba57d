"""``plot``: the figures a store can give, in the terminal or as PNG/SVG/PDF files.

What can be drawn is read from the store itself, not from its kind: every per-head quantity under
/heads gives a head grid and per-layer curves, ``pattern_share_<type>`` quantities (written by
``classify``) give stacked share bars, and attention maps give single-map figures. A new command that
writes per-head quantities is therefore plottable without touching this file.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from bertsecrets_cli.errors import InputError
from bertsecrets_cli.heads import head_name, parse_head, parse_layer
from bertsecrets_cli.jobs.show import quantity_label_of, require_quantity, store_context
from bertsecrets_cli.render.labels import titled
from bertsecrets_cli.render.tables import Table
from bertsecrets_cli.store import schema as S

FIGURES = ("grid", "layers", "shares", "map")
SHARE_PREFIX = "pattern_share_"
# what a bare ``plot STORE`` draws, by preference; otherwise the first quantity by name
DEFAULT_QUANTITIES = ("cosine", "ablation_delta", "stat_sep")
DEFAULT_CURVES = (("stat_cls", "stat_sep"), ("cosine",))


@dataclass
class PlotOptions:
    figure: str | None = None  # grid, layers, shares or map; None: chosen from the options and the store
    quantities: tuple[str, ...] = ()
    example: str | None = None  # an example id, or its 0-based index in the store
    layer: str | None = None  # 1-based: '7' or 'L7'
    head: str | None = None  # 1-based: '6', 'H6' (with --layer) or 'L7H6'
    out: str | Path | None = None  # a .png/.svg/.pdf file; None draws in the terminal
    force: bool = False
    title: str | None = None
    vmin: float | None = None
    vmax: float | None = None
    width: int = 80
    locking: bool | None = None


@dataclass
class Plottable:
    figure: str
    quantity: str
    command: str
    description: str


@dataclass
class PlotResult:
    figure: str
    what: str  # one line: what was drawn
    path: Path | None = None
    lines: list[Any] = field(default_factory=list)  # rich Text lines for the terminal


def _pattern_names() -> dict[str, tuple[str, str]]:
    """classify's pattern types in the paper's order: slug -> (display name, letter); empty if the module is absent."""
    try:
        from bertsecrets_cli.analysis.patterns import CLASSES, LETTERS, SLUGS
    except ImportError:
        return {}
    return {s: (c, letter) for s, c, letter in zip(SLUGS, CLASSES, LETTERS)}


def share_types(heads: dict[str, Any]) -> list[str]:
    """The <type> of every pattern_share_<type> quantity: classify's types in the paper's order, then the rest by name."""
    found = [n.removeprefix(SHARE_PREFIX) for n in sorted(heads) if n.startswith(SHARE_PREFIX)]
    known = list(_pattern_names())
    return [t for t in known if t in found] + [t for t in found if t not in known]


def plottables(st: Any, name: str) -> list[Plottable]:
    """Everything ``plot`` can draw from this store, with the command that draws it."""
    heads = st.heads()
    out: list[Plottable] = []
    types = share_types(heads)
    if types:
        out.append(Plottable("shares", ",".join(types), f"plot {name} --figure shares", "stacked pattern shares per layer (mean over heads)"))
    for q, hq in sorted(heads.items()):
        out.append(Plottable("grid, layers", q, f"plot {name} --quantity {q}", hq.description))
    if st.has(S.ATTENTION_MAPS):
        from bertsecrets_cli.jobs.quantities import qualified

        out.append(Plottable("map", "attention", f"plot {name} --example 0 --head L1H1",
                             f"one head's attention map with its tokens; {st.n_examples} examples, by id or index from 0"))
        selected = st.quantity
        for kind in st.quantities():
            if kind == S.Q_WEIGHTS:
                continue
            st.select_quantity(kind)
            for q, hq in sorted(st.heads().items()):
                out.append(Plottable("grid, layers", qualified(kind, q), f"plot {name} --quantity {qualified(kind, q)}", hq.description))
            out.append(Plottable("map", kind, f"plot {name} --quantity {kind} --example 0 --head L1H1", S.quantity(kind).description))
        st.select_quantity(selected)
    return out


def list_store_figures(path: str, name: str, *, locking: bool | None = None) -> Table:
    """``plot --list``: what the store at ``path`` (shown as ``name``) can draw, and the options for each."""
    from bertsecrets_cli.store import open_store

    with open_store(path, locking=locking) as st:
        return list_table(st, name)


def list_table(st: Any, name: str) -> Table:
    t = Table(f"what can be plotted from {name}", ["figure", "quantity", "description"], name="figures",
              caption=f"grid: bertsecrets plot {name} --quantity Q [-o F.png]; layers: --figure layers --quantity Q1,Q2; "
                      "map: --example N --head L7H6")
    for p in plottables(st, name):
        t.add(p.figure, p.quantity, p.description)
    return t


def _default_quantity(heads: dict[str, Any], name: str) -> str:
    for q in DEFAULT_QUANTITIES:
        if q in heads:
            return q
    if not heads:
        raise InputError(f"{name}: holds no per-head quantity to plot (bertsecrets plot {name} --list shows what it holds)")
    return min(heads)


def resolve_head(layer: str | None, head: str | None, n_layers: int, n_heads: int) -> tuple[int, int]:
    """--head L7H6, or --layer 7 --head 6 (or H6) -> 0-based (6, 5); a conflicting pair is an error."""
    if head is None:
        raise InputError("an attention map needs a head: --head L7H6, or --layer 7 --head 6 (1-based)")
    h = head.strip()
    if h[:1] in "Ll":
        li, hi = parse_head(h, n_layers, n_heads)
        if layer is not None and parse_layer(layer, n_layers) != li:
            raise InputError(f"--layer {layer} and --head {head} name different layers")
        return li, hi
    if layer is None:
        raise InputError(f"--head {head}: give the layer too (--layer 7 --head 6) or name the head as L7H6")
    digits = h[1:] if h[:1] in "Hh" else h
    return parse_head(f"L{parse_layer(layer, n_layers) + 1}H{digits}", n_layers, n_heads)


def resolve_example(st: Any, example: str, name: str) -> int:
    """An example id, else a 0-based index into the store."""
    ids = st.example_ids() if st.has(f"{S.G_EXAMPLES}/id") else []
    if example in ids:
        return ids.index(example)
    if example.lstrip("-").isdigit():
        i = int(example)
        if not 0 <= i < st.n_examples:
            raise InputError(f"--example {example}: {name} holds {st.n_examples} examples, numbered from 0")
        return i
    raise InputError(f"--example {example!r}: no example with this id in {name}, and not an index")


def choose_figure(opts: PlotOptions, heads: dict[str, Any], st: Any) -> str:
    if opts.figure is not None:
        if opts.figure not in FIGURES:
            raise InputError(f"--figure {opts.figure}: choose one of {', '.join(FIGURES)}")
        return opts.figure
    if opts.example is not None or (opts.head is not None):
        return "map"
    if opts.layer is not None:
        raise InputError("--layer selects the layer of an attention map: add --example N and --head H (or --head L7H6)")
    if not opts.quantities and share_types(heads) and st.kind == "patterns":
        return "shares"
    return "grid"


def _class_names(st: Any, quantity: str) -> list[str]:
    """Class names of a categorical per-head quantity (its ``class_names`` attribute, a JSON list), else []."""
    import json

    kind = st.quantity if st.has(S.ATTENTION_MAPS) else S.Q_WEIGHTS
    raw = st.attrs(f"{S.G_HEADS}/{S.quantity(kind).head_name(quantity)}").get("class_names")
    if not isinstance(raw, str):
        return []
    try:
        names = json.loads(raw)
    except ValueError:
        return []
    return [str(n) for n in names] if isinstance(names, list) else []


def _model_name(st: Any) -> str:
    v = st.attrs(S.G_MODEL).get("name", "")
    return v if isinstance(v, str) else ""


def run_plot(store: str | Path, opts: PlotOptions, *, name: str | None = None) -> PlotResult:
    """Draw one figure of ``store``: in the terminal (``PlotResult.lines``) or to ``opts.out``."""
    from bertsecrets_cli.analysis.similarity import layer_means
    from bertsecrets_cli.render import terminal_grid as tg
    from bertsecrets_cli.store import open_store
    from bertsecrets_cli.store.writer import check_output_path

    name = name or str(store)
    for flag, v in (("--vmin", opts.vmin), ("--vmax", opts.vmax)):
        if v is not None and not math.isfinite(v):
            raise InputError(f"{flag} {v}: must be a finite number (leave it out for the data's own range)")
    if opts.vmin is not None and opts.vmax is not None and not opts.vmin < opts.vmax:
        raise InputError(f"--vmin {opts.vmin} --vmax {opts.vmax}: the lower end must be below the upper end")
    if opts.out is not None:
        from bertsecrets_cli.render.figures import figure_format

        if str(opts.out) == "-":
            raise InputError("-o -: figures are files; give a name ending .png, .svg or .pdf")
        figure_format(opts.out)
        check_output_path(opts.out, force=opts.force, what="figure")
    if opts.width < 40:
        raise InputError(f"--width {opts.width}: at least 40 columns")
    from bertsecrets_cli.jobs.quantities import split_kind

    kind, names = split_kind(opts.quantities)
    opts = replace(opts, quantities=names)
    with open_store(store, locking=opts.locking, quantity=kind) as st:
        heads = st.heads()
        fig = choose_figure(opts, heads, st)
        model = _model_name(st)
        # which maps the figure shows: said in its title unless they are the weights (titles of before quantities existed)
        shown_kind = st.quantity if st.has(S.ATTENTION_MAPS) else st.result_quantity()
        on = "" if shown_kind == S.Q_WEIGHTS else f" [{shown_kind}]"
        name = f"{name}{on}"
        _, data, n, counts = store_context(st)
        if fig == "map":
            return _plot_map(st, opts, name, model)
        if fig == "shares":
            types = [q.removeprefix(SHARE_PREFIX) for q in opts.quantities] or share_types(heads)
            if not types:
                raise InputError(f"{name}: holds no {SHARE_PREFIX}<type> quantities (written by classify); --figure shares needs them")
            qs = [t if t in heads else SHARE_PREFIX + t for t in types]
            for q in qs:
                require_quantity(heads, q, name)
            shares = np.stack([layer_means(heads[q].values) for q in qs], axis=1)  # [layers, types]
            shares = np.vstack([shares, np.nanmean(shares, axis=0, keepdims=True)])  # and all heads together
            labels = [f"L{i + 1}" for i in range(shares.shape[0] - 1)] + ["all"]
            known = _pattern_names()
            shown = [known[t][0] if t in known else t for t in types]
            title = opts.title or titled("attention pattern shares per layer (share of the layer's maps, 0-1)", model, data, n, counts=counts)
            desc = f"share of the layer's maps (examples x heads) classified as each type, 0-1; 'all' = every head; {name}"
            if opts.out is not None:
                from bertsecrets_cli.render.figures import share_bars_figure

                return PlotResult(fig, title, share_bars_figure(labels, shown, shares, opts.out, title=title,
                                                                ylabel="share of the layer's maps (examples x heads), 0-1"))
            lines = tg.share_bars(labels, shown, shares, title=title, description=desc, width=opts.width,
                                  letters=[known[t][1] for t in types] if all(t in known for t in types) else None)
            return PlotResult(fig, title, None, lines)
        if fig == "layers":
            qs = list(opts.quantities) or next(([*c] for c in DEFAULT_CURVES if all(q in heads for q in c)), [_default_quantity(heads, name)])
            for q in qs:
                require_quantity(heads, q, name)
            labs = {q: quantity_label_of(st, heads, q) for q in qs}
            series = {q: layer_means(heads[q].values) * labs[q].scale for q in qs}
            units = sorted({labs[q].unit for q in qs})
            what = f"{qs[0]}: {labs[qs[0]].words}" if len(qs) == 1 else ", ".join(qs)
            title = opts.title or titled(f"{what} per layer, mean over the layer's heads", model, data, n, counts=counts)
            desc = "; ".join(f"{q}: {labs[q].axis()}" for q in qs) + f"; {name}"
            ylabel = (labs[qs[0]].axis() if len(qs) == 1 else units[0] if len(units) == 1 and units[0] else "value (see legend)") + ", mean over heads"
            if opts.out is not None:
                from bertsecrets_cli.render.figures import layer_curves_figure

                named = {(labs[q].words if len(qs) == 1 else f"{q}: {labs[q].words}"): v for q, v in series.items()}  # a file has room for words
                return PlotResult(fig, title, layer_curves_figure(named, opts.out, title=title, ylabel=ylabel))
            return PlotResult(fig, title, None, tg.layer_curves(series, title=title, description=desc, width=opts.width))
        # grid
        if len(opts.quantities) > 1:
            raise InputError(f"--quantity {','.join(opts.quantities)}: a head grid shows one quantity (--figure layers draws several)")
        q = opts.quantities[0] if opts.quantities else _default_quantity(heads, name)
        require_quantity(heads, q, name)
        lab = quantity_label_of(st, heads, q)
        values = np.asarray(heads[q].values, dtype=float) * lab.scale
        if heads[q].n is not None:  # the quantity averages over its own subset (one relation's arcs), not the store's N
            n, counts = heads[q].n, heads[q].n_counts or counts
        title = opts.title or titled(f"{q}: {lab.words} per head", model, data, n, counts=counts)
        desc = f"{q}: {lab.axis()}" + (f"; {heads[q].description}" if heads[q].description else "") + f"; {name}"
        marks, mark_note = uncertain_cells(heads, q)
        classes = _class_names(st, q)
        if classes:
            known = dict(_pattern_names().values())  # class name -> letter
            letters = [known[c] for c in classes] if all(c in known for c in classes) else None
            if opts.out is not None:
                from bertsecrets_cli.render.figures import category_grid_figure

                return PlotResult(fig, title, category_grid_figure(values, classes, opts.out, title=title, letters=letters or [c[:1].upper() for c in classes]))
            return PlotResult(fig, title, None, tg.category_grid(values, classes, title=title, description=desc, width=opts.width, letters=letters))
        if opts.out is not None:
            from bertsecrets_cli.render.figures import head_grid_figure

            return PlotResult(fig, title, head_grid_figure(values, opts.out, title=title, label=lab.axis(), vmin=opts.vmin, vmax=opts.vmax,
                                                           hatch=marks, hatch_label=mark_note))
        return PlotResult(fig, title, None, tg.head_grid(values, title=title, description=desc, width=opts.width, vmin=opts.vmin, vmax=opts.vmax,
                                                         uncertain=marks, uncertain_note=mark_note, unit=lab.unit))


# quantities whose cells are marked where the head's 95% interval of the change includes 0
_WITH_INTERVALS = {"ablation_delta": ("ablation_ci_low", "ablation_ci_high"), "ablation_score": ("ablation_ci_low", "ablation_ci_high")}
# framenet scores, marked where the head does not beat its strongest baseline (the 0 cells of the second name)
_WITH_BASELINE = {"framenet_fe_to_target": "framenet_beats_baseline", "framenet_target_to_fe": "framenet_beats_baseline_target_to_fe"}


def uncertain_cells(heads: dict[str, Any], q: str) -> tuple[np.ndarray | None, str]:
    """Cells of ``q`` that may mean nothing, and what the mark says; (None, '') when the store cannot tell.

    Ablation: the stored 95% interval includes 0. FrameNet: the head does not beat its strongest baseline."""
    from bertsecrets_cli.analysis.ablation import covers_zero

    if q in _WITH_BASELINE and _WITH_BASELINE[q] in heads:
        beats = np.asarray(heads[_WITH_BASELINE[q]].values, dtype=float)
        return beats == 0, "does not beat its strongest baseline (same-distance p99 or best fixed offset)"
    lo_hi = _WITH_INTERVALS.get(q)
    if lo_hi is None or not all(k in heads for k in lo_hi):
        return None, ""
    lo, hi = heads[lo_hi[0]].values, heads[lo_hi[1]].values
    if not (np.isfinite(lo).any() and np.isfinite(hi).any()):
        return None, ""  # --bootstrap 0: no intervals to mark by
    return covers_zero(lo, hi), "95% paired bootstrap interval of the change includes 0 (noise?)"


def _plot_map(st: Any, opts: PlotOptions, name: str, model: str) -> PlotResult:
    from bertsecrets_cli.render import terminal_grid as tg

    if opts.example is None:
        raise InputError("an attention map needs --example (an id, or an index from 0) besides the head")
    if not st.has(S.ATTENTION_MAPS):
        raise InputError(f"{name}: {S.a_store(st.kind)} holds no attention maps; give a store written by extract")
    li, hi = resolve_head(opts.layer, opts.head, st.n_layers, st.n_heads)
    i = resolve_example(st, opts.example, name)
    st.require_maps("topk", "plot --example")
    att = st.sparse_attention(i)[li, hi]  # a top-k store: each row's top K, 0 elsewhere
    tokens = st.tokens(i).text
    ex_id = st.example_ids()[i]
    _, data, n, _ = store_context(st)
    if st.quantity == S.Q_WEIGHTS:
        what = f"attention weights of {head_name(li, hi)}"
    else:
        what = f"{head_name(li, hi)} {st.quantity}" + ("" if S.quantity(st.quantity).per_head else f" after L{li + 1}")
    title = opts.title or titled(f"{what}, example {i} ({ex_id}) of {n}", model, data)
    if opts.out is not None:
        from bertsecrets_cli.render.figures import attention_map_figure

        return PlotResult("map", title, attention_map_figure(att, tokens, opts.out, title=title))
    try:
        lines = tg.attention_map(att, tokens, title=title, width=opts.width)
    except ValueError:
        raise InputError(f"example {i} has {len(tokens)} tokens: too wide for {opts.width} columns; write a file with -o map.svg or widen with --width") from None
    return PlotResult("map", title, None, lines)
