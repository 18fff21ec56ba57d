"""Shared fixtures: tiny models built from configs, and small stores extracted once per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"

FAMILIES = ("bert", "roberta", "distilbert", "electra")


def build_tiny_model(folder: Path, family: str = "bert", *, classifier: bool = False, num_labels: int = 2, seed: int = 0) -> Path:
    """Save a 2-layer, 4-head model of ``family`` with the embedded model's WordPiece tokenizer."""
    import torch
    from transformers import AutoModel, AutoModelForSequenceClassification, AutoTokenizer, BertConfig, DistilBertConfig, ElectraConfig, RobertaConfig

    from bertsecrets_cli.model.load import embedded_model_dir

    tok = AutoTokenizer.from_pretrained(embedded_model_dir())
    common = dict(vocab_size=tok.vocab_size, max_position_embeddings=256, num_labels=num_labels)
    if family == "bert":
        cfg = BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64, **common)
    elif family == "roberta":
        cfg = RobertaConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64, pad_token_id=tok.pad_token_id, type_vocab_size=1, **common)
    elif family == "electra":
        cfg = ElectraConfig(embedding_size=16, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64, **common)
    elif family == "distilbert":
        cfg = DistilBertConfig(dim=32, n_layers=2, n_heads=4, hidden_dim=64, pad_token_id=tok.pad_token_id, **common)
    else:
        raise ValueError(family)
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
