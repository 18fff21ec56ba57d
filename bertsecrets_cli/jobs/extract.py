"""``extract``: attention maps and per-head summaries of a model over a data set, into a store."""

from __future__ import annotations

import hashlib
import json
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bertsecrets_cli.errors import InputError, Interrupted
from bertsecrets_cli.render.console import info
from bertsecrets_cli.render.progress import progress
from bertsecrets_cli.render.tables import Table
from bertsecrets_cli.store import schema as S

MAX_LENGTH_LIMIT = 4096
WRITE_QUEUE_BATCHES = 4  # batches waiting for the writer thread: bounds memory when the disk is slower than the model
# A batch holds at most batch_size x BUDGET_LENGTH^2 attention values per map: --batch-size examples of up to 32 tokens,
# fewer of longer ones. Without it a batch's maps grow with its longest example squared, and the longest example
# grows with the corpus (a long tail): peak memory grew with N on real data (1.10x at 800 vs 100 SST-2 sentences).
BUDGET_LENGTH = 32


def batch_plan(lengths: list[int], batch_size: int, budget_length: int = BUDGET_LENGTH) -> list[list[int]]:
    """Positions of each batch: sorted by length inside windows of 4 x batch_size (less padding), then cut so that a
    batch has at most ``batch_size`` examples and ``batch_size * budget_length**2`` values per map (B x T^2)."""
    budget = batch_size * budget_length**2
    out: list[list[int]] = []
    window = 4 * batch_size
    for w0 in range(0, len(lengths), window):
        cur: list[int] = []
        for i in sorted(range(w0, min(w0 + window, len(lengths))), key=lambda i: lengths[i]):
            t = lengths[i]  # the longest so far: sorted ascending
            if cur and (len(cur) == batch_size or (len(cur) + 1) * t * t > budget):
                out.append(cur)
                cur = []
            cur.append(i)
        if cur:
            out.append(cur)
    return out


@dataclass
class DataOptions:
    """Which examples: shared by every command that reads a data set."""

    task: str = "sst2"
    data: str | None = None
    split: str = "dev"
    limit: int | None = None
    sample: bool = False
    seed: int = 0
    text_columns: tuple[str, ...] | None = None
    label_column: str | None = None
    id_column: str | None = None
    file_format: str | None = None


@dataclass
class ExtractOptions:
    model: str | None = None
    data: DataOptions = field(default_factory=DataOptions)
    max_length: int = 128
    truncation: str = "longest_first"
    batch_size: int = 32
    device: str = "auto"
    encoding: str = "float16"
    compression: str = "none"
    part_size: int = 4096  # one part (no copy at assembly) for most dev sets; at most ~4096 examples redone after a SIGKILL
    resume: bool = False
    force: bool = False
    locking: bool | None = None
    quiet: bool = False
    shard: str | None = None  # "i/n"; None: from RANK/WORLD_SIZE or Slurm array variables, else no split
    quantities: tuple[str, ...] = ("weights",)  # schema.QUANTITIES: weights always; norms, norms_normalised, rollout, flow
    stride: int | None = None  # --data is a corpus cut into windows of --max-length tokens starting every stride tokens
    maps: str = "full"  # full | topk:K | none (schema.parse_maps): what the store keeps of the weights' maps
    memory: str = "auto"  # host_memory.MEMORY_MODES: fast (glibc's heap) or flat (peak memory flat in N); auto: flat on a GPU


@dataclass
class ExtractResult:
    path: Path
    n_examples: int
    n_layers: int
    n_heads: int
    summary: Table


def load_examples(opts: DataOptions) -> tuple[Any, Any]:
    """-> (TaskSpec, data.sources.Dataset) after selection; says on stderr when demo data is used."""
    from bertsecrets_cli.data.sources import load_dataset, select_examples
    from bertsecrets_cli.data.tasks import get_task

    task = get_task(opts.task)
    if opts.limit is not None and opts.limit < 1:
        raise InputError(f"--limit {opts.limit}: must be at least 1")
    ds = load_dataset(task, opts.data, opts.split, text_columns=opts.text_columns, label_column=opts.label_column,
                      id_column=opts.id_column, file_format=opts.file_format)
    ds.examples = select_examples(ds.examples, opts.limit, opts.seed, opts.sample)
    if not ds.examples:
        raise InputError(f"{ds.source}: no examples to process")
    if ds.is_demo:
        info(f"using {ds.source} for task {task.name}; pass --data for real data")
    for note in ds.notes:
        info(note)
    return task, ds


