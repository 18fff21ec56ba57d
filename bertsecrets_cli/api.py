"""The public Python API: open a store, read arrays and tables, run each analysis from a notebook.

Re-exported from the package's top level (``import bertsecrets_cli as bs``); only the names in ``__all__`` are
public and kept across minor versions (docs/versioning.md). Every analysis is a function named like its
subcommand, with the subcommand's option names (dashes as underscores) and defaults, and wraps the same
``jobs/`` function the command line calls: the API adds no analysis of its own. Failures raise the package's
exceptions (``bertsecrets_cli.errors``; their ``exit_code`` is the command's exit status).

Nothing heavy is imported here at import time: torch, h5py and pandas load when a function needs them.
"""

from __future__ import annotations

import dataclasses
import html
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover - types only
    import numpy as np
    import pandas as pd

__all__ = [
    "Store", "Result", "View", "open_store",
    "extract", "classify", "diff", "ablate", "words", "cluster", "framenet", "coref", "probe", "view", "show",
]

# The options every data-reading command shares (cli.common.data_options): they go into a DataOptions.
# Where a command's default differs from its Options dataclass's (the command maps it before building the options).
_OPTION_DEFAULTS: dict[str, dict[str, Any]] = {"ablate": {"task": None}}  # None: the task the fine-tuned model records
_DATA_KEYS = ("task", "data", "split", "limit", "sample", "seed", "text_columns", "label_column", "id_column")


def _pandas() -> Any:
    try:
        import pandas
    except ImportError as e:  # the optional extra
        raise ImportError("tables as DataFrames need pandas: pip install 'bertsecrets-cli[pandas]'") from e
    return pandas


def _columns(value: str | tuple[str, ...] | list[str] | None) -> tuple[str, ...] | None:
    """A comma-separated option ('a,b') or a sequence, as the tuple the jobs take."""
    if value is None:
        return None
    items = value.split(",") if isinstance(value, str) else list(value)
    return tuple(s.strip() for s in items if s.strip())


def _options(cls: type, kwargs: dict[str, Any]) -> Any:
    """``cls`` (a jobs Options dataclass) from keyword arguments named like the command's options.

    The data options (task, data, split, limit, ...) go into its ``data`` field where it has one; a tuple
    field takes a comma-separated string as on the command line; an unknown keyword is a TypeError naming it.
    """
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kw = dict(kwargs)
    if "data" in fields and fields["data"].default_factory is not dataclasses.MISSING:  # a DataOptions field
        from bertsecrets_cli.jobs.extract import DataOptions

        d = {k: kw.pop(k) for k in _DATA_KEYS if k in kw}
        if "task" in d and d["task"] is None:
            d["task"] = ""  # DataOptions' "from the model"
        if "text_columns" in d:
            d["text_columns"] = _columns(d["text_columns"])
        kw["data"] = DataOptions(**d)
    unknown = sorted(set(kw) - set(fields))
    if unknown:
        raise TypeError(f"{cls.__name__}: unknown option(s) {', '.join(unknown)}; known: {', '.join(sorted(set(fields) | set(_DATA_KEYS)))}")
    for k, v in list(kw.items()):
        if isinstance(v, str) and isinstance(fields[k].default, tuple):  # heads/layers: one string is one set
            kw[k] = (v,) if k in ("heads", "layers") else _columns(v)
    return cls(**kw)


