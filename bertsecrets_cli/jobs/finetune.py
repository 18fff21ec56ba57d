"""``finetune``: fine-tune an encoder on a GLUE task with transformers' Trainer, evaluate it, keep the record.

Output of a training run is a model folder (save_pretrained: weights, tokenizer, config with the
task's label names) holding ``eval.h5`` (an evaluation store) and ``finetune.json`` (the run's
record; its presence marks a complete folder). Training happens in ``<out>.partial/``, which also
holds Trainer's checkpoints for ``--resume``; it is renamed to ``<out>`` only at the very end, so a
killed run never leaves a folder that looks complete.

``--eval-only`` evaluates a model without training (the paper's Table 1 baselines: a pretrained
encoder with an untrained classification head, ``--init random``) through ``jobs.evaluate``, the
same routine ``ablate`` uses.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from bertsecrets_cli import outputs
from bertsecrets_cli.errors import InputError, Interrupted, ModelError, OutputError
from bertsecrets_cli.render.console import info
from bertsecrets_cli.render.progress import reporter
from bertsecrets_cli.render.tables import Table

RECORD = "finetune.json"  # written last into a finished model folder: our completeness marker
EVAL_STORE = "eval.h5"
JOB_FILE = "job.json"  # in the .partial folder: what the interrupted run was, for --resume
INITS = ("pretrained", "random")


@dataclass(frozen=True)
class Hyper:
    """Training hyperparameters; ``batch_size`` is the total batch over processes and accumulation."""

    lr: float
    epochs: float
    batch_size: int
    max_length: int
    warmup: float  # fraction of optimisation steps (< 1) or a step count (>= 1)
    weight_decay: float
    seed: int
    max_steps: int | None = None
    grad_accum: int = 1
    precision: str = "fp32"


PRESETS: dict[str, Hyper] = {
    # Kovaleva et al. 2019: batch 32, 3 epochs [paper]; lr 5e-5, max length 128, warmup 10%, seed 42 and
    # BertAdam's weight decay 0.01 [their run_classifier.py defaults]
    "paper": Hyper(lr=5e-5, epochs=3, batch_size=32, max_length=128, warmup=0.1, weight_decay=0.01, seed=42),
    # a quick CPU run of the small embedded model on the shipped demo data (about a minute on 2 cores)
    "demo": Hyper(lr=1e-4, epochs=2, batch_size=16, max_length=64, warmup=0.1, weight_decay=0.01, seed=42),
}


@dataclass
class FinetuneOptions:
    model: str | None = None
    task: str | None = None  # None: the task recorded in the model's config, else sst2
    data: str | None = None  # None: the shipped demo data
    eval_data: str | None = None  # None: the --split of --data
    split: str = "dev"
    text_columns: tuple[str, ...] | None = None
    label_column: str | None = None
    id_column: str | None = None
    train_limit: int | None = None
    eval_limit: int | None = None
    sample: bool = False
    preset: str = "paper"
    overrides: dict[str, Any] = field(default_factory=dict)  # Hyper field -> value; None = the preset's
    init: str = "pretrained"
    eval_only: bool = False
    untrained_head: bool = False
    baselines: bool = True
    eval_batch_size: int = 64
    save_steps: int = 500
    logging_steps: int = 10
    device: str = "auto"
    resume: bool = False
    force: bool = False
    quiet: bool = False
    locking: bool | None = None


@dataclass
class FinetuneResult:
    table: Table | None  # None on the non-main processes of a distributed run
    metrics: dict[str, float] = field(default_factory=dict)
    baselines: dict[str, dict[str, float]] = field(default_factory=dict)
    output: Path | None = None  # the model folder (training) or the store (--eval-only)
    eval_store: Path | None = None
    n_train: int = 0
    n_eval: int = 0
    hyper: Hyper | None = None
    train_runtime_s: float = float("nan")
    global_step: int = 0
    is_main: bool = True


# --------------------------------------------------------------------------- options


def overridden(preset: str, overrides: dict[str, Any]) -> list[str]:
    """The hyperparameters given explicitly with a value other than the preset's (Hyper field names, in field order)."""
    base = PRESETS.get(preset)
    if base is None:
        return []
    return [f.name for f in fields(Hyper) if overrides.get(f.name) is not None and overrides[f.name] != getattr(base, f.name)]


