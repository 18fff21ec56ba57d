"""Every supported family through the real command line: extract -> classify -> words -> diff -> ablate -> view.

One tiny classifier per family (2 layers, 4 heads, hidden 32) with a tokenizer of the family's own kind
(conftest.FAMILY_TOKENIZERS, trained offline), built once per module. 'ernie' is named nowhere in
bertsecrets_cli: it works because its attention goes through transformers' attention interface.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from bertsecrets_cli.cli.app import app
from bertsecrets_cli.store import open_store

from conftest import ALL_FAMILIES, FAMILY_TOKENIZERS, build_tiny_model, build_tokenizer
from helpers import one_line_error

pytestmark = pytest.mark.slow
runner = CliRunner()
N = 4


def invoke(*args: str):
    return runner.invoke(app, list(args))


@pytest.fixture(scope="module")
def family_tokenizers():
    return {k: build_tokenizer(*k) for k in set(FAMILY_TOKENIZERS.values())}


@pytest.fixture(scope="module", params=ALL_FAMILIES)
def family_run(request, family_tokenizers, tmp_path_factory):
    """A tiny classifier of the family and its extracted store (the first step of the chain, shared by the others)."""
    family = request.param
    root = tmp_path_factory.mktemp(f"matrix-{family}")
    model = build_tiny_model(root / "model", family, classifier=True, tokenizer=family_tokenizers[FAMILY_TOKENIZERS[family]])
    store = root / "x.h5"
    res = invoke("extract", "-m", str(model), "-n", str(N), "--device", "cpu", "-q", "-o", str(store))
    assert res.exit_code == 0, (family, res.stderr)
    return family, model, store, root


def test_extract_stores_the_familys_own_eager_attention(family_run) -> None:
    """The stored maps (float16) are the family's eager attention of the same tokens, cropped to the real tokens."""
    from transformers import AutoModelForSequenceClassification

    family, model, store, _ = family_run
    ref = AutoModelForSequenceClassification.from_pretrained(str(model), attn_implementation="eager").eval()
    with open_store(store) as st:
        assert (st.n_examples, st.n_layers, st.model_heads) == (N, 2, 4)
        assert st.model_attrs()["model_type"] == family
        windows = st.attention_windows().tolist()
        for i in range(N):
            tok = st.tokens(i)
            ids = torch.tensor(tok.ids, dtype=torch.long)[None]
            kwargs = {"token_type_ids": torch.tensor(tok.type_ids, dtype=torch.long)[None]} if (getattr(ref.config, "type_vocab_size", 0) or 0) > 1 else {}
            with torch.inference_mode():
                want = torch.stack(ref(input_ids=ids, **kwargs, output_attentions=True).attentions, 1)[0].numpy()
            np.testing.assert_allclose(st.attention(i).astype(np.float32), want, atol=1e-3)
    assert windows == ([-1, 2] if family == "modernbert" else [-1, -1])


def test_classify_words_diff_ablate_view_run_on_the_store(family_run) -> None:
    family, model, store, root = family_run
    res = invoke("classify", str(store), "-o", str(root / "cls.h5"), "-q")
    assert res.exit_code == 0, res.stderr
    with open_store(root / "cls.h5") as st:
        assert st.n_layers == 2 and st.model_heads == 4
    res = invoke("words", str(store), "-o", str(root / "words.h5"), "-q")
    assert res.exit_code == 0, res.stderr
    res = invoke("diff", str(store), str(store), "-o", str(root / "d.h5"), "-f", "json", "-q")
    assert res.exit_code == 0, res.stderr
    res = invoke("ablate", "-m", str(model), "-n", str(N), "--device", "cpu", "-q", "-o", str(root / "abl.h5"))
    assert res.exit_code == 0, res.stderr
    with open_store(root / "abl.h5") as st:
        delta = st.heads()["ablation_delta"].values
        assert delta.shape == (2, 4) and np.all(np.isfinite(delta))
    res = invoke("view", str(store), "-o", str(root / "v.html"))
    assert res.exit_code == 0, res.stderr
    assert f"{N} example(s)" in res.stderr + res.stdout and (root / "v.html").stat().st_size > 10_000


