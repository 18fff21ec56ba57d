"""``classify run``: the pattern type of every attention map of a store, per-head shares and token statistics.

The classifier is chosen in jobs.classifiers; shards of this job are joined by jobs.classify_merge.
"""

from __future__ import annotations

import contextlib
import json
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bertsecrets_cli.analysis import patterns as P
from bertsecrets_cli.analysis.token_features import TOKEN_FEATURE_DESCRIPTIONS, TOKEN_FEATURE_LABELS, TOKEN_FEATURES
from bertsecrets_cli.errors import InputError, Interrupted, OutputError, StoreError
from bertsecrets_cli.heads import head_name, layer_name
from bertsecrets_cli.jobs.classifiers import ClassifierInfo, load_classifier, rules_info
from bertsecrets_cli.render.tables import Table
from bertsecrets_cli.tokens import CLS as CLS_KIND, NORMAL, OTHER_SPECIAL as OTHER_KIND


@dataclass
class ClassifyOptions:
    classifier: str | None = None  # a file from `classify train`; None = the default rules
    device: str = "auto"
    force: bool = False
    locking: bool | None = None
    quiet: bool = False
    block_values: int = 1 << 20  # attention values read at once (4 MiB as float32): bounds memory at any store size
    shard: str | None = None  # "i/n" or "auto": label only that contiguous range of examples (join with `merge`)
    quantity: str = "weights"  # which stored maps to label (schema.QUANTITIES): weights, norms_normalised, rollout, ...
    part_size: int = 4096  # examples per resumable part (jobs/classify_parts.py; 0: one pass, nothing kept if stopped)
    resume: bool = False  # continue an interrupted run from its finished parts
    spacy: str | None = None  # a spaCy pipeline (name or folder) tagging the texts: attention to nouns, verbs, ... (jobs/linguistic.py)


@dataclass
class ClassifyResult:
    path: Path | None
    n_examples: int
    n_layers: int
    n_heads: int
    classifier: ClassifierInfo
    counts: np.ndarray  # [L, H, C] maps of each class per head
    token_means: np.ndarray  # [L, H, K]
    token_examples: np.ndarray  # [K] examples that had the token
    two_segments: int  # examples with two sentences (block is possible only there)
    tables: list[Table] = field(default_factory=list)
    feature_tables: list[Table] = field(default_factory=list)
    quantity: str = "weights"  # the maps that were labelled
    linguistic: Any = None  # analysis.linguistic.FeatureMeans with --spacy
    spacy: str = ""
    causal: bool = False  # a decoder's store: the [CLS] column is the first position (the sink)

    @property
    def head_shares(self) -> np.ndarray:
        return P.head_shares(self.counts)

    @property
    def layer_shares(self) -> np.ndarray:
        return P.head_shares(self.counts.sum(1))

    @property
    def overall_shares(self) -> np.ndarray:
        return P.head_shares(self.counts.sum((0, 1)))


