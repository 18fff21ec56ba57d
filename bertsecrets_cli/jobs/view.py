"""``view``: one self-contained HTML page of a store's attention (head view, model view, per-head grids).

The page must open from disk, offline, anywhere: data and code are inline. Only the chosen examples go in,
their maps as little-endian float16 (or uint8 = round(p * 255)) packed in base64, one string per example so
the page decodes an example only when it is shown. Per-head results of a patterns, diff or ablation store
(anything under their /heads) become heat grids whose cells select that head.
"""

from __future__ import annotations

import base64
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bertsecrets_cli.errors import InputError, OutputError

# A page above this many bytes opens slowly: Chromium took 61 s and 2.1 GB for a 169 MB page (view -n 2000),
# while 50 MB (one 512-token example) still opened in 1.4 s (docs/guide/view.md, benchmarks/view_size.py).
SLOW_PAGE_BYTES = 50_000_000
from bertsecrets_cli.store import schema as S

DEFAULT_EXAMPLES = 8
ENCODINGS = ("float16", "uint8")


@dataclass
class ViewOptions:
    patterns: str | None = None
    diff: str | None = None
    ablation: str | None = None
    examples: tuple[str, ...] = ()  # ids or 0-based indices; empty: the first `limit` (or a seeded sample)
    limit: int | None = None  # None: DEFAULT_EXAMPLES
    sample: bool = False
    seed: int = 0
    quantity: str = "weights"  # which maps of the store (schema.QUANTITIES; Store.quantities lists what it holds)
    encoding: str = "float16"
    title: str | None = None
    force: bool = False
    locking: bool | None = None
    allow_mismatch: bool = False  # embed side stores of another model, task or example set, with a warning naming what differs


@dataclass
class ViewResult:
    path: Path
    size_bytes: int
    n_examples: int
    indices: list[int] = field(default_factory=list)
    head_grids: list[str] = field(default_factory=list)

    @property
    def size_text(self) -> str:
        """'3.45 MB (3,446,804 bytes)': the words the page's header uses."""
        from bertsecrets_cli.render.html import human_size

        return f"{human_size(self.size_bytes)} ({self.size_bytes:,} bytes)"


def select_examples(ids: list[str], wanted: tuple[str, ...], limit: int | None, sample: bool, seed: int, name: str) -> list[int]:
    """Indices of the examples to show: each of ``wanted`` is an id, else a 0-based index; else the first or a seeded sample."""
    n = len(ids)
    if n == 0:
        raise InputError(f"{name}: holds no examples")
    if wanted:
        by_id = {x: i for i, x in enumerate(ids)}
        out: list[int] = []
        for w in wanted:
            if w in by_id:
                i = by_id[w]
            elif w.lstrip("-").isdigit():
                i = int(w)
                if not 0 <= i < n:
                    raise InputError(f"{name}: --examples {w}: index out of range (the store holds {n} examples, numbered from 0)")
            else:
                raise InputError(f"{name}: --examples {w}: no example with this id (ids look like {ids[0]!r})" if ids else f"{name}: holds no examples")
            if i not in out:
                out.append(i)
        return out
    k = DEFAULT_EXAMPLES if limit is None else limit
    if k < 1:
        raise InputError(f"--limit {k}: must be at least 1")
    k = min(k, n)
    if sample:
        return sorted(int(i) for i in np.random.default_rng(seed).choice(n, size=k, replace=False))
    return list(range(k))


def _word_units(tok: Any, texts: tuple[str, str]) -> dict[str, Any]:
    """The page's word units: the same grouping as ``bertsecrets words`` (analysis.wordlevel), so the page's
    word-level maps (mean over a word's query pieces, sum over its key pieces) equal that command's."""
    from bertsecrets_cli.analysis.wordlevel import example_units

    u = example_units(tok.text, tok.offsets, tok.special, tok.type_ids, texts)
    return {"words": u.assign.astype(int).tolist(), "word_texts": list(u.texts), "word_special": u.special.astype(int).tolist(),
            "word_segment": u.segment.astype(int).tolist()}


