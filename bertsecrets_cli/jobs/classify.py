"""``classify``: the pattern type of every attention map, per-head shares and token statistics; plus the
annotation loop and CNN training behind ``classify annotate`` and ``classify train``."""

from __future__ import annotations

import contextlib
import datetime as _dt
import functools
import hashlib
import json
import os
import sys
import warnings
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from bertsecrets_cli.analysis import patterns as P
from bertsecrets_cli.analysis.token_features import TOKEN_FEATURE_DESCRIPTIONS, TOKEN_FEATURE_LABELS, TOKEN_FEATURES
from bertsecrets_cli.errors import InputError, Interrupted, OutputError, StoreError
from bertsecrets_cli.heads import head_name, layer_name
from bertsecrets_cli.model.tokenize import NORMAL
from bertsecrets_cli.render.console import info
from bertsecrets_cli.render.tables import Table

RULES_VALIDATION_MAPS = 250
RULES_VALIDATION_SEED = 0


# ---------------------------------------------------------------------------------------------
# classifiers


@dataclass
class ClassifierInfo:
    """What every share is reported with: shares depend strongly on the classifier (paper.md sec. 1)."""

    name: str
    kind: str  # rules | cnn
    score: float  # accuracy (rules, on synthetic maps) or validation macro-F1 (cnn)
    score_text: str
    file: str = ""
    sha256: str = ""

    @property
    def label(self) -> str:
        return f"{self.name}, {self.score_text}"

    def attrs(self) -> dict[str, Any]:
        return {"classifier": self.name, "classifier_kind": self.kind, "classifier_score": float(self.score),
                "classifier_score_text": self.score_text, "classifier_file": self.file, "classifier_sha256": self.sha256}


@functools.lru_cache(maxsize=1)
def rules_validation(n: int = RULES_VALIDATION_MAPS, seed: int = RULES_VALIDATION_SEED) -> float:
    """Accuracy of the default rules on ``n`` synthetic maps at the generator's default noise (computed, ~0.2 s)."""
    from bertsecrets_cli.analysis.synthetic import generate

    s = generate(n, seed=seed)
    pred = np.array([P.classify_maps(m, sp, ty)[0] for m, sp, ty in zip(s.maps, s.special, s.type_ids)])
    return float(np.mean(pred == s.labels))


def rules_info() -> ClassifierInfo:
    from bertsecrets_cli.analysis.synthetic import DEFAULT_NOISE

    acc = rules_validation()
    return ClassifierInfo(P.RULES_NAME, "rules", acc, f"accuracy {acc:.3f} on {RULES_VALIDATION_MAPS} synthetic maps at noise {DEFAULT_NOISE:g}")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise InputError(f"--device {device}: no CUDA device is available")
    if device != "cpu" and not device.startswith("cuda"):
        raise InputError(f"--device {device}: choose auto, cpu, cuda or cuda:N")
    return device


@dataclass
class CnnClassifier:
    model: Any
    payload: dict[str, Any]
    device: str
    info: ClassifierInfo

    def predict(self, maps: list[np.ndarray]) -> np.ndarray:
        from bertsecrets_cli.analysis.cnn import predict

        return predict(self.model, maps, int(self.payload["size"]), self.device, input=self.payload.get("input", "scaled"))


def load_classifier(path: str | Path, device: str = "cpu") -> CnnClassifier:
    """A classifier file written by ``classify train``; one InputError line for anything else."""
    import torch

    from bertsecrets_cli.analysis.cnn import from_payload

    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: no such classifier file")
    try:
        payload = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unreadable file is the same user error
        raise InputError(f"{p}: not a classifier file written by 'bertsecrets classify train' ({type(e).__name__})") from e
    try:
        model = from_payload(payload, resolve_device(device))
    except (ValueError, KeyError, RuntimeError, AttributeError) as e:
        raise InputError(f"{p}: not a usable bertsecrets pattern classifier ({str(e).splitlines()[0] if str(e) else type(e).__name__})") from e
    v = payload["validation"]
    source = payload.get("training", {}).get("source", "annotated")
    text = f"validation macro-F1 {v['macro_f1']:.3f}, accuracy {v['accuracy']:.3f} on {v['n_maps']} {source} maps"
    info_ = ClassifierInfo(f"cnn:{p.name}", "cnn", float(v["macro_f1"]), text, str(p), _sha256(p))
    return CnnClassifier(model, payload, resolve_device(device), info_)


