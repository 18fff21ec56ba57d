"""The fast sweep gives the naive loop's logits, and the bookkeeping (bootstrap, greedy, importance) is right."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bertsecrets_cli.analysis import ablation as A
from bertsecrets_cli.analysis.metrics import compute_metrics

from helpers import strengthen


def _load(tiny_model_factory, family: str, num_labels: int = 2):
    from bertsecrets_cli.data.sources import Example
    from bertsecrets_cli.jobs.evaluate import batches_for
    from bertsecrets_cli.model.load import load_model

    lm = load_model(str(tiny_model_factory(family, classifier=True, num_labels=num_labels)), device="cpu", task_head=True)
    strengthen(lm.model)
    texts = ["good", "a long and winding sentence about nothing much at all", "bad film", "it is what it is , i suppose", "yes"]
    ex = [Example(f"e{i}", t, "and a second segment" if i % 2 else None, i % 2) for i, t in enumerate(texts)]
    return lm, batches_for(lm, ex, 64, 2), len(ex)


def _all_variants(L: int, H: int, mode: str) -> list[dict]:
    return ([{l: {h: mode}} for l in range(L) for h in range(H)] + [{l: {h: mode for h in range(H)}} for l in range(L)]
            + [{0: {1: mode}, L - 1: {0: mode}}, {}])


@pytest.mark.parametrize("family", ["bert", "roberta", "electra", "distilbert", "xlm-roberta", "camembert", "ernie"])
def test_fast_sweep_logits_equal_the_naive_loop_for_each_family(tiny_model_factory, family):
    from bertsecrets_cli.model.sweep import collect_mean_outputs, sweep_logits

    lm, batches, n = _load(tiny_model_factory, family)
    means = collect_mean_outputs(lm, batches)
    # the edits are family-independent code: every mode on BERT, the default mode on the others
    for mode in ("uniform", "zero", "mean") if family == "bert" else ("uniform",):
        variants = _all_variants(lm.n_layers, lm.n_heads, mode)
        fast = sweep_logits(lm, batches, n, variants, mean_outputs=means, engine="fast")
        naive = sweep_logits(lm, batches, n, variants, mean_outputs=means, engine="naive")
        assert fast.engine == "fast"
        assert np.abs(fast.variants - naive.variants).max() <= 1e-4, (family, mode)
        assert np.array_equal(fast.base, naive.base)
        moved = np.abs(naive.variants[:-1] - naive.base[None]).max(axis=(1, 2))
        assert (moved > 1e-3).all(), "every real variant must change the logits, or equality proves nothing"


def test_fast_sweep_on_top_of_a_base_set_and_in_small_chunks(tiny_model_factory):
    """Greedy steps run variants on top of already-disabled heads; a tiny budget forces one variant per step."""
    from bertsecrets_cli.model.sweep import sweep_logits

    lm, batches, n = _load(tiny_model_factory, "bert")
    base = {1: {0: "uniform"}, 0: {3: "uniform"}}
    variants = [{l: {h: "uniform"}} for l in range(2) for h in range(4)]
    fast = sweep_logits(lm, batches, n, variants, base=base, engine="fast", token_budget=1)
    naive = sweep_logits(lm, batches, n, variants, base=base, engine="naive")
    assert np.abs(fast.variants - naive.variants).max() <= 1e-4
    assert np.array_equal(fast.base, naive.base)
    # a variant naming only heads the base already disables is the base itself
    assert np.array_equal(fast.variants[3], fast.base) and np.array_equal(fast.variants[4], fast.base)


def test_auto_engine_falls_back_to_the_naive_loop_with_a_note(tiny_model_factory, monkeypatch):
    from bertsecrets_cli.model import sweep

    lm, batches, n = _load(tiny_model_factory, "bert")
    variants = [{0: {1: "zero"}}]
    ref = sweep.sweep_logits(lm, batches, n, variants, engine="naive")
    monkeypatch.setattr(sweep, "SELF_CHECK_TOL", -1.0)  # as if the hand-run layers did not reproduce the model
    out = sweep.sweep_logits(lm, batches, n, variants, engine="auto")
    assert out.engine == "naive" and "did not reproduce" in out.note
    np.testing.assert_array_equal(out.variants, ref.variants)
    albert, a_batches, a_n = _load(tiny_model_factory, "albert")  # one shared layer group: not BERT's layer stack
    out = sweep.sweep_logits(albert, a_batches, a_n, variants, engine="auto")
    assert out.engine == "naive" and "no fast-sweep adapter" in out.note
    with pytest.raises(ValueError):
        sweep.sweep_logits(albert, a_batches, a_n, variants, engine="fast")


def test_importance_is_the_gradient_of_the_loss_by_each_head_gate(tiny_model_factory):
    """|d loss / d gate| from autograd equals a central finite difference of the summed loss."""
    from bertsecrets_cli.model.attention import Intervention, intervene
    from bertsecrets_cli.model.sweep import classification_loss, head_gradients

    lm, batches, n = _load(tiny_model_factory, "bert")
    one = [(list(range(len(batches[0][0]))), batches[0][1])]
    labels = np.asarray([1.0, 0.0])
    raw = head_gradients(lm, one, classification_loss(labels, is_regression=False))

    def loss(gates: torch.Tensor) -> float:
        with torch.inference_mode(), intervene(Intervention(gates=gates)):
            logits = lm.model(**one[0][1]).logits.double()
        return float(torch.nn.functional.cross_entropy(logits, torch.tensor([1, 0]), reduction="sum"))

    eps = 1e-2
    for l, h in [(0, 0), (1, 2)]:
        up, down = torch.ones(2, 4), torch.ones(2, 4)
        up[l, h] += eps
        down[l, h] -= eps
        fd = abs(loss(up) - loss(down)) / (2 * eps) / 2  # raw is divided by the 2 labelled examples
        assert raw[l, h] == pytest.approx(fd, rel=2e-2, abs=1e-5)
    assert all(p.requires_grad for p in lm.model.parameters())  # weights are handed back trainable


# --- pure bookkeeping -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["accuracy", "f1", "mcc", "pearson", "spearman"])
def test_vectorised_bootstrap_metrics_equal_the_task_metric_on_each_resample(name):
    rng = np.random.default_rng(1)
    n = 60
    if name in ("pearson", "spearman"):
        gold = np.round(rng.uniform(0, 5, n), 1)
        pred = gold + rng.normal(0, 1, n)
    else:
        gold = rng.integers(0, 2, n)
        pred = np.where(rng.random(n) < 0.7, gold, 1 - gold)
    idx = A.bootstrap_indices(n, 40, seed=3)
    fn = lambda p, g: compute_metrics((name,), p, g)[name]  # noqa: E731
    got = A.metric_on_resamples(name, fn, pred, gold, idx)
    expected = np.asarray([fn(pred[i], gold[i]) for i in idx])
    np.testing.assert_allclose(got, expected, atol=1e-9)


def test_paired_bootstrap_interval_is_seeded_paired_and_flags_noise():
    rng = np.random.default_rng(0)
    n = 400
    gold = rng.integers(0, 2, n)
    base = np.where(rng.random(n) < 0.8, gold, 1 - gold)
    fixes = base.copy()
    wrong = np.nonzero(base != gold)[0]
    fixes[wrong[:40]] = gold[wrong[:40]]  # +10 points: a real gain
    flip = base.copy()
    flip[[wrong[0], np.nonzero(base == gold)[0][0]]] ^= 1  # one fixed, one broken: no net change
    acc = lambda p, g: float(np.mean(p == g))  # noqa: E731
    idx = A.bootstrap_indices(n, 500, seed=7)
    r = A.paired_bootstrap("accuracy", acc, base, np.stack([base, fixes, flip]), gold, idx)
    assert r.delta == pytest.approx([0.0, 0.1, 0.0])
    assert r.low[0] == r.high[0] == 0.0  # the same predictions never differ on any resample
    assert 0.0 < r.low[1] <= 0.1 <= r.high[1]
    assert not A.is_noise(r.low[1], r.high[1]) and A.is_noise(r.low[2], r.high[2])
    # paired: the interval of a 1-example swap is far narrower than unpaired resampling would give
    assert r.high[2] - r.low[2] <= 0.02
    again = A.paired_bootstrap("accuracy", acc, base, np.stack([base, fixes, flip]), gold, A.bootstrap_indices(n, 500, seed=7))
    np.testing.assert_array_equal(again.low, r.low)
    none = A.paired_bootstrap("accuracy", acc, base, fixes[None], gold, None)
    assert np.isnan(none.low).all() and none.delta[0] == pytest.approx(0.1)


def test_importance_is_normalised_to_unit_norm_per_layer():
    raw = np.array([[3.0, 4.0, 0.0], [1.0, 1.0, 1.0]])
    out = A.normalise_importance(raw)
    np.testing.assert_allclose(np.sqrt((out**2).sum(1)), 1.0)
    np.testing.assert_allclose(out[0], [0.6, 0.8, 0.0])


def test_greedy_path_takes_the_best_gain_and_stops_when_nothing_helps():
    path = A.GreedyPath(start=0.80)
    cands = [(0, 0), (0, 1), (1, 0)]
    assert path.choose(cands, np.array([0.81, 0.83, 0.83])) == (0, 1)  # ties: first in order
    assert path.steps[-1].gain == pytest.approx(0.03)
    assert path.choose([(0, 0), (1, 0)], np.array([0.84, np.nan])) == (0, 0)
    assert path.choose([(1, 0)], np.array([0.84])) is None  # equal is not better
    assert "no single further head" in path.stopped
    assert path.disabled == [(0, 1), (0, 0)] and path.score == pytest.approx(0.84)
    empty = A.GreedyPath(start=0.5)
    assert empty.choose([], np.array([])) is None and "no heads left" in empty.stopped


def test_head_grid_and_layer_vector_place_single_variants():
    masks = np.zeros((3, 2, 3), dtype=bool)
    masks[0, 1, 2] = True
    masks[1, 0, :] = True
    masks[2, 0, 0] = masks[2, 1, 1] = True
    grid = A.head_grid(["head", "layer", "heads"], masks, np.array([0.5, -1.0, 9.0]))
    assert grid[1, 2] == 0.5 and np.isnan(grid).sum() == 5
    vec = A.layer_vector(["head", "layer", "heads"], masks, np.array([0.5, -1.0, 9.0]))
    assert vec[0] == -1.0 and np.isnan(vec[1])
