"""``cluster``: heads clustered by how alike their attention is (Clark et al. 2019, Figure 6).

One streaming pass over an attention store (word pieces, as Clark et al.'s released pipeline) or a words
store (word level): every example's maps add to a [K, K] sum of per-row Jensen-Shannon distances (analysis/clustering.py),
so memory is flat in the number of examples. The mean distances, a 2-D classical-MDS embedding and each
head's nearest heads go to a ``clusters`` store; its /heads/cluster_* arrays are read by plot, show and diff.
Shards (``--shard``) keep the sum and row count, which ``merge`` adds exactly.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bertsecrets_cli.errors import InputError, OutputError
from bertsecrets_cli.heads import head_name, layer_name
from bertsecrets_cli.render.console import info
from bertsecrets_cli.render.tables import Table

KIND = "clusters"
DISTANCE = "clusters/distance"
EMBEDDING = "clusters/embedding"
STATE_SUM = "clusters/state/sum"
LEVELS = {"attention": "word pieces", "words": "words"}


@dataclass
class ClusterOptions:
    measure: str | None = None  # None: js-distance (ours) or js-smoothed (authors)
    definition: str = "ours"  # "authors": Clark's setting (word pieces, js-smoothed summed, metric MDS)
    top: int = 3  # nearest heads listed per head
    patterns: str | None = None  # a patterns store (classify run): colour by majority pattern type
    figure: str | None = None  # .png, .svg or .pdf
    width: int = 80
    force: bool = False
    locking: bool | None = None
    quiet: bool = False
    shard: str | None = None


@dataclass
class ClusterResult:
    path: Path
    n_examples: int
    n_rows: int
    n_layers: int
    n_heads: int
    level: str
    distance: np.ndarray  # [K, K]
    embedding: np.ndarray  # [K, 2]
    explained: np.ndarray  # [2] (classical MDS; NaN for metric MDS)
    pattern: np.ndarray | None = None  # [L, H] majority pattern index
    stress: float = float("nan")  # metric MDS (authors' definition)
    definition: str = "ours"
    measure_name: str = ""
    model_data: str = ""  # "MODEL on DATA, " for captions
    causal: bool = False  # a decoder's maps: each example's first query row was left out (analysis/clustering.py)
    tables: list[Table] = field(default_factory=list)
    lines: list[Any] = field(default_factory=list)  # the terminal scatter
    figure: Path | None = None
    timings: dict[str, float] = field(default_factory=dict)


def _check(opts: ClusterOptions) -> None:
    from bertsecrets_cli.analysis.clustering import MEASURES
    from bertsecrets_cli.analysis.definitions import DEFINITIONS

    if opts.definition not in DEFINITIONS:
        raise InputError(f"--definition {opts.definition}: choose one of {', '.join(DEFINITIONS)}")
    if opts.definition == "authors" and opts.measure not in (None, "js-smoothed"):
        raise InputError(f"--measure {opts.measure}: --definition authors uses Clark's measure (js-smoothed); leave --measure out")
    if opts.measure is None:
        opts.measure = "js-smoothed" if opts.definition == "authors" else "js-distance"
    if opts.measure not in MEASURES:
        raise InputError(f"--measure {opts.measure}: choose one of {', '.join(MEASURES)}")
    if opts.top < 1:
        raise InputError(f"--top {opts.top}: must be at least 1")
    if opts.width < 20:
        raise InputError(f"--width {opts.width}: must be at least 20 terminal columns (leave it out for the terminal's width)")
    if opts.figure is not None:
        from bertsecrets_cli.render.figures import figure_format

        figure_format(opts.figure)


def _read_patterns(path: str, L: int, H: int, model_fingerprint: str, locking: bool | None, ids: list[str] | None = None, task: str = "") -> np.ndarray:
    from bertsecrets_cli.store import open_store

    with open_store(path, kind="patterns", locking=locking, what="patterns store") as ps:
        if (ps.n_layers, ps.n_heads) != (L, H):
            raise InputError(f"{path}: patterns of {ps.n_layers}x{ps.n_heads} heads, the input has {L}x{H}")
        fp = str(ps.provenance().get("model_fingerprint", ""))
        if fp and model_fingerprint and fp != model_fingerprint:
            raise InputError(f"{path}: patterns of another model (fingerprint {fp[:12]} vs {model_fingerprint[:12]}); classify the same model's store")
        their_task = str(ps.provenance().get("task", "") or "")
        if task and their_task and task != their_task:
            raise InputError(f"{path}: patterns of task {their_task}, the input is of task {task}; classify the same store")
        if ids is not None and ps.has("examples/id"):  # the majority type must be over the examples clustered
            theirs = ps.example_ids()
            if set(theirs) != set(ids):
                common = len(set(theirs) & set(ids))
                raise InputError(f"{path}: patterns of other examples ({common} of its {len(theirs)} are among the input's {len(ids)}); "
                                 "classify the same store")
        heads = ps.heads()
        if "pattern_majority" not in heads:
            raise InputError(f"{path}: holds no pattern_majority; give a store written by classify run")
        return heads["pattern_majority"].values.astype(int)


def run_cluster(store_path: str | Path, out: str | Path, opts: ClusterOptions, *, name: str | None = None, command: str | None = None) -> ClusterResult:
    """Distances between all heads of the store at ``store_path``, their embedding, nearest heads; a clusters store."""
    from bertsecrets_cli.analysis.clustering import HeadDistanceAccumulator
    from bertsecrets_cli.jobs.provenance import provenance_texts, tool_attrs
    from bertsecrets_cli.jobs.shard import fingerprint, inherited_shard, input_identity, resolve_shard, shard_provenance, shard_slice
    from bertsecrets_cli.render.progress import progress
    from bertsecrets_cli.store import StoreWriter, open_store
    from bertsecrets_cli.store.words import iter_word_maps
    from bertsecrets_cli.store.writer import check_output_path, copy_model_from

    _check(opts)
    outp = check_output_path(out, force=opts.force)
    if opts.figure is not None:  # before any work: a bad --figure found after the store is written would block the rerun
        if Path(opts.figure).resolve() == outp.resolve():
            raise OutputError(f"{opts.figure}: is also the output store (-o); give another --figure")
        check_output_path(opts.figure, force=opts.force, what="figure")
    inputs = [store_path] + ([opts.patterns] if opts.patterns else [])
    if any(outp.exists() and Path(p).exists() and outp.resolve() == Path(p).resolve() for p in inputs):
        raise OutputError(f"{out}: is an input store; input stores are never modified, give another -o")
    if opts.figure is not None and any(Path(opts.figure).resolve() == Path(p).resolve() for p in [*inputs, outp]):
        raise OutputError(f"{opts.figure}: is an input or the output store; give another --figure")
    shard = resolve_shard(opts.shard) if opts.shard else None
    t0 = time.perf_counter()
    with open_store(store_path, kind=("attention", "words"), locking=opts.locking) as st:
        L, H, N = st.n_layers, st.n_heads, st.n_examples
        prov = st.provenance()
        pattern = (_read_patterns(opts.patterns, L, H, str(prov.get("model_fingerprint", "")), opts.locking,
                                  st.example_ids() if st.has("examples/id") else None, str(prov.get("task", "") or ""))
                   if opts.patterns else None)
        if N == 0:
            raise InputError(f"{name or store_path}: holds no examples")
        if opts.definition == "authors" and st.kind != "attention":
            raise InputError(f"{name or store_path}: a words store; --definition authors clusters word-piece maps as Clark's code did: "
                             "give the attention store (extract)")
        s0, s1 = shard_slice(shard, N, "examples")
        if shard is not None:
            info(f"shard {shard} ({shard.origin}): examples {s0}..{s1 - 1} of {N}")
        acc = HeadDistanceAccumulator(L, H, opts.measure, causal=st.causal)
        maps = iter_word_maps(st, s0, s1) if st.kind == "words" else st.iter_attention(list(range(s0, s1)))
        with progress(s1 - s0, f"cluster {name or store_path}", quiet=opts.quiet) as advance:
            for _, att in maps:  # a SIGTERM here raises Interrupted (exit 75): nothing is written, rerun it
                acc.add(att)
                advance(1)
        t_pass = time.perf_counter()
        res = _results(acc, L, H, st.kind, pattern, opts.definition)
        job = fingerprint({"input": input_identity(st), "level": st.kind, "measure": opts.measure, "definition": opts.definition})
        shard_attrs = shard_provenance(shard, s0, s1, N) if shard is not None else inherited_shard(prov)
        keep = {k: prov[k] for k in ("model", "model_path", "model_revision", "model_fingerprint", "tokenizer", "task", "data_source", "split",
                                     "is_demo_data", "max_length", "attn_implementation", "word_boundaries") if k in prov}
        config = {"input": str(store_path), **{k: v for k, v in asdict(opts).items() if k not in ("force", "locking", "quiet", "width")}}
        with StoreWriter(outp, KIND, force=opts.force, locking=opts.locking) as w:
            copy_model_from(w, st)
            w.copy_examples_from(st, s0, s1) if (s0, s1) != (0, N) else w.copy_examples_from(st)
            w.set_provenance({**tool_attrs(), **keep, "source_store": str(Path(store_path).expanduser()), "level": LEVELS[st.kind],
                              "measure": opts.measure, "definition": opts.definition, "n_examples": s1 - s0, "n_rows": acc.rows, "job_fingerprint": job,
                              "patterns_store": str(opts.patterns or ""), **shard_attrs, **({"causal_first_row_excluded": 1} if st.causal else {})},
                             provenance_texts({"cluster": config}, command))
            _write(w, acc, res)
    res.path, res.n_examples, res.causal = outp, s1 - s0, acc.causal
    res.measure_name, res.model_data = opts.measure, _model_data(prov)
    res.timings = {"pass_s": t_pass - t0, "total_s": time.perf_counter() - t0}
    _present(res, opts)
    return res


def metric_mds(D: np.ndarray, dims: int = 2, seed: int = 0) -> tuple[np.ndarray, float]:
    """Metric MDS of a dissimilarity matrix by SMACOF (scikit-learn, the optional extra ``sklearn``) with the
    settings of Clark et al.'s General_Analysis.ipynb cell 18: ([K, dims] coordinates, stress). Seeded, so the
    same store gives the same picture (his call was not seeded)."""
    from sklearn.manifold import smacof

    X, stress = smacof(np.asarray(D, dtype=np.float64), metric=True, n_components=dims, n_init=5, max_iter=1000, eps=1e-10, random_state=seed)
    return X, float(stress)


def _model_data(prov: dict[str, Any]) -> str:
    """'MODEL on DATA, ' from a store's provenance, for titles; '' when it names neither."""
    model = Path(str(prov.get("model", "") or "")).name
    data = str(prov.get("task", "") or "") or Path(str(prov.get("data_source", "") or "")).name
    if int(prov.get("is_demo_data", 0) or 0):
        data += " (demo data)"
    return (f"{model or 'model?'} on {data or 'data?'}, ") if (model or data) else ""


