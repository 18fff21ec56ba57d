"""Format name, version and the names of everything inside a store (docs/store.md is the prose spec)."""

from __future__ import annotations

FORMAT = "bertsecrets.store"
VERSION = "1"
# readers accept these major versions
READABLE_VERSIONS = ("1",)

# root attributes
A_FORMAT = "encoding-type"
A_VERSION = "encoding-version"
A_KIND = "kind"
A_COMPLETE = "complete"
A_TOOL_VERSION = "tool-version"
A_CREATED = "created"

KINDS = ("attention", "patterns", "diff", "ablation", "framenet", "dependency", "evaluation", "part", "words", "clusters", "coreference", "probe")

# groups and datasets
G_PROVENANCE = "provenance"
G_MODEL = "model"
G_EXAMPLES = "examples"
G_TOKENS = "tokens"
G_ATTENTION = "attention"
G_STATS = "stats"
G_HEADS = "heads"

ATTENTION_MAPS = "attention/maps"
STATS_PER_EXAMPLE = "stats/per_example"

# datasets with one row per example (first axis), whatever kind holds them: `check` verifies their lengths
PER_EXAMPLE_DATASETS = ("stats/per_example", "patterns/labels", "patterns/features", "patterns/token_attention",
                        "per_example/cosine", "per_example/js_divergence")

# per-example per-head summaries written by extract, in this order (stats/per_example's last axis)
STAT_NAMES = ("entropy", "cls", "sep", "punct", "self", "prev", "next")
STAT_DESCRIPTIONS = {
    "entropy": "mean entropy (nats) of the head's attention rows",
    "cls": "mean attention mass on the classification token ([CLS] or <s>)",
    "sep": "mean attention mass on separator tokens ([SEP] or </s>)",
    "punct": "mean attention mass on punctuation tokens (examples without any skipped)",
    "self": "mean attention of each token to itself",
    "prev": "mean attention of each token to the previous token",
    "next": "mean attention of each token to the next token",
}

# attention value encodings
ENCODINGS = ("float16", "float32", "uint8")
COMPRESSIONS = ("none", "lzf", "gzip")

CHUNK_VALUES = 1 << 16  # values per chunk of the flat attention array: 128 KiB in float16 (the last, partial chunk is the only waste)
LIBVER = ("earliest", "v110")  # readable by HDF5 1.10 tools


def a_store(kind: str) -> str:
    """'an attention store', 'a patterns store': for messages."""
    return f"{'an' if kind[:1] in 'aeiou' else 'a'} {kind} store"
