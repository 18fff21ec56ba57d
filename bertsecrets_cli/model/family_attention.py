"""Adapters for families whose attention modules compute attention themselves (DeBERTa-v2/v3, MPNet).

They never call transformers' attention interface: their relative-position terms (DeBERTa's
disentangled content-to-position and position-to-content scores, MPNet's bucketed position bias) are
added to the scores inside the module. Each adapter replaces the module's ``forward`` by a copy of
transformers' own (``models/deberta_v2/modeling_deberta_v2.py: DisentangledSelfAttention.forward``,
``models/mpnet/modeling_mpnet.py: MPNetSelfAttention.forward``, transformers 5.25) that hands the
post-softmax probabilities and the head outputs to ``attention.edit_probs`` / ``edit_outputs``, the
same edits as for every other family. The copies run the same operations in the same order, so with
no intervention active the maps and hidden states equal the family's eager output bit for bit
(tests/test_model.py: the parity test runs for these families too).
"""

from __future__ import annotations

import math
import types
from typing import Any

import torch

from bertsecrets_cli.model import attention as A


def _deberta_v2_forward(self: Any, hidden_states: Any, attention_mask: Any, output_attentions: bool = False, query_states: Any = None,
                        relative_pos: Any = None, rel_embeddings: Any = None) -> tuple[Any, Any]:
    from transformers.models.deberta_v2.modeling_deberta_v2 import scaled_size_sqrt

    if query_states is None:
        query_states = hidden_states
    query_layer = self.transpose_for_scores(self.query_proj(query_states), self.num_attention_heads)
    key_layer = self.transpose_for_scores(self.key_proj(hidden_states), self.num_attention_heads)
    value_layer = self.transpose_for_scores(self.value_proj(hidden_states), self.num_attention_heads)

    rel_att = None
    scale_factor = 1
    if "c2p" in self.pos_att_type:
        scale_factor += 1
    if "p2c" in self.pos_att_type:
        scale_factor += 1
    scale = scaled_size_sqrt(query_layer, scale_factor)
    attention_scores = torch.bmm(query_layer, key_layer.transpose(-1, -2) / scale.to(dtype=query_layer.dtype))
    if self.relative_attention:
        rel_embeddings = self.pos_dropout(rel_embeddings)
        rel_att = self.disentangled_attention_bias(query_layer, key_layer, relative_pos, rel_embeddings, scale_factor)
    if rel_att is not None:
        attention_scores = attention_scores + rel_att
    attention_scores = attention_scores.view(-1, self.num_attention_heads, attention_scores.size(-2), attention_scores.size(-1))

    attention_mask = attention_mask.bool()  # [B, 1, T, T], True = attend (query and key both real)
    attention_scores = attention_scores.masked_fill(~(attention_mask), torch.finfo(query_layer.dtype).min)
    attention_probs = torch.nn.functional.softmax(attention_scores, dim=-1)
    attention_probs = self.dropout(attention_probs)

    B, H, Tq, Tk = attention_probs.shape
    layer = A._next_layer(self, attention_mask, B, Tk, attention_probs.device)
    iv = A._ACTIVE.get()
    edit = None
    if iv is not None and layer is not None:
        attention_probs, edit = A.edit_probs(iv, self, layer, attention_probs, value_layer.view(B, H, Tk, -1), attention_mask)
    context_layer = torch.bmm(attention_probs.view(-1, attention_probs.size(-2), attention_probs.size(-1)), value_layer)
    context_layer = context_layer.view(-1, self.num_attention_heads, context_layer.size(-2), context_layer.size(-1))
    if edit is not None:
        context_layer = A.edit_outputs(iv, context_layer, edit)
    context_layer = context_layer.permute(0, 2, 1, 3).contiguous()
    new_context_layer_shape = context_layer.size()[:-2] + (-1,)
    context_layer = context_layer.view(new_context_layer_shape)
    if not output_attentions:
        return (context_layer, None)
    return (context_layer, attention_probs)


def _mpnet_forward(self: Any, hidden_states: Any, attention_mask: Any = None, position_bias: Any = None, output_attentions: bool = False,
                   **kwargs: Any) -> tuple[Any, ...]:
    input_shape = hidden_states.shape[:-1]
    hidden_shape = (*input_shape, -1, self.attention_head_size)
    q = self.q(hidden_states).view(hidden_shape).transpose(1, 2)
    k = self.k(hidden_states).view(hidden_shape).transpose(1, 2)
    v = self.v(hidden_states).view(hidden_shape).transpose(1, 2)

    attention_scores = torch.matmul(q, k.transpose(-1, -2))
    attention_scores = attention_scores / math.sqrt(self.attention_head_size)
    if position_bias is not None:
        attention_scores += position_bias
    if attention_mask is not None:
        attention_scores = attention_scores + attention_mask  # additive [B, 1, 1, T]
    attention_probs = torch.nn.functional.softmax(attention_scores, dim=-1)
    attention_probs = self.dropout(attention_probs)

    B, _, _, Tk = attention_probs.shape
    layer = A._next_layer(self, attention_mask, B, Tk, attention_probs.device)
    iv = A._ACTIVE.get()
    edit = None
    if iv is not None and layer is not None:
        attention_probs, edit = A.edit_probs(iv, self, layer, attention_probs, v, attention_mask)
    c = torch.matmul(attention_probs, v)
    if edit is not None:
        c = A.edit_outputs(iv, c, edit)
    c = c.permute(0, 2, 1, 3).contiguous()
    new_c_shape = c.size()[:-2] + (self.all_head_size,)
    c = c.view(*new_c_shape)
    o = self.o(c)
    return (o, attention_probs) if output_attentions else (o,)


def _adapters() -> dict[type, Any]:
    """Exact module classes -> their adapted forward (a subclass may compute something else: no adapter)."""
    out: dict[type, Any] = {}
    try:
        from transformers.models.deberta_v2.modeling_deberta_v2 import DisentangledSelfAttention

        out[DisentangledSelfAttention] = _deberta_v2_forward
    except ImportError:  # pragma: no cover - a transformers without the family
        pass
    try:
        from transformers.models.mpnet.modeling_mpnet import MPNetSelfAttention

        out[MPNetSelfAttention] = _mpnet_forward
    except ImportError:  # pragma: no cover
        pass
    return out


def install_adapters(model: torch.nn.Module) -> int:
    """Give every attention module of a family with an adapter our forward; -> how many were adapted."""
    adapters = _adapters()
    n = 0
    for m in model.modules():
        fn = adapters.get(type(m))
        if fn is not None:
            m.forward = types.MethodType(fn, m)
            n += 1
    return n