# ---------------------------------------------------------------------------------------------
# classify a store


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
    from bertsecrets_cli.jobs.shard import fingerprint, inherited_shard, resolve_shard, shard_provenance, shard_slice
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
    cnn = load_classifier(opts.classifier, opts.device) if opts.classifier else None
    cinfo = cnn.info if cnn else rules_info()
    with open_store(store_path, kind="attention", locking=opts.locking, quantity=opts.quantity) as st:
        L, H, n_total = st.n_layers, st.n_heads, st.n_examples
        if n_total == 0:
            raise StoreError(f"{store_path}: holds no examples; nothing to classify")
        in_prov = st.provenance()
        shard_attrs = inherited_shard(in_prov)
        if shard is not None and shard_attrs:
            raise InputError(f"{source or store_path}: is already shard {shard_attrs['shard_index']}/{shard_attrs['shard_count']} of an extract job; "
                             "classify it without --shard (its patterns store merges like a shard), or merge the extract shards first")
        s0, s1 = shard_slice(shard, n_total)
        if shard is not None:
            shard_attrs = shard_provenance(shard, s0, s1, n_total)
            info(f"shard {shard} ({shard.origin}): examples {s0}..{s1 - 1} of {n_total}")
        N = s1 - s0
        C, K = len(P.CLASSES), len(TOKEN_FEATURES)
        counts = np.zeros((L, H, C), dtype=np.int64)
        tok_sum = np.zeros((L, H, K))
        tok_n = np.zeros(K, dtype=np.int64)
        two = 0
        writer = StoreWriter(out, "patterns", force=opts.force, locking=opts.locking) if out is not None else None
        with writer if writer is not None else contextlib.nullcontext() as w, graceful_stop() as stop, \
                progress(N, "classify", quiet=opts.quiet) as advance:
            pw = None
            if w is not None:
                pw = PatternsWriter(w, n_layers=L, n_heads=H, class_names=list(P.CLASSES), feature_names=list(P.FEATURES),
                                    token_feature_names=list(TOKEN_FEATURES),
                                    attrs={**cinfo.attrs(), "thresholds": P.thresholds_dict() if cnn is None else {}})
            tokens = iter_tokens(st, start=s0, end=s1)
            for i, att in st.iter_attention(list(range(s0, s1)) if shard is not None else None, block_values=opts.block_values):
                if stop.requested:
                    raise Interrupted(f"{out or store_path}: stopped by {stop.signal} after {i - s0} of {N} examples; nothing was written (rerun the command)")
                j, tk = next(tokens)
                assert j == i, "attention and tokens are both read in store order"
                T = att.shape[-1]
                labels, feats = P.classify_maps(att, tk.special, tk.type_ids)
                if cnn is not None:
                    labels = cnn.predict(list(att.reshape(L * H, T, T))).reshape(L, H).astype(np.int8)
                for c in range(C):
                    counts[..., c] += labels == c
                two += int(len(np.unique(tk.type_ids[tk.special == NORMAL])) > 1)
                # float32, as stored: a merge of shards recomputes the means from exactly these values
                tv = token_attention(att, token_groups(tk.text, tk.offsets, tk.special, tk.type_ids)).astype(np.float32, copy=False)
                present = ~np.isnan(tv[0, 0])
                tok_sum[..., present] += tv[..., present]
                tok_n += present
                if pw is not None:
                    pw.add(labels, feats, tv)
                advance(1)
            with np.errstate(invalid="ignore", divide="ignore"):
                token_means = tok_sum / np.where(tok_n > 0, tok_n, np.nan)
            res = ClassifyResult(Path(out) if out is not None else None, N, L, H, cinfo, counts, token_means, tok_n, two, quantity=st.quantity)
            if w is not None:
                copy_model_from(w, st)
                w.copy_examples_from(st, s0, s1)
                pw.put_shares(res.layer_shares, res.overall_shares)
                _put_heads(w, res)
                thresholds = P.thresholds_dict() if cnn is None else {}
                job = fingerprint({"input": in_prov.get("job_fingerprint") or fingerprint([in_prov.get("model_fingerprint", ""), st.example_ids()]),
                                   "classifier": {k: v for k, v in cinfo.attrs().items() if k != "classifier_file"}, "thresholds": thresholds,
                                   # weights: the fingerprint of before quantities existed
                                   **({"quantity": st.quantity} if st.quantity != "weights" else {})})
                provenance = {
                    **tool_attrs(), "input_store": source or str(store_path), **{k: in_prov.get(k, "") for k in ("model", "model_fingerprint", "task", "data_source", "split", "is_demo_data")},
                    **cinfo.attrs(), "n_examples": N, "two_sentence_examples": two, "job_fingerprint": job, **shard_attrs,
                    "quantity": st.quantity,
                }
                w.set_provenance(provenance, provenance_texts({"classify": asdict(opts), "thresholds": thresholds,
                                                               "input_provenance": in_prov}, command))
    res.tables = result_tables(res)
    res.feature_tables = token_tables(res)
    return res


