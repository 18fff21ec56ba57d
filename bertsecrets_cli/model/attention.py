"""The one interception point: a registered attention function that captures and edits head attention.

transformers 5 dropped ``head_mask``; every encoder we support (BERT, RoBERTa, ELECTRA, DistilBERT)
calls the function registered under its ``attn_implementation`` name with
``(module, query, key, value, attention_mask, scaling=..., dropout=...)``. Ours computes eager
attention and, while an :class:`Intervention` is active, can

* capture the post-softmax probabilities of every layer (``capture=True``),
* replace a head's probabilities by a uniform distribution over the real (non-pad) keys
  (``"uniform"``: the paper's "disabling"), or by zeros (``"zero"``: the old ``head_mask``),
* replace a head's output vectors by a fixed vector (``"mean"``: the head's mean output),
* multiply each head's output by a gate (``gates``: Michel et al.'s importance by gradient),
* hand every head's output to a callback (``on_head_output``: collecting means),
* capture the norm-based attention ||alpha_ij f_h(x_j)|| of every head (``capture_norms=True``,
  Kobayashi et al. 2020) from the same forward pass: f_h(x_j) = v_j^h W_O[:, h]^T is token j's value
  vector (its bias b_V included) after the head's slice of the output projection. The output bias b_O
  is left out: it is added once per query, after the sum over j, so it belongs to no token j (as in
  Kobayashi et al.). Since alpha_ij is a scalar, the norm is alpha_ij * ||f_h(x_j)||.
* hand every layer's probabilities to a callback as they are computed (``on_probs``: extract's
  statistics and stored copy, without keeping all layers in float32).

The padding mask is registered for our name too: without it transformers would pass
``attention_mask=None`` and pad tokens would silently be attended to.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from bertsecrets_cli.model.hooks import ProgressFactory, silent

ATTN_IMPLEMENTATION = "bertsecrets"
MODES = ("uniform", "zero", "mean")

_ACTIVE: contextvars.ContextVar[Intervention | None] = contextvars.ContextVar("bertsecrets_intervention", default=None)
_LAYER_ATTR = "_bertsecrets_layer"
_OUT_ATTR = "_bertsecrets_output_projection"


@dataclass
class Intervention:
    """What the attention function should do during one forward pass (or many)."""

    capture: bool = False
    # layer -> {head -> mode}; 0-based indices
    head_modes: dict[int, dict[int, str]] = field(default_factory=dict)
    # (layer, head) -> output vector [head_dim], used by mode "mean"
    mean_outputs: dict[tuple[int, int], torch.Tensor] = field(default_factory=dict)
    # [layers, heads] multipliers of each head's output, or None
    gates: torch.Tensor | None = None
    # called with (layer, head outputs [B, H, T, d], key_is_real [B, T]) for every layer
    on_head_output: Callable[[int, torch.Tensor, torch.Tensor], None] | None = None
    captured: dict[int, torch.Tensor] = field(default_factory=dict)
    # capture ||alpha_ij f_h(x_j)|| [B, H, Tq, Tk] per layer into captured_norms
    capture_norms: bool = False
    captured_norms: dict[int, torch.Tensor] = field(default_factory=dict)
    # called with (layer, probabilities [B, H, Tq, Tk], key_is_real [B, Tk]) as each layer computes them:
    # a consumer that reduces them at once keeps one layer's float32 maps alive instead of all
    on_probs: Callable[[int, torch.Tensor, torch.Tensor], None] | None = None

    def disable(self, layer: int, head: int, mode: str = "uniform") -> Intervention:
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")
        self.head_modes.setdefault(layer, {})[head] = mode
        return self


@contextmanager
def intervene(intervention: Intervention) -> Iterator[Intervention]:
    """Make ``intervention`` active for forward passes inside the block."""
    token = _ACTIVE.set(intervention)
    try:
        yield intervention
    finally:
        _ACTIVE.reset(token)


def key_is_real(attention_mask: torch.Tensor | None, batch: int, keys: int, device: torch.device) -> torch.Tensor:
    """[B, T] bool: which keys are real tokens, read off the additive 4-D mask (0 = attend)."""
    if attention_mask is None:
        return torch.ones(batch, keys, dtype=torch.bool, device=device)
    # bidirectional masks are the same for every query row: use the first
    return attention_mask[:, 0, 0, :] == 0


def uniform_probs(real: torch.Tensor, queries: int, dtype: torch.dtype) -> torch.Tensor:
    """[B, Tq, Tk] uniform distribution over the real keys of each example."""
    w = real.to(dtype)
    w = w / w.sum(-1, keepdim=True).clamp_min(1)
    return w[:, None, :].expand(-1, queries, -1)


def attention_function(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float | None = None,
    dropout: float = 0.0,
    **kwargs: Any,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Eager attention plus the active intervention; same contract as transformers' eager function."""
    if scaling is None:
        scaling = query.size(-1) ** -0.5
    # in place on matmul's fresh output: the same values bit for bit as transformers' ``* scaling`` and
    # ``+ mask``, without two more [B, H, T, T] tensors per layer (autograd keeps query and key, not this)
    scores = torch.matmul(query, key.transpose(2, 3)).mul_(scaling)
    if attention_mask is not None:
        scores = scores.add_(attention_mask)
    probs = torch.nn.functional.softmax(scores, dim=-1)
    probs = torch.nn.functional.dropout(probs, p=dropout, training=module.training)

    iv = _ACTIVE.get()
    layer = getattr(module, _LAYER_ATTR, None)
    if iv is None or layer is None:
        out = torch.matmul(probs, value)
        return out.transpose(1, 2).contiguous(), probs

    batch, _, queries, keys = probs.shape
    real = key_is_real(attention_mask, batch, keys, probs.device)
    modes = iv.head_modes.get(layer, {})
    prob_edits = {h: m for h, m in modes.items() if m in ("uniform", "zero")}
    if prob_edits:
        probs = probs.clone()  # never edit softmax's saved output in place
        for h, mode in prob_edits.items():
            probs[:, h] = uniform_probs(real, queries, probs.dtype) if mode == "uniform" else 0.0
    if iv.capture:
        iv.captured[layer] = probs.detach()
    if iv.capture_norms:
        iv.captured_norms[layer] = (probs * transformed_value_norms(module, value)[:, :, None, :]).detach()
    if iv.on_probs is not None:
        iv.on_probs(layer, probs.detach(), real)
    out = torch.matmul(probs, value)  # [B, H, T, d]
    for h, mode in modes.items():
        if mode == "mean":
            out = out.clone() if not prob_edits else out
            out[:, h] = iv.mean_outputs[(layer, h)].to(out.dtype)
    if iv.gates is not None:
        out = out * iv.gates[layer].to(out.dtype).view(1, -1, 1, 1)
    if iv.on_head_output is not None:
        iv.on_head_output(layer, out.detach(), real)
    return out.transpose(1, 2).contiguous(), probs


