"""Head names: ``L<layer>H<head>``, 1-based as in the paper, everywhere a user sees or types one."""

from __future__ import annotations

import re

from bertsecrets_cli.errors import InputError

_HEAD = re.compile(r"^[Ll](\d+)[Hh](\d+)$")
_LAYER = re.compile(r"^[Ll](\d+)$")


def head_name(layer: int, head: int) -> str:
    """0-based indices -> 'L7H6' (1-based)."""
    return f"L{layer + 1}H{head + 1}"


def layer_name(layer: int) -> str:
    return f"L{layer + 1}"


def parse_head(name: str, n_layers: int | None = None, n_heads: int | None = None) -> tuple[int, int]:
    """'L7H6' -> (6, 5), 0-based; checks the range when the model's size is known."""
    m = _HEAD.match(name.strip())
    if not m:
        raise InputError(f"{name!r} is not a head name; write heads as L<layer>H<head>, 1-based, e.g. L7H6")
    layer, head = int(m.group(1)), int(m.group(2))
    if layer < 1 or head < 1:
        raise InputError(f"{name}: layers and heads are numbered from 1")
    if n_layers is not None and layer > n_layers:
        raise InputError(f"{name}: the model has {n_layers} layers (L1..L{n_layers})")
    if n_heads is not None and head > n_heads:
        raise InputError(f"{name}: the model has {n_heads} heads per layer (H1..H{n_heads})")
    return layer - 1, head - 1


def parse_heads(spec: str, n_layers: int | None = None, n_heads: int | None = None) -> list[tuple[int, int]]:
    """'L7H6,L1H2' -> [(6, 5), (0, 1)]; duplicates removed, order kept."""
    out: list[tuple[int, int]] = []
    for part in spec.split(","):
        if not part.strip():
            continue
        lh = parse_head(part, n_layers, n_heads)
        if lh not in out:
            out.append(lh)
    if not out:
        raise InputError("no head named; write heads as L<layer>H<head>, e.g. L7H6,L1H2")
    return out


def parse_layer(name: str, n_layers: int | None = None) -> int:
    """'L7' or '7' -> 6 (0-based)."""
    s = name.strip()
    m = _LAYER.match(s)
    digits = m.group(1) if m else s
    if not digits.isdigit() or int(digits) < 1:
        raise InputError(f"{name!r} is not a layer; write layers as L<layer> or a number, 1-based")
    layer = int(digits)
    if n_layers is not None and layer > n_layers:
        raise InputError(f"{name}: the model has {n_layers} layers (L1..L{n_layers})")
    return layer - 1
