"""The fast ablation engine: many head/layer interventions evaluated without one full forward each.

The naive way to measure 78 variants (every head and every layer of a 6x12 model) runs 78 full
evaluations. Three facts make most of that work redundant:

* layers below the first edited layer compute exactly what the unedited model computes, so their
  inputs are captured once per batch (forward pre-hooks during the baseline pass) and reused;
* the variants that start at the same layer share that layer's query/key/value projections and
  attention probabilities; only the edited heads' context vectors differ, so the batch is expanded
  variant-fold just before the output projection and every variant continues as its own rows;
* a classifier that reads only the first token ([CLS] / <s>) needs the last layer only for that
  query: keys and values for all tokens, but one query row, one output projection, one FFN row.

The per-layer arithmetic below mirrors ``model.attention.attention_function`` (scores, additive
mask, softmax, the same uniform/zero/mean edits) so results agree with the naive path to float
rounding (measured max |logit difference| 2e-5 on MiniLM; the tests require <= 1e-4 for BERT,
RoBERTa, ELECTRA, DistilBERT, XLM-R, CamemBERT and ERNIE). Which models it runs is decided by their
structure (BERT's or DistilBERT's layer stack under a first-token classifier), not their name; other
families (ALBERT, ModernBERT, DeBERTa, MPNet), and any model whose first batch the hand-run layers do
not reproduce, fall back to the naive loop with a note.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from bertsecrets_cli.model.hooks import ProgressFactory, silent

# layer -> {head -> mode}, 0-based: one variant's (or the base's) disabled heads
Modes = dict[int, dict[int, str]]
# one full evaluation under an intervention: (lm, batches, n, intervention) -> [n, C] per example
Evaluate = Callable[[Any, list, int, Any], np.ndarray]
# one batch's loss for the importance gradient: (logits, example indices, batch) -> (summed loss, items), None to skip
BatchLoss = Callable[[Any, list[int], dict[str, Any]], "tuple[Any, int] | None"]

# expanded rows x tokens per step; bounds the memory of the variant-fold batch
DEFAULT_TOKEN_BUDGET = 1 << 16
# the engine's first batch must reproduce the model's own logits this closely (relative to the
# largest logit, at least 1), or we fall back to the naive loop
SELF_CHECK_TOL = 1e-4


def merge_modes(base: Modes | None, extra: Modes | None) -> Modes:
    """``base`` with ``extra``'s heads added (``extra`` wins where both name a head)."""
    out: Modes = {l: dict(h) for l, h in (base or {}).items()}
    for l, heads in (extra or {}).items():
        out.setdefault(l, {}).update(heads)
    return {l: h for l, h in out.items() if h}


@dataclass
class _Adapter:
    """How to run one layer of a family by hand: q/k/v projections, the rest of the layer, the head."""

    layers: list[Any]
    n_heads: int
    head_dim: int
    project: Callable[[Any, Any], Any]  # (layer index, Linear name) -> Linear
    post: Callable[[int, Any, Any], Any]  # (layer, context [N, Tq, D], layer input rows [N, Tq, D]) -> layer output
    head: Callable[[Any], Any]  # last hidden [N, Tq>=1, D] -> logits [N, C]
    scaling: list[float]


def _bert_like_layers(base: Any) -> bool:
    """The encoder is BERT's layer stack: ``encoder.layer[i]`` with ``attention.self.{query,key,value}``,
    ``attention.output``, ``intermediate`` and ``output`` (BERT, RoBERTa, ELECTRA, XLM-R, CamemBERT, ERNIE, ...)."""
    import torch

    layers = getattr(getattr(base, "encoder", None), "layer", None)
    if not layers:
        return False
    for layer in layers:
        sa = getattr(getattr(layer, "attention", None), "self", None)
        if sa is None or not all(isinstance(getattr(sa, n, None), torch.nn.Linear) for n in ("query", "key", "value")):
            return False
        if not all(hasattr(x, n) for x, n in ((layer.attention, "output"), (layer, "intermediate"), (layer, "output"), (sa, "scaling"))):
            return False
    return True


