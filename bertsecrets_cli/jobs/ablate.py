"""``ablate``: disable heads and layers of a fine-tuned classifier and measure the task.

Variants (each a set of disabled heads) are planned in a fixed order: every single head (L1H1,
L1H2, ...), every single layer, then the explicit ``--heads`` / ``--layers`` sets. ``--shard i/n``
evaluates one contiguous slice of that list; :func:`combine_ablation` joins the shard stores.
Deltas are ``disabled - baseline`` in the task's metric units with paired bootstrap 95% intervals.
An interrupted sweep keeps its finished batches (or variants) in ``.OUT.ablate-resume.npz`` next to the
output, saved on SIGTERM/SIGINT and every minute; ``--resume`` continues from there.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from bertsecrets_cli.data.tasks import get_task
from bertsecrets_cli.errors import InputError, Interrupted, ModelError, OutputError, StoreError
from bertsecrets_cli.jobs.extract import DataOptions, check_common, load_examples
from bertsecrets_cli.render.console import info
from bertsecrets_cli.render.progress import reporter
from bertsecrets_cli.render.tables import Table

MODES = ("uniform", "zero", "mean")
ENGINES = ("auto", "fast", "naive")
MAX_STORED_PREDICTIONS = 20_000_000  # variants x examples kept per store; beyond that only metrics
G = "ablation"


@dataclass
class AblateOptions:
    model: str | None = None
    data: DataOptions = field(default_factory=DataOptions)
    mode: str = "uniform"
    heads: tuple[str, ...] = ()  # each: one set of heads disabled together, "L7H6,L1H2"
    layers: tuple[str, ...] = ()  # each: one set of layers disabled together, "1,2" or "L1,L2"
    sweep: bool | None = None  # every single head and layer; None: when nothing else is asked
    greedy: bool = False
    greedy_steps: int | None = None
    importance: bool = False
    bootstrap: int = 1000
    bootstrap_seed: int = 0
    shard: str | None = None  # "i/n" (0-based) or "auto" (RANK/WORLD_SIZE, Slurm array)
    engine: str = "auto"
    max_length: int = 128
    batch_size: int = 32
    device: str = "auto"
    top: int = 10
    force: bool = False
    quiet: bool = False
    resume: bool = False  # continue an interrupted sweep from its checkpoint
    locking: bool | None = None  # False: --no-locking (NFS/Lustre)
    checkpoint: bool = True  # keep a checkpoint while sweeping (off when the output is a stream)
    metric: str = "task"  # task: the classifier's task score; loss: a causal LM's next-token loss (jobs.ablate_loss)


CHECKPOINT_EVERY_S = 60.0  # besides on SIGTERM/SIGINT: what a SIGKILL can cost at most


@dataclass
class Variant:
    name: str  # "L7H6", "L3", "L7H6+L1H2", "L1+L2"
    kind: str  # head | layer | heads | layers
    heads: list[tuple[int, int]]  # 0-based (layer, head)


@dataclass
class GreedyRecord:
    heads: list[str]  # disabled in this order
    score: np.ndarray  # [S] main metric after each step
    gain: np.ndarray  # [S] over the previous step
    delta: np.ndarray  # [S] over the baseline
    ci_low: np.ndarray
    ci_high: np.ndarray
    stopped: str


@dataclass
class AblationResult:
    """Everything an ablation store holds; what :func:`write_ablation` writes and :func:`read_ablation` reads."""

    n_layers: int
    n_heads: int
    mode: str
    task: str
    metric_names: list[str]
    ids: list[str]
    labels: np.ndarray  # [N]
    base_metrics: np.ndarray  # [M]
    base_logits: np.ndarray  # [N, C]
    names: list[str]
    kinds: list[str]
    index: np.ndarray  # [V] position of each variant in the full plan
    n_variants_total: int
    masks: np.ndarray  # [V, L, H] bool
    metrics: np.ndarray  # [V, M]
    delta: np.ndarray  # [V, M]
    ci_low: np.ndarray  # [V, M]
    ci_high: np.ndarray  # [V, M]
    predictions: np.ndarray | None  # [V, N]
    bootstrap: int
    bootstrap_seed: int
    engine: str
    model: dict[str, Any]  # name, path, fingerprint, model_type, label_names
    provenance: dict[str, Any]
    texts: dict[str, str] = field(default_factory=dict)
    importance: np.ndarray | None = None  # [L, H] normalised per layer
    importance_raw: np.ndarray | None = None
    greedy: GreedyRecord | None = None
    shard: tuple[int, int] | None = None

    @property
    def main_metric(self) -> str:
        return self.metric_names[0]


# ------------------------------------------------------------------------------------------
# planning


def resolve_shard(spec: str | None, env: Mapping[str, str] | None = None) -> tuple[int, int] | None:
    """``--shard i/n`` (0-based) or ``auto`` (torchrun's RANK/WORLD_SIZE, else a Slurm array's task offset).

    Unlike extract, the environment is read only with ``auto``: a sweep is split on purpose.
    """
    from bertsecrets_cli.jobs.shard import resolve_shard as resolve

    if not spec:
        return None
    s = resolve(spec, env)
    return None if s is None else (s.index, s.count)


def shard_range(total: int, shard: tuple[int, int] | None) -> tuple[int, int]:
    """Contiguous [start, end) of ``total`` variants for shard (i, n); sizes differ by at most one."""
    if shard is None:
        return 0, total
    i, n = shard
    return i * total // n, (i + 1) * total // n


def _check_syntax(opts: AblateOptions) -> None:
    from bertsecrets_cli.heads import parse_heads, parse_layer

    for s in opts.heads:
        parse_heads(s)
    for s in opts.layers:
        parts = [p for p in s.split(",") if p.strip()]
        if not parts:
            raise InputError(f"--layers {s!r}: name at least one layer, e.g. --layers L1 or --layers 1,2")
        for p in parts:
            parse_layer(p)


def plan_variants(opts: AblateOptions, n_layers: int, n_heads: int) -> list[Variant]:
    """The full, ordered variant list (before sharding); head names are checked against the model."""
    from bertsecrets_cli.heads import head_name, layer_name, parse_heads, parse_layer

    sweep = opts.sweep if opts.sweep is not None else not (opts.heads or opts.layers)
    out: list[Variant] = []
    if sweep or opts.greedy:
        out += [Variant(head_name(l, h), "head", [(l, h)]) for l in range(n_layers) for h in range(n_heads)]
    if sweep:
        out += [Variant(layer_name(l), "layer", [(l, h) for h in range(n_heads)]) for l in range(n_layers)]
    for s in opts.heads:
        hs = parse_heads(s, n_layers, n_heads)
        out.append(Variant("+".join(head_name(*x) for x in hs), "head" if len(hs) == 1 else "heads", hs))
    for s in opts.layers:
        ls: list[int] = []
        for p in s.split(","):
            if p.strip() and (l := parse_layer(p, n_layers)) not in ls:
                ls.append(l)
        out.append(Variant("+".join(layer_name(l) for l in ls), "layer" if len(ls) == 1 else "layers", [(l, h) for l in ls for h in range(n_heads)]))
    seen: set[str] = set()
    unique = []
    for v in out:  # a set asked for twice (or also in the sweep) is evaluated once
        if v.name not in seen:
            seen.add(v.name)
            unique.append(v)
    return unique


def modes_of(heads: list[tuple[int, int]], mode: str) -> dict[int, dict[int, str]]:
    out: dict[int, dict[int, str]] = {}
    for l, h in heads:
        out.setdefault(l, {})[h] = mode
    return out


# ------------------------------------------------------------------------------------------
# running


def _metric_fn(name: str) -> Any:
    from bertsecrets_cli.analysis.metrics import compute_metrics

    return lambda p, g: compute_metrics((name,), p, g)[name]


class _Scorer:
    """Predictions, metrics and bootstrap deltas over the labelled examples, all with one resample set."""

    lower_better = False  # a task score: higher is better

    def __init__(self, task: Any, labels: np.ndarray, n_resamples: int, seed: int) -> None:
        from bertsecrets_cli.analysis.ablation import bootstrap_indices

        self.task = task
        self.labels = labels
        self.ok = ~np.isnan(labels)
        if not self.ok.any():
            raise InputError("the evaluation data has no labels (a GLUE test split?); use the dev split")
        gold = labels[self.ok]
        self.gold = gold if task.is_regression else gold.astype(np.int64)
        self.idx = bootstrap_indices(int(self.ok.sum()), n_resamples, seed) if n_resamples > 0 else None

    def score(self, logits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        from bertsecrets_cli.jobs.evaluate import score

        pred, metrics = score(self.task, logits, self.labels)
        return pred, np.asarray([metrics[m] for m in self.task.metrics], dtype=np.float64)

    def deltas(self, base_pred: np.ndarray, preds: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """[V, M] delta, ci_low, ci_high for every metric of the task."""
        from bertsecrets_cli.analysis.ablation import paired_bootstrap

        V, M = len(preds), len(self.task.metrics)
        d, lo, hi = np.zeros((V, M)), np.zeros((V, M)), np.zeros((V, M))
        if V == 0:
            return d, lo, hi
        for k, name in enumerate(self.task.metrics):
            r = paired_bootstrap(name, _metric_fn(name), base_pred[self.ok], np.asarray(preds)[:, self.ok], self.gold, self.idx)
            d[:, k], lo[:, k], hi[:, k] = r.delta, r.low, r.high
        return d, lo, hi


def _check_classifier(config: Any, task: Any, spec: str | None) -> None:
    """Ablation measures a task score: the model must carry a trained head of the task's size."""
    from bertsecrets_cli.model.train import has_classification_head

    name = spec or "embedded"
    if not has_classification_head(config):
        archs = ", ".join(getattr(config, "architectures", None) or []) or "none recorded"
        raise ModelError(f"--model {name}: has no trained classification head (architectures: {archs}); ablation measures a task score",
                         hint="fine-tune it first: bertsecrets finetune --task TASK -o DIR")
    if int(config.num_labels) != task.num_labels:
        raise InputError(f"--model {name}: its classification head predicts {config.num_labels} label(s); task {task.name} has {task.num_labels}")


