"""``reproduce``: the paper's analyses end to end, into one folder with an index.

For each task: fine-tune, extract pretrained and fine-tuned attention over dev examples, classify the
patterns of both, diff them, ablate every head and layer of the fine-tuned model; FrameNet (and CoNLL-U)
relation heads when a corpus is given. Every step writes its own store with the same job functions the
subcommands use, so each can be rerun alone; ``resume`` skips the steps whose output already exists and was
made by the same command from the same inputs (outputs are atomic, so existing means complete; fingerprints in
RECORD say by what), and continues a step stopped half-way from its parts. SIGINT/SIGTERM stop every step with
exit 75, keeping what is finished. ``index.md`` shows every table and figure, and sets
the paper's headline numbers next to ours, saying whether model and data are the paper's.
"""

from __future__ import annotations

import json
import os
import shlex
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from bertsecrets_cli import outputs
from bertsecrets_cli.errors import InputError, Interrupted, OutputError
from bertsecrets_cli.render.console import info
from bertsecrets_cli.render.tables import Table, to_markdown

DEMO_TASKS = ("sst2", "mrpc", "stsb")
# norm-based maps with rows normalised to sum 1: comparable with the weights by the same classifier and statistics
NORMS = "norms_normalised"
HEADLINE_QUANTITIES = ("weights", NORMS)
PAPER_TASKS = ("mrpc", "stsb", "sst2", "qqp", "rte", "qnli", "mnli")
VIEW_EXAMPLES = 4  # dev examples per task in the HTML views (views/TASK.html)


@dataclass
class ReproduceOptions:
    model: str | None = None  # None: the embedded MiniLM
    data: str | None = None  # a glue_data folder (one subfolder per task) or None: demo data
    tasks: tuple[str, ...] = DEMO_TASKS
    preset: str = "demo"  # finetune preset: "demo" (quick CPU run) or "paper"
    train_limit: int | None = None
    max_steps: int | None = None
    eval_limit: int = 200  # dev examples analysed (the paper: at most 1000)
    bootstrap: int = 1000
    framenet: str | None = None
    conllu: str | None = None
    coref: str | None = None  # coreference chains (CorefUD CoNLL-U or JSONL): adds Clark et al.'s coreference heads
    probe_test: str | None = None  # a second CoNLL-U file: adds the attention probe, trained on --conllu
    device: str = "auto"
    resume: bool = False
    force: bool = False
    quiet: bool = False


@dataclass
class StepLog:
    name: str
    command: str
    seconds: float
    skipped: bool


@dataclass
class ReproduceResult:
    out: Path
    index: Path
    steps: list[StepLog] = field(default_factory=list)
    comparison: Table | None = None

    @property
    def seconds(self) -> float:
        return sum(s.seconds for s in self.steps)


RECORD = ".reproduce-steps.json"  # in the output folder: each finished step's output -> its fingerprint
# Seconds one step of each kind took with the defaults (embedded model, demo data, 3 tasks, 200 examples) on a
# 2-core machine shared with other jobs (reproduce's own index, 2026-12-07): only for the "about N min left"
# estimate, which is rescaled by the time the steps already run took.
STEP_WEIGHTS = {"fine-tune": 380.0, "extract": 27.0, "classify": 1.0, "diff": 0.5, "ablate": 150.0, "framenet": 30.0, "dependency": 10.0,
                "Clark": 6.0, "figures and index": 20.0}


def _weight(name: str) -> float:
    return next((w for k, w in STEP_WEIGHTS.items() if k in name), 3.0)


def _with(o: Any, *, force: bool, resume: bool) -> Any:
    """The step's job options with the runner's --force / --resume (jobs without --resume finish in one go)."""
    from dataclasses import replace

    return replace(o, force=force, **({"resume": resume} if hasattr(o, "resume") else {}))