def adapter_for(lm: Any) -> _Adapter | None:
    """A hand-run description of ``lm``'s classifier, or None when the fast path does not know it."""
    import torch

    model = lm.model
    cls = type(model).__name__
    base = getattr(model, "base_model", None)
    if cls.endswith("ForSequenceClassification") and _bert_like_layers(base):
        layers = list(base.encoder.layer)
        sa = [layer.attention.self for layer in layers]
        if any(getattr(layer, "is_decoder", False) for layer in layers):
            return None
        names = {"q": "query", "k": "key", "v": "value"}

        def post(i: int, ctx: Any, x: Any) -> Any:
            a = layers[i].attention.output(ctx, x)
            return layers[i].output(layers[i].intermediate(a), a)

        clf = getattr(model, "classifier", None)
        if getattr(base, "pooler", None) is not None and isinstance(clf, torch.nn.Linear) and hasattr(model, "dropout"):
            head = lambda h: model.classifier(model.dropout(base.pooler(h)))  # noqa: E731 - BERT/ERNIE: the pooler reads h[:, 0]
        elif clf is not None and isinstance(getattr(clf, "out_proj", None), torch.nn.Linear):
            head = lambda h: model.classifier(h)  # noqa: E731 - RoBERTa/XLM-R/ELECTRA heads read h[:, 0]
        else:
            return None
        return _Adapter(layers, sa[0].num_attention_heads, sa[0].attention_head_size,
                        lambda i, n: getattr(sa[i], names[n]), post, head, [float(s.scaling) for s in sa])
    if cls == "DistilBertForSequenceClassification":
        layers = list(base.transformer.layer)
        att = [layer.attention for layer in layers]
        names = {"q": "q_lin", "k": "k_lin", "v": "v_lin"}

        def post(i: int, ctx: Any, x: Any) -> Any:
            a = layers[i].sa_layer_norm(att[i].out_lin(ctx) + x)
            return layers[i].output_layer_norm(layers[i].ffn(a) + a)

        def head(h: Any) -> Any:
            return model.classifier(model.dropout(torch.relu(model.pre_classifier(h[:, 0]))))

        return _Adapter(layers, att[0].n_heads, att[0].attention_head_size, lambda i, n: getattr(att[i], names[n]),
                        post, head, [float(a.scaling) for a in att])
    return None


