"""extract's cost over a bare forward pass, on data with a realistic length distribution, and its peak memory at N and 10N.

Three sides over exactly the same batches (same tokenisation, same length-sorted windows, same batch
size), each in a process of its own (benchmarks/sides.py: extract's heap policy must not slow the
baselines down), timed in wall and CPU time (the side's process, all threads), repeated interleaved in
rotating order after one warm-up of each; the ratios are taken per repeat, and min and median are printed:

* extract: ``run_extract`` (tokenise, forward with capture, statistics, float16 copy, write, assemble);
* eager:   the bare eager forward with attention output (``output_attentions=True``, maps dropped): the
           physical limit of extract, target extract <= 1.05x;
* sdpa:    a plain sdpa forward without attention, what a user runs otherwise: target <= 1.30x.

The model is loaded once per side before timing (extract's load is answered from that copy), so the
ratios compare the work per example, not start-up. ``--memory fast|flat|auto`` is extract's option of that
name (host_memory; default auto, i.e. fast on the CPU), for the timing and the peak-RSS mode alike. Data: the shipped demo set of the task (train and
dev), or ``--data`` (any GLUE folder or file); past the pool's size examples repeat with new ids (said
so on the output). ``--join 3`` (the default) joins 1-3 consecutive texts per example, so the lengths have
a real corpus's long tail (printed: mean, median, p90, max pieces) rather than the demo sentences' narrow band. On a GPU (``--device cuda``) tokens/s of each side are the figure to read.

Peak RSS: ``extract`` of ``--mem-n`` and 10x that many examples, each in a fresh process (ru_maxrss);
target ratio <= 1.05. Usage:
  python benchmarks/extract_overhead.py [--n 400] [--repeats 3] [--mem-n 80] [--threads 1] [--join 3] [--memory auto] [--task sst2 --data glue_data/SST-2] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def make_data(task: str, data: str | None, n: int, folder: Path, join: int = 1) -> tuple[Path, str]:
    """n examples of the task as a JSONL file: the first n of ``data`` (or of the demo train+dev set), repeated with new ids when short.

    ``join`` > 1: each example's text is 1..join consecutive pool texts (seeded), so lengths spread from the
    shortest sentence to several times the longest, with the long tail of real corpora (the demo sentences
    alone are all 5-23 pieces; SST-2 dev runs from a few pieces to about 60)."""
    import random

    from bertsecrets_cli.data.sources import load_dataset
    from bertsecrets_cli.data.tasks import get_task

    spec = get_task(task)
    if data is None:
        pool = load_dataset(spec, None, "train").examples + load_dataset(spec, None, "dev").examples
        source = f"demo {task} train+dev"
    else:
        ds = load_dataset(spec, data, "dev")
        pool, source = ds.examples, str(ds.source)
    path = folder / f"bench-{n}-{join}.jsonl"
    cols = spec.text_columns
    rng = random.Random(0)
    with open(path, "w") as fh:
        for i in range(n):
            e = pool[i % len(pool)]
            k = rng.randint(1, join) if join > 1 else 1
            text_a = " ".join(pool[(i + j) % len(pool)].text_a for j in range(k))
            row = {"id": f"b{i}", cols[0]: text_a, "label": e.label}
            if len(cols) > 1:
                row[cols[1]] = e.text_b
            fh.write(json.dumps(row) + "\n")
    note = f"{source}: {min(n, len(pool))} distinct examples" + (f", repeated to {n}" if n > len(pool) else "")
    if join > 1:
        note += f", each 1-{join} consecutive texts joined"
    return path, note


def batches(lm: Any, examples: list[Any], max_length: int, batch_size: int) -> tuple[list[dict], int]:
    """extract's batches: encode, sort by length inside windows of 4 batches, cut by jobs.extract.batch_plan, pad."""
    from bertsecrets_cli.model.tokenize import collate, encode_examples

    enc = encode_examples(lm.tokenizer, [(e.text_a, e.text_b) for e in examples], max_length)
    pad = lm.tokenizer.pad_token_id if lm.tokenizer.pad_token_id is not None else 0
    from bertsecrets_cli.jobs.extract import batch_plan

    out = [collate([enc[i] for i in idx], pad, lm.device, lm.token_types) for idx in batch_plan([e.length for e in enc], batch_size)]
    return out, sum(e.length for e in enc)