class _Runner:
    """Runs the steps in order: says "step k of N" with an estimate, skips on --resume the steps whose output
    exists and was made by the same command from the same inputs (their fingerprints, kept in RECORD), passes
    --resume to the others (so a step stopped half-way continues from its parts or checkpoint), and honours
    SIGINT/SIGTERM in every step: a step that does not stop by itself is followed by the stop (exit 75).

    ``planning``: only count the steps (and check their inputs), run nothing.
    """

    def __init__(self, opts: ReproduceOptions, out: Path, *, planning: bool = False, plan: list[str] | None = None, stop: Any = None) -> None:
        self.opts, self.out, self.planning, self.stop = opts, out, planning, stop
        self.plan = plan or []  # the names of the steps, in order (from the planning pass)
        self.steps: list[StepLog] = []
        self.keys: dict[str, str] = {}  # output (relative) -> fingerprint, of the steps done in this folder
        self.recorded: dict[str, str] = {}
        if not planning and (out / RECORD).exists():
            try:
                self.recorded = dict(json.loads((out / RECORD).read_text()))
            except (OSError, ValueError):
                self.recorded = {}
        self.t0 = time.perf_counter()
        self.ran_weight = self.ran_seconds = 0.0
        self.finished = 0  # steps finished by this run

    def _key(self, argv: list[str]) -> str:
        """The step's command and the fingerprints of the earlier steps whose outputs it reads."""
        import hashlib

        inputs = {k: v for k, v in self.keys.items() if any(str(self.out / k) == a or a.startswith(str(self.out / k) + "/") for a in argv)}
        return hashlib.sha256(json.dumps({"argv": argv, "inputs": inputs}, sort_keys=True).encode()).hexdigest()[:24]

    def _record(self, rel: str, key: str) -> None:
        self.keys[rel] = key
        self.recorded[rel] = key
        # an exclusive temporary replaced atomically (outputs): the record is always the old one or the new one
        outputs.write_text(self.out / RECORD, json.dumps(self.recorded, indent=1, sort_keys=True), mode="replace")

    def _estimate(self, k: int) -> str:
        left = sum(_weight(n) for n in self.plan[k - 1 :])
        # before any step ran here: the pace measured with the defaults; then this run's own pace
        pace = self.ran_seconds / self.ran_weight if self.ran_weight > 0 else 1.0
        return f"; about {max(1, round(pace * left / 60))} min left"

    def step(self, name: str, output: Path | None, argv: list[str], fn: Callable[[bool, bool], Any]) -> bool:
        """Run ``fn(force, resume)`` unless its output is already done; None output: always run (the index)."""
        if self.planning:
            self.plan.append(name)
            return False
        k, n = len(self.steps) + 1, len(self.plan)
        command = "bertsecrets " + " ".join(shlex.quote(a) for a in argv) if argv else "(index.md, index.html, views/)"
        rel = output.relative_to(self.out).as_posix() if output is not None else ""
        key = self._key(argv)
        done = output is not None and output.exists() and (output.is_file() or (output / "finetune.json").exists())
        force, resume = self.opts.force, self.opts.resume
        if done and self.opts.resume:
            if self.recorded.get(rel, key) == key:  # a folder made before fingerprints were kept: trust it, as before
                info(f"[reproduce] step {k} of {n}: {name}: done already ({output})")
                self.steps.append(StepLog(name, command, 0.0, True))
                self._record(rel, key)
                return False
            info(f"[reproduce] step {k} of {n}: {name}: made with other options or inputs than now; redoing it")
            force, resume = True, False
        info(f"[reproduce] step {k} of {n}: {name}: {command}{self._estimate(k)}")
        t0 = time.perf_counter()
        try:
            fn(force, resume)
        except Interrupted as e:
            raise Interrupted(f"{self.out}: stopped in step {k} of {n} ({name}): {e}; the finished steps are kept: "
                              "rerun the same reproduce command with --resume") from None
        dt = time.perf_counter() - t0
        self.steps.append(StepLog(name, command, dt, False))
        self.ran_seconds += dt
        self.ran_weight += _weight(name)
        self.finished += 1
        if output is not None:
            self._record(rel, key)
        if self.stop is not None and self.stop.requested:
            more = f"; {n - k} steps remain: rerun the same reproduce command with --resume" if k < n else "; every step is done"
            raise Interrupted(f"{self.out}: stopped by {self.stop.signal} after step {k} of {n} ({name}), which is kept{more}")
        return True


def _task_data(opts: ReproduceOptions, task: Any) -> str | None:
    """A glue_data root holds one folder per task; demo data when no --data."""
    if opts.data is None:
        return None
    root = Path(opts.data)
    sub = root / task.glue_dir
    if sub.is_dir():
        return str(sub)
    if root.is_dir() and (root / "dev.tsv").exists() and len(opts.tasks) == 1:
        return str(root)
    if not root.exists() and not opts.data.startswith("hub:"):
        raise InputError(f"--data {opts.data}: no such folder")
    if root.is_dir():
        raise InputError(f"--data {opts.data}: has no {task.glue_dir}/ folder for task {task.name} (the GLUE download's layout: "
                         f"{opts.data}/{task.glue_dir}/dev.tsv)")
    return opts.data  # a hub id: the loader says if it cannot be fetched