def run_ablate(opts: AblateOptions, out: str | Path, *, command: str | None = None) -> AblationResult:
    """Evaluate the baseline and every planned variant, and write the ablation store ``out``."""
    import torch

    from bertsecrets_cli.jobs.evaluate import batches_for, labels_of
    from bertsecrets_cli.jobs.provenance import provenance_texts, tool_attrs
    from bertsecrets_cli.jobs.signals import graceful_stop
    from bertsecrets_cli.model.attention import ATTN_IMPLEMENTATION
    from bertsecrets_cli.model.load import load_model
    from bertsecrets_cli.model.sweep import classification_loss, collect_mean_outputs, sweep_logits
    from bertsecrets_cli.model.train import peek_config, recorded_task
    from bertsecrets_cli.store.writer import check_output_path

    check_common(opts.max_length, opts.batch_size)
    if opts.metric != "task":  # "loss" is jobs.ablate_loss.run_loss_ablation
        raise InputError(f"--metric {opts.metric}: choose task or loss")
    if opts.mode not in MODES:
        raise InputError(f"--mode {opts.mode}: choose one of {', '.join(MODES)}")
    if opts.engine not in ENGINES:
        raise InputError(f"--engine {opts.engine}: choose one of {', '.join(ENGINES)}")
    if opts.bootstrap < 0:
        raise InputError(f"--bootstrap {opts.bootstrap}: must be 0 (no intervals) or more resamples")
    if opts.greedy_steps is not None and opts.greedy_steps < 1:
        raise InputError(f"--greedy-steps {opts.greedy_steps}: must be at least 1")
    shard = resolve_shard(opts.shard)
    if shard is not None and opts.greedy:
        raise InputError("--greedy is a sequential search and cannot be split with --shard; run it in one job")
    _check_syntax(opts)
    check_output_path(out, force=opts.force)
    refuse_pending(opts, out)

    saved = recorded_task(opts.model)
    if not opts.data.task:  # default: the task the fine-tuned model was trained for
        opts = replace(opts, data=replace(opts.data, task=saved or "sst2"))
    elif saved and get_task(opts.data.task).name != saved:
        info(f"note: --model {opts.model} was fine-tuned for {saved}; now evaluated on {get_task(opts.data.task).name}")
    task, ds = load_examples(opts.data)
    cfg = peek_config(opts.model)
    if cfg is not None:  # refuse a bare encoder before loading its weights
        _check_classifier(cfg, task, opts.model)
    lm = load_model(opts.model, device=opts.device, task_head=True)
    for note in lm.notes:
        info(note)
    _check_classifier(lm.model.config, task, opts.model)
    L, H = lm.n_layers, lm.n_heads
    plan = plan_variants(opts, L, H)
    if not plan:
        info("nothing to disable: only the baseline is evaluated (give --heads, --layers or --greedy, or drop --no-sweep)")
    start, end = shard_range(len(plan), shard)
    mine = plan[start:end]
    if shard is not None:
        info(f"shard {shard[0]}/{shard[1]}: variants {start}..{end - 1} of {len(plan)}")
    examples = ds.examples
    n = len(examples)
    labels = labels_of(task, examples)
    scorer = _Scorer(task, labels, opts.bootstrap, opts.bootstrap_seed)
    batches = batches_for(lm, examples, opts.max_length, opts.batch_size)
    means = None
    if opts.mode == "mean":
        info(f"mode mean: averaging every head's output over the {n} evaluation examples first")
        means = collect_mean_outputs(lm, batches, progress=reporter(opts.quiet))

    ckpt, state = open_checkpoint(opts, out, lm, ds, [e.id for e in examples], shard, len(mine))
    try:
        with graceful_stop() as stop:
            res = sweep_logits(lm, batches, n, [modes_of(v.heads, opts.mode) for v in mine], mean_outputs=means, engine=opts.engine,
                               progress=reporter(opts.quiet), desc=f"ablate {len(mine)} variants", stop=stop, state=state, on_unit=ckpt.progress)
            if res.note:
                info(res.note)
            result_parts = _after_sweep(opts, lm, batches, n, mine, res, scorer, classification_loss(labels, task.is_regression), means, shard, stop)
    except Interrupted as e:
        raise Interrupted(f"{out}: {e}; {ckpt.save_latest()}") from None
    base_pred, base_metrics, preds_arr, metrics, delta, lo, hi, greedy, importance, raw = result_parts


    masks = np.zeros((len(mine), L, H), dtype=bool)
    for j, v in enumerate(mine):
        for l, h in v.heads:
            masks[j, l, h] = True
    keep_preds = len(mine) * n <= MAX_STORED_PREDICTIONS
    provenance = {
        **tool_attrs(),
        "model": lm.name, "model_path": lm.path, "model_revision": lm.revision, "model_fingerprint": lm.fingerprint,
        "tokenizer": lm.path, "task": task.name, "data_source": ds.source, "split": ds.split, "is_demo_data": int(ds.is_demo),
        "selection": {"limit": opts.data.limit, "sample": opts.data.sample, "seed": opts.data.seed, "n": n},
        "attn_implementation": ATTN_IMPLEMENTATION, "max_length": opts.max_length, "device": str(lm.device),
        "torch_threads": torch.get_num_threads(),
    }
    result = AblationResult(
        n_layers=L, n_heads=H, mode=opts.mode, task=task.name, metric_names=list(task.metrics), ids=[e.id for e in examples],
        labels=labels, base_metrics=base_metrics, base_logits=res.base, names=[v.name for v in mine], kinds=[v.kind for v in mine],
        index=np.arange(start, end, dtype=np.int64), n_variants_total=len(plan), masks=masks,
        metrics=np.asarray(metrics).reshape(len(mine), len(task.metrics)), delta=delta, ci_low=lo, ci_high=hi,
        predictions=preds_arr if keep_preds else None, bootstrap=opts.bootstrap, bootstrap_seed=opts.bootstrap_seed,
        engine=res.engine,
        model={"model_type": lm.model_type, "name": lm.name, "path": lm.path, "fingerprint": lm.fingerprint, "label_names": list(task.label_names)},
        provenance=provenance, texts=provenance_texts({"ablate": asdict(opts)}, command),
        importance=importance, importance_raw=raw, greedy=greedy, shard=shard,
    )
    return write_result(result, opts, out, ckpt)