class _BatchRunner:
    """Everything about one batch: captured layer inputs, mask, real keys; runs variant groups."""

    def __init__(self, ad: _Adapter, inputs: list[Any], mask: Any, means: dict[tuple[int, int], Any] | None) -> None:
        from bertsecrets_cli.model.attention import key_is_real

        self.ad = ad
        self.inputs = inputs
        B, T, _ = inputs[0].shape
        self.B, self.T = B, T
        self.mask = mask  # additive [B, 1, T, T] or None, exactly as the model passed it
        self.real = key_is_real(mask, B, T, inputs[0].device)
        self.means = means or {}
        self.L = len(ad.layers)

    def _heads(self, x: Any, i: int, name: str, rows: int, tq: int) -> Any:
        return self.ad.project(i, name)(x).view(rows, tq, self.ad.n_heads, self.ad.head_dim).transpose(1, 2)

    def _attend(self, i: int, x: Any, mask: Any, tq: int) -> tuple[Any, Any]:
        """Context [N, H, tq, d] of layer i from its input x [N, T, D], and the values [N, H, T, d]."""
        import torch

        N, T = x.shape[0], x.shape[1]
        k = self._heads(x, i, "k", N, T)
        v = self._heads(x, i, "v", N, T)
        q = self._heads(x if tq == T else x[:, :tq], i, "q", N, tq)
        scores = torch.matmul(q, k.transpose(2, 3)) * self.ad.scaling[i]
        if mask is not None:
            scores = scores + mask[:, :, :tq, :]
        probs = torch.nn.functional.softmax(scores, dim=-1)
        return torch.matmul(probs, v), v

    @staticmethod
    def _uniform(v: Any, real: Any) -> Any:
        """[N, H, 1, d]: every head's output under 1/L attention over the real keys (their mean value).

        Computed as a weighted sum, not a matmul with an expanded uniform matrix: on CPU a batched
        matmul with a stride-0 operand was measured 10x slower than the whole rest of the layer.
        """
        w = real.to(v.dtype)
        w = w / w.sum(-1, keepdim=True).clamp_min(1)
        return (v * w[:, None, :, None]).sum(2, keepdim=True)

    def _edit(self, ctx: Any, v: Any, i: int, per_variant: list[dict[int, str]], real: Any, *, shared: bool = False) -> Any:
        """Apply each variant's modes at layer i to its block of B rows (one op when all agree).

        ``shared``: v and real are the B rows every block shares (the first edited layer).
        """
        if not any(per_variant):
            return ctx
        ctx = ctx.clone()
        B = self.B
        if not shared and len(per_variant) > 1 and all(m == per_variant[0] for m in per_variant):
            per_variant, B = [per_variant[0]], ctx.shape[0]
        uniform = self._uniform(v, real) if any("uniform" in m.values() for m in per_variant) else None
        for j, modes in enumerate(per_variant):
            rows = slice(j * B, (j + 1) * B)
            for h, mode in modes.items():
                if mode == "uniform":
                    ctx[rows, h] = uniform[:, h] if shared else uniform[rows, h]
                elif mode == "zero":
                    ctx[rows, h] = 0.0
                elif mode == "mean":
                    ctx[rows, h] = self.means[(i, h)].to(ctx.dtype)
                else:
                    raise ValueError(mode)
        return ctx

    @staticmethod
    def _merge_heads(ctx: Any) -> Any:
        N, H, tq, d = ctx.shape
        return ctx.transpose(1, 2).reshape(N, tq, H * d)

    def run_group(self, start: int, variants: list[Modes], base: Modes) -> Any:
        """Logits [V * B, C] (variant-major) of variants whose first edit beyond ``base`` is at ``start``."""
        V, L = len(variants), self.L
        last = L - 1
        full = [merge_modes(base, v) for v in variants]
        x = self.inputs[start]
        tq = 1 if start == last else self.T
        ctx, v = self._attend(start, x, self.mask, tq)
        ctx = self._edit(ctx, v, start, [base.get(start, {})], self.real)
        ctx = ctx.repeat(V, 1, 1, 1)
        extra = [{h: m for h, m in f.get(start, {}).items() if base.get(start, {}).get(h) != m} for f in full]
        ctx = self._edit(ctx, v, start, extra, self.real, shared=True)
        real = self.real.repeat(V, 1)
        mask = None if self.mask is None else self.mask.repeat(V, 1, 1, 1)
        hidden = self.ad.post(start, self._merge_heads(ctx), x[:, :tq].repeat(V, 1, 1))
        for i in range(start + 1, L):
            tq = 1 if i == last else self.T
            ctx, v = self._attend(i, hidden, mask, tq)
            ctx = self._edit(ctx, v, i, [f.get(i, {}) for f in full], real)
            hidden = self.ad.post(i, self._merge_heads(ctx), hidden[:, :tq])
        return self.ad.head(hidden)


def _capture_pass(lm: Any, batch: dict[str, Any], layers: list[Any], iv: Any) -> tuple[Any, list[Any], Any]:
    """Run the real model once; return (logits, input of every layer, the attention mask it passed)."""
    from bertsecrets_cli.model.attention import intervene

    seen: dict[int, Any] = {}
    mask: dict[str, Any] = {}

    def hook(i: int) -> Callable[..., None]:
        def pre(module: Any, args: tuple, kwargs: dict) -> None:
            seen[i] = args[0] if args else kwargs["hidden_states"]
            if i == 0:
                mask["m"] = args[1] if len(args) > 1 else kwargs.get("attention_mask")

        return pre

    handles = [layer.register_forward_pre_hook(hook(i), with_kwargs=True) for i, layer in enumerate(layers)]
    try:
        with intervene(iv):
            logits = lm.model(**batch).logits
    finally:
        for h in handles:
            h.remove()
    return logits, [seen[i] for i in range(len(layers))], mask.get("m")