def _check_out(out: Path, opts: ReproduceOptions) -> None:
    if out.exists() and not out.is_dir():
        raise OutputError(f"{out}: exists and is not a folder")
    if out.exists() and any(out.iterdir()) and not (opts.resume or opts.force):
        raise OutputError(f"{out}: exists and is not empty; pass --resume to finish or update it, or --force to redo every step")
    if not out.parent.exists():
        raise OutputError(f"{out}: folder {out.parent} does not exist")


def _check_relation_inputs(opts: ReproduceOptions) -> None:
    """Reject a malformed --conllu file or a folder that is no FrameNet release now, not after the hours of fine-tuning before them."""
    if opts.conllu:
        from bertsecrets_cli.data.conllu import read_conllu

        for _ in read_conllu(opts.conllu):
            pass
    if opts.framenet:
        from bertsecrets_cli.data.framenet import FrameNetRelease

        FrameNetRelease(opts.framenet)


def _define_steps(run: _Runner, opts: ReproduceOptions, out: Path, tasks: list[Any]) -> None:
    """Every step, in order, as ``run.step(name, output, argv, fn(force, resume))``; the last one writes the index."""
    from bertsecrets_cli.jobs.ablate import AblateOptions, run_ablate
    from bertsecrets_cli.jobs.classify import ClassifyOptions, run_classify
    from bertsecrets_cli.jobs.diff import DiffOptions, run_diff
    from bertsecrets_cli.jobs.extract import DataOptions, ExtractOptions, run_extract
    from bertsecrets_cli.jobs.finetune import FinetuneOptions, run_finetune

    model_arg = ["--model", opts.model] if opts.model else []
    dev = ["--device", opts.device] if opts.device != "auto" else []
    q = opts.quiet
    for task in tasks:
        t = task.name
        data = _task_data(opts, task)
        data_arg = ["--data", data] if data else []
        mdir = out / "models" / t
        ft_overrides: dict[str, Any] = {}
        if opts.max_steps:
            ft_overrides["max_steps"] = opts.max_steps
        fopts = FinetuneOptions(model=opts.model, task=t, data=data, preset=opts.preset, train_limit=opts.train_limit,
                                eval_limit=opts.eval_limit, overrides=ft_overrides, device=opts.device, quiet=q)
        argv = ["finetune", "--task", t, *model_arg, *data_arg, "--preset", opts.preset, "--eval-limit", str(opts.eval_limit), "-o", str(mdir), *dev]
        if opts.train_limit:
            argv += ["--train-limit", str(opts.train_limit)]
        if opts.max_steps:
            argv += ["--max-steps", str(opts.max_steps)]
        run.step(f"{t}: fine-tune", mdir, argv, lambda f, r, fopts=fopts, mdir=mdir: run_finetune(_with(fopts, force=f, resume=r), mdir))

        stores = out / "stores"
        data_opts = DataOptions(task=t, data=data, split="dev", limit=opts.eval_limit)
        for tag, model in (("pre", opts.model), ("ft", str(mdir))):
            path = stores / f"{t}-{tag}.h5"
            margs = ["--model", model] if model else []
            # norms next to the weights (same forward pass): the headline comparison of Kobayashi et al. (2020)
            eo = ExtractOptions(model=model, data=data_opts, device=opts.device, quiet=q, quantities=HEADLINE_QUANTITIES)
            run.step(f"{t}: extract {tag}", path, ["extract", "--task", t, *margs, *data_arg, "--limit", str(opts.eval_limit), "-o", str(path),
                                                   "--quantities", ",".join(HEADLINE_QUANTITIES), *dev],
                     lambda f, r, eo=eo, path=path: run_extract(_with(eo, force=f, resume=r), path))
            pat = stores / f"{t}-{tag}.pat.h5"
            co = ClassifyOptions(device=opts.device, quiet=q)
            run.step(f"{t}: classify {tag}", pat, ["classify", str(path), "-o", str(pat)],
                     lambda f, r, path=path, pat=pat, co=co: run_classify(path, pat, _with(co, force=f, resume=r)))
            npat = stores / f"{t}-{tag}.norms.pat.h5"
            nco = ClassifyOptions(device=opts.device, quiet=q, quantity=NORMS)
            run.step(f"{t}: classify {tag} norms", npat, ["classify", str(path), "--quantity", NORMS, "-o", str(npat)],
                     lambda f, r, path=path, npat=npat, nco=nco: run_classify(path, npat, _with(nco, force=f, resume=r)))
        pre, ft, diff_path = stores / f"{t}-pre.h5", stores / f"{t}-ft.h5", stores / f"{t}-diff.h5"
        run.step(f"{t}: diff", diff_path, ["diff", str(pre), str(ft), "-o", str(diff_path)],
                 lambda f, r, pre=pre, ft=ft, diff_path=diff_path: run_diff(pre, ft, diff_path, _with(DiffOptions(quiet=q), force=f, resume=r)))
        abl = stores / f"{t}-abl.h5"
        ao = AblateOptions(model=str(mdir), data=data_opts, bootstrap=opts.bootstrap, device=opts.device, quiet=q)
        run.step(f"{t}: ablate", abl, ["ablate", "--model", str(mdir), "--task", t, *data_arg, "--limit", str(opts.eval_limit),
                                       "--bootstrap", str(opts.bootstrap), "-o", str(abl), *dev],
                 lambda f, r, ao=ao, abl=abl: run_ablate(_with(ao, force=f, resume=r), abl))

    if opts.framenet or opts.conllu:
        from bertsecrets_cli.jobs.framenet import FrameNetOptions, run_relations

        for kind, src in (("framenet", opts.framenet), ("dependency", opts.conllu)):
            if not src:
                continue
            path = out / "stores" / f"{kind}.h5"
            # the number set beside Clark's Table 1 is computed by the rule of his code (docs/guide/clark.md: Whose definition)
            definition = "authors" if kind == "dependency" else "ours"
            fo = FrameNetOptions(framenet=src if kind == "framenet" else None, conllu=src if kind == "dependency" else None,
                                 model=opts.model, device=opts.device, quiet=q, definition=definition)
            flag = "--framenet" if kind == "framenet" else "--conllu"
            run.step(kind, path, ["framenet", flag, src, *model_arg, *(["--definition", definition] if kind == "dependency" else []), "-o", str(path), *dev],
                     lambda f, r, fo=fo, path=path: run_relations(_with(fo, force=f, resume=r), path))

    from bertsecrets_cli.jobs import reproduce_clark

    reproduce_clark.run_steps(run, opts, out, tasks[0].name, model_arg, dev)
    run.step("figures and index", None, [], lambda f, r: run.__setattr__("comparison", write_index(out, opts, tasks, run.steps)))