def _after_sweep(opts: AblateOptions, lm: Any, batches: list, n: int, mine: list[Variant], res: Any, scorer: Any, grad_loss: Any,
                 means: Any, shard: tuple[int, int] | None, stop: Any, evaluate: Any = None) -> tuple:
    """Metrics and intervals of the swept variants, then the greedy search and the importance scores if asked.

    ``scorer``: :class:`_Scorer` (the task) or ``jobs.ablate_loss.LossScorer``; ``grad_loss``: the batch loss
    whose gradient ranks the heads (``model.sweep.BatchLoss``); ``evaluate``: as ``sweep_logits``'s.
    """
    from bertsecrets_cli.analysis.ablation import normalise_importance
    from bertsecrets_cli.model.sweep import head_gradients

    base_pred, base_metrics = scorer.score(res.base)
    preds, metrics = [], []
    for j in range(len(mine)):
        p, m = scorer.score(res.variants[j])
        preds.append(p)
        metrics.append(m)
    preds_arr = np.asarray(preds) if preds else np.zeros((0, n))
    delta, lo, hi = scorer.deltas(base_pred, preds_arr)
    greedy = None
    if opts.greedy:
        greedy = _greedy(lm, batches, n, mine, metrics, preds, base_metrics[0], opts, means, scorer, base_pred, stop, evaluate)
    importance = raw = None
    if opts.importance:
        if shard is None or shard[0] == 0:
            raw = head_gradients(lm, batches, grad_loss, progress=reporter(opts.quiet))
            importance = normalise_importance(raw)
        else:
            info("--importance: computed by shard 0 only")
    return base_pred, base_metrics, preds_arr, metrics, delta, lo, hi, greedy, importance, raw