def check_common(max_length: int, batch_size: int) -> None:
    if not 2 <= max_length <= MAX_LENGTH_LIMIT:
        raise InputError(f"--max-length {max_length}: must be between 2 and {MAX_LENGTH_LIMIT}")
    if batch_size < 1:
        raise InputError(f"--batch-size {batch_size}: must be at least 1")


def _window_provenance(windows: list, examples: list, all_examples: list) -> dict[str, Any]:
    """examples/document, char_start, char_end: where each window (of this shard) came from."""
    index = {id(e): i for i, e in enumerate(all_examples)}
    mine = [windows[index[id(e)]] for e in examples]
    return {"document": [w.document for w in mine], "char_start": np.asarray([w.start for w in mine], dtype=np.int64),
            "char_end": np.asarray([w.end for w in mine], dtype=np.int64)}


def summary_table(heads: dict[str, np.ndarray], n_layers: int, context: str = "", *, causal: bool = False) -> Table:
    """Per layer: mean attention mass on [CLS], all [SEP]s, all punctuation, and mean entropy (means over heads).

    The [SEP] and punctuation columns are sums over every such token ('sum'), unlike classify --features's
    most-attended single token ('max'; README glossary)."""
    from bertsecrets_cli.analysis.stats import mean_of_finite
    from bertsecrets_cli.render.labels import STAT_COLUMNS

    names = ("cls", "sep", "punct", "self", "prev", "next", "entropy")
    columns = {**STAT_COLUMNS, **({"cls": "first"} if causal else {})}
    t = Table("attention per layer, mean over heads and examples" + (f" ({context})" if context else ""),
              ["layer", *(columns[k] for k in names)], name="layers",
              caption="attention mass (0-1) summed over every [CLS] / [SEP] / punctuation token, mean over query rows; "
                      "self/prev/next: attention to the token itself / the previous / the next token; entropy in nats")
    if causal:
        t.caption = ("first: first-token mass, the attention on the first position (the sink of a causal model: its BOS, or the "
                     "first real token where the tokenizer adds none); " + t.caption.replace("every [CLS] / ", "every "))
    for layer in range(n_layers):
        t.add(f"L{layer + 1}", *(mean_of_finite(heads[f"stat_{k}"][layer]) for k in names))
    empty = [k for k in names if all(mean_of_finite(heads[f"stat_{k}"][layer]) is None for layer in range(n_layers))]
    if empty:
        why = {"punct": "no example has a punctuation token", "prev": "every example is one token long", "next": "every example is one token long"}
        t.caption = f"{t.caption}; blank: " + "; ".join(f"{columns[k]}: {why.get(k, 'no example has one')}" for k in empty)
    return t


