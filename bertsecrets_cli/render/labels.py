"""What a per-head quantity is, in words and with its unit, and the one way titles name model, data and N.

Stores name their quantities by short keys (``stat_sep``, ``ablation_delta``); readers of a figure need
"attention mass on all [SEP] tokens (attention mass, 0-1)". Every figure and ranking builds its labels here,
so one name has one definition everywhere (docs/glossary.md lists the same entries).
Pure Python: no numpy, no store access.
"""

from __future__ import annotations

from dataclasses import dataclass

MASS = "attention mass, 0-1"


@dataclass(frozen=True)
class QuantityLabel:
    words: str  # what it is, in words
    unit: str  # its unit as shown (after ``scale``)
    scale: float = 1.0  # shown value = stored value * scale (ablation fractions -> points)

    def axis(self) -> str:
        """'change of accuracy ... (accuracy points)': an axis or colour-bar label."""
        return f"{self.words} ({self.unit})" if self.unit else self.words


# one definition per name; {metric} is the task's main metric, filled from the quantity's attributes
_FIXED: dict[str, tuple[str, str, float]] = {
    "stat_entropy": ("entropy of the head's attention rows", "nats", 1.0),
    "stat_cls": ("attention mass on [CLS]", MASS, 1.0),
    "stat_sep": ("attention mass on all [SEP] tokens together", MASS, 1.0),
    "stat_punct": ("attention mass on all punctuation tokens together", MASS, 1.0),
    "stat_self": ("attention of each token to itself", MASS, 1.0),
    "stat_prev": ("attention of each token to the previous token", MASS, 1.0),
    "stat_next": ("attention of each token to the next token", MASS, 1.0),
    "token_cls": ("attention to [CLS]", MASS, 1.0),
    "token_sep": ("attention to the most-attended [SEP]", MASS, 1.0),
    "token_punct": ("attention to the most-attended punctuation token", MASS, 1.0),
    "token_negation": ("attention to the most-attended negation word", MASS, 1.0),
    **{f"ling_{f}": (f"attention to the most-attended {w}", MASS, 1.0) for f, w in
       (("noun", "noun"), ("verb", "verb"), ("pronoun", "pronoun"), ("subject", "subject"), ("object", "object"))},
    **{f"ling_cls_{f}": (f"[CLS] row's attention to the most-attended {w}", MASS, 1.0) for f, w in
       (("noun", "noun"), ("verb", "verb"), ("pronoun", "pronoun"), ("subject", "subject"), ("object", "object"))},
    "ablation_delta": ("change of {metric} when the head alone is disabled", "{metric} points", 100.0),
    "ablation_score": ("{metric} with the head alone disabled", "{metric} points", 100.0),
    "ablation_ci_low": ("lower end of the 95% interval of the change of {metric}", "{metric} points", 100.0),
    "ablation_ci_high": ("upper end of the 95% interval of the change of {metric}", "{metric} points", 100.0),
    "importance": ("gradient head importance (Michel et al. 2019)", "normalised per layer", 1.0),
    "cosine": ("cosine similarity of A's and B's maps", "cosine, 0-1", 1.0),
    "js_divergence": ("Jensen-Shannon divergence of A's and B's attention rows", "bits", 1.0),
    "pattern_majority": ("majority attention pattern type", "", 1.0),
    "pattern_majority_share": ("share of examples with the head's majority type", "share of maps, 0-1", 1.0),
    "framenet_fe_to_target": ("FE->target max attention, mean over links", MASS, 1.0),
    "framenet_target_to_fe": ("target->FE max attention, mean over links", MASS, 1.0),
}

# the extract table's columns and classify --features's columns: different statistics, different names
STAT_COLUMNS = {"cls": "[CLS]", "sep": "[SEP] sum", "punct": "punct sum", "self": "self", "prev": "prev", "next": "next", "entropy": "entropy"}
TOKEN_COLUMNS = {"cls": "[CLS]", "sep": "[SEP] max", "punct": "punct max", "negation": "negation max"}


def quantity_label(name: str, *, metric: str = "", description: str = "") -> QuantityLabel:
    """The words, unit and display scale of a per-head quantity; unknown names fall back to their description."""
    m = metric or "the task metric"
    if name in _FIXED:
        words, unit, scale = _FIXED[name]
        if metric == "loss" and name.startswith("ablation_"):  # ablate --metric loss: nats per token, not fractions
            return QuantityLabel(words.format(metric="language-model loss"), "nats per token", 1.0)
        return QuantityLabel(words.format(metric=m), unit.format(metric=m), scale)
    if name.startswith("pattern_share_"):
        return QuantityLabel(f"share of the head's maps classified {name.removeprefix('pattern_share_')}", "share of maps, 0-1")
    if name.startswith("delta_"):
        inner = quantity_label(name.removeprefix("delta_"), metric=metric)
        return QuantityLabel(f"B - A of {inner.words}", inner.unit, inner.scale)
    if name.startswith("dep_") and name.endswith("_accuracy"):
        rel = name.removeprefix("dep_").removesuffix("_accuracy")
        reverse = rel.endswith("_reverse")
        rel = rel.removesuffix("_reverse")
        what = "governor -> dependent" if reverse else "dependent -> governor"
        return QuantityLabel(f"{what} accuracy of the most-attended word ({'all relations' if rel == 'all' else rel})", "share of arcs, 0-1")
    if name.startswith("framenet_baseline_"):
        return QuantityLabel(description or name.replace("_", " "), "pieces" if name.endswith("_k") else MASS)
    return QuantityLabel(description or name, "")


def context(model: str = "", data: str = "", n: int | None = None, *, counts: str = "examples", quantity: str | None = None) -> str:
    """'embedded:all-MiniLM-L6-v2 on sst2 dev, N=24 examples': who, on what, how many (``counts``: what N counts).

    ``quantity`` (e.g. 'attention weights', 'attention norms') comes first when a command can analyse several."""
    parts = [p for p in (quantity, model) if p]
    who = ", ".join(parts)
    text = f"{who} on {data}" if who and data else who or (f"data {data}" if data else "")
    if n is not None:
        text = f"{text}, N={n} {counts}" if text else f"N={n} {counts}"
    return text


def titled(what: str, model: str = "", data: str = "", n: int | None = None, *, counts: str = "examples", quantity: str | None = None) -> str:
    """A figure or table title: the quantity in words, then model, data and N (see :func:`context`)."""
    c = context(model, data, n, counts=counts, quantity=quantity)
    return f"{what} ({c})" if c else what