@dataclass
class Result:
    """What an analysis returns: the store it wrote (if any), its tables, and the job's own result object.

    ``tables`` are the tables the command prints (each has ``.title``, ``.columns``, ``.rows``, ``.caption``);
    ``raw`` is the jobs/ result with its arrays (e.g. ``raw.counts`` of classify, ``raw.cosine`` of diff).
    """

    command: str
    path: Path | None
    tables: list[Any] = field(default_factory=list)
    raw: Any = None

    def table(self, key: str | None = None) -> Any:
        """The table picked as ``--table KEY`` picks it (the first one without a key)."""
        if key is None:
            if not self.tables:
                raise LookupError(f"{self.command} returned no table")
            return self.tables[0]
        for t in self.tables:
            if t.key == key:
                return t
        raise LookupError(f"{self.command}: no table {key!r}; tables: {', '.join(t.key for t in self.tables)}")

    @property
    def table_keys(self) -> list[str]:
        return [t.key for t in self.tables]

    def to_frame(self, key: str | None = None) -> pd.DataFrame:
        """A table as a pandas DataFrame: its columns and rows, unrounded (the first table without ``key``)."""
        t = self.table(key)
        frame = _pandas().DataFrame([list(r) for r in t.rows], columns=list(t.columns))
        frame.attrs.update(title=t.title, caption=t.caption or "")
        return frame

    def _repr_html_(self) -> str:
        from bertsecrets_cli.render.tables import to_markdown

        parts = [f"<p><b>{html.escape(self.command)}</b>" + (f": {html.escape(str(self.path))}" if self.path else "") + "</p>"]
        for t in self.tables:
            parts.append(f"<pre>{html.escape(to_markdown(t))}</pre>")
        return "\n".join(parts)


def _iframe(page: str, height: int = 720) -> str:
    """A whole HTML page shown inline: in an iframe's srcdoc, so its script and styles stay its own (no server)."""
    return (f'<iframe srcdoc="{html.escape(page, quote=True)}" style="width:100%;height:{height}px;border:1px solid #ddd" '
            'sandbox="allow-scripts allow-downloads"></iframe>')


@dataclass
class View:
    """The page ``view`` wrote: ``path``, its ``size_bytes``; in Jupyter it displays inline (the same file)."""

    path: Path
    size_bytes: int
    n_examples: int

    @property
    def html(self) -> str:
        return self.path.read_text(encoding="utf-8")

    def _repr_html_(self) -> str:
        return _iframe(self.html)