def _results(acc: Any, L: int, H: int, level_kind: str, pattern: np.ndarray | None, definition: str = "ours") -> ClusterResult:
    from bertsecrets_cli.analysis.clustering import classical_mds

    if not acc.rows:
        raise InputError("no attention rows to compare (every example is empty)")
    D = acc.mean()
    if definition == "authors":  # General_Analysis.ipynb cell 18: metric MDS on the precomputed divergences
        try:
            X, stress = metric_mds(D, 2)
        except ImportError as e:
            raise InputError("--definition authors: metric MDS needs scikit-learn (pip install 'bertsecrets[sklearn]')") from e
        return ClusterResult(Path(), acc.examples, acc.rows, L, H, LEVELS.get(level_kind, level_kind), D, X, np.full(2, np.nan), pattern,
                             stress=stress, definition=definition)
    X, explained = classical_mds(D, 2)
    return ClusterResult(Path(), acc.examples, acc.rows, L, H, LEVELS.get(level_kind, level_kind), D, X, explained, pattern)


def _write(w: Any, acc: Any, res: ClusterResult) -> None:
    from bertsecrets_cli.analysis.clustering import nearest_heads

    L, H = res.n_layers, res.n_heads
    w.put_array(DISTANCE, res.distance, attrs={"measure": acc.measure, "level": res.level, "order": "head index = layer * n_heads + head (0-based)"})
    method = ("metric MDS (SMACOF, scikit-learn; n_init=5, max_iter=1000, eps=1e-10, random_state=0)" if res.definition == "authors"
              else "classical MDS")
    w.put_array(EMBEDDING, res.embedding, attrs={"method": method, "explained": json.dumps([float(x) for x in res.explained]),
                                                 "stress": float(res.stress)})
    w.put_array(STATE_SUM, acc.total, attrs={"rows": int(acc.rows), "examples": int(acc.examples), "measure": acc.measure})
    _, nd = nearest_heads(res.distance, 1)
    D = res.distance
    mean_other = (D.sum(1) / max(1, D.shape[0] - 1))
    what = f"{acc.measure.replace('-', ' ')} over {res.level}"
    mds = "metric" if res.definition == "authors" else "classical"
    w.put_head_quantity("cluster_x", res.embedding[:, 0].reshape(L, H), f"first coordinate of the heads' 2-D {mds} MDS embedding")
    w.put_head_quantity("cluster_y", res.embedding[:, 1].reshape(L, H), f"second coordinate of the heads' 2-D {mds} MDS embedding")
    w.put_head_quantity("cluster_nearest", nd[:, 0].reshape(L, H), f"{what} to the most similar other head")
    w.put_head_quantity("cluster_mean", mean_other.reshape(L, H), f"mean {what} to every other head (low: a typical head)")