def _first_edit_layer(v: Modes, base: Modes) -> int | None:
    layers = [l for l, heads in v.items() if any(base.get(l, {}).get(h) != m for h, m in heads.items())]
    return min(layers) if layers else None


@dataclass
class SweepOutput:
    base: np.ndarray  # [N, C] logits under ``base`` alone
    variants: np.ndarray  # [V, N, C]
    engine: str  # "fast" or "naive"
    note: str = ""


@dataclass
class SweepState:
    """How far a sweep got, so an interrupted one can continue: the first ``done`` units are finished.

    Units are batches for the fast engine (every variant of a batch is computed together) and variants
    for the naive one (each variant is one full evaluation). Every unit is computed independently of the
    others, so a resumed sweep gives exactly the logits of an uninterrupted one.
    """

    engine: str
    units: int
    done: int
    base: np.ndarray  # [N, C]
    variants: np.ndarray  # [V, N, C]

    @property
    def unit(self) -> str:
        return "batches" if self.engine == "fast" else "variants"


def fast_supported(lm: Any) -> tuple[bool, str]:
    """(usable, why not) for the fast engine on this model: decided by its structure (:func:`adapter_for`)."""
    if adapter_for(lm) is None:
        return False, (f"model type {lm.model_type} has no fast-sweep adapter ({type(lm.model).__name__} is not a first-token "
                       "sequence classifier over BERT's or DistilBERT's layer stack)")
    return True, ""


def sweep_logits(
    lm: Any,
    batches: list[tuple[list[int], dict[str, Any]]],
    n: int,
    variants: list[Modes],
    *,
    base: Modes | None = None,
    mean_outputs: dict[tuple[int, int], Any] | None = None,
    engine: str = "auto",
    token_budget: int = DEFAULT_TOKEN_BUDGET,
    progress: ProgressFactory = silent,
    desc: str = "ablate",
    stop: Any = None,
    state: SweepState | None = None,
    on_unit: Callable[[SweepState], None] | None = None,
    evaluate: Evaluate | None = None,
) -> SweepOutput:
    """Logits of the model under ``base`` and under ``base`` + each variant, for every example.

    ``engine``: "fast" (error if unsupported), "naive" (one full evaluation per variant, the
    reference), or "auto" (fast where supported, else naive with a note). ``stop``: an object with
    ``requested`` checked between units of work (graceful SIGTERM). ``state``: an interrupted sweep's
    progress to continue from (same variants, batches and engine); ``on_unit`` is called with the
    progress after every finished unit (the caller saves it now and then). ``evaluate``: what one full
    evaluation returns instead of the classifier's logits, [n, C] per example (ablate --metric loss: each
    window's summed next-token loss); it runs the naive loop, the fast engine knowing only classifier heads.
    """
    base = merge_modes(base, None)
    if evaluate is not None:
        return _naive(lm, batches, n, variants, base, mean_outputs, progress, desc, stop, "", state, on_unit, evaluate)
    lm.model.eval()  # no dropout: a model fresh from training is still in train mode
    ok, why = fast_supported(lm)
    if engine == "fast" and not ok:
        raise ValueError(why)
    if state is not None and state.engine == "naive":
        return _naive(lm, batches, n, variants, base, mean_outputs, progress, desc, stop, "", state, on_unit)
    if engine == "naive" or not ok:
        return _naive(lm, batches, n, variants, base, mean_outputs, progress, desc, stop, "" if engine == "naive" else f"naive loop: {why}", None, on_unit)
    out = _fast(lm, batches, n, variants, base, mean_outputs, token_budget, progress, desc, stop, state, on_unit)
    if out is None:
        return _naive(lm, batches, n, variants, base, mean_outputs, progress, desc, stop,
                      "naive loop: the fast engine did not reproduce this model's logits on the first batch", None, on_unit)
    return out


