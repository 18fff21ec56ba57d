"""The one interception point: a registered attention function that captures and edits head attention.

transformers 5 dropped ``head_mask``; an encoder that routes attention through transformers' attention
interface (BERT, RoBERTa, ELECTRA, DistilBERT, XLM-R, CamemBERT, ALBERT, ModernBERT, ...) calls the
function registered under its ``attn_implementation`` name with
``(module, query, key, value, attention_mask, scaling=..., dropout=...)``; DeBERTa-v2 and MPNet reach
:func:`edit_probs` / :func:`edit_outputs` through their adapters (``model.family_attention``). Whether a
model qualifies is decided by :func:`install`'s probe forward pass, and layers are numbered by call
order. Ours computes eager attention and, while an :class:`Intervention` is active, can

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
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from bertsecrets_cli.errors import BertsecretsError
from bertsecrets_cli.model.hooks import ProgressFactory, silent

ATTN_IMPLEMENTATION = "bertsecrets"
MODES = ("uniform", "zero", "mean")

_ACTIVE: contextvars.ContextVar[Intervention | None] = contextvars.ContextVar("bertsecrets_intervention", default=None)
_OUT_ATTR = "_bertsecrets_output_projection"
_CALLS_ATTR = "_bertsecrets_calls"


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


def allowed_keys(attention_mask: torch.Tensor | None, batch: int, keys: int, device: torch.device) -> torch.Tensor:
    """[B, 1 or Tq, Tk] bool: which keys each query may attend to, from an additive (0 = attend) or boolean 4-D mask."""
    if attention_mask is None:
        return torch.ones(batch, 1, keys, dtype=torch.bool, device=device)
    m = attention_mask[:, 0]
    return m if m.dtype == torch.bool else m == 0


def key_is_real(attention_mask: torch.Tensor | None, batch: int, keys: int, device: torch.device) -> torch.Tensor:
    """[B, T] bool: which keys are real tokens, read off the 4-D mask.

    A padding mask is the same for every query row (or has one row); a sliding-window or pairwise mask
    is not, but every real token may attend to itself: its diagonal says which keys are real.
    """
    allowed = allowed_keys(attention_mask, batch, keys, device)
    if allowed.shape[1] == 1 or allowed.shape[1] != allowed.shape[2]:
        return allowed[:, 0]
    return torch.diagonal(allowed, dim1=1, dim2=2)


def uniform_probs(allowed: torch.Tensor, queries: int, dtype: torch.dtype) -> torch.Tensor:
    """[B, Tq, Tk] uniform distribution over the keys each query may attend to (real keys, inside its window).

    ``allowed`` is [B, Tk] (the same keys for every query) or [B, 1 or Tq, Tk] (from :func:`allowed_keys`).
    """
    if allowed.dim() == 2:
        allowed = allowed[:, None, :]
    w = allowed.to(dtype)
    w = w / w.sum(-1, keepdim=True).clamp_min(1)
    return w.expand(-1, queries, -1)


class _Calls:
    """How many attention calls the current forward pass of one model has made: the next call's layer.

    Layers are numbered by call order, not by module: ALBERT calls one shared module in every layer.
    A forward pre-hook on the model resets it.
    """

    __slots__ = ("n",)

    def __init__(self) -> None:
        self.n = 0


@dataclass
class _ProbeCall:
    module: torch.nn.Module
    allowed: torch.Tensor  # [B, 1 or Tq, Tk] bool
    causal: bool


_PROBE: contextvars.ContextVar[list[_ProbeCall] | None] = contextvars.ContextVar("bertsecrets_probe", default=None)


def _next_layer(module: torch.nn.Module, attention_mask: torch.Tensor | None, batch: int, keys: int, device: torch.device) -> int | None:
    """This call's layer index (None for a module :func:`install` did not find), recording it during the probe."""
    probe = _PROBE.get()
    if probe is not None:
        probe.append(_ProbeCall(module, allowed_keys(attention_mask, batch, keys, device).clone(), bool(getattr(module, "is_causal", False))))
    calls = getattr(module, _CALLS_ATTR, None)
    if calls is None:
        return None
    layer = calls.n
    calls.n += 1
    return layer


@dataclass
class _Edit:
    """What :func:`edit_probs` decided for one layer, for :func:`edit_outputs`."""

    layer: int
    real: torch.Tensor
    modes: dict[int, str]
    cloned: bool


