"""extract's cost over a bare eager forward with attention output, per encoder family, on the same batches.

Decoders too (``--families gpt2,llama,qwen2,qwen3,mistral``: conftest.DECODER_FAMILIES, 12 query heads on 4
key-value heads for the Llama architecture).

For every family of tests/conftest.py (``ALL_FAMILIES``), a MiniLM-sized random model (6 layers, 12 heads,
hidden 384, intermediate 1536; DeBERTa with both relative-position terms, ModernBERT with its local and
global layers) with a tokenizer of the family's own kind trained on the shipped demo texts
(``conftest.build_tokenizer``), then the two sides of ``extract_overhead.py`` over exactly the same
batches, timed in wall clock and CPU time (the side's process, all threads), one warm-up each, then interleaved
repeats in rotating order:

* extract: ``run_extract`` (tokenise, forward with capture, statistics, float16 copy, write, assemble),
  with the model loaded once beforehand;
* eager:   the family's own eager attention (``attn_implementation="eager"``, ``output_attentions=True``,
           maps dropped), the same weights: the physical limit of extract. Target extract <= 1.10x.

Each side runs in a process of its own (benchmarks/sides.py), interleaved from this one: extract's heap
policy (``--memory``, host_memory) is process-wide and must not slow the baseline down.

Prints per family min and median of the per-repeat ratios, wall and CPU (on a shared, loaded machine the CPU
ratio is the steadier one). ``--inline`` adds a third side, extract with its capture forced onto the forward's
thread (model.capture_worker.FORCE = False): where torch's threads leave a core free (``--threads 1`` on two
cores) extract runs the capture on its own thread, and this is the before/after. Usage:
  python benchmarks/family_overhead.py [--n 160] [--repeats 5] [--threads 1] [--memory auto] [--inline] [--families bert,albert,...]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent / "tests")]

from extract_overhead import bare_side, extract_side, make_data, preloaded  # noqa: E402


def family_model(folder: Path, family: str, tokenizer) -> Path:  # noqa: ANN001
    """A MiniLM-sized random model of ``family`` saved with ``tokenizer``."""
    import torch
    from transformers import AutoModel

    from conftest import tiny_config

    ids = {k: getattr(tokenizer, k) for k in ("bos_token_id", "eos_token_id", "cls_token_id", "sep_token_id") if getattr(tokenizer, k, None) is not None}
    size = dict(dim=384, n_layers=6, n_heads=12, hidden_dim=1536) if family == "distilbert" else \
        dict(hidden_size=384, num_hidden_layers=6, num_attention_heads=12, intermediate_size=1536)
    if family == "modernbert":  # ModernBERT-base's pattern: a global layer every third, local windows elsewhere
        size.update(local_attention=16, global_attn_every_n_layers=3)
    if family == "gpt2":
        size.update(n_inner=1536)
    if family in ("llama", "qwen2", "qwen3", "mistral"):  # grouped-query attention: 12 query heads on 4 key-value heads
        size.update(num_key_value_heads=4, head_dim=32)
    cfg = tiny_config(family, len(tokenizer), tokenizer.pad_token_id, sizes=size, **ids)
    torch.manual_seed(0)
    model = AutoModel.from_config(cfg)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def serve_side(args: argparse.Namespace) -> None:
    """A child of :func:`main`: one side (extract or eager) of one family, served over stdin/stdout (sides.serve)."""
    import torch
    from transformers import AutoModel

    from bertsecrets_cli.model.load import load_model
    from sides import serve

    if args.threads:
        torch.set_num_threads(args.threads)
    lm = load_model(args.model_dir, device=args.device)
    if args.serve in ("extract", "inline"):
        if args.serve == "inline":  # the capture forced onto the forward's thread (model.capture_worker)
            import bertsecrets_cli.model.capture_worker as capture_worker

            capture_worker.FORCE = False
        preloaded(lm)
        serve(lambda: extract_side(lm, Path(args.data), "sst2", Path(args.out), args))
        return
    eager = AutoModel.from_pretrained(args.model_dir, attn_implementation="eager").to(lm.device).eval()
    eager.config.use_cache = False  # as extract's decoders: no key-value cache for one whole pass
    serve(lambda: bare_side(lm, eager, Path(args.data), "sst2", args, True))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=160)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--join", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--families", default="", help="comma-separated (default: every family of tests/conftest.py)")
    ap.add_argument("--memory", default="auto", choices=("auto", "fast", "flat"), help="extract's --memory (host_memory)")
    ap.add_argument("--inline", action="store_true", help="also time extract with its capture forced inline (model.capture_worker)")
    ap.add_argument("--serve", choices=("extract", "eager", "inline"), help=argparse.SUPPRESS)
    ap.add_argument("--model-dir", help=argparse.SUPPRESS)
    ap.add_argument("--data", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        serve_side(args)
        return
    import torch

    from conftest import ALL_FAMILIES, DECODER_TOKENIZERS, FAMILY_TOKENIZERS, build_tokenizer
    from sides import Side, interleaved, ratios

    if args.threads:
        torch.set_num_threads(args.threads)
    families = [f for f in args.families.split(",") if f] or list(ALL_FAMILIES)
    task = "sst2"
    tokenizers: dict = {}
    print(f"{args.n} examples (demo {task}, --join {args.join}), batch {args.batch_size}, max length {args.max_length}, {args.device}, "
          f"torch threads {torch.get_num_threads()} of {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}; "
          f"{args.repeats} interleaved repeats, each side in a process of its own; extract --memory {args.memory}; models: 6 layers x 12 heads, hidden 384, random weights")
    print(f"{'family':<12} {'tokenizer':<30} {'tokens':>6} {'eager s':>7} {'extract s':>9}  extract / eager+attn, min median: wall     cpu"
          "   (target <= 1.10)")
    common = ["--threads", str(args.threads), "--device", args.device, "--batch-size", str(args.batch_size), "--max-length", str(args.max_length),
              "--memory", args.memory]
    with tempfile.TemporaryDirectory() as d:
        folder = Path(d)
        data, _ = make_data(task, None, args.n, folder, args.join)
        for family in families:
            kind = {**FAMILY_TOKENIZERS, **DECODER_TOKENIZERS}[family]
            if kind not in tokenizers:
                tokenizers[kind] = build_tokenizer(*kind, vocab_size=2000)
            path = family_model(folder / family, family, tokenizers[kind])
            out = folder / f"{family}.h5"
            base = [__file__, *common, "--model-dir", str(path), "--data", str(data), "--out", str(out)]
            with Side("extract", [*base, "--serve", "extract"]) as ext, Side("eager", [*base, "--serve", "eager"]) as eag:
                inline = Side("inline", [*base, "--serve", "inline"]) if args.inline else None
                try:
                    interleaved([ext, eag, *([inline] if inline else [])], args.repeats)
                finally:
                    if inline:
                        inline.close()
            from bertsecrets_cli.store import open_store

            with open_store(out) as st:
                tokens = int(st.lengths().sum())
            r, c = ratios(ext, eag, "wall"), ratios(ext, eag, "cpu")
            if inline:
                ri, ci = ratios(inline, eag, "wall"), ratios(inline, eag, "cpu")
            print(f"{family:<12} {'/'.join(kind):<30} {tokens:>6} {min(t['wall'] for t in eag.times):>7.2f} "
                  f"{min(t['wall'] for t in ext.times):>9.2f}  {'':<27}{min(r):.3f} {statistics.median(r):.3f}   "
                  f"{min(c):.3f} {statistics.median(c):.3f}" + (f"   inline capture: {min(ri):.3f} {statistics.median(ri):.3f}   "
                  f"{min(ci):.3f} {statistics.median(ci):.3f}" if inline else ""), flush=True)


if __name__ == "__main__":
    main()
