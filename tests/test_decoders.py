"""Causal decoder language models (issue 30): GPT-2 and the Llama architecture (Llama, Qwen2/3, Mistral)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bertsecrets_cli.model.attention import Intervention, forward_with_attention, intervene
from bertsecrets_cli.model.load import load_model
from bertsecrets_cli.model.tokenize import collate, encode_examples

from conftest import DECODER_FAMILIES, DECODER_TOKENIZERS, build_tiny_model, build_tokenizer
from helpers import covers

PAIRS = [("The cat sat on the mat.", None), ("A much longer sentence, so that the first one is padded at the end.", None)]


@pytest.fixture(scope="module")
def decoder_models(tmp_path_factory: pytest.TempPathFactory):
    """A tiny model of every decoder family, each with a byte-level BPE tokenizer of its family's style."""
    toks = {k: build_tokenizer(*k) for k in set(DECODER_TOKENIZERS.values())}
    root = tmp_path_factory.mktemp("decoders")
    return {f: build_tiny_model(root / f, f, tokenizer=toks[DECODER_TOKENIZERS[f]]) for f in DECODER_FAMILIES}


def _eager(folder):  # noqa: ANN001, ANN202
    from transformers import AutoModel

    m = AutoModel.from_pretrained(folder, attn_implementation="eager")
    m.config.use_cache = False
    return m.eval()


def _padded(lm, side: str):  # noqa: ANN001, ANN202
    enc = encode_examples(lm.tokenizer, PAIRS, 64)
    batch = collate(enc, 0, lm.device, lm.token_types)
    if side == "left":  # real tokens at the end, positions counted from each example's first real token
        ids, mask = batch["input_ids"], batch["attention_mask"]
        n = mask.sum(-1)
        order = (torch.arange(ids.shape[1])[None, :] - (ids.shape[1] - n)[:, None]) % ids.shape[1]
        batch = {"input_ids": ids.gather(1, order), "attention_mask": mask.gather(1, order)}
        batch["position_ids"] = (batch["attention_mask"].cumsum(-1) - 1).clamp_min(0)
    return batch


@pytest.mark.parametrize("side", ["right", "left"])
@pytest.mark.parametrize("family", DECODER_FAMILIES)
def test_decoder_maps_and_hidden_states_equal_the_familys_eager_output_exactly(family, side, decoder_models) -> None:
    lm = load_model(str(decoder_models[family]), device="cpu")
    assert lm.causal and lm.n_heads == 4 and lm.windows == (-1, -1)
    assert lm.kv_group == ((0, 0, 1, 1) if family != "gpt2" else (0, 1, 2, 3))
    batch = _padded(lm, side)
    out, probs = forward_with_attention(lm.model, batch, lm.n_layers)
    with torch.inference_mode():
        want = _eager(decoder_models[family])(**batch, output_attentions=True)
    assert torch.equal(probs, torch.stack(want.attentions, dim=1))
    assert torch.equal(out.last_hidden_state, want.last_hidden_state)
    # causal: no query of a real token puts mass on a later key
    real = batch["attention_mask"].bool()
    for b in range(probs.shape[0]):
        rows = real[b].nonzero().flatten()
        sub = probs[b][:, :, rows][..., rows]
        assert float(sub[..., torch.triu(torch.ones(len(rows), len(rows), dtype=torch.bool), 1)].abs().max()) == 0.0


@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_a_disabled_decoder_head_is_uniform_over_the_prefix_it_may_see_never_the_future(family, decoder_models) -> None:
    lm = load_model(str(decoder_models[family]), device="cpu")
    batch = _padded(lm, "right")
    _, probs = forward_with_attention(lm.model, batch, lm.n_layers, Intervention().disable(1, 2))
    n = int(batch["attention_mask"][0].sum())
    want = torch.tril(torch.ones(n, n)) / torch.arange(1, n + 1, dtype=torch.float32)[:, None]  # row i: 1/(i+1) on keys 0..i
    assert torch.equal(probs[0, 1, 2, :n, :n], want)
    assert n < probs.shape[-1] and float(probs[0, 1, 2, :n, n:].abs().max()) == 0.0  # nor on the padding after it


