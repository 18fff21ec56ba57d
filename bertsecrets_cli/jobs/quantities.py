"""The attention quantities of a batch besides the weights (norms, rollout, flow), per example, for extract and
the commands that score maps on the fly (framenet, dependencies).

Norms come from the same forward pass as the weights (model.attention.forward_with_norms); rollout and flow
are computed from each example's cropped weights (analysis.quantities), so padding never enters them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from bertsecrets_cli.errors import InputError
from bertsecrets_cli.store import schema as S

# attention flow solves L * T^2 max-flow problems per example: only for short inputs
FLOW_MAX_LENGTH = 64


def parse_quantities(spec: str | Sequence[str] | None) -> tuple[str, ...]:
    """'weights,norms,rollout' -> ('weights', 'norms', 'rollout'): validated, weights always first (every store has them)."""
    names = [x.strip() for x in (spec.split(",") if isinstance(spec, str) else (spec or ())) if x.strip()]
    bad = [n for n in names if n not in S.QUANTITIES]
    if bad:
        raise InputError(f"--quantities {','.join(names)}: unknown {', '.join(bad)}; choose from {', '.join(S.QUANTITIES)}")
    out = [S.Q_WEIGHTS]
    for n in names:
        if n not in out:
            out.append(n)
    return tuple(out)


def check_quantity(name: str | None) -> str:
    """A reader's --quantity: one known name (default weights)."""
    name = name or S.Q_WEIGHTS
    if name not in S.QUANTITIES:
        raise InputError(f"--quantity {name}: choose one of {', '.join(S.QUANTITIES)}")
    return name


def check_flow_length(quantities: Sequence[str], max_length: int) -> None:
    if any(q in ("flow", "flow_raw") for q in quantities) and max_length > FLOW_MAX_LENGTH:
        raise InputError(f"--quantities flow: attention flow solves layers x T^2 max-flow problems per example; "
                         f"use --max-length {FLOW_MAX_LENGTH} or less (got {max_length}), or rollout")


def needs_norms(quantities: Sequence[str]) -> bool:
    return any(q in ("norms", "norms_normalised") for q in quantities)


def normalise_rows(norms: Any) -> Any:
    """Torch [..., T, T]: rows divided by their sum; all-zero rows (a head whose value vectors are zero) stay zero."""
    total = norms.sum(-1, keepdim=True)
    return norms / total.clamp_min(1e-30) * (total > 0)


def batch_extras(probs: Any, norms: Any, encoded: Sequence[Any], quantities: Sequence[str], *, stats: bool = True,
                 dtype: Any = None, windows: Sequence[int] = ()) -> list[dict[str, tuple[np.ndarray, np.ndarray | None]]]:
    """Per example of a padded batch: quantity -> (maps cropped to its length, stats [L, H', 7] or None).

    ``probs``/``norms`` are torch [B, L, H, T, T] (norms None when not asked for); weights themselves are
    not included (extract writes them as before). Statistics are taken on rows normalised to sum 1.
    """
    import torch

    from bertsecrets_cli.analysis.quantities import flow, rollout, row_normalise
    from bertsecrets_cli.analysis.stats import head_stats
    from bertsecrets_cli.model.batch_stats import batch_head_stats
    from bertsecrets_cli.model.tokenize import token_masks

    extras = [q for q in quantities if q != S.Q_WEIGHTS]
    out: list[dict[str, tuple[np.ndarray, np.ndarray | None]]] = [{} for _ in encoded]
    if not extras:
        return out
    dtype = dtype or torch.float32
    if needs_norms(extras):
        if norms is None:
            raise ValueError("norms were not captured")
        normalised = normalise_rows(norms.float())
        masks = token_masks(list(encoded), norms.device) if stats else None
        norm_stats = batch_head_stats(normalised, *masks, windows=windows) if stats else None  # windows: local layers
        for q, maps in (("norms", norms), ("norms_normalised", normalised)):
            if q not in extras:
                continue
            host = maps.to(dtype).cpu().numpy()
            for j, e in enumerate(encoded):
                T = e.length
                out[j][q] = (host[j, :, :, :T, :T], None if norm_stats is None else norm_stats[j])
    per_layer = [q for q in extras if q in ("rollout", "flow", "flow_raw")]
    if per_layer:
        host_w = probs.float().cpu().numpy()
        for j, e in enumerate(encoded):
            T = e.length
            w = host_w[j, :, :, :T, :T]
            raw_flow = flow(w)[:, None] if any(q.startswith("flow") for q in per_layer) else None  # solved once for both names
            for q in per_layer:
                # flow: rows divided by their sums, as Abnar's compute_flows (attention_graph_util.py line 84); flow_raw: as solved
                maps = rollout(w)[:, None] if q == "rollout" else (row_normalise(raw_flow) if q == "flow" else raw_flow)  # [L, 1, T, T]
                st = head_stats(row_normalise(maps), e.special, e.punct) if stats else None
                out[j][q] = (maps, st)
    return out


def split_kind(items: Sequence[str]) -> tuple[str | None, tuple[str, ...]]:
    """``--quantity`` items of show and plot -> (map kind or None, per-head names).

    Each item is a map kind (``norms``: that kind's per-head quantities), ``KIND/NAME`` (``norms/stat_sep``)
    or a per-head NAME (of the weights, or of a result store). One command reads one kind.
    """
    kinds: set[str] = set()
    names: list[str] = []
    for item in items:
        if item in S.QUANTITIES:
            kinds.add(item)
            continue
        kind, sep, rest = item.partition("/")
        if sep and kind in S.QUANTITIES and rest:
            kinds.add(kind)
            names.append(rest)
        else:
            names.append(item)
    if len(kinds) > 1:
        raise InputError(f"--quantity {','.join(items)}: names {' and '.join(sorted(kinds))}; one figure or ranking reads one kind of maps")
    return (kinds.pop() if kinds else None), tuple(names)


def qualified(kind: str, name: str) -> str:
    """'stat_sep' for the weights, 'norms/stat_sep' for another kind: how show and plot name a per-head quantity."""
    return name if kind == S.Q_WEIGHTS else f"{kind}/{name}"