class _PartSink:
    """The writer thread's side of extract: opens a part, puts each batch's examples back in example order, closes it.

    Messages: ("begin", index, start, end, encoded), ("batch", positions, maps, stats[, extras[, stored maps]]), ("end",).
    With stored maps (extract --maps topk/none), each example's rule-classifier features are computed from them here,
    off the model's thread, exactly as classify computes them from a full store's maps.
    """

    def __init__(self, writer: Any, encoding: str = "float16", windows: Any = (), causal: bool = False) -> None:
        self.writer = writer
        self.encoding, self.windows, self.causal = encoding, list(windows), causal
        self._part: Any = None  # the open part's context manager
        self._pw: Any = None

    def handle(self, msg: tuple) -> None:
        if msg[0] == "begin":
            _, index, start, end, self._enc = msg
            self._part = self.writer.part(index, start, end)
            self._pw = self._part.__enter__()
            self._waiting: dict[int, tuple[Any, ...]] = {}
            self._next = 0
        elif msg[0] == "batch":
            _, positions, maps, stats, *more = msg  # more: per example, the other quantities' (maps, stats); the stored maps
            extras = more[0] if more else None
            dense = more[1] if len(more) > 1 else None
            for j, i in enumerate(positions):
                feats = None
                if dense is not None:
                    from bertsecrets_cli.analysis.patterns import map_features

                    enc = self._enc[i]
                    values = dense[j].astype(np.float32) / (255.0 if self.encoding == "uint8" else 1.0)  # as Store reads them
                    feats = map_features(values, enc.special, enc.type_ids, windows=self.windows, causal=self.causal)
                self._waiting[i] = (maps[j], stats[j], extras[j] if extras is not None else None, feats)
            while self._next in self._waiting:
                m, s, x, feats = self._waiting.pop(self._next)
                self._pw.add(self._enc[self._next], m, s, x, features=feats)
                self._next += 1
        elif msg[0] == "end":
            if self._waiting:
                raise RuntimeError(f"part ended with {len(self._waiting)} examples out of order")
            part, self._part = self._part, None
            part.__exit__(None, None, None)  # the part file appears, complete
        else:
            raise ValueError(f"unknown message {msg[0]!r}")

    def close(self, failed: bool) -> None:
        """At the thread's end: a part still open is abandoned (its temporary file removed)."""
        part, self._part = self._part, None
        if part is not None:
            stop = RuntimeError("extraction stopped")
            try:
                part.__exit__(type(stop), stop, None)
            except RuntimeError as e:
                if e is not stop:
                    raise