def lengths_of(lm: Any, examples: list[Any], max_length: int) -> list[int]:
    from bertsecrets_cli.model.tokenize import encode_examples

    return [e.length for e in encode_examples(lm.tokenizer, [(e.text_a, e.text_b) for e in examples], max_length)]


def plain_model(attn: str, device: Any) -> Any:
    from transformers import AutoModel

    from bertsecrets_cli.model.load import embedded_model_dir

    return AutoModel.from_pretrained(embedded_model_dir(), attn_implementation=attn).to(device).eval()


def bare_side(lm: Any, model: Any, data: Path, task: str, args: argparse.Namespace, attentions: bool) -> None:
    """Load and tokenise the data like extract, then forward every batch; attention (if asked) is produced and dropped."""
    import torch

    from bertsecrets_cli.jobs.extract import DataOptions, load_examples

    _, ds = load_examples(DataOptions(task=task, data=str(data)))
    bs, _ = batches(lm, ds.examples, args.max_length, args.batch_size)
    with torch.inference_mode():
        for batch in bs:
            out = model(**batch, output_attentions=attentions)
            if attentions:
                assert len(out.attentions) == lm.n_layers
    if lm.device.type == "cuda":
        torch.cuda.synchronize()


def extract_side(lm: Any, data: Path, task: str, out: Path, args: argparse.Namespace, **kw: Any) -> None:
    from bertsecrets_cli.jobs.extract import DataOptions, ExtractOptions, run_extract

    kw.setdefault("memory", getattr(args, "memory", "auto"))
    run_extract(ExtractOptions(data=DataOptions(task=task, data=str(data)), device=args.device, batch_size=args.batch_size,
                               max_length=args.max_length, quiet=True, force=True, **kw), out, command="benchmark")


def preloaded(lm: Any) -> None:
    """run_extract loads its model through model.load.load_model: answer with the copy loaded already."""
    import bertsecrets_cli.model.load as load

    load.load_model = lambda *a, **k: lm


def long_tail_file(out: Path, rows: int, seed: int = 0) -> str:
    """A TSV (sentence, label) of ``rows`` examples, each 1..8 consecutive demo sentences (train+dev) joined, the count
    drawn from a geometric distribution (p = 0.5): half are one sentence, a quarter two, ... a long tail to 8 sentences
    (up to ~180 pieces, cut at --max-length), like reviews or paragraphs rather than SST-2's single phrases."""
    import random

    from bertsecrets_cli.data.sources import load_dataset
    from bertsecrets_cli.data.tasks import get_task

    spec = get_task("sst2")
    pool = load_dataset(spec, None, "train").examples + load_dataset(spec, None, "dev").examples
    rng = random.Random(seed)
    with open(out, "w") as fh:
        fh.write("sentence\tlabel\n")
        for i in range(rows):
            k = 1
            while k < 8 and rng.random() < 0.5:
                k += 1
            start = rng.randrange(len(pool))
            text = " ".join(pool[(start + j) % len(pool)].text_a for j in range(k)).replace("\t", " ")
            fh.write(f"{text}\t{pool[start].label}\n")
    return f"{out}: {rows} rows, 1-8 demo sentences joined per row (geometric, p = 0.5)"


