"""analysis/ablation.py's bookkeeping on hand-worked inputs: the resamples, the fast path, the edges of the
intervals and the greedy search's stops (written against the mutants mutmut found surviving)."""

from __future__ import annotations

import numpy as np
import pytest

from bertsecrets_cli.analysis import ablation as A
from bertsecrets_cli.analysis.metrics import compute_metrics


def test_bootstrap_resamples_draw_every_example_and_only_examples() -> None:
    idx = A.bootstrap_indices(3, 300, seed=0)
    assert idx.shape == (300, 3) and set(np.unique(idx).tolist()) == {0, 1, 2}
    np.testing.assert_array_equal(idx, A.bootstrap_indices(3, 300, seed=0))
    assert not np.array_equal(idx, A.bootstrap_indices(3, 300, seed=1))


@pytest.mark.parametrize("name", ["accuracy", "f1", "mcc", "pearson", "spearman"])
def test_known_metrics_take_the_vectorised_path(name: str) -> None:
    """The task metric is called once (the identity check), not once per resample: the fast path is really used."""
    gold = np.array([0, 1, 1, 0, 1, 0, 1, 1, 0, 0], float)
    pred = np.array([0, 1, 0, 0, 1, 1, 1, 1, 0, 1], float)
    if name in ("pearson", "spearman"):
        pred = pred + np.linspace(0, 0.5, 10)
    calls = []

    def metric(p: np.ndarray, g: np.ndarray) -> float:
        calls.append(1)
        return compute_metrics((name,), p, g)[name]

    idx = A.bootstrap_indices(10, 25, seed=4)
    got = A.metric_on_resamples(name, metric, pred, gold, idx)
    assert len(calls) == 1
    expected = [compute_metrics((name,), pred[i], gold[i])[name] for i in idx]
    np.testing.assert_allclose(got, expected, atol=1e-9)
    calls.clear()
    A.paired_bootstrap(name, metric, pred, np.stack([gold, pred]), gold, idx)
    assert len(calls) == 1 + 2 + 1 + 2  # full-data metrics (baseline, 2 variants), then one identity check per call
    if name in ("f1", "mcc"):
        # hand-worked resamples of gold [1, 0], pred [1, 0]: both examples (F1 1, MCC 1 with a denominator of exactly 1),
        # the negative twice (no positive anywhere: F1 0, MCC 0), the positive twice (F1 1; MCC's denominator is 0: 0)
        calls.clear()
        got = A.metric_on_resamples(name, metric, np.array([1, 0]), np.array([1, 0]), np.array([[0, 1], [1, 1], [0, 0]]))
        assert got.tolist() == ([1.0, 0.0, 1.0] if name == "f1" else [1.0, 0.0, 0.0]) and len(calls) == 1


def test_an_unknown_metric_uses_the_exact_loop() -> None:
    calls = []

    def metric(p: np.ndarray, g: np.ndarray) -> float:
        calls.append(1)
        return float(np.mean(p == g))

    idx = A.bootstrap_indices(4, 7, seed=0)
    pred, gold = np.array([0, 1, 1, 0]), np.array([0, 1, 0, 0])
    got = A.metric_on_resamples("my-metric", metric, pred, gold, idx)
    assert len(calls) == 7
    np.testing.assert_allclose(got, [np.mean(pred[i] == gold[i]) for i in idx])
    # the safety net: a function that disagrees with the vectorised formula of its name on the full data wins
    half = lambda p, g: 0.5 * float(np.mean(p == g))  # noqa: E731
    np.testing.assert_allclose(A.metric_on_resamples("accuracy", half, pred, gold, idx), [0.5 * np.mean(pred[i] == gold[i]) for i in idx])
    # ... also where the vectorised value is undefined (NaN) and the function's is not
    zero_if_flat = lambda p, g: 0.0 if np.std(p) == 0 else float(np.corrcoef(p, g)[0, 1])  # noqa: E731
    flat = A.metric_on_resamples("pearson", zero_if_flat, np.full(4, 2.0), np.arange(4.0), idx)
    assert flat.tolist() == [0.0] * 7


def test_interval_edges_one_resample_none_and_undefined_deltas() -> None:
    acc = lambda p, g: float(np.mean(p == g))  # noqa: E731
    gold = np.array([1, 1, 0, 0])
    base = np.array([1, 0, 0, 0])
    variant = np.array([1, 1, 0, 0])
    one = A.paired_bootstrap("accuracy", acc, base, variant[None], gold, np.array([[0, 1, 1, 3]]))
    # one resample: both ends are its delta, (3/4 correct) - (2/4 correct) on examples 0, 1, 1, 3
    assert one.low[0] == one.high[0] == pytest.approx(0.5)
    none = A.paired_bootstrap("accuracy", acc, base, variant[None], gold, None)
    assert none.delta[0] == pytest.approx(0.25) and np.isnan(none.low[0]) and np.isnan(none.high[0])
    # Pearson of a constant prediction is undefined on every resample: the interval is NaN (float), not an error
    pear = lambda p, g: compute_metrics(("pearson",), p, g)["pearson"]  # noqa: E731
    g = np.array([1.0, 2.0, 3.0, 4.0])
    r = A.paired_bootstrap("pearson", pear, g, np.full((1, 4), 2.0), g, A.bootstrap_indices(4, 20, seed=0))
    assert r.low.dtype == np.float64 and np.isnan(r.low[0]) and np.isnan(r.high[0])
    # 0.3 is not exact in binary: ten of them centred keep ~1e-16 residues, which must still read as constant
    calls = []

    def counted(p: np.ndarray, gg: np.ndarray) -> float:
        calls.append(1)
        return pear(p, gg)

    flat = A.metric_on_resamples("pearson", counted, np.full(10, 0.3), np.arange(10.0), A.bootstrap_indices(10, 5, seed=0))
    assert np.isnan(flat).all() and len(calls) == 1
    assert A.is_noise(float("nan"), 0.1) and A.is_noise(-0.1, float("nan"))


def test_greedy_stops_with_a_reason_when_no_candidate_can_be_scored() -> None:
    path = A.GreedyPath(start=0.5)
    assert path.choose([(0, 0), (0, 1)], np.array([np.nan, np.nan])) is None
    assert path.stopped == "no candidate could be scored"
    path = A.GreedyPath(start=0.5)
    assert path.choose([], np.array([])) is None and path.stopped == "no heads left to disable"
    path = A.GreedyPath(start=0.5)
    assert path.choose([(1, 2)], [0.75]) == (1, 2)  # a plain list of scores works too
    assert path.steps[0].gain == pytest.approx(0.25)