class Store:
    """A store opened read-only: tokens, maps and per-head summaries as numpy arrays (and DataFrames).

    Layers and heads are 0-based here (array indices); the tables' names such as L3H7 are 1-based. Close it
    with :meth:`close` or use it as a context manager.
    """

    def __init__(self, reader: Any) -> None:
        self._st = reader

    # -- what it is
    @property
    def path(self) -> Path:
        return Path(self._st.path)

    @property
    def kind(self) -> str:
        """attention, patterns, diff, ablation, words, ... (docs/store.md)."""
        return self._st.kind

    @property
    def version(self) -> str:
        """The store format version recorded in the file (docs/versioning.md)."""
        return self._st.version

    @property
    def n_layers(self) -> int:
        return self._st.n_layers

    @property
    def n_heads(self) -> int:
        return self._st.n_heads

    @property
    def n_examples(self) -> int:
        return self._st.n_examples

    @property
    def example_ids(self) -> list[str]:
        return self._st.example_ids

    @property
    def quantities(self) -> list[str]:
        """The map kinds held: weights, and norms, rollout, ... when extract stored them."""
        return self._st.quantities

    @property
    def model(self) -> dict[str, Any]:
        """The model description stored with the maps (name, layers, heads, fingerprint, ...)."""
        return self._st.model_attrs

    @property
    def provenance(self) -> dict[str, Any]:
        return self._st.provenance

    # -- arrays
    def tokens(self, example: int) -> list[str]:
        """The tokens of example ``example`` (0-based), as the model saw them."""
        return list(self._st.tokens(example).text)

    def token_ids(self, example: int) -> np.ndarray:
        return self._st.tokens(example).ids

    def attention(self, example: int, layer: int | None = None, head: int | None = None, *, quantity: str = "weights") -> np.ndarray:
        """Maps of one example, float32: [layers, heads, T, T]; with ``layer`` [heads, T, T]; with both [T, T].

        Row ``i`` is what token ``i`` attends to. ``quantity``: weights, norms, norms_normalised, rollout, flow.
        """
        st = self._st.select_quantity(quantity)
        maps = st.attention(example)
        if layer is not None:
            maps = maps[layer]
            if head is not None:
                maps = maps[head]
        elif head is not None:
            maps = maps[:, head]
        return maps

    def heads(self, quantity: str = "weights") -> dict[str, np.ndarray]:
        """Every per-head summary, name -> [layers, heads] array (entropy, cls, sep, ...; what ``show`` ranks)."""
        return {k: v.values for k, v in self._st.select_quantity(quantity).heads().items()}

    def descriptions(self, quantity: str = "weights") -> dict[str, str]:
        """What each per-head summary means, as stored in the file."""
        return {k: v.description for k, v in self._st.select_quantity(quantity).heads().items()}

    # -- tables
    def heads_frame(self, quantity: str = "weights") -> pd.DataFrame:
        """One row per head (``layer``, ``head``, 1-based as in the tables; ``name`` L<l>H<h>), a column per summary."""
        import numpy as np

        pd = _pandas()
        heads = {k: v for k, v in self.heads(quantity).items() if np.ndim(v) == 2}
        L, H = self.n_layers, self.n_heads
        cols: dict[str, Any] = {"layer": np.repeat(np.arange(1, L + 1), H), "head": np.tile(np.arange(1, H + 1), L)}
        cols["name"] = [f"L{l}H{h}" for l, h in zip(cols["layer"], cols["head"])]
        for k, v in heads.items():
            if v.shape == (L, H):
                cols[k] = np.asarray(v).reshape(-1)
        return pd.DataFrame(cols)

    def tokens_frame(self, example: int) -> pd.DataFrame:
        """The tokens of one example: position, text, id, segment, special kind, character offsets."""
        t = self._st.tokens(example)
        offsets = t.offsets.reshape(len(t.text), -1)
        return _pandas().DataFrame({"position": range(len(t.text)), "token": t.text, "id": t.ids, "segment": t.type_ids,
                                    "special": t.special, "start": offsets[:, 0], "end": offsets[:, -1]})

    def attention_frame(self, example: int, layer: int, head: int, *, quantity: str = "weights") -> pd.DataFrame:
        """One map as a token x token DataFrame (rows: the attending token, columns: the attended one)."""
        names = [f"{i}:{t}" for i, t in enumerate(self.tokens(example))]
        return _pandas().DataFrame(self.attention(example, layer, head, quantity=quantity), index=names, columns=names)

    # -- display and lifetime
    def _repr_html_(self) -> str:
        """The page ``bertsecrets view`` writes for this store (first examples), inline; other kinds: a summary."""
        if self.kind not in ("attention", "words"):
            return f"<p>bertsecrets {html.escape(self.kind)} store {html.escape(str(self.path))}</p>"
        with tempfile.TemporaryDirectory() as d:
            return view(self.path, str(Path(d) / "view.html"))._repr_html_()

    def __repr__(self) -> str:
        return f"<bertsecrets {self.kind} store {self.path}: {self.n_examples} examples, {self.n_layers} x {self.n_heads} heads>"

    def close(self) -> None:
        self._st.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def open_store(path: str | Path, *, quantity: str | None = None, locking: bool | None = None) -> Store:
    """Open any bertsecrets store read-only (validated as every command validates it)."""
    from bertsecrets_cli.store import open_store as _open

    return Store(_open(path, quantity=quantity, locking=locking))


# ------------------------------------------------------------------------------------------------------------------
# the analyses: one function per subcommand, same option names and defaults


def extract(output: str | Path, *, model: str | None = None, task: str = "sst2", data: str | None = None, split: str = "dev",
            limit: int | None = None, sample: bool = False, seed: int = 0, max_length: int = 128, batch_size: int = 32,
            text_columns: str | None = None, label_column: str | None = None, id_column: str | None = None,
            encoding: str = "float16", compression: str = "none", part_size: int = 4096, quantities: str = "weights",
            shard: str | None = None, device: str = "auto", memory: str = "auto", resume: bool = False, force: bool = False,
            quiet: bool = True) -> Result:
    """``bertsecrets extract``: attention maps and per-head summaries of ``model`` over a data set, into ``output``.

    ``model=None`` is the embedded MiniLM; ``task``/``data`` pick the examples (demo data without ``data``).
    ``memory="flat"`` sets this whole Python process's heap policy for its lifetime (see ``host_memory``).
    Returns the per-layer summary table; open the store with :func:`open_store`.
    """
    from bertsecrets_cli.jobs.extract import ExtractOptions, run_extract

    opts = _options(ExtractOptions, dict(model=model, task=task, data=data, split=split, limit=limit, sample=sample, seed=seed,
                                         text_columns=text_columns, label_column=label_column, id_column=id_column,
                                         max_length=max_length, batch_size=batch_size, device=device, encoding=encoding,
                                         compression=compression, part_size=part_size, shard=shard, quantities=quantities,
                                         memory=memory, resume=resume, force=force, quiet=quiet))
    res = run_extract(opts, output, command="api extract")
    return Result("extract", Path(output), [res.summary], res)


