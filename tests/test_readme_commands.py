"""Every shell command in the README's fenced ```bash and ```console blocks that can run offline runs here, in README
order, in one working folder, on the embedded model and small data: only sizes and paths are substituted. The
pages of the documentation site (docs/**/*.md; the guide, one page per analysis) get the same treatment, page by
page in the order of mkdocs.yml's nav, in the same folder, after the README (a page may read a store that the
README's tour or an earlier page wrote). The site's home page includes the README's tour (a snippet), so its
commands run once.

Commands that cannot run here are skipped for a reason listed in SKIP (a hub model, a GPU, a launcher, a data set
we cannot ship); the test fails if a command matches no rule and does not run, or if a skip rule matches nothing
(a stale rule). ``python -m pytest tests/test_readme_commands.py -s`` prints what ran and what was skipped.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"

# (pattern, reason): a command matching the pattern is not run.
SKIP = [
    (r"pip install", "the install commands of the first screen: .ci/run runs exactly them on a fresh clone"),
    (r"\bbert-base-(un)?cased\b|roberta-base", "a Hugging Face hub model: nothing can be downloaded here"),
    (r"--device cuda", "needs a GPU"),
    (r"^(torchrun|accelerate|srun)\b|-m bertsecrets_cli", "a multi-process launcher (torchrun/accelerate/Slurm); tested in test_finetune with two CPU processes"),
    (r"glue_data", "the GLUE download (not redistributable); the loaders are tested on GLUE-layout files the tests write"),
    (r"\$SLURM_ARRAY_TASK_ID|\$RANK|\$i\b", "runs inside a Slurm array task; sharding is tested in test_shard_analysis"),
    (r"framenet_v17", "the NLTK copy of FrameNet; the layout is the same as the release that the test writes"),
    (r"^#", "a comment or #SBATCH line"),
    (r"abl-\*\.h5", "joins the ablation shards of the Slurm example above (skipped: GLUE RTE); ablate --shard and merge are tested in test_ablate_cli"),
]
# What skipped cluster examples would have written, made here with the embedded model so the commands after them run.
STAND_INS = {f"shard-{i}.h5": ["extract", "--limit", "8", "--shard", f"{i}/4"] for i in range(4)}

# Only sizes and paths change.
SIZES = [
    (r"(-n|--limit) (\d{3,})", r"\1 8"),
    (r"--eval-limit \d+", "--eval-limit 8"),
    (r"--synthetic \d{3,}", "--synthetic 64"),
    (r"--bootstrap \d{3,}", "--bootstrap 10"),
]
FINETUNE_SIZE = "--max-steps 2 --train-limit 16 --eval-limit 8"
REPRODUCE_SIZE = "--tasks sst2,mrpc --max-steps 2 --train-limit 16 --eval-limit 8 --bootstrap 10"
ABLATE_SIZE = "--limit 8 --bootstrap 10"


def doc_pages() -> list[Path]:
    """The site's Markdown pages in the order of mkdocs.yml's nav (a page may use what an earlier one wrote), then
    any page the nav leaves out; the build hooks excluded."""
    import yaml

    def flat(nav) -> list[str]:  # noqa: ANN001 - mkdocs' nav: strings, lists and one-key mappings
        if isinstance(nav, str):
            return [nav]
        if isinstance(nav, dict):
            return [p for v in nav.values() for p in flat(v)]
        return [p for item in nav for p in flat(item)]

    cfg = ROOT / "mkdocs.yml"
    order = flat(yaml.load(cfg.read_text(), Loader=yaml.BaseLoader).get("nav", [])) if cfg.exists() else []
    pages = [DOCS / p for p in order if (DOCS / p).exists()]
    return pages + sorted(p for p in DOCS.rglob("*.md") if "_hooks" not in p.parts and p not in pages)


def commands(page: Path = README) -> list[tuple[int, str]]:
    """(line, command) for every command of the fenced bash/console blocks; continuation lines joined."""
    out: list[tuple[int, str]] = []
    lines = page.read_text().splitlines()
    lang = None
    cur, start = "", 0
    indent = 0
    for n, ln in enumerate(lines, 1):
        if ln.lstrip().startswith("```"):  # fences may be indented inside a list item
            lang = None if lang is not None else (ln.strip()[3:].strip() or "text")
            indent = len(ln) - len(ln.lstrip())
            continue
        ln = ln[indent:] if ln[:indent].isspace() else ln
        if lang not in ("bash", "console"):
            continue
        if lang == "console":
            if not cur and not ln.startswith("$ "):
                continue
            ln = ln[2:] if ln.startswith("$ ") else ln
        if not cur and not ln.strip():
            continue
        start = start or n
        cur += ln.rstrip()[:-1] + " " if ln.rstrip().endswith("\\") else ln
        if ln.rstrip().endswith("\\") or ln.rstrip().endswith("&&"):
            continue
        out.append((start, re.sub(r"\s+#\s.*$", "", cur).strip()))
        cur, start = "", 0
    return out


JQ_MISSING = "pipes into jq, which this machine lacks (apt-get install jq; .ci/run installs it)"


def skip_reason(cmd: str) -> str | None:
    if re.search(r"\| *jq\b", cmd) and shutil.which("jq") is None:
        return JQ_MISSING
    for pattern, reason in SKIP:
        if re.search(pattern, cmd):
            return reason
    return None


def adapt(cmd: str, fixtures: dict[str, Path]) -> str:
    """The README's command with small sizes and this test's paths (each command of a pipeline on its own)."""
    for pat, rep in SIZES:
        cmd = re.sub(pat, rep, cmd)
    cmd = cmd.replace("~/data/fndata-1.7", str(fixtures["framenet"])).replace("en_ewt-ud-dev.conllu", str(fixtures["conllu"]))
    cmd = cmd.replace("[--features]", "--features")  # an optional flag, shown in brackets
    return " | ".join(_sized(part.strip()) for part in cmd.split(" | "))


def _sized(cmd: str) -> str:
    if re.match(r"bertsecrets finetune", cmd):
        cmd += " " + FINETUNE_SIZE
    elif re.match(r"bertsecrets reproduce", cmd):
        cmd += " " + REPRODUCE_SIZE
    elif re.match(r"bertsecrets ablate", cmd) and "--combine" not in cmd:
        cmd += " " + ABLATE_SIZE.replace("--bootstrap 10", "" if "--bootstrap" in cmd else "--bootstrap 10").strip()
    elif re.match(r"bertsecrets (extract|framenet)", cmd) and "--limit" not in cmd and not re.search(r" -n \d", cmd):
        cmd += " --limit 8"
    return cmd


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> tuple[Path, dict[str, Path]]:
    from test_framenet_cli import CONLLU, write_release

    d = tmp_path_factory.mktemp("readme")
    (d / "en_ewt-ud-dev.conllu").write_text(CONLLU)
    # real reviews carry 1-5 stars beside a sentiment
    (d / "reviews.csv").write_text("review,stars,sentiment\n" + "".join(f"review number {i} was {'good' if i % 2 else 'bad'},{1 + i % 5},"
                                                                         f"{'positive' if i % 2 else 'negative'}\n" for i in range(12)))
    for name, args in STAND_INS.items():
        subprocess.run(["bertsecrets", *args, "-o", name, "-q"], cwd=d, env=_env(), check=True, capture_output=True)
    return d, {"framenet": write_release(d / "fndata-1.7"), "conllu": d / "en_ewt-ud-dev.conllu"}


def _env() -> dict[str, str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "100"}
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    return env


def _run(cmd: str, d: Path) -> subprocess.CompletedProcess:
    """One README command in ``d``. Its outputs start fresh (sections reuse names such as pre.h5), and the
    interactive annotator gets keys for a few maps of several types, then 'q'."""
    for out in re.findall(r"-o (\S+)", cmd):
        target = d / out
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
    stdin = "v\nv\nd\nd\nh\nh\nv\nd\nh\nq\n" if "annotate" in cmd else ""
    return subprocess.run(["bash", "-o", "pipefail", "-c", cmd], cwd=d, env=_env(), input=stdin, capture_output=True, text=True, timeout=600)


def run_page(page: Path, d: Path, fixtures: dict[str, Path]) -> tuple[list, list, list[str], set[str]]:
    """Run every command of ``page`` in ``d``: (ran, skipped, failures, skip reasons used)."""
    ran, skipped, failed, later = [], [], [], []
    used_rules = set()
    where = page.relative_to(ROOT)
    for line, cmd in commands(page):
        if not re.match(r"(bertsecrets|python3? |torchrun|accelerate|srun|#)", cmd):
            continue  # shell glue inside a block (e.g. 'i=...')
        reason = skip_reason(cmd)
        if reason:
            used_rules.add(reason)
            skipped.append((line, cmd, reason))
            continue
        run = adapt(cmd, fixtures)
        res = _run(run, d)
        if res.returncode == 3 and "no such file" in res.stderr:
            later.append((line, run))  # its input is made by a later section of the page
            continue
        ran.append((line, run))
        if res.returncode != 0:
            failed.append(f"{where} line {line}: {run}\n  exit {res.returncode}: {res.stderr.strip().splitlines()[-1:] if res.stderr.strip() else ''}")
    for line, run in later:
        res = _run(run, d)
        ran.append((line, run))
        if res.returncode != 0:
            failed.append(f"{where} line {line}: {run}\n  exit {res.returncode}: {res.stderr.strip().splitlines()[-1:] if res.stderr.strip() else ''}")
    if ran or skipped:
        print(f"\n{where} commands: {len(ran)} ran, {len(skipped)} skipped")
    for line, cmd, reason in skipped:
        print(f"  skipped (line {line}): {cmd}\n      because: {reason}")
    return ran, skipped, failed, used_rules


@pytest.mark.slow
def test_every_offline_readme_command_runs(workdir):
    d, fixtures = workdir
    ran, _, failed, _ = run_page(README, d, fixtures)
    assert not failed, "\n".join(failed)
    assert len(ran) >= 4  # the front page's tour: extract, show, classify, view (the guide is on the site's pages)


def test_every_skip_rule_matches_a_command_of_the_readme_or_the_site():
    """A stale rule would hide nothing but could hide a future command: each must match some command."""
    used = {skip_reason(cmd) for page in [README, *doc_pages()] for _, cmd in commands(page)} | {skip_reason(ex) for _, ex in help_examples()}
    stale = [reason for _, reason in SKIP if reason not in used]
    assert not stale, f"skip rules that match no README, site or --help command: {stale}"


@pytest.mark.slow
def test_every_offline_command_of_the_documentation_site_runs(workdir):
    """The same rules for each page under docs/ (the site's guide): a command runs, or matches a listed skip reason."""
    d, fixtures = workdir
    ran, failed = [], []
    for page in doc_pages():
        r, _, f, _ = run_page(page, d, fixtures)
        ran += r
        failed += f
    assert not failed, "\n".join(failed)
    assert len(ran) >= 65  # every guide page's commands: one lost block fails here


def help_examples() -> list[tuple[str, str]]:
    """(subcommand, example) for every example that ends a --help (cli/app.py and the subcommands' epilogs)."""
    import typer

    from bertsecrets_cli.cli.app import app

    out: list[tuple[str, str]] = []

    def walk(cmd, path: str) -> None:
        for ex in re.findall(r"\$ (.+)", getattr(cmd, "epilog", None) or ""):
            out.append((path, ex.strip()))
        for name, sub in getattr(cmd, "commands", {}).items():
            walk(sub, f"{path} {name}".strip())

    walk(typer.main.get_command(app), "")
    return out


TREEBANK = "from bertsecrets_cli.data.demo_treebank import write_demo_treebank as w; "
# Inputs the --help examples assume exist (made here with the embedded model and small data, if an earlier
# test or example has not made them); they run in the same retry loop as the examples, as their inputs appear.
HELP_STAND_INS = [
    ("ft.h5", "bertsecrets extract --task sst2 --limit 8 --model runs/sst2 -o ft.h5"),
    ("ft.pat.h5", "bertsecrets classify ft.h5 -o ft.pat.h5"),
    *((f"pre-{i}.h5", f"bertsecrets extract --task sst2 --limit 8 --shard {i}/4 -o pre-{i}.h5") for i in range(4)),
    *((f"pat-{i}.h5", f"bertsecrets classify pre-{i}.h5 -o pat-{i}.h5") for i in range(4)),
    ("en_gum-corefud-dev.conllu", f"python -c \"{TREEBANK}w('en_gum-corefud-dev.conllu', 6)\""),
    ("en_ewt-ud-train.conllu", f"python -c \"{TREEBANK}w('en_ewt-ud-train.conllu', 20)\""),
    ("train.conllu", f"python -c \"{TREEBANK}w('train.conllu', 20)\""),
    ("dev.conllu", f"python -c \"{TREEBANK}w('dev.conllu', 6, 1)\""),
]


@pytest.mark.slow
def test_every_help_example_runs(workdir):
    """Every example that ends a --help runs as typed, but for sizes and paths, in the README's working folder
    (its stores are reused); one that fails, or asks for an input nothing makes, fails here."""
    d, fixtures = workdir
    readme = {adapt(cmd, fixtures) for page in [README, *doc_pages()] for _, cmd in commands(page)}
    pending: list[tuple[str, str]] = [(f"stand-in for {name}", cmd) for name, cmd in HELP_STAND_INS if not (d / name).exists()]
    skipped, failed = [], []
    for path, ex in help_examples():
        reason = skip_reason(ex)
        run = adapt(ex, fixtures)
        if reason is None and run in readme and re.match(r"bertsecrets reproduce", run):
            reason = "the same command runs in the README or site test"
        if reason:
            skipped.append((path, ex, reason))
        else:
            pending.append((f"{path} --help", run))
    ran = 0
    while pending:
        later = []
        for what, run in pending:
            res = _run(run, d)
            if res.returncode != 0:
                # an input a later command or stand-in makes (a store, or the model folder runs/sst2)
                (later if res.returncode in (3, 5) and re.search("no such (file|folder|local folder)", res.stderr) else failed).append(
                    (what, run, res.returncode, res.stderr.strip().splitlines()[-1:] if res.stderr.strip() else ""))
            else:
                ran += 1
        if len(later) == len(pending) or not later:
            failed += later
            break
        pending = [(what, run) for what, run, _, _ in later]
    print(f"\n--help examples: {ran} ran, {len(skipped)} skipped")
    for path, ex, reason in skipped:
        print(f"  skipped ({path} --help): {ex}\n      because: {reason}")
    assert not failed, "\n".join(f"{what}: {run}\n  exit {code}: {err}" for what, run, code, err in failed)
    assert ran >= 25
