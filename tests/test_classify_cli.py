"""``bertsecrets classify``: shares and majority types from a real store, the patterns store, pipes, errors,
the annotation loop (keys injected through stdin) and CNN training from a labels file."""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from bertsecrets_cli.analysis import patterns as P
from bertsecrets_cli.cli.app import app
from bertsecrets_cli.jobs.annotate import stream_keys
from bertsecrets_cli.jobs.labels import TSV_COLUMNS, read_labels
from bertsecrets_cli.store import open_store
from bertsecrets_cli.store.reader import read_patterns

from helpers import covers, one_line_error

runner = CliRunner()


def invoke(*args: str, input: str | None = None):
    return runner.invoke(app, list(args), input=input)


def sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def table(obj: dict, name: str) -> list[dict]:
    """A table of ``--format json --table all`` output, by its short name."""
    return obj[name]


@pytest.fixture(scope="module")
def classified(demo_store: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, str]:
    out = tmp_path_factory.mktemp("pat") / "pat.h5"
    before = sha(demo_store)
    res = invoke("classify", str(demo_store), "-o", str(out), "--features", "-f", "json", "--table", "all")
    assert res.exit_code == 0, res.stderr
    assert sha(demo_store) == before  # the input store is never modified
    return out, json.loads(res.stdout), res.stderr


def test_classify_prints_shares_per_layer_each_heads_majority_and_the_heterogeneous_share(demo_store: Path) -> None:
    res = invoke("classify", str(demo_store))
    assert res.exit_code == 0, res.stderr
    out = res.stdout
    assert "pattern shares per layer" in out and "L6" in out and "all" in out
    assert "rules-v1" in out and "synthetic maps" in out  # the classifier and its validation score go with the shares
    assert "majority pattern per head" in out and "heterogeneous share of maps" in out
    assert "H12" in out


def test_json_shares_sum_to_one_and_match_the_stored_labels(classified: tuple[Path, dict, str]) -> None:
    path, obj, _ = classified
    shares = table(obj, "layers")
    assert [r["layer"] for r in shares] == [f"L{i}" for i in range(1, 7)] + ["all"]
    for r in shares:
        assert sum(r[c] for c in P.CLASSES) == pytest.approx(1.0)
    with open_store(path) as st:
        pm = read_patterns(st)
        assert st.kind == "patterns" and pm.labels.shape == (24, 6, 12) and pm.features.shape == (24, 6, 12, len(P.FEATURES))
        layer_het = (pm.labels == P.HETEROGENEOUS).mean(axis=(0, 2))
        assert [r["heterogeneous"] for r in shares[:6]] == pytest.approx(layer_het.tolist())
        heads = st.heads()
        total = sum(heads[f"pattern_share_{s}"].values for s in P.SLUGS)
        np.testing.assert_allclose(total, 1.0)
        maj = heads["pattern_majority"].values.astype(int)
        counts = np.stack([(pm.labels == c).sum(0) for c in range(5)], -1)
        assert (maj == counts.argmax(-1)).all()
        # the labels are the rules applied to the stored features
        np.testing.assert_array_equal(P.classify_features(pm.features), pm.labels)
        prov = st.provenance()
        assert prov["classifier"] == "rules-v1" and 0.95 <= prov["classifier_score"] <= 1.0
        assert json.loads(pm.attrs["thresholds"])["vertical_min"] == P.THRESHOLDS.vertical_min
        assert st.n_examples == 24 and st.n_layers == 6


def test_token_statistics_agree_with_extracts_cls_mass(classified: tuple[Path, dict, str], demo_store: Path) -> None:
    """Attention to [CLS] (one token: column mean) must equal extract's mean row mass on [CLS]."""
    path, obj, _ = classified
    per_layer = table(obj, "token-layers")
    per_head = table(obj, "token-heads")
    assert len(per_layer) == 6 and len(per_head) == 72 and per_head[0]["head"] == "L1H1"
    with open_store(path) as pat, open_store(demo_store) as att:
        cls = pat.heads()["token_cls"].values
        np.testing.assert_allclose(cls, att.heads()["stat_cls"].values, atol=2e-3)
        assert np.isfinite(pat.heads()["token_sep"].values).all()
        assert [r["[CLS]"] for r in per_head[:12]] == pytest.approx(cls[0].tolist(), abs=1e-6)


def test_two_sentence_inputs_are_counted_for_block(demo_pair_store: Path, tmp_path: Path) -> None:
    res = invoke("classify", str(demo_pair_store), "-o", str(tmp_path / "p.h5"), "-f", "json", "--table", "summary", "-q")
    assert res.exit_code == 0, res.stderr
    summary = {r["what"]: r["value"] for r in json.loads(res.stdout)}
    assert summary["two-sentence examples"] == "16 of 16"
    with open_store(tmp_path / "p.h5") as st:
        block = read_patterns(st).features[..., P.FEATURES.index("block")]
        assert np.isfinite(block).mean() > 0.99  # defined for (almost) every map of a pair