def run_extract(opts: ExtractOptions, out: str | Path, *, command: str | None = None) -> ExtractResult:
    """Extract attention of ``opts.model`` over the selected examples into the store ``out``."""
    from bertsecrets_cli.host_memory import MEMORY_MODES, apply_memory, resolve_memory
    from bertsecrets_cli.jobs.provenance import provenance_texts, tool_attrs
    from bertsecrets_cli.jobs.shard import resolve_shard
    from bertsecrets_cli.jobs.signals import graceful_stop
    import torch

    from bertsecrets_cli.jobs.quantities import batch_extras, check_flow_length, needs_norms, parse_quantities
    from bertsecrets_cli.jobs.writer_thread import WriterThread
    from bertsecrets_cli.model.attention import ATTN_IMPLEMENTATION, forward_streaming, forward_with_norms
    from bertsecrets_cli.model.batch_stats import batch_head_stats
    from bertsecrets_cli.model.capture import BatchCapture
    from bertsecrets_cli.model.capture_worker import LayerWorker, offload_capture
    from bertsecrets_cli.model.load import load_model
    from bertsecrets_cli.model.tokenize import collate, encode_examples, sink_first, token_masks
    from bertsecrets_cli.store.writer import AttentionStoreWriter, check_output_path

    check_common(opts.max_length, opts.batch_size)
    if opts.memory not in MEMORY_MODES:
        raise InputError(f"--memory {opts.memory}: choose one of {', '.join(MEMORY_MODES)}")
    if opts.encoding not in S.ENCODINGS:
        raise InputError(f"--encoding {opts.encoding}: choose one of {', '.join(S.ENCODINGS)}")
    if opts.part_size < 1:
        raise InputError(f"--part-size {opts.part_size}: must be at least 1")
    if opts.compression not in S.COMPRESSIONS:
        raise InputError(f"--compression {opts.compression}: choose one of {', '.join(S.COMPRESSIONS)}")
    quantities = parse_quantities(opts.quantities)
    check_flow_length(quantities, opts.max_length)
    weights_only = tuple(quantities) == (S.Q_WEIGHTS,)
    try:
        maps_mode, topk = S.parse_maps(opts.maps)
    except ValueError as e:
        raise InputError(f"--maps {e}") from None
    if maps_mode != S.MAPS_FULL and not weights_only:
        raise InputError(f"--maps {opts.maps} with --quantities {','.join(quantities)}: only full maps can be kept with other quantities; "
                         "extract them in a run of their own")
    check_output_path(out, force=opts.force or opts.resume)
    windows = None
    if opts.stride is None:
        task, ds = load_examples(opts.data)
    elif not opts.data.data:
        raise InputError("--stride: cuts the corpus given with --data into windows; pass --data FILE (.txt or .jsonl)")
    shard = resolve_shard(opts.shard)
    lm = load_model(opts.model, device=opts.device)
    heap = apply_memory(resolve_memory(opts.memory, lm.device.type))  # recorded in the provenance: fast or flat
    if opts.stride is not None:
        from bertsecrets_cli.data.tasks import get_task
        from bertsecrets_cli.data.windows import window_dataset

        task = get_task(opts.data.task)
        ds, windows = window_dataset(opts.data.data, lm.tokenizer, opts.max_length, opts.stride)
    examples = ds.examples
    n_total = len(examples)
    job = {"model": lm.fingerprint, "model_name": lm.path, "data": ds.source, "split": ds.split, "ids": [e.id for e in examples],
           "options": {k: v for k, v in asdict(opts).items() if k not in ("resume", "force", "quiet", "locking", "device", "batch_size", "part_size", "shard", "memory")
                       and not (k == "quantities" and tuple(quantities) == (S.Q_WEIGHTS,)) and not (k == "maps" and maps_mode == S.MAPS_FULL)}}  # weights only: the fingerprint of before quantities existed
    job_fingerprint = hashlib.sha256(json.dumps(job, sort_keys=True, default=str).encode()).hexdigest()
    shard_attrs: dict[str, Any] = {}
    if shard is not None:
        s0, s1 = shard.range(n_total)
        if s0 == s1:
            raise InputError(f"shard {shard} has no examples ({n_total} examples for {shard.count} shards)")
        examples = examples[s0:s1]
        shard_attrs = {"shard_index": shard.index, "shard_count": shard.count, "shard_start": s0, "shard_end": s1, "shard_origin": shard.origin}
        info(f"shard {shard} ({shard.origin}): examples {s0}..{s1 - 1} of {n_total}")
    job_key = {"job": job_fingerprint, "shard": shard_attrs, "part_size": opts.part_size}
    writer = AttentionStoreWriter(out, job_key=job_key, n_examples=len(examples), part_size=opts.part_size, n_layers=lm.n_layers,
                                  n_heads=lm.n_heads, encoding=opts.encoding, compression=opts.compression, force=opts.force,
                                  resume=opts.resume, locking=opts.locking, quantities=quantities,
                                  maps=maps_mode, topk=topk)
    if writer.removed_leftover is not None:
        info(f"removed {writer.removed_leftover}: the parts of {out}, left by a run stopped after its store was complete")
    pending = writer.pending()
    done = len(examples) - sum(e - s for _, s, e in pending)
    if opts.resume and done:
        info(f"resuming: {done} of {len(examples)} examples already extracted")
    pad = lm.tokenizer.pad_token_id if lm.tokenizer.pad_token_id is not None else 0
    sink = _PartSink(writer, opts.encoding, lm.windows, lm.causal)
    def assembly_inputs() -> dict[str, Any]:
        """What the store records besides the parts (model, provenance, texts, examples): built while the writer
        thread still writes the last batches, not after it."""
        provenance = {
            **tool_attrs(),
            "model": lm.name, "model_path": lm.path, "model_revision": lm.revision, "model_fingerprint": lm.fingerprint,
            "tokenizer": lm.path, "task": task.name, "data_source": ds.source, "split": ds.split, "is_demo_data": int(ds.is_demo),
            "selection": {"limit": opts.data.limit, "sample": opts.data.sample, "seed": opts.data.seed, "n": len(examples)},
            "attn_implementation": ATTN_IMPLEMENTATION, "max_length": opts.max_length, "truncation": opts.truncation,
            "encoding": opts.encoding, "compression": opts.compression, "job_fingerprint": job_fingerprint, "n_total": n_total,
            "quantities": list(quantities), "maps": S.maps_label(maps_mode, topk), "memory": heap,
            **shard_attrs,
        }
        label = [np.nan if e.label is None else float(e.label) for e in examples]
        return {"model": {"model_type": lm.model_type, "name": lm.name, "cls_token": lm.tokenizer.cls_token or lm.tokenizer.bos_token or "",
                          "sep_token": lm.tokenizer.sep_token or lm.tokenizer.eos_token or "", "label_names": list(task.label_names),
                          "attention_windows": np.asarray(lm.windows, dtype=np.int64),
                          "causal": int(lm.causal), "kv_group": np.asarray(lm.kv_group, dtype=np.int64)},
                "provenance": provenance,
                "texts": provenance_texts({"extract": asdict(opts)}, command),
                "examples": {"id": [e.id for e in examples], "text_a": [e.text_a for e in examples],
                             "text_b": [e.text_b or "" for e in examples], "label": np.asarray(label, dtype=np.float64),
                             **(_window_provenance(windows, examples, ds.examples) if windows is not None else {})}}

    # tokenising and forward passes here; HDF5 writing on one thread behind a bounded queue (jobs.writer_thread)
    with writer.removed_unless_a_part_is_done(), graceful_stop() as stop, progress(len(examples), f"extract {lm.name}", quiet=opts.quiet) as advance, \
            WriterThread(sink.handle, sink.close, maxsize=WRITE_QUEUE_BATCHES) as background, \
            (LayerWorker() if weights_only and offload_capture(lm.device) else nullcontext()) as layer_worker:
        advance(done)
        for index, start, end in pending:
            part_ex = examples[start:end]
            enc = encode_examples(lm.tokenizer, [(e.text_a, e.text_b) for e in part_ex], opts.max_length, opts.truncation)
            background.submit(("begin", index, start, end, enc))
            # sort by length inside small windows (less padding), at most a fixed number of attention values per
            # batch (batch_plan); the writer puts examples back in order, and memory is bounded whatever the part size
            for idx in batch_plan([e.length for e in enc], opts.batch_size):
                if stop.requested:
                    raise Interrupted(f"{out}: stopped by {stop.signal}; {start} of {len(examples)} examples are kept; rerun with --resume to finish")
                batch_enc = [enc[i] for i in idx]
                batch = collate(batch_enc, pad, lm.device, lm.token_types)
                if lm.causal:  # the statistics' [CLS] column is the first position, the sink (stored kinds unchanged)
                    batch_enc = [sink_first(e) for e in batch_enc]
                if weights_only:  # streamed: statistics and the stored copy as each layer is computed
                    capture = BatchCapture(batch_enc, lm.n_layers, lm.n_heads, opts.encoding, lm.device, lm.windows, maps_mode, topk,
                                           worker=layer_worker)
                    forward_streaming(lm.model, batch, lm.n_layers, capture)
                    background.submit(("batch", idx, *capture.results(), None, capture.stored_maps()))
                else:  # norms, rollout, flow need every layer's maps (and the value norms) of the batch at once
                    _, probs, norms = forward_with_norms(lm.model, batch, lm.n_layers, norms=needs_norms(quantities))
                    stats = batch_head_stats(probs, *token_masks(batch_enc, lm.device), windows=lm.windows)
                    host_dtype = torch.float16 if opts.encoding == "float16" else torch.float32
                    extras = batch_extras(probs, norms, batch_enc, quantities, dtype=host_dtype, windows=lm.windows)
                    probs = probs.to(host_dtype).cpu().numpy()
                    maps = [probs[j, :, :, : e.length, : e.length] for j, e in enumerate(batch_enc)]
                    background.submit(("batch", idx, maps, stats, extras))
                advance(len(idx))
            background.submit(("end",))
        late = assembly_inputs()
    # SIGTERM/SIGINT while the parts are assembled wait for the (short, bounded) assembly: stopping it
    # would throw part 0 away; a SIGKILL there leaves the parts, and --resume redoes the assembly
    with graceful_stop() as late_stop:
        path = writer.finish(**late)
    if late_stop.requested:
        info(f"{late_stop.signal} arrived while the store was being assembled; it is complete")
    from bertsecrets_cli.store.reader import open_store

    with open_store(path, locking=opts.locking) as st:
        heads = {k: v.values for k, v in st.heads().items()}
    from bertsecrets_cli.render.labels import context

    where = f"{task.name} {ds.split}, {ds.source}"
    return ExtractResult(path, len(examples), lm.n_layers, lm.n_heads,
                         summary_table(heads, lm.n_layers, context(lm.name, where, len(examples)), causal=lm.causal))