def test_pattern_rules_read_causal_maps_the_sink_is_vertical_the_previous_token_diagonal() -> None:
    """Lower-triangular maps of 12 tokens with no special token (GPT-2): the first position is the sink."""
    import numpy as np

    from bertsecrets_cli.analysis import patterns as P

    T = 12
    kinds, segs = np.zeros(T, np.int8), np.zeros(T, np.int8)
    lower = np.tril(np.ones((T, T)))
    uniform = lower / np.arange(1, T + 1)[:, None]
    sink = lower * 0.2 / np.maximum(np.arange(T), 1)[:, None]
    sink[:, 0], sink[0, 0] = 0.8, 1.0  # every row after the first: 0.8 on the first token, 0.2 spread over the rest
    prev = np.zeros((T, T))
    prev[0, 0] = 1.0
    prev[np.arange(1, T), np.arange(T - 1)] = 1.0
    f = {name: P.map_features(m[None], kinds, segs, causal=True)[0] for name, m in (("uniform", uniform), ("sink", sink), ("prev", prev))}
    col = P.FEATURES.index
    # rows 1..T-1 (the first row chose nothing): the sink share is the mean first-token mass of those rows
    assert f["sink"][col("special")] == pytest.approx(0.8, abs=1e-6)
    assert f["uniform"][col("special")] == pytest.approx(np.mean([1 / (i + 1) for i in range(1, T)]), abs=1e-6)
    assert f["uniform"][col("entropy")] == pytest.approx(1.0, abs=1e-6)  # uniform over each row's own prefix
    assert f["prev"][col("diagonal")] == pytest.approx((T - 2) / (T - 1), abs=1e-6)  # row 1's previous token is the sink
    labels = {k: P.CLASSES[int(P.classify_features(v[None])[0])] for k, v in f.items()}
    assert labels == {"uniform": "heterogeneous", "sink": "vertical", "prev": "diagonal"}
    # read as an encoder's map, the same uniform prefix map would look vertical+diagonal: the causal reading matters
    assert P.CLASSES[int(P.classify_maps(uniform[None], kinds, segs)[0][0])] != "heterogeneous"


@pytest.mark.slow
@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_decoder_store_through_the_command_line(family, decoder_models, tmp_path) -> None:
    """extract (weights, norms, rollout) -> classify --features, words, diff, plot, show, view, cluster."""
    import numpy as np
    from transformers import AutoModel
    from typer.testing import CliRunner

    from bertsecrets_cli.cli.app import app
    from bertsecrets_cli.store.reader import open_store

    from helpers import one_line_error

    runner = CliRunner()
    model, store = str(decoder_models[family]), tmp_path / "x.h5"
    res = runner.invoke(app, ["extract", "-m", model, "-n", "4", "--device", "cpu", "-q", "--quantities", "weights,norms,rollout", "-o", str(store)])
    assert res.exit_code == 0, res.stderr
    assert "first-token mass" in res.stdout and "[CLS]" not in res.stdout.splitlines()[3]
    ref = AutoModel.from_pretrained(model, attn_implementation="eager").eval()
    with open_store(store) as st:
        assert st.causal and st.kv_group().tolist() == ([0, 1, 2, 3] if family == "gpt2" else [0, 0, 1, 1])
        for i in range(st.n_examples):
            tok = st.tokens(i)
            if family == "llama":
                assert tok.text[0] == "<s>" and tok.special[0] == 1  # the BOS ([CLS] kind) is the sink
            else:
                assert (tok.special == 0).all()  # GPT-2 adds no token: the sink is the first word of the text
            with torch.inference_mode():
                want = torch.stack(ref(input_ids=torch.tensor(tok.ids, dtype=torch.long)[None], output_attentions=True, use_cache=False).attentions, 1)[0].numpy()
            att = st.attention(i).astype(np.float32)
            np.testing.assert_allclose(att, want, atol=1e-3)
            assert np.triu(att, 1).max() == 0.0
        # the statistics' first-token column: the mean over examples of each map's mean over rows of column 0
        want_first = np.mean([st.attention(i).astype(np.float32)[..., 0].mean(-1) for i in range(st.n_examples)], axis=0)
        np.testing.assert_allclose(st.heads()["stat_cls"].values, want_first, atol=2e-3)
    res = runner.invoke(app, ["classify", str(store), "--features", "-f", "tsv", "--table", "token-heads"])
    assert res.exit_code == 0, res.stderr
    assert res.stdout.splitlines()[0].split("\t")[1] == "first (sink)"
    for args in (["words", str(store), "-o", str(tmp_path / "w.h5"), "-q"], ["diff", str(store), str(store), "-o", str(tmp_path / "d.h5"), "-q"],
                 ["plot", str(store), "-o", str(tmp_path / "p.png")], ["show", str(store)], ["view", str(store), "-o", str(tmp_path / "v.html")]):
        res = runner.invoke(app, args)
        assert res.exit_code == 0, (args, res.stderr)
    res = runner.invoke(app, ["show", str(store), "--quantity", "stat_cls", "-k", "1"])
    assert res.exit_code == 0 and "first-token mass" in " ".join(res.stdout.split()), res.stdout
    res = runner.invoke(app, ["cluster", str(store), "-o", str(tmp_path / "c.h5")])  # issue 30: the first row left out (test_decoder_analyses.py)
    assert res.exit_code == 0 and (tmp_path / "c.h5").exists(), res.stderr


