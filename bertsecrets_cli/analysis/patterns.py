"""The five self-attention pattern types of Kovaleva et al. (2019, sec. 4.1) and the default, rule-based classifier.

Every map is described by a few masses that can be read off the heatmap (``FEATURES``); one rule per class
turns them into a label (``THRESHOLDS`` and ``rules_text``: the only place where the numbers live, also shown
by ``bertsecrets classify --help`` and the docs). The rules follow the paper's definitions:

* vertical: attention to [CLS]/[SEP] (and, as in the paper's figures, a stripe on one other token, e.g. '.'),
* diagonal: attention to the previous / same / next token,
* vertical+diagonal: both at once,
* block: attention that stays inside the query's own sentence, for two-sentence inputs,
* heterogeneous: everything else, the maps that could carry linguistic information.

numpy is imported inside the functions: the CLI imports this module for its help text at every TAB.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

CLASSES = ("vertical", "diagonal", "vertical+diagonal", "block", "heterogeneous")
VERTICAL, DIAGONAL, MIXED, BLOCK, HETEROGENEOUS = range(5)
# one letter per class: the annotation keys (m = mixed) and the compact per-head grid
KEYS = ("v", "d", "m", "b", "h")
LETTERS = ("V", "D", "M", "B", "H")
# names usable in /heads/<name> and as table columns
SLUGS = ("vertical", "diagonal", "vertical_diagonal", "block", "heterogeneous")

FEATURES = ("special", "stripe", "vertical", "diagonal", "block", "rest", "entropy")
FEATURE_DESCRIPTIONS = {
    "special": "mean attention mass of a row on the [CLS] and [SEP] columns",
    "stripe": "mean attention mass of a row on the single most-attended other column",
    "vertical": "special, plus stripe when the stripe reaches stripe_min",
    "diagonal": "mean mass on the previous, same and next token (special columns excluded)",
    "block": "two-sentence inputs: share of the remaining mass (not special, not a neighbour) that stays in the "
             "query's own sentence; NaN for one-sentence inputs",
    "rest": "mean mass of ordinary-token rows on ordinary tokens that are not neighbours (what block is a share of)",
    "entropy": "mean row entropy divided by log(length): 0 = one token per row, 1 = uniform (descriptive only)",
}


@dataclass(frozen=True)
class Thresholds:
    """Every number the default rules use, in one place."""

    vertical_min: float = 0.5  # vertical mass for 'vertical'
    diagonal_min: float = 0.5  # diagonal mass for 'diagonal'
    mixed_min: float = 0.25  # vertical AND diagonal mass, each, for 'vertical+diagonal'
    stripe_min: float = 0.25  # a single non-special column counts as a vertical stripe from this mass on
    block_min: float = 0.8  # share of the remaining mass inside the own sentence, for 'block'
    block_rest_min: float = 0.4  # ... and that remaining mass must be at least this large


THRESHOLDS = Thresholds()
RULES_NAME = "rules-v1"


def rules_text(t: Thresholds = THRESHOLDS) -> dict[str, str]:
    """One sentence per class, checked in this order (the first that holds wins); for --help and docs."""
    return {
        "vertical+diagonal": f"vertical >= {t.mixed_min:g} and diagonal >= {t.mixed_min:g}",
        "vertical": f"vertical >= {t.vertical_min:g} (mass on [CLS]/[SEP], plus a stripe on one other token "
                    f"when that alone takes >= {t.stripe_min:g})",
        "diagonal": f"diagonal >= {t.diagonal_min:g} (mass on the previous, same and next token)",
        "block": f"two sentences, and >= {t.block_min:g} of the remaining mass (>= {t.block_rest_min:g}) "
                 "stays inside the query's own sentence",
        "heterogeneous": "none of the above",
    }


def rules_help(t: Thresholds = THRESHOLDS) -> str:
    """The rules as help text: masses are means over the map's query rows."""
    lines = [f"Default classifier {RULES_NAME} (first matching rule wins; masses are means over query rows):"]
    lines += [f"{name}: {rule}." for name, rule in rules_text(t).items()]
    return "\n\n".join(lines)


def thresholds_dict(t: Thresholds = THRESHOLDS) -> dict[str, Any]:
    return asdict(t)