def combine_patterns(paths: list[str], out: str | Path, *, force: bool = False, locking: bool | None = None,
                     command: str | None = None) -> ClassifyResult:
    """Join the patterns stores of ``classify --shard i/n`` (or of classify run on each extract shard) into one.

    Labels, features and token attention are concatenated; counts, shares, majorities and token means are
    recomputed from them, so the result equals one unsharded run (token means to float rounding).
    """
    from bertsecrets_cli.store import StoreWriter
    from bertsecrets_cli.store.merge import merged_provenance, open_shards, order_shards
    from bertsecrets_cli.store.reader import iter_pattern_blocks
    from bertsecrets_cli.store.writer import G_PATTERNS, PATTERN_DATASETS, copy_model_from, put_pattern_shares

    outp, stores = open_shards(paths, out, "patterns", force=force, locking=locking)
    try:
        ordered = order_shards(stores, ("job_fingerprint",), shards_only=True)
        first, prov = ordered[0], ordered[0].provenance()
        L, H = first.n_layers, first.n_heads
        cinfo = ClassifierInfo(str(prov.get("classifier", "")), str(prov.get("classifier_kind", "")), float(prov.get("classifier_score", float("nan"))),
                               str(prov.get("classifier_score_text", "")), str(prov.get("classifier_file", "")), str(prov.get("classifier_sha256", "")))
        C, K = len(P.CLASSES), len(TOKEN_FEATURES)
        counts = np.zeros((L, H, C), dtype=np.int64)
        tok_sum = np.zeros((L, H, K))
        tok_n = np.zeros(K, dtype=np.int64)
        for st in ordered:
            for lab, tok in iter_pattern_blocks(st):
                for c in range(C):
                    counts[..., c] += (lab == c).sum(0)
                present = ~np.isnan(tok[:, 0, 0, :])  # [B, K]: the example has such a token
                tok_sum += np.where(present[:, None, None, :], tok, 0.0).sum(0, dtype=np.float64)
                tok_n += present.sum(0)
        n = int(sum(st.n_examples for st in ordered))
        two = int(sum(int(st.provenance().get("two_sentence_examples", 0)) for st in ordered))
        with np.errstate(invalid="ignore", divide="ignore"):
            token_means = tok_sum / np.where(tok_n > 0, tok_n, np.nan)
        res = ClassifyResult(outp, n, L, H, cinfo, counts, token_means, tok_n, two, quantity=first.result_quantity())
        with StoreWriter(outp, "patterns", force=force, locking=locking) as w:
            copy_model_from(w, first)
            for name in first.h5["examples"]:
                w.concat_from(f"examples/{name}", ordered)
            w.copy_group_attrs(G_PATTERNS, first)
            for name in PATTERN_DATASETS:
                w.concat_from(name, ordered)
            put_pattern_shares(w, res.layer_shares, res.overall_shares)
            _put_heads(w, res)
            w.set_provenance(*merged_provenance(ordered, outp, command, n_examples=n, two_sentence_examples=two))
    finally:
        for st in stores:
            st.close()
    res.tables = result_tables(res)
    res.feature_tables = token_tables(res)
    return res