def transformed_value_norms(module: torch.nn.Module, value: torch.Tensor) -> torch.Tensor:
    """[B, H, T] norms ||v_j^h W_O[:, h]^T|| of every token's value vector through its head's slice of W_O.

    ``value`` is [B, H, T, d] (b_V included); W_O is the output projection found by :func:`install`.
    """
    proj = getattr(module, _OUT_ATTR, None)
    if proj is None:
        raise RuntimeError("norm-based attention needs the output projection: call model.attention.install first")
    B, H, T, d = value.shape
    w = proj.weight.view(proj.weight.shape[0], H, d).to(torch.float32)  # [D, H, d]
    # ||v W_h^T||^2 = v (W_h^T W_h) v^T: a d x d Gram matrix per head instead of the [B, H, T, D] product,
    # D/d (12x for BERT) fewer multiplications and no tensor larger than the values
    gram = torch.einsum("ehd,ehk->hdk", w, w)  # [H, d, d]
    v = value.to(torch.float32)
    sq = ((v @ gram[None]) * v).sum(-1)
    return sq.clamp_min(0).sqrt().to(value.dtype)


def output_projection(model: torch.nn.Module, self_attention: torch.nn.Module) -> torch.nn.Linear:
    """The linear layer W_O that maps the concatenated head outputs of ``self_attention`` back to the hidden size.

    DistilBERT keeps it on the attention module (``out_lin``); BERT, RoBERTa and ELECTRA on the sibling
    ``output.dense`` of the parent ``*Attention`` module.
    """
    if isinstance(getattr(self_attention, "out_lin", None), torch.nn.Linear):
        return self_attention.out_lin
    for parent in model.modules():
        if getattr(parent, "self", None) is self_attention and isinstance(getattr(getattr(parent, "output", None), "dense", None), torch.nn.Linear):
            return parent.output.dense
    raise RuntimeError(f"no output projection found for {type(self_attention).__name__}")