def map_features(att: np.ndarray, special: np.ndarray, type_ids: np.ndarray, t: Thresholds = THRESHOLDS,
                 windows: Sequence[int] = ()) -> np.ndarray:
    """Features of every map of one example: att [..., T, T] (e.g. [L, H, T, T]) -> float32 [..., len(FEATURES)].

    ``special`` holds the store's token kinds (bertsecrets_cli.tokens: 1 = [CLS], 2 = [SEP]); ``type_ids`` the segments.
    Vectorised over the leading axes: a few matrix-vector products and diagonal sums per example.
    ``windows`` (the store's attention windows, one per map of the first axis; -1 global): a local layer's
    query cannot see keys outside its window, so there the special mass and the stripe are means over the
    rows that can reach those columns, and a row's entropy is scaled by the log of the keys it can see.
    """
    if any(w >= 0 for w in windows):
        out = _map_features(att, special, type_ids, t, -1)
        for layer, w in enumerate(windows):
            if w >= 0:
                out[layer] = _map_features(att[layer], special, type_ids, t, int(w))
        return out
    return _map_features(att, special, type_ids, t, -1)


def _map_features(att: np.ndarray, special: np.ndarray, type_ids: np.ndarray, t: Thresholds, window: int) -> np.ndarray:
    import numpy as np

    from bertsecrets_cli.tokens import CLS, SEP

    att = np.asarray(att, dtype=np.float32)
    T = att.shape[-1]
    lead = att.shape[:-2]
    sp = np.isin(np.asarray(special), (CLS, SEP))
    ordinary = ~sp
    out = np.empty((*lead, len(FEATURES)), dtype=np.float32)

    idx = np.arange(T)
    # which (query, key) pairs a query can see: all of them, or those within a local layer's window
    seen = np.abs(idx[:, None] - idx[None, :]) <= window if window >= 0 else np.ones((T, T), dtype=bool)
    reach = (seen & sp[None, :]).any(-1)  # [T] rows that can see a special column
    row_mass = att @ sp.astype(np.float32)
    special_mass = row_mass.mean(-1) if window < 0 else (row_mass[..., reach].mean(-1) if reach.any() else np.zeros(lead, np.float32))
    # [..., T]: mean attention each key receives (in a local layer: from the rows that can see it)
    col_mean = att.mean(-2) if window < 0 else (att.sum(-2) / seen.sum(0).astype(np.float32))
    stripe = np.where(ordinary, col_mean, -np.inf).max(-1) if ordinary.any() else np.zeros(lead, np.float32)
    stripe = np.maximum(stripe, 0.0)
    vertical = special_mass + np.where(stripe >= t.stripe_min, stripe, 0.0)

    diagonal = np.zeros(lead, dtype=np.float32)
    for k in (-1, 0, 1):
        if T > abs(k):
            keys = ordinary[k:] if k >= 0 else ordinary[: T + k]  # key column of each entry of that diagonal
            diagonal += (np.diagonal(att, offset=k, axis1=-2, axis2=-1) * keys).sum(-1)
    diagonal /= T

    far = np.abs(idx[:, None] - idx[None, :]) > 1
    q = np.flatnonzero(ordinary)
    seg = np.asarray(type_ids)
    two = len(q) > 0 and len(np.unique(seg[q])) > 1
    if len(q):
        a = att[..., q, :]  # ordinary query rows
        same = (seg[q][:, None] == seg[None, :]) & ordinary[None, :] & far[q]
        other = (seg[q][:, None] != seg[None, :]) & ordinary[None, :] & far[q]
        within = (a * same).sum(-1).mean(-1)
        cross = (a * other).sum(-1).mean(-1)
        rest = within + cross
        with np.errstate(invalid="ignore", divide="ignore"):
            block = np.where(rest > 0, within / np.where(rest > 0, rest, 1), np.nan) if two else np.full(lead, np.nan)
    else:
        rest = np.zeros(lead, np.float32)
        block = np.full(lead, np.nan)

    if window < 0:
        ent = -(att * np.log(np.maximum(att, 1e-12))).sum(-1).mean(-1)
        ent = ent / np.log(T) if T > 1 else np.zeros(lead, np.float32)
    else:  # each row scaled by the log of the keys it can see (1: uniform over its window)
        n_seen = seen.sum(-1)
        with np.errstate(invalid="ignore", divide="ignore"):
            ent = np.where(n_seen > 1, -(att * np.log(np.maximum(att, 1e-12))).sum(-1) / np.log(np.maximum(n_seen, 2)), 0.0).mean(-1)

    for name, v in (("special", special_mass), ("stripe", stripe), ("vertical", vertical), ("diagonal", diagonal),
                    ("block", block), ("rest", rest), ("entropy", ent)):
        out[..., FEATURES.index(name)] = v
    return out