def write_result(result: AblationResult, opts: AblateOptions, out: str | Path, ckpt: Any) -> AblationResult:
    """Write the store, then drop the checkpoint; a stop while writing keeps the whole sweep for --resume."""
    try:
        write_ablation(result, out, force=opts.force, locking=opts.locking)
    except Interrupted:  # stopped while writing the store: the whole sweep is kept, --resume only writes it again
        raise Interrupted(f"{out}: stopped while the store was written; {ckpt.save_latest()}") from None
    ckpt.remove()
    return result


def refuse_pending(opts: AblateOptions, out: str | Path) -> None:
    """An interrupted run's checkpoint next to ``out`` is neither mixed in nor thrown away without --resume/--force."""
    pending = _Checkpoint(out, "").path
    if opts.checkpoint and pending.exists() and not (opts.resume or opts.force):
        raise OutputError(f"{pending}: an interrupted ablate run of {out} is kept there; add --resume to continue it, or --force to start over")


def open_checkpoint(opts: AblateOptions, out: str | Path, lm: Any, ds: Any, ids: list[str], shard: tuple[int, int] | None, n_variants: int) -> tuple[Any, Any]:
    """This job's checkpoint (keyed by model, data, examples, shard and options) and, with --resume, its saved progress."""
    from bertsecrets_cli.jobs.shard import fingerprint

    ckpt = _Checkpoint(out, fingerprint({"model": lm.fingerprint, "data": ds.source, "split": ds.split, "ids": ids,
                                         "shard": shard, "options": {k: v for k, v in asdict(opts).items()
                                                                     if k not in ("quiet", "force", "resume", "checkpoint", "top", "device", "shard")}}),
                       enabled=opts.checkpoint)
    state = ckpt.load(n_variants, len(ids)) if opts.resume else None
    if opts.resume and state is None:
        info("--resume: no interrupted run to continue; starting from the beginning")
    elif state is not None:
        info(f"resuming: {state.done} of {state.units} {state.unit} already evaluated")
    return ckpt, state


