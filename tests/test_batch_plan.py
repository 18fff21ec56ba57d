"""extract's batches hold at most --batch-size examples and a fixed number of attention values (memory flat in N)."""

from __future__ import annotations

import numpy as np

from bertsecrets_cli.jobs.extract import BUDGET_LENGTH, batch_plan


def test_every_example_once_in_length_order_within_the_value_budget() -> None:
    rng = np.random.default_rng(0)
    lengths = [int(x) for x in np.minimum(rng.lognormal(3.0, 0.7, 1000).astype(int) + 3, 512)]  # a long tail
    for bs in (1, 8, 32):
        plan = batch_plan(lengths, bs)
        assert sorted(i for b in plan for i in b) == list(range(len(lengths)))
        for b in plan:
            t = max(lengths[i] for i in b)
            assert len(b) <= bs and (len(b) == 1 or len(b) * t * t <= bs * BUDGET_LENGTH**2)
            assert [lengths[i] for i in b] == sorted(lengths[i] for i in b)
            assert len({i // (4 * bs) for i in b}) == 1  # inside one window of 4 batches, as before
        # short examples keep whole batches: the budget only splits long ones
        short = [i for i, t in enumerate(lengths) if t <= BUDGET_LENGTH]
        assert max(len(b) for b in plan if all(i in set(short) for i in b)) == bs
    # with --max-length 128 (the default) and --batch-size 32 the largest batch has the same number of values at 100
    # examples as at 1,000, though the longer corpus has longer examples
    capped = [min(t, 128) for t in lengths]
    peak = [max(len(b) * max(capped[i] for i in b) ** 2 for b in batch_plan(capped[:n], 32)) for n in (100, 1000)]
    budget = 32 * BUDGET_LENGTH**2
    assert budget * 0.9 <= peak[0] <= budget and budget * 0.9 <= peak[1] <= budget
    assert 32 * max(capped) ** 2 > 4 * budget  # batches of 32 examples alone: 4x and more, growing with the longest example
