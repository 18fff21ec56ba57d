"""The synthetic map generator: valid attention, known types, seeded, and noise that really blurs the types."""

from __future__ import annotations

import numpy as np
import pytest

from bertsecrets_cli.analysis import patterns as P
from bertsecrets_cli.analysis.synthetic import generate, make_map
from bertsecrets_cli.model.tokenize import CLS, NORMAL, SEP


def test_maps_are_attention_rows_with_the_store_token_layout() -> None:
    s = generate(50, min_len=10, max_len=20, seed=1)
    assert len(s) == 50 and s.labels.shape == (50,)
    for m, sp, ty, tok in zip(s.maps, s.special, s.type_ids, s.tokens):
        T = m.shape[0]
        assert m.shape == (T, T) and 10 <= T <= 20 and m.dtype == np.float32
        np.testing.assert_allclose(m.sum(-1), 1.0, atol=1e-5)
        assert (m >= 0).all()
        assert sp[0] == CLS and sp[-1] == SEP and len(tok) == T and tok[0] == "[CLS]"
        assert set(np.unique(ty)) <= {0, 1}
        assert ((sp == SEP).sum() == 2) == (ty.max() == 1)  # a second sentence comes with a second [SEP]


def test_classes_come_in_equal_numbers_and_block_maps_are_sentence_pairs() -> None:
    s = generate(100, seed=2)
    assert np.bincount(s.labels, minlength=5).tolist() == [20] * 5
    for lab, ty in zip(s.labels, s.type_ids):
        if lab == P.BLOCK:
            assert ty.max() == 1


def test_same_seed_same_maps_other_seed_other_maps() -> None:
    a, b, c = generate(10, seed=3), generate(10, seed=3), generate(10, seed=4)
    assert all(np.array_equal(x, y) for x, y in zip(a.maps, b.maps))
    assert not all(x.shape == y.shape and np.array_equal(x, y) for x, y in zip(a.maps, c.maps))


def test_more_noise_makes_the_types_harder_to_tell_apart() -> None:
    def acc(noise: float) -> float:
        s = generate(300, noise=noise, seed=5)
        pred = np.array([P.classify_maps(m, sp, ty)[0] for m, sp, ty in zip(s.maps, s.special, s.type_ids)])
        return float(np.mean(pred == s.labels))

    clean, default, heavy = acc(0.0), acc(0.2), acc(0.6)
    assert clean >= default > heavy
    assert heavy < 0.6  # at 60% noise the structure is mostly gone


def test_noise_one_is_pure_diffuse_attention() -> None:
    rng = np.random.default_rng(0)
    att, sp, _, _ = make_map(P.VERTICAL, 20, rng, noise=1.0)
    assert att[:, sp != NORMAL].sum(-1).mean() < 0.3  # no [CLS]/[SEP] stripe left


@pytest.mark.parametrize("kw", [{"noise": -0.1}, {"noise": 1.5}, {"min_len": 4}, {"min_len": 20, "max_len": 10}])
def test_bad_settings_are_refused(kw: dict) -> None:
    with pytest.raises(ValueError):
        generate(5, **kw)