class _Checkpoint:
    """The sweep's progress in ``.OUT.ablate-resume.npz``: saved now and then, and on a graceful stop."""

    def __init__(self, out: str | Path, key: str, *, enabled: bool = True) -> None:
        out = Path(out)
        self.path = out.with_name(f".{out.name}.ablate-resume.npz")
        self.key, self.enabled = key, enabled
        self.latest: Any = None
        self._saved_at = time.monotonic()

    def load(self, n_variants: int, n_examples: int) -> Any:
        """The saved progress of this very job, or None when there is none."""
        from bertsecrets_cli.model.sweep import SweepState

        if not self.enabled or not self.path.exists():
            return None
        try:
            with np.load(self.path, allow_pickle=False) as z:
                key, st = str(z["key"]), SweepState(str(z["engine"]), int(z["units"]), int(z["done"]), z["base"], z["variants"])
        except (OSError, ValueError, KeyError, EOFError) as e:
            raise StoreError(f"{self.path}: the checkpoint of the interrupted run cannot be read ({e}); rerun without --resume and with --force") from None
        if key != self.key:
            raise InputError(f"{self.path}: the interrupted run used another model, data or options; rerun it with the same ones, "
                             "or start over with --force (without --resume)")
        if st.variants.shape[:2] != (n_variants, n_examples) or not 0 <= st.done <= st.units:
            raise StoreError(f"{self.path}: does not match this job ({st.variants.shape[0]} variants x {st.variants.shape[1]} examples); start over with --force")
        return st

    def progress(self, state: Any) -> None:
        self.latest = state
        if time.monotonic() - self._saved_at >= CHECKPOINT_EVERY_S:
            self.save(state)

    def save(self, state: Any) -> None:
        if not self.enabled:
            return
        from bertsecrets_cli import outputs

        try:
            with outputs.writing(self.path, mode="replace") as fh:
                np.savez(fh, key=np.array(self.key), engine=np.array(state.engine), units=np.array(state.units), done=np.array(state.done),
                         base=state.base, variants=state.variants)
        except (OSError, OutputError) as e:
            info(f"warning: could not save the ablation checkpoint {self.path} ({e})")
            return
        self._saved_at = time.monotonic()

    def save_latest(self) -> str:
        """Save the last progress (on a stop); a phrase for the error line."""
        st = self.latest
        if st is None or not self.enabled:
            return "nothing was kept: rerun the command"
        self.save(st)
        return f"{st.done} of {st.units} {st.unit} of the sweep are kept in {self.path.name}: rerun with --resume to finish"

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)


def _greedy(lm: Any, batches: list, n: int, mine: list[Variant], metrics: list[np.ndarray], preds: list[np.ndarray], base_score: float,
            opts: AblateOptions, means: Any, scorer: Any, base_pred: np.ndarray, stop: Any, evaluate: Any = None) -> GreedyRecord:
    """Keep disabling the head whose removal helps most (a loss: lowers it most), until none helps (or --greedy-steps)."""
    from bertsecrets_cli.analysis.ablation import GreedyPath
    from bertsecrets_cli.heads import head_name
    from bertsecrets_cli.model.sweep import sweep_logits

    L, H = lm.n_layers, lm.n_heads
    path = GreedyPath(start=float(base_score), lower_better=scorer.lower_better)
    # step 1 is the single-head sweep, already evaluated
    known = {v.heads[0]: (float(m[0]), p) for v, m, p in zip(mine, metrics, preds) if v.kind == "head"}
    step_preds: list[np.ndarray] = []
    all_heads = [(l, h) for l in range(L) for h in range(H)]
    while True:
        cand = [x for x in all_heads if x not in path.disabled]
        if path.steps or not all(x in known for x in cand):
            res = sweep_logits(lm, batches, n, [modes_of([x], opts.mode) for x in cand], base=modes_of(path.disabled, opts.mode),
                               mean_outputs=means, engine=opts.engine, progress=reporter(opts.quiet), desc=f"greedy step {len(path.steps) + 1}", stop=stop,
                               evaluate=evaluate)
            known = {}
            for j, x in enumerate(cand):
                p, m = scorer.score(res.variants[j])
                known[x] = (float(m[0]), p)
        pick = path.choose(cand, np.asarray([known[x][0] for x in cand]))
        if pick is None:
            break
        step_preds.append(known[pick][1])
        change = -path.steps[-1].gain if path.lower_better else path.steps[-1].gain  # the metric's own change
        info(f"greedy step {len(path.steps)}: disable {head_name(*pick)} -> {path.score:.4f} ({change:+.4f})")
        if opts.greedy_steps is not None and len(path.steps) >= opts.greedy_steps:
            path.stopped = f"reached --greedy-steps {opts.greedy_steps}"
            break
    S = len(path.steps)
    if S:
        d, lo, hi = scorer.deltas(base_pred, np.asarray(step_preds))
        d, lo, hi = d[:, 0], lo[:, 0], hi[:, 0]
    else:
        d = lo = hi = np.zeros(0)
    return GreedyRecord([head_name(*s.head) for s in path.steps], np.asarray([s.score for s in path.steps]),
                        np.asarray([s.gain for s in path.steps]), d, lo, hi, path.stopped)


# ------------------------------------------------------------------------------------------
# the store


def _descriptions(r: AblationResult) -> dict[str, str]:
    ci = f"95% paired bootstrap interval of ablation_delta ({r.bootstrap} resamples, seed {r.bootstrap_seed})"
    return {
        "ablation_delta": f"change of {r.main_metric} when the head alone is disabled ({r.mode} mode): disabled - baseline",
        "ablation_score": f"{r.main_metric} with the head alone disabled ({r.mode} mode)",
        "ablation_ci_low": f"lower end of the {ci}",
        "ablation_ci_high": f"upper end of the {ci}",
        "importance": "gradient head importance (Michel et al. 2019): mean |d loss / d head gate|, normalised per layer (L2)",
    }