@pytest.mark.slow
@covers("extract", "--stride")
def test_a_corpus_is_cut_into_windows_whose_provenance_is_stored(decoder_models, tmp_path) -> None:
    """Two JSONL documents, windows of 15 tokens (16 minus Llama's BOS) every 8: each example's text is its span."""
    import json

    from typer.testing import CliRunner

    from bertsecrets_cli.cli.app import app
    from bertsecrets_cli.store.reader import open_store

    from helpers import one_line_error

    docs = {"d0": "The cat sat on the mat. " * 12, "d1": "A second document, shorter than the first but long enough for two windows."}
    corpus = tmp_path / "c.jsonl"
    corpus.write_text("".join(json.dumps({"id": k, "text": v}) + "\n" for k, v in docs.items()), encoding="utf-8")
    model, runner = str(decoder_models["llama"]), CliRunner()
    res = runner.invoke(app, ["extract", "-m", model, "--data", str(corpus), "--max-length", "16", "--stride", "8", "--device", "cpu", "-q", "-o", str(tmp_path / "w.h5")])
    assert res.exit_code == 0, res.stderr
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model)
    n_tokens = {k: len(tok(v, add_special_tokens=False)["input_ids"]) for k, v in docs.items()}
    # windows start at 0, 8, 16, ... while a full window fits, plus one ending at the document's end
    want = sum(len(range(0, n - 15 + 1, 8)) + ((n - 15) % 8 != 0) for n in n_tokens.values())
    with open_store(tmp_path / "w.h5") as st:
        d, a, b = st.strings("examples/document"), st.h5["examples/char_start"][...], st.h5["examples/char_end"][...]
        texts = st.strings("examples/text_a")
        assert st.n_examples == want and sorted(set(d)) == ["d0", "d1"]
        assert all(docs[x][s:e] == t for x, s, e, t in zip(d, a, b, texts))
        last_token_end = tok(docs["d0"], add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"][-1][1]
        assert a[0] == 0 and max(e for x, e in zip(d, b) if x == "d0") == last_token_end  # every token is in a window
        assert st.lengths().max() <= 16
    one_line_error(runner.invoke(app, ["extract", "-m", model, "--data", str(corpus), "--max-length", "16", "--stride", "20", "-q", "-o", str(tmp_path / "x.h5")]),
                   3, "--stride 20", "window")


def test_dependency_heads_run_on_a_decoder_and_clarks_rule_is_refused_in_one_line(decoder_models, tmp_path) -> None:
    """Dependency heads on a decoder: scored (each arc in the direction a causal map can reach, tests/test_decoder_analyses.py);
    --definition authors, Clark's rule for [CLS]/[SEP] encoder maps, is refused after loading and writes nothing."""
    from typer.testing import CliRunner

    from bertsecrets_cli.cli.app import app

    from helpers import one_line_error

    conllu = tmp_path / "dev.conllu"
    conllu.write_text("1\tthe\tthe\tDET\t_\t_\t2\tdet\t_\t_\n2\tcat\tcat\tNOUN\t_\t_\t3\tnsubj\t_\t_\n3\tsat\tsit\tVERB\t_\t_\t0\troot\t_\t_\n\n", encoding="utf-8")
    out = tmp_path / "dep.h5"
    args = ["framenet", "--conllu", str(conllu), "--model", str(decoder_models["gpt2"]), "--device", "cpu"]
    res = CliRunner().invoke(app, [*args, "-o", str(out)])
    assert res.exit_code == 0 and out.exists(), res.stderr
    res = CliRunner().invoke(app, [*args, "-o", str(tmp_path / "a.h5"), "--definition", "authors"])
    one_line_error(res, 5, "'gpt2'", "causal decoder", "--definition ours")
    assert not (tmp_path / "a.h5").exists()


@pytest.mark.slow
@covers("ablate", "--metric")
def test_ablate_metric_loss_equals_an_independent_next_token_loss(tmp_path) -> None:
    """Baseline: the family's own LM loss per window, token-weighted; L1H2 zeroed: the same with head 2's slice of
    o_proj's input set to 0 by a hook (what 'zero' means), so both sides are computed without bertsecrets."""
    from transformers import AutoModelForCausalLM
    from typer.testing import CliRunner

    from bertsecrets_cli.cli.app import app
    from bertsecrets_cli.jobs.ablate import read_ablation

    from conftest import tiny_config

    tok = build_tokenizer(*DECODER_TOKENIZERS["llama"])
    cfg = tiny_config("llama", len(tok), tok.pad_token_id, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    torch.manual_seed(0)
    ref = AutoModelForCausalLM.from_config(cfg)
    with torch.no_grad():  # a model whose heads matter: larger attention logits than the N(0, 0.02) init gives
        for layer in ref.model.layers:
            layer.self_attn.q_proj.weight.mul_(40)
    folder = tmp_path / "lm"
    ref.save_pretrained(folder)
    tok.save_pretrained(folder)
    corpus = tmp_path / "c.txt"
    corpus.write_text("The cat sat on the mat, and the dog sat on the rug. " * 6, encoding="utf-8")
    out = tmp_path / "abl.h5"
    res = CliRunner().invoke(app, ["ablate", "-m", str(folder), "--metric", "loss", "--data", str(corpus), "--max-length", "24", "--heads", "L1H2",
                                   "--no-sweep", "--mode", "zero", "--bootstrap", "100", "--device", "cpu", "-q", "-o", str(out)])
    assert res.exit_code == 0, res.stderr
    r = read_ablation(out)
    ref = AutoModelForCausalLM.from_pretrained(folder, attn_implementation="eager").eval()

    def corpus_loss(hook=None) -> float:  # noqa: ANN001
        from bertsecrets_cli.data.windows import window_dataset

        ds, _ = window_dataset(corpus, tok, 24, 23)
        handle = ref.model.layers[0].self_attn.o_proj.register_forward_pre_hook(hook) if hook else None
        total, count = 0.0, 0
        with torch.inference_mode():
            for e in ds.examples:
                ids = tok(e.text_a, return_tensors="pt", truncation=True, max_length=24)["input_ids"]
                total += float(ref(input_ids=ids, labels=ids).loss) * (ids.shape[1] - 1)
                count += ids.shape[1] - 1
        if handle:
            handle.remove()
        return total / count

    def zero_head_2(_mod, args):  # noqa: ANN001, ANN202
        x = args[0].clone()
        x[..., 8:16] = 0.0  # head 2 of 4, head_dim 8
        return (x,)

    base, zeroed = corpus_loss(), corpus_loss(zero_head_2)
    assert r.base_metrics[0] == pytest.approx(base, abs=1e-4) and r.base_metrics[1] == pytest.approx(np.exp(base), rel=1e-4)
    assert r.metrics[0, 0] == pytest.approx(zeroed, abs=1e-4) and r.delta[0, 0] == pytest.approx(zeroed - base, abs=1e-4)
    assert abs(zeroed - base) > 1e-3 and r.ci_low[0, 0] <= r.delta[0, 0] <= r.ci_high[0, 0]
    # mode mean: head 2's slice of o_proj's input replaced by its mean over every token of the windows
    slices = []
    handle = ref.model.layers[0].self_attn.o_proj.register_forward_pre_hook(lambda _m, a: slices.append(a[0][0, :, 8:16].clone()))
    corpus_loss()
    handle.remove()
    mean = torch.cat(slices).double().mean(0).float()

    def mean_head_2(_mod, args):  # noqa: ANN001, ANN202
        x = args[0].clone()
        x[..., 8:16] = mean
        return (x,)

    out2 = tmp_path / "abl-mean.h5"
    res = CliRunner().invoke(app, ["ablate", "-m", str(folder), "--metric", "loss", "--data", str(corpus), "--max-length", "24", "--heads", "L1H2",
                                   "--no-sweep", "--mode", "mean", "--bootstrap", "0", "--device", "cpu", "-q", "-o", str(out2)])
    assert res.exit_code == 0, res.stderr
    with_mean = corpus_loss(mean_head_2)
    assert read_ablation(out2).metrics[0, 0] == pytest.approx(with_mean, abs=1e-4) and abs(with_mean - zeroed) > 1e-4
    n = len(tok(corpus.read_text(encoding="utf-8"), add_special_tokens=False)["input_ids"])
    # non-overlapping windows of 23 tokens (24 minus the BOS), the last one ending at the text's end
    assert len(r.ids) == (n - 23) // 23 + 1 + ((n - 23) % 23 != 0) and all("#w" in i for i in r.ids)


def test_a_decoders_statistics_only_store_classifies_as_its_full_maps(decoder_models, tmp_path) -> None:
    """extract --maps none keeps the rule features of each causal map: classify reads them as it reads full causal maps."""
    from typer.testing import CliRunner

    from bertsecrets_cli.cli.app import app
    from bertsecrets_cli.store.reader import open_store

    runner = CliRunner()
    model = str(decoder_models["llama"])
    for mode in ("full", "none"):
        res = runner.invoke(app, ["extract", "-m", model, "-n", "6", "--device", "cpu", "-q", "--maps", mode, "-o", str(tmp_path / f"{mode}.h5")])
        assert res.exit_code == 0, res.stderr
        res = runner.invoke(app, ["classify", str(tmp_path / f"{mode}.h5"), "-o", str(tmp_path / f"pat-{mode}.h5"), "-q"])
        assert res.exit_code == 0, res.stderr
    with open_store(tmp_path / "pat-full.h5") as full, open_store(tmp_path / "pat-none.h5") as none:
        np.testing.assert_array_equal(none.h5["patterns/labels"][()], full.h5["patterns/labels"][()])
        np.testing.assert_allclose(none.h5["patterns/features"][()], full.h5["patterns/features"][()], atol=1e-6)
    # and the features are the causal reading: the same maps read as an encoder's would differ
    from bertsecrets_cli.analysis.patterns import map_features

    with open_store(tmp_path / "full.h5") as st, open_store(tmp_path / "pat-full.h5") as pat:
        tok, att = st.tokens(1), st.attention(1).astype(np.float32)
        want = map_features(att, tok.special, tok.type_ids, causal=True)
        np.testing.assert_allclose(pat.h5["patterns/features"][1], want, atol=1e-6)
        assert not np.allclose(map_features(att, tok.special, tok.type_ids, causal=False), want, atol=1e-6)
