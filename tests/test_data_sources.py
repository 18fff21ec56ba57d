"""Data loading: demo sets, GLUE folders with each task's real quirks, generic files, hub, errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bertsecrets_cli.data.sources import Example, load_dataset, select_examples
from bertsecrets_cli.data.tasks import get_task
from bertsecrets_cli.errors import InputError


def write(path: Path, text: str, *, bom: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8"))
    return path


def tsv(*rows: tuple[str, ...]) -> str:
    return "".join("\t".join(r) + "\n" for r in rows)


def one_line_error(excinfo: pytest.ExceptionInfo[InputError]) -> str:
    message = str(excinfo.value)
    assert "\n" not in message
    return message


# --------------------------------------------------------------------------- demo data


@pytest.mark.parametrize(
    ("task", "split", "size"),
    [("sst2", "train", 600), ("sst2", "dev", 200), ("mrpc", "dev", 200), ("stsb", "train", 600),
     ("rte", "validation", 200)],
)
def test_demo_sets_load_with_expected_sizes(task: str, split: str, size: int) -> None:
    ds = load_dataset(get_task(task), None, split)
    assert ds.is_demo and len(ds.examples) == size
    assert "demo" in ds.source and "not GLUE" in ds.source


def test_demo_single_is_balanced_binary_and_has_no_second_text() -> None:
    examples = load_dataset(get_task("sst2"), None, "train").examples
    assert {e.label for e in examples} == {0, 1}
    assert sum(e.label for e in examples) == len(examples) // 2
    assert all(e.text_b is None and 5 <= len(e.text_a.split()) <= 25 for e in examples)
    assert any(" not " in e.text_a or "never" in e.text_a.lower() for e in examples)


def test_demo_regression_scores_are_floats_between_0_and_5() -> None:
    examples = load_dataset(get_task("stsb"), None, "dev").examples
    assert all(isinstance(e.label, float) and 0.0 <= e.label <= 5.0 for e in examples)
    assert all(e.text_b for e in examples)
    assert max(e.label for e in examples) - min(e.label for e in examples) > 4.0


def test_demo_pair_same_meaning_maps_to_each_tasks_positive_class_by_name() -> None:
    mrpc = load_dataset(get_task("mrpc"), None, "dev").examples
    rte = load_dataset(get_task("rte"), None, "dev").examples
    wnli = load_dataset(get_task("wnli"), None, "dev").examples
    # Same rows in the same order: rte's entailment is index 0, mrpc's equivalent and wnli's entailment index 1.
    assert [e.label for e in rte] == [1 - e.label for e in mrpc]
    assert [e.label for e in wnli] == [e.label for e in mrpc]


def test_demo_train_and_dev_do_not_overlap() -> None:
    train = {(e.text_a, e.text_b) for e in load_dataset(get_task("mrpc"), None, "train").examples}
    dev = {(e.text_a, e.text_b) for e in load_dataset(get_task("mrpc"), None, "dev").examples}
    assert not train & dev


def test_mnli_without_data_asks_for_data_option() -> None:
    with pytest.raises(InputError, match="--data"):
        load_dataset(get_task("mnli"))


def test_demo_has_no_test_split() -> None:
    with pytest.raises(InputError, match="train and dev"):
        load_dataset(get_task("sst2"), None, "test")


def test_demo_files_are_reproducible_from_make_demo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from bertsecrets_cli.data.demo import make_demo

    monkeypatch.setattr(make_demo, "OUT_DIR", tmp_path)
    make_demo.main()
    for shipped in make_demo.Path(make_demo.__file__).parent.glob("*.jsonl"):
        assert (tmp_path / shipped.name).read_bytes() == shipped.read_bytes(), shipped.name


# --------------------------------------------------------------------------- GLUE folders


def test_cola_has_no_header_row_and_first_line_is_an_example(tmp_path: Path) -> None:
    write(tmp_path / "CoLA" / "dev.tsv", tsv(("gj04", "1", "", "The sailors rode the breeze clear of the rocks."),
                                             ("gj04", "0", "*", "The more we study verbs, the crazier they get get.")))
    ds = load_dataset(get_task("cola"), str(tmp_path / "CoLA"), "dev")
    assert [e.label for e in ds.examples] == [1, 0]
    assert ds.examples[0].text_a.startswith("The sailors") and ds.examples[0].text_b is None
    assert [e.id for e in ds.examples] == ["dev-0", "dev-1"]
    assert ds.source.startswith("GLUE folder") and ds.source.endswith("dev.tsv") and not ds.is_demo


def test_cola_test_file_has_header_and_no_labels(tmp_path: Path) -> None:
    write(tmp_path / "test.tsv", tsv(("index", "sentence"), ("0", "Bill whistled past the house.")))
    ds = load_dataset(get_task("cola"), str(tmp_path), "test")
    assert ds.examples == [Example("0", "Bill whistled past the house.", None, None)]


def test_glue_data_root_folder_finds_the_task_subfolder(tmp_path: Path) -> None:
    write(tmp_path / "glue_data" / "SST-2" / "dev.tsv", tsv(("sentence", "label"), ("a gorgeous film ", "1")))
    ds = load_dataset(get_task("sst2"), str(tmp_path / "glue_data"), "dev")
    assert ds.examples[0].label == 1 and ds.examples[0].text_a == "a gorgeous film "


def test_mrpc_with_bom_and_string_columns(tmp_path: Path) -> None:
    text = tsv(("Quality", "#1 ID", "#2 ID", "#1 String", "#2 String"),
               ("1", "702876", "702977", 'He said "the plan works.', "He said the plan works."),
               ("0", "2108705", "2108831", "Yucaipa owned Dominick's.", "Yucaipa bought Dominick's in 1995."))
    write(tmp_path / "MRPC" / "train.tsv", text, bom=True)
    ds = load_dataset(get_task("mrpc"), str(tmp_path / "MRPC"), "train")
    assert [(e.text_a, e.text_b, e.label) for e in ds.examples] == [
        ('He said "the plan works.', "He said the plan works.", 1),
        ("Yucaipa owned Dominick's.", "Yucaipa bought Dominick's in 1995.", 0),
    ]


def test_qqp_stray_quotes_do_not_swallow_lines(tmp_path: Path) -> None:
    write(tmp_path / "dev.tsv", tsv(("id", "qid1", "qid2", "question1", "question2", "is_duplicate"),
                                    ("201359", "303345", "303346", 'Why is "Python so popular?', "Why Python?", "1"),
                                    ("263843", "69383", "380476", "How do I learn piano?", 'Is a "good" car?', "0"),
                                    ("172974", "12", "13", '"', "Is it raining?", "0")))
    ds = load_dataset(get_task("qqp"), str(tmp_path), "dev")
    assert [e.id for e in ds.examples] == ["201359", "263843", "172974"]
    assert ds.examples[0].text_a == 'Why is "Python so popular?'
    assert ds.examples[2].text_a == '"'
    assert [e.label for e in ds.examples] == [1, 0, 0]


MNLI_HEADER = ("index", "promptID", "pairID", "genre", "sentence1_binary_parse", "sentence2_binary_parse",
               "sentence1_parse", "sentence2_parse", "sentence1", "sentence2", "label1", "gold_label")


def mnli_row(index: str, s1: str, s2: str, gold: str) -> tuple[str, ...]:
    return (index, "1", f"{index}e", "fiction", "( x )", "( y )", "(ROOT x)", "(ROOT y)", s1, s2, gold, gold)


def test_mnli_dev_means_dev_matched_and_mismatched_is_selectable(tmp_path: Path) -> None:
    write(tmp_path / "dev_matched.tsv", tsv(MNLI_HEADER, mnli_row("0", 'He said "go.', "He spoke.", "entailment")))
    write(tmp_path / "dev_mismatched.tsv", tsv(MNLI_HEADER, mnli_row("7", "A cat sat.", "No cat sat.", "contradiction"),
                                               mnli_row("8", "It rained.", "It was wet.", "neutral")))
    mnli = get_task("mnli")
    matched = load_dataset(mnli, str(tmp_path), "dev")
    assert matched.split == "dev_matched"
    assert matched.examples == [Example("0", 'He said "go.', "He spoke.", 0)]
    mismatched = load_dataset(mnli, str(tmp_path), "dev_mismatched")
    assert [(e.id, e.label) for e in mismatched.examples] == [("7", 2), ("8", 1)]


def test_stsb_labels_are_float_scores(tmp_path: Path) -> None:
    header = ("index", "genre", "filename", "year", "old_index", "source1", "source2",
              "sentence1", "sentence2", "score")
    write(tmp_path / "dev.tsv", tsv(header, ("0", "main-captions", "MSRvid", "2012test", "0000", "none", "none",
                                             "A man is playing a flute.", "A man plays the flute.", "3.800")))
    ds = load_dataset(get_task("stsb"), str(tmp_path), "dev")
    assert ds.examples[0].label == pytest.approx(3.8) and isinstance(ds.examples[0].label, float)


@pytest.mark.parametrize(("task", "labels", "expected"),
                         [("rte", ("entailment", "not_entailment"), [0, 1]),
                          ("wnli", ("1", "0"), [1, 0]),
                          ("qnli", ("not_entailment", "entailment"), [1, 0])])
def test_string_labels_map_to_indices_by_task_label_names(tmp_path: Path, task: str, labels: tuple[str, str],
                                                          expected: list[int]) -> None:
    text_cols = ("question", "sentence") if task == "qnli" else ("sentence1", "sentence2")
    cols = ("index", *text_cols, "label")
    write(tmp_path / "train.tsv", tsv(cols, ("0", "A b.", "C d.", labels[0]), ("1", "E f.", "G h.", labels[1])))
    assert [e.label for e in load_dataset(get_task(task), str(tmp_path), "train").examples] == expected


def test_unknown_label_names_file_line_and_value(tmp_path: Path) -> None:
    path = write(tmp_path / "dev.tsv", tsv(("index", "sentence1", "sentence2", "label"),
                                           ("0", "A.", "B.", "entailment"), ("1", "C.", "D.", "maybe")))
    with pytest.raises(InputError) as info:
        load_dataset(get_task("rte"), str(tmp_path), "dev")
    message = one_line_error(info)
    assert f"{path}:3" in message and "'maybe'" in message


def test_out_of_range_label_index_is_rejected(tmp_path: Path) -> None:
    write(tmp_path / "dev.tsv", tsv(("sentence", "label"), ("fine", "2")))
    with pytest.raises(InputError, match=r"dev\.tsv:2: label 2"):
        load_dataset(get_task("sst2"), str(tmp_path), "dev")


def test_malformed_row_names_file_and_line_number(tmp_path: Path) -> None:
    rows = (("sentence", "label"), ("good", "1"), ("bad row without label",), ("ok", "0"))
    path = write(tmp_path / "dev.tsv", tsv(*rows))
    with pytest.raises(InputError) as info:
        load_dataset(get_task("sst2"), str(tmp_path), "dev")
    message = one_line_error(info)
    assert f"{path}:3" in message and "found 1" in message


def test_non_numeric_regression_label_is_rejected(tmp_path: Path) -> None:
    write(tmp_path / "d.csv", "sentence1,sentence2,label\nA.,B.,high\n")
    with pytest.raises(InputError, match=r"d\.csv:2: label 'high' is not a number"):
        load_dataset(get_task("stsb"), str(tmp_path / "d.csv"))


@pytest.mark.parametrize("content", ["", "\n\n"])
def test_empty_file_is_an_input_error(tmp_path: Path, content: str) -> None:
    write(tmp_path / "dev.tsv", content)
    with pytest.raises(InputError, match="empty"):
        load_dataset(get_task("sst2"), str(tmp_path), "dev")


def test_header_only_file_has_no_examples(tmp_path: Path) -> None:
    write(tmp_path / "dev.tsv", tsv(("sentence", "label")))
    with pytest.raises(InputError, match="no examples"):
        load_dataset(get_task("sst2"), str(tmp_path), "dev")


def test_missing_split_file_in_folder_lists_what_is_there(tmp_path: Path) -> None:
    write(tmp_path / "train.tsv", tsv(("sentence", "label"), ("x", "1")))
    with pytest.raises(InputError, match=r"no dev\.tsv .*found: train\.tsv"):
        load_dataset(get_task("sst2"), str(tmp_path), "dev")


def test_glue_tsv_file_given_directly_takes_split_from_its_name(tmp_path: Path) -> None:
    path = write(tmp_path / "dev_mismatched.tsv", tsv(MNLI_HEADER, mnli_row("3", "P.", "H.", "neutral")))
    ds = load_dataset(get_task("mnli"), str(path))
    assert ds.split == "dev_mismatched" and ds.examples[0].label == 1 and ds.source.startswith("GLUE file")


def test_unknown_split_is_rejected() -> None:
    with pytest.raises(InputError, match="unknown split"):
        load_dataset(get_task("sst2"), None, "holdout")


# --------------------------------------------------------------------------- generic files


def test_csv_with_custom_columns_and_label_names(tmp_path: Path) -> None:
    path = write(tmp_path / "reviews.csv", 'uid,body,stars,verdict\nr1,"Great, truly ""great"" fun",5,positive\n'
                                           "r2,Dull,1,negative\n")
    ds = load_dataset(get_task("sst2"), str(path), text_columns=("body",), label_column="verdict", id_column="uid")
    assert ds.examples == [Example("r1", 'Great, truly "great" fun', None, 1), Example("r2", "Dull", None, 0)]
    assert ds.source == f"file {path}" and not ds.is_demo


def test_csv_default_columns_follow_hub_names(tmp_path: Path) -> None:
    path = write(tmp_path / "pairs.csv", "question1,question2,label,idx\nA?,B?,1,10\nC?,D?,not_duplicate,11\n")
    ds = load_dataset(get_task("qqp"), str(path))
    assert [(e.id, e.text_a, e.text_b, e.label) for e in ds.examples] == [("10", "A?", "B?", 1), ("11", "C?", "D?", 0)]


def test_tsv_with_custom_columns_and_no_label_is_unlabeled(tmp_path: Path) -> None:
    path = write(tmp_path / "mine.tsv", tsv(("left", "right"), ("One.", "Two.")))
    ds = load_dataset(get_task("mrpc"), str(path), "dev", text_columns=("left", "right"))
    assert ds.examples == [Example("dev-0", "One.", "Two.", None)]


def test_missing_named_column_lists_available_columns(tmp_path: Path) -> None:
    path = write(tmp_path / "x.csv", "text,label\nhi,1\n")
    with pytest.raises(InputError, match=r"no column 'body' \(columns: text, label\)"):
        load_dataset(get_task("sst2"), str(path), text_columns=("body",))


def test_wrong_number_of_text_columns_for_task() -> None:
    with pytest.raises(InputError, match="needs 2 text column"):
        load_dataset(get_task("rte"), None, text_columns=("only_one",))


def test_jsonl_with_fallback_text_columns_and_float_labels(tmp_path: Path) -> None:
    rows = [{"text_a": "A dog runs.", "text_b": "A dog is running.", "label": 4.6},
            {"text_a": "Sun.", "text_b": "Rain.", "label": "0.4"}]
    path = write(tmp_path / "sim.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    ds = load_dataset(get_task("stsb"), str(path), "train")
    assert [(e.id, e.label) for e in ds.examples] == [("train-0", 4.6), ("train-1", 0.4)]


def test_jsonl_bad_line_names_line_number(tmp_path: Path) -> None:
    path = write(tmp_path / "d.jsonl", '{"sentence": "ok", "label": 1}\n\n{"sentence": "broken", \n')
    with pytest.raises(InputError) as info:
        load_dataset(get_task("sst2"), str(path))
    assert f"{path}:3: not valid JSON" in one_line_error(info)


def test_file_format_option_overrides_the_suffix(tmp_path: Path) -> None:
    path = write(tmp_path / "data.txt", '{"sentence": "ok", "label": "positive"}\n')
    assert load_dataset(get_task("sst2"), str(path), file_format="jsonl").examples[0].label == 1
    with pytest.raises(InputError, match="unknown data file type"):
        load_dataset(get_task("sst2"), str(path))


def test_non_utf8_bytes_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "latin.csv"
    path.write_bytes(b"sentence,label\nok,1\ncaf\xe9 au lait,1\n")
    with pytest.raises(InputError) as info:
        load_dataset(get_task("sst2"), str(path))
    message = one_line_error(info)
    assert str(path) in message and "not UTF-8" in message and ":3:" in message


def test_text_split_only_on_newlines_not_unicode_separators(tmp_path: Path) -> None:
    path = write(tmp_path / "dev.tsv", tsv(("sentence", "label"), ("page\x0cbreak and\u2028separator", "1")))
    assert load_dataset(get_task("sst2"), str(path)).examples[0].text_a == "page\x0cbreak and\u2028separator"


def test_crlf_line_endings_are_accepted(tmp_path: Path) -> None:
    path = write(tmp_path / "dev.tsv", "sentence\tlabel\r\nfine\t1\r\n")
    assert load_dataset(get_task("sst2"), str(path)).examples == [Example("dev-0", "fine", None, 1)]


# --------------------------------------------------------------------------- missing paths and the hub


def test_missing_path_is_no_such_file_or_folder(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file or folder"):
        load_dataset(get_task("sst2"), str(tmp_path / "nope.tsv"))


def test_hub_id_offline_gives_clean_input_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    with pytest.raises(InputError) as info:
        load_dataset(get_task("sst2"), "hub:nyu-mll/glue-bertsecrets-test-missing", "dev")
    message = one_line_error(info)
    assert "could not fetch" in message and "--data" in message


def test_hub_failure_is_wrapped_whatever_the_exception(monkeypatch: pytest.MonkeyPatch) -> None:
    import datasets

    def boom(*args: object, **kwargs: object) -> None:
        raise ConnectionError("network unreachable\nsecond line")

    monkeypatch.setattr(datasets, "load_dataset", boom)
    with pytest.raises(InputError) as info:
        load_dataset(get_task("rte"), "nyu-mll/glue", "dev")
    message = one_line_error(info)
    assert "no such file or folder" in message and "network unreachable" in message and "validation" in message


def test_hub_rows_are_converted_with_test_labels_as_none(monkeypatch: pytest.MonkeyPatch) -> None:
    import datasets

    calls = []

    def fake(name: str, config: str | None, split: str) -> list[dict[str, object]]:
        calls.append((name, config, split))
        return [{"sentence": "Nice.", "label": 1, "idx": 5}, {"sentence": "Hidden.", "label": -1, "idx": 6}]

    monkeypatch.setattr(datasets, "load_dataset", fake)
    ds = load_dataset(get_task("sst2"), "hub:nyu-mll/glue", "dev")
    assert calls == [("nyu-mll/glue", "sst2", "validation")]
    assert ds.examples == [Example("5", "Nice.", None, 1), Example("6", "Hidden.", None, None)]
    assert ds.source == "hub nyu-mll/glue sst2 validation"


# --------------------------------------------------------------------------- select_examples


EXAMPLES = [Example(str(i), f"s{i}", None, i % 2) for i in range(20)]


def test_select_none_keeps_all() -> None:
    assert select_examples(EXAMPLES, None) == EXAMPLES


def test_select_limit_takes_the_first() -> None:
    assert [e.id for e in select_examples(EXAMPLES, 3)] == ["0", "1", "2"]


def test_select_limit_larger_than_data_keeps_all() -> None:
    assert len(select_examples(EXAMPLES, 100, sample=True)) == 20


@pytest.mark.parametrize("limit", [0, -1])
def test_select_limit_below_one_is_an_input_error(limit: int) -> None:
    with pytest.raises(InputError, match="--limit must be at least 1"):
        select_examples(EXAMPLES, limit)


def test_select_sample_is_seeded_and_keeps_file_order() -> None:
    a = select_examples(EXAMPLES, 5, seed=1, sample=True)
    assert a == select_examples(EXAMPLES, 5, seed=1, sample=True)
    ids = [int(e.id) for e in a]
    assert ids == sorted(ids) and len(set(ids)) == 5
    assert ids != [0, 1, 2, 3, 4]
    assert any(select_examples(EXAMPLES, 5, seed=s, sample=True) != a for s in range(2, 6))
