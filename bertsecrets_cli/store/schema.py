"""Format name, version and the names of everything inside a store (docs/store.md is the prose spec)."""

from __future__ import annotations

FORMAT = "bertsecrets.store"
# 2: ``flow`` maps are row-normalised (Abnar's code), the raw max-flow values are ``flow_raw``.
# A version-1 store's ``flow`` maps are the raw values: the reader divides their rows by their sums (with a note).
VERSION = "2"
# readers accept these major versions
READABLE_VERSIONS = ("1", "2")
RAW_FLOW_VERSIONS = ("1",)

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
PER_EXAMPLE_DATASETS = ("stats/per_example", "stats/map_features", "patterns/labels", "patterns/features", "patterns/token_attention",
                        "per_example/cosine", "per_example/js_divergence",
                        *(f"{q}/{d}" for q in ("norms", "norms_normalised", "rollout", "flow", "flow_raw") for d in ("per_example", "offset")))

# per-example per-head summaries written by extract, in this order (stats/per_example's last axis)
STAT_NAMES = ("entropy", "cls", "sep", "punct", "self", "prev", "next")
# a causal decoder's stat_cls (issue 30): the first position plays [CLS]'s part
SINK_DESCRIPTION = "first-token mass: mean attention on the first position, the sink (BOS, or the first real token)"
STAT_DESCRIPTIONS = {
    "entropy": "mean entropy (nats) of the head's attention rows",
    "cls": "mean attention mass on the classification token ([CLS] or <s>)",
    "sep": "mean attention mass on separator tokens ([SEP] or </s>)",
    "punct": "mean attention mass on punctuation tokens (examples without any skipped)",
    "self": "mean attention of each token to itself",
    "prev": "mean attention of each token to the previous token",
    "next": "mean attention of each token to the next token",
}

# --- quantities: what an attention store can hold, each in the same ragged layout ---------------
# ``weights`` are the maps under attention/ (every attention store has them); every other quantity
# lives in its own group ``<name>/`` holding ``maps`` (flat, example-major, [layer, head, query, key]
# cropped to the real length; per-layer kinds have one "head"), ``offset`` (int64 [N], start of each
# example in maps), ``per_example`` (the STAT_NAMES summaries [N, L, H', 7], computed on the rows
# normalised to sum 1) and, under heads/<name>/, their means over examples (stat_<stat>).
Q_WEIGHTS = "weights"


class Quantity:
    """One kind of attention map: where it lives, how many maps per layer, whether its rows are distributions."""

    def __init__(self, name: str, per_head: bool, distribution: bool, description: str, costly: bool = False) -> None:
        self.name = name
        self.per_head = per_head  # [L, H, T, T] (True) or one map per layer [L, 1, T, T]
        # rows sum to 1 (store validation may check it); norms_normalised: or 0 where every value vector is zero
        self.distribution = distribution
        self.description = description
        self.costly = costly

    @property
    def group(self) -> str:
        return G_ATTENTION if self.name == Q_WEIGHTS else self.name

    @property
    def maps(self) -> str:
        return ATTENTION_MAPS if self.name == Q_WEIGHTS else f"{self.name}/maps"

    @property
    def offset(self) -> str:
        return "examples/attention_offset" if self.name == Q_WEIGHTS else f"{self.name}/offset"

    @property
    def per_example(self) -> str:
        return STATS_PER_EXAMPLE if self.name == Q_WEIGHTS else f"{self.name}/per_example"

    def head_name(self, name: str) -> str:
        """Where the per-head quantity ``name`` of this kind lives under heads/."""
        return name if self.name == Q_WEIGHTS else f"{self.name}/{name}"


QUANTITIES: dict[str, Quantity] = {q.name: q for q in (
    Quantity(Q_WEIGHTS, True, True, "attention weights alpha_ij (post-softmax)"),
    Quantity("norms", True, False, "norm-based attention ||alpha_ij f_h(x_j)|| (Kobayashi et al. 2020), f_h = value times the head's slice of W_O, no output bias"),
    Quantity("norms_normalised", True, True, "norm-based attention with each row divided by its sum (all-zero rows stay zero)"),
    Quantity("rollout", False, True, "attention rollout after each layer (Abnar and Zuidema 2020): product of 0.5 * head-mean weights + 0.5 * I"),
    # Abnar's compute_flows divides each row by its sum (samiraabnar/attention_flow, attention_graph_util.py line 84)
    Quantity("flow", False, True, "attention flow after each layer (Abnar and Zuidema 2020): max flow to each input token, each row divided "
                                  "by its sum as in the authors' code", costly=True),
    Quantity("flow_raw", False, False, "attention flow after each layer, raw max-flow values (rows sum to more than 1)", costly=True),
)}
DISTRIBUTION_QUANTITIES = tuple(q for q, v in QUANTITIES.items() if v.distribution)


def quantity(name: str) -> Quantity:
    """The Quantity called ``name``; ValueError naming the choices otherwise."""
    if name not in QUANTITIES:
        raise ValueError(f"unknown quantity {name!r}; choose one of {', '.join(QUANTITIES)}")
    return QUANTITIES[name]


# --- maps modes (extract --maps): what an attention store keeps of the weights' maps ----------------
# full: every map under attention/maps. topk:K: per query row the K largest stored values, largest first
# (ties: the lower key position first, so position 0 is the full map's argmax), their key positions and the
# row's remaining mass, flat and example-major like the maps ([layer, head, query, K'], K' = min(K, length)).
# none: statistics only. attention/maps then exists with no values and examples/attention_offset is all 0.
A_MAPS = "maps"  # attribute of the attention group; absent: full
MAPS_FULL, MAPS_NONE = "full", "none"
TOPK_INDEX = "attention/topk_index"  # uint16 key positions
TOPK_VALUE = "attention/topk_value"  # the stored values (the store's encoding)
TOPK_REST = "attention/topk_rest"  # float32 [layer, head, query] per example: 1 - the sum of the row's top K (float32 sums)
# extract --maps topk/none: the rule classifier's features of every map (analysis.patterns.FEATURES, names attribute),
# computed from the stored values during extraction, so classify needs no maps
MAP_FEATURES = "stats/map_features"  # float32 [N, L, H, F]
TOPK_OFFSET = "examples/topk_offset"  # int64 [N]: start of each example in topk_index / topk_value


def parse_maps(text: str) -> tuple[str, int]:
    """'full' -> ("full", 0), 'topk:8' -> ("topk", 8), 'none' -> ("none", 0); ValueError naming the choices otherwise."""
    t = text.strip().lower()
    if t in (MAPS_FULL, MAPS_NONE):
        return t, 0
    if t.startswith("topk:") and t[5:].isdigit() and 1 <= int(t[5:]) <= 4096:
        return "topk", int(t[5:])
    raise ValueError(f"{text!r}: choose full, topk:K (K from 1 to 4096) or none")


def maps_label(mode: str, k: int) -> str:
    return f"topk:{k}" if mode == "topk" else mode


# attention value encodings
ENCODINGS = ("float16", "float32", "uint8")
COMPRESSIONS = ("none", "lzf", "gzip")

CHUNK_VALUES = 1 << 16  # values per chunk of the flat attention array: 128 KiB in float16 (the last, partial chunk is the only waste)
LIBVER = ("earliest", "v110")  # readable by HDF5 1.10 tools


def a_store(kind: str) -> str:
    """'an attention store', 'a patterns store': for messages."""
    return f"{'an' if kind[:1] in 'aeiou' else 'a'} {kind} store"
