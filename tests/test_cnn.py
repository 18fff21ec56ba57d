"""The paper's CNN: its architecture, centred zero-padding, the stratified split, training on generated maps,
and the classifier payload that records provenance and scores."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from bertsecrets_cli.model import cnn
from bertsecrets_cli.analysis import patterns as P
from bertsecrets_cli.analysis.synthetic import generate


@pytest.fixture
def one_thread() -> Iterator[None]:
    """Small convolutions on a shared 2-core machine run fastest on one thread; restored afterwards."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def test_architecture_is_the_papers_eight_convolutions_with_relu() -> None:
    m = cnn.build_cnn(5)
    convs = [x for x in m if isinstance(x, torch.nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size[0]) for c in convs] == [
        (1, 16, 3), (16, 16, 3), (16, 32, 3), (32, 32, 3), (32, 64, 3), (64, 64, 3), (64, 16, 1), (16, 5, 1)]
    assert sum(isinstance(x, torch.nn.ReLU) for x in m) == 6
    assert sum(isinstance(x, torch.nn.MaxPool2d) for x in m) == 2
    assert any(isinstance(x, torch.nn.AdaptiveAvgPool2d) for x in m)
    for size in (cnn.MIN_SIZE, 57, 128):  # any size from MIN_SIZE on: no resizing needed
        assert m(torch.zeros(3, 1, size, size)).shape == (3, 5)


def test_maps_are_zero_padded_and_centred_never_resized() -> None:
    m = np.arange(16, dtype=np.float32).reshape(4, 4)
    raw = cnn.pad_maps([m], 10, input="raw")
    assert raw.shape == (1, 1, 10, 10)
    np.testing.assert_array_equal(raw[0, 0, 3:7, 3:7], m)
    assert raw.sum() == m.sum()
    scaled = cnn.pad_maps([m], 10)
    np.testing.assert_allclose(scaled[0, 0, 3:7, 3:7], m * 4)  # x length: 1 = uniform attention
    with pytest.raises(ValueError):
        cnn.pad_maps([np.zeros((12, 12))], 10)


def test_stratified_split_keeps_class_proportions() -> None:
    labels = np.array([0] * 50 + [1] * 20 + [4] * 10)
    tr, va = cnn.stratified_split(labels, 0.2, seed=0)
    assert len(np.intersect1d(tr, va)) == 0 and len(tr) + len(va) == 80
    assert np.bincount(labels[va], minlength=5).tolist() == [10, 4, 0, 0, 2]


def test_cnn_trained_on_generated_maps_reaches_90_percent_macro_f1_on_held_out_maps(one_thread: None) -> None:
    train = generate(400, min_len=16, max_len=32, seed=0)
    res = cnn.train_cnn(train.maps, train.labels, epochs=30, batch_size=64, seed=0)
    held_out = generate(300, min_len=16, max_len=32, seed=1234)
    pred = cnn.predict(res.model, held_out.maps, res.size)
    sc = P.class_scores(pred, held_out.labels)
    assert sc["macro_f1"] >= 0.90, (sc["macro_f1"], sc["confusion"])
    assert 1 <= res.best_epoch <= res.epochs_run == 30
    assert res.scores["accuracy"] == max(h["val_accuracy"] for h in res.history)  # the best epoch was kept


def test_payload_round_trips_through_a_safe_torch_file(tmp_path: Path, one_thread: None) -> None:
    s = generate(40, min_len=10, max_len=20, seed=3)
    res = cnn.train_cnn(s.maps, s.labels, epochs=2, seed=0)
    payload = res.payload({"source": "synthetic", "seed": 0})
    f = tmp_path / "clf.pt"
    torch.save(payload, f)
    loaded = torch.load(f, weights_only=True)  # plain types only: no pickled code runs on load
    assert loaded["validation"]["n_maps"] == len(res.val_idx) and loaded["training"]["source"] == "synthetic"
    assert loaded["architecture"] == cnn.ARCHITECTURE and loaded["classes"] == list(P.CLASSES)
    model = cnn.from_payload(loaded)
    np.testing.assert_array_equal(cnn.predict(model, s.maps, loaded["size"]), cnn.predict(res.model, s.maps, res.size))
    with pytest.raises(ValueError):
        cnn.from_payload({"format": "something else"})


