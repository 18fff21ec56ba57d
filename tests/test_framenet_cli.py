"""``bertsecrets framenet`` end to end on a tiny model with planted attention, and its failure modes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from helpers import covers
from typer.testing import CliRunner

from bertsecrets_cli.cli.app import app
from bertsecrets_cli.store import open_store

runner = CliRunner()
NS = 'xmlns="http://framenet.icsi.berkeley.edu"'

FRAME = f"""<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<frame name="Abandonment" ID="2031" {NS}>
    <definition>x</definition>
    <FE coreType="Core" name="Agent" ID="1" abbrev="Age"><definition>x</definition></FE>
    <FE coreType="Core" name="Theme" ID="2" abbrev="The"><definition>x</definition></FE>
    <FE coreType="Peripheral" name="Time" ID="3" abbrev="Tim"><definition>x</definition></FE>
</frame>
"""

# (sentence, FE name, FE text); the target is always "abandoned"
SENTENCES = [
    ("The boys quickly abandoned the car .", "Agent", "The boys"),
    ("Many people abandoned , sadly , their homes .", "Theme", "their homes"),
    ("She suddenly abandoned the plan yesterday .", "Agent", "She"),
    ("They abandoned , at last , the old ship .", "Theme", "the old ship"),
    ("Our team soon abandoned the project .", "Agent", "Our team"),
    ("He abandoned it on Monday .", "Time", "on Monday"),  # peripheral: not selected by default
]


def span(text: str, part: str) -> tuple[int, int]:
    s = text.index(part)
    return s, s + len(part) - 1  # FrameNet ends are inclusive


def annotation_set(text: str, fe: str, fe_text: str, set_id: int, *, fulltext: bool) -> str:
    ts, te = span(text, "abandoned")
    fs, fe_end = span(text, fe_text)
    names = 'luName="abandon.v" frameName="Abandonment" ' if fulltext else ""
    return (f'<annotationSet {names}status="MANUAL" ID="{set_id}">'
            f'<layer rank="1" name="Target"><label end="{te}" start="{ts}" name="Target"/></layer>'
            f'<layer rank="1" name="FE"><label end="{fe_end}" start="{fs}" name="{fe}"/></layer>'
            f'<layer rank="1" name="GF"/><layer rank="1" name="PT"/></annotationSet>')


def write_release(root: Path, sentences: list[tuple[str, str, str]] = SENTENCES) -> Path:
    """A release: the first four sentences as full text, the rest as lexical-unit exemplars, one truncated lu file."""
    SENTENCES = sentences  # noqa: N806
    for sub in ("frame", "fulltext", "lu"):
        (root / sub).mkdir(parents=True)
    (root / "frame" / "Abandonment.xml").write_text(FRAME)
    sents = "".join(f'<sentence ID="{i}"><text>{t}</text><annotationSet status="UNANN" ID="{900 + i}"><layer rank="1" name="PENN"/></annotationSet>'
                    f'{annotation_set(t, fe, ft, 100 + i, fulltext=True)}</sentence>' for i, (t, fe, ft) in enumerate(SENTENCES[:4]))
    (root / "fulltext" / "ANC__doc.xml").write_text(f'<?xml version="1.0"?><fullTextAnnotation {NS}><header/>{sents}</fullTextAnnotation>')
    ex = "".join(f'<sentence ID="{50 + i}"><text>{t}</text>{annotation_set(t, fe, ft, 200 + i, fulltext=False)}</sentence>'
                 for i, (t, fe, ft) in enumerate(SENTENCES[4:]))
    (root / "lu" / "lu2.xml").write_text(f'<?xml version="1.0"?><lexUnit name="abandon.v" frame="Abandonment" ID="2" {NS}>'
                                         f'<header/><subCorpus name="V">{ex}</subCorpus></lexUnit>')
    (root / "lu" / "lu3.xml").write_text(f'<?xml version="1.0"?><lexUnit name="x.v" frame="Abandonment" {NS}><subCorpus><sentence>')  # truncated
    return root


PLANTED = (1, 2)  # layer 2, head 3 (0-based here): written L2H3 by the tool


@pytest.fixture()
def planted(monkeypatch: pytest.MonkeyPatch, tiny_model_factory):
    """The tiny model, with one head that sends every token's attention to the word 'abandoned' (or 'sat')."""
    from transformers import AutoTokenizer

    import bertsecrets_cli.model.attention as attention

    model_dir = tiny_model_factory("bert")
    tok = AutoTokenizer.from_pretrained(model_dir)
    targets = {tok.convert_tokens_to_ids("abandoned"), tok.convert_tokens_to_ids("sat")}
    real = attention.forward_with_attention

    def forward(model, batch, n_layers, intervention=None):  # noqa: ANN001, ANN202
        out, probs = real(model, batch, n_layers, intervention)
        probs = probs.clone()
        for b, ids in enumerate(batch["input_ids"].tolist()):
            hits = [i for i, t in enumerate(ids) if t in targets]
            if hits:
                probs[b, PLANTED[0], PLANTED[1]] = 0.0
                probs[b, PLANTED[0], PLANTED[1], :, hits[0]] = 1.0
        return out, probs

    monkeypatch.setattr(attention, "forward_with_attention", forward)
    return model_dir