def run_reproduce(opts: ReproduceOptions, out: str | Path) -> ReproduceResult:
    from bertsecrets_cli.data.tasks import get_task
    from bertsecrets_cli.jobs.signals import graceful_stop

    out = Path(out)
    _check_out(out, opts)
    tasks = [get_task(t) for t in opts.tasks]
    if opts.data is None:
        missing = [t.name for t in tasks if t.demo is None]
        if missing:
            raise InputError(f"task(s) {', '.join(missing)} have no demo data; pass --data glue_data (the GLUE download)")
    if opts.eval_limit < 1:
        raise InputError("--eval-limit must be at least 1")
    _check_relation_inputs(opts)
    from bertsecrets_cli.jobs import reproduce_clark

    reproduce_clark.check_inputs(opts)
    from bertsecrets_cli.model.device import resolve_device

    resolve_device(opts.device)  # a bad or absent device is refused before the folder exists
    planner = _Runner(opts, out, planning=True)
    _define_steps(planner, opts, out, tasks)  # also checks every task's data, before the folder exists
    fresh = not out.exists() or not any(out.iterdir())
    made = not out.exists()
    for sub in ("models", "stores", "figures", "tables", "views"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    run = _Runner(opts, out, plan=planner.plan)
    run.comparison = None  # type: ignore[attr-defined]
    try:
        with graceful_stop() as stop:
            run.stop = stop
            _define_steps(run, opts, out, tasks)
    except Interrupted:
        raise
    except BaseException:
        if fresh and run.finished == 0:  # nothing worth keeping: leave no folder that would block the corrected rerun
            _remove_new_folder(out, made)
        raise
    return ReproduceResult(out, out / "index.md", run.steps, run.comparison)  # type: ignore[attr-defined]


def _remove_new_folder(out: Path, made: bool) -> None:
    """Remove what a failed first run created: the folder itself, or (a folder the user made empty) its contents."""
    import shutil

    if made:
        shutil.rmtree(out, ignore_errors=True)
        return
    for p in out.iterdir():
        shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)


# --------------------------------------------------------------------------------------- the index


def _plot(store: Path, out_png: Path, **kw: Any) -> Path | None:
    """A figure file via the plot job; None (and a note) when the store has nothing of that kind."""
    from bertsecrets_cli.errors import BertsecretsError
    from bertsecrets_cli.jobs.plot import PlotOptions, run_plot

    try:
        run_plot(store, PlotOptions(out=out_png, force=True, **kw))
        return out_png
    except BertsecretsError as e:
        info(f"[reproduce] no figure {out_png.name}: {e}")
        return None