def _check_stop(stop: Any) -> None:
    if stop is not None and stop.requested:
        from bertsecrets_cli.errors import Interrupted

        raise Interrupted(f"stopped by {stop.signal}")


def _naive(lm: Any, batches: list, n: int, variants: list[Modes], base: Modes, means: Any, progress: ProgressFactory, desc: str, stop: Any, note: str,
           state: SweepState | None, on_unit: Callable[[SweepState], None] | None, evaluate: Evaluate | None = None) -> SweepOutput:
    from bertsecrets_cli.model.attention import Intervention, logits_for

    def iv(modes: Modes) -> Any:
        return Intervention(head_modes=modes, mean_outputs=dict(means or {}))

    logits_for = evaluate or logits_for
    if state is None:
        first = logits_for(lm, batches, n, iv(base))
        state = SweepState("naive", len(variants), 0, first, np.zeros((len(variants), *first.shape), dtype=first.dtype))
    with progress(len(variants), f"{desc} (naive)") as advance:
        advance(state.done)
        for j in range(state.done, len(variants)):
            _check_stop(stop)
            full = merge_modes(base, variants[j])
            state.variants[j] = state.base if full == base else logits_for(lm, batches, n, iv(full))
            state.done = j + 1
            if on_unit is not None:
                on_unit(state)
            advance(1)
    return SweepOutput(state.base, state.variants, "naive", note)