def run_classify(store_path: str | Path, out: str | Path | None, opts: ClassifyOptions, *, command: str | None = None,
                 source: str | None = None) -> ClassifyResult:
    """Label every (example, layer, head) map of an attention store, streaming it; write a patterns store to ``out``.

    ``source`` names the input in provenance when ``store_path`` is a spooled copy (``-``: standard input).
    """
    from bertsecrets_cli.analysis.token_features import token_attention, token_groups
    from bertsecrets_cli.jobs.provenance import provenance_texts, tool_attrs
    from bertsecrets_cli.jobs.shard import fingerprint, resolve_shard, store_slice
    from bertsecrets_cli.jobs.signals import graceful_stop
    from bertsecrets_cli.render.progress import progress
    from bertsecrets_cli.store import StoreWriter, open_store
    from bertsecrets_cli.store.reader import iter_tokens
    from bertsecrets_cli.store.writer import PatternsWriter, copy_model_from

    if out is not None and Path(out).exists() and Path(store_path).exists() and Path(out).resolve() == Path(store_path).resolve():
        raise OutputError(f"{out}: is the input store; input stores are never modified, give another -o")
    shard = resolve_shard(opts.shard) if opts.shard else None
    if shard is not None and out is None:
        raise InputError("--shard: give -o; each shard writes a patterns store, then 'bertsecrets merge' joins them")
    from bertsecrets_cli.model.device import check_device_spec

    check_device_spec(opts.device)  # the rules need no device, but a mistyped one is still refused
    if opts.spacy and shard is not None:
        raise InputError("--spacy: not with --shard (the linguistic features' sums are not merged); tag the whole store in one run")
    nlp = None
    if opts.spacy:
        from bertsecrets_cli.jobs.linguistic import load_spacy

        nlp = load_spacy(opts.spacy)
    cnn = load_classifier(opts.classifier, opts.device) if opts.classifier else None
    cinfo = cnn.info if cnn else rules_info()
    with open_store(store_path, kind="attention", locking=opts.locking, quantity=opts.quantity) as st:
        _check_distribution(st.quantity)
        L, H, n_total = st.n_layers, st.n_heads, st.n_examples
        if cnn is not None and st.causal:
            from bertsecrets_cli.model.load import refuse_causal

            refuse_causal(None, "classify --classifier (a CNN trained on encoder maps)", causal=True, what=str(store_path))
        if n_total == 0:
            raise StoreError(f"{store_path}: holds no examples; nothing to classify")
        in_prov = st.provenance()
        s0, s1, shard_attrs = store_slice(shard, in_prov, n_total, str(source or store_path), "classify", "patterns")
        N = s1 - s0
        C, K = len(P.CLASSES), len(TOKEN_FEATURES)
        counts = np.zeros((L, H, C), dtype=np.int64)
        tok_sum = np.zeros((L, H, K))
        tok_n = np.zeros(K, dtype=np.int64)
        two = 0
        ling = tags = None
        if nlp is not None:
            from bertsecrets_cli.analysis.linguistic import FeatureMeans, feature_groups
            from bertsecrets_cli.jobs.linguistic import piece_groups, spacy_tags
            from bertsecrets_cli.tokens import CLS

            ling = FeatureMeans(L, H)
            texts = [st.strings("examples/text_a")[s0:s1]]
            if st.has("examples/text_b"):
                texts.append(st.strings("examples/text_b")[s0:s1])
            tags = [spacy_tags(nlp, [t or "" for t in seg]) for seg in texts]  # [segment][example] -> words
        writer = StoreWriter(out, "patterns", force=opts.force, locking=opts.locking) if out is not None else None
        with writer if writer is not None else contextlib.nullcontext() as w, graceful_stop() as stop, \
                progress(N, "classify", quiet=opts.quiet) as advance:
            pw = None
            if w is not None:
                pw = PatternsWriter(w, n_layers=L, n_heads=H, class_names=list(P.CLASSES), feature_names=list(P.FEATURES),
                                    token_feature_names=list(TOKEN_FEATURES),
                                    attrs={**cinfo.attrs(), "thresholds": P.thresholds_dict() if cnn is None else {}})
            tokens = iter_tokens(st, start=s0, end=s1)
            windows = st.attention_windows().tolist()  # local (sliding-window) layers: positions outside are masked
            causal = st.causal  # a decoder's lower-triangular maps: the first position is the sink
            stored = st.maps_mode != "full" and st.has_map_features()
            if stored:  # extract --maps topk/none kept every map's features: the rules need no maps
                if cnn is not None or ling is not None:
                    raise StoreError(f"{store_path}: holds no full maps (extract --maps {st.maps_mode}); --classifier and --spacy need them: "
                                     "rerun extract with --maps full")
                names = st.attrs("stats/map_features")["names"]
                names = json.loads(names) if isinstance(names, str) else list(names)
                if list(names) != list(P.FEATURES):
                    raise StoreError(f"{store_path}: its stored classifier features ({', '.join(names)}) are not this version's; rerun extract")
                source_iter = st.iter_map_features(s0, s1)
            else:
                source_iter = st.iter_attention(list(range(s0, s1)) if shard is not None else None, block_values=opts.block_values)
            for i, att in source_iter:
                if stop.requested:
                    raise Interrupted(f"{out or store_path}: stopped by {stop.signal} after {i - s0} of {N} examples; nothing was written (rerun the command)")
                j, tk = next(tokens)
                assert j == i, "attention and tokens are both read in store order"
                if stored:  # att holds the features; no token attention without the maps
                    feats = att
                    labels = P.classify_features(feats)
                    tv = np.full((L, H, K), np.nan, np.float32)
                    for c in range(C):
                        counts[..., c] += labels == c
                    two += int(len(np.unique(tk.type_ids[tk.special == NORMAL])) > 1)
                    if pw is not None:
                        pw.add(labels, feats, tv)
                    advance(1)
                    continue
                T = att.shape[-1]
                labels, feats = P.classify_maps(att, tk.special, tk.type_ids, windows=windows, causal=causal)
                if cnn is not None:  # a local layer's out-of-window keys: filled as masked, not read as attention 0
                    labels = cnn.predict(list(cnn_input(att, windows).reshape(L * H, T, T))).reshape(L, H).astype(np.int8)
                for c in range(C):
                    counts[..., c] += labels == c
                two += int(len(np.unique(tk.type_ids[tk.special == NORMAL])) > 1)
                # float32, as stored: a merge of shards recomputes the means from exactly these values
                kinds = tk.special
                if causal and len(kinds):  # the sink: the first position plays [CLS]'s part, a later BOS does not
                    kinds = np.where(kinds == CLS_KIND, OTHER_KIND, kinds).astype(kinds.dtype)
                    kinds[0] = CLS_KIND
                tv = token_attention(att, token_groups(tk.text, tk.offsets, kinds, tk.type_ids)).astype(np.float32, copy=False)
                present = ~np.isnan(tv[0, 0])
                tok_sum[..., present] += tv[..., present]
                tok_n += present
                if ling is not None:
                    pieces: list[list[int]] = []
                    word_tags: list[tuple[str, str]] = []
                    for seg, seg_tags in enumerate(tags):
                        p_, t_ = piece_groups(tk.offsets, tk.special, tk.type_ids, seg, seg_tags[i - s0])
                        pieces += p_
                        word_tags += t_
                    cls = np.flatnonzero(tk.special == CLS)
                    ling.add(att, feature_groups(pieces, word_tags), int(cls[0]) if len(cls) else None)
                if pw is not None:
                    pw.add(labels, feats, tv)
                advance(1)
            with np.errstate(invalid="ignore", divide="ignore"):
                token_means = tok_sum / np.where(tok_n > 0, tok_n, np.nan)
            res = ClassifyResult(Path(out) if out is not None else None, N, L, H, cinfo, counts, token_means, tok_n, two, quantity=st.quantity, causal=causal,
                                 linguistic=ling, spacy=opts.spacy or "")
            if w is not None:
                copy_model_from(w, st)
                w.copy_examples_from(st, s0, s1)
                pw.put_shares(res.layer_shares, res.overall_shares)
                put_heads(w, res)
                thresholds = P.thresholds_dict() if cnn is None else {}
                job = fingerprint({"input": in_prov.get("job_fingerprint") or fingerprint([in_prov.get("model_fingerprint", ""), st.example_ids()]),
                                   "classifier": {k: v for k, v in cinfo.attrs().items() if k != "classifier_file"}, "thresholds": thresholds,
                                   # weights: the fingerprint of before quantities existed
                                   **({"quantity": st.quantity} if st.quantity != "weights" else {})})
                provenance = {
                    **tool_attrs(), "input_store": source or str(store_path), **{k: in_prov.get(k, "") for k in ("model", "model_fingerprint", "task", "data_source", "split", "is_demo_data")},
                    **cinfo.attrs(), "n_examples": N, "two_sentence_examples": two, "job_fingerprint": job, **shard_attrs,
                    "quantity": st.quantity, **({"spacy_pipeline": opts.spacy} if opts.spacy else {}),
                }
                w.set_provenance(provenance, provenance_texts({"classify": asdict(opts), "thresholds": thresholds,
                                                               "input_provenance": in_prov}, command))
    res.tables = result_tables(res)
    res.feature_tables = token_tables(res)
    return res