def _view(out: Path, t: str) -> Path | None:
    """views/TASK.html: a few dev examples of the fine-tuned store with the task's patterns, diff and ablation grids."""
    from bertsecrets_cli.errors import BertsecretsError
    from bertsecrets_cli.jobs.view import ViewOptions, run_view

    st = out / "stores"
    ft = st / f"{t}-ft.h5"
    if not ft.exists():
        return None

    def side(name: str) -> str | None:
        return str(st / name) if (st / name).exists() else None

    opts = ViewOptions(patterns=side(f"{t}-ft.pat.h5"), diff=side(f"{t}-diff.h5"), ablation=side(f"{t}-abl.h5"), limit=VIEW_EXAMPLES,
                       title=f"{t}: attention of the fine-tuned model", force=True)
    dest = out / "views" / f"{t}.html"
    dest.parent.mkdir(exist_ok=True)
    try:
        run_view(ft, dest, opts)
    except BertsecretsError as e:
        info(f"[reproduce] no view {dest.name}: {e}")
        return None
    return dest


def _heads(path: Path) -> dict[str, np.ndarray]:
    from bertsecrets_cli.store import open_store

    with open_store(path) as st:
        return {k: v.values for k, v in st.heads().items()}


def _same_setup(opts: ReproduceOptions) -> str:
    model_same = (opts.model or "").rstrip("/").endswith("bert-base-uncased")
    data_same = opts.data is not None
    if model_same and data_same:
        return "same model and data"
    if model_same:
        return "same model, different data"
    if data_same:
        return "different model, same data"
    return "different model and data"


def _fmt(x: Any, digits: int = 3) -> str:
    if x is None:
        return ""
    if isinstance(x, (float, np.floating)):
        return "nan" if np.isnan(x) else f"{x:.{digits}f}"
    return str(x)