def edit_probs(iv: Intervention, module: torch.nn.Module, layer: int, probs: torch.Tensor, value: torch.Tensor,
               attention_mask: torch.Tensor | None) -> tuple[torch.Tensor, _Edit]:
    """The intervention's edits and captures of one layer's probabilities [B, H, Tq, Tk] (values [B, H, Tk, d])."""
    batch, _, queries, keys = probs.shape
    real = key_is_real(attention_mask, batch, keys, probs.device)
    modes = iv.head_modes.get(layer, {})
    prob_edits = {h: m for h, m in modes.items() if m in ("uniform", "zero")}
    if prob_edits:
        probs = probs.clone()  # never edit softmax's saved output in place
        for h, mode in prob_edits.items():
            probs[:, h] = uniform_probs(allowed_keys(attention_mask, batch, keys, probs.device), queries, probs.dtype) if mode == "uniform" else 0.0
    if iv.capture:
        iv.captured[layer] = probs.detach()
    if iv.capture_norms:
        iv.captured_norms[layer] = (probs * transformed_value_norms(module, value)[:, :, None, :]).detach()
    if iv.on_probs is not None:
        iv.on_probs(layer, probs.detach(), real)
    return probs, _Edit(layer, real, modes, bool(prob_edits))


def edit_outputs(iv: Intervention, out: torch.Tensor, e: _Edit) -> torch.Tensor:
    """The intervention's edits of one layer's head outputs [B, H, Tq, d] (mean vectors, gates, the callback)."""
    for h, mode in e.modes.items():
        if mode == "mean":
            out = out.clone() if not e.cloned else out
            out[:, h] = iv.mean_outputs[(e.layer, h)].to(out.dtype)
    if iv.gates is not None:
        out = out * iv.gates[e.layer].to(out.dtype).view(1, -1, 1, 1)
    if iv.on_head_output is not None:
        iv.on_head_output(e.layer, out.detach(), e.real)
    return out


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
    key, value = shared_kv(query, key), shared_kv(query, value)
    # in place on matmul's fresh output: the same values bit for bit as transformers' ``* scaling`` and
    # ``+ mask``, without two more [B, H, T, T] tensors per layer (autograd keeps query and key, not this)
    scores = torch.matmul(query, key.transpose(2, 3)).mul_(scaling)
    if attention_mask is not None:
        scores = scores.add_(attention_mask)
    probs = torch.nn.functional.softmax(scores, dim=-1)
    probs = torch.nn.functional.dropout(probs, p=dropout, training=module.training)

    layer = _next_layer(module, attention_mask, probs.shape[0], probs.shape[-1], probs.device)
    iv = _ACTIVE.get()
    if iv is None or layer is None:
        out = torch.matmul(probs, value)
        return out.transpose(1, 2).contiguous(), probs
    probs, e = edit_probs(iv, module, layer, probs, value, attention_mask)
    out = edit_outputs(iv, torch.matmul(probs, value), e)  # [B, H, T, d]
    return out.transpose(1, 2).contiguous(), probs


