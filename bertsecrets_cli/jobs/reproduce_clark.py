"""The Clark et al. 2019 part of ``reproduce``: head clustering always (on the first task's pretrained store,
at word level), coreference heads with ``--coref``, the attention probe with ``--conllu`` and ``--probe-test``;
and their section of index.md next to the paper's transcribed numbers (reference/clark_numbers.json)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def check_inputs(opts: Any) -> None:
    """Fail on an unreadable coreference or probe test file now, not after hours of fine-tuning."""
    from bertsecrets_cli.errors import InputError

    if getattr(opts, "probe_test", None):
        if not opts.conllu:
            raise InputError("--probe-test: give --conllu too (the probe is trained on it)")
        from bertsecrets_cli.data.conllu import read_conllu

        for _ in read_conllu(opts.probe_test):
            pass
    if getattr(opts, "coref", None):
        from bertsecrets_cli.data.coref import read_coref

        read_coref(opts.coref)


def run_steps(run: Any, opts: Any, out: Path, first_task: str, model_arg: list[str], dev: list[str]) -> None:
    """Clark et al.'s steps, each ``run.step(name, output, argv, fn(force, resume))`` (these finish in one go)."""
    from dataclasses import replace

    from bertsecrets_cli.jobs.cluster import ClusterOptions, run_cluster
    from bertsecrets_cli.jobs.words import WordsOptions, run_words

    st = out / "stores"
    pre, pat = st / f"{first_task}-pre.h5", st / f"{first_task}-pre.pat.h5"
    words, clusters, fig = st / f"{first_task}-pre.words.h5", st / f"{first_task}-pre.clusters.h5", out / "figures" / "clusters.png"
    run.step("Clark: word-level attention", words, ["words", str(pre), "-o", str(words)],
             lambda f, r: run_words(pre, words, WordsOptions(force=f, quiet=opts.quiet)))
    # beside Clark's Figure 6: his setting (word pieces, smoothed JS summed, metric MDS; docs/guide/clark.md: Whose definition)
    run.step("Clark: head clustering", clusters, ["cluster", str(pre), "--definition", "authors", "-o", str(clusters), "--patterns", str(pat),
                                                  "--figure", str(fig)],
             lambda f, r: run_cluster(pre, clusters, ClusterOptions(definition="authors", patterns=str(pat), figure=str(fig), force=f,
                                                                    quiet=opts.quiet)))
    if getattr(opts, "coref", None):
        from bertsecrets_cli.jobs.coref import CorefOptions, run_coref

        path = st / "coreference.h5"
        co = CorefOptions(data=opts.coref, model=opts.model, device=opts.device, quiet=opts.quiet)
        run.step("Clark: coreference heads", path, ["coref", opts.coref, *model_arg, "-o", str(path), *dev],
                 lambda f, r: run_coref(replace(co, force=f), path))
    if getattr(opts, "probe_test", None):
        from bertsecrets_cli.jobs.probe import ProbeOptions, run_probe

        path = st / "probe.h5"
        # set beside Clark's Table 3: his candidates (ROOT) and his UAS (no punctuation)
        po = ProbeOptions(train=opts.conllu, test=opts.probe_test, model=opts.model, device=opts.device, quiet=opts.quiet, definition="authors")
        run.step("Clark: attention probe", path, ["probe", "--train", opts.conllu, "--test", opts.probe_test, *model_arg, "--definition", "authors",
                                                  "-o", str(path), *dev],
                 lambda f, r: run_probe(replace(po, force=f), path))


PAPER_DATA = {"dependency": "WSJ dev, Stanford Dependencies", "probe": "WSJ, Stanford Dependencies", "coreference": "CoNLL-2012 dev"}
DEFINITION_WORDS = {"authors": "definition: authors (Clark's code)", "ours": "definition: ours"}


def clark_setup(model_same: bool, data: str, analysis: str, definition: str) -> str:
    """A comparison row's setup: the model, this run's data next to the paper's, and whose definition."""
    return (f"{'same' if model_same else 'different'} model; data: {Path(data).name or data} (paper: {PAPER_DATA[analysis]}); "
            f"{DEFINITION_WORDS.get(definition, 'definition: ' + definition)}")


