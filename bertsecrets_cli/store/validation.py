"""What a store of each kind must hold, and the cheap check that attention read from it is attention.

Readers check the parts a kind requires when they open a store (a missing one is one line naming it,
never a KeyError later), and every block of attention as it is decoded (no second pass): finite, not
negative, every row summing to 1 within what the stored encoding can lose. ``--no-validate`` (or
BERTSECRETS_NO_VALIDATE=1) skips both; ``check`` always does both, and requires every part of ``REQUIRED``.
"""

from __future__ import annotations

import os

import numpy as np

from bertsecrets_cli.errors import StoreError
from bertsecrets_cli.store import schema as S

# the parts without which a store of the kind cannot be used (check refuses a store missing any)
REQUIRED: dict[str, tuple[str, ...]] = {
    "attention": ("examples/id", "examples/length", "examples/token_offset", "examples/attention_offset",
                  "tokens/ids", "tokens/text", "tokens/type_ids", "tokens/special", "tokens/offsets",
                  S.ATTENTION_MAPS, S.STATS_PER_EXAMPLE),
    "patterns": ("examples/id", "patterns/labels", "patterns/features", "patterns/token_attention", S.G_HEADS),
    "diff": ("examples/id", S.G_HEADS),
    # (an ablation of whole layers only has no heads/; framenet and dependency stores may rank no head)
    "ablation": ("examples/id", "ablation/baseline/metrics", "ablation/variants/name", "ablation/variants/disabled"),
    "framenet": ("examples/id", "framenet/links"),
    "dependency": ("examples/id", "dependency/relations"),
    "evaluation": ("evaluation/logits", "evaluation/prediction"),
    "part": (),
}
# checked by every reader on open: the parts whose absence would otherwise surface as a crash or as
# "0 examples" results (the other kinds' parts are checked where they are read, and by check)
REQUIRED_ON_OPEN: dict[str, tuple[str, ...]] = {"attention": REQUIRED["attention"]}

FLOAT_ROW_TOLERANCE = 5e-3  # float16 keeps 11 bits: a row of probabilities sums to 1 within ~1e-3
UINT8_STEP = 1.0 / 255.0  # uint8 rounds each value to the nearest 1/255


_ENABLED: list[bool] = []  # set by --no-validate for this process (set_validation)


def set_validation(enabled: bool | None) -> None:
    """``--no-validate`` -> False until reset with None (back to BERTSECRETS_NO_VALIDATE's default)."""
    _ENABLED[:] = [] if enabled is None else [enabled]


def validation_default() -> bool:
    if _ENABLED:
        return _ENABLED[0]
    return os.environ.get("BERTSECRETS_NO_VALIDATE", "").strip().lower() not in ("1", "true", "yes", "on")


def missing_parts(h5: object, kind: str, *, on_open: bool = False) -> list[str]:
    """The required parts of a ``kind`` store that ``h5`` lacks."""
    need = (REQUIRED_ON_OPEN if on_open else REQUIRED).get(kind, ())
    return [name for name in need if name not in h5]  # type: ignore[operator]


def row_tolerance(encoding: str, length: int) -> float:
    """How far from 1 a row of ``length`` stored values may sum after the encoding's rounding."""
    if encoding == "uint8":
        return FLOAT_ROW_TOLERANCE + length * UINT8_STEP / 2
    return FLOAT_ROW_TOLERANCE


def attention_problem(att: np.ndarray, encoding: str, *, distribution: bool = True, zero_rows: bool = False) -> str | None:
    """What makes ``att`` [..., T, T] not attention (NaN, negative, rows not summing to 1), or None.

    ``distribution=False`` (a quantity whose rows are not distributions: norms, flow): only NaN, infinite
    and negative values are problems. ``zero_rows``: rows of zeros pass too (norms_normalised, where
    every value vector is zero).

    Two passes over the values: a minimum (NaN propagates into it) and the row sums as a matrix-vector
    product; the words for a failure are worked out only then (benchmarks/validation_overhead.py).
    """
    T = att.shape[-1]
    flat = att.reshape(-1, T)
    if not flat.size:
        return None
    lo = flat.min()
    tol = row_tolerance(encoding, T)
    if lo >= 0:
        if not distribution:
            if np.isfinite(flat.max()):
                return None
        else:
            sums = flat @ np.ones(T, dtype=flat.dtype)
            if zero_rows:
                sums = sums[np.abs(sums) > tol]
                if not sums.size:
                    return None
            hi, low = sums.max(), sums.min()
            if hi - 1 <= tol and 1 - low <= tol:
                return None
            if np.isfinite(hi) and np.isfinite(low):
                return f"attention rows that do not sum to 1 (off by up to {float(max(hi - 1, 1 - low)):.3g})"
    if not np.isfinite(flat).all():
        return "NaN or infinite attention values"
    return f"negative attention values (down to {float(lo):.3g})"


# the largest bit pattern of a stored value in [0, 1] (sign bit clear, at most 1.0): one integer maximum over
# the raw block finds any NaN, infinity, negative value or value above 1 without decoding it
_MAX_BITS = {"float16": (np.uint16, 0x3C00), "float32": (np.uint32, 0x3F800000)}


def raw_values_ok(raw: np.ndarray, encoding: str) -> bool:
    """Whether every stored value of a raw block is in [0, 1] (uint8 always is: it stores round(p * 255))."""
    if encoding not in _MAX_BITS or not raw.size:
        return True
    dtype, top = _MAX_BITS[encoding]
    return bool(_MAX(raw.reshape(-1).view(dtype)) <= top)


# ndarray.max()/min() go through Python wrappers (~1 us each): the ufunc reductions are called directly, and
# the vector of ones per row length is made once; together 30% of the per-example cost at 16 tokens
_MAX, _MIN = np.maximum.reduce, np.minimum.reduce
_ONES: dict[tuple[int, str], np.ndarray] = {}


def rows_problem(att: np.ndarray, encoding: str, *, zero_rows: bool = False) -> str | None:
    """Rows of ``att`` [..., T, T] (values already known to be in [0, 1]) that do not sum to 1, or None.

    ``zero_rows``: rows of zeros pass too (norms_normalised)."""
    T = att.shape[-1]
    if not att.size:
        return None
    ones = _ONES.get((T, att.dtype.str))
    if ones is None:
        ones = _ONES[(T, att.dtype.str)] = np.ones(T, dtype=att.dtype)
    sums = np.dot(att.reshape(-1, T), ones)
    tol = row_tolerance(encoding, T)
    if zero_rows:
        sums = sums[np.abs(sums) > tol]
        if not sums.size:
            return None
    hi, low = _MAX(sums), _MIN(sums)
    if hi - 1 <= tol and 1 - low <= tol:
        return None
    return f"attention rows that do not sum to 1 (off by up to {float(max(hi - 1, 1 - low)):.3g})"


def quantity_problem(att: np.ndarray, encoding: str, quantity: str = S.Q_WEIGHTS) -> str | None:
    """``attention_problem`` for maps of ``quantity``: rows must sum to 1 only for distribution kinds
    (schema.Quantity.distribution: weights, norms_normalised, rollout), not for raw norms or flow."""
    q = S.quantity(quantity)
    return attention_problem(att, encoding, distribution=q.distribution, zero_rows=q.name == "norms_normalised")


def refuse(name: str, index: int, problem: str) -> StoreError:
    return StoreError(f"{name}: example {index} has {problem}: this is not attention; "
                      "run bertsecrets check on it (--no-validate skips this check)")