def child(args: argparse.Namespace) -> None:
    """Peak RSS (MiB) of one extract of --child examples, in this fresh process."""
    with tempfile.TemporaryDirectory() as d:
        if args.mem_data:  # the first --child examples of the user's file, as they are
            from bertsecrets_cli.jobs.extract import DataOptions, ExtractOptions, run_extract

            run_extract(ExtractOptions(data=DataOptions(task=args.task, data=args.mem_data, limit=args.child), device=args.device,
                                       batch_size=args.batch_size, max_length=args.max_length, quiet=True, force=True, memory=args.memory),
                        Path(d) / "o.h5", command="benchmark")
            print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
            return
        data, _ = make_data(args.task, args.data, args.child, Path(d), args.join)
        extract_side(None, data, args.task, Path(d) / "o.h5", args)
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def assembly(lm: Any, data: Path, args: argparse.Namespace) -> None:
    """What assembling the store costs: the same extract as one part (part 0 becomes the store, no copy) and as
    four (parts 1-3 are copied into it), with the assembly step (AttentionStoreWriter.finish) timed alone."""
    import bertsecrets_cli.store.writer as writer

    real, spent = writer.AttentionStoreWriter.finish, []

    def timed(self: Any, **kw: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return real(self, **kw)
        finally:
            spent.append(time.perf_counter() - t0)

    writer.AttentionStoreWriter.finish = timed
    try:
        with tempfile.TemporaryDirectory() as d:
            for parts in (1, 4):
                t0 = time.perf_counter()
                extract_side(lm, data, args.task, Path(d) / f"p{parts}.h5", args, part_size=max(1, -(-args.n // parts)))
                total = time.perf_counter() - t0
                print(f"assembly, {parts} part(s) of {-(-args.n // parts)}: {spent[-1]:.3f} s of {total:.2f} s ({100 * spent[-1] / total:.1f}%)")
    finally:
        writer.AttentionStoreWriter.finish = real


def serve_side(args: argparse.Namespace) -> None:
    """A child of :func:`main`: one side (extract, eager or sdpa) served over stdin/stdout (sides.serve)."""
    from bertsecrets_cli.model.load import load_model
    from sides import serve

    lm = load_model(None, device=args.device)
    data, out = Path(args.serve_data), Path(args.serve_out)
    if args.serve == "extract":
        preloaded(lm)
        serve(lambda: extract_side(lm, data, args.task, out, args))
    else:
        model = plain_model(args.serve, lm.device)
        serve(lambda: bare_side(lm, model, data, args.task, args, args.serve == "eager"))


def ratio_line(name: str, num: list[float], den: list[float], target: str) -> str:
    r = [a / b for a, b in zip(num, den)]
    return f"  {name:<28} min {min(r):.3f}  median {statistics.median(r):.3f}  {target}"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=400)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--task", default="sst2")
    ap.add_argument("--data", help="a GLUE task folder or file (its dev split); default: the shipped demo set")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--join", type=int, default=3, help="each example joins 1..N consecutive texts (realistic, long-tailed lengths); 1: the texts as they are")
    ap.add_argument("--mem-n", type=int, default=80, help="peak RSS at this many examples and at 10x as many (0: skip)")
    ap.add_argument("--assembly", action="store_true", help="also the cost of assembling the store from one part vs four")
    ap.add_argument("--sizes", action="store_true", help="also bytes per value: float16, --compression lzf, --encoding uint8")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default); 1 keeps CPU time honest on a loaded machine")
    ap.add_argument("--mem-data", help="memory mode over this data file (TSV/CSV/JSONL or GLUE folder, its dev split): its first "
                    "--mem-n and 10x --mem-n examples, as they are (no joining, no repeats)")
    ap.add_argument("--mem-only", action="store_true", help="only the peak RSS at --mem-n and 10x (no timing)")
    ap.add_argument("--make-long-tail", metavar="OUT.tsv", help="write a long-tailed TSV from the demo data (--rows rows) and stop")
    ap.add_argument("--rows", type=int, default=2000)
    ap.add_argument("--child", type=int)
    ap.add_argument("--memory", default="auto", choices=("auto", "fast", "flat"), help="extract's --memory (host_memory)")
    ap.add_argument("--serve", choices=("extract", "eager", "sdpa"), help=argparse.SUPPRESS)
    ap.add_argument("--serve-data", help=argparse.SUPPRESS)
    ap.add_argument("--serve-out", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.make_long_tail:
        print(long_tail_file(Path(args.make_long_tail), args.rows))
        return
    if args.mem_only:
        memory(args)
        return
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    if args.child:
        child(args)
        return
    if args.serve:
        serve_side(args)
        return
    import numpy as np
    import torch

    from bertsecrets_cli.model.load import load_model
    from bertsecrets_cli.store import open_store

    from sides import Side, interleaved

    lm = load_model(None, device=args.device)
    preloaded(lm)
    with tempfile.TemporaryDirectory() as d:
        folder = Path(d)
        data, note = make_data(args.task, args.data, args.n, folder, args.join)
        from bertsecrets_cli.jobs.extract import DataOptions, load_examples

        _, ds = load_examples(DataOptions(task=args.task, data=str(data)))
        _, n_tokens = batches(lm, ds.examples, args.max_length, args.batch_size)
        lengths = np.asarray(lengths_of(lm, ds.examples, args.max_length))
        out = folder / "x.h5"
        base = [__file__, "--task", args.task, "--device", args.device, "--batch-size", str(args.batch_size), "--max-length", str(args.max_length),
                "--memory", args.memory, "--serve-data", str(data), "--serve-out", str(out), *(["--threads", str(args.threads)] if args.threads else [])]
        names = ["extract", "eager", "sdpa"]
        with Side("extract", [*base, "--serve", "extract"]) as s_ext, Side("eager", [*base, "--serve", "eager"]) as s_eag, \
                Side("sdpa", [*base, "--serve", "sdpa"]) as s_sdpa:
            interleaved([s_ext, s_eag, s_sdpa], args.repeats)
        wall = {k: [t["wall"] for t in sd.times] for k, sd in zip(names, (s_ext, s_eag, s_sdpa))}
        cpu = {k: [t["cpu"] for t in sd.times] for k, sd in zip(names, (s_ext, s_eag, s_sdpa))}
        with open_store(out) as st:
            values = int(st.h5["attention/maps"].shape[0])
            att_bytes = st.h5["attention/maps"].id.get_storage_size()
        size = out.stat().st_size
        print(f"{args.n} examples ({note}), {n_tokens} tokens, batch {args.batch_size}, max length {args.max_length}; "
              f"embedded MiniLM (6x12), {lm.device}, torch threads {torch.get_num_threads()}, {os.cpu_count()} CPUs, "
              f"load average {os.getloadavg()[0]:.2f}; {args.repeats} interleaved repeats, each side in a process of its own; extract --memory {args.memory}")
        print(f"  lengths in pieces: mean {lengths.mean():.1f}, median {np.median(lengths):.0f}, p90 {np.percentile(lengths, 90):.0f}, "
              f"min {lengths.min()}, max {lengths.max()}")
        for k in names:
            print(f"  {k:<8} wall min {min(wall[k]):.2f} s median {statistics.median(wall[k]):.2f} s; cpu min {min(cpu[k]):.2f} s; "
                  f"{n_tokens / min(wall[k]):,.0f} tokens/s")
        print("ratios per repeat (extract / side):")
        print(ratio_line("wall, extract / eager+attn", wall["extract"], wall["eager"], "(target <= 1.05)"))
        print(ratio_line("cpu,  extract / eager+attn", cpu["extract"], cpu["eager"], ""))
        print(ratio_line("wall, extract / sdpa", wall["extract"], wall["sdpa"], "(target <= 1.30)"))
        print(ratio_line("cpu,  extract / sdpa", cpu["extract"], cpu["sdpa"], ""))
        print(f"bytes per stored value, float16: {att_bytes / values:.3f} for the attention array, {size / values:.3f} for the whole file")
        if args.assembly:
            assembly(lm, data, args)
        if args.sizes:
            lzf, u8 = folder / "lzf.h5", folder / "u8.h5"
            extract_side(lm, data, args.task, lzf, args, compression="lzf")
            extract_side(lm, data, args.task, u8, args, encoding="uint8")
            with open_store(u8) as sl, open_store(out) as sf:
                err = max(float(np.abs(sl.attention(i) - sf.attention(i)).max()) for i in range(0, args.n, max(1, args.n // 50)))
            print(f"with --compression lzf: {lzf.stat().st_size / values:.3f} bytes per value; --encoding uint8: "
                  f"{u8.stat().st_size / values:.3f}, max abs error {err:.4f}")
    if args.mem_n:
        memory(args)


def memory(args: argparse.Namespace) -> None:
    """Peak RSS of extract at --mem-n and 10x --mem-n examples, each a fresh process."""
    if args.mem_n:
        mem = {}
        for n in (args.mem_n, 10 * args.mem_n):
            cmd = [sys.executable, __file__, "--child", str(n), "--task", args.task, "--device", args.device,
                   "--batch-size", str(args.batch_size), "--max-length", str(args.max_length), "--join", str(args.join),
                   *(["--data", args.data] if args.data else []), *(["--mem-data", args.mem_data] if args.mem_data else []),
                   *(["--threads", str(args.threads)] if args.threads else []), "--memory", args.memory]
            res = subprocess.run(cmd, capture_output=True, text=True, check=True)
            mem[n] = float(res.stdout.strip().splitlines()[-1])
        if args.mem_data:
            note = f"the first examples of {args.mem_data}"
        else:
            with tempfile.TemporaryDirectory() as d:
                _, note = make_data(args.task, args.data, 10 * args.mem_n, Path(d), args.join)
        a, b = args.mem_n, 10 * args.mem_n
        print(f"peak RSS of extract as a process: {mem[a]:.0f} MiB at {a} examples, {mem[b]:.0f} MiB at {b} ({note}); "
              f"ratio {mem[b] / mem[a]:.3f} (target <= 1.05; --memory {args.memory})")


if __name__ == "__main__":
    main()