def shared_kv(query: torch.Tensor, kv: torch.Tensor) -> torch.Tensor:
    """Keys or values [B, KVH, T, d] repeated for the query heads [B, H, T, d] (grouped-query attention).

    Query head h reads key-value head h // (H / KVH), as transformers' ``repeat_kv``: expand, then reshape.
    """
    heads, kv_heads = query.shape[1], kv.shape[1]
    if heads == kv_heads:
        return kv
    b, _, t, d = kv.shape
    return kv[:, :, None].expand(b, kv_heads, heads // kv_heads, t, d).reshape(b, heads, t, d)


def projection_weight(proj: torch.nn.Module) -> torch.Tensor:
    """W_O as [hidden, heads * head_dim]: a Linear's weight, or GPT-2's Conv1D weight (stored [in, out]) transposed."""
    return proj.weight if isinstance(proj, torch.nn.Linear) else proj.weight.T


def transformed_value_norms(module: torch.nn.Module, value: torch.Tensor) -> torch.Tensor:
    """[B, H, T] norms ||v_j^h W_O[:, h]^T|| of every token's value vector through its head's slice of W_O.

    ``value`` is [B, H, T, d] (b_V included); W_O is the output projection found by :func:`install`.
    """
    proj = getattr(module, _OUT_ATTR, None)
    if proj is None:
        from bertsecrets_cli.errors import ModelError

        raise ModelError(f"norm-based attention needs each head's output projection W_O, and none was found on {type(module).__name__}")
    B, H, T, d = value.shape
    weight = projection_weight(proj)
    w = weight.reshape(weight.shape[0], H, d).to(torch.float32)  # [D, H, d]
    # ||v W_h^T||^2 = v (W_h^T W_h) v^T: a d x d Gram matrix per head instead of the [B, H, T, D] product,
    # D/d (12x for BERT) fewer multiplications and no tensor larger than the values
    gram = torch.einsum("ehd,ehk->hdk", w, w)  # [H, d, d]
    v = value.to(torch.float32)
    sq = ((v @ gram[None]) * v).sum(-1)
    return sq.clamp_min(0).sqrt().to(value.dtype)


# where families keep the linear layer W_O applied to the concatenated head outputs, on the attention module itself
_OUT_NAMES = ("out_lin", "dense", "o", "Wo", "out_proj", "o_proj", "c_proj")


def _is_projection(m: Any) -> bool:
    from transformers.pytorch_utils import Conv1D

    return isinstance(m, (torch.nn.Linear, Conv1D))


def output_projection(model: torch.nn.Module, attention: torch.nn.Module) -> torch.nn.Module | None:
    """The linear layer W_O that maps the concatenated head outputs of ``attention`` back to the hidden size.

    DistilBERT (``out_lin``), ALBERT (``dense``), MPNet (``o``), ModernBERT (``Wo``), the Llama family
    (``o_proj``) and GPT-2 (``c_proj``, a Conv1D) keep it on the attention module; BERT, RoBERTa, ELECTRA and DeBERTa on the sibling ``output.dense`` of the parent
    module. None when neither is found: only the norm-based quantities need it.
    """
    for name in _OUT_NAMES:
        lin = getattr(attention, name, None)
        if _is_projection(lin):
            return lin
    for parent in model.modules():
        if getattr(parent, "self", None) is attention and isinstance(getattr(getattr(parent, "output", None), "dense", None), torch.nn.Linear):
            return parent.output.dense
    return None


def register() -> None:
    """Register our attention and mask functions under ``ATTN_IMPLEMENTATION`` (idempotent)."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, eager_mask

    AttentionInterface.register(ATTN_IMPLEMENTATION, attention_function)
    AttentionMaskInterface.register(ATTN_IMPLEMENTATION, eager_mask)


class NotInterceptable(Exception):
    """The model's attention cannot be captured and edited by bertsecrets: the message says what it lacks."""


@dataclass
class Installed:
    """What :func:`install` learnt from its probe forward pass."""

    windows: tuple[int, ...]  # per layer: the largest |query - key| a query may attend to, -1 for global attention
    norms: bool  # every layer's output projection W_O was found (norm-based quantities)
    causal: bool = False  # every layer attends only to earlier tokens and itself (a decoder language model)


def _probe(model: torch.nn.Module, length: int) -> list[_ProbeCall]:
    """One forward pass on two examples (the second padded) recording every attention call."""
    vocab = int(getattr(model.config, "vocab_size", 100) or 100)
    special = {getattr(model.config, k, None) for k in ("pad_token_id", "bos_token_id", "eos_token_id", "cls_token_id", "sep_token_id")}
    ids = [i for i in range(min(vocab, 1000)) if i not in special][5 : 5 + length]
    if len(ids) < length:
        ids = (ids * length)[:length]
    input_ids = torch.tensor([ids, ids])
    mask = torch.ones_like(input_ids)
    mask[1, length // 2 :] = 0
    pad = getattr(model.config, "pad_token_id", None)
    if pad is not None and 0 <= int(pad) < vocab:
        input_ids[1, length // 2 :] = int(pad)
    calls: list[_ProbeCall] = []
    token = _PROBE.set(calls)
    try:
        with torch.inference_mode():
            model(input_ids=input_ids, attention_mask=mask)
    except BertsecretsError:  # a SIGTERM/SIGINT during the probe (Interrupted, exit 75) is no verdict on the model
        raise
    except Exception as e:  # noqa: BLE001 - an encoder-decoder, or a model needing other inputs
        first = (str(e).splitlines() or [type(e).__name__])[0]
        raise NotInterceptable(f"a forward pass on input ids and an attention mask alone failed ({first}): not an encoder bertsecrets can run") from e
    finally:
        _PROBE.reset(token)
    return calls


def _is_causal(call: _ProbeCall, length: int) -> bool:
    """The call's module says it is causal, or its mask lets no query of the all-real example see a later key."""
    a = call.allowed[0].expand(length, length)
    return call.causal or (not bool(torch.triu(a, diagonal=1).any()) and not bool(a.all()))


def _window(allowed: torch.Tensor, length: int) -> int:
    """The largest |i - j| the all-real first example may attend to; -1 when every key is allowed
    (every key for a bidirectional layer; every earlier key and itself for a causal one)."""
    a = allowed[0].expand(length, length)
    full = torch.ones(length, length, dtype=torch.bool, device=a.device)
    if bool(a.all()) or torch.equal(a, torch.tril(full)):
        return -1
    i, j = torch.nonzero(a, as_tuple=True)
    return int((i - j).abs().max())


def install(model: torch.nn.Module, n_layers: int) -> Installed:
    """Find, by one probe forward pass, the modules whose attention bertsecrets computes, and number the calls.

    Support is decided by capability, not by the family's name: every layer's attention must reach
    :func:`attention_function` (through transformers' attention interface, or a family adapter that
    ``model.family_attention.install_adapters`` put in first), bidirectionally and with the padding mask. Layers are numbered by call
    order within a forward pass, so a module shared by several layers (ALBERT) is a different layer at
    each call. Raises :class:`NotInterceptable` with what the model lacks.
    """
    length = 8
    calls = _probe(model, length)
    windows_asked = [getattr(c.module, "sliding_window", None) for c in calls]
    if any(w for w in windows_asked):  # a longer probe, so that a local layer's window is seen whole
        length = min(int(getattr(model.config, "max_position_embeddings", 512) or 512), 2 * max(int(w) for w in windows_asked if w) + 4)
        calls = _probe(model, length)
    if not calls:
        names = sorted({type(m).__name__ for m in model.modules() if "Attention" in type(m).__name__}) or ["none found"]
        raise NotInterceptable(f"its attention modules ({', '.join(names)}) compute attention themselves, not through "
                               "transformers' attention interface, and bertsecrets has no adapter for them: their attention cannot be captured or edited")
    if len(calls) != n_layers:
        raise NotInterceptable(f"{len(calls)} attention calls per forward pass for {n_layers} layers: "
                               "some attention is computed outside transformers' attention interface (or is cross-attention)")
    causal = [_is_causal(c, length) for c in calls]
    if any(causal) and not all(causal):
        raise NotInterceptable("some layers attend only to earlier tokens and others in both directions: mixed causal and bidirectional layers are not supported")
    for c, is_causal in zip(calls, causal):
        if not is_causal and c.allowed.shape[1] == length and not torch.equal(c.allowed[0], c.allowed[0].T):
            raise NotInterceptable(f"{type(c.module).__name__}'s attention mask is neither bidirectional nor causal")
        if bool(c.allowed[1, :, length // 2 :].any()):
            raise NotInterceptable(f"the padding mask does not reach {type(c.module).__name__}: padded tokens would be attended to")
    counter = _Calls()

    def reset(*_: Any) -> None:
        counter.n = 0

    roots = {id(model): model, id(getattr(model, "base_model", model)): getattr(model, "base_model", model)}
    for root in roots.values():
        root.register_forward_pre_hook(reset)
    norms = True
    for c in calls:
        object.__setattr__(c.module, _CALLS_ATTR, counter)
        # a plain attribute, not a submodule: registering it would duplicate the parameters in state_dict
        proj = output_projection(model, c.module)
        norms = norms and proj is not None
        object.__setattr__(c.module, _OUT_ATTR, proj)
    return Installed(tuple(_window(c.allowed, length) for c in calls), norms, all(causal) and bool(calls))


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


def model_logits(model: torch.nn.Module, batch: dict[str, Any], intervention: Intervention | None = None) -> torch.Tensor:
    """One batch's logits, under ``intervention`` if given (classification and the language-model loss share it)."""
    with intervene(intervention) if intervention is not None else nullcontext():
        return model(**batch).logits


def logits_for(lm: Any, batches: list[tuple[list[int], dict[str, Any]]], n: int, intervention: Any = None, *, progress: ProgressFactory = silent, desc: str = "evaluate") -> np.ndarray:
    """Logits [n, num_labels] in example order, under ``intervention`` if given (evaluate and the naive sweep share it)."""
    out = np.zeros((n, lm.model.config.num_labels), dtype=np.float32)
    lm.model.eval()  # no dropout: a model fresh from training is still in train mode
    with torch.inference_mode(), progress(n, desc) as advance:
        for idx, batch in batches:
            out[idx] = model_logits(lm.model, batch, intervention).float().cpu().numpy()
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
