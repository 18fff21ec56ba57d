"""Word-level attention (Clark et al. 2019): the mean/sum rule, word grouping for any tokenizer, the words store."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers import covers, one_line_error
from typer.testing import CliRunner

from bertsecrets_cli.analysis.wordlevel import assign_pieces, example_units, word_attention, word_piece_matrix, word_spans
from bertsecrets_cli.cli.app import app

runner = CliRunner()
CORPUS = ["the unaffable farmer opened a bike shop", "an unbelievable story, told twice.", "farmers open shops behind the school"] * 20
TEXT = "the unaffable farmers, told"
WORDS = ["the", "unaffable", "farmers", ",", "told"]


def _grouped(offsets: list[tuple[int, int]], text: str) -> list[str]:
    """The words the pieces were assigned to, each once, in piece order."""
    spans = word_spans(text)
    a = assign_pieces(np.asarray(offsets), np.zeros(len(offsets), dtype=np.int8), spans, text)
    assert (a >= 0).all(), a
    out: list[str] = []
    for w in a.tolist():
        s, e = spans[w]
        if not out or out[-1] != text[s:e]:
            out.append(text[s:e])
    return out


def test_word_rows_are_the_mean_of_piece_rows_and_columns_the_sum() -> None:
    # [CLS] un ##aff ##able farmer [SEP]: the attention FROM the split word is the MEAN of its three piece rows
    # (Clark et al.'s released code used the first piece's row); the attention TO it is the SUM of its columns.
    toks = ["[CLS]", "un", "##aff", "##able", "farmer", "[SEP]"]
    offsets = np.array([[0, 0], [0, 2], [2, 5], [5, 9], [10, 16], [0, 0]])
    special = np.array([1, 0, 0, 0, 0, 2], dtype=np.int8)
    u = example_units(toks, offsets, special, np.zeros(6, dtype=np.int8), ("unaffable farmer", ""))
    assert u.texts == ["[CLS]", "unaffable", "farmer", "[SEP]"]
    rng = np.random.default_rng(0)
    att = rng.dirichlet(np.ones(6), size=(2, 3, 6))
    wa = word_attention(att, u.matrix)
    assert wa.shape == (2, 3, 4, 4)
    np.testing.assert_allclose(wa.sum(-1), 1.0, atol=1e-12)  # every word row is still a distribution
    split_row = att[..., 1:4, :].mean(-2)  # mean of the three pieces' rows
    np.testing.assert_allclose(wa[..., 1, 1], split_row[..., 1:4].sum(-1))  # ... summed over the attended pieces
    np.testing.assert_allclose(wa[..., 1, 2], split_row[..., 4])
    np.testing.assert_allclose(wa[..., 2, 1], att[..., 4, 1:4].sum(-1))  # an unsplit word's row: columns summed
    first_piece = att[..., 1, 4]  # the released code's value: differs from the paper's rule
    assert np.abs(first_piece - wa[..., 1, 2]).max() > 0.05


def test_existing_relations_api_uses_the_same_rule() -> None:
    from bertsecrets_cli.analysis import relations

    assert relations.word_attention is word_attention and relations.word_piece_matrix is word_piece_matrix


def test_word_spans_split_punctuation_unless_told_whitespace() -> None:
    assert [TEXT[s:e] for s, e in word_spans(TEXT)] == WORDS
    assert [TEXT[s:e] for s, e in word_spans(TEXT, "whitespace")] == ["the", "unaffable", "farmers,", "told"]
    assert word_spans("  ") == []
    with pytest.raises(ValueError):
        word_spans("x", "commas")


def test_wordpiece_pieces_group_into_words() -> None:
    from transformers import AutoTokenizer

    from bertsecrets_cli.model.load import embedded_model_dir

    tok = AutoTokenizer.from_pretrained(embedded_model_dir())
    enc = tok(TEXT, return_offsets_mapping=True, add_special_tokens=False)
    assert len(enc["input_ids"]) > len(WORDS)  # some word is split
    assert _grouped(enc["offset_mapping"], TEXT) == WORDS


@pytest.mark.parametrize("trim", [False, True])
def test_byte_level_bpe_with_space_marker_groups_into_words(trim: bool) -> None:
    from tokenizers import Tokenizer, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.train_from_iterator(CORPUS, trainers.BpeTrainer(vocab_size=300, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False))
    tok.post_processor = processors.ByteLevel(trim_offsets=trim)
    enc = tok.encode(TEXT)
    assert any(t.startswith("Ġ") for t in enc.tokens)
    assert _grouped(enc.offsets, TEXT) == WORDS


def test_sentencepiece_metaspace_and_lone_marker_pieces_group_into_words() -> None:
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tok = Tokenizer(models.Unigram())
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.train_from_iterator(CORPUS, trainers.UnigramTrainer(vocab_size=40, unk_token="<unk>", special_tokens=["<unk>"], show_progress=False))
    enc = tok.encode(TEXT)
    assert any(t.startswith("▁") and len(t) > 1 for t in enc.tokens)
    assert _grouped(enc.offsets, TEXT) == WORDS
    # a piece that is only the marker, over the space (22, 23) or empty (23, 23) as some tokenizers give it,
    # belongs to the word after it
    for lone in ((22, 23), (23, 23)):
        offsets = [(0, 3), (4, 13), (14, 21), (21, 22), lone, (23, 25), (25, 27)]
        a = assign_pieces(np.asarray(offsets), np.zeros(7, dtype=np.int8), word_spans(TEXT), TEXT)
        assert a.tolist() == [0, 1, 2, 3, 4, 4, 4]


def test_sentence_pairs_keep_segments_apart() -> None:
    toks = ["[CLS]", "a", "b", "[SEP]", "a", "[SEP]"]
    offsets = np.array([[0, 0], [0, 1], [2, 3], [0, 0], [0, 1], [0, 0]])
    special = np.array([1, 0, 0, 2, 0, 2], dtype=np.int8)
    types = np.array([0, 0, 0, 0, 1, 1], dtype=np.int8)
    u = example_units(toks, offsets, special, types, ("a b", "a"))
    assert u.texts == ["[CLS]", "a", "b", "[SEP]", "a", "[SEP]"]
    assert u.segment.tolist() == [0, 0, 0, 0, 1, 1] and u.assign.tolist() == [0, 1, 2, 3, 4, 5]


# ------------------------------------------------------------------------------------------ the words store


@covers("words", "--output")
def test_words_command_writes_word_maps_whose_rows_are_distributions(demo_pair_store: Path, tmp_path: Path) -> None:
    from bertsecrets_cli.store import open_store
    from bertsecrets_cli.store.words import word_maps, word_units

    out = tmp_path / "w.h5"
    res = runner.invoke(app, ["words", str(demo_pair_store), "--output", str(out), "-q"])
    assert res.exit_code == 0, res.stderr
    with open_store(out, kind="words") as st, open_store(demo_pair_store) as src:
        assert st.n_examples == src.n_examples and st.example_ids() == src.example_ids()
        assert st.provenance()["word_boundaries"] == "punctuation"
        for i in (0, st.n_examples - 1):
            u, m = word_units(st, i), word_maps(st, i)
            toks = src.tokens(i)
            assert m.shape == (st.n_layers, st.n_heads, len(u.text), len(u.text))
            np.testing.assert_allclose(m.sum(-1), 1.0, atol=2e-3)  # float16 maps in, float32 word maps out
            assert u.text.count("[SEP]") == 2 and u.text[0] == "[CLS]" and len(u.text) <= len(toks.text)
            # recomputed from the piece maps: the stored maps are the rule's, not a copy of the pieces
            units = example_units(toks.text, toks.offsets, toks.special, toks.type_ids,
                                  (st.strings("examples/text_a")[i], st.strings("examples/text_b")[i]))
            np.testing.assert_allclose(m, word_attention(src.attention(i), units.matrix), rtol=1e-5, atol=1e-6)


@covers("words", "--word-boundaries")
def test_word_boundaries_whitespace_keeps_punctuation_attached(demo_store: Path, tmp_path: Path) -> None:
    from bertsecrets_cli.store import open_store
    from bertsecrets_cli.store.words import word_units

    a, b = tmp_path / "p.h5", tmp_path / "w.h5"
    assert runner.invoke(app, ["words", str(demo_store), "-o", str(a), "-q"]).exit_code == 0
    res = runner.invoke(app, ["words", str(demo_store), "-o", str(b), "--word-boundaries", "whitespace", "-q"])
    assert res.exit_code == 0, res.stderr
    with open_store(a) as sa, open_store(b) as sb:
        assert sb.provenance()["word_boundaries"] == "whitespace"
        na = sum(len(word_units(sa, i).text) for i in range(sa.n_examples))
        nb = sum(len(word_units(sb, i).text) for i in range(sb.n_examples))
        assert nb < na  # "film." is one word, not two
        assert any(w.endswith((".", ",", "!")) and len(w) > 1 for i in range(sb.n_examples) for w in word_units(sb, i).text)
    bad = runner.invoke(app, ["words", str(demo_store), "-o", str(tmp_path / "x.h5"), "--word-boundaries", "commas"])
    one_line_error(bad, 3, "--word-boundaries commas")
    assert not (tmp_path / "x.h5").exists()


def test_words_refuses_a_non_attention_store_and_its_own_input(demo_store: Path, tmp_path: Path) -> None:
    out = tmp_path / "w.h5"
    assert runner.invoke(app, ["words", str(demo_store), "-o", str(out), "-q"]).exit_code == 0
    one_line_error(runner.invoke(app, ["words", str(out), "-o", str(tmp_path / "w2.h5")]), 4, "words store", "attention store")
    before = demo_store.stat().st_mtime_ns
    one_line_error(runner.invoke(app, ["words", str(demo_store), "-o", str(demo_store), "--force"]), 6, "input store")
    assert demo_store.stat().st_mtime_ns == before


def test_words_store_is_deterministic(demo_store: Path, tmp_path: Path) -> None:
    from bertsecrets_cli.jobs.words import WordsOptions, run_words
    from bertsecrets_cli.store import open_store
    from bertsecrets_cli.store.words import WORD_MAPS

    a = run_words(demo_store, tmp_path / "a.h5", WordsOptions(quiet=True)).path
    b = run_words(demo_store, tmp_path / "b.h5", WordsOptions(quiet=True)).path
    with open_store(a) as sa, open_store(b) as sb:
        assert np.array_equal(sa.array(WORD_MAPS), sb.array(WORD_MAPS))


def _words_arrays(path: Path) -> dict[str, np.ndarray]:
    """Every dataset of a words store but its provenance, and the words group's attributes: what must not
    depend on how the conversion was split."""
    import h5py

    out: dict[str, np.ndarray] = {}
    with h5py.File(path, "r") as f:
        for group in ("examples", "words"):
            for name, ds in f[group].items():
                out[f"{group}/{name}"] = ds[...]
        out["words attrs"] = np.asarray(sorted((k, str(v)) for k, v in f["words"].attrs.items()))
    return out


@covers("words", "--shard")
def test_words_shards_merge_into_the_unsharded_words_store(demo_pair_store: Path, tmp_path: Path) -> None:
    from bertsecrets_cli.store import open_store

    whole = tmp_path / "whole.h5"
    assert runner.invoke(app, ["words", str(demo_pair_store), "-o", str(whole), "-q"]).exit_code == 0
    parts = [tmp_path / f"words-{i}.h5" for i in range(3)]
    for i, p in enumerate(parts):
        r = runner.invoke(app, ["words", str(demo_pair_store), "-o", str(p), "--shard", f"{i}/3", "-q"])
        assert r.exit_code == 0, r.stderr
    with open_store(parts[1], kind="words") as st:
        prov = st.provenance()
        assert (prov["shard_index"], prov["shard_count"], prov["shard_start"], prov["shard_end"], prov["n_total"]) == (1, 3, 6, 11, 16)
        assert st.n_examples == 5 and prov["n_examples"] == 5
    merged = tmp_path / "words.h5"
    r = runner.invoke(app, ["merge", *map(str, reversed(parts)), "-o", str(merged), "-f", "json", "--table", "merge"])
    assert r.exit_code == 0, r.stderr
    assert '"examples": 16' in r.stdout
    a, b = _words_arrays(whole), _words_arrays(merged)
    assert sorted(a) == sorted(b)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)  # maps, units, offsets and examples: bit-identical
    with open_store(whole) as sa, open_store(merged) as sb:
        pa, pb = sa.provenance(), sb.provenance()
        assert "shard_index" not in pb and pb["job_fingerprint"] == pa["job_fingerprint"]
        assert (pb["n_examples"], pb["n_pieces"], pb["n_words"]) == (pa["n_examples"], pa["n_pieces"], pa["n_words"])
    assert runner.invoke(app, ["check", str(merged)]).exit_code == 0


def test_merge_refuses_missing_overlapping_unsharded_and_foreign_words_shards(demo_store: Path, tmp_path: Path) -> None:
    parts = [tmp_path / f"w{i}.h5" for i in range(3)]
    for i, p in enumerate(parts):
        assert runner.invoke(app, ["words", str(demo_store), "-o", str(p), "--shard", f"{i}/3", "-q"]).exit_code == 0
    out = tmp_path / "m.h5"

    def merge(*paths: Path):
        return runner.invoke(app, ["merge", *map(str, paths), "-o", str(out)])

    one_line_error(merge(parts[0], parts[2]), 4, "shard(s) 1/3 missing")
    one_line_error(merge(parts[0], parts[1], parts[1], parts[2]), 4, "given twice")
    assert runner.invoke(app, ["words", str(demo_store), "-o", str(tmp_path / "whole.h5"), "-q"]).exit_code == 0
    one_line_error(merge(tmp_path / "whole.h5", parts[0]), 4, "is not a shard")
    ws = tmp_path / "ws1.h5"
    assert runner.invoke(app, ["words", str(demo_store), "-o", str(ws), "--shard", "1/3", "--word-boundaries", "whitespace", "-q"]).exit_code == 0
    one_line_error(merge(parts[0], ws, parts[2]), 4, "word_boundaries differs")
    assert not out.exists()
    one_line_error(runner.invoke(app, ["words", str(demo_store), "-o", str(tmp_path / "x.h5"), "--shard", "3/3"]), 3, "--shard 3/3")
    one_line_error(runner.invoke(app, ["words", str(demo_store), "-o", str(tmp_path / "x.h5"), "--shard", "29/30"]), 3, "no examples")
    assert not (tmp_path / "x.h5").exists()


def test_words_of_each_extract_shard_merge_like_words_of_the_merged_store(tmp_path: Path) -> None:
    from bertsecrets_cli.jobs.extract import DataOptions, ExtractOptions, run_extract

    ex = [tmp_path / f"ex-{i}.h5" for i in range(2)]
    for i, p in enumerate(ex):
        run_extract(ExtractOptions(data=DataOptions(task="sst2", limit=6), device="cpu", quiet=True, shard=f"{i}/2", batch_size=3), p, command="t")
    assert runner.invoke(app, ["merge", *map(str, ex), "-o", str(tmp_path / "all.h5"), "-q"]).exit_code == 0
    assert runner.invoke(app, ["words", str(tmp_path / "all.h5"), "-o", str(tmp_path / "whole.h5"), "-q"]).exit_code == 0
    parts = [tmp_path / f"words-{i}.h5" for i in range(2)]
    for e, p in zip(ex, parts):
        assert runner.invoke(app, ["words", str(e), "-o", str(p), "-q"]).exit_code == 0  # no --shard: it inherits the extract shard's place
    r = runner.invoke(app, ["merge", *map(str, parts), "-o", str(tmp_path / "joined.h5"), "-q"])
    assert r.exit_code == 0, r.stderr
    a, b = _words_arrays(tmp_path / "whole.h5"), _words_arrays(tmp_path / "joined.h5")
    assert sorted(a) == sorted(b)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    # a shard of a shard would match no other shard: refused
    one_line_error(runner.invoke(app, ["words", str(ex[0]), "-o", str(tmp_path / "x.h5"), "--shard", "0/2"]), 3, "already shard 0/2")
    assert not (tmp_path / "x.h5").exists()


def _bpe_roberta(folder: Path) -> Path:
    """A 2-layer RoBERTa with its own byte-level BPE tokenizer (Ġ space marker), saved like a hub model."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers, processors, trainers
    from transformers import AutoModel, RobertaConfig, RobertaTokenizerFast

    from bertsecrets_cli.data.sources import load_dataset
    from bertsecrets_cli.data.tasks import get_task

    texts = [ex.text_a for ex in load_dataset(get_task("sst2"), None, "train").examples][:400]
    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    tok.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=500, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                                       show_progress=False))
    tok.post_processor = processors.RobertaProcessing(("</s>", tok.token_to_id("</s>")), ("<s>", tok.token_to_id("<s>")), trim_offsets=True)
    fast = RobertaTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", sep_token="</s>", cls_token="<s>", unk_token="<unk>",
                                pad_token="<pad>", mask_token="<mask>")
    cfg = RobertaConfig(vocab_size=len(fast), hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                        pad_token_id=fast.pad_token_id, max_position_embeddings=256, type_vocab_size=1)
    torch.manual_seed(0)
    folder.mkdir(parents=True, exist_ok=True)
    AutoModel.from_config(cfg).save_pretrained(folder)
    fast.save_pretrained(folder)
    return folder


