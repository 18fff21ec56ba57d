"""The shared evaluation routine: example order, eval mode, interventions, and its refusals."""

from __future__ import annotations

import numpy as np
import pytest

from bertsecrets_cli.analysis.metrics import compute_metrics
from bertsecrets_cli.data.sources import Example, load_dataset
from bertsecrets_cli.data.tasks import get_task
from bertsecrets_cli.errors import InputError
from bertsecrets_cli.jobs.evaluate import evaluate


@pytest.fixture(scope="module")
def classifier(tiny_model_factory):
    from bertsecrets_cli.model.load import load_model

    return load_model(str(tiny_model_factory("bert", classifier=True, num_labels=2)), device="cpu", task_head=True)


@pytest.fixture(scope="module")
def sst2_examples():
    return load_dataset(get_task("sst2"), None, "dev").examples[:24]


def test_logits_come_back_in_example_order(classifier, sst2_examples) -> None:
    """Batches are sorted by length inside; each row must still belong to its own example."""
    task = get_task("sst2")
    res = evaluate(classifier, task, sst2_examples, max_length=64, batch_size=5)
    for i in (0, 7, 23):
        alone = evaluate(classifier, task, [sst2_examples[i]], max_length=64, batch_size=1)
        np.testing.assert_allclose(res.logits[i], alone.logits[0], atol=1e-5)
    assert res.ids == [e.id for e in sst2_examples]
    assert res.logits.shape == (24, 2) and res.predictions.tolist() == res.logits.argmax(-1).tolist()


def test_metrics_match_the_metric_functions(classifier, sst2_examples) -> None:
    task = get_task("sst2")
    res = evaluate(classifier, task, sst2_examples, max_length=64)
    gold = np.array([e.label for e in sst2_examples])
    assert res.metrics == pytest.approx(compute_metrics(task.metrics, res.logits.argmax(-1), gold))


def test_a_model_left_in_train_mode_is_evaluated_without_dropout(classifier, sst2_examples) -> None:
    task = get_task("sst2")
    classifier.model.train()
    a = evaluate(classifier, task, sst2_examples, max_length=64)
    classifier.model.train()
    b = evaluate(classifier, task, sst2_examples, max_length=64)
    np.testing.assert_array_equal(a.logits, b.logits)
    assert not classifier.model.training


def test_an_intervention_is_applied(classifier, sst2_examples) -> None:
    """ablate relies on this: disabling every head must change the logits, and only inside the call."""
    from bertsecrets_cli.model.attention import Intervention

    task = get_task("sst2")
    plain = evaluate(classifier, task, sst2_examples, max_length=64)
    iv = Intervention()
    for layer in range(classifier.n_layers):
        for head in range(classifier.n_heads):
            iv.disable(layer, head, "zero")
    edited = evaluate(classifier, task, sst2_examples, max_length=64, intervention=iv)
    assert np.abs(edited.logits - plain.logits).max() > 1e-4
    again = evaluate(classifier, task, sst2_examples, max_length=64)
    np.testing.assert_array_equal(again.logits, plain.logits)


def test_unlabelled_examples_are_skipped_by_the_metrics(classifier, sst2_examples) -> None:
    task = get_task("sst2")
    mixed = [*sst2_examples[:10], Example("u1", "no label here", None, None)]
    res = evaluate(classifier, task, mixed, max_length=64)
    ref = evaluate(classifier, task, sst2_examples[:10], max_length=64)
    assert res.metrics == ref.metrics and np.isnan(res.labels[-1])


def test_refuses_data_without_labels(classifier) -> None:
    with pytest.raises(InputError, match="no labels"):
        evaluate(classifier, get_task("sst2"), [Example("t0", "a test sentence", None, None)], max_length=32)


def test_refuses_a_head_of_the_wrong_size(classifier) -> None:
    pairs = load_dataset(get_task("stsb"), None, "dev").examples[:3]
    with pytest.raises(InputError, match="predicts 2 labels"):
        evaluate(classifier, get_task("stsb"), pairs, max_length=32)