def write_ablation(r: AblationResult, out: str | Path, *, force: bool = False, locking: bool | None = None) -> Path:
    """Write ``r`` as an ablation store: per-variant arrays under /ablation, per-head grids under /heads."""
    from bertsecrets_cli.analysis.ablation import head_grid, layer_vector
    from bertsecrets_cli.store.writer import StoreWriter

    main = 0
    desc = _descriptions(r)
    with StoreWriter(out, "ablation", force=force, locking=locking) as w:
        w.set_model(n_layers=r.n_layers, n_heads=r.n_heads, **{k: v for k, v in r.model.items() if k != "label_names"},
                    label_names=list(r.model.get("label_names", [])) or "")
        w.set_provenance(r.provenance, r.texts)
        w.put_strings("examples/id", r.ids)
        w.put_array("examples/label", np.asarray(r.labels, dtype=np.float64))
        f = w.h5
        g = f.require_group(G)
        for k, v in {"mode": r.mode, "task": r.task, "main_metric": r.main_metric, "bootstrap": r.bootstrap,
                     "bootstrap_seed": r.bootstrap_seed, "engine": r.engine, "n_variants_total": r.n_variants_total,
                     "shard": f"{r.shard[0]}/{r.shard[1]}" if r.shard else ""}.items():
            g.attrs[k] = v
        w.put_strings(f"{G}/metric_names", r.metric_names)
        w.put_array(f"{G}/baseline/metrics", r.base_metrics)
        w.put_array(f"{G}/baseline/logits", np.asarray(r.base_logits, dtype=np.float32))
        w.put_strings(f"{G}/variants/name", r.names)
        w.put_strings(f"{G}/variants/kind", r.kinds)
        w.put_array(f"{G}/variants/index", r.index)
        w.put_array(f"{G}/variants/disabled", r.masks.astype(np.int8), attrs={"layout": "[variant, layer, head], 1 = disabled"})
        for name in ("metrics", "delta", "ci_low", "ci_high"):
            w.put_array(f"{G}/variants/{name}", getattr(r, name), attrs={"columns": ",".join(r.metric_names)})
        if r.predictions is not None:
            dtype = np.float32 if r.predictions.dtype.kind == "f" else np.int16
            w.put_array(f"{G}/variants/predictions", np.asarray(r.predictions, dtype=dtype), compression="gzip")
        grids = {"ablation_delta": r.delta[:, main], "ablation_score": r.metrics[:, main],
                 "ablation_ci_low": r.ci_low[:, main], "ablation_ci_high": r.ci_high[:, main]}
        if "head" in r.kinds:
            for name, values in grids.items():
                w.put_head_quantity(name, head_grid(r.kinds, r.masks, values), desc[name], mode=r.mode, metric=r.main_metric)
        if "layer" in r.kinds:
            for name, values in grids.items():
                w.put_array(f"layers/{name}", layer_vector(r.kinds, r.masks, values),
                            attrs={"description": desc[name].replace("the head alone", "the whole layer"), "mode": r.mode, "metric": r.main_metric})
        if r.importance is not None:
            w.put_head_quantity("importance", r.importance, desc["importance"])
            w.put_array(f"{G}/importance_raw", r.importance_raw)
        if r.greedy is not None:
            gr = r.greedy
            w.put_strings(f"{G}/greedy/heads", gr.heads)
            for name in ("score", "gain", "delta", "ci_low", "ci_high"):
                w.put_array(f"{G}/greedy/{name}", np.asarray(getattr(gr, name), dtype=np.float64))
            f[f"{G}/greedy"].attrs["stopped"] = gr.stopped
    return Path(out)


def read_ablation(path: str | Path, *, locking: bool | None = None) -> AblationResult:
    """Read an ablation store back into an :class:`AblationResult` (for combine, merge, diff)."""
    from bertsecrets_cli.store.reader import open_store

    with open_store(path, kind="ablation", locking=locking) as st:
        a = st.attrs(G)
        shard = str(a.get("shard", "") or "")
        greedy = None
        if st.has(f"{G}/greedy/heads"):
            greedy = GreedyRecord(st.strings(f"{G}/greedy/heads"), *(st.array(f"{G}/greedy/{k}") for k in ("score", "gain", "delta", "ci_low", "ci_high")),
                                  stopped=str(st.attrs(f"{G}/greedy").get("stopped", "")))
        model = st.model_attrs()
        prov = st.provenance()
        texts = {k: prov.pop(k) for k in ("command", "config", "environment") if k in prov}
        return AblationResult(
            n_layers=st.n_layers, n_heads=st.n_heads, mode=str(a["mode"]), task=str(a["task"]),
            metric_names=st.strings(f"{G}/metric_names"), ids=st.example_ids(), labels=st.array("examples/label"),
            base_metrics=st.array(f"{G}/baseline/metrics"), base_logits=st.array(f"{G}/baseline/logits"),
            names=st.strings(f"{G}/variants/name"), kinds=st.strings(f"{G}/variants/kind"), index=st.array(f"{G}/variants/index"),
            n_variants_total=int(a["n_variants_total"]), masks=st.array(f"{G}/variants/disabled").astype(bool),
            metrics=st.array(f"{G}/variants/metrics"), delta=st.array(f"{G}/variants/delta"),
            ci_low=st.array(f"{G}/variants/ci_low"), ci_high=st.array(f"{G}/variants/ci_high"),
            predictions=st.array(f"{G}/variants/predictions") if st.has(f"{G}/variants/predictions") else None,
            bootstrap=int(a["bootstrap"]), bootstrap_seed=int(a["bootstrap_seed"]), engine=str(a["engine"]),
            model={k: v for k, v in model.items() if k not in ("n_layers", "n_heads")}, provenance=prov, texts=texts,
            importance=st.heads()["importance"].values if "importance" in st.heads() else None,
            importance_raw=st.array(f"{G}/importance_raw") if st.has(f"{G}/importance_raw") else None,
            greedy=greedy, shard=tuple(int(x) for x in shard.split("/")) if shard else None,  # type: ignore[arg-type]
        )