def test_a_bpe_model_end_to_end_gives_the_texts_words(tmp_path: Path) -> None:
    from bertsecrets_cli.jobs.extract import DataOptions, ExtractOptions, run_extract
    from bertsecrets_cli.jobs.words import WordsOptions, run_words
    from bertsecrets_cli.store import open_store
    from bertsecrets_cli.store.words import word_maps, word_units

    model = _bpe_roberta(tmp_path / "bpe")
    pre = run_extract(ExtractOptions(model=str(model), data=DataOptions(task="sst2", limit=6), device="cpu", quiet=True), tmp_path / "pre.h5", command="t")
    out = run_words(tmp_path / "pre.h5", tmp_path / "w.h5", WordsOptions(quiet=True)).path
    del pre
    with open_store(out) as st, open_store(tmp_path / "pre.h5") as src:
        split = 0
        for i in range(st.n_examples):
            text = st.strings("examples/text_a")[i]
            u = word_units(st, i)
            words = [w for w, sp in zip(u.text, u.special) if sp == 0]
            assert words == [text[s:e] for s, e in word_spans(text)], (text, words)
            assert u.text[0] == "<s>" and u.text[-1] == "</s>"
            np.testing.assert_allclose(word_maps(st, i).sum(-1), 1.0, atol=2e-3)
            split += len(src.tokens(i).text) - len(u.text)
        assert split > 0  # the BPE split some words into several pieces (with a Ġ marker on the first)