def _word_store_example(st: Any, i: int) -> tuple[Any, np.ndarray, dict[str, Any]]:
    """Example ``i`` of a words store: its units as the tokens (each its own word) and its word-level maps."""
    from types import SimpleNamespace

    from bertsecrets_cli.store.words import word_maps, word_units

    u = word_units(st, i)
    tok = SimpleNamespace(text=u.text, special=np.asarray(u.special), type_ids=np.asarray(u.segment))
    W = len(u.text)
    units = {"words": list(range(W)), "word_texts": u.text, "word_special": np.asarray(u.special).astype(int).tolist(),
             "word_segment": np.asarray(u.segment).astype(int).tolist()}
    return tok, np.asarray(word_maps(st, i), dtype=np.float32), units


def pack_maps(maps: np.ndarray, encoding: str) -> str:
    """[L, H, T, T] float maps as base64 of little-endian float16, or of uint8 round(p * 255)."""
    if encoding == "uint8":
        raw = np.clip(np.rint(maps * 255.0), 0, 255).astype(np.uint8)
    else:
        raw = maps.astype("<f2")
    return base64.b64encode(np.ascontiguousarray(raw).tobytes()).decode("ascii")


def _grid(values: np.ndarray, digits: int = 6) -> list[list[float | None]]:
    """A [L, H] array as JSON-ready rows: ``digits`` significant digits, None for NaN."""
    return [[None if not math.isfinite(float(v)) else float(f"{float(v):.{digits}g}") for v in row] for row in np.asarray(values, float)]


def _text(x: Any) -> str:
    return x.decode("utf-8") if isinstance(x, bytes) else str(x)


def _names(v: Any) -> list[str]:
    """label_names as stored: a list, a JSON list, or empty."""
    if isinstance(v, str):
        try:
            v = json.loads(v) if v.startswith("[") else [x for x in v.split(",") if x]
        except ValueError:
            return []
    return [str(x) for x in v] if isinstance(v, (list, tuple)) else []