def cnn_input(att: np.ndarray, windows: list[int]) -> np.ndarray:
    """An example's maps [L, H, T, T] as the CNN reads them: local layers' out-of-window keys filled (model.cnn.fill_out_of_window)."""
    if not any(w >= 0 and att.shape[-1] > w + 1 for w in windows):
        return att
    from bertsecrets_cli.model.cnn import fill_out_of_window

    return np.stack([fill_out_of_window(att[layer], int(w)) for layer, w in enumerate(windows)])


def _check_distribution(name: str) -> None:
    """The pattern rules and the CNN read shares of attention (rows summing to 1): other maps mean nothing to them."""
    from bertsecrets_cli.store import schema as S

    if S.quantity(name).distribution:
        return
    normalised = f"{name}_normalised"
    use = f"--quantity {normalised}" if normalised in S.QUANTITIES else \
        "--quantity " + " or ".join(q for q, spec in S.QUANTITIES.items() if spec.distribution)
    raise InputError(f"--quantity {name}: its maps are not attention distributions (rows do not sum to 1), so the pattern "
                     f"types' rules and thresholds do not apply to them; use {use}")


def put_heads(w: Any, res: ClassifyResult) -> None:
    """The per-head quantities plot, show and diff find under /heads (shares, majority, token attention)."""
    shares = res.head_shares
    for c, slug in enumerate(P.SLUGS):
        w.put_head_quantity(f"pattern_share_{slug}", shares[..., c], f"share of the examples whose map of this head is {P.CLASSES[c]} ({res.classifier.label})",
                            classifier=res.classifier.name)
    maj, maj_share = P.majority(res.counts)
    w.put_head_quantity("pattern_majority", maj, "majority pattern type of the head, as an index into class_names " + json.dumps(list(P.CLASSES)),
                        class_names=json.dumps(list(P.CLASSES)), classifier=res.classifier.name)
    w.put_head_quantity("pattern_majority_share", maj_share, "share of the examples with the head's majority type (a confidence)", classifier=res.classifier.name)
    for k, name in enumerate(TOKEN_FEATURES):
        w.put_head_quantity(f"token_{name}", res.token_means[..., k], TOKEN_FEATURE_DESCRIPTIONS[name], n_examples=int(res.token_examples[k]))
    if res.linguistic is not None:
        from bertsecrets_cli.jobs.linguistic import put_feature_heads

        put_feature_heads(w, res.linguistic, "examples")