def preset_label(preset: str, overrides: dict[str, Any]) -> str:
    """'preset paper' or 'preset paper, with lr and epochs overridden': a label never passes the user's values off as the preset's."""
    names = [n.replace("_", " ") for n in overridden(preset, overrides)]
    if not names:
        return f"preset {preset}"
    listed = names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"
    return f"preset {preset}, with {listed} overridden"


def resolve_hyper(preset: str, overrides: dict[str, Any]) -> Hyper:
    """The preset with every override that is not None applied, validated."""
    if preset not in PRESETS:
        raise InputError(f"--preset {preset}: choose one of {', '.join(PRESETS)}")
    known = {f.name for f in fields(Hyper)}
    unknown = set(overrides) - known
    if unknown:
        raise ValueError(f"unknown hyperparameter(s) {sorted(unknown)}")
    h = replace(PRESETS[preset], **{k: v for k, v in overrides.items() if v is not None})
    checks = [
        (math.isfinite(h.lr) and h.lr > 0, f"--lr {h.lr}: must be a positive finite number"),
        (math.isfinite(h.epochs) and h.epochs > 0, f"--epochs {h.epochs}: must be a positive finite number"),
        (h.batch_size >= 1, f"--batch-size {h.batch_size}: must be at least 1"),
        (2 <= h.max_length <= 4096, f"--max-length {h.max_length}: must be between 2 and 4096"),
        (math.isfinite(h.warmup) and h.warmup >= 0, f"--warmup {h.warmup}: must be a fraction (0-1) or a number of steps"),
        (math.isfinite(h.weight_decay) and h.weight_decay >= 0, f"--weight-decay {h.weight_decay}: must be a finite number, not negative"),
        (h.max_steps is None or h.max_steps >= 1, f"--max-steps {h.max_steps}: must be at least 1"),
        (h.grad_accum >= 1, f"--grad-accum {h.grad_accum}: must be at least 1"),
        (h.seed >= 0, f"--seed {h.seed}: must not be negative"),
    ]
    for ok, msg in checks:
        if not ok:
            raise InputError(msg)
    return h


def _task_name(opts: FinetuneOptions) -> str:
    """--task, else the task a fine-tuned model folder records, else sst2 (as every other command)."""
    if opts.task:
        return opts.task
    from bertsecrets_cli.model.train import recorded_task

    return recorded_task(opts.model) or "sst2"


def _data_options(opts: FinetuneOptions, task: str, data: str | None, split: str, limit: int | None, seed: int) -> Any:
    from bertsecrets_cli.jobs.extract import DataOptions

    return DataOptions(task=task, data=data, split=split, limit=limit, sample=opts.sample, seed=seed,
                       text_columns=opts.text_columns, label_column=opts.label_column, id_column=opts.id_column)


def _eval_source(opts: FinetuneOptions) -> str | None:
    if opts.eval_data is not None:
        return opts.eval_data
    if opts.data is not None and not opts.eval_only and Path(opts.data).expanduser().is_file():
        raise InputError(f"--data {opts.data}: a single file is the training set; give the evaluation set with --eval-data FILE")
    return opts.data


def _check_labels(ds: Any, what: str) -> None:
    missing = sum(1 for e in ds.examples if e.label is None)
    if missing:
        raise InputError(f"{ds.source}: {missing} of {len(ds.examples)} {what} examples have no label; {what} needs labels (a test split?)")


def _majority(task: Any, train_labels: np.ndarray, eval_labels: np.ndarray) -> dict[str, float]:
    from bertsecrets_cli.analysis.metrics import majority_baseline

    ok = ~np.isnan(eval_labels)
    gold = eval_labels[ok] if task.is_regression else eval_labels[ok].astype(np.int64)
    return majority_baseline(task.metrics, train_labels[~np.isnan(train_labels)], gold, task.is_regression)


