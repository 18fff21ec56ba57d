"""Shared fixtures: tiny models built from configs, and small stores extracted once per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"

FAMILIES = ("bert", "roberta", "distilbert", "electra")
# families added by capability (issue 25): "ernie" is named nowhere in bertsecrets_cli, and works because its
# attention goes through transformers' attention interface
NEW_FAMILIES = ("xlm-roberta", "camembert", "albert", "modernbert", "deberta-v2", "mpnet", "ernie")
ALL_FAMILIES = FAMILIES + NEW_FAMILIES


def tiny_config(family: str, vocab_size: int, pad_token_id: int, num_labels: int = 2, **special_ids: int):
    """A 2-layer, 4-head, hidden-32 config of ``family`` (DeBERTa with both relative-position terms,
    ModernBERT with one local sliding-window layer of half-width 2 and one global layer)."""
    from transformers import AutoConfig

    dims = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64)
    common = dict(vocab_size=vocab_size, max_position_embeddings=256, num_labels=num_labels, pad_token_id=pad_token_id, **special_ids)
    extra: dict = {
        "roberta": dict(type_vocab_size=1), "xlm-roberta": dict(type_vocab_size=1), "camembert": dict(type_vocab_size=1),
        "electra": dict(embedding_size=16), "albert": dict(embedding_size=16),
        "distilbert": dict(dim=32, n_layers=2, n_heads=4, hidden_dim=64),
        "modernbert": dict(global_attn_every_n_layers=2, local_attention=4, layer_types=None),
        "deberta-v2": dict(relative_attention=True, pos_att_type=["c2p", "p2c"], position_buckets=16, max_relative_positions=32, type_vocab_size=0),
    }.get(family, {})
    if family == "distilbert":
        return AutoConfig.for_model(family, **extra, **common)
    return AutoConfig.for_model(family, **dims, **extra, **common)


def build_tiny_model(folder: Path, family: str = "bert", *, classifier: bool = False, num_labels: int = 2, seed: int = 0, tokenizer=None) -> Path:
    """Save a 2-layer, 4-head model of ``family`` with ``tokenizer`` (default: the embedded model's WordPiece)."""
    import torch
    from transformers import AutoModel, AutoModelForSequenceClassification, AutoTokenizer

    from bertsecrets_cli.model.load import embedded_model_dir

    tok = tokenizer if tokenizer is not None else AutoTokenizer.from_pretrained(embedded_model_dir())
    ids = {k: getattr(tok, k) for k in ("bos_token_id", "eos_token_id", "cls_token_id", "sep_token_id") if getattr(tok, k, None) is not None}
    cfg = tiny_config(family, len(tok), tok.pad_token_id, num_labels, **ids)
    torch.manual_seed(seed)
    model = (AutoModelForSequenceClassification if classifier else AutoModel).from_config(cfg)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_model_factory(tmp_path_factory: pytest.TempPathFactory):
    cache: dict[tuple, Path] = {}

    def make(family: str = "bert", classifier: bool = False, num_labels: int = 2) -> Path:
        key = (family, classifier, num_labels)
        if key not in cache:
            cache[key] = build_tiny_model(tmp_path_factory.mktemp(f"tiny-{family}"), family, classifier=classifier, num_labels=num_labels)
        return cache[key]

    return make


@pytest.fixture(scope="session")
def demo_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """24 demo sst2 examples through the embedded model: a real, small attention store."""
    from bertsecrets_cli.jobs.extract import DataOptions, ExtractOptions, run_extract

    out = tmp_path_factory.mktemp("stores") / "demo.h5"
    run_extract(ExtractOptions(data=DataOptions(task="sst2", limit=24), device="cpu", quiet=True), out, command="test")
    return out


@pytest.fixture(scope="session")
def demo_pair_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """16 demo sentence-pair (mrpc) examples: two segments, for block patterns."""
    from bertsecrets_cli.jobs.extract import DataOptions, ExtractOptions, run_extract

    out = tmp_path_factory.mktemp("stores") / "pair.h5"
    run_extract(ExtractOptions(data=DataOptions(task="mrpc", limit=16), device="cpu", quiet=True), out, command="test")
    return out