def classify_features(features: np.ndarray, t: Thresholds = THRESHOLDS) -> np.ndarray:
    """Apply the rules of :func:`rules_text` to features [..., len(FEATURES)] -> int8 class indices [...]."""
    import numpy as np

    f = np.asarray(features)
    v, d = f[..., FEATURES.index("vertical")], f[..., FEATURES.index("diagonal")]
    b, r = f[..., FEATURES.index("block")], f[..., FEATURES.index("rest")]
    lab = np.full(f.shape[:-1], HETEROGENEOUS, dtype=np.int8)
    with np.errstate(invalid="ignore"):
        lab[(b >= t.block_min) & (r >= t.block_rest_min)] = BLOCK
    lab[d >= t.diagonal_min] = DIAGONAL
    lab[v >= t.vertical_min] = VERTICAL
    lab[(v >= t.mixed_min) & (d >= t.mixed_min)] = MIXED
    return lab


def classify_maps(att: np.ndarray, special: np.ndarray, type_ids: np.ndarray, t: Thresholds = THRESHOLDS,
                  windows: Sequence[int] = ()) -> tuple[np.ndarray, np.ndarray]:
    """-> (labels int8 [...], features float32 [..., F]) for the maps att [..., T, T] of one example (``windows``: map_features)."""
    f = map_features(att, special, type_ids, t, windows)
    return classify_features(f, t), f


# ---------------------------------------------------------------------------------------------
# aggregation and scores


def head_shares(counts: np.ndarray) -> np.ndarray:
    """Per-head class counts [L, H, C] -> shares [L, H, C] (rows sum to 1; zeros where no map was seen)."""
    import numpy as np

    n = counts.sum(-1, keepdims=True)
    return np.divide(counts, n, out=np.zeros(counts.shape, dtype=np.float64), where=n > 0)


def majority(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-head majority class [L, H] and its share [L, H] (ties go to the earlier class in CLASSES)."""
    shares = head_shares(counts)
    return shares.argmax(-1), shares.max(-1)


def class_scores(pred: np.ndarray, gold: np.ndarray, n_classes: int = len(CLASSES)) -> dict[str, Any]:
    """Accuracy, per-class precision/recall/F1/support, macro-F1 and the confusion matrix (rows = gold).

    Macro-F1 averages over the classes that occur in ``gold`` only: a class nobody annotated says
    nothing about the classifier.
    """
    import numpy as np

    pred, gold = np.asarray(pred, dtype=np.int64), np.asarray(gold, dtype=np.int64)
    conf = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(conf, (gold, pred), 1)
    tp = np.diag(conf).astype(np.float64)
    support = conf.sum(1)
    predicted = conf.sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(predicted > 0, tp / np.maximum(predicted, 1), 0.0)
        recall = np.where(support > 0, tp / np.maximum(support, 1), np.nan)
        f1 = np.where(support + predicted > 0, 2 * tp / np.maximum(support + predicted, 1), 0.0)
    present = support > 0
    return {
        "accuracy": float(tp.sum() / max(1, len(gold))) if len(gold) else float("nan"),
        "macro_f1": float(f1[present].mean()) if present.any() else float("nan"),
        "precision": precision, "recall": recall, "f1": f1, "support": support, "confusion": conf,
    }


def parse_class(label: str) -> int:
    """A class from its name, slug, key or letter ('vertical+diagonal', 'vertical_diagonal', 'm', 'M'); -1 if unknown."""
    s = label.strip().lower()
    for i in range(len(CLASSES)):
        if s in (CLASSES[i], SLUGS[i], KEYS[i]):
            return i
    if s in ("mixed", "vd", "v+d"):
        return MIXED
    return -1