# --------------------------------------------------------------------------- output folder


def partial_dir(out: Path) -> Path:
    return out.with_name(out.name + ".partial")


def check_output_folder(out: Path, *, force: bool, resume: bool) -> Path:
    """Refuse what must not be overwritten, before any long work; -> the .partial folder to train in."""
    if str(out) == "-":
        raise InputError("-o -: finetune writes a model folder; give a folder name (for example runs/rte)")
    partial = partial_dir(out)
    if out.exists():
        if not out.is_dir():
            raise OutputError(f"{out}: exists and is not a folder")
        looks_ours = (out / RECORD).is_file() or not any(out.iterdir())
        if not force:
            if resume and not partial.exists():
                raise OutputError(f"{out}: exists and is complete; nothing to resume (pass --force to train it again)")
            if resume:
                raise OutputError(f"{out}: exists; the interrupted run in {partial} would replace it: pass --resume --force")
            raise OutputError(f"{out}: exists; pass --force to replace it (it is replaced only when the new model is complete)")
        if force and not looks_ours:
            raise OutputError(f"{out}: exists and is not a bertsecrets finetune folder (no {RECORD}); refusing to replace it even with --force")
    if partial.exists():
        if not partial.is_dir():
            raise OutputError(f"{partial}: exists and is not a folder")
        if not resume and not force:
            raise OutputError(f"{out}: an interrupted run left {partial}; pass --resume to continue it, or --force to start over")
    parent = out.parent if str(out.parent) else Path(".")
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(f"{out}: cannot create folder {parent}: {e.strerror or e}") from e
    if not os.access(parent, os.W_OK):
        raise OutputError(f"{out}: cannot write in folder {parent} (permission denied or read-only)")
    return partial


def _prepare_partial(partial: Path, key: str, *, resume: bool, force: bool) -> None:
    """Create the .partial folder, or check that the one to resume was made by the same job."""
    job = partial / JOB_FILE
    if partial.exists():
        if resume:
            try:
                old = json.loads(job.read_text())
            except (OSError, ValueError):
                old = {}
            if old.get("key") != key:
                raise OutputError(f"{partial}: the interrupted run used other options, model or data; rerun it with the same ones, or use --force to start over")
            return
        if force:
            shutil.rmtree(partial)
    try:
        outputs.private_folder(partial, parents=True)
        outputs.write_text(job, json.dumps({"key": key}), mode="replace")
    except OSError as e:
        raise OutputError(f"{partial}: cannot write: {e.strerror or e}") from e