def invoke(*args: str):
    return runner.invoke(app, list(args))


@covers("framenet", "--batch-size")
def test_planted_head_is_ranked_first_and_written_for_plot_and_diff(tmp_path: Path, planted: Path) -> None:
    fn = write_release(tmp_path / "fndata-1.7")
    out = tmp_path / "fn.h5"
    res = invoke("framenet", "--framenet", str(fn), "-o", str(out), "--model", str(planted), "--device", "cpu", "--batch-size", "2",
                 "--format", "json", "--table", "all")
    assert res.exit_code == 0, res.stderr
    tables = json.loads(res.stdout)
    ranked = tables["heads"]
    assert ranked[0]["head"] == "L2H3" and ranked[0]["FE->target"] == pytest.approx(1.0, abs=1e-5)
    assert ranked[0]["> baseline p99"] == "yes" and ranked[0]["> p99 of heads"] == "yes"
    selection = tables["selection"]
    steps = {r["filter"]: (r["sentences"], r["links"]) for r in selection}
    assert steps["annotated FE links"] == (6, 6) and steps["core FEs (coretype)"] == (5, 5) and steps["distinct sentences and links"] == (5, 5)
    examples = tables["examples"]
    assert examples[0]["head"] == "L2H3" and "{abandoned}" in examples[0]["sentence"] and ">=" in examples[0]["sentence"]
    # the truncated lu file is one warning naming it; the other files were read
    warnings = [ln for ln in res.stderr.splitlines() if ln.startswith("warning:")]
    assert len(warnings) == 1 and "lu/lu3.xml" in warnings[0] and "<sentence>" in warnings[0]
    assert "1 problem(s) in 1 file(s)" in res.stderr
    with open_store(out, kind="framenet") as st:
        heads = st.heads()
        v = heads["framenet_fe_to_target"].values
        assert v.shape == (2, 4) and np.unravel_index(np.argmax(v), v.shape) == PLANTED
        for name in ("framenet_target_to_fe", "framenet_baseline_same_distance", "framenet_baseline_same_distance_p99",
                     "framenet_baseline_offset", "framenet_baseline_offset_k", "framenet_baseline_same_distance_target_to_fe"):
            assert heads[name].values.shape == (2, 4) and heads[name].description
        assert st.n_examples == 5 and st.strings("examples/id")[0] == "fulltext:0"
        links = st.json("framenet/links")
        assert len(links) == 5 and {lk["fe"] for lk in links} == {"Agent", "Theme"}
        assert st.provenance()["n_links"] == 5


@covers("framenet", "--limit", "--sentences", "--max-sentence-tokens", "--max-fe-tokens", "--min-distance", "--all-fes", "--first-pair")
def test_thresholds_and_first_pair_are_options(tmp_path: Path, planted: Path) -> None:
    fn = write_release(tmp_path / "fn")
    common = ("--framenet", str(fn), "--model", str(planted), "--device", "cpu", "-f", "json", "--table", "selection", "-q")

    def steps(res) -> dict[str, tuple[int, int]]:  # noqa: ANN001
        assert res.exit_code == 0, res.stderr
        return {r["filter"]: (r["sentences"], r["links"]) for r in json.loads(res.stdout)}

    res = invoke("framenet", *common, "-o", str(tmp_path / "a.h5"), "--all-fes", "--min-distance", "1", "--first-pair")
    got = steps(res)
    assert got["all FEs (--all-fes)"] == (6, 6) and got["ends >= 1 tokens apart"] == (6, 6)  # the peripheral Time link too
    with open_store(tmp_path / "a.h5") as st:
        assert st.n_examples == 6 and st.provenance()["first_pair"] == 1

    got = steps(invoke("framenet", *common, "-o", str(tmp_path / "b.h5"), "--sentences", "fulltext", "--limit", "3"))
    assert got["annotated FE links"] == (4, 4) and got["distinct sentences and links"] == (3, 3)
    got = steps(invoke("framenet", *common, "-o", str(tmp_path / "c.h5"), "--max-sentence-tokens", "7", "--max-fe-tokens", "1"))
    assert got["sentence <= 7 tokens"] == (3, 3) and got["FE span <= 1 tokens"] == (1, 1)