def classify(store: str | Path, output: str | Path | None = None, *, classifier: str | None = None, features: bool = False,
             quantity: str = "weights", device: str = "auto", shard: str | None = None, part_size: int = 4096,
             resume: bool = False, force: bool = False, quiet: bool = True) -> Result:
    """``bertsecrets classify run``: the pattern type (vertical, diagonal, vertical+diagonal, block, heterogeneous) of
    every map; per-head shares in ``raw.head_shares`` [layers, heads, types]. ``output=None`` writes no store."""
    from bertsecrets_cli.jobs.classify import ClassifyOptions, run_classify

    opts = ClassifyOptions(classifier=classifier, device=device, force=force, quiet=quiet, shard=shard, quantity=quantity,
                           part_size=part_size, resume=resume)
    res = run_classify(store, output, opts, command="api classify")
    return Result("classify", Path(output) if output else None, [*res.tables, *(res.feature_tables if features else [])], res)


def diff(store_a: str | Path, store_b: str | Path, output: str | Path | None = None, *, top: int = 10, padded: bool = False,
         canvas: int = 200, quantity: str = "weights", shard: str | None = None, part_size: int = 4096, resume: bool = False,
         force: bool = False, quiet: bool = True) -> Result:
    """``bertsecrets diff``: how store B's maps differ from A's on the same examples (cosine, JS divergence per head in
    ``raw.cosine``, ``raw.js_divergence``; B - A of every per-head summary in ``raw.deltas``)."""
    from bertsecrets_cli.jobs.diff import DiffOptions, run_diff

    opts = DiffOptions(padded=padded, canvas=canvas, top=top, force=force, quiet=quiet, shard=shard, quantity=quantity,
                       part_size=part_size, resume=resume)
    res = run_diff(store_a, store_b, output, opts, command="api diff")
    return Result("diff", Path(output) if output else None, res.tables, res)


def words(store: str | Path, output: str | Path, *, word_boundaries: str = "punctuation", shard: str | None = None,
          force: bool = False, quiet: bool = True) -> Result:
    """``bertsecrets words``: word-level maps (Clark et al. 2019: sum over a word's attended pieces, mean over its
    attending pieces) into a words store that cluster and view read."""
    from bertsecrets_cli.jobs.words import WordsOptions, run_words, word_level_summary

    res = run_words(store, output, WordsOptions(boundaries=word_boundaries, force=force, quiet=quiet, shard=shard), command="api words")
    return Result("words", Path(output), [word_level_summary(res)], res)


def cluster(store: str | Path, output: str | Path, *, measure: str | None = None, definition: str = "ours", top: int = 3,
            patterns: str | None = None, figure: str | None = None, width: int = 80, shard: str | None = None, force: bool = False,
            quiet: bool = True) -> Result:
    """``bertsecrets cluster``: distances between heads' behaviour and a 2-d MDS embedding (``raw.embedding``).

    ``measure=None`` takes the definition's own (js-distance for "ours", Clark's js-smoothed for "authors")."""
    from bertsecrets_cli.jobs.cluster import ClusterOptions, run_cluster

    opts = ClusterOptions(measure=measure, definition=definition, top=top, patterns=patterns, figure=figure, width=width, force=force, quiet=quiet, shard=shard)
    res = run_cluster(store, output, opts, command="api cluster")
    return Result("cluster", Path(output), res.tables, res)


