"""``probe``: the attention-based probing classifier of Clark et al. 2019 (sec. 6), trained on one CoNLL-U
file and scored on another by unlabeled attachment score, next to the paper's baselines.

Both files go through the model with extract's batching; every sentence's word-level maps (analysis/wordlevel.py)
become (dependent, candidate) features at once and the maps are dropped. The probes are trained on CPU with
scipy's L-BFGS (analysis/probe.py). Results go to a ``probe`` store: the learned weight of every head in both
directions under /heads/probe_* (plot, show, diff read them) and the UAS table.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bertsecrets_cli.errors import InputError
from bertsecrets_cli.heads import head_name
from bertsecrets_cli.render.console import info
from bertsecrets_cli.render.tables import Table

KIND = "probe"
RESULTS = "probe/results"
SCORED = {"ours": "every word with a head word (root words excluded, punctuation included); candidates: the other words",
          "authors": "every word but punctuation (root words included, ROOT = attention to [CLS] and [SEP]); candidates: ROOT and every word"}
TIMING_LABELS = {"load_and_features_s": "load the model, read both files, attention features", "train_attention_only_s": "train the attention-only probe",
                 "train_attention_words_s": "train the attention + words probe"}


@dataclass
class ProbeOptions:
    train: str = ""
    test: str = ""
    model: str | None = None
    device: str = "auto"
    batch_size: int = 32
    max_length: int = 128
    limit: int | None = None  # at most this many training sentences
    embedding_dims: int = 8  # principal components of the input embeddings for the attention + words probe (0: not trained)
    l2: float = 1e-3
    max_iter: int = 300
    force: bool = False
    quiet: bool = False
    locking: bool | None = None  # False: --no-locking (NFS/Lustre)
    definition: str = "ours"  # "authors": Clark et al.'s ROOT candidates and UAS without punct (analysis/probe.py)


@dataclass
class ProbeResult:
    path: Path
    n_train: int  # sentences
    n_test: int
    n_layers: int
    n_heads: int
    uas: dict[str, float]
    tables: list[Table] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)


def _check(opts: ProbeOptions) -> None:
    from bertsecrets_cli.model.device import check_device_spec

    check_device_spec(opts.device)
    if not opts.train or not opts.test:
        raise InputError("give --train FILE and --test FILE (CoNLL-U)")
    if opts.batch_size < 1:
        raise InputError(f"--batch-size {opts.batch_size}: must be at least 1")
    if not 4 <= opts.max_length <= 4096:
        raise InputError(f"--max-length {opts.max_length}: must be between 4 and 4096")
    if opts.embedding_dims < 0:
        raise InputError(f"--embedding-dims {opts.embedding_dims}: must be at least 0")
    if not math.isfinite(opts.l2) or opts.l2 < 0:
        raise InputError(f"--l2 {opts.l2}: must be a finite number, at least 0 (the default is 1e-3; 0 turns the penalty off)")
    if opts.max_iter < 1:
        raise InputError(f"--max-iter {opts.max_iter}: must be at least 1")
    if opts.limit is not None and opts.limit < 1:
        raise InputError(f"--limit {opts.limit}: must be at least 1")
    from bertsecrets_cli.analysis.definitions import DEFINITIONS

    if opts.definition not in DEFINITIONS:
        raise InputError(f"--definition {opts.definition}: choose one of {', '.join(DEFINITIONS)}")


def _features(lm: Any, path: str, opts: ProbeOptions, limit: int | None, with_emb: bool) -> tuple[list[tuple], list[int], list[np.ndarray], int]:
    """(pair features per sentence, word counts, raw word embeddings per sentence, sentences skipped)."""
    from bertsecrets_cli.analysis.probe import pair_features
    from bertsecrets_cli.analysis.wordlevel import word_attention, word_piece_matrix
    from bertsecrets_cli.data.conllu import read_conllu
    from bertsecrets_cli.jobs.attention_batches import iter_attention
    from bertsecrets_cli.model.embeddings import word_embeddings
    from bertsecrets_cli.model.tokenize import encode_examples

    sentences = [s for s in read_conllu(path) if len(s.words) >= 2]
    if limit is not None:
        sentences = sentences[:limit]
    kept, encoded, matrices, skipped = [], [], [], 0
    for s in sentences:
        spans, pos = [], 0
        for wd in s.words:
            spans.append((pos, pos + len(wd.form)))
            pos += len(wd.form) + 1
        text = " ".join(wd.form for wd in s.words)
        enc = encode_examples(lm.tokenizer, [(text, None)], opts.max_length)[0]
        M = word_piece_matrix(enc.offsets, enc.special, spans, text)
        if not (M.sum(1) > 0).all():
            skipped += 1  # truncated, or a word the tokenizer dropped: its head could not be predicted
            continue
        if opts.definition == "authors":  # Clark's word-level maps keep [CLS] and [SEP] as units: first and last row
            specials = np.nonzero(enc.special)[0]
            ends = np.zeros((2, M.shape[1]))
            ends[0, specials[0]] = ends[1, specials[-1]] = 1.0
            M = np.concatenate([ends[:1], M, ends[1:]])
        kept.append(s)
        encoded.append(enc)
        matrices.append(M)
    if not kept:
        raise InputError(f"{path}: no sentence of two or more words fits in --max-length {opts.max_length}")
    parts: list[tuple] = [()] * len(kept)
    embs: list[np.ndarray] = [np.zeros((0, 0))] * len(kept)
    for i, enc, att in iter_attention(lm, encoded, opts.batch_size, description=f"probe {Path(path).name}", quiet=opts.quiet):
        parts[i] = pair_features(word_attention(att, matrices[i]), [wd.head for wd in kept[i].words], [wd.deprel for wd in kept[i].words],
                                 definition=opts.definition)
        if with_emb:
            embs[i] = word_embeddings(lm, enc.ids, matrices[i][1:-1] if opts.definition == "authors" else matrices[i])
    return parts, [len(s.words) for s in kept], embs, skipped


def causal_caption(test: str | Path) -> str:
    """What the features are on a causal decoder's maps, with the share of the test file's governors that come first."""
    from bertsecrets_cli.data.conllu import read_conllu

    sides = [w.head - 1 < i for s in read_conllu(test) if len(s.words) > 1 for i, w in enumerate(s.words) if w.head]
    share = f"{np.mean(sides):.3f}" if sides else "n/a"
    return ("; causal decoder: a word sees only itself and earlier words, so for a dependent i and candidate j the feature A[i, j] "
            "is 0 when j comes after i and A[j, i] is 0 when j comes before: each pair has one informative direction per head; a single "
            f"head's 'dependent -> head' UAS is bounded by the share of governors that come first ({share} of the test file's words) "
            "and its 'head -> dependent' UAS by the rest")


def run_probe(opts: ProbeOptions, out: str | Path, *, command: str | None = None) -> ProbeResult:
    """Train the attention-only and attention + words probes on ``opts.train``; score them on ``opts.test``."""
    from bertsecrets_cli.analysis.probe import reduce_embeddings, single_feature_uas, stack, train_probe, uas
    from bertsecrets_cli.jobs.framenet import _model_attrs, _provenance
    from bertsecrets_cli.jobs.provenance import provenance_texts
    from bertsecrets_cli.jobs.shard import fingerprint
    from bertsecrets_cli.errors import ModelError
    from bertsecrets_cli.model.load import load_model
    from bertsecrets_cli.store.writer import StoreWriter, check_output_path

    _check(opts)
    outp = check_output_path(out, force=opts.force)
    for p in (opts.train, opts.test):
        if Path(p).exists() and outp.exists() and outp.resolve() == Path(p).resolve():
            raise InputError(f"{out}: is an input file; give another -o")
    from bertsecrets_cli.data.conllu import read_conllu

    for p in (opts.train, opts.test):  # both files are checked before the model loads
        for _ in read_conllu(p):
            pass
    t0 = time.perf_counter()
    lm = load_model(opts.model, device=opts.device)
    if lm.causal and opts.definition == "authors":
        raise ModelError(f"--model {lm.name}: model type {lm.model_type!r} is a causal decoder; --definition authors is Clark et al.'s probe "
                         "on [CLS] + words + [SEP] maps (ROOT read from [CLS]/[SEP] columns and rows): use --definition ours (README: Decoder models)")
    with_emb = opts.embedding_dims > 0
    tr_parts, tr_n, tr_emb, tr_skip = _features(lm, opts.train, opts, opts.limit, with_emb)
    te_parts, te_n, te_emb, te_skip = _features(lm, opts.test, opts, None, with_emb)
    if tr_skip or te_skip:
        info(f"skipped {tr_skip} training and {te_skip} test sentence(s) longer than --max-length {opts.max_length} pieces")
    t_feat = time.perf_counter()
    train, test = stack(tr_parts, tr_n), stack(te_parts, te_n)
    if not len(train.gold) or not len(test.gold):
        raise InputError(f"{opts.train if not len(train.gold) else opts.test}: no word with a HEAD to predict")
    results: dict[str, float] = {"right-branching": float(test.right[test.scored_mask()].mean())}
    single_train = single_feature_uas(train)
    best_f = int(np.argmax(single_train))
    K = lm.n_layers * lm.n_heads
    direction = "dependent -> head" if best_f < K else "head -> dependent"
    best_name = head_name((best_f % K) // lm.n_heads, (best_f % K) % lm.n_heads)
    w = np.zeros(2 * K)
    w[best_f] = 1.0
    from bertsecrets_cli.analysis.probe import Probe

    results[f"best single head ({best_name}, {direction}, chosen on train)"] = uas(Probe(w, np.zeros((2 * K, 0)), np.zeros((2 * K, 0))), test)
    t1 = time.perf_counter()
    attn = train_probe(train, embeddings=False, l2=opts.l2, max_iter=opts.max_iter)
    t_attn = time.perf_counter() - t1
    results["attention-only probe"] = uas(attn, test)
    timings = {"load_and_features_s": t_feat - t0, "train_attention_only_s": t_attn}
    both = None
    if with_emb:
        mu, axes = reduce_embeddings(np.concatenate(tr_emb), opts.embedding_dims)
        red = (lambda embs: np.concatenate([(e - mu) @ axes for e in embs]).astype(np.float32))
        train, test = stack(tr_parts, tr_n, red(tr_emb)), stack(te_parts, te_n, red(te_emb))
        t2 = time.perf_counter()
        both = train_probe(train, embeddings=True, l2=opts.l2, max_iter=opts.max_iter)
        timings["train_attention_words_s"] = time.perf_counter() - t2
        results[f"attention + words probe ({axes.shape[1]} embedding components)"] = uas(both, test)
    config = {k: v for k, v in asdict(opts).items() if k not in ("force", "quiet")}
    job = fingerprint({"model": lm.fingerprint, "train": str(Path(opts.train).expanduser()), "test": str(Path(opts.test).expanduser()),
                       "options": {k: v for k, v in config.items() if k not in ("device", "batch_size")}})
    with StoreWriter(outp, KIND, force=opts.force, locking=opts.locking) as wr:
        wr.set_model(n_layers=lm.n_layers, n_heads=lm.n_heads, **_model_attrs(lm))
        wr.set_provenance(_provenance(lm, {"data_source": str(Path(opts.train).expanduser()), "test_source": str(Path(opts.test).expanduser()),
                                           "n_train_sentences": len(tr_n), "n_test_sentences": len(te_n), "n_train_words": int(len(train.gold)),
                                           "n_test_words": int(len(test.gold)), "max_length": opts.max_length, "l2": opts.l2,
                                           "max_iter": opts.max_iter, "embedding_dims": opts.embedding_dims, "job_fingerprint": job,
                                           "attention_only_iterations": attn.iterations, "definition": opts.definition,
                                           "n_test_scored": int(test.scored_mask().sum()), "scored_words": SCORED[opts.definition]}),
                          provenance_texts({"probe": config}, command))
        L, H = lm.n_layers, lm.n_heads
        wr.put_head_quantity("probe_weight_dep_to_head", attn.w[:K].reshape(L, H), "attention-only probe: weight of the head's attention from the dependent to a candidate head")
        wr.put_head_quantity("probe_weight_head_to_dep", attn.w[K:].reshape(L, H), "attention-only probe: weight of the head's attention from a candidate head to the dependent")
        wr.put_head_quantity("probe_single_uas_dep_to_head", single_train[:K].reshape(L, H), "UAS on the training file of taking the word this head attends to most from the dependent")
        wr.put_head_quantity("probe_single_uas_head_to_dep", single_train[K:].reshape(L, H), "UAS on the training file of taking the word that attends most to the dependent in this head")
        wr.put_json(RESULTS, {"uas": results, "timings": timings})
    from bertsecrets_cli.analysis.definitions import title_note

    n_scored = int(test.scored_mask().sum())
    t = Table(f"unlabeled attachment score on {Path(opts.test).name} ({n_scored} scored words of {len(te_n)} sentences; trained on "
              f"{len(train.gold)} words of {Path(opts.train).name}; {title_note(opts.definition, 'probe')})",
              ["model", "UAS"], name="uas", caption=f"scored words: {SCORED[opts.definition]}" + (causal_caption(opts.test) if lm.causal else ""))
    for k, v in results.items():
        t.add(k, v)
    ts = Table("training time (CPU)", ["step", "seconds"], name="timings")
    for k, v in timings.items():
        ts.add(TIMING_LABELS.get(k, k), v)
    return ProbeResult(outp, len(tr_n), len(te_n), lm.n_layers, lm.n_heads, results, [t, ts], timings)