def index_section(out: Path, cmp: Any, setup: str, table_md: Any, fmt: Any, *, model_same: bool = False) -> list[str]:
    """index.md lines for the Clark analyses present in OUT/stores, and their rows of the comparison table
    (``setup`` labels the rows on the tasks' data; the treebank rows name their own data and definition)."""
    from bertsecrets_cli.reference import clark_numbers
    from bertsecrets_cli.render.tables import Table
    from bertsecrets_cli.store import open_store

    ref = clark_numbers()
    st = out / "stores"
    body: list[str] = []
    dep = st / "dependency.h5"
    if dep.exists():
        from bertsecrets_cli.jobs.framenet import DEP_RELATIONS

        from bertsecrets_cli.jobs.framenet import DEP_FEATURES

        with open_store(dep) as s:
            rows = {r["label"]: r for r in s.json(DEP_RELATIONS)}
            prov = s.provenance()
            feats = (s.array(f"{DEP_FEATURES}/sums"), s.array(f"{DEP_FEATURES}/counts"), s.n_layers, s.n_heads) if s.has(DEP_FEATURES) else None
        if feats is not None:  # Kovaleva et al. sec. 4.4's nouns, verbs, ... from the treebank's UPOS/DEPREL
            from bertsecrets_cli.analysis.linguistic import FeatureMeans
            from bertsecrets_cli.jobs.linguistic import feature_tables

            fm = FeatureMeans(feats[2], feats[3])
            fm.absorb(feats[0], feats[1])
            body += ["## Kovaleva et al. 2019, sec. 4.4: attention to linguistic features", ""]
            for i, tb in enumerate(feature_tables(fm, int(prov.get("n_sentences", 0)), f"UPOS/DEPREL of {Path(str(prov.get('data_source', ''))).name}",
                                                  "sentences")):
                body += table_md(out, f"features-{i}", tb)
        definition = str(prov.get("definition", "ours"))
        row_setup = clark_setup(model_same, str(prov.get("data_source", "")), "dependency", definition)
        for paper_label, ud in ref["dependency_ud_labels"].items():
            r = rows.get(ud) or rows.get(paper_label)
            best, offset = ref["dependency_best_head_vs_best_offset_percent"][paper_label]
            if r and "best_both_head" in r:  # Clark's cell: one head over both directions
                head, acc = f"{r['best_both_head']} {r['best_both_direction']}", r["best_both_accuracy"]
            elif r:
                head, acc = r["best_head"], r["best_accuracy"]
            ours = (f"{head} {100 * acc:.1f} vs offset {r['offset_k']:+d} {100 * r['offset_accuracy']:.1f} ({r['count']} arcs"
                    f"{', fewer than 100' if r['count'] < 100 else ''})" if r else "no such arcs")
            cmp.add(f"best head vs best offset: {paper_label} (%)", "Clark: dependencies", f"{best} vs {offset}", ours, row_setup)
    clusters = sorted(st.glob("*.clusters.h5"))
    if clusters:
        from bertsecrets_cli.analysis.clustering import layer_cohesion, nearest_heads
        from bertsecrets_cli.jobs.cluster import DISTANCE

        from bertsecrets_cli.analysis.definitions import title_note

        with open_store(clusters[0]) as s:
            D, L, H = s.array(DISTANCE), s.n_layers, s.n_heads
            cprov = s.provenance()
        within, between = layer_cohesion(D, L, H)
        idx, _ = nearest_heads(D, 1)
        same = float(np.mean(idx[:, 0] // H == np.arange(L * H) // H))
        cdef = str(cprov.get("definition", "ours"))
        t = Table(f"head clustering: mean {cprov.get('measure', 'js-distance')} within and across layers ({cprov.get('level', '')}, "
                  f"{cprov.get('n_examples', '?')} examples of {cprov.get('task', '') or Path(str(cprov.get('data_source', ''))).name}; "
                  f"{title_note(cdef, 'cluster')})", ["layer", "within", "across", "ratio"])
        for ly in range(L):
            t.add(f"L{ly + 1}", float(within[ly]), float(between[ly]), float(within[ly] / between[ly]))
        body += ["## Clark et al. 2019: heads clustered by behaviour", ""]
        fig = out / "figures" / "clusters.png"
        body += table_md(out, "clusters", t, fig if fig.exists() else None)
        cmp.add("heads of a layer behave alike (nearest head in the same layer)", "Clark: clustering", "yes (Fig. 6)",
                f"{same:.0%} of heads (chance {(H - 1) / (L * H - 1):.0%})", f"{setup}; {DEFINITION_WORDS.get(cdef, cdef)}")
    co = st / "coreference.h5"
    if co.exists():
        from bertsecrets_cli.jobs.coref import coref_tables

        with open_store(co) as s:
            summary = s.json("coreference/summary")
            heads = {k: v.values for k, v in s.heads().items()}
            boot = int(s.provenance().get("bootstrap", 0))
            co_setup = clark_setup(model_same, str(s.provenance().get("data_source", "")), "coreference", "ours")
        rows_ = [_Row(r, heads[f"coref_{r['type']}"]) for r in summary]
        body += ["## Clark et al. 2019: coreference heads", ""]
        for i, tb in enumerate(coref_tables(rows_, 10, boot)):
            body += table_md(out, f"coreference-{i}", tb)
        allrow = next(r for r in summary if r["type"] == "all")
        cmp.add("best coreference head, antecedent accuracy (%)", "Clark: coreference", str(ref["coreference_best_head_accuracy_percent"]),
                f"{allrow['best_head']} {100 * allrow['best_accuracy']:.1f} (rule-based {100 * allrow['baselines']['rule-based']:.1f})", co_setup)
        table2 = ref["coreference_antecedent_accuracy_percent"]
        for r in summary:  # Table 2's rows by mention type: best head vs the rule-based baseline
            if r["type"] in table2["_columns"] and r["type"] != "all" and r.get("count"):
                k = table2["_columns"].index(r["type"])
                cmp.add(f"coreference, {r['type']}s: best head vs rule-based (%)", "Clark: coreference",
                        f"{table2['best head (5-4)'][k]} vs {table2['rule-based'][k]} (Table 2*)",
                        f"{r['best_head']} {100 * r['best_accuracy']:.1f} vs {100 * r['baselines']['rule-based']:.1f} ({r['count']} mentions)", co_setup)
    pr = st / "probe.h5"
    if pr.exists():
        from bertsecrets_cli.analysis.definitions import title_note

        with open_store(pr) as s:
            res = s.json("probe/results")
            prov = s.provenance()
        definition = str(prov.get("definition", "ours"))
        setup = clark_setup(model_same, str(prov.get("test_source", "")), "probe", definition)
        t = Table(f"attention probe: unlabeled attachment score on {Path(str(prov.get('test_source', ''))).name} "
                  f"({prov.get('n_test_scored', prov.get('n_test_words', '?'))} scored words; {title_note(definition, 'probe')})", ["model", "UAS"])
        for k, v in res["uas"].items():
            t.add(k, float(v))
        body += ["## Clark et al. 2019: the attention probe", ""] + table_md(out, "probe", t)
        table3 = ref["probe_uas_percent"]
        cmp.add("right-branching baseline UAS (%)", "Clark: probe", f"{table3['right-branching']} (Table 3*)",
                f"{100 * res['uas']['right-branching']:.1f}", setup)
        cmp.add("attention-only probe UAS (%)", "Clark: probe", f"{table3['attention-only probe']} (Table 3*)",
                f"{100 * res['uas']['attention-only probe']:.1f}", setup)
        words = next((k for k in res["uas"] if k.startswith("attention + words probe")), None)
        if words is not None:  # the model's own input embeddings stand in for GloVe
            cmp.add("attention + words probe UAS (%)", "Clark: probe", f"{table3['attention + GloVe probe']} with GloVe (Table 3*)",
                    f"{100 * res['uas'][words]:.1f} with the model's input embeddings", setup)
    if co.exists() or pr.exists():
        body += ["(*) Clark et al.'s Table 2 and Table 3 are transcribed from two agreeing secondary notes on the paper, "
                 "not from the PDF (bertsecrets_cli/reference/clark_numbers.json says so per table).", ""]
    return body


class _Row:
    """A coreference summary row as coref_tables reads it."""

    def __init__(self, r: dict[str, Any], accuracy: np.ndarray) -> None:
        from bertsecrets_cli.heads import parse_head

        self.type, self.count, self.accuracy = r["type"], r["count"], accuracy
        self.best = parse_head(r["best_head"])
        self.best_interval = tuple(r["best_interval"])
        self.baselines = r["baselines"]
        self.baseline_intervals = {k: tuple(v) for k, v in r["baseline_intervals"].items()}
