"""Shared fixtures: tiny models built from configs, and small stores extracted once per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"

# pytest-xdist (pyproject's addopts: -n auto) runs one worker per CPU: each worker, and every command it starts, then
# takes its share of the CPUs rather than one torch thread per core each (N workers x N threads oversubscribe the
# machine). A user's own OMP_NUM_THREADS wins.
if os.environ.get("PYTEST_XDIST_WORKER") and not os.environ.get("OMP_NUM_THREADS"):
    _cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    os.environ["OMP_NUM_THREADS"] = str(max(1, _cpus // int(os.environ.get("PYTEST_XDIST_WORKER_COUNT") or 1)))


@pytest.hookimpl(tryfirst=True)  # before xdist's own, which then turns distribution off (numprocesses 0)
def pytest_cmdline_main(config: pytest.Config) -> None:
    """One process, as without xdist, when the output is the point (-s: e.g. the README test's lists of what ran and
    what was skipped; workers' output is not shown), when a debugger is asked for (--pdb, which xdist refuses), or
    when the run is one test file (--dist loadfile gives it to one worker anyway: starting the others costs seconds)."""
    one_file = len(config.args) == 1 and Path(config.args[0].split("::")[0]).is_file()
    if getattr(config.option, "numprocesses", None) and (config.option.capture == "no" or config.option.usepdb or one_file):
        config.option.numprocesses = 0


# The files whose end-to-end runs take minutes, longest first (measured, --durations). The workers take files in
# collection order (addopts: --no-loadscope-reorder), so these start at once and the short files fill in around
# them; left at their alphabetical place, the README's 7 minutes could start last and double the wall time.
# Only the order changes; a stale entry costs time, never a test.
LONGEST_FILES = ("test_readme_commands.py", "test_kill_points.py", "test_extract_resume.py", "test_out_of_space.py", "test_notebook.py",
                 "test_reproduce.py", "test_determinism.py", "test_cnn.py", "test_finetune.py", "test_reproduce_kill.py")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get("PYTEST_XDIST_WORKER"):  # every worker collects, and must collect the same order
        rank = {name: i for i, name in enumerate(LONGEST_FILES)}
        items.sort(key=lambda item: rank.get(item.path.name, len(rank)))


FAMILIES = ("bert", "roberta", "distilbert", "electra")
# families added by capability (issue 25): "ernie" is named nowhere in bertsecrets_cli, and works because its
# attention goes through transformers' attention interface
NEW_FAMILIES = ("xlm-roberta", "camembert", "albert", "modernbert", "deberta-v2", "mpnet", "ernie")
ALL_FAMILIES = FAMILIES + NEW_FAMILIES
# causal decoder language models (issue 30): GPT-2 (absolute positions, Conv1D projections) and the Llama
# architecture (rotary positions, grouped-query attention: 4 query heads on 2 key-value heads)
DECODER_FAMILIES = ("gpt2", "llama", "qwen2", "qwen3", "mistral")


def tiny_config(family: str, vocab_size: int, pad_token_id: int, num_labels: int = 2, sizes: dict | None = None, **special_ids: int):
    """A 2-layer, 4-head, hidden-32 config of ``family`` (DeBERTa with both relative-position terms,
    ModernBERT with one local sliding-window layer of half-width 2 and one global layer); ``sizes`` overrides."""
    from transformers import AutoConfig

    dims = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64)
    common = dict(vocab_size=vocab_size, max_position_embeddings=256, num_labels=num_labels, pad_token_id=pad_token_id, **special_ids)
    extra: dict = {
        "roberta": dict(type_vocab_size=1), "xlm-roberta": dict(type_vocab_size=1), "camembert": dict(type_vocab_size=1),
        "electra": dict(embedding_size=16), "albert": dict(embedding_size=16),
        "distilbert": dict(dim=32, n_layers=2, n_heads=4, hidden_dim=64),
        "modernbert": dict(global_attn_every_n_layers=2, local_attention=4, layer_types=None),
        "deberta-v2": dict(relative_attention=True, pos_att_type=["c2p", "p2c"], position_buckets=16, max_relative_positions=32, type_vocab_size=0),
        "gpt2": dict(n_inner=64),
        "llama": dict(num_key_value_heads=2), "qwen2": dict(num_key_value_heads=2),
        "qwen3": dict(num_key_value_heads=2, head_dim=8), "mistral": dict(num_key_value_heads=2, sliding_window=None),
    }.get(family, {})
    if family == "distilbert":
        return AutoConfig.for_model(family, **{**extra, **(sizes or {})}, **common)
    return AutoConfig.for_model(family, **{**dims, **extra, **(sizes or {})}, **common)


# the tokenizer kind of each family's hub checkpoints (the families' own kinds, built offline by build_tokenizer)
FAMILY_TOKENIZERS = {
    "bert": ("wordpiece", "bert"), "electra": ("wordpiece", "bert"), "distilbert": ("wordpiece", "bert"), "ernie": ("wordpiece", "bert"),
    "mpnet": ("wordpiece", "bert"), "roberta": ("bytelevel-bpe", "roberta"), "modernbert": ("bytelevel-bpe", "bert"),
    "xlm-roberta": ("sentencepiece-unigram", "roberta"), "camembert": ("sentencepiece-bpe", "roberta"),
    "albert": ("sentencepiece-unigram", "bert"), "deberta-v2": ("sentencepiece-bpe", "bert"),
}
# decoders: GPT-2 and Qwen add no token (the first real token is the sink); Llama and Mistral add a BOS
DECODER_TOKENIZERS = {
    "gpt2": ("bytelevel-bpe", "gpt2"), "llama": ("bytelevel-bpe", "llama"), "qwen2": ("bytelevel-bpe", "gpt2"),
    "qwen3": ("bytelevel-bpe", "gpt2"), "mistral": ("bytelevel-bpe", "llama"),
}


def build_tokenizer(kind: str, style: str = "bert", vocab_size: int = 400):
    """A fast tokenizer of ``kind`` trained on the shipped demo texts with the ``tokenizers`` library (no download).

    kind: wordpiece (the embedded MiniLM's), bytelevel-bpe (RoBERTa/ModernBERT: 'Ġ' space marker),
    sentencepiece-unigram / sentencepiece-bpe (XLM-R, ALBERT / CamemBERT, DeBERTa-v3: '▁' marker).
    style: 'bert' ([CLS] a [SEP] b [SEP]) or 'roberta' (<s> a </s></s> b </s>); for decoders 'gpt2' (no
    token added, <|endoftext|> as bos/eos, no pad token) or 'llama' (<s> a, <s> a <s> b).
    """
    import json as _json

    from tokenizers import ByteLevelBPETokenizer, SentencePieceBPETokenizer, SentencePieceUnigramTokenizer, processors
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    from bertsecrets_cli.model.load import embedded_model_dir

    if kind == "wordpiece":
        return AutoTokenizer.from_pretrained(embedded_model_dir())
    demo = Path(__file__).resolve().parents[1] / "bertsecrets_cli" / "data" / "demo"
    corpus = []
    for name in ("single_train.jsonl", "pair_train.jsonl"):
        for line in (demo / name).read_text(encoding="utf-8").splitlines():
            row = _json.loads(line)
            corpus += [row["text_a"]] + ([row["text_b"]] if row.get("text_b") else [])
    if style in ("gpt2", "llama"):
        specials = ["<|endoftext|>"] if style == "gpt2" else ["<s>", "</s>"]
        raw = ByteLevelBPETokenizer(add_prefix_space=False, trim_offsets=True)
        raw.train_from_iterator(corpus, vocab_size=vocab_size, special_tokens=specials, show_progress=False)
        if style == "gpt2":
            return PreTrainedTokenizerFast(tokenizer_object=raw._tokenizer, bos_token=specials[0], eos_token=specials[0], unk_token=specials[0])
        bos = ("<s>", raw.token_to_id("<s>"))
        raw.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s>:1 $B:1", special_tokens=[bos])
        return PreTrainedTokenizerFast(tokenizer_object=raw._tokenizer, bos_token="<s>", eos_token="</s>")
    cls, sep, pad, unk, mask = ("[CLS]", "[SEP]", "[PAD]", "[UNK]", "[MASK]") if style == "bert" else ("<s>", "</s>", "<pad>", "<unk>", "<mask>")
    specials = [pad, unk, cls, sep, mask]
    if kind == "bytelevel-bpe":
        raw = ByteLevelBPETokenizer(add_prefix_space=False, trim_offsets=True)
        raw.train_from_iterator(corpus, vocab_size=vocab_size, special_tokens=specials, show_progress=False)
    elif kind == "sentencepiece-unigram":
        raw = SentencePieceUnigramTokenizer()
        raw.train_from_iterator(corpus, vocab_size=vocab_size, special_tokens=specials, unk_token=unk, show_progress=False)
    elif kind == "sentencepiece-bpe":
        raw = SentencePieceBPETokenizer(unk_token=unk)
        raw.train_from_iterator(corpus, vocab_size=vocab_size, special_tokens=specials, show_progress=False)
    else:
        raise ValueError(kind)
    ids = {t: raw.token_to_id(t) for t in specials}
    pair = f"{cls} $A {sep} $B:1 {sep}:1" if style == "bert" else f"{cls} $A {sep} {sep} $B:1 {sep}:1"
    raw.post_processor = processors.TemplateProcessing(single=f"{cls} $A {sep}", pair=pair, special_tokens=[(cls, ids[cls]), (sep, ids[sep])])
    tok = PreTrainedTokenizerFast(tokenizer_object=raw._tokenizer, cls_token=cls, sep_token=sep, pad_token=pad, unk_token=unk, mask_token=mask,
                                  **({"bos_token": cls, "eos_token": sep} if style == "roberta" else {}))
    return tok


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