def ablate(output: str | Path, **options: Any) -> Result:
    """``bertsecrets ablate``: disable heads or layers and measure the task metric (a fine-tuned classifier).

    Keywords: the command's options with underscores (model, task, data, limit, mode, heads, layers, sweep, greedy,
    importance, bootstrap, top, device, ...) and its defaults (jobs.ablate.AblateOptions).
    """
    from bertsecrets_cli.jobs.ablate import AblateOptions, ablation_tables, run_ablate

    options = {"quiet": True, **_OPTION_DEFAULTS["ablate"], **options}
    opts = _options(AblateOptions, options)
    res = run_ablate(opts, output, command="api ablate")
    return Result("ablate", Path(output), ablation_tables(res, opts.top), res)


def framenet(output: str | Path, **options: Any) -> Result:
    """``bertsecrets framenet``: heads that attend along FrameNet frame-element links (``framenet=``, a release
    folder) or dependency arcs (``conllu=``). Keywords and defaults: the command's (jobs.framenet.FrameNetOptions)."""
    from bertsecrets_cli.jobs.framenet import FrameNetOptions, run_relations

    options.setdefault("quiet", True)
    res = run_relations(_options(FrameNetOptions, options), output, command="api framenet")
    return Result("framenet", Path(output), res.tables, res)


def coref(output: str | Path, **options: Any) -> Result:
    """``bertsecrets coref``: heads whose strongest attention from a mention lands on its antecedent (``data=``, a
    CorefUD .conllu or .jsonl). Keywords and defaults: the command's (jobs.coref.CorefOptions)."""
    from bertsecrets_cli.jobs.coref import CorefOptions, run_coref

    options.setdefault("quiet", True)
    res = run_coref(_options(CorefOptions, options), output, command="api coref")
    return Result("coref", Path(output), res.tables, res)


def probe(output: str | Path, **options: Any) -> Result:
    """``bertsecrets probe``: Clark et al.'s attention-only dependency probe (``train=``, ``test=``: CoNLL-U files).
    Keywords and defaults: the command's (jobs.probe.ProbeOptions)."""
    from bertsecrets_cli.jobs.probe import ProbeOptions, run_probe

    options.setdefault("quiet", True)
    res = run_probe(_options(ProbeOptions, options), output, command="api probe")
    return Result("probe", Path(output), res.tables, res)


def show(store: str | Path, *, quantity: str | None = None, top: int | None = None, bottom: bool = False, by_abs: bool = False,
         layer: str | None = None) -> Result:
    """``bertsecrets show``: a store's overview, or its heads ranked by per-head quantities (comma-separated).

    As the command: ``top`` (default 10 heads), ``bottom``, ``by_abs`` or ``layer`` without ``quantity`` rank the
    store's own result (an ablation's deltas, a diff's cosine)."""
    from bertsecrets_cli.jobs.show import ShowOptions, run_show

    opts = ShowOptions(quantities=_columns(quantity) or (), top=10 if top is None else top, bottom=bottom, by_abs=by_abs, layer=layer,
                       rank=top is not None or bottom or by_abs or layer is not None)
    return Result("show", None, run_show(store, opts), None)


def view(store: str | Path, output: str | Path, *, patterns: str | None = None, diff: str | None = None,
         ablation: str | None = None, examples: str | None = None, limit: int | None = None, sample: bool = False,
         seed: int = 0, quantity: str = "weights", encoding: str = "float16", title: str | None = None, force: bool = False) -> View:
    """``bertsecrets view``: the interactive, self-contained HTML page of a store, written to ``output``.

    The returned :class:`View` displays that page inline in Jupyter (no server, no network).
    """
    from bertsecrets_cli.jobs.view import ViewOptions, run_view

    opts = ViewOptions(patterns=patterns, diff=diff, ablation=ablation, examples=_columns(examples) or (), limit=limit,
                       sample=sample, seed=seed, quantity=quantity, encoding=encoding, title=title, force=force)
    res = run_view(store, output, opts)
    return View(Path(res.path), res.size_bytes, res.n_examples)
