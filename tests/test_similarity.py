"""Per-head similarity of two attention maps: cosine (cropped and the authors' padded canvas), JS divergence, rankings."""

from __future__ import annotations

import numpy as np
import pytest

from bertsecrets_cli.analysis.similarity import (
    head_cosine,
    head_cosine_padded,
    head_js_divergence,
    layer_means,
    pad_maps,
    rank_heads,
    row_js_divergence,
)


def random_maps(rng: np.random.Generator, shape: tuple[int, ...], sharp: float = 1.0) -> np.ndarray:
    """Row-stochastic maps like softmax output; larger ``sharp`` concentrates the rows."""
    x = np.exp(sharp * rng.normal(size=shape)).astype(np.float32)
    return x / x.sum(-1, keepdims=True)


def js_reference(p: np.ndarray, q: np.ndarray) -> float:
    """Textbook JS divergence in bits via two KL terms, float64."""
    p, q = p.astype(np.float64), q.astype(np.float64)
    m = (p + q) / 2

    def kl(x: np.ndarray) -> float:
        nz = x > 0
        return float(np.sum(x[nz] * np.log2(x[nz] / m[nz])))

    return 0.5 * kl(p) + 0.5 * kl(q)


def test_identical_maps_have_cosine_one_and_js_exactly_zero() -> None:
    a = random_maps(np.random.default_rng(0), (3, 4, 9, 9), sharp=3.0)
    a[0, 0, 2] = 0.0
    a[0, 0, 2, 5] = 1.0  # a one-hot row: zeros must not make log() blow up
    assert np.allclose(head_cosine(a, a), 1.0, atol=1e-12)
    assert np.all(head_js_divergence(a, a) == 0.0)


def test_cosine_is_the_cosine_of_the_flattened_maps() -> None:
    rng = np.random.default_rng(1)
    a, b = random_maps(rng, (2, 3, 7, 7)), random_maps(rng, (2, 3, 7, 7))
    got = head_cosine(a, b)
    for li in range(2):
        for h in range(3):
            x, y = a[li, h].ravel().astype(np.float64), b[li, h].ravel().astype(np.float64)
            assert got[li, h] == pytest.approx(x @ y / np.linalg.norm(x) / np.linalg.norm(y), rel=1e-6)
    assert got.shape == (2, 3) and np.all(got < 1.0)


def test_js_divergence_matches_the_kl_definition_and_is_symmetric() -> None:
    rng = np.random.default_rng(2)
    a, b = random_maps(rng, (2, 2, 6, 6), sharp=2.0), random_maps(rng, (2, 2, 6, 6), sharp=2.0)
    got = head_js_divergence(a, b)
    want = np.array([[np.mean([js_reference(a[li, h, r], b[li, h, r]) for r in range(6)]) for h in range(2)] for li in range(2)])
    assert np.allclose(got, want, atol=1e-5)
    assert np.allclose(head_js_divergence(b, a), got, atol=1e-6)
    assert np.allclose(row_js_divergence(a, b).mean(-1), want, atol=1e-6)


def test_js_divergence_is_one_bit_for_disjoint_rows() -> None:
    a = np.zeros((1, 1, 2, 2), np.float32)
    b = np.zeros((1, 1, 2, 2), np.float32)
    a[..., 0] = 1.0
    b[..., 1] = 1.0
    assert head_js_divergence(a, b)[0, 0] == pytest.approx(1.0, abs=1e-6)
    assert head_cosine(a, b)[0, 0] == 0.0


def test_padded_canvas_equals_cropped_unless_the_map_is_longer_than_the_canvas() -> None:
    rng = np.random.default_rng(3)
    a, b = random_maps(rng, (2, 2, 6, 6)), random_maps(rng, (2, 2, 6, 6))
    padded = pad_maps(a, 10)
    assert padded.shape == (2, 2, 10, 10) and np.array_equal(padded[..., :6, :6], a) and not padded[..., 6:, :].any()
    assert np.allclose(head_cosine_padded(a, b, 200), head_cosine(a, b))
    # the explicit canvas gives the same number as the shortcut that skips building it
    assert np.allclose(head_cosine(pad_maps(a, 10), pad_maps(b, 10)), head_cosine_padded(a, b, 10))
    cut = head_cosine_padded(a, b, 4)
    assert np.allclose(cut, head_cosine(a[..., :4, :4], b[..., :4, :4])) and not np.allclose(cut, head_cosine(a, b))


def test_shapes_must_match() -> None:
    with pytest.raises(ValueError):
        head_cosine(np.ones((1, 1, 3, 3)), np.ones((1, 1, 4, 4)))
    with pytest.raises(ValueError):
        head_js_divergence(np.ones((1, 1, 3, 3)), np.ones((1, 1, 4, 4)))


def test_rank_heads_orders_filters_and_skips_nan() -> None:
    v = np.array([[0.5, -0.9, np.nan], [0.1, 0.7, -0.2]])
    assert rank_heads(v, top=2) == [(1, 1, 0.7), (0, 0, 0.5)]
    assert rank_heads(v, top=1, ascending=True) == [(0, 1, -0.9)]
    assert [c[:2] for c in rank_heads(v, by_abs=True)] == [(0, 1), (1, 1), (0, 0), (1, 2), (1, 0)]
    assert rank_heads(v, layer=1, ascending=True) == [(1, 2, -0.2), (1, 0, 0.1), (1, 1, 0.7)]
    assert len(rank_heads(v, top=0)) == 5  # 0 = all finite heads


def test_layer_means_ignore_missing_heads() -> None:
    v = np.array([[1.0, np.nan, 3.0], [np.nan, np.nan, np.nan]])
    got = layer_means(v)
    assert got[0] == 2.0 and np.isnan(got[1])
