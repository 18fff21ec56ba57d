"""Per-head summaries: the batched version equals the per-example reference; hand-made maps."""

from __future__ import annotations

import numpy as np
import torch

from bertsecrets_cli.analysis.stats import head_stats
from bertsecrets_cli.model.batch_stats import batch_head_stats
from bertsecrets_cli.model.tokenize import CLS, NORMAL, SEP


def _random_maps(rng, L, H, T):
    a = rng.random((L, H, T, T)).astype(np.float32)
    return a / a.sum(-1, keepdims=True)


def test_batched_stats_equal_per_example_stats_on_a_padded_batch() -> None:
    rng = np.random.default_rng(0)
    lengths = [5, 1, 8, 2]
    T = max(lengths)
    probs = torch.zeros(len(lengths), 2, 3, T, T)
    masks = torch.zeros(4, len(lengths), T, dtype=torch.bool)
    refs = []
    for b, n in enumerate(lengths):
        a = _random_maps(rng, 2, 3, n)
        probs[b, :, :, :n, :n] = torch.from_numpy(a)
        probs[b, :, :, n:, :] = 0.3  # garbage in padded query rows must not matter
        special = np.full(n, NORMAL, np.int8)
        special[0] = CLS
        if n > 1:
            special[-1] = SEP
        punct = np.zeros(n, bool)
        if n > 3:
            punct[2] = True
        masks[0, b, :n] = True
        masks[1, b, :n] = torch.from_numpy(special == CLS)
        masks[2, b, :n] = torch.from_numpy(special == SEP)
        masks[3, b, :n] = torch.from_numpy(punct)
        refs.append(head_stats(a, special, punct))
    got = batch_head_stats(probs, *masks)
    for b in range(len(lengths)):
        np.testing.assert_allclose(got[b], refs[b], rtol=1e-5, atol=1e-6, equal_nan=True)


def test_hand_made_maps_give_known_statistics() -> None:
    T = 4
    prev = np.zeros((1, 1, T, T), np.float32)
    prev[0, 0, 0, 0] = 1
    for i in range(1, T):
        prev[0, 0, i, i - 1] = 1
    special = np.array([CLS, NORMAL, NORMAL, SEP], np.int8)
    s = head_stats(prev, special, np.zeros(T, bool))[0, 0]
    assert s[5] == 1.0 and s[6] == 0.0 and s[0] == 0.0  # all on previous; zero entropy
    assert np.isnan(s[3])  # no punctuation: skipped, not zero
    uni = np.full((1, 1, T, T), 1 / T, np.float32)
    s = head_stats(uni, special, np.zeros(T, bool))[0, 0]
    np.testing.assert_allclose([s[0], s[1], s[2]], [np.log(T), 1 / T, 1 / T], rtol=1e-6)