def majority_letter(cls: int, share: float) -> str:
    """'V' when most examples agree, 'v' when the majority type holds for under half of them."""
    letter = P.LETTERS[cls]
    return letter if share >= 0.5 else letter.lower()


def result_tables(res: ClassifyResult) -> list[Table]:
    """Shares per layer and overall, the majority type of every head, and a summary."""
    cap = (f"classifier {res.classifier.label}; share (0-1) of the layer's maps (N={res.n_examples} examples x {res.n_heads} heads) "
           f"classified as each type; maps: {res.quantity}")
    t = Table(f"pattern shares per layer ({res.classifier.label}, on {res.quantity})", ["layer", *P.CLASSES], caption=cap, name="layers")
    for layer in range(res.n_layers):
        t.add(layer_name(layer), *(float(x) for x in res.layer_shares[layer]))
    t.add("all", *(float(x) for x in res.overall_shares))
    maj, maj_share = P.majority(res.counts)
    g = Table(f"majority pattern per head ({res.classifier.name}, on {res.quantity})", ["layer", *(f"H{h + 1}" for h in range(res.n_heads))], name="heads",
              caption="V vertical, D diagonal, M vertical+diagonal, B block, H heterogeneous; lower case: under half of the examples")
    for layer in range(res.n_layers):
        g.add(layer_name(layer), *(majority_letter(int(maj[layer, h]), float(maj_share[layer, h])) for h in range(res.n_heads)))
    het = P.HETEROGENEOUS
    s = Table("classification summary", ["what", "value"], name="summary")
    s.add("classifier", res.classifier.name)
    s.add("maps (quantity)", res.quantity)
    s.add("validation", res.classifier.score_text)
    s.add("maps classified", f"{res.n_examples * res.n_layers * res.n_heads} ({res.n_examples} examples x {res.n_layers * res.n_heads} heads)")
    s.add("heterogeneous share of maps", f"{100 * res.overall_shares[het]:.1f}%")
    s.add("heads with a heterogeneous majority", f"{int((maj == het).sum())} of {res.n_layers * res.n_heads} ({100 * float((maj == het).mean()):.1f}%)")
    s.add("two-sentence examples", f"{res.two_segments} of {res.n_examples}" + ("" if res.two_segments else " (block needs two sentences)"))
    return [t, g, s]


def token_tables(res: ClassifyResult) -> list[Table]:
    """Paper sec. 4.4: attention given to [CLS], [SEP], punctuation and negation, per layer and per head."""
    from bertsecrets_cli.render.labels import TOKEN_COLUMNS

    cols = [TOKEN_COLUMNS[k] for k in TOKEN_FEATURES]  # "max-": not extract's all-[SEP]/all-punct. mass (README glossary)
    if res.causal:  # a decoder: the first position, the sink; its column mean is the head's first-token mass
        cols = ["first (sink)" if k == "cls" else c for k, c in zip(TOKEN_FEATURES, cols)]
    n = ", ".join(f"{TOKEN_FEATURE_LABELS[k]} {int(res.token_examples[i])}" for i, k in enumerate(TOKEN_FEATURES))
    from bertsecrets_cli.store import schema as S

    mass = "attention mass (0-1)" if S.quantity(res.quantity).distribution else f"{res.quantity} value"
    cap = ("first (sink): the first position of a causal model (BOS, or the first real token), every query row sees it; " if res.causal else "") + (
           f"{mass} given to the most-attended such token of each example (column mean over query rows; "
           f"max over the example's [SEP]s, punctuation tokens, negation words); examples with the token: {n}; maps: {res.quantity}")
    t = Table(f"attention to tokens per layer, mean over heads (N={res.n_examples} examples) on {res.quantity}", ["layer", *cols], caption=cap, name="token-layers")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a layer where no example had the token: NaN, said so
        per_layer = np.nanmean(res.token_means, axis=1)
    for layer in range(res.n_layers):
        t.add(layer_name(layer), *(float(x) for x in per_layer[layer]))
    h = Table(f"attention to tokens per head (N={res.n_examples} examples, on {res.quantity})", ["head", *cols], caption=cap, name="token-heads")
    for layer in range(res.n_layers):
        for head in range(res.n_heads):
            h.add(head_name(layer, head), *(float(x) for x in res.token_means[layer, head]))
    if res.linguistic is None:
        return [t, h]
    from bertsecrets_cli.jobs.linguistic import feature_tables

    return [t, h, *feature_tables(res.linguistic, res.n_examples, f"spaCy pipeline {res.spacy}", "examples")]