def _put_heads(w: Any, res: ClassifyResult) -> None:
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


def majority_letter(cls: int, share: float) -> str:
    """'V' when most examples agree, 'v' when the majority type holds for under half of them."""
    letter = P.LETTERS[cls]
    return letter if share >= 0.5 else letter.lower()


def result_tables(res: ClassifyResult) -> list[Table]:
    """Shares per layer and overall, the majority type of every head, and a summary."""
    cap = f"classifier {res.classifier.label}; maps: {res.quantity}"
    t = Table(f"pattern shares per layer ({res.classifier.label}, on {res.quantity})", ["layer", *P.CLASSES], caption=cap)
    for layer in range(res.n_layers):
        t.add(layer_name(layer), *(float(x) for x in res.layer_shares[layer]))
    t.add("all", *(float(x) for x in res.overall_shares))
    maj, maj_share = P.majority(res.counts)
    g = Table(f"majority pattern per head ({res.classifier.name}, on {res.quantity})", ["layer", *(f"H{h + 1}" for h in range(res.n_heads))],
              caption="V vertical, D diagonal, M vertical+diagonal, B block, H heterogeneous; lower case: under half of the examples")
    for layer in range(res.n_layers):
        g.add(layer_name(layer), *(majority_letter(int(maj[layer, h]), float(maj_share[layer, h])) for h in range(res.n_heads)))
    het = P.HETEROGENEOUS
    s = Table("classification summary", ["what", "value"])
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
    cols = [TOKEN_FEATURE_LABELS[k] for k in TOKEN_FEATURES]
    n = ", ".join(f"{TOKEN_FEATURE_LABELS[k]} {int(res.token_examples[i])}" for i, k in enumerate(TOKEN_FEATURES))
    cap = f"mean attention given to the token (column mean; max over such tokens); examples with the token: {n}"
    t = Table(f"attention to tokens per layer (mean over heads, on {res.quantity})", ["layer", *cols], caption=cap)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a layer where no example had the token: NaN, said so
        per_layer = np.nanmean(res.token_means, axis=1)
    for layer in range(res.n_layers):
        t.add(layer_name(layer), *(float(x) for x in per_layer[layer]))
    h = Table(f"attention to tokens per head (on {res.quantity})", ["head", *cols], caption=cap)
    for layer in range(res.n_layers):
        for head in range(res.n_heads):
            h.add(head_name(layer, head), *(float(x) for x in res.token_means[layer, head]))
    return [t, h]


# ---------------------------------------------------------------------------------------------
# annotation: one map at a time, one key per label, a shareable and resumable TSV

TSV_COLUMNS = ("store", "example", "layer", "head", "label", "example_id")
TSV_HEADER_NOTE = "# bertsecrets pattern annotations: layer and head are 1-based; label is a class name or 'skip'"
SKIP = "skip"


@dataclass
class LabelRow:
    store: Path  # resolved
    example: int
    layer: int  # 0-based inside
    head: int
    label: str  # a class name or 'skip'
    example_id: str
    where: str  # file:line, for error messages


def read_labels(path: str | Path) -> list[LabelRow]:
    """Rows of an annotation TSV; store paths are relative to the TSV's folder. Bad lines are one InputError."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: no such labels file")
    rows: list[LabelRow] = []
    with open(p, newline="", encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip() or line.startswith("#"):
                continue
            cells = line.rstrip("\n").split("\t")
            if cells[:2] == ["store", "example"]:
                continue
            where = f"{p}:{n}"
            if len(cells) < 5:
                raise InputError(f"{where}: expected tab-separated store, example, layer, head, label; got {len(cells)} field(s)")
            try:
                ex, layer, head = int(cells[1]), int(cells[2]), int(cells[3])
            except ValueError:
                raise InputError(f"{where}: example, layer and head must be whole numbers (layer and head 1-based)") from None
            if ex < 0 or layer < 1 or head < 1:
                raise InputError(f"{where}: example counts from 0, layer and head from 1")
            label = cells[4].strip().lower()
            if label != SKIP:
                c = P.parse_class(label)
                if c < 0:
                    raise InputError(f"{where}: unknown label {cells[4]!r}; use one of {', '.join(P.CLASSES)} or skip")
                label = P.CLASSES[c]
            store = Path(cells[0])
            if not store.is_absolute():
                store = p.parent / store
            rows.append(LabelRow(store.resolve(), ex, layer - 1, head - 1, label, cells[5] if len(cells) > 5 else "", where))
    return rows


def _store_ref(store: Path, tsv: Path) -> str:
    """The store as the TSV records it: relative to the TSV's folder when possible, so both can be shared together."""
    try:
        return os.path.relpath(store.resolve(), tsv.resolve().parent)
    except ValueError:  # another drive on Windows
        return str(store.resolve())


