"""Time of the whole ``framenet`` pipeline on a synthetic FrameNet-format corpus, and its parts.

Real FrameNet cannot be downloaded here, so the script writes a release in the real layout (frame/*.xml with
coreType, fulltext/*.xml, lu/*.xml exemplars, namespace http://framenet.icsi.berkeley.edu) with ``--n``
sentences of 5-14 random words, each with one target and two or three frame elements (core and peripheral).
It then measures, in this one run, on the embedded MiniLM model:

* the whole pipeline (``jobs.framenet.run_relations``: read, select, tokenise, forward, score, write),
* a bare forward pass over the same selected sentences with the same batching (nothing scored),
  giving the ratio (forward + scoring) / bare forward,
* the reader alone on a corpus ``--reader-scale`` times larger (sentences per second), to extrapolate
  to FrameNet 1.7's ~200,000 exemplar sentences.

Usage: python benchmarks/framenet_speed.py [--n 400] [--device cpu] [--batch-size 32]
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import tempfile
import time
from pathlib import Path
from xml.sax.saxutils import escape

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

NS = 'xmlns="http://framenet.icsi.berkeley.edu"'
WORDS = ("the old man woman child dog city river house car ship letter plan money friend teacher garden road "
         "quickly slowly never often green small large quiet happy sad early late under over with from near").split()
FRAMES = {  # frame -> [(FE, coreType)], the target verb
    "Abandonment": ([("Agent", "Core"), ("Theme", "Core"), ("Place", "Peripheral")], "abandoned"),
    "Arriving": ([("Theme", "Core"), ("Goal", "Core"), ("Time", "Peripheral")], "arrived"),
    "Giving": ([("Donor", "Core"), ("Recipient", "Core"), ("Theme", "Core"), ("Manner", "Peripheral")], "gave"),
    "Motion": ([("Theme", "Core"), ("Path", "Core"), ("Speed", "Peripheral")], "moved"),
    "Statement": ([("Speaker", "Core"), ("Message", "Core"), ("Time", "Peripheral")], "said"),
}


def sentence(rng: random.Random, frame: str, set_id: int, fulltext: bool) -> tuple[str, str]:
    """One sentence element with its text and one frame annotation set."""
    fes, verb = FRAMES[frame]
    words = [rng.choice(WORDS) for _ in range(rng.randint(5, 14))]
    t = rng.randrange(1, len(words) - 1)
    words[t] = verb
    text = " ".join(words)
    starts = [sum(len(w) + 1 for w in words[:i]) for i in range(len(words))]

    def span(i: int, n: int) -> tuple[int, int]:
        return starts[i], starts[i + n - 1] + len(words[i + n - 1]) - 1  # inclusive end

    labels = []
    for fe, _ in rng.sample(fes, k=min(len(fes), rng.randint(2, 3))):
        n = rng.choice((1, 1, 2, 2, 3, 4))
        i = rng.randrange(0, len(words) - n + 1)
        if i <= t < i + n:
            continue
        s, e = span(i, n)
        labels.append(f'<label end="{e}" start="{s}" name="{fe}"/>')
    ts, te = span(t, 1)
    names = f'luName="{verb}.v" frameName="{frame}" ' if fulltext else ""
    aset = (f'<annotationSet {names}status="MANUAL" ID="{set_id}"><layer rank="1" name="Target"><label end="{te}" start="{ts}" name="Target"/></layer>'
            f'<layer rank="1" name="FE">{"".join(labels)}</layer><layer rank="1" name="GF"/><layer rank="1" name="PT"/></annotationSet>')
    pos = f'<annotationSet status="UNANN" ID="{set_id + 1}"><layer rank="1" name="PENN"><label end="2" start="0" name="dt"/></layer></annotationSet>'
    return text, f'<sentence ID="{set_id}"><text>{escape(text)}</text>{pos}{aset}</sentence>'


def write_release(root: Path, n: int, seed: int = 0) -> Path:
    rng = random.Random(seed)
    for sub in ("frame", "fulltext", "lu"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for frame, (fes, _) in FRAMES.items():
        fe_xml = "".join(f'<FE coreType="{c}" name="{fe}" ID="{i}" abbrev="x"><definition>x</definition></FE>' for i, (fe, c) in enumerate(fes))
        (root / "frame" / f"{frame}.xml").write_text(f'<?xml version="1.0"?><frame name="{frame}" ID="1" {NS}><definition>x</definition>{fe_xml}</frame>')
    half = n // 2
    for d in range(0, half, 20):  # full-text documents of 20 sentences
        body = "".join(sentence(rng, rng.choice(list(FRAMES)), 10 * (d + i), True)[1] for i in range(min(20, half - d)))
        (root / "fulltext" / f"SYN__doc{d:06d}.xml").write_text(f'<?xml version="1.0"?><fullTextAnnotation {NS}><header/>{body}</fullTextAnnotation>')
    for u in range(0, n - half, 10):  # lexical-unit files of 10 exemplars
        frame = rng.choice(list(FRAMES))
        body = "".join(sentence(rng, frame, 10 * (half + u + i), False)[1] for i in range(min(10, n - half - u)))
        (root / "lu" / f"lu{u:06d}.xml").write_text(f'<?xml version="1.0"?><lexUnit name="{FRAMES[frame][1]}.v" frame="{frame}" ID="{u}" {NS}>'
                                                   f'<header/><subCorpus name="s">{body}</subCorpus></lexUnit>')
    return root


def bare_forward(lm, texts: list[str], batch_size: int, keep: bool = False) -> tuple[float, list]:
    """The same model, tokenisation and batching, with attention captured and nothing scored."""
    from bertsecrets_cli.jobs.attention_batches import iter_attention
    from bertsecrets_cli.model.tokenize import encode_examples

    t0 = time.perf_counter()
    enc = encode_examples(lm.tokenizer, [(t, None) for t in texts], 128)
    maps = [(e, a) if keep else None for _, e, a in iter_attention(lm, enc, batch_size, quiet=True)]
    return time.perf_counter() - t0, maps


def scoring_only(maps: list, links: list[dict], n_layers: int, n_heads: int) -> float:
    """FrameNetScorer over maps already in memory: the cost scoring adds to each forward pass."""
    import numpy as np

    from bertsecrets_cli.analysis.framenet import FrameNetScorer, Link

    by_sentence: dict[int, list[Link]] = {}
    for d in links:
        by_sentence.setdefault(d["sentence"], []).append(Link(d["frame"], d["lu"], d["fe"], np.array(d["fe_pieces"]), np.array(d["target_pieces"]),
                                                            d["distance"], tuple(d["fe_span"]), tuple(map(tuple, d["target_spans"]))))
    scorer = FrameNetScorer(n_layers, n_heads, samples=100)
    t0 = time.perf_counter()
    for i, (enc, att) in enumerate(maps):
        scorer.add(att, by_sentence.get(i, []), enc.special)
    scorer.result()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=400)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--reader-scale", type=int, default=25)
    ap.add_argument("--repeats", type=int, default=2, help="each timing is the best of this many runs (the machine may be shared)")
    args = ap.parse_args()

    from bertsecrets_cli.data.framenet import FrameNetRelease
    from bertsecrets_cli.jobs.framenet import FrameNetOptions, run_relations
    from bertsecrets_cli.model.load import load_model
    from bertsecrets_cli.render.console import set_verbosity
    from bertsecrets_cli.store import open_store

    set_verbosity(-1)
    with tempfile.TemporaryDirectory() as tmp:
        root = write_release(Path(tmp) / "fndata-syn", args.n)
        lm = load_model(None, device=args.device)
        bare_forward(lm, ["warm up the model and the thread pool ."] * 4, args.batch_size)
        totals, bares, runs = [], [], []
        for r in range(args.repeats):
            out = Path(tmp) / f"fn{r}.h5"
            t0 = time.perf_counter()
            res = run_relations(FrameNetOptions(framenet=str(root), device=args.device, batch_size=args.batch_size, quiet=True), out, command="bench")
            totals.append(time.perf_counter() - t0)
            runs.append(res)
            with open_store(out) as st:
                texts = st.strings("examples/text_a")
                tokens = int(st.array("examples/length").sum())
                links = st.json("framenet/links")
            bares.append(bare_forward(lm, texts, args.batch_size)[0])
        _, maps = bare_forward(lm, texts, args.batch_size, keep=True)
        score_s = min(scoring_only(maps, links, lm.n_layers, lm.n_heads) for _ in range(args.repeats))

        big = write_release(Path(tmp) / "fndata-big", args.n * args.reader_scale, seed=1)
        t1 = time.perf_counter()
        rel = FrameNetRelease(big)
        rel.frames()
        n_read = sum(1 for _ in rel.sentences())
        read_s = time.perf_counter() - t1

    best = min(range(args.repeats), key=lambda i: totals[i])
    res, total, bare = runs[best], totals[best], min(bares)
    print(f"corpus: {args.n} synthetic sentences -> {res.n_sentences} selected, {res.n_links} links, {tokens} pieces "
          f"(model {res.n_layers}x{res.n_heads} heads, device {args.device}, batch {args.batch_size}; best of {args.repeats} runs)")
    print(f"whole pipeline (run_relations, model load included): {total:.2f} s")
    for k, v in res.timings.items():
        print(f"  {k:<16} {v:6.2f} s")
    print(f"bare forward with attention, same sentences and batching: {bare:.2f} s")
    print(f"scoring alone (100 baseline draws per link), maps in memory: {score_s:.3f} s = {score_s / bare:.3f} x the bare forward")
    print(f"ratio whole pipeline / bare forward: {total / bare:.2f}")
    print(f"reader alone: {n_read} sentences in {read_s:.2f} s = {n_read / read_s:,.0f} sentences/s "
          f"(FrameNet 1.7's ~200,000 exemplars -> about {200_000 / (n_read / read_s):.0f} s to parse)")
    print(f"peak memory (max RSS): {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