CONLLU = """# sent_id = a
# text = the cat sat .
1-2	thecat	_	_	_	_	_	_	_	_
1	the	the	DET	_	_	2	det	_	_
2	cat	cat	NOUN	_	_	3	nsubj	_	_
2.1	big	big	ADJ	_	_	_	_	2:amod	_
3	sat	sit	VERB	_	_	0	root	_	_
4	.	.	PUNCT	_	_	3	punct	_	_

# sent_id = b
1	a	a	DET	_	_	2	det	_	_
2	dog	dog	NOUN	_	_	3	nsubj	_	_
3	sat	sit	VERB	_	_	0	root	_	_
4	down	down	ADV	_	_	3	advmod	_	_

"""


@covers("framenet", "--model", "--conllu", "--min-count")
def test_conllu_mode_finds_the_planted_governor_head(tmp_path: Path, planted: Path) -> None:
    p = tmp_path / "dev.conllu"
    p.write_text(CONLLU)
    out = tmp_path / "dep.h5"
    res = invoke("framenet", "--conllu", str(p), "-o", str(out), "--model", str(planted), "--device", "cpu", "--min-count", "1", "-f", "json", "--table", "relations")
    assert res.exit_code == 0, res.stderr
    rel = {r["relation"]: r for r in json.loads(res.stdout)}
    # every token of the planted head looks at 'sat': the governor of nsubj, punct and advmod
    assert rel["nsubj"]["dep->gov head"] == "L2H3" and rel["nsubj"]["accuracy"] == 1.0
    assert rel["det"]["best offset"] == "+1" and rel["det"]["offset acc."] == 1.0
    with open_store(out, kind="dependency") as st:
        h = st.heads()
        assert h["dep_nsubj_accuracy"].values[PLANTED] == 1.0
        assert {"dep_all_accuracy", "dep_det_reverse_accuracy", "dep_punct_accuracy"} <= set(h)
        assert st.strings("examples/text_a") == ["the cat sat .", "a dog sat down"]  # MWT and empty node not words


# words the tokenizer splits: 'ho ##bb ##its', 'gan ##dal ##f', 'rams ##ha ##ckle'
SPLIT_SENTENCES = [
    ("The hobbits quickly abandoned the car .", "Agent", "The hobbits"),
    ("Gandalf sadly abandoned the quest .", "Agent", "Gandalf"),
    ("Many people abandoned , sadly , their ramshackle homes .", "Theme", "their ramshackle homes"),
    ("The boys quickly abandoned the car .", "Agent", "The boys"),
]


@covers("framenet", "--units")
def test_units_words_selects_and_scores_links_between_words(tmp_path: Path, planted: Path) -> None:
    fn = write_release(tmp_path / "fn", SPLIT_SENTENCES)
    common = ("--framenet", str(fn), "--model", str(planted), "--device", "cpu", "-f", "json", "--table", "all", "-q")
    res = invoke("framenet", *common, "-o", str(tmp_path / "pieces.h5"))
    assert res.exit_code == 0, res.stderr
    steps = {r["filter"]: r["links"] for r in json.loads(res.stdout)["selection"]}
    assert steps["FE span <= 3 tokens"] == 2  # 'the ho ##bb ##its' and 'their rams ##ha ##ckle homes' are 4 and 5 pieces

    res = invoke("framenet", *common, "-o", str(tmp_path / "words.h5"), "--units", "words")
    assert res.exit_code == 0, res.stderr
    tables = json.loads(res.stdout)
    steps = {r["filter"]: r["links"] for r in tables["selection"]}
    assert steps["FE span <= 3 words"] == 4 and steps["ends >= 2 words apart"] == 4 and "sentence <= 12 words" in steps
    top = tables["heads"][0]
    # the planted head sends every piece's attention to 'abandoned': each FE word's row (the mean of its pieces' rows) too
    assert top["head"] == "L2H3" and top["FE->target"] == pytest.approx(1.0, abs=1e-5)
    with open_store(tmp_path / "words.h5", kind="framenet") as st:
        prov = st.provenance()
        assert prov["link_units"] == "words" and "mean over the attending word" in prov["word_attention"]
        links = {lk["fe_span"][0]: lk for lk in st.json("framenet/links") if lk["sentence"] == 0}
        # [CLS]=0 the=1 hobbits=2 quickly=3 abandoned=4: word indices, not pieces (abandoned is piece 6)
        (lk,) = links.values()
        assert lk["fe_pieces"] == [1, 2] and lk["target_pieces"] == [4] and lk["distance"] == 2
    with open_store(tmp_path / "pieces.h5", kind="framenet") as st:
        assert st.provenance()["link_units"] == "tokens"

    res = invoke("framenet", "--conllu", str(tmp_path / "x.conllu"), "--units", "words", "-o", str(tmp_path / "dep.h5"))
    assert res.exit_code == 3 and "always scored on the treebank's words" in res.stderr