def stream_keys(stream: TextIO) -> Iterator[str]:
    """Keys from a non-terminal stream (tests, scripts): every non-blank character is one key press."""
    while True:
        ch = stream.read(1)
        if not ch:
            return
        if not ch.isspace():
            yield ch


def terminal_keys(stream: TextIO) -> Iterator[str]:
    """Single key presses from a terminal, without Enter (cbreak mode, restored afterwards)."""
    import termios
    import tty

    fd = stream.fileno()
    old = termios.tcgetattr(fd)
    try:
        tty.setcbreak(fd)
        while True:
            ch = os.read(fd, 1).decode("utf-8", "replace")
            if not ch:
                return
            yield ch
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, old)


def key_source(stream: TextIO | None = None) -> Iterator[str]:
    """Terminal key presses when ``stream`` (stdin) is a terminal, else characters read from it."""
    s = stream if stream is not None else sys.stdin
    if s is None:
        return iter(())
    try:
        tty_ = s.isatty()
    except (AttributeError, ValueError):
        tty_ = False
    return terminal_keys(s) if tty_ else stream_keys(s)


@dataclass
class AnnotateOptions:
    limit: int | None = None  # maps to label in this session
    seed: int = 0
    heads: list[tuple[int, int]] | None = None
    hint: bool = False
    locking: bool | None = None
    max_tokens: int = 48


@dataclass
class AnnotateResult:
    labelled: int
    skipped: int
    remaining: int
    quit: bool
    table: Table


KEY_HELP = "v vertical  d diagonal  m vertical+diagonal  b block  h heterogeneous  s skip  q quit"