def _publish(partial: Path, out: Path, *, force: bool = True) -> None:
    """Move the finished folder into place; an old one (--force) is removed only after the swap. Without
    --force, a folder that appeared while this run trained (another run of the same -o) is never replaced."""
    old = None
    if os.path.lexists(out):
        if not force:
            raise outputs.appeared(out)
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        os.replace(out, old)
    outputs.rename_noreplace(partial, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _job_key(lm: Any, opts: FinetuneOptions, task: Any, train_ds: Any, hyper: Hyper) -> str:
    ids = hashlib.sha256("\n".join(e.id for e in train_ds.examples).encode()).hexdigest()
    key = {"model": lm.fingerprint, "model_path": lm.path, "init": opts.init, "task": task.name, "data": train_ds.source,
           "train_ids": ids, "hyper": asdict(hyper)}
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()


# --------------------------------------------------------------------------- table and record


def _row_name(lm: Any, opts: FinetuneOptions, trained: bool) -> str:
    if trained:
        return "fine-tuned" + (" (random init)" if opts.init == "random" else "")
    return "random init, untrained" if opts.init == "random" else "pretrained + untrained head"


def metrics_table(task: Any, split: str, n_eval: int, source: str, rows: list[tuple[str, dict[str, float]]], note: str = "") -> Table:
    """One row per model/baseline, one column per task metric (main metric first)."""
    t = Table(f"{task.name} {split}: {n_eval} examples", ["model", *task.metrics], name="scores")
    for name, m in rows:
        t.add(name, *(float(m.get(k, float("nan"))) for k in task.metrics))
    t.caption = f"main metric: {task.main_metric}; data: {source}" + (f"; {note}" if note else "")
    return t


def _store_examples(examples: list[Any], labels: np.ndarray) -> dict[str, Any]:
    return {"id": [e.id for e in examples], "text_a": [e.text_a for e in examples],
            "text_b": [e.text_b or "" for e in examples], "label": labels}


def _provenance(lm: Any, opts: FinetuneOptions, task: Any, eval_ds: Any, res: Any, extra: dict[str, Any]) -> dict[str, Any]:
    from bertsecrets_cli.jobs.provenance import tool_attrs

    return {**tool_attrs(), "model": lm.name, "model_path": lm.path, "model_revision": lm.revision, "model_fingerprint": lm.fingerprint,
            "task": task.name, "data_source": eval_ds.source, "split": eval_ds.split, "is_demo_data": int(eval_ds.is_demo),
            "selection": {"limit": opts.eval_limit, "sample": opts.sample, "n": len(res.ids)}, "init": opts.init, **extra}


def _model_attrs(lm: Any, task: Any) -> dict[str, Any]:
    names = [str(lm.model.config.id2label.get(i, i)) for i in range(lm.model.config.num_labels)] if not task.is_regression else []
    return {"n_layers": lm.n_layers, "n_heads": lm.n_heads, "model_type": lm.model_type, "name": lm.name,
            "num_labels": int(lm.model.config.num_labels), "label_names": names}


# --------------------------------------------------------------------------- the jobs


def _load(opts: FinetuneOptions, task: Any, *, seed: int, for_training: bool) -> Any:
    """The classifier to train or evaluate; refuses a head that cannot fit the task, before loading weights."""
    from bertsecrets_cli.model.load import load_model
    from bertsecrets_cli.model.device import local_device
    from bertsecrets_cli.model.train import has_classification_head, peek_config, seed_everything

    if opts.init not in INITS:
        raise InputError(f"--init {opts.init}: choose one of {', '.join(INITS)}")
    cfg = peek_config(opts.model)
    head = cfg is not None and has_classification_head(cfg)
    name = opts.model or "embedded"
    if head and opts.init != "random":
        n = int(getattr(cfg, "num_labels", 0))
        saved_task = getattr(cfg, "finetuning_task", None)
        if n != task.num_labels:
            was = f" (fine-tuned for {saved_task})" if saved_task else ""
            raise InputError(f"--model {name}: its classification head predicts {n} label(s){was}; task {task.name} has {task.num_labels}")
        if saved_task and saved_task != task.name:
            info(f"note: --model {name} was fine-tuned for {saved_task}; now used for {task.name}")
    if not for_training and opts.init != "random":
        if not head and not opts.untrained_head:
            archs = ", ".join(getattr(cfg, "architectures", None) or []) or "none recorded"
            raise ModelError(f"--model {name}: has no classification head config (architectures: {archs}); fine-tune it first, "
                             f"or pass --untrained-head to evaluate it with a fresh head (the paper's Table 1 baseline)")
        if head and opts.untrained_head:
            raise InputError(f"--untrained-head: --model {name} already has a trained classification head")
    seed_everything(seed)  # the fresh head (or random init) is drawn from this seed
    keep_head = head and opts.init != "random"
    lm = load_model(opts.model, device=local_device(opts.device), task_head=True,
                    num_labels=None if keep_head and not for_training else task.num_labels,
                    label_names=None if keep_head and not for_training else task.label_names,
                    random_init=opts.init == "random")
    for note in lm.notes:
        info(note)
    return lm


def run_eval_only(opts: FinetuneOptions, out: str | Path | None, *, command: str | None = None) -> FinetuneResult:
    """Evaluate a model as it is (``--eval-only``); optionally write the evaluation store ``out``."""
    from bertsecrets_cli.data.tasks import get_task
    from bertsecrets_cli.jobs.evaluate import evaluate, labels_of
    from bertsecrets_cli.jobs.extract import load_examples
    from bertsecrets_cli.jobs.provenance import provenance_texts
    from bertsecrets_cli.store.evaluation import write_evaluation
    from bertsecrets_cli.store.writer import check_output_path

    if out is not None:
        check_output_path(out, force=opts.force)
    hyper = resolve_hyper(opts.preset, opts.overrides)
    trained_len = _recorded_max_length(opts.model)
    if trained_len is not None and opts.overrides.get("max_length") is None and trained_len != hyper.max_length:
        hyper = replace(hyper, max_length=trained_len)
        info(f"evaluating with max length {trained_len}, as {opts.model} was trained (--max-length overrides)")
    task = get_task(_task_name(opts))
    _, eval_ds = load_examples(_data_options(opts, task.name, _eval_source(opts), opts.split, opts.eval_limit, hyper.seed))
    lm = _load(opts, task, seed=hyper.seed, for_training=False)
    res = evaluate(lm, task, eval_ds.examples, max_length=hyper.max_length, batch_size=opts.eval_batch_size, quiet=opts.quiet)
    baselines: dict[str, dict[str, float]] = {}
    rows: list[tuple[str, dict[str, float]]] = []
    if opts.baselines:
        train_labels, where = _train_labels_for_majority(opts, task, eval_ds)
        baselines["majority"] = _majority(task, train_labels, res.labels)
        rows.append((f"majority class ({where})" if not task.is_regression else f"mean score ({where})", baselines["majority"]))
    untrained = opts.untrained_head or opts.init == "random"
    rows.append((_row_name(lm, opts, trained=False) if untrained else lm.name, res.metrics))
    table = metrics_table(task, eval_ds.split, len(res.ids), eval_ds.source, rows)
    if out is not None:
        write_evaluation(
            out, force=opts.force, model=_model_attrs(lm, task),
            provenance=_provenance(lm, opts, task, eval_ds, res, {"evaluated": "untrained head" if untrained else "as loaded",
                                                               "max_length": hyper.max_length, "seed": hyper.seed}),
            texts=provenance_texts({"finetune": asdict(opts)}, command), examples=_store_examples(eval_ds.examples, labels_of(task, eval_ds.examples)),
            logits=res.logits, predictions=res.predictions, metrics=res.metrics, main_metric=task.main_metric, baselines=baselines, locking=opts.locking,
        )
    return FinetuneResult(table, res.metrics, baselines, Path(out) if out is not None else None, Path(out) if out is not None else None, 0, len(res.ids), hyper)


def _recorded_max_length(model: str | None) -> int | None:
    """The max length a finetune output folder was trained with (from its finetune.json), if it is one."""
    if not model:
        return None
    try:
        record = json.loads((Path(model).expanduser() / RECORD).read_text())
        return int(record["hyperparameters"]["max_length"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _train_labels_for_majority(opts: FinetuneOptions, task: Any, eval_ds: Any) -> tuple[np.ndarray, str]:
    """Training labels for the majority baseline when the train split is at hand (demo or GLUE folder),
    else the evaluation set's own labels (said so in the row name)."""
    from bertsecrets_cli.jobs.evaluate import labels_of
    from bertsecrets_cli.data.sources import load_dataset

    src = opts.data
    if opts.eval_data is None and (src is None or Path(src).expanduser().is_dir()):
        try:
            ds = load_dataset(task, src, "train", text_columns=opts.text_columns, label_column=opts.label_column, id_column=opts.id_column)
            return labels_of(task, ds.examples), "train"
        except InputError:
            pass
    return labels_of(task, eval_ds.examples), "eval set"


def run_finetune(opts: FinetuneOptions, out: str | Path, *, command: str | None = None) -> FinetuneResult:
    """Fine-tune, evaluate against the baselines, and publish the model folder ``out`` atomically."""
    from bertsecrets_cli.data.tasks import get_task
    from bertsecrets_cli.jobs.evaluate import evaluate, labels_of
    from bertsecrets_cli.jobs.extract import load_examples
    from bertsecrets_cli.jobs.provenance import provenance_texts
    from bertsecrets_cli.jobs.signals import graceful_stop
    from bertsecrets_cli.model.train import (TrainConfig, check_device, encode_for_training, folder_fingerprint, last_checkpoint, per_device_batch, rank,
                                             remove_checkpoints, save_model_folder, train)
    from bertsecrets_cli.store.evaluation import write_evaluation

    out = Path(out)
    main = rank() == 0
    partial = check_output_folder(out, force=opts.force, resume=opts.resume) if main else partial_dir(out)
    hyper = resolve_hyper(opts.preset, opts.overrides)
    per_device_batch(hyper.batch_size, hyper.grad_accum)  # refuse an indivisible batch before loading anything
    check_device(opts.device, hyper.precision)
    if opts.eval_batch_size < 1:
        raise InputError(f"--eval-batch-size {opts.eval_batch_size}: must be at least 1")
    task = get_task(_task_name(opts))
    _, train_ds = load_examples(_data_options(opts, task.name, opts.data, "train", opts.train_limit, hyper.seed))
    _check_labels(train_ds, "training")
    _, eval_ds = load_examples(_data_options(opts, task.name, _eval_source(opts), opts.split, opts.eval_limit, hyper.seed))
    train_labels = labels_of(task, train_ds.examples)
    if not task.is_regression:
        absent = [task.label_names[i] for i in range(task.num_labels) if not np.any(train_labels == i)]
        if absent:
            info(f"warning: the training data has no example of class(es) {', '.join(absent)}")
    lm = _load(opts, task, seed=hyper.seed, for_training=True)
    base_name, base_fp = lm.name, lm.fingerprint
    key = _job_key(lm, opts, task, train_ds, hyper)
    if main:
        _prepare_partial(partial, key, resume=opts.resume, force=opts.force)

    baselines: dict[str, dict[str, float]] = {}
    rows: list[tuple[str, dict[str, float]]] = []
    try:  # until the first checkpoint is saved, a failed run leaves nothing behind
        if main:
            baselines["majority"] = _majority(task, train_labels, labels_of(task, eval_ds.examples))
            rows.append(("majority class (train)" if not task.is_regression else "mean score (train)", baselines["majority"]))
            if opts.baselines:
                before = evaluate(lm, task, eval_ds.examples, max_length=hyper.max_length, batch_size=opts.eval_batch_size, quiet=opts.quiet)
                baselines["untrained_head"] = before.metrics
                rows.append((_row_name(lm, opts, trained=False), before.metrics))

        train_set = encode_for_training(lm.tokenizer, lm.token_types, train_ds.examples, hyper.max_length, regression=task.is_regression)
        cfg = TrainConfig(output_dir=partial, batch_size=hyper.batch_size, epochs=hyper.epochs, lr=hyper.lr, warmup=hyper.warmup,
                          weight_decay=hyper.weight_decay, seed=hyper.seed, max_steps=hyper.max_steps, grad_accum=hyper.grad_accum,
                          precision=hyper.precision, save_steps=opts.save_steps, logging_steps=opts.logging_steps, device=opts.device, quiet=opts.quiet)
        if main:
            info(f"fine-tuning {lm.name} on {task.name}: {len(train_ds.examples)} training examples from {train_ds.source}; "
                 f"{preset_label(opts.preset, opts.overrides)}: lr {hyper.lr:g}, batch {hyper.batch_size}, epochs {hyper.epochs:g}"
                 f"{f', max steps {hyper.max_steps}' if hyper.max_steps else ''}, max length {hyper.max_length}, warmup {hyper.warmup:g}, "
                 f"weight decay {hyper.weight_decay:g}, seed {hyper.seed}, init {opts.init}")
        t0 = time.monotonic()
        with graceful_stop() as stop:
            outcome = train(lm, train_set, cfg, stop_flag=stop, resume=opts.resume, progress=reporter(False), note=info)
    except BaseException:
        if main and last_checkpoint(partial) is None:
            shutil.rmtree(partial, ignore_errors=True)  # nothing worth resuming: do not ask for --resume next time
        raise
    if stop.requested:
        ck = last_checkpoint(partial)
        kept = f"checkpoint {ck.name} kept in {partial}" if ck else f"no checkpoint yet in {partial}"
        raise Interrupted(f"{out}: stopped by {stop.signal} at step {outcome.global_step}/{outcome.max_steps}; {kept}; rerun with --resume to continue")
    if not outcome.is_main:
        return FinetuneResult(None, hyper=hyper, n_train=len(train_ds.examples), is_main=False, global_step=outcome.global_step)

    import torch

    lm.device = next(lm.model.parameters()).device
    save_model_folder(lm, partial, task_name=task.name)
    lm.fingerprint = folder_fingerprint(partial)
    lm.name, lm.path = str(out), str(out)
    res = evaluate(lm, task, eval_ds.examples, max_length=hyper.max_length, batch_size=opts.eval_batch_size, quiet=opts.quiet)
    rows.append((_row_name(lm, opts, trained=True), res.metrics))
    wall = time.monotonic() - t0
    extra = {"base_model": base_name, "base_model_fingerprint": base_fp, "preset": opts.preset,
             "preset_overridden": ",".join(overridden(opts.preset, opts.overrides)), "preset_label": preset_label(opts.preset, opts.overrides),
             "hyperparameters": asdict(hyper),
             "trainer": {"save_steps": opts.save_steps, "logging_steps": opts.logging_steps, "eval_batch_size": opts.eval_batch_size},
             "train_data_source": train_ds.source, "n_train": len(train_ds.examples), "train_ids_sha256": hashlib.sha256("\n".join(e.id for e in train_ds.examples).encode()).hexdigest(),
             "world_size": outcome.world_size, "per_device_batch": outcome.per_device_batch, "global_step": outcome.global_step,
             "train_runtime_s": outcome.runtime_s, "train_loss": outcome.train_loss, "resumed_from": outcome.resumed_from or "",
             "max_length": hyper.max_length, "device": str(lm.device), "torch_threads": torch.get_num_threads()}
    texts = provenance_texts({"finetune": asdict(opts)}, command)
    write_evaluation(partial / EVAL_STORE, force=True, model=_model_attrs(lm, task), provenance=_provenance(lm, opts, task, eval_ds, res, extra),
                     texts=texts, examples=_store_examples(eval_ds.examples, res.labels), logits=res.logits, predictions=res.predictions,
                     metrics=res.metrics, main_metric=task.main_metric, baselines=baselines, log_history=outcome.log_history, locking=opts.locking)
    record = {"task": task.name, "metrics": res.metrics, "baselines": baselines, "split": eval_ds.split, "n_eval": len(res.ids),
              "eval_data_source": eval_ds.source, "command": texts["command"], "job_key": key, **extra}
    remove_checkpoints(partial)
    (partial / JOB_FILE).unlink(missing_ok=True)
    outputs.write_text(partial / RECORD, json.dumps(record, indent=1, sort_keys=True, default=str) + "\n", mode="replace")
    _publish(partial, out, force=opts.force)
    table = metrics_table(task, eval_ds.split, len(res.ids), eval_ds.source, rows,
                          note=f"fine-tuned with {preset_label(opts.preset, opts.overrides)}"
                          + ("; a constant prediction has no correlation (nan)" if task.is_regression else ""))
    info(f"evaluated on {len(res.ids)} {eval_ds.split} examples from {eval_ds.source}")
    info(f"trained {outcome.global_step} steps in {outcome.runtime_s:.0f}s; wrote the model folder {out} (with {EVAL_STORE} and {RECORD}) {wall:.0f}s after loading")
    return FinetuneResult(table, res.metrics, baselines, out, out / EVAL_STORE, len(train_ds.examples), len(res.ids), hyper,
                          outcome.runtime_s, outcome.global_step, True)