def self_attention_modules(model: torch.nn.Module) -> list[torch.nn.Module]:
    """The self-attention modules of an encoder, in layer order (cross-attention excluded)."""
    return [
        m
        for m in model.modules()
        if type(m).__name__.endswith("SelfAttention") and "Cross" not in type(m).__name__
    ]


def register() -> None:
    """Register our attention and mask functions under ``ATTN_IMPLEMENTATION`` (idempotent)."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, eager_mask

    AttentionInterface.register(ATTN_IMPLEMENTATION, attention_function)
    AttentionMaskInterface.register(ATTN_IMPLEMENTATION, eager_mask)


def install(model: torch.nn.Module, n_layers: int) -> None:
    """Tag each self-attention module with its layer index so the function knows where it is.

    DistilBERT's attention has no ``layer_idx``; tagging by module order works for every family.
    """
    mods = self_attention_modules(model)
    if len(mods) != n_layers:
        raise RuntimeError(f"found {len(mods)} self-attention modules for {n_layers} layers")
    for i, m in enumerate(mods):
        setattr(m, _LAYER_ATTR, i)
        # a plain attribute, not a submodule: registering it would duplicate the parameters in state_dict
        object.__setattr__(m, _OUT_ATTR, output_projection(model, m))


def forward_with_attention(model: torch.nn.Module, batch: dict[str, torch.Tensor], n_layers: int, intervention: Intervention | None = None) -> tuple[Any, torch.Tensor]:
    """Run one batch and return (model output, probabilities [B, layers, heads, T, T])."""
    out, probs, _ = forward_with_norms(model, batch, n_layers, intervention, norms=False)
    return out, probs


def forward_with_norms(model: torch.nn.Module, batch: dict[str, torch.Tensor], n_layers: int, intervention: Intervention | None = None,
                       *, norms: bool = True) -> tuple[Any, torch.Tensor, torch.Tensor | None]:
    """One forward pass -> (model output, weights [B, L, H, T, T], norms ||alpha f(x)|| [B, L, H, T, T] or None).

    Padded keys have weight 0 and therefore norm 0; padded query rows are garbage, as for the weights.
    """
    iv = intervention or Intervention()
    iv.capture = True
    iv.captured = {}
    iv.capture_norms = norms
    iv.captured_norms = {}
    try:
        with torch.inference_mode(), intervene(iv):
            out = model(**batch)
    finally:
        iv.capture_norms = False
    if len(iv.captured) != n_layers:
        raise RuntimeError(f"captured attention of {len(iv.captured)} layers, expected {n_layers}")
    probs = torch.stack([iv.captured[i] for i in range(n_layers)], dim=1)
    norm_maps = torch.stack([iv.captured_norms[i] for i in range(n_layers)], dim=1) if norms else None
    iv.captured_norms = {}
    return out, probs, norm_maps


def logits_for(lm: Any, batches: list[tuple[list[int], dict[str, Any]]], n: int, intervention: Any = None, *, progress: ProgressFactory = silent, desc: str = "evaluate") -> np.ndarray:
    """Logits [n, num_labels] in example order, under ``intervention`` if given (evaluate and the naive sweep share it)."""
    out = np.zeros((n, lm.model.config.num_labels), dtype=np.float32)
    lm.model.eval()  # no dropout: a model fresh from training is still in train mode
    with torch.inference_mode(), progress(n, desc) as advance:
        for idx, batch in batches:
            if intervention is not None:
                with intervene(intervention):
                    logits = lm.model(**batch).logits
            else:
                logits = lm.model(**batch).logits
            out[idx] = logits.float().cpu().numpy()
            advance(len(idx))
    return out


def forward_streaming(model: torch.nn.Module, batch: dict[str, torch.Tensor], n_layers: int,
                      on_probs: Callable[[int, torch.Tensor, torch.Tensor], None]) -> Any:
    """Run one batch, handing each layer's probabilities [B, H, T, T] to ``on_probs`` instead of stacking them."""
    seen: list[int] = []

    def consume(layer: int, probs: torch.Tensor, real: torch.Tensor) -> None:
        seen.append(layer)
        on_probs(layer, probs, real)

    with torch.inference_mode(), intervene(Intervention(on_probs=consume)):
        out = model(**batch)
    if sorted(seen) != list(range(n_layers)):
        raise RuntimeError(f"saw attention of layers {sorted(seen)}, expected {n_layers} layers")
    return out
