"""Integrity (issue 14): no command destroys an input, and no reader accepts attention that is not attention.

- every command that writes refuses an output that is one of its inputs, however it is spelled;
- a store missing a part its kind requires is refused (exit 4, naming it) by every reader, and by check;
- NaN, negative values or rows not summing to 1 are refused by classify, diff, plot and annotate as they read
  (``--no-validate`` lets them through), within what float16 and uint8 can lose;
- truncation, foreign files, locks and '-' each get their own line, decided from the file, not h5py's wording;
- no raw Python warning reaches stderr; empty categories are blank cells with a note.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import covers, one_line_error
from typer.testing import CliRunner

from bertsecrets_cli.cli.app import app

INPUT, STORE, OUTPUT = 3, 4, 6


def invoke(*args: str, input: bytes | str | None = None):  # noqa: A002 - CliRunner's name
    return CliRunner().invoke(app, list(args), input=input)


def _snapshot(*paths: Path) -> dict[Path, bytes]:
    out: dict[Path, bytes] = {}
    for p in paths:
        files = [q for q in sorted(p.rglob("*")) if q.is_file() and not q.is_symlink()] if p.is_dir() else [p]
        out.update({q: q.read_bytes() for q in files})
    return out


def _edit(src: Path, dst: Path, fn) -> Path:  # noqa: ANN001 - a callable on the open h5py file
    import h5py

    shutil.copy(src, dst)
    with h5py.File(dst, "r+") as f:
        fn(f)
    return dst


@pytest.fixture(scope="module")
def damaged(tmp_path_factory: pytest.TempPathFactory, demo_store: Path) -> dict[str, Path]:
    """Copies of the demo store with one thing wrong each."""
    d = tmp_path_factory.mktemp("integrity")

    def setter(values):  # noqa: ANN001, ANN202
        def fn(f):  # noqa: ANN001, ANN202
            m = f["attention/maps"]
            m[: len(values)] = values

        return fn

    def scale(k: float):  # noqa: ANN202
        def fn(f):  # noqa: ANN001, ANN202
            m = f["attention/maps"]
            m[...] = (m[...].astype(np.float32) * k).astype(m.dtype)

        return fn

    out = {
        "nan": _edit(demo_store, d / "nan.h5", setter(np.full(300, np.nan))),
        "negative": _edit(demo_store, d / "negative.h5", setter(np.array([-0.25, 0.5, 0.75]))),
        "unnormalised": _edit(demo_store, d / "unnormalised.h5", scale(0.5)),
        "above-one": _edit(demo_store, d / "above-one.h5", setter(np.array([1.5, -0.5]))),
    }
    raw = demo_store.read_bytes()
    (d / "truncated.h5").write_bytes(raw[: len(raw) // 2])
    out["truncated"] = d / "truncated.h5"
    return out


# ---------------------------------------------------------------------------------------------
# 1. an output may never be an input


@pytest.fixture
def ws(tmp_path: Path, demo_store: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """A working folder (the cwd) with a store, a second store, a data file, a CoNLL-U file, a model folder and a label file."""
    monkeypatch.chdir(tmp_path)
    shutil.copy(demo_store, tmp_path / "a.h5")
    shutil.copy(demo_store, tmp_path / "b.h5")
    (tmp_path / "texts.tsv").write_text("sentence\tlabel\na good film\t1\na bad film\t0\n")
    (tmp_path / "x.conllu").write_text("1\tA\ta\tDET\t_\t_\t2\tdet\t_\t_\n2\tdog\tdog\tNOUN\t_\t_\t0\troot\t_\t_\n\n")
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text('{"model_type": "bert"}')
    (tmp_path / "labels.tsv").write_text("store\texample\tlayer\thead\tlabel\texample_id\na.h5\t0\t1\t1\tvertical\tdev-0\n")
    (tmp_path / "clf.pt").write_bytes(b"not really a classifier")
    (tmp_path / "out").mkdir()
    shutil.copy(tmp_path / "x.conllu", tmp_path / "out" / "x.conllu")
    os.symlink("b.h5", tmp_path / "link-to-b.h5")
    os.link(tmp_path / "a.h5", tmp_path / "hard-a.h5")
    return {"root": tmp_path}


CLOBBER_CASES: dict[str, list[str]] = {
    "extract-over-its-data-file": ["extract", "--data", "texts.tsv", "-o", "texts.tsv", "--force"],
    "extract-over-its-data-file-as-./": ["extract", "--data", "texts.tsv", "-o", "./texts.tsv", "--force"],
    "extract-over-its-model-folder": ["extract", "--model", "model", "-o", "model", "--force"],
    "extract-over-a-file-of-its-model-folder": ["extract", "--model", "model", "-o", "model/config.json", "--force"],
    "finetune-over-its-model-folder": ["finetune", "--model", "model/", "-o", "model", "--force"],
    "finetune-over-its-training-file": ["finetune", "--data", "texts.tsv", "--eval-data", "texts.tsv", "-o", "texts.tsv", "--force"],
    "framenet-over-its-conllu": ["framenet", "--conllu", "x.conllu", "-o", "x.conllu", "--force"],
    "reproduce-into-a-folder-holding-its-input": ["reproduce", "--conllu", "out/x.conllu", "-o", "out", "--force"],
    "merge-over-a-hard-link-of-its-shard": ["merge", "a.h5", "-o", "hard-a.h5", "--force"],
    "diff-over-b": ["diff", "a.h5", "b.h5", "-o", "b.h5", "--force"],
    "diff-over-a-symlink-to-b": ["diff", "a.h5", "b.h5", "-o", "link-to-b.h5", "--force"],
    "diff-over-b-by-another-path": ["diff", "a.h5", "b.h5", "-o", "out/../b.h5"],
    "plot-over-its-store": ["plot", "a.h5", "-o", "./a.h5", "--force"],
    "classify-over-its-store": ["classify", "a.h5", "-o", "hard-a.h5", "--force"],
    "classify-over-its-classifier": ["classify", "a.h5", "--classifier", "clf.pt", "-o", "clf.pt", "--force"],
    "classify-annotate-labels-into-its-store": ["classify", "annotate", "a.h5", "--labels", "a.h5"],
    "classify-train-over-its-labels": ["classify", "train", "labels.tsv", "-o", "labels.tsv", "--force"],
    "classify-train-over-a-store-its-labels-name": ["classify", "train", "labels.tsv", "-o", "a.h5", "--force"],
    "ablate-over-its-data-file": ["ablate", "--data", "texts.tsv", "--heads", "L1H1", "-o", "texts.tsv", "--force"],
    "ablate-combine-over-a-shard": ["ablate", "--combine", "a.h5", "b.h5", "-o", "link-to-b.h5", "--force"],
    "words-over-its-store": ["words", "a.h5", "-o", "hard-a.h5", "--force"],
    "view-over-its-patterns-store": ["view", "a.h5", "--patterns", "b.h5", "-o", "link-to-b.h5", "--force"],
    "cluster-figure-over-its-store": ["cluster", "a.h5", "-o", "out/c.h5", "--figure", "./a.h5", "--force"],
    "coref-over-its-chains": ["coref", "x.conllu", "-o", "x.conllu", "--force"],
    "probe-over-its-test-file": ["probe", "--train", "x.conllu", "--test", "out/x.conllu", "-o", "out/x.conllu", "--force"],
}


@pytest.mark.parametrize("name", list(CLOBBER_CASES))
def test_no_command_writes_over_one_of_its_inputs(name: str, ws: dict[str, Path]) -> None:
    root = ws["root"]
    before = _snapshot(root)
    res = invoke(*CLOBBER_CASES[name])
    line = one_line_error(res, OUTPUT, last=True)
    assert "input" in line, line
    assert _snapshot(root) == before, "an input was modified"
    assert not [p.name for p in root.rglob("*.tmp")]


def test_standard_output_redirected_into_an_input_is_refused(ws: dict[str, Path]) -> None:
    """``diff a b -o - >> b`` would append a diff store to the attention store b."""
    root = ws["root"]
    before = (root / "b.h5").read_bytes()
    with open(root / "b.h5", "ab") as out:
        r = subprocess.run([sys.executable, "-m", "bertsecrets_cli", "diff", "a.h5", "b.h5", "-o", "-"], stdout=out, stderr=subprocess.PIPE,
                           text=True, cwd=root, env={**os.environ, "HF_HUB_OFFLINE": "1"}, timeout=120)
    assert r.returncode == OUTPUT and "standard output" in r.stderr and "b.h5" in r.stderr, r.stderr
    assert (root / "b.h5").read_bytes() == before


def test_outputs_next_to_inputs_are_still_allowed(tmp_path: Path) -> None:
    """The rule refuses only what would destroy an input: new files and earlier results in an input folder are fine."""
    from bertsecrets_cli.cli.clobber import refuse_inputs_as_outputs
    from bertsecrets_cli.errors import OutputError

    data = tmp_path / "SST-2"
    data.mkdir()
    (data / "dev.tsv").write_text("sentence\tlabel\nok\t1\n")
    (data / "old.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 64)
    refuse_inputs_as_outputs([str(data / "pre.h5")], [str(data), "embedded", None, "-"])
    refuse_inputs_as_outputs([str(data / "old.h5"), "-", None], [str(data)])
    refuse_inputs_as_outputs([str(tmp_path / "other.tsv")], [str(data / "dev.tsv")])
    with pytest.raises(OutputError, match="inside the input folder"):
        refuse_inputs_as_outputs([str(data / "dev.tsv")], [str(data)])
    with pytest.raises(OutputError, match="holds the input"):
        refuse_inputs_as_outputs([str(tmp_path)], [str(data / "dev.tsv")])


# ---------------------------------------------------------------------------------------------
# 2. required parts, then the values, checked as they are read


@pytest.mark.parametrize("part", ["attention/maps", "examples/length", "examples/attention_offset", "tokens/special", "stats/per_example"])
@pytest.mark.parametrize("cmd", ["check", "classify", "diff", "plot-map", "show"])
def test_a_store_missing_a_required_part_is_refused_naming_it(part: str, cmd: str, demo_store: Path, tmp_path: Path) -> None:
    bad = _edit(demo_store, tmp_path / "bad.h5", lambda f: f.__delitem__(part))
    args = {"check": ["check", str(bad)], "classify": ["classify", str(bad)], "diff": ["diff", str(demo_store), str(bad)],
            "plot-map": ["plot", str(bad), "--example", "0", "--head", "L1H1"], "show": ["show", str(bad)]}[cmd]
    line = one_line_error(invoke(*args), STORE, str(bad), part, last=True)
    assert "compares 0" not in line


def _strip_part(src: Path, dst: Path, part: str) -> Path:
    return _edit(src, dst, lambda f: f.__delitem__(part))


def test_check_never_passes_a_store_of_any_kind_missing_a_part_it_requires(demo_store: Path, tmp_path: Path) -> None:
    from bertsecrets_cli.store.validation import REQUIRED

    stores = {"attention": demo_store, "patterns": tmp_path / "p.h5", "diff": tmp_path / "d.h5"}
    assert invoke("classify", str(demo_store), "-o", str(stores["patterns"]), "-q").exit_code == 0
    assert invoke("diff", str(demo_store), str(demo_store), "-o", str(stores["diff"]), "-q").exit_code == 0
    for kind, store in stores.items():
        assert invoke("check", str(store)).exit_code == 0, kind
        assert REQUIRED[kind], kind
        for part in REQUIRED[kind]:
            bad = _strip_part(store, tmp_path / f"{kind}-bad.h5", part)
            one_line_error(invoke("check", str(bad)), STORE, part, last=True)


VALUE_CASES = {"nan": "NaN", "negative": "negative", "unnormalised": "do not sum to 1", "above-one": "negative"}


@pytest.mark.parametrize("damage", list(VALUE_CASES))
def test_check_refuses_values_that_are_not_attention(damage: str, damaged: dict[str, Path]) -> None:
    one_line_error(invoke("check", str(damaged[damage])), STORE, VALUE_CASES[damage], last=True)


@covers("classify run", "--no-validate")
@pytest.mark.parametrize("damage", list(VALUE_CASES))
def test_classify_refuses_values_that_are_not_attention_unless_told_not_to_validate(damage: str, damaged: dict[str, Path], tmp_path: Path) -> None:
    bad = damaged[damage]
    before = bad.read_bytes()
    line = one_line_error(invoke("classify", str(bad), "-o", str(tmp_path / "p.h5")), STORE, str(bad), VALUE_CASES[damage], "--no-validate", last=True)
    assert "example 0" in line and not (tmp_path / "p.h5").exists()
    res = invoke("classify", str(bad), "-o", str(tmp_path / "p.h5"), "--no-validate", "-q")
    assert res.exit_code == 0, res.stderr
    assert (tmp_path / "p.h5").exists() and bad.read_bytes() == before


@covers("diff", "--no-validate")
@pytest.mark.parametrize("damage", ["nan", "unnormalised"])
def test_diff_refuses_values_that_are_not_attention_unless_told_not_to_validate(damage: str, damaged: dict[str, Path], demo_store: Path) -> None:
    one_line_error(invoke("diff", str(demo_store), str(damaged[damage])), STORE, str(damaged[damage]), VALUE_CASES[damage], last=True)
    res = invoke("diff", str(demo_store), str(damaged[damage]), "--no-validate", "-f", "tsv")
    assert res.exit_code == 0, res.stderr
    assert "cosine" in res.stdout


@covers("plot", "--no-validate")
def test_plot_of_a_map_refuses_values_that_are_not_attention_unless_told_not_to_validate(damaged: dict[str, Path]) -> None:
    bad = damaged["negative"]
    one_line_error(invoke("plot", str(bad), "--example", "0", "--head", "L1H1"), STORE, "negative", last=True)
    res = invoke("plot", str(bad), "--example", "0", "--head", "L1H1", "--no-validate", "--width", "80")
    assert res.exit_code == 0, res.stderr
    assert "L1H1" in res.stdout


@covers("classify annotate", "--no-validate")
def test_annotate_refuses_maps_that_are_not_attention_unless_told_not_to_validate(damaged: dict[str, Path], tmp_path: Path) -> None:
    bad, labels = damaged["unnormalised"], tmp_path / "l.tsv"
    one_line_error(invoke("classify", "annotate", str(bad), "--labels", str(labels), input="v"), STORE, "do not sum to 1", last=True)
    res = invoke("classify", "annotate", str(bad), "--labels", str(labels), "--no-validate", input="v")
    assert res.exit_code == 0, res.stderr
    assert "\tvertical\t" in labels.read_text()


@covers("show", "--no-validate")
def test_show_refuses_a_store_missing_a_part_unless_told_not_to_validate(demo_store: Path, tmp_path: Path) -> None:
    bad = _strip_part(demo_store, tmp_path / "bad.h5", "tokens/special")
    one_line_error(invoke("show", str(bad)), STORE, "tokens/special", last=True)
    res = invoke("show", str(bad), "--no-validate", "-f", "tsv")
    assert res.exit_code == 0 and "attention" in res.stdout, res.stderr


def test_the_environment_variable_turns_validation_off_too(damaged: dict[str, Path]) -> None:
    res = CliRunner().invoke(app, ["plot", str(damaged["nan"]), "--example", "1", "--head", "L1H1"], env={"BERTSECRETS_NO_VALIDATE": "1"})
    assert res.exit_code == 0, res.stderr


def test_the_tolerance_is_what_float16_and_uint8_can_lose() -> None:
    from bertsecrets_cli.store.validation import attention_problem

    rng = np.random.default_rng(0)
    for T in (1, 7, 128, 512):
        p = rng.dirichlet(np.full(T, 0.3), size=(2, 3, T))
        assert attention_problem(p.astype(np.float16).astype(np.float32), "float16") is None, T
        assert attention_problem(np.rint(p * 255).astype(np.float32) / 255, "uint8") is None, T
    p = rng.dirichlet(np.ones(16), size=(2, 3, 16)).astype(np.float32)
    assert attention_problem(p * 1.01, "float16") is not None
    assert attention_problem(p * 1.003, "float16") is None
    bad = p.copy()
    bad[0, 0, 0] = 0
    bad[0, 0, 0, :2] = [1.2, -0.2]  # sums to 1, yet not a distribution
    assert "negative" in attention_problem(bad, "float16")


def test_a_uint8_store_passes_validation(tmp_path: Path) -> None:
    out = tmp_path / "u8.h5"
    assert invoke("extract", "--limit", "6", "--encoding", "uint8", "--device", "cpu", "-q", "-o", str(out)).exit_code == 0
    assert invoke("check", str(out)).exit_code == 0
    res = invoke("classify", str(out), "-q")
    assert res.exit_code == 0, res.stderr


# ---------------------------------------------------------------------------------------------
# 3. HDF5 failures: from the file's state and the exception, never from h5py's wording


@pytest.mark.parametrize("args", [["check"], ["check", "--no-locking"], ["classify"], ["classify", "--no-locking"], ["show"], ["diff", "DEMO"]])
def test_a_truncated_store_is_called_truncated_never_locked(args: list[str], damaged: dict[str, Path], demo_store: Path) -> None:
    cmd, *rest = args
    argv = [cmd, *(str(demo_store) if a == "DEMO" else a for a in rest), str(damaged["truncated"])]
    line = one_line_error(invoke(*argv), STORE, str(damaged["truncated"]), "truncated", last=True)
    assert "lock" not in line


@pytest.mark.parametrize("cmd", ["check", "classify", "show"])
def test_through_stdin_the_store_is_named_dash_not_the_spool_file(cmd: str, damaged: dict[str, Path]) -> None:
    for damage, needle in (("truncated", "truncated"), ("nan", "NaN")):
        if cmd == "show" and damage == "nan":
            continue  # show does not read the maps
        res = invoke(cmd, "-", input=damaged[damage].read_bytes())
        line = one_line_error(res, STORE, "error: -: ", needle, last=True)
        assert "bertsecrets-stdin" not in res.stderr, line


def test_a_store_locked_by_its_writer_says_so_and_no_locking_reads_it(demo_store: Path, tmp_path: Path) -> None:
    p = tmp_path / "busy.h5"
    shutil.copy(demo_store, p)
    holder = subprocess.Popen([sys.executable, "-c", f"import h5py, sys, time; f = h5py.File({str(p)!r}, 'a'); print('open', flush=True); time.sleep(60)"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "open"
        one_line_error(invoke("check", str(p)), STORE, str(p), "cannot lock", "--no-locking", last=True)
        res = invoke("check", str(p), "--no-locking")
        assert res.exit_code == 0, res.stderr
    finally:
        holder.kill()
        holder.wait()


def test_foreign_and_damaged_headers_get_their_own_lines(tmp_path: Path, demo_store: Path) -> None:
    import h5py

    foreign = tmp_path / "foreign.h5"
    with h5py.File(foreign, "w") as f:
        f["x"] = np.arange(3)
    one_line_error(invoke("classify", str(foreign)), STORE, "another tool", last=True)
    broken = tmp_path / "broken.h5"
    data = bytearray(demo_store.read_bytes())
    data[100:400] = b"\xff" * 300  # inside the superblock and root group: the signature is intact, the structure is not
    broken.write_bytes(bytes(data))
    line = one_line_error(invoke("check", str(broken)), STORE, str(broken), last=True)
    assert "lock" not in line and "truncated" not in line


def test_superblock_end_of_file_is_read_from_the_header(demo_store: Path) -> None:
    from bertsecrets_cli.store.failures import superblock

    at, base, eof = superblock(demo_store)
    assert at == 0 and base == 0 and eof == demo_store.stat().st_size


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their permissions")
def test_an_unreadable_store_says_permission_denied(demo_store: Path, tmp_path: Path) -> None:
    p = tmp_path / "secret.h5"
    shutil.copy(demo_store, p)
    p.chmod(0)
    one_line_error(invoke("check", str(p)), INPUT, str(p), "permission denied", last=True)


# ---------------------------------------------------------------------------------------------
# 4. no raw warning; empty categories are blank cells with a note


def test_data_without_punctuation_gives_a_blank_cell_and_a_note_not_a_warning(tmp_path: Path) -> None:
    data = tmp_path / "plain.tsv"
    data.write_text("sentence\tlabel\nthe film was good\t1\nthe film was bad\t0\n")
    res = invoke("extract", "--data", str(data), "--device", "cpu", "-o", str(tmp_path / "x.h5"), "-f", "json")
    assert res.exit_code == 0, res.stderr
    assert "Warning" not in res.stderr and "nan" not in res.stdout.lower()
    import json

    rows = json.loads(res.stdout)
    assert all(r["punct sum"] is None and r["[CLS]"] is not None for r in rows)  # extract's column: the sum over punctuation
    res = invoke("extract", "--data", str(data), "--device", "cpu", "-o", str(tmp_path / "y.h5"))
    assert "blank: punct sum: no example has a punctuation token" in " ".join(res.stdout.split()) and "Warning" not in res.stderr


def test_a_file_without_a_label_column_is_noted(tmp_path: Path) -> None:
    data = tmp_path / "unlabelled.tsv"
    data.write_text("sentence\nthe film was good\nthe film was bad\n")
    res = invoke("extract", "--data", str(data), "--device", "cpu", "-o", str(tmp_path / "x.h5"))
    assert res.exit_code == 0, res.stderr
    assert "no label column" in res.stderr and "unlabelled" in res.stderr


def test_a_library_warning_becomes_a_note_shown_only_with_verbose(demo_store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import warnings

    import bertsecrets_cli.jobs.show as show

    real = show.run_show

    def noisy(*a, **k):  # noqa: ANN002, ANN003, ANN202
        warnings.warn("Mean of empty slice", RuntimeWarning, stacklevel=1)
        return real(*a, **k)

    monkeypatch.setattr(show, "run_show", noisy)
    res = invoke("show", str(demo_store))
    assert res.exit_code == 0 and "Warning" not in res.stderr, res.stderr
    res = invoke("show", str(demo_store), "-v")
    assert "note: RuntimeWarning: Mean of empty slice" in res.stderr


@pytest.mark.parametrize("sets", [["--heads", "L1H1"], ["--layers", "L2"]])
def test_check_passes_real_ablation_stores_and_refuses_them_without_their_variants(sets: list[str], tiny_model_factory, tmp_path: Path) -> None:
    """An ablation of whole layers only has no heads/ group: check must still pass it (and refuse a missing part)."""
    out = tmp_path / "abl.h5"
    res = invoke("ablate", "-m", str(tiny_model_factory("bert", classifier=True)), *sets, "-n", "4", "--bootstrap", "0", "--device", "cpu", "-q", "-o", str(out))
    assert res.exit_code == 0, res.stderr
    assert invoke("check", str(out)).exit_code == 0
    bad = _strip_part(out, tmp_path / "bad.h5", "ablation/variants/disabled")
    one_line_error(invoke("check", str(bad)), STORE, "ablation/variants/disabled", last=True)


@covers("words", "--no-validate")
def test_words_refuses_values_that_are_not_attention_unless_told_not_to_validate(damaged: dict[str, Path], tmp_path: Path) -> None:
    bad, out = damaged["unnormalised"], tmp_path / "w.h5"
    one_line_error(invoke("words", str(bad), "-o", str(out)), STORE, str(bad), "do not sum to 1", last=True)
    assert not out.exists()
    res = invoke("words", str(bad), "-o", str(out), "--no-validate", "-q")
    assert res.exit_code == 0, res.stderr
    assert out.exists()