def write_index(out: Path, opts: ReproduceOptions, tasks: list[Any], steps: list[StepLog]) -> Table:
    """Figures, one Markdown table file per analysis, and index.md with the side-by-side table."""
    from bertsecrets_cli.jobs.ablate import ablation_tables, read_ablation
    from bertsecrets_cli.jobs.show import ShowOptions, run_show
    from bertsecrets_cli.reference import paper_numbers
    from bertsecrets_cli.store import open_store
    from bertsecrets_cli.store.evaluation import read_evaluation

    paper = paper_numbers()
    setup = _same_setup(opts)
    model_name = opts.model or "embedded all-MiniLM-L6-v2 (6 layers x 12 heads)"
    data_name = opts.data or "shipped demo data (synthetic, not GLUE)"
    cmp = Table("paper vs this run", ["finding", "task", "paper (bert-base)", "this run", "setup"], name="comparison",
                caption="setup: what differs from the paper's run (model, data) and whose definition computed this run's number "
                        "(authors: the code behind the paper's number; docs/guide/clark.md: Whose definition)")
    md: list[str] = [
        "# Revealing the Dark Secrets of BERT: reproduction",
        "",
        f"Model: **{model_name}**. Data: **{data_name}**. Dev examples analysed per task: {opts.eval_limit}. "
        f"Fine-tuning preset: `{opts.preset}`. Paper: Kovaleva et al., EMNLP 2019 (arXiv:1908.08593).",
        "",
    ]
    if setup != "same model and data":
        md += ["> The paper's numbers are for bert-base-uncased on GLUE. This run uses " + setup.replace("different", "a different")
               + ", so the comparison shows whether the same *kind* of finding appears, not the same values.", ""]
    body: list[str] = []
    embeds: dict[str, str] = {}  # a line of index.md -> HTML that follows it in index.html
    for task in tasks:
        t, T = task.name, task.glue_dir
        st = out / "stores"
        figs = out / "figures"
        body += [f"## {t}", ""]
        # fine-tuning and Table 1 baselines
        try:
            ev = read_evaluation(out / "models" / t / "eval.h5")
            rows = Table(f"{t}: dev scores", ["model", *task.metrics])
            rows.add("fine-tuned", *(ev.metrics.get(m) for m in task.metrics))
            for name, m in ev.baselines.items():
                rows.add(name.replace("_", " "), *(m.get(k) for k in task.metrics))
            body += _table_md(out, f"{t}-scores", rows)
            ours = ev.metrics.get(task.main_metric)
            ref = paper["baseline_scores_figure"].get(T)
            cmp.add("fine-tuned dev score (" + task.main_metric + ")", T, _fmt(ref), _fmt(ours), setup)
        except Exception as e:  # noqa: BLE001 - a missing record must not stop the index
            body += [f"(no evaluation record: {e})", ""]
        # patterns
        for tag in ("pre", "ft"):
            pat = st / f"{t}-{tag}.pat.h5"
            if pat.exists():
                fig = _plot(pat, figs / f"{t}-{tag}-patterns.png")
                with open_store(pat) as ps:
                    shares = {k: v.values for k, v in ps.heads().items() if k.startswith("pattern_share_")}
                    prov = ps.provenance()
                    clf = f"{prov.get('classifier', '?')} ({prov.get('classifier_score_text', 'no validation score')})"
                tbl = Table(f"{t} ({tag}): pattern shares over all heads", ["type", "share"])
                for k, v in shares.items():
                    tbl.add(k.removeprefix("pattern_share_").replace("_", "+"), float(np.nanmean(v)))
                body += _table_md(out, f"{t}-{tag}-patterns", tbl, fig, caption=f"classifier: {clf}" if clf else None)
                if tag == "ft":
                    het = [float(np.nanmean(v)) for k, v in shares.items() if "heterogeneous" in k]
                    vert = [float(np.nanmean(v)) for k, v in shares.items() if k.endswith("vertical")]
                    ph = paper["pattern_shares_figure_percent"].get(T)
                    if het:
                        cmp.add("heterogeneous share of maps, fine-tuned (%)", T, _fmt(ph[0] if ph else None, 0), _fmt(100 * het[0], 1), setup)
                    if vert:
                        cmp.add("vertical share of maps, fine-tuned (%)", T, _fmt(ph[1] if ph else None, 0), _fmt(100 * vert[0], 1), setup)
        # weights vs norms: vertical heads and [CLS]/[SEP] mass per layer
        for tag in ("pre", "ft"):
            tbl = weights_vs_norms(st, t, tag)
            if tbl is None:
                continue
            body += _table_md(out, f"{t}-{tag}-weights-vs-norms", tbl, caption=WEIGHTS_VS_NORMS_CAPTION)
            rows = tbl.rows[-1]  # "all"
            who = "pretrained" if tag == "pre" else "fine-tuned"
            cmp.add(f"heads with a vertical majority, weights -> norms ({who}, %)", T, "(not in the paper; Kobayashi et al. 2020: fewer under norms)",
                    f"{100 * rows[1]:.1f} -> {100 * rows[2]:.1f}", setup)
            cmp.add(f"[CLS]+[SEP] mass, weights -> norms ({who})", T, "(not in the paper; Kobayashi et al. 2020: much lower under norms)", f"{rows[3]:.3f} -> {rows[4]:.3f}", setup)
        # special tokens per layer (fine-tuned)
        ft = st / f"{t}-ft.h5"
        if ft.exists():
            from bertsecrets_cli.render.labels import STAT_COLUMNS

            h = _heads(ft)
            fig = _plot(ft, figs / f"{t}-ft-cls-sep.png", figure="layers", quantities=("stat_cls", "stat_sep"))
            tbl = Table(f"{t} (fine-tuned): attention to special tokens per layer", ["layer", *(STAT_COLUMNS[k] for k in ("cls", "sep", "punct"))])
            for layer in range(h["stat_cls"].shape[0]):
                tbl.add(f"L{layer + 1}", *(float(np.nanmean(h[k][layer])) for k in ("stat_cls", "stat_sep", "stat_punct")))
            body += _table_md(out, f"{t}-ft-special", tbl, fig)
            sep_by_layer = np.nanmean(h["stat_sep"], 1)
            cls_by_layer = np.nanmean(h["stat_cls"], 1)
            cmp.add("layer with most [CLS] attention (paper: L2-L3, .19-.38)", T, "L2-L3", f"L{int(np.argmax(cls_by_layer)) + 1} ({cls_by_layer.max():.2f})", setup)
            cmp.add("layer with most [SEP] attention (paper: L5-L10, .25-.40)", T, "L5-L10", f"L{int(np.argmax(sep_by_layer)) + 1} ({sep_by_layer.max():.2f})", setup)
        # diff
        dpath = st / f"{t}-diff.h5"
        if dpath.exists():
            cos = _heads(dpath)["cosine"]
            fig = _plot(dpath, figs / f"{t}-cosine.png", quantities=("cosine",))
            per_layer = np.nanmean(cos, 1)
            tbl = Table(f"{t}: cosine similarity pretrained vs fine-tuned, per layer", ["layer", "cosine"])
            for layer, v in enumerate(per_layer):
                tbl.add(f"L{layer + 1}", float(v))
            body += _table_md(out, f"{t}-cosine", tbl, fig)
            pc = paper["cosine_per_layer_figure"].get(T)
            if pc:
                cmp.add("cosine, first layer", T, _fmt(pc[0], 2), _fmt(float(per_layer[0]), 2), setup)
                cmp.add("cosine, last layer", T, _fmt(pc[3], 2), _fmt(float(per_layer[-1]), 2), setup)
            changed_most = len(per_layer) > 2 and float(np.max(per_layer[-2:])) < float(np.min(per_layer[:-2]))
            cmp.add("last two layers change most (paper: all tasks but QQP)", T, "yes" if T != "QQP" else "no", "yes" if changed_most else "no", setup)
        # ablation
        apath = st / f"{t}-abl.h5"
        if apath.exists():
            r = read_ablation(apath)
            fig = _plot(apath, figs / f"{t}-ablation.png", quantities=("ablation_delta",))
            for i, tb in enumerate(ablation_tables(r, top=5)):
                tb.title = f"{t}: ablation, {tb.title}"  # "baseline" alone would head a section of every task
                body += _table_md(out, f"{t}-ablation-{i}", tb, fig if i == 0 else None)
            m = 0
            heads = [k == "head" for k in r.kinds]
            layers = [k == "layer" for k in r.kinds]
            if any(heads):
                from bertsecrets_cli.jobs.ablate import beyond_noise

                idx = [j for j, h in enumerate(heads) if h]
                helps = [j for j in idx if beyond_noise(r, j, 1)]  # only gains beyond their 95% interval count
                pa = paper["ablation_stated"]["best_single_head_gain_points"]
                fig_ab = paper["ablation_figure"].get(T)
                ref = pa.get(T, 100 * (fig_ab["best_head"][1] - fig_ab["base"]) if fig_ab else None)
                if helps:
                    best = _fmt(100 * max(float(r.delta[j, m]) for j in helps), 1)
                else:
                    best = f"none beyond noise (largest {100 * float(np.nanmax(r.delta[idx, m])):.1f}, inside its interval)"
                cmp.add("best single-head gain when disabled, beyond noise (points)", T, _fmt(ref, 1), best, setup)
                cmp.add("heads whose removal improves the score beyond noise", T, "some, every task", f"{len(helps)} of {len(idx)}", setup)
            if any(layers):
                d = r.delta[np.array(layers), m]
                names = [n for n, k in zip(r.names, r.kinds) if k == "layer"]
                worst = int(np.argmin(d))
                wl = paper["ablation_figure"]["worst_layer_points"].get(T)
                cmp.add("worst layer to disable (points)", T, f"{wl[0]} {wl[1]:+.1f}" if wl else "", f"{names[worst]} {100 * float(d[worst]):+.1f}", setup)
        view = _view(out, t)
        if view is not None:
            line = f"Interactive view of {VIEW_EXAMPLES} dev examples (fine-tuned; head view, model view, pattern, cosine and ablation grids): [{view.name}]({view.relative_to(out).as_posix()})"
            body += [f"### {t}: attention of a few examples", "", line, ""]
            embeds[line] = f'<iframe loading="lazy" title="{t} view" src="{view.relative_to(out).as_posix()}"></iframe>'
    fn = out / "stores" / "framenet.h5"
    if fn.exists():
        body += ["## FrameNet relation heads", ""]
        tabs = run_show(fn, ShowOptions(quantities=("framenet_fe_to_target",), top=10))
        for i, tb in enumerate(tabs):
            body += _table_md(out, f"framenet-{i}", tb, _plot(fn, out / "figures" / "framenet.png", quantities=("framenet_fe_to_target",)) if i == 0 else None)
        h = _heads(fn)["framenet_fe_to_target"]
        li, hi = np.unravel_index(np.nanargmax(h), h.shape)
        from bertsecrets_cli.store import open_store as _open

        with _open(fn) as fst:
            fprov = fst.provenance()
        fn_setup = (f"{'same' if (opts.model or '').rstrip('/').endswith('bert-base-uncased') else 'different'} model; data: "
                    f"{Path(str(fprov.get('data_source', ''))).name} ({fprov.get('sentences', '')}; paper: FrameNet 1.7 LU exemplars); definition: ours")
        cmp.add("top FrameNet head (mean max-attention)", "FrameNet", "L7H6 0.209, L1H2 0.201", f"L{li + 1}H{hi + 1} {float(h[li, hi]):.3f}", fn_setup)
        cmp.add("FrameNet sentences kept by the selection", "FrameNet", "473",
                f"{fprov.get('n_sentences', '?')} (another tokenizer and release part count differently: see the selection table's caption)", fn_setup)
    from bertsecrets_cli.jobs.reproduce_clark import index_section

    body += index_section(out, cmp, setup, _table_md, _fmt, model_same=(opts.model or "").rstrip("/").endswith("bert-base-uncased"))
    md += ["## The paper's headline numbers next to ours", ""] + _md_lines(cmp) + [""]
    md += _unique_headings(body)
    md += ["## Steps", "", "Each step is a subcommand; rerun any of them alone.", "", "| step | command | seconds |", "|---|---|---|"]
    for s in steps:
        md.append(f"| {s.name} | `{s.command}` | {'done before' if s.skipped else f'{s.seconds:.0f}'} |")
    md.append("")
    outputs.write_text(out / "index.md", "\n".join(md))
    from bertsecrets_cli.render.html import markdown_page, write_text_atomic

    write_text_atomic(out / "index.html", markdown_page("\n".join(md), "Revealing the Dark Secrets of BERT: reproduction", embeds))
    outputs.write_text(out / "tables" / "comparison.json", json.dumps(cmp.records(), indent=1))
    return cmp