def merge_results(parts: list[tuple[str, AblationResult]]) -> AblationResult:
    """Join shard results of one plan into one; every mismatch is one InputError/StoreError line."""
    if not parts:
        raise InputError("--combine: give the shard stores to combine")
    (p0, r0), rest = parts[0], parts[1:]
    for p, r in rest:
        for what, a, b in (("model", r0.model.get("fingerprint"), r.model.get("fingerprint")), ("task", r0.task, r.task), ("mode", r0.mode, r.mode),
                           ("number of planned variants", r0.n_variants_total, r.n_variants_total),
                           ("bootstrap", (r0.bootstrap, r0.bootstrap_seed), (r.bootstrap, r.bootstrap_seed)),
                           ("data source", r0.provenance.get("data_source"), r.provenance.get("data_source"))):
            if a != b:
                raise StoreError(f"{p}: its {what} ({b}) differs from {p0}'s ({a}); shards of one run must share it")
        if r.ids != r0.ids:
            raise StoreError(f"{p}: evaluated other examples than {p0}")
        if not np.array_equal(r.base_metrics, r0.base_metrics, equal_nan=True):
            raise StoreError(f"{p}: its baseline ({r.base_metrics[0]:.6f}) differs from {p0}'s ({r0.base_metrics[0]:.6f})")
    owner: dict[int, str] = {}
    for p, r in parts:
        for i in r.index.tolist():
            if i in owner:
                raise InputError(f"{p}: variant {i} ({r.names[list(r.index).index(i)]}) is also in {owner[i]}; give each shard once")
            owner[i] = p
    missing = sorted(set(range(r0.n_variants_total)) - set(owner))
    if missing:
        raise InputError(f"--combine: {len(missing)} of {r0.n_variants_total} variants are missing (first: #{missing[0]}); are all shards given?")
    rows = sorted((i, k, j) for k, (_, r) in enumerate(parts) for j, i in enumerate(r.index.tolist()))
    pick = lambda attr: [getattr(parts[k][1], attr)[j] for _, k, j in rows]  # noqa: E731
    preds = None if any(r.predictions is None for _, r in parts) else np.stack(pick("predictions"))
    imp = next(((r.importance, r.importance_raw) for _, r in parts if r.importance is not None), (None, None))
    prov = dict(r0.provenance)
    prov["combined_from"] = [str(p) for p, _ in parts]
    return AblationResult(
        n_layers=r0.n_layers, n_heads=r0.n_heads, mode=r0.mode, task=r0.task, metric_names=r0.metric_names, ids=r0.ids, labels=r0.labels,
        base_metrics=r0.base_metrics, base_logits=r0.base_logits, names=pick("names"), kinds=pick("kinds"),
        index=np.asarray([i for i, _, _ in rows], dtype=np.int64), n_variants_total=r0.n_variants_total, masks=np.stack(pick("masks")),
        metrics=np.stack(pick("metrics")), delta=np.stack(pick("delta")), ci_low=np.stack(pick("ci_low")), ci_high=np.stack(pick("ci_high")),
        predictions=preds, bootstrap=r0.bootstrap, bootstrap_seed=r0.bootstrap_seed,
        engine=",".join(sorted({r.engine for _, r in parts})), model=r0.model, provenance=prov, texts=r0.texts,
        importance=imp[0], importance_raw=imp[1], greedy=None, shard=None,
    )


def combine_ablation(paths: list[str], out: str | Path, *, force: bool = False, locking: bool | None = None) -> AblationResult:
    """``ablate --combine``: check the shard stores cover one plan exactly once and write one store."""
    from bertsecrets_cli.store.writer import check_output_path

    check_output_path(out, force=force)
    parts = [(p, read_ablation(p, locking=locking)) for p in paths]
    merged = merge_results(parts)
    write_ablation(merged, out, force=force, locking=locking)
    return merged


# ------------------------------------------------------------------------------------------
# tables


def _noise(lo: float, hi: float) -> str:
    from bertsecrets_cli.analysis.ablation import is_noise

    if not (np.isfinite(lo) and np.isfinite(hi)):
        return "n/a"
    if lo == 0.0 == hi:
        return "no change"
    return "noise?" if is_noise(lo, hi) else ""


def beyond_noise(r: AblationResult, j: int, sign: int = 1) -> bool:
    """Variant ``j`` changes the main metric in direction ``sign`` by more than noise: its 95% interval lies
    wholly on that side of 0 (without intervals, --bootstrap 0: any change of that sign, which cannot be judged)."""
    d, lo, hi = float(r.delta[j, 0]), float(r.ci_low[j, 0]), float(r.ci_high[j, 0])
    if not np.isfinite(d) or sign * d <= 0:
        return False
    if r.bootstrap and np.isfinite(lo) and np.isfinite(hi):
        return lo > 0 if sign > 0 else hi < 0
    return True


