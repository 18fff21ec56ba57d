"""The options every subcommand shares, typed on the real command line, each with an effect that would differ if
the option were ignored: --quiet, --verbose, --debug, --format, --table, --force, --no-locking, --device.

Each command has a quick invocation that succeeds (``ok``), and one that fails with an expected error (``bad``).
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bertsecrets_cli.cli.app import app
from helpers import covers, one_line_error
from test_framenet_cli import CONLLU

runner = CliRunner()

WRITERS = ("extract", "finetune", "classify run", "classify train", "diff", "merge", "plot", "framenet", "ablate", "words", "cluster", "coref", "probe")
TABLES = ("extract", "finetune", "check", "classify run", "classify annotate", "classify train", "diff", "merge", "plot", "show",
          "framenet", "ablate", "words", "cluster", "coref", "probe")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, demo_store: Path, tiny_model_factory) -> dict[str, Path]:
    from bertsecrets_cli.jobs.extract import DataOptions, ExtractOptions, run_extract

    d = tmp_path_factory.mktemp("common-options")
    shutil.copy(demo_store, d / "b.h5")
    for i in range(2):
        run_extract(ExtractOptions(data=DataOptions(task="sst2", limit=6), device="cpu", quiet=True, shard=f"{i}/2", batch_size=6),
                    d / f"s{i}.h5", command="t")
    (d / "dev.conllu").write_text(CONLLU)
    labels = d / "labels.tsv"
    res = runner.invoke(app, ["classify", "annotate", str(demo_store), "--labels", str(labels), "--limit", "10", "-q"], input="\n".join("vdmbhvdmbh") + "\n")
    assert res.exit_code == 0 and len(labels.read_text().splitlines()) >= 10, res.stderr
    from bertsecrets_cli.data.demo_treebank import write_demo_treebank

    write_demo_treebank(d / "chains.conllu", 2)
    return {"chains": d / "chains.conllu", "labels": labels, "a": demo_store, "b": d / "b.h5", "s0": d / "s0.h5", "s1": d / "s1.h5", "conllu": d / "dev.conllu",
            "encoder": tiny_model_factory("bert"), "classifier": tiny_model_factory("bert", classifier=True)}


def ok(name: str, i: dict[str, Path], out: Path) -> tuple[list[str], str | None]:
    """A quick, successful invocation of ``name`` writing ``out`` where it writes; and what it reads on stdin."""
    o = str(out)
    return {
        "extract": (["extract", "--limit", "3", "--batch-size", "3", "-o", o], None),
        "finetune": (["finetune", "--model", str(i["encoder"]), "--task", "sst2", "--train-limit", "8", "--eval-limit", "4", "--max-steps", "1",
                      "--batch-size", "4", "-o", o], None),
        "check": (["check", str(i["a"]), str(i["b"])], None),
        "show": (["show", str(i["a"])], None),
        "plot": (["plot", str(i["a"]), "--quantity", "stat_cls", "-o", o + ".png"], None),
        "diff": (["diff", str(i["a"]), str(i["b"]), "-o", o], None),
        "merge": (["merge", str(i["s0"]), str(i["s1"]), "-o", o], None),
        "classify run": (["classify", "run", str(i["a"]), "-o", o], None),
        "classify annotate": (["classify", "annotate", str(i["a"]), "--labels", o + ".tsv", "--limit", "1"], "v\n"),
        "classify train": (["classify", "train", str(i["labels"]), "--synthetic", "40", "--epochs", "1", "--val-fraction", "0.25", "-o", o + ".pt"], None),
        "framenet": (["framenet", "--conllu", str(i["conllu"]), "-o", o], None),
        "ablate": (["ablate", "--model", str(i["classifier"]), "--task", "sst2", "--limit", "6", "--bootstrap", "10", "-o", o], None),
        "words": (["words", str(i["a"]), "-o", o], None),
        "cluster": (["cluster", str(i["a"]), "-o", o], None),
        "coref": (["coref", str(i["chains"]), "--model", str(i["encoder"]), "--bootstrap", "10", "-o", o], None),
        "probe": (["probe", "--train", str(i["chains"]), "--test", str(i["chains"]), "--model", str(i["encoder"]), "--embedding-dims", "0",
                   "--max-iter", "3", "-o", o], None),
    }[name]


def written(name: str, out: Path) -> Path:
    return {"plot": out.with_name(out.name + ".png"), "classify train": out.with_name(out.name + ".pt")}.get(name, out)


def bad(name: str, i: dict[str, Path], tmp: Path) -> list[str]:
    """An invocation that fails with an expected (one-line) error: a store or data file that does not exist."""
    missing = str(tmp / "missing.h5")
    return {
        "extract": ["extract", "--data", str(tmp / "missing.tsv"), "-o", str(tmp / "x.h5")],
        "finetune": ["finetune", "--model", str(i["encoder"]), "--data", str(tmp / "missing.tsv"), "-o", str(tmp / "x")],
        "check": ["check", missing], "show": ["show", missing], "plot": ["plot", missing],
        "diff": ["diff", missing, str(i["a"])], "merge": ["merge", missing, str(i["s1"]), "-o", str(tmp / "x.h5")],
        "classify run": ["classify", "run", missing], "classify annotate": ["classify", "annotate", missing, "--labels", str(tmp / "l.tsv")],
        "classify train": ["classify", "train", str(tmp / "missing.tsv"), "-o", str(tmp / "x.pt")],
        "framenet": ["framenet", "--conllu", str(tmp / "missing.conllu"), "-o", str(tmp / "x.h5")],
        "ablate": ["ablate", "--model", str(i["classifier"]), "--data", str(tmp / "missing.tsv"), "-o", str(tmp / "x.h5")],
        "reproduce": ["reproduce", "-o", str(tmp / "x"), "--tasks", "nosuchtask"],
        "words": ["words", missing, "-o", str(tmp / "x.h5")], "cluster": ["cluster", missing, "-o", str(tmp / "x.h5")],
        "coref": ["coref", str(tmp / "missing.conllu"), "-o", str(tmp / "x.h5")],
        "probe": ["probe", "--train", str(tmp / "missing.conllu"), "--test", str(tmp / "missing.conllu"), "-o", str(tmp / "x.h5")],
    }[name]


def invoke(args: list[str], stdin: str | None = None):
    return runner.invoke(app, args, input=stdin)


@covers(("extract", "finetune", "check", "show", "plot", "diff", "merge", "classify run", "classify annotate", "classify train",
         "framenet", "ablate", "words", "cluster", "coref", "probe"), "--quiet")
@pytest.mark.parametrize("name", TABLES)
def test_quiet_leaves_stderr_empty_where_the_run_has_notes(name, inputs, tmp_path):
    args, stdin = ok(name, inputs, tmp_path / "loud")
    loud = invoke([*args, "--format", "tsv"], stdin)
    assert loud.exit_code == 0, loud.stderr
    args, stdin = ok(name, inputs, tmp_path / "quiet")
    quiet = invoke([*args, "--format", "tsv", "--quiet"], stdin)
    assert quiet.exit_code == 0, quiet.stderr
    if name == "classify annotate":  # its maps and prompt are the interface, on stderr: only the notes go
        assert 0 < len(quiet.stderr) < len(loud.stderr)
        return
    assert quiet.stderr == ""
    assert loud.stderr != "" or len(quiet.stdout) < len(loud.stdout), "the command says nothing that --quiet could silence"


@covers(("extract", "finetune", "check", "show", "plot", "diff", "merge", "classify run", "classify annotate", "classify train",
         "framenet", "ablate", "reproduce", "words", "cluster", "coref", "probe"), "--verbose")
@pytest.mark.parametrize("name", [*TABLES, "reproduce"])
def test_verbose_adds_the_version_and_command_line_to_stderr(name, inputs, tmp_path):
    args = bad(name, inputs, tmp_path)
    plain = invoke(args)
    loud = invoke([*args, "--verbose"])
    assert plain.exit_code == loud.exit_code != 0
    line = re.compile(rf"^bertsecrets 0\.1\.0 {name.split()[0]}( \w+)?: python ", re.M)
    assert not line.search(plain.stderr) and line.search(loud.stderr), loud.stderr


@covers(("extract", "finetune", "check", "show", "plot", "diff", "merge", "classify run", "classify annotate", "classify train",
         "framenet", "ablate", "reproduce", "words", "cluster", "coref", "probe"), "--debug")
@pytest.mark.parametrize("name", [*TABLES, "reproduce"])
def test_debug_shows_the_traceback_of_an_expected_error(name, inputs, tmp_path):
    args = bad(name, inputs, tmp_path)
    plain = invoke(args)
    one_line_error(plain, plain.exit_code, last=True)
    traced = invoke([*args, "--debug"])
    assert traced.exit_code == plain.exit_code and "Traceback" in traced.stderr


@covers(("extract", "finetune", "check", "show", "plot", "diff", "merge", "classify run", "classify annotate", "classify train",
         "framenet", "ablate", "words", "cluster", "coref", "probe"), "--format")
@pytest.mark.parametrize("name", TABLES)
def test_format_tsv_and_json_print_one_machine_readable_table(name, inputs, tmp_path):
    if name == "plot":  # plot prints a table only with --list
        args, stdin = ["plot", str(inputs["a"]), "--list"], None
    else:
        args, stdin = ok(name, inputs, tmp_path / "tsv")
    res = invoke([*args, "--format", "tsv"], stdin)
    assert res.exit_code == 0, res.stderr
    lines = res.stdout.splitlines()
    assert len(lines) >= 2 and not any(ch in res.stdout for ch in "┃│━─"), res.stdout
    assert len({ln.count("\t") for ln in lines}) == 1 and lines[0].count("\t") >= 1, res.stdout  # cut -f works on every line
    if name != "plot":
        args, stdin = ok(name, inputs, tmp_path / "json")
    res = invoke([*args, "--format", "json"], stdin)
    assert res.exit_code == 0, res.stderr
    records = json.loads(res.stdout)  # jq reads it as it is
    assert isinstance(records, list) and records and all(isinstance(r, dict) for r in records)
    assert list(records[0]) == lines[0].split("\t")  # the same table as tsv
    refused = invoke([*args, "--format", "xml"], stdin)
    assert refused.exit_code == 2 and "xml" in refused.stderr


@covers(("extract", "finetune", "check", "show", "plot", "diff", "merge", "classify run", "classify annotate", "classify train",
         "framenet", "ablate", "words", "cluster", "coref", "probe"), "--table")
@pytest.mark.parametrize("name", TABLES)
def test_table_picks_one_table_by_name_and_refuses_unknown_names(name, inputs, tmp_path):
    if name == "plot":
        args, stdin = ["plot", str(inputs["a"]), "--list"], None
    else:
        args, stdin = ok(name, inputs, tmp_path / "all")
    every = invoke([*args, "--format", "json"], stdin)
    assert every.exit_code == 0, every.stderr
    if name != "plot":
        args, stdin = ok(name, inputs, tmp_path / "none")
    refused = invoke([*args, "--table", "no-such-table"], stdin)
    line = one_line_error(refused, 3, "--table no-such-table")
    names = line.split("prints ", 1)[1].split(", ")
    if name != "plot":
        args, stdin = ok(name, inputs, tmp_path / "last")
    last = invoke([*args, "--format", "json", "--table", names[-1]], stdin)
    assert last.exit_code == 0, last.stderr
    assert (list(json.loads(last.stdout)[0]) != list(json.loads(every.stdout)[0])) == (len(names) > 1)  # other columns


@covers(("extract", "finetune", "classify run", "classify train", "diff", "merge", "plot", "framenet", "ablate", "words", "cluster", "coref", "probe"), "--force")
@pytest.mark.parametrize("name", WRITERS)
def test_force_replaces_an_existing_output_that_is_refused_without_it(name, inputs, tmp_path):
    out = tmp_path / "out"
    target = written(name, out)
    args, stdin = ok(name, inputs, out)
    if name == "finetune":  # only a finetune folder may be replaced, never any folder
        assert invoke(args, stdin).exit_code == 0
        (target / "keep.txt").write_text("old")
    else:
        target.write_bytes(b"old output")
    refused = invoke(args, stdin)
    one_line_error(refused, 6, "--force")
    assert (target / "keep.txt").exists() if name == "finetune" else target.read_bytes() == b"old output"
    forced = invoke([*args, "--force"], stdin)
    assert forced.exit_code == 0, forced.stderr
    assert not (target / "keep.txt").exists() if name == "finetune" else target.read_bytes() != b"old output"


@covers("reproduce", "--force")
def test_reproduce_force_replaces_an_existing_folder(tmp_path):
    out = tmp_path / "paper"
    out.mkdir()
    (out / "old.txt").write_text("old")
    args = ["reproduce", "-o", str(out), "--tasks", "nosuchtask"]
    assert invoke(args).exit_code == 6 and (out / "old.txt").exists()
    forced = invoke([*args, "--force"])
    assert forced.exit_code == 3 and "nosuchtask" in forced.stderr  # past the existence check: the task is the problem now


class _Spy:
    """Records the ``locking`` argument of every h5py.File opened in-process."""

    def __init__(self, monkeypatch):
        import h5py

        self.calls: list[object] = []
        real = h5py.File
        spy = self

        class File(real):  # type: ignore[misc, valid-type]
            def __init__(self, *a, **kw):
                spy.calls.append(kw.get("locking"))
                super().__init__(*a, **kw)

        monkeypatch.setattr(h5py, "File", File)


@covers(("extract", "finetune", "check", "show", "plot", "diff", "merge", "classify run", "classify annotate", "classify train",
         "framenet", "ablate", "words", "cluster", "coref", "probe"), "--no-locking")
@pytest.mark.parametrize("name", TABLES)
def test_no_locking_opens_every_hdf5_file_without_locks(name, inputs, tmp_path, monkeypatch):
    spy = _Spy(monkeypatch)
    args, stdin = ok(name, inputs, tmp_path / "locked")
    assert invoke(args, stdin).exit_code == 0
    assert spy.calls and False not in spy.calls
    spy.calls.clear()
    args, stdin = ok(name, inputs, tmp_path / "unlocked")
    res = invoke([*args, "--no-locking"], stdin)
    assert res.exit_code == 0, res.stderr
    assert spy.calls and set(spy.calls) == {False}, spy.calls


@covers(("extract", "finetune", "classify run", "classify train", "framenet", "ablate", "reproduce", "coref", "probe"), "--device")
@pytest.mark.parametrize("name", ["extract", "finetune", "classify run", "classify train", "framenet", "ablate", "reproduce", "coref", "probe"])
def test_device_is_used_and_a_bad_device_is_refused_in_one_line(name, inputs, tmp_path):
    if name == "reproduce":
        args, stdin = ["reproduce", "-o", str(tmp_path / "r"), "--tasks", "sst2"], None
    else:
        res = invoke([*ok(name, inputs, tmp_path / "cpu")[0], "--device", "cpu"], ok(name, inputs, tmp_path)[1])
        assert res.exit_code == 0, res.stderr
        args, stdin = ok(name, inputs, tmp_path / "tpu")
    refused = invoke([*args, "--device", "tpu7"], stdin)
    one_line_error(refused, 3, "--device", "tpu7")
    assert not (tmp_path / "r").exists()