WEIGHTS_VS_NORMS_CAPTION = ("norms: ||alpha_ij f(x_j)|| (Kobayashi et al. 2020) with rows normalised to sum 1, from the same forward pass; "
                            "a vertical head: the majority of its maps is classified vertical (same rules for both)")


def weights_vs_norms(stores: Path, task: str, tag: str) -> Table | None:
    """Per layer: share of heads with a vertical majority and mean [CLS]+[SEP] mass, under weights and under norms.

    None when the stores of the norms are missing (a folder made before norms were extracted).
    """
    from bertsecrets_cli.analysis.patterns import CLASSES
    from bertsecrets_cli.store import open_store

    att, pat, npat = (stores / f"{task}-{tag}{x}.h5" for x in ("", ".pat", ".norms.pat"))
    if not (att.exists() and pat.exists() and npat.exists()):
        return None
    with open_store(att) as st:
        if NORMS not in st.quantities():
            return None
        hw = {k: v.values for k, v in st.heads().items()}
        hn = {k: v.values for k, v in st.select_quantity(NORMS).heads().items()}
    vertical = CLASSES.index("vertical")
    vw = _heads(pat)["pattern_majority"] == vertical
    vn = _heads(npat)["pattern_majority"] == vertical
    special_w, special_n = hw["stat_cls"] + hw["stat_sep"], hn["stat_cls"] + hn["stat_sep"]
    t = Table(f"{task} ({tag}): weights vs norms per layer",
              ["layer", "vertical heads (weights)", "vertical heads (norms)", "[CLS]+[SEP] (weights)", "[CLS]+[SEP] (norms)"])
    for layer in range(vw.shape[0]):
        t.add(f"L{layer + 1}", float(vw[layer].mean()), float(vn[layer].mean()), float(np.nanmean(special_w[layer])), float(np.nanmean(special_n[layer])))
    t.add("all", float(vw.mean()), float(vn.mean()), float(np.nanmean(special_w)), float(np.nanmean(special_n)))
    return t


def _unique_headings(lines: list[str]) -> list[str]:
    """Every heading of the index once (a table of the same title in two sections gets its section's name)."""
    seen: set[str] = set()
    section = ""
    out = []
    for ln in lines:
        if ln.startswith("## "):
            section = ln[3:].strip()
        if ln.startswith("#"):
            head = ln
            if head in seen and section:
                head = f"{ln} ({section})"
            k = 2
            while head in seen:
                head, k = f"{ln} ({k})", k + 1
            seen.add(head)
            ln = head
        out.append(ln)
    return out


def _md_lines(t: Table) -> list[str]:
    return to_markdown(t).splitlines()


def _table_md(out: Path, name: str, t: Table, fig: Path | None = None, caption: str | None = None) -> list[str]:
    text = to_markdown(t)
    outputs.write_text(out / "tables" / f"{name}.md", f"### {t.title}\n\n{text}\n")
    lines = [f"### {t.title}", ""]
    if caption:
        lines += [f"_{caption}_", ""]
    lines += text.splitlines() + [""]
    if fig is not None:
        lines += [f"![{t.title}]({fig.relative_to(out).as_posix()})", ""]
    return lines