def test_diff_between_families_with_other_tokens_is_refused(tmp_path_factory, family_tokenizers) -> None:
    """Same shape (2 x 4) but other tokens: a comparison of heads needs the same tokens, and says so in one line."""
    stores = {}
    for family in ("bert", "xlm-roberta"):
        root = tmp_path_factory.mktemp(f"cross-{family}")
        model = build_tiny_model(root / "m", family, tokenizer=family_tokenizers[FAMILY_TOKENIZERS[family]])
        stores[family] = root / "x.h5"
        assert invoke("extract", "-m", str(model), "-n", "2", "--device", "cpu", "-q", "-o", str(stores[family])).exit_code == 0
    out = tmp_path_factory.mktemp("cross") / "never.h5"
    one_line_error(invoke("diff", str(stores["bert"]), str(stores["xlm-roberta"]), "-o", str(out)), 3, "same tokenizer")
    assert not out.exists()


def test_unsupported_families_are_refused_on_the_command_line(tmp_path: Path) -> None:
    for family, says in (("megatron-bert", "no adapter"),):
        model = build_tiny_model(tmp_path / family, family)
        out = tmp_path / f"{family}.h5"
        one_line_error(invoke("extract", "-m", str(model), "-n", "2", "--device", "cpu", "-q", "-o", str(out)), 5, family, says)
        assert not out.exists()


def test_classify_cnn_reads_a_local_layers_out_of_window_keys_as_masked(family_run, monkeypatch) -> None:
    """classify --classifier feeds the CNN a ModernBERT local layer with its out-of-window keys filled by their row's
    low median in its window (model.cnn.fill_out_of_window), checked row by row here; the global layer as stored."""
    import statistics

    from bertsecrets_cli.analysis.synthetic import generate
    from bertsecrets_cli.jobs.classifiers import CnnClassifier
    from bertsecrets_cli.model import cnn

    family, _, store, root = family_run
    if family != "modernbert":
        pytest.skip("only ModernBERT has local layers")
    s = generate(20, min_len=8, max_len=12, seed=0)
    torch.save(cnn.train_cnn(s.maps, s.labels, epochs=1).payload({"source": "synthetic"}), root / "cnn.pt")
    seen_inputs: list[np.ndarray] = []
    predict = CnnClassifier.predict
    monkeypatch.setattr(CnnClassifier, "predict", lambda self, maps: (seen_inputs.extend(maps), predict(self, maps))[1])
    res = invoke("classify", str(store), "--classifier", str(root / "cnn.pt"), "-o", str(root / "cnn-cls.h5"), "-q")
    assert res.exit_code == 0, res.stderr
    filled_rows = 0
    with open_store(store) as st:
        w = st.attention_windows().tolist()
        assert w == [-1, 2]
        for i in range(N):
            att = st.attention(i)
            T = att.shape[-1]
            got = np.stack(seen_inputs[i * 8 : (i + 1) * 8]).reshape(2, 4, T, T)
            np.testing.assert_array_equal(got[0], att[0])  # the global layer: the stored maps
            for h in range(4):
                for q in range(T):
                    keys = [k for k in range(T) if abs(q - k) <= 2]
                    row = att[1, h, q].astype(np.float64)
                    if len(keys) == T:
                        np.testing.assert_array_equal(got[1, h, q], row)
                        continue
                    fill = statistics.median_low(row[keys].tolist())
                    want = np.full(T, fill)
                    want[keys] = row[keys]
                    want *= row[keys].sum() / want.sum()
                    np.testing.assert_allclose(got[1, h, q], want, rtol=1e-5, atol=1e-7)
                    filled_rows += 1
    assert filled_rows  # some example is longer than the window
    # classify train reads annotated maps with their layer's window, so it fills them as classify does
    from bertsecrets_cli.jobs.train_classifier import load_labelled_maps

    (root / "labels.tsv").write_text("store\texample\tlayer\thead\tlabel\n" + f"{store}\t0\t1\t1\tdiagonal\n{store}\t0\t2\t3\theterogeneous\n")
    assert load_labelled_maps([str(root / "labels.tsv")]).windows == [-1, 2]