def test_extract_pipes_into_classify(tmp_path: Path) -> None:
    exe = f"{sys.executable} -m bertsecrets_cli"
    cmd = f"{exe} extract --limit 3 -q -o - | {exe} classify - -o pat.h5 -q -f tsv"
    res = subprocess.run(cmd, shell=True, capture_output=True, text=True, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines()[0].split("\t") == ["layer", *P.CLASSES]  # the first table, pattern shares per layer
    with open_store(tmp_path / "pat.h5") as st:
        assert read_patterns(st).labels.shape[0] == 3
        assert st.provenance()["input_store"] == "stdin"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pat.h5"]


def test_patterns_store_can_go_to_stdout_with_tables_on_stderr(demo_store: Path, tmp_path: Path) -> None:
    res = subprocess.run([sys.executable, "-m", "bertsecrets_cli", "classify", str(demo_store), "-o", "-", "-f", "tsv"], capture_output=True)
    assert res.returncode == 0, res.stderr
    assert res.stdout[:8] == b"\x89HDF\r\n\x1a\n" and b"\nlayer\tvertical" in res.stderr


def test_existing_output_is_refused_and_the_input_is_never_the_output(demo_store: Path, tmp_path: Path) -> None:
    out = tmp_path / "x.h5"
    out.write_bytes(b"keep me")
    one_line_error(invoke("classify", str(demo_store), "-o", str(out)), 6, "exists", "--force")
    assert out.read_bytes() == b"keep me"
    before = sha(demo_store)
    one_line_error(invoke("classify", str(demo_store), "-o", str(demo_store), "--force"), 6, "input store")
    assert sha(demo_store) == before


def test_bad_inputs_are_one_line_errors(classified: tuple[Path, dict, str], tmp_path: Path, demo_store: Path) -> None:
    one_line_error(invoke("classify", str(tmp_path / "missing.h5")), 3, "no such file")
    one_line_error(invoke("classify", str(classified[0])), 4, "patterns store")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a model")
    one_line_error(invoke("classify", str(demo_store), "--classifier", str(junk)), 3, "junk.pt", "classifier")


def test_help_explains_each_rule_with_its_threshold() -> None:
    res = invoke("classify", "--help")
    assert res.exit_code == 0
    text = " ".join(res.stdout.split())
    for name in P.CLASSES:
        assert f"{name}:" in text
    assert f">= {P.THRESHOLDS.vertical_min:g}" in text and f">= {P.THRESHOLDS.block_min:g}" in text
    assert "annotate" in text and "train" in text
    typo = invoke("classify", "anotate", "x.h5")
    assert typo.exit_code == 2 and "did you mean 'annotate'" in typo.stderr


# --- annotation --------------------------------------------------------------------------------------


@covers("classify annotate", "--labels", "--limit")
def test_annotation_records_one_label_per_key_and_resumes_where_it_stopped(demo_store: Path, tmp_path: Path) -> None:
    tsv = tmp_path / "labels.tsv"
    res = invoke("classify", "annotate", str(demo_store), "--labels", str(tsv), "--limit", "3", input="v ? d s")
    assert res.exit_code == 0, res.stderr
    assert "[CLS]" in res.stderr and "unknown key '?'" in res.stderr and "s skip" in res.stderr  # the map and the keys
    rows = read_labels(tsv)
    assert [r.label for r in rows] == ["vertical", "diagonal", "skip"]
    lines = tsv.read_text().splitlines()
    assert lines[1].split("\t") == list(TSV_COLUMNS)
    ref = Path(lines[2].split("\t")[0])
    assert not ref.is_absolute() and (tsv.parent / ref).resolve() == demo_store.resolve()  # shareable with the store
    # a second session skips what is labelled and stops at q
    res = invoke("classify", "annotate", str(demo_store), "--labels", str(tsv), input="hq")
    assert res.exit_code == 0, res.stderr
    rows2 = read_labels(tsv)
    assert [r.label for r in rows2] == ["vertical", "diagonal", "skip", "heterogeneous"]
    keys = {(r.example, r.layer, r.head) for r in rows2}
    assert len(keys) == 4  # never the same map twice
    assert all(r.store == demo_store.resolve() for r in rows2) and rows2[0].example_id


def test_key_reader_takes_keys_from_a_stream_when_stdin_is_not_a_terminal() -> None:
    assert list(stream_keys(io.StringIO("v d\nm\tq"))) == ["v", "d", "m", "q"]


def test_render_map_shows_tokens_and_says_when_it_is_cut() -> None:
    from rich.console import Console

    from bertsecrets_cli.render.terminal import render_map

    att = np.full((8, 8), 1 / 8)
    con = Console(record=True, width=120, color_system=None)
    con.print(render_map(att, [f"tok{i}" for i in range(8)], title="L1H1", max_tokens=5))
    text = con.export_text()
    assert "L1H1" in text and "tok4" in text and "tok5" not in text and "first 5 of 8 tokens" in text
    with pytest.raises(ValueError):
        render_map(np.zeros((2, 3)), ["a", "b"])


# --- training the CNN and applying it ----------------------------------------------------------------


@pytest.fixture
def one_thread():
    """Small convolutions on a shared 2-core machine run fastest on one thread; restored afterwards."""
    torch = pytest.importorskip("torch")
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def write_labels(tsv: Path, store: Path, n: int = 90) -> None:
    """A stand-in annotator: the default rules label n maps (several types present)."""
    rng = np.random.default_rng(0)
    lines = ["\t".join(TSV_COLUMNS)]
    with open_store(store) as st:
        for ex in range(st.n_examples):
            att, tk = st.attention(ex), st.tokens(ex)
            labels = P.classify_maps(att, tk.special, tk.type_ids)[0]
            for k in rng.choice(72, 4, replace=False):
                layer, head = divmod(int(k), 12)
                lines.append(f"{store}\t{ex}\t{layer + 1}\t{head + 1}\t{P.CLASSES[labels[layer, head]]}\t{st.example_ids()[ex]}")
    tsv.write_text("\n".join(lines[: n + 1]) + "\n")


@covers("classify run", "-o", "--classifier")
@covers("classify train", "-o")
def test_a_labels_file_trains_a_cnn_that_classify_then_applies(demo_store: Path, tmp_path: Path, one_thread: None) -> None:
    torch = pytest.importorskip("torch")
    tsv = tmp_path / "labels.tsv"
    write_labels(tsv, demo_store)
    clf = tmp_path / "clf.pt"
    res = invoke("classify", "train", str(tsv), "-o", str(clf), "--epochs", "2", "--device", "cpu", "-f", "json", "--table", "all", "-q")
    assert res.exit_code == 0, res.stderr
    obj = json.loads(res.stdout)
    per_class = table(obj, "scores")
    assert per_class[-1]["class"] == "macro" and 0 <= per_class[-1]["F1"] <= 1
    assert len(table(obj, "confusion")) == 5
    payload = torch.load(clf, weights_only=True)
    src = payload["training"]["sources"][0]
    assert src["sha256"] == sha(tsv) and payload["training"]["source"] == "annotated"  # provenance of the training data
    assert payload["validation"]["n_maps"] + payload["training"]["n_maps"] == 90
    # apply it: shares now carry the CNN's name and validation score
    out = tmp_path / "cnn.h5"
    res = invoke("classify", str(demo_store), "--classifier", str(clf), "-o", str(out), "--device", "cpu")
    assert res.exit_code == 0, res.stderr
    assert "cnn:clf.pt" in res.stdout and "validation macro-F1" in res.stdout
    with open_store(out) as st:
        prov = st.provenance()
        assert prov["classifier"] == "cnn:clf.pt" and prov["classifier_sha256"] == sha(clf)
        assert read_patterns(st).labels.shape == (24, 6, 12)


def test_training_refuses_too_few_labels_and_bad_lines(demo_store: Path, tmp_path: Path) -> None:
    tsv = tmp_path / "few.tsv"
    tsv.write_text(f"{demo_store}\t0\t1\t1\tvertical\n{demo_store}\t1\t1\t1\tvertical\n")
    one_line_error(invoke("classify", "train", str(tsv), "-o", str(tmp_path / "c.pt")), 3, "at least 2 maps")
    bad = tmp_path / "bad.tsv"
    bad.write_text(f"{demo_store}\t0\t1\t1\tsideways\n")
    one_line_error(invoke("classify", "train", str(bad), "-o", str(tmp_path / "c.pt")), 3, "bad.tsv:1", "sideways")
    one_line_error(invoke("classify", "train", "-o", str(tmp_path / "c.pt")), 3, "nothing to train on")
    assert not (tmp_path / "c.pt").exists()


def test_training_on_synthetic_maps_alone_works_without_annotations(tmp_path: Path, one_thread: None) -> None:
    pytest.importorskip("torch")
    res = invoke("classify", "train", "--synthetic", "50", "--epochs", "1", "-o", str(tmp_path / "s.pt"), "--device", "cpu", "-q")
    assert res.exit_code == 0, res.stderr
    assert "training summary" in res.stdout and (tmp_path / "s.pt").exists()


def test_block_token_reader_gives_the_same_tokens_as_store_tokens(demo_pair_store: Path) -> None:
    from bertsecrets_cli.store.reader import iter_tokens

    with open_store(demo_pair_store) as st:
        seen = 0
        for i, tk in iter_tokens(st, block_examples=5):  # blocks end inside the store: boundaries are exercised
            ref = st.tokens(i)
            assert tk.text == ref.text
            for k in ("ids", "type_ids", "special", "offsets"):
                np.testing.assert_array_equal(getattr(tk, k), getattr(ref, k))
            seen += 1
        assert seen == st.n_examples == 16