def test_patience_stops_training_early(one_thread: None) -> None:
    s = generate(30, min_len=10, max_len=16, seed=4)
    res = cnn.train_cnn(s.maps, s.labels, epochs=50, patience=2, seed=0, lr=0.0)  # lr 0: never improves
    assert res.epochs_run == 3 and res.best_epoch == 1


def _filled_by_hand(att: np.ndarray, window: int) -> np.ndarray:
    """fill_out_of_window's documented reading, row by row in plain Python: the independent construction."""
    import statistics

    T = att.shape[-1]
    out = att.astype(np.float64).copy()
    for i in range(T):
        seen = [j for j in range(T) if abs(i - j) <= window]
        if len(seen) == T:
            continue
        fill = statistics.median_low(float(att[i, j]) for j in seen)
        mass = sum(float(att[i, j]) for j in seen)
        total = mass + fill * (T - len(seen))
        for j in range(T):
            out[i, j] = (att[i, j] if j in seen else fill) * (mass / total if total > 0 else 1.0)
    return out


def _band(T: int, w: int, rng: np.random.Generator | None = None) -> np.ndarray:
    """A local layer's map: rows normalised over |i - j| <= w, exactly 0 outside (uniform, or random with rng)."""
    i = np.arange(T)
    seen = np.abs(i[:, None] - i[None, :]) <= w
    m = np.where(seen, rng.random((T, T)) if rng is not None else 1.0, 0.0)
    return (m / m.sum(-1, keepdims=True)).astype(np.float32)


def test_a_local_diagonal_head_gets_the_same_cnn_input_and_class_as_in_a_global_layer(one_thread: None) -> None:
    """Out-of-window zeros of a diagonal head change nothing: its input is the global layer's map, bit for bit."""
    T, w = 40, 4
    diag = np.zeros((T, T), np.float32)
    for i in range(T):
        for k, v in ((-1, 0.2), (0, 0.6), (1, 0.2)):
            if 0 <= i + k < T:
                diag[i, i + k] = v
    diag /= diag.sum(-1, keepdims=True)
    filled = cnn.fill_out_of_window(diag, w)
    np.testing.assert_array_equal(filled, diag)  # what the same map reads as in a global layer
    torch.manual_seed(0)
    model = cnn.build_cnn().eval()
    assert (cnn.predict(model, [filled], cnn.MIN_SIZE) == cnn.predict(model, [diag], cnn.MIN_SIZE)).all()


def test_a_head_uniform_over_its_window_reads_as_uniform_attention_not_as_a_band() -> None:
    """A local head spread evenly over what it can see is the global uniform map, not a thick diagonal of zeros around."""
    T, w = 40, 4
    band = _band(T, w)
    filled = cnn.fill_out_of_window(band, w)
    np.testing.assert_allclose(filled, np.full((T, T), 1 / T), rtol=1e-6)
    np.testing.assert_allclose(cnn.pad_maps([filled], T)[0, 0], np.ones((T, T)), rtol=1e-5)  # scaled: 1 = uniform
    assert not np.allclose(cnn.pad_maps([band], T)[0, 0], 1.0)  # read with its zeros, it was not


def test_out_of_window_fill_equals_its_row_by_row_definition_and_leaves_global_and_short_maps_alone() -> None:
    rng = np.random.default_rng(0)
    att = np.stack([_band(23, 3, rng), _band(23, 3, rng)])  # [H, T, T]
    got = cnn.fill_out_of_window(att, 3)
    for h in range(2):
        np.testing.assert_allclose(got[h], _filled_by_hand(att[h], 3), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(got.sum(-1), att.sum(-1), rtol=1e-6)  # each row keeps its mass
    assert cnn.fill_out_of_window(att, -1) is att  # a global layer
    short = att[:, :4, :4]  # every row sees every key
    np.testing.assert_array_equal(cnn.fill_out_of_window(short, 3), short)