def run_annotate(store_path: str | Path, labels_path: str | Path, opts: AnnotateOptions, *, keys: Iterator[str] | None = None, console: Any = None) -> AnnotateResult:
    """Show the store's maps one by one (a seeded random order) and append one TSV row per key press.

    Maps already in the TSV for this store are skipped, so a session can stop (q) and resume any time.
    """
    from bertsecrets_cli.render.console import err_console
    from bertsecrets_cli.render.terminal import render_map
    from bertsecrets_cli.store import open_store

    if str(store_path) == "-":
        raise InputError("-: annotate needs a store file (standard input carries the key presses)")
    store = Path(store_path)
    tsv = Path(labels_path)
    if tsv.is_dir():
        raise OutputError(f"{tsv}: is a folder; give a file name for the labels")
    if not tsv.parent.is_dir():
        raise OutputError(f"{tsv}: folder {tsv.parent} does not exist")
    done = {(r.example, r.layer, r.head) for r in read_labels(tsv) if r.store == store.resolve()} if tsv.exists() else set()
    keys = keys if keys is not None else key_source()
    con = console if console is not None else err_console()
    labelled = skipped = 0
    quit_ = False
    with open_store(store, kind="attention", locking=opts.locking) as st:
        L, H, N = st.n_layers, st.n_heads, st.n_examples
        allowed = None if not opts.heads else {lh for lh in opts.heads}
        if allowed and any(layer >= L or head >= H for layer, head in allowed):
            raise InputError(f"--heads: the store's model has {L} layers x {H} heads")
        order = np.random.default_rng(opts.seed).permutation(N * L * H)
        todo = [int(k) for k in order if (int(k) // (L * H), (int(k) // H) % L, int(k) % H) not in done
                and (allowed is None or ((int(k) // H) % L, int(k) % H) in allowed)]
        ids = st.example_ids()
        new_file = not tsv.exists() or tsv.stat().st_size == 0
        cache: tuple[int, np.ndarray] | None = None
        with open(tsv, "a", newline="", encoding="utf-8") as fh:
            if new_file:
                fh.write(TSV_HEADER_NOTE + "\n" + "\t".join(TSV_COLUMNS) + "\n")
                fh.flush()
            ref = _store_ref(store, tsv)
            for pos, k in enumerate(todo):
                if opts.limit is not None and labelled + skipped >= opts.limit:
                    break
                ex, layer, head = k // (L * H), (k // H) % L, k % H
                if cache is None or cache[0] != ex:
                    cache = (ex, st.attention(ex))
                att = cache[1][layer, head]
                tk = st.tokens(ex)
                title = f"{store.name}  example {ex} ({ids[ex]})  {head_name(layer, head)}   [map {len(done) + pos + 1} of {len(done) + len(todo)}]"
                if con.is_terminal:
                    con.clear()  # one map at a time, always at the top of the screen
                con.print(render_map(att, tk.text, title=title, max_tokens=opts.max_tokens))
                if opts.hint:
                    f = P.map_features(att, tk.special, tk.type_ids)
                    guess = P.CLASSES[int(P.classify_features(f))]
                    con.print(f"hint ({P.RULES_NAME}): {guess}; " + ", ".join(f"{n} {v:.2f}" for n, v in zip(P.FEATURES, f)))
                con.print(KEY_HELP)
                label = None
                while label is None:
                    key = next(keys, "q").lower()
                    if key in ("q", "\x03", "\x04", "\x1b"):
                        quit_ = True
                        break
                    if key == "s":
                        label = SKIP
                    elif key in P.KEYS:
                        label = P.CLASSES[P.KEYS.index(key)]
                    else:
                        con.print(f"unknown key {key!r}; {KEY_HELP}")
                if quit_:
                    break
                fh.write("\t".join((ref, str(ex), str(layer + 1), str(head + 1), label, ids[ex])) + "\n")
                fh.flush()
                labelled += label != SKIP
                skipped += label == SKIP
        remaining = len(todo) - labelled - skipped
    rows = [r for r in read_labels(tsv) if r.store == store.resolve()] if tsv.exists() else []
    t = Table(f"annotations of {store.name} in {tsv.name}", ["label", "maps"])
    for c in (*P.CLASSES, SKIP):
        t.add(c, sum(r.label == c for r in rows))
    t.add("remaining", remaining)
    return AnnotateResult(labelled, skipped, remaining, quit_, t)


# ---------------------------------------------------------------------------------------------
# training the CNN from annotations (and/or synthetic maps)


@dataclass
class LabelledMaps:
    maps: list[np.ndarray] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)
    special: list[np.ndarray] = field(default_factory=list)
    type_ids: list[np.ndarray] = field(default_factory=list)
    sources: list[dict[str, Any]] = field(default_factory=list)


def load_labelled_maps(tsv_paths: list[str], *, locking: bool | None = None) -> LabelledMaps:
    """The annotated maps of TSV files (later rows win on a conflict; 'skip' rows are left out)."""
    from bertsecrets_cli.render.console import info as note
    from bertsecrets_cli.store import open_store

    latest: dict[tuple[Path, int, int, int], LabelRow] = {}
    conflicts = 0
    out = LabelledMaps()
    for tsv in tsv_paths:
        rows = read_labels(tsv)
        out.sources.append({"file": str(tsv), "sha256": _sha256(Path(tsv)), "rows": len(rows)})
        for r in rows:
            key = (r.store, r.example, r.layer, r.head)
            if key in latest and latest[key].label != r.label:
                conflicts += 1
            latest[key] = r
    if conflicts:
        note(f"{conflicts} map(s) carry different labels in the labels files; the last one read is used")
    by_store: dict[Path, list[LabelRow]] = {}
    for r in latest.values():
        if r.label != SKIP:
            by_store.setdefault(r.store, []).append(r)
    for store, rows in by_store.items():
        if not store.exists():
            raise InputError(f"{rows[0].where}: store {store} does not exist (paths are relative to the labels file)")
        with open_store(store, kind="attention", locking=locking) as st:
            ids = st.example_ids()
            rows.sort(key=lambda r: (r.example, r.layer, r.head))
            cache: tuple[int, np.ndarray] | None = None
            for r in rows:
                if r.example >= st.n_examples or r.layer >= st.n_layers or r.head >= st.n_heads:
                    raise InputError(f"{r.where}: example {r.example} {head_name(r.layer, r.head)} is not in {store} "
                                     f"({st.n_examples} examples, {st.n_layers} layers x {st.n_heads} heads)")
                if r.example_id and ids[r.example] != r.example_id:
                    raise InputError(f"{r.where}: example {r.example} of {store} is {ids[r.example]!r}, the labels say {r.example_id!r} (the store changed)")
                if cache is None or cache[0] != r.example:
                    cache = (r.example, st.attention(r.example))
                tk = st.tokens(r.example)
                out.maps.append(cache[1][r.layer, r.head].copy())
                out.labels.append(P.CLASSES.index(r.label))
                out.special.append(tk.special)
                out.type_ids.append(tk.type_ids)
    return out


@dataclass
class TrainOptions:
    labels: list[str] = field(default_factory=list)  # annotation TSVs
    synthetic: int = 0  # synthetic maps added to the training data
    noise: float | None = None
    epochs: int = 200
    batch_size: int = 64
    lr: float = 1e-3
    val_fraction: float = 0.2
    patience: int = 0
    input: str = "scaled"
    seed: int = 0
    device: str = "auto"
    force: bool = False
    locking: bool | None = None
    quiet: bool = False


@dataclass
class TrainResult:
    path: Path
    n_train: int
    n_val: int
    scores: dict[str, Any]
    rules_scores: dict[str, Any]
    best_epoch: int
    epochs_run: int
    tables: list[Table]


def run_train(opts: TrainOptions, out: str | Path, *, command: str | None = None) -> TrainResult:
    """Train the paper's CNN on annotated (and/or synthetic) maps and save a classifier file with its provenance."""
    import torch

    from bertsecrets_cli import __version__
    from bertsecrets_cli.analysis.cnn import ARCHITECTURE, INPUTS, train_cnn
    from bertsecrets_cli.analysis.synthetic import DEFAULT_NOISE, generate
    from bertsecrets_cli.jobs.provenance import command_line
    from bertsecrets_cli.render.progress import progress
    from bertsecrets_cli.store.writer import check_output_path

    out_p = check_output_path(out, force=opts.force, what="classifier file")
    if not opts.labels and opts.synthetic <= 0:
        raise InputError("nothing to train on: give labels files (from 'classify annotate') and/or --synthetic N")
    if opts.epochs < 1 or opts.batch_size < 1 or not 0 < opts.val_fraction < 1 or opts.lr <= 0:
        raise InputError("--epochs and --batch-size must be at least 1, --lr positive and --val-fraction between 0 and 1")
    if opts.input not in INPUTS:
        raise InputError(f"--input {opts.input}: choose one of {', '.join(INPUTS)}")
    noise = DEFAULT_NOISE if opts.noise is None else opts.noise
    if not 0 <= noise <= 1:
        raise InputError(f"--noise {noise}: must be between 0 and 1")
    device = resolve_device(opts.device)
    data = load_labelled_maps(opts.labels, locking=opts.locking) if opts.labels else LabelledMaps()
    n_annotated = len(data.maps)
    if opts.synthetic > 0:
        s = generate(opts.synthetic, noise=noise, seed=opts.seed)
        data.maps += s.maps
        data.labels += [int(x) for x in s.labels]
        data.special += s.special
        data.type_ids += s.type_ids
        data.sources.append({"synthetic": opts.synthetic, "noise": noise, "seed": opts.seed})
    labels = np.asarray(data.labels, dtype=np.int64)
    present, per_class = np.unique(labels, return_counts=True)
    have = ", ".join(f"{P.CLASSES[c]} {k}" for c, k in zip(present, per_class)) or "none"
    if (per_class >= 2).sum() < 2:
        raise InputError(f"need at least 2 maps of each of at least 2 classes to train and validate (have: {have})")
    if (per_class < 2).any():
        info("only one map of " + ", ".join(P.CLASSES[c] for c in present[per_class < 2]) + ": used for training, not validated")
    info(f"training on {len(labels)} maps ({n_annotated} annotated, {len(labels) - n_annotated} synthetic): {have}")
    with progress(opts.epochs, "train CNN", quiet=opts.quiet) as advance:
        res = train_cnn(data.maps, labels, epochs=opts.epochs, batch_size=opts.batch_size, lr=opts.lr, val_fraction=opts.val_fraction,
                        seed=opts.seed, device=device, patience=opts.patience, input=opts.input, on_epoch=lambda e, r: advance(1))
    val = res.val_idx
    rules_pred = np.array([int(P.classify_maps(data.maps[i], data.special[i], data.type_ids[i])[0]) for i in val])
    rules_scores = P.class_scores(rules_pred, labels[val])
    source = "annotated" if n_annotated == len(labels) else "synthetic" if n_annotated == 0 else "annotated+synthetic"
    meta = {
        "source": source, "sources": data.sources, "class_counts": {P.CLASSES[c]: int(k) for c, k in zip(present, per_class)},
        "epochs": opts.epochs, "batch_size": opts.batch_size, "lr": opts.lr, "optimizer": "Adam", "val_fraction": opts.val_fraction,
        "split": "stratified", "selection": "best validation accuracy (ties: macro-F1)", "patience": opts.patience, "seed": opts.seed,
        "device": device, "architecture": ARCHITECTURE, "tool_version": __version__, "torch_version": str(torch.__version__),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), "command": command if command is not None else command_line(),
        "rules_on_validation": {"name": P.RULES_NAME, "accuracy": rules_scores["accuracy"], "macro_f1": rules_scores["macro_f1"]},
        "history": [{k: float(v) for k, v in h.items()} for h in res.history],
    }
    payload = res.payload(meta)
    tmp = out_p.with_name(f".{out_p.name}.{os.getpid()}.tmp")
    try:
        torch.save(payload, tmp)
        os.replace(tmp, out_p)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise OutputError(f"{out_p}: cannot write: {e.strerror or e}") from e
    return TrainResult(out_p, len(res.train_idx), len(val), res.scores, rules_scores, res.best_epoch, res.epochs_run,
                       train_tables(res.scores, rules_scores, len(res.train_idx), len(val), res.best_epoch, res.epochs_run, out_p, source))


def train_tables(sc: dict[str, Any], rules: dict[str, Any], n_train: int, n_val: int, best_epoch: int, epochs_run: int, path: Path, source: str) -> list[Table]:
    t = Table(f"validation scores per class ({n_val} {source} maps)", ["class", "precision", "recall", "F1", "support", f"{P.RULES_NAME} F1"])
    for c, name in enumerate(P.CLASSES):
        if sc["support"][c] or sc["confusion"][:, c].sum():
            t.add(name, float(sc["precision"][c]), float(sc["recall"][c]), float(sc["f1"][c]), int(sc["support"][c]), float(rules["f1"][c]))
    t.add("macro", None, None, sc["macro_f1"], int(sc["support"].sum()), rules["macro_f1"])
    m = Table("validation confusion matrix (rows: annotated, columns: predicted)", ["annotated", *P.LETTERS],
              caption="V vertical, D diagonal, M vertical+diagonal, B block, H heterogeneous")
    for c, name in enumerate(P.CLASSES):
        m.add(name, *(int(x) for x in sc["confusion"][c]))
    s = Table("training summary", ["what", "value"])
    s.add("classifier file", str(path))
    s.add("maps", f"{n_train} train, {n_val} validation (stratified)")
    s.add("kept epoch", f"{best_epoch} of {epochs_run} (best validation accuracy)")
    s.add("validation accuracy", f"{sc['accuracy']:.3f} ({P.RULES_NAME} on the same maps: {rules['accuracy']:.3f})")
    s.add("validation macro-F1", f"{sc['macro_f1']:.3f} ({P.RULES_NAME}: {rules['macro_f1']:.3f})")
    return [t, m, s]