def _same_path(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or (a.exists() and b.exists() and os.path.samefile(a, b))
    except OSError:
        return False


def side_store_mismatch(kind: str, side: dict[str, Any], main: dict[str, Any]) -> list[str]:
    """What differs between a side store's provenance and the attention store's: the model (by fingerprint;
    a diff store matches either of its two models) and the task. Empty when they match or nothing is recorded."""
    problems = []
    mine = str(main.get("model_fingerprint") or "")
    theirs = [str(side.get(k) or "") for k in (("model_fingerprint_a", "model_fingerprint_b") if kind == "diff" else ("model_fingerprint",))]
    if mine and any(theirs) and mine not in theirs:
        names = [str(side.get(k) or "") for k in (("model_a", "model_b") if kind == "diff" else ("model",))]
        problems.append(f"model {' -> '.join(n for n in names if n) or 'another'}, not {main.get('model') or 'the store' + chr(39) + 's'}")
    task, their_task = str(main.get("task") or ""), str(side.get("task") or "")
    if task and their_task and task != their_task:
        problems.append(f"task {their_task}, not {task}")
    return problems


def _side_store(path: str, kind: str, chosen_ids: list[str], L: int, H: int, locking: bool | None, quantity: str | None,
                main: dict[str, Any] | None = None, allow: bool = False) -> dict[str, Any]:
    """Per-head grids of a patterns/diff/ablation store, and its per-example rows for the chosen examples when it has them."""
    from bertsecrets_cli.jobs.diff import PER_EXAMPLE_COSINE
    from bertsecrets_cli.store import open_store
    from bertsecrets_cli.store.reader import pattern_class_names
    from bertsecrets_cli.store.writer import PATTERN_LABELS

    with open_store(path, kind=kind, locking=locking, quantity=quantity) as st:
        if (st.n_layers, st.n_heads) != (L, H):
            raise InputError(f"{path}: has {st.n_layers} x {st.n_heads} heads; the attention store has {L} x {H}")
        side: dict[str, Any] = {"kind": kind, "store": Path(path).name, "grids": [], "per_example": {}}
        for name, hq in sorted(st.heads().items()):
            grid: dict[str, Any] = {"source": kind, "name": name, "description": hq.description, "values": _grid(hq.values)}
            side["grids"].append(grid)
        side_ids = st.example_ids() if st.has("examples/id") else []
        pos = {x: i for i, x in enumerate(side_ids)}
        rows = [pos.get(x) for x in chosen_ids]
        found = [r for r in rows if r is not None]
        if kind == "patterns" and st.has(PATTERN_LABELS):
            names = pattern_class_names(st)
            side["class_names"] = names
            for g in side["grids"]:
                if g["name"] == "pattern_majority":
                    g["categories"] = names
            labels = iter(st.rows(PATTERN_LABELS, found))
            side["per_example"]["pattern"] = [None if r is None else next(labels).astype(int).tolist() for r in rows]
            side["grids"].append({"source": kind, "name": "pattern of this example", "per_example": "pattern", "categories": names,
                                  "description": "the pattern type of each head's map of the example shown"})
        if kind == "diff" and st.has(PER_EXAMPLE_COSINE):
            cos = iter(st.rows(PER_EXAMPLE_COSINE, found))
            side["per_example"]["cosine"] = [None if r is None else _grid(next(cos), 4) for r in rows]
            side["grids"].append({"source": kind, "name": "cosine of this example", "per_example": "cosine",
                                  "description": "cosine similarity of each head's maps in the two stores, for the example shown"})
        side["matched"] = sum(r is not None for r in rows)
        problems = side_store_mismatch(kind, st.provenance(), main or {})
        if side_ids and not found:
            problems.append(f"none of the {len(chosen_ids)} examples shown is among its {len(side_ids)} examples")
        if problems:
            detail = "; ".join(problems)
            if not allow:
                raise InputError(f"--{kind} {path}: {detail}; its grids would describe something else than the page shows "
                                 "(pass --allow-mismatch to embed it anyway, with a warning)")
            from bertsecrets_cli.render.console import note

            note(f"warning: --{kind} {path}: {detail}; embedded anyway (--allow-mismatch)")
            side["warning"] = detail
        return side


def _warn_if_slow_to_open(size: int, n_examples: int, encoding: str) -> None:
    """Say so when a browser will take long to open the page, and what to pass instead."""
    if size <= SLOW_PAGE_BYTES:
        return
    from bertsecrets_cli.render.console import info
    from bertsecrets_cli.render.html import human_size

    fits = max(1, int(n_examples * SLOW_PAGE_BYTES / size))
    smaller = f"-n {fits} (or --examples with the ones you want)" + ("" if encoding == "uint8" else ", or --encoding uint8 (half the size)")
    info(f"warning: the page is {human_size(size)}: a browser opens it slowly and needs much memory (a 169 MB page took "
         f"Chromium 61 s and 2.1 GB); for a quick page pass {smaller}")


def run_view(store: str | Path, out: str | Path, opts: ViewOptions, *, name: str | None = None) -> ViewResult:
    """Write the HTML view of ``store`` to ``out`` (atomically) and return its size."""
    from bertsecrets_cli import __version__
    from bertsecrets_cli.render.colours import CATEGORY_HEX
    from bertsecrets_cli.render.html import render_view
    from bertsecrets_cli.store import open_store
    from bertsecrets_cli.store.writer import check_output_path

    if opts.encoding not in ENCODINGS:
        raise InputError(f"--encoding {opts.encoding}: choose one of {', '.join(ENCODINGS)}")
    out = Path(out)
    inputs = [Path(store)] + [Path(p) for p in (opts.patterns, opts.diff, opts.ablation) if p]
    for p in inputs:
        if _same_path(out, p):
            raise OutputError(f"{out}: is one of the inputs; give another output name")
    check_output_path(out, force=opts.force, what="HTML view")
    name = name or str(store)
    with open_store(store, kind=("attention", "words"), locking=opts.locking) as st:
        word_level = st.kind == "words"  # maps between words already, written by 'bertsecrets words'
        if word_level and opts.quantity != S.Q_WEIGHTS:
            raise InputError(f"{name}: --quantity {opts.quantity}: a words store holds the word-level attention (of the weights) only")
        if not word_level:
            st.select_quantity(opts.quantity)
        ids = st.example_ids()
        chosen = select_examples(ids, opts.examples, opts.limit, opts.sample, opts.seed, name)
        L, H = st.n_layers, st.n_heads
        model = st.model_attrs()
        # only the chosen rows: a store may hold millions of examples
        labels = st.rows("examples/label", chosen) if st.has("examples/label") else np.full(len(chosen), np.nan)
        text_a = [_text(x) for x in st.rows("examples/text_a", chosen)] if st.has("examples/text_a") else [""] * len(chosen)
        text_b = [_text(x) for x in st.rows("examples/text_b", chosen)] if st.has("examples/text_b") else [""] * len(chosen)
        label_names = _names(model.get("label_names"))
        examples: list[dict[str, Any]] = []
        distribution = True  # every row of every shown map sums to 1: drawn as is; otherwise each map is scaled by its peak
        for pos, i in enumerate(chosen):
            if word_level:
                tok, maps, units = _word_store_example(st, i)
            else:
                # of the selected quantity; of a top-k store (extract --maps topk:K) each row's strongest links, 0 elsewhere
                tok, maps = st.tokens(i), st.sparse_attention(i)
                units = _word_units(tok, (text_a[pos], text_b[pos]))
            row_sums = maps.sum(-1)  # a store kept as uint8 is off by up to half a step (1/510) per value
            sparse = not word_level and st.maps_mode.startswith("topk:")  # rows hold their top K only: drawn as is, like full rows
            distribution = distribution and bool(sparse or (np.all(maps >= -1e-3) and np.all(np.abs(row_sums - 1) < 2e-2 + maps.shape[-1] / 510)))
            if opts.encoding == "uint8" and (maps.min() < -1e-3 or maps.max() > 1 + 1e-3):
                raise InputError(f"{name}: --encoding uint8 holds values in [0, 1] only; the {opts.quantity} maps of example {i} reach "
                                 f"{float(maps.max()):.3g}; use float16")
            lab = float(labels[pos])
            examples.append({
                "index": i, "id": ids[i], "text_a": text_a[pos], "text_b": text_b[pos],
                "label": None if not math.isfinite(lab) else (label_names[int(lab)] if label_names and lab.is_integer() and 0 <= lab < len(label_names) else lab),
                "tokens": tok.text, "special": tok.special.astype(int).tolist(), "segment": tok.type_ids.astype(int).tolist(),
                **units, "maps": pack_maps(maps, opts.encoding),
                "peak": _grid(maps.max(axis=(2, 3)), 9),  # 9 digits: the exact float32, so the page divides by what the test does
            })
        grids = [{"source": "attention", "name": n, "description": hq.description, "values": _grid(hq.values)} for n, hq in sorted(st.heads().items())]
        per_example: dict[str, Any] = {}
        per_example_stats = S.quantity(opts.quantity).per_example
        if not word_level and st.has(per_example_stats):  # the statistics of each shown example, per head
            stat_names = json.loads(st.attrs(per_example_stats).get("names") or st.attrs(S.G_STATS)["names"])
            rows = st.rows(per_example_stats, chosen)
            for k, stat in enumerate(stat_names):
                per_example[f"stat_{stat}"] = [_grid(r[..., k], 3) for r in rows]  # a few bytes per head and example
                grids.append({"source": "attention", "name": f"{stat} of this example", "per_example": f"stat_{stat}",
                              "description": S.STAT_DESCRIPTIONS.get(stat, stat) + ", for the example shown"})
        chosen_ids = [ids[i] for i in chosen]
        prov = st.provenance()
    sides = []
    for path, kind in ((opts.patterns, "patterns"), (opts.diff, "diff"), (opts.ablation, "ablation")):
        if path:
            # patterns and diff results are of one quantity, which must be the one shown; ablation disables heads, whatever is shown
            sides.append(_side_store(path, kind, chosen_ids, L, H, opts.locking, None if kind == "ablation" else opts.quantity,
                                     prov, opts.allow_mismatch))
    class_names: list[str] = []
    for s in sides:
        grids += s["grids"]
        per_example.update(s["per_example"])
        class_names = s.get("class_names", class_names)
    payload = {
        "title": opts.title or f"{Path(name).name}: attention of {model.get('name') or 'the model'}",
        "store": Path(name).name, "model": str(model.get("name", "")), "layers": L, "heads": H,
        "quantity": "word-level attention" if word_level else opts.quantity, "word_level": word_level, "encoding": opts.encoding, "distribution": distribution, "task": str(prov.get("task", "")),
        "n_store_examples": len(ids), "examples": examples, "grids": grids, "per_example": per_example,
        "class_names": class_names, "palette": list(CATEGORY_HEX), "sides": [{"kind": s["kind"], "store": s["store"], "matched": s["matched"], **({"warning": s["warning"]} if "warning" in s else {})} for s in sides],
        "tool": f"bertsecrets {__version__}",
    }
    size = render_view(payload, out)
    _warn_if_slow_to_open(size, len(examples), opts.encoding)
    return ViewResult(out, size, len(examples), chosen, [f"{g['source']}:{g['name']}" for g in grids])
