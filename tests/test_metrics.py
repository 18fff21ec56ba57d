"""Task metrics against values computed by hand (the arithmetic is in each test's comment)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bertsecrets_cli.analysis.metrics import (
    accuracy,
    compute_metrics,
    f1_binary,
    majority_baseline,
    matthews,
    pearson,
    predictions_from_logits,
    spearman,
)
from bertsecrets_cli.data.tasks import TASKS

PRED = np.array([1, 1, 0, 0, 1])
GOLD = np.array([1, 0, 0, 1, 1])
# confusion: tp = 2 (0, 4), fp = 1 (1), tn = 1 (2), fn = 1 (3)


def test_accuracy_counts_exact_matches() -> None:
    assert accuracy(PRED, GOLD) == pytest.approx(3 / 5)
    assert math.isnan(accuracy(np.array([]), np.array([])))


def test_f1_is_that_of_the_positive_class() -> None:
    # 2 tp / (3 predicted + 3 gold) * 2 = 4 / 6
    assert f1_binary(PRED, GOLD) == pytest.approx(2 / 3)
    # positive = 0: tp = 1 (2), predicted 0 twice, gold 0 twice -> 2 * 1 / 4
    assert f1_binary(PRED, GOLD, positive=0) == pytest.approx(0.5)


def test_f1_is_zero_when_nothing_is_positive() -> None:
    assert f1_binary(np.zeros(4, int), np.zeros(4, int)) == 0.0
    assert f1_binary(np.zeros(4, int), np.array([1, 0, 1, 0])) == 0.0


def test_matthews_correlation_by_hand() -> None:
    # (tp*tn - fp*fn) / sqrt((tp+fp)(tp+fn)(tn+fp)(tn+fn)) = (2 - 1) / sqrt(3 * 3 * 2 * 2) = 1 / 6
    assert matthews(PRED, GOLD) == pytest.approx(1 / 6)
    assert matthews(GOLD, GOLD) == pytest.approx(1.0)
    assert matthews(1 - GOLD, GOLD) == pytest.approx(-1.0)


def test_matthews_is_zero_for_a_constant_prediction() -> None:
    assert matthews(np.ones(5, int), GOLD) == 0.0


def test_pearson_by_hand() -> None:
    # deviations x: -1.5 -.5 .5 1.5 ; y: -3.25 -1.25 .75 3.75 ; cov 11.5, ssx 5, ssy 26.75
    r = 11.5 / math.sqrt(5 * 26.75)
    assert pearson(np.array([1.0, 2, 3, 4]), np.array([2.0, 4, 6, 9])) == pytest.approx(r)
    assert r == pytest.approx(0.994377, abs=1e-6)


def test_spearman_uses_average_ranks_for_ties() -> None:
    # ranks x: 1 2.5 2.5 4 ; y: 1 3 2 4 ; cov 4.5, ssx 4.5, ssy 5 -> 4.5 / sqrt(22.5)
    assert spearman(np.array([1.0, 2, 2, 3]), np.array([1.0, 3, 2, 4])) == pytest.approx(4.5 / math.sqrt(22.5))


def test_correlations_of_a_constant_are_undefined() -> None:
    assert math.isnan(pearson(np.full(4, 2.0), np.array([1.0, 2, 3, 4])))
    assert math.isnan(spearman(np.full(4, 2.0), np.array([1.0, 2, 3, 4])))
    assert math.isnan(pearson(np.array([1.0]), np.array([1.0])))


def test_each_task_reports_its_paper_metrics() -> None:
    got = {name: tuple(compute_metrics(t.metrics, PRED, GOLD)) for name, t in TASKS.items() if not t.is_regression}
    assert got["cola"] == ("mcc", "accuracy")
    assert got["mrpc"] == ("f1", "accuracy") and got["qqp"] == ("f1", "accuracy")
    assert all(got[n] == ("accuracy",) for n in ("sst2", "mnli", "qnli", "rte", "wnli"))
    assert TASKS["stsb"].metrics == ("pearson", "spearman")
    m = compute_metrics(TASKS["mrpc"].metrics, PRED, GOLD)
    assert m == pytest.approx({"f1": 2 / 3, "accuracy": 3 / 5})


def test_predictions_are_argmax_or_the_regression_value() -> None:
    logits = np.array([[0.1, 0.9], [2.0, -1.0], [0.0, 0.5]])
    assert predictions_from_logits(logits, False).tolist() == [1, 0, 1]
    assert predictions_from_logits(np.array([[3.5], [1.25]]), True).tolist() == [3.5, 1.25]


def test_majority_baseline_predicts_the_training_majority() -> None:
    # train majority is 1; gold 1 0 1 -> accuracy 2/3, F1 = 2 * 2 / (3 + 2)
    m = majority_baseline(("f1", "accuracy"), np.array([0, 1, 1, 1]), np.array([1, 0, 1]), False)
    assert m == pytest.approx({"f1": 0.8, "accuracy": 2 / 3})
    # majority 0 on the same gold: F1 of class 1 is 0
    assert majority_baseline(("f1",), np.array([0, 0, 1]), np.array([1, 0, 1]), False)["f1"] == 0.0


def test_regression_baseline_is_the_training_mean_with_no_correlation() -> None:
    m = majority_baseline(("pearson", "spearman"), np.array([1.0, 3.0]), np.array([0.5, 4.0, 2.0]), True)
    assert math.isnan(m["pearson"]) and math.isnan(m["spearman"])


def test_a_constant_whose_std_rounds_above_zero_is_still_undefined_and_silent() -> None:
    import warnings

    pred = np.full(200, 2.7123)  # np.std(pred) is 4.4e-16 here, not 0
    gold = np.linspace(0, 5, 200)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert math.isnan(pearson(pred, gold)) and math.isnan(spearman(pred, gold))