CAUSAL_CAPTION = ("causal decoder: query row i sees only keys 0..i; each example's first row (only itself to see, the same one-hot in "
                  "every head) is left out of the rows; the early rows that remain compare distributions over very few positions")


def _present(res: ClusterResult, opts: ClusterOptions) -> None:
    from bertsecrets_cli.analysis.clustering import layer_cohesion, nearest_heads

    L, H = res.n_layers, res.n_heads
    D = res.distance
    idx, dist = nearest_heads(D, opts.top)
    names = [head_name(k // H, k % H) for k in range(L * H)]
    from bertsecrets_cli.analysis.definitions import title_note

    defn = title_note(res.definition, "cluster")
    t = Table(f"nearest heads ({res.measure_name} over {res.level}, {res.n_examples} examples, {res.n_rows} rows; {defn})",
              ["head", "x", "y", *[c for j in range(idx.shape[1]) for c in (f"#{j + 1}", f"d{j + 1}")]], name="nearest",
              caption=CAUSAL_CAPTION if res.causal else None)
    for k in range(L * H):
        t.add(names[k], float(res.embedding[k, 0]), float(res.embedding[k, 1]),
              *[v for j in range(idx.shape[1]) for v in (names[int(idx[k, j])], float(dist[k, j]))])
    within, between = layer_cohesion(D, L, H)
    c = Table(f"layer cohesion (heads of a layer behave alike when within < between; {defn})", ["layer", "within layer", "to other layers", "ratio"],
              name="cohesion")
    for ly in range(L):
        c.add(layer_name(ly), float(within[ly]), float(between[ly]), float(within[ly] / between[ly]) if between[ly] else float("nan"))
    same = float(np.mean(idx[:, 0] // H == np.arange(L * H) // H))
    s = Table(f"summary ({res.model_data}{res.n_examples} examples; {defn})", ["quantity", "value"], name="summary")
    s.add("heads whose nearest head is in the same layer", same)
    s.add("chance of that", (H - 1) / (L * H - 1) if L * H > 1 else float("nan"))
    if res.definition == "authors":
        s.add("metric MDS stress", f"{res.stress:.4g}")
    else:
        s.add("MDS variance explained (x, y)", f"{res.explained[0]:.3f}, {res.explained[1]:.3f}")
    res.tables = [s, c, t]
    from bertsecrets_cli.render.terminal_scatter import scatter_lines

    cats, legend = _categories(res)
    res.lines = scatter_lines(res.embedding, cats, legend, width=opts.width, title=f"heads by attention behaviour ({res.level})")
    if opts.figure is not None:
        from bertsecrets_cli.render.scatter_figures import head_embedding_figure

        res.figure = head_embedding_figure(res.embedding, np.arange(L * H) // H, res.pattern.reshape(-1) if res.pattern is not None else None,
                                           opts.figure, names=names,
                                           title=f"Heads by attention behaviour ({res.measure_name}, {res.level}; {res.model_data}N = {res.n_examples} examples)")


def _categories(res: ClusterResult) -> tuple[np.ndarray, list[tuple[str, str]]]:
    """Per head the symbol drawn in the terminal: its layer, or its majority pattern's letter."""
    L, H = res.n_layers, res.n_heads
    if res.pattern is not None:
        from bertsecrets_cli.analysis.patterns import CLASSES, LETTERS

        return res.pattern.reshape(-1), [(LETTERS[i], CLASSES[i]) for i in range(len(CLASSES))]
    return np.arange(L * H) // H, [(_layer_symbol(ly), layer_name(ly)) for ly in range(L)]


def _layer_symbol(layer: int) -> str:
    return "123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"[layer] if layer < 35 else "*"


def combine_clusters(paths: list[str], out: str | Path, *, top: int = 3, force: bool = False, locking: bool | None = None,
                     command: str | None = None) -> ClusterResult:
    """Join the clusters stores of ``cluster --shard i/n``: the sums and row counts add, so the result equals
    one unsharded run up to float rounding."""
    from bertsecrets_cli.analysis.clustering import HeadDistanceAccumulator
    from bertsecrets_cli.store import StoreWriter
    from bertsecrets_cli.store.merge import merged_provenance, open_shards, order_shards
    from bertsecrets_cli.store.writer import copy_model_from

    outp, stores = open_shards(paths, out, KIND, force=force, locking=locking)
    try:
        ordered = order_shards(stores, ("job_fingerprint",), shards_only=True)
        first = ordered[0]
        L, H = first.n_layers, first.n_heads
        prov = first.provenance()
        acc = HeadDistanceAccumulator(L, H, str(prov["measure"]), causal=first.causal)
        for st in ordered:
            a = st.h5[STATE_SUM].attrs
            acc.absorb(st.array(STATE_SUM), int(a["rows"]), int(a["examples"]))
        definition = str(prov.get("definition", "ours"))
        res = _results(acc, L, H, "words" if prov.get("level") == "words" else "attention", None, definition)
        n = int(sum(st.n_examples for st in ordered))
        with StoreWriter(outp, KIND, force=force, locking=locking) as w:
            copy_model_from(w, first)
            for nm in first.h5["examples"]:
                w.concat_from(f"examples/{nm}", ordered)
            w.set_provenance(*merged_provenance(ordered, outp, command, n_examples=n, n_rows=acc.rows))
            _write(w, acc, res)
    finally:
        for st in stores:
            st.close()
    res.path, res.n_examples, res.causal = outp, n, acc.causal
    res.measure_name, res.model_data = acc.measure, _model_data(prov)
    _present(res, ClusterOptions(measure=acc.measure, top=top, definition=definition))
    return res
