"""``classify train``: the paper's CNN trained on annotated (and/or synthetic) maps, saved with its provenance."""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bertsecrets_cli.analysis import patterns as P
from bertsecrets_cli.errors import InputError
from bertsecrets_cli.heads import head_name
from bertsecrets_cli.jobs.classifiers import file_sha256
from bertsecrets_cli.jobs.labels import SKIP, LabelRow, read_labels
from bertsecrets_cli.render.console import info
from bertsecrets_cli.render.tables import Table


@dataclass
class LabelledMaps:
    maps: list[np.ndarray] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)
    special: list[np.ndarray] = field(default_factory=list)
    type_ids: list[np.ndarray] = field(default_factory=list)
    windows: list[int] = field(default_factory=list)  # the map's layer window in its store (-1: global)
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
        out.sources.append({"file": str(tsv), "sha256": file_sha256(Path(tsv)), "rows": len(rows)})
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
            windows = st.attention_windows()
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
                out.windows.append(int(windows[r.layer]))
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
    from bertsecrets_cli.model.cnn import ARCHITECTURE, INPUTS, fill_out_of_window, train_cnn
    from bertsecrets_cli.analysis.synthetic import DEFAULT_NOISE, generate
    from bertsecrets_cli.jobs.provenance import command_line
    from bertsecrets_cli.model.device import device_name
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
    device = device_name(opts.device)
    data = load_labelled_maps(opts.labels, locking=opts.locking) if opts.labels else LabelledMaps()
    n_annotated = len(data.maps)
    if opts.synthetic > 0:
        s = generate(opts.synthetic, noise=noise, seed=opts.seed)
        data.maps += s.maps
        data.labels += [int(x) for x in s.labels]
        data.special += s.special
        data.type_ids += s.type_ids
        data.windows += [-1] * len(s.maps)
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
        # a local layer's map as classify reads it: out-of-window keys filled as masked (model.cnn.fill_out_of_window)
        cnn_maps = [fill_out_of_window(m, w) for m, w in zip(data.maps, data.windows)]
        res = train_cnn(cnn_maps, labels, epochs=opts.epochs, batch_size=opts.batch_size, lr=opts.lr, val_fraction=opts.val_fraction,
                        seed=opts.seed, device=device, patience=opts.patience, input=opts.input, on_epoch=lambda e, r: advance(1))
    val = res.val_idx
    rules_pred = np.array([int(P.classify_maps(data.maps[i][None], data.special[i], data.type_ids[i], windows=[data.windows[i]])[0][0]) for i in val])
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
    from bertsecrets_cli import outputs

    with outputs.writing(out_p) as fh:  # exclusive temporary; never replaces a file that appeared meanwhile unless --force
        torch.save(payload, fh)
    return TrainResult(out_p, len(res.train_idx), len(val), res.scores, rules_scores, res.best_epoch, res.epochs_run,
                       train_tables(res.scores, rules_scores, len(res.train_idx), len(val), res.best_epoch, res.epochs_run, out_p, source))


def train_tables(sc: dict[str, Any], rules: dict[str, Any], n_train: int, n_val: int, best_epoch: int, epochs_run: int, path: Path, source: str) -> list[Table]:
    t = Table(f"validation scores per class ({n_val} {source} maps)", ["class", "precision", "recall", "F1", "support", f"{P.RULES_NAME} F1"], name="scores")
    for c, name in enumerate(P.CLASSES):
        if sc["support"][c] or sc["confusion"][:, c].sum():
            t.add(name, float(sc["precision"][c]), float(sc["recall"][c]), float(sc["f1"][c]), int(sc["support"][c]), float(rules["f1"][c]))
    t.add("macro", None, None, sc["macro_f1"], int(sc["support"].sum()), rules["macro_f1"])
    m = Table("validation confusion matrix (rows: annotated, columns: predicted)", ["annotated", *P.LETTERS], name="confusion",
              caption="V vertical, D diagonal, M vertical+diagonal, B block, H heterogeneous")
    for c, name in enumerate(P.CLASSES):
        m.add(name, *(int(x) for x in sc["confusion"][c]))
    s = Table("training summary", ["what", "value"], name="summary")
    s.add("classifier file", str(path))
    s.add("maps", f"{n_train} train, {n_val} validation (stratified)")
    s.add("kept epoch", f"{best_epoch} of {epochs_run} (best validation accuracy)")
    s.add("validation accuracy", f"{sc['accuracy']:.3f} ({P.RULES_NAME} on the same maps: {rules['accuracy']:.3f})")
    s.add("validation macro-F1", f"{sc['macro_f1']:.3f} ({P.RULES_NAME}: {rules['macro_f1']:.3f})")
    return [t, m, s]