def _fast(lm: Any, batches: list, n: int, variants: list[Modes], base: Modes, means: Any, token_budget: int,
          progress: ProgressFactory, desc: str, stop: Any, state: SweepState | None, on_unit: Callable[[SweepState], None] | None) -> SweepOutput | None:
    import torch

    from bertsecrets_cli.model.attention import Intervention

    ad = adapter_for(lm)
    C = lm.model.config.num_labels
    if state is None:
        state = SweepState("fast", len(batches), 0, np.zeros((n, C), dtype=np.float32), np.zeros((len(variants), n, C), dtype=np.float32))
    base_logits, out = state.base, state.variants
    groups: dict[int, list[int]] = {}
    same_as_base: list[int] = []
    for j, v in enumerate(variants):
        s = _first_edit_layer(v, base)
        (same_as_base if s is None else groups.setdefault(s, [])).append(j)
    iv = Intervention(head_modes=base, mean_outputs=dict(means or {}))
    with torch.inference_mode(), progress(n, desc) as advance:
        advance(sum(len(idx) for idx, _ in batches[: state.done]))
        for b in range(state.done, len(batches)):
            idx, batch = batches[b]
            _check_stop(stop)
            logits, inputs, mask = _capture_pass(lm, batch, ad.layers, iv)
            runner = _BatchRunner(ad, inputs, mask, means)
            if b == 0 and not _self_check(runner, base, logits):  # a resumed sweep passed it before
                return None
            base_logits[idx] = logits.float().cpu().numpy()
            for j in same_as_base:
                out[j, idx] = base_logits[idx]
            per_step = max(1, token_budget // max(1, runner.B * runner.T))
            for start in sorted(groups):
                members = groups[start]
                for c in range(0, len(members), per_step):
                    chunk = members[c : c + per_step]
                    res = runner.run_group(start, [variants[j] for j in chunk], base).float().cpu().numpy()
                    for k, j in enumerate(chunk):
                        out[j, idx] = res[k * runner.B : (k + 1) * runner.B]
            state.done = b + 1
            if on_unit is not None:
                on_unit(state)
            advance(len(idx))
    return SweepOutput(base_logits, out, "fast")


def _self_check(runner: _BatchRunner, base: Modes, logits: Any) -> bool:
    """Rerun the whole first batch by hand from layer 0: it must give the model's own logits."""
    mine = runner.run_group(0, [{}], base).float()
    scale = max(1.0, float(logits.float().abs().max().item()))
    return bool((mine - logits.float()).abs().max().item() <= SELF_CHECK_TOL * scale)


def collect_mean_outputs(lm: Any, batches: list[tuple[list[int], dict[str, Any]]], *, progress: ProgressFactory = silent) -> dict[tuple[int, int], Any]:
    """Each head's output vector averaged over every real token of the evaluation data (mode "mean")."""
    import torch

    from bertsecrets_cli.model.attention import Intervention, intervene

    sums: dict[int, Any] = {}
    count: dict[int, float] = {}

    def collect(layer: int, out: Any, real: Any) -> None:
        w = real.to(out.dtype)[:, None, :, None]  # queries are the same tokens as keys
        s = (out * w).sum(dim=(0, 2)).double()
        sums[layer] = s if layer not in sums else sums[layer] + s
        count[layer] = count.get(layer, 0.0) + float(real.sum().item())

    n = sum(len(i) for i, _ in batches)
    with torch.inference_mode(), intervene(Intervention(on_head_output=collect)), progress(n, "mean head outputs") as advance:
        for idx, batch in batches:
            lm.model(**batch)
            advance(len(idx))
    return {(l, h): (sums[l][h] / max(count[l], 1.0)).float() for l in sums for h in range(sums[l].shape[0])}


def classification_loss(labels: np.ndarray, is_regression: bool) -> BatchLoss:
    """A classifier's summed task loss over a batch's labelled examples (cross-entropy, or squared error)."""
    import torch

    def loss(logits: Any, idx: list[int], batch: dict[str, Any]) -> tuple[Any, int] | None:
        y = labels[idx]
        keep = ~np.isnan(y)
        if not keep.any():
            return None
        logits = logits[torch.from_numpy(keep).to(logits.device)]
        if is_regression:
            return torch.nn.functional.mse_loss(logits[:, 0], torch.tensor(y[keep], dtype=logits.dtype, device=logits.device), reduction="sum"), int(keep.sum())
        return torch.nn.functional.cross_entropy(logits, torch.tensor(y[keep].astype(np.int64), device=logits.device), reduction="sum"), int(keep.sum())

    return loss


def head_gradients(lm: Any, batches: list[tuple[list[int], dict[str, Any]]], loss_of: BatchLoss, *, progress: ProgressFactory = silent) -> np.ndarray:
    """Michel et al.'s raw head importance: mean over batches of |d loss / d gate| at gates = 1, [L, H].

    The gate multiplies each head's output (``Intervention.gates``). As in Michel et al.'s code the
    absolute value is taken of each batch's summed-loss gradient, then divided by the number of items
    the losses summed over (labelled examples: :func:`classification_loss`; predicted tokens:
    ``model.lm_loss.next_token_loss``); normalise per layer with ``analysis.ablation.normalise_importance``.
    """
    import torch

    from bertsecrets_cli.model.attention import Intervention, intervene

    model = lm.model
    model.eval()
    gates = torch.ones(lm.n_layers, lm.n_heads, device=lm.device, requires_grad=True)
    total = torch.zeros(lm.n_layers, lm.n_heads, dtype=torch.float64, device=lm.device)
    used = 0
    params = [p for p in model.parameters() if p.requires_grad]
    for p in params:  # gradients for the gates only: no weight-gradient buffers
        p.requires_grad_(False)
    try:
        with progress(sum(len(i) for i, _ in batches), "head importance") as advance:
            for idx, batch in batches:
                with torch.enable_grad(), intervene(Intervention(gates=gates)):
                    got = loss_of(model(**batch).logits, idx, batch)
                    if got is not None and got[1] > 0:
                        (g,) = torch.autograd.grad(got[0], gates)
                        total += g.detach().abs().double()
                        used += got[1]
                advance(len(idx))
    finally:
        for p in params:
            p.requires_grad_(True)
    return (total / max(used, 1)).cpu().numpy()