@pytest.mark.parametrize(
    ("args", "code", "needle"),
    [
        ([], 3, "exactly one of --framenet"),
        (["--conllu", "x.conllu", "--framenet", "y"], 3, "exactly one of --framenet"),
        (["--framenet", "{tmp}"], 3, "not a FrameNet release"),
        (["--conllu", "{tmp}/bad.conllu"], 3, "bad.conllu:1: expected 10 tab-separated fields"),
        (["--conllu", "{tmp}/bad.conllu", "--max-offset", "0"], 3, "--max-offset 0"),
    ],
)
@covers("framenet", "-o")
def test_bad_input_is_one_error_line(tmp_path: Path, args: list[str], code: int, needle: str) -> None:
    (tmp_path / "bad.conllu").write_text("1\tthe\n")
    res = invoke("framenet", "-o", str(tmp_path / "o.h5"), *[a.replace("{tmp}", str(tmp_path)) for a in args])
    assert res.exit_code == code, (res.exit_code, res.stderr)
    errors = [ln for ln in res.stderr.splitlines() if "error:" in ln]
    assert len(errors) == 1 and needle in errors[0] and "Traceback" not in res.stderr


@covers("framenet", "--framenet")
def test_existing_output_is_refused_before_any_work(tmp_path: Path) -> None:
    out = tmp_path / "fn.h5"
    out.write_bytes(b"keep")
    res = invoke("framenet", "--framenet", str(tmp_path / "missing"), "-o", str(out))
    assert res.exit_code == 6 and "--force" in res.stderr and out.read_bytes() == b"keep"


def test_example_sentences_mark_target_and_frame_element_even_when_adjacent() -> None:
    from bertsecrets_cli.analysis.framenet import Link
    from bertsecrets_cli.jobs.framenet import _mark

    text = "He gave her books"
    lk = Link("Giving", "give.v", "Recipient", np.array([3]), np.array([2]), 0, (8, 10), ((3, 6),))
    assert _mark(text, lk) == "He {gave} <her>=Recipient books"
    touching = Link("Giving", "give.v", "Donor", np.array([1]), np.array([2]), 0, (0, 1), ((2, 5),))
    assert _mark("Hegave", touching) == "<He>=Donor{gave}"


def test_attention_batches_give_the_maps_extract_stores(tmp_path: Path, tiny_model_factory) -> None:
    """framenet scores the same maps extract would store: same tokenisation, batching and padding mask."""
    from bertsecrets_cli.jobs.attention_batches import iter_attention
    from bertsecrets_cli.jobs.extract import DataOptions, ExtractOptions, run_extract
    from bertsecrets_cli.model.load import load_model
    from bertsecrets_cli.model.tokenize import encode_examples

    model = str(tiny_model_factory("bert"))
    run_extract(ExtractOptions(model=model, data=DataOptions(task="sst2", limit=7), device="cpu", batch_size=4, quiet=True), tmp_path / "x.h5", command="t")
    lm = load_model(model, device="cpu")
    with open_store(tmp_path / "x.h5") as st:
        texts = st.strings("examples/text_a")
        enc = encode_examples(lm.tokenizer, [(t, None) for t in texts], 128)
        got = list(iter_attention(lm, enc, 3, quiet=True))
        assert [i for i, _, _ in got] == list(range(7))
        for i, e, att in got:
            assert att.shape == (2, 4, e.length, e.length)
            np.testing.assert_allclose(att, st.attention(i), atol=1e-3)
