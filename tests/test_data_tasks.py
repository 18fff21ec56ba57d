"""The GLUE task registry: lookup by name and alias, suggestions, label counts."""

from __future__ import annotations

import pytest

from bertsecrets_cli.data.tasks import TASKS, get_task
from bertsecrets_cli.errors import EXIT_INPUT, InputError


def test_registry_holds_the_nine_glue_tasks() -> None:
    assert set(TASKS) == {"cola", "sst2", "mrpc", "qqp", "stsb", "mnli", "qnli", "rte", "wnli"}


@pytest.mark.parametrize(
    ("name", "expected"),
    [("SST-2", "sst2"), ("sts-b", "stsb"), ("MNLI-m", "mnli"), ("mnli_matched", "mnli"), ("  CoLA ", "cola")],
)
def test_get_task_accepts_aliases_and_any_case(name: str, expected: str) -> None:
    assert get_task(name).name == expected


def test_misspelt_task_suggests_the_closest_name() -> None:
    with pytest.raises(InputError) as info:
        get_task("sst3")
    assert "did you mean sst2?" in str(info.value)
    assert info.value.exit_code == EXIT_INPUT


def test_unknown_task_without_close_match_lists_known_tasks() -> None:
    with pytest.raises(InputError, match="known tasks: cola"):
        get_task("zzzzzz")


@pytest.mark.parametrize(("name", "num_labels"), [("mnli", 3), ("sst2", 2), ("cola", 2), ("stsb", 1)])
def test_num_labels(name: str, num_labels: int) -> None:
    assert get_task(name).num_labels == num_labels


def test_only_stsb_is_regression() -> None:
    assert [t.name for t in TASKS.values() if t.is_regression] == ["stsb"]


def test_pair_tasks_have_two_text_columns_and_single_tasks_one() -> None:
    assert {t.name for t in TASKS.values() if not t.is_pair} == {"cola", "sst2"}


def test_main_metric_is_the_first_metric() -> None:
    assert get_task("cola").main_metric == "mcc"
    assert get_task("mrpc").main_metric == "f1"


def test_every_task_but_mnli_has_demo_data() -> None:
    assert {t.name for t in TASKS.values() if t.demo is None} == {"mnli"}