def ablation_tables(r: AblationResult, top: int = 10) -> list[Table]:
    """Baseline; heads whose removal helps / hurts most; layers; explicit sets; greedy path; importance."""
    from bertsecrets_cli.heads import head_name

    m = r.main_metric
    lower_better = m == "loss"  # ablate --metric loss: a head helps when its removal lowers the loss
    sign = -1.0 if lower_better else 1.0
    cols = ["disabled", m, "delta", "ci95_low", "ci95_high", "noise?"]
    who = f"{r.model.get('name', '')} on {r.task}, N={int((~np.isnan(r.labels)).sum())} labelled examples"
    unit = f"{m} and delta as fractions (0.01 = 1 {m} point)"
    if lower_better:
        who = f"{r.model.get('name', '')} on {r.provenance.get('data_source', 'the corpus')}, N={len(r.ids)} windows"
        unit = "loss: next-token cross-entropy in nats per predicted token; delta > 0: the model needed the heads"
    if r.bootstrap:
        cap = (f"delta = {m} with the heads disabled ({r.mode} mode) - baseline; {unit}; 95% paired bootstrap interval over "
               f"{'windows' if lower_better else 'examples'} "
               f"({r.bootstrap} resamples); 'noise?' = the interval covers 0; {who}")
    else:
        cap = f"delta = {m} disabled ({r.mode}) - baseline; {unit}; no intervals (--bootstrap 0); {who}"
    tables = []
    t = Table("baseline", ["metric", "value"], digits=4, name="baseline",
              caption=who if lower_better else f"{r.model.get('name', '')} on {r.task}, {int((~np.isnan(r.labels)).sum())} labelled examples")
    for k, name in enumerate(r.metric_names):
        t.add(name, float(r.base_metrics[k]))
    tables.append(t)

    def row(t: Table, j: int, label: str | None = None) -> None:
        lo, hi = float(r.ci_low[j, 0]), float(r.ci_high[j, 0])
        t.add(label or r.names[j], float(r.metrics[j, 0]), float(r.delta[j, 0]), lo, hi, _noise(lo, hi))

    heads = [j for j, k in enumerate(r.kinds) if k == "head"]
    if heads:
        for s, name, verb in ((1, "helps", "helps"), (-1, "hurts", "hurts")):
            direction = int(s * sign)  # --metric loss: removal helps when the loss goes down
            beyond = [j for j in heads if beyond_noise(r, j, direction)]
            beyond.sort(key=lambda j: (-direction * float(r.delta[j, 0]), r.index[j]))
            what = "beyond noise (95% interval excludes 0)" if r.bootstrap else "(no intervals: --bootstrap 0, so noise cannot be told apart)"
            t = Table(f"single heads whose removal {verb} {what}: {len(beyond)} of {len(heads)}" + (f", top {top}" if len(beyond) > top else ""),
                      cols, caption=("none: " + ("every head's interval covers 0; " if r.bootstrap else "no head changes the score that way; ") if not beyond else "") + cap,
                      digits=4, name=name)
            for j in beyond[:top]:
                row(t, j)
            tables.append(t)
    layers = [j for j, k in enumerate(r.kinds) if k == "layer"]
    if layers:
        t = Table("single layers disabled (every head of the layer)", cols, caption=cap, digits=4, name="layers")
        for j in layers:
            row(t, j)
        tables.append(t)
    sets = [j for j, k in enumerate(r.kinds) if k in ("heads", "layers")]
    if sets:
        t = Table("sets disabled together", cols, caption=cap, digits=4, name="sets")
        for j in sets:
            row(t, j)
        tables.append(t)
    if r.greedy is not None:
        gr = r.greedy
        t = Table("greedy search: disable the head whose removal helps most, repeatedly",
                  ["step", "disable", m, "gain", "delta", "ci95_low", "ci95_high", "noise?"], digits=4, name="greedy",
                  caption=f"stopped: {gr.stopped}. " + ("gain: how much the step lowered the loss. " if lower_better else "")
                  + f"The path is chosen on these same {'windows' if lower_better else 'examples'}, so its gains are optimistic; confirm on held-out data.")
        if not gr.heads:
            t.add(0, "(none)", float(r.base_metrics[0]), 0.0, 0.0, None, None, "")
        for s, name in enumerate(gr.heads):
            lo, hi = float(gr.ci_low[s]), float(gr.ci_high[s])
            t.add(s + 1, name, float(gr.score[s]), float(gr.gain[s]), float(gr.delta[s]), lo, hi, _noise(lo, hi))
        tables.append(t)
    if r.importance is not None:
        flat = [(float(r.importance[l, h]), l, h) for l in range(r.n_layers) for h in range(r.n_heads)]
        single = {(int(np.nonzero(r.masks[j].any(1))[0][0]), int(np.nonzero(r.masks[j].any(0))[0][0])): j for j in heads}
        for title, chosen in (("least important heads", sorted(flat)[:top]), ("most important heads", sorted(flat, reverse=True)[:top])):
            t = Table(f"{title} by gradient importance (Michel et al.; normalised per layer)", ["head", "importance", "ablation delta"], digits=4, name=title.split()[0] + "-important")
            for v, l, h in chosen:
                j = single.get((l, h))
                t.add(head_name(l, h), v, float(r.delta[j, 0]) if j is not None else None)
            tables.append(t)
    return tables
