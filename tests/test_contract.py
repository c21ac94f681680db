"""One contract per family, on the real packaged weights: train tiny -> save -> load -> identical
predictions -> predict an empty string and a very long document."""

import numpy as np
import pytest

from transferlab.data.records import Examples
from transferlab.models.classifier import TextClassifier

from conftest import sentiment_data

FAMILIES = {
    "word-vectors-cnn": dict(encoder="glove-50d", head="cnn", epochs=3, max_length=32),
    "word-vectors-bigru": dict(encoder="glove-50d", head="bigru", epochs=2, max_length=32),
    "word-vectors-dan-indomain": dict(encoder="fasttext-indomain", head="dan", epochs=2, max_length=32,
                                      min_count=1),
    "frozen-minilm-logreg": dict(encoder="minilm", strategy="frozen", epochs=20),
    "finetuned-minilm": dict(encoder="minilm", strategy="finetune", epochs=1, max_length=32, batch_size=8),
    "finetuned-minilm-head+tail": dict(encoder="minilm", strategy="finetune", epochs=1, max_length=32, batch_size=8,
                                       truncation="head+tail"),
}


@pytest.fixture(scope="module")
def data():
    texts, labels = sentiment_data(48)
    return Examples(texts[:36], labels[:36]), Examples(texts[36:], labels[36:])


@pytest.mark.slow
@pytest.mark.parametrize("name", list(FAMILIES))
def test_family_contract(name, data, tmp_path):
    train, val = data
    clf = TextClassifier(**FAMILIES[name], seed=3, patience=None)
    clf.fit(train, validation=val, out_dir=tmp_path / "run")
    assert (tmp_path / "run" / "metrics.jsonl").read_text().count("\n") == len(clf.history_) >= 1
    assert (tmp_path / "run" / "curves.png").stat().st_size > 1000

    probe = ["A wonderful, moving film.", "", "   ", "great " * 50_000 + "awful " * 50_000]
    before = clf.predict_proba(probe)
    loaded = TextClassifier.load(tmp_path / "run")
    after = loaded.predict_proba(probe)
    np.testing.assert_allclose(before, after, rtol=0, atol=1e-6)
    assert after.shape == (4, 2)
    np.testing.assert_allclose(after.sum(1), 1.0, atol=1e-5)
    assert set(loaded.predict(probe)) <= {"negative", "positive"}
    assert loaded.labels_ == ["negative", "positive"]


@pytest.mark.slow
def test_word_vectors_learn_the_signal(data):
    """Not a benchmark: a regression guard that training actually moves the model."""
    train, val = data
    clf = TextClassifier("glove-50d", "dan", epochs=15, max_length=16, seed=1, patience=None, lr=5e-3)
    clf.fit(train, validation=val)
    assert clf.score(val) >= 0.9
    assert clf.history_[-1]["train_loss"] < clf.history_[0]["train_loss"]


@pytest.mark.slow
def test_frozen_features_learn_the_signal(data):
    train, val = data
    clf = TextClassifier("minilm", strategy="frozen", epochs=30, seed=1, patience=None)
    clf.fit(train, validation=val)
    assert clf.score(val) >= 0.9


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["gradual", "lora"])
def test_transformer_strategies_train_save_and_load(strategy, data, tmp_path):
    train, val = data
    clf = TextClassifier("minilm", strategy=strategy, epochs=1, max_length=24, batch_size=8, seed=0, patience=None)
    clf.fit(train, validation=val, out_dir=tmp_path)
    loaded = TextClassifier.load(tmp_path)
    np.testing.assert_allclose(clf.predict_proba(val), loaded.predict_proba(val), atol=1e-5)
    loaded.save(tmp_path / "again")  # a reloaded model saves again (merged LoRA stays merged)
    np.testing.assert_allclose(TextClassifier.load(tmp_path / "again").predict_proba(val), loaded.predict_proba(val),
                               atol=1e-6)
    if strategy == "lora":
        # LoRA trains a small fraction of the backbone; the saved weights are merged, PEFT-free.
        assert clf.fit_info_["params_trainable"] < clf.fit_info_["params_total"] * 0.2
        from safetensors import safe_open

        with safe_open(str(tmp_path / "model.safetensors"), "pt") as f:
            assert not any("lora" in k for k in f.keys())


@pytest.mark.slow
def test_sentence_pairs_for_each_family(tmp_path):
    rng = np.random.default_rng(0)
    words = ["cat", "dog", "car", "tree", "house", "river", "phone", "bread"]
    texts, pairs, labels = [], [], []
    for i in range(40):
        a = " ".join(rng.choice(words, 3))
        same = i % 2 == 0
        texts.append(a)
        pairs.append(a if same else " ".join(rng.choice(words, 3)))
        labels.append("same" if same else "different")
    ex = Examples(texts, labels, pairs=pairs)
    for kw in (dict(encoder="glove-50d", head="cnn", max_length=8), dict(encoder="minilm", strategy="frozen"),
               dict(encoder="minilm", max_length=24, batch_size=8)):
        clf = TextClassifier(**kw, epochs=1, seed=0, patience=None, validation_fraction=0.0)
        clf.fit(ex)
        assert clf.predict_proba(ex.subset(range(4))).shape == (4, 2)
        clf.save(tmp_path / kw["encoder"])
        assert TextClassifier.load(tmp_path / kw["encoder"]).predict(list(zip(texts[:2], pairs[:2])))


@pytest.mark.slow
def test_multilabel(tmp_path):
    texts = [f"{'goal match' if i % 2 else ''} {'vote election' if i % 3 else ''} item {i}" for i in range(60)]
    labels = [[lab for lab, on in (("sport", i % 2), ("politics", i % 3)) if on] for i in range(60)]
    ex = Examples(texts, labels, multilabel=True)
    clf = TextClassifier("glove-50d", "dan", epochs=20, lr=5e-3, seed=0, max_length=16, metric="micro_f1")
    clf.fit(ex, out_dir=tmp_path)
    loaded = TextClassifier.load(tmp_path)
    assert loaded.multilabel_ and loaded.labels_ == ["politics", "sport"]
    assert loaded.evaluate(ex)["micro_f1"] > 0.8


@pytest.mark.slow
def test_transformer_head_tail_keeps_both_ends_inside_special_tokens():
    """head+tail ids: [CLS] + the first quarter + the end + [SEP], never longer than max_length."""
    from transformers import AutoTokenizer

    from transferlab.config import ModelConfig
    from transferlab.encoders.zoo import resolve
    from transferlab.models.backends import make_backend

    cfg = ModelConfig(encoder="minilm", truncation="head+tail", max_length=18).resolve_defaults()
    backend = make_backend(cfg, resolve("minilm"), "cpu")
    backend.tokenizer = AutoTokenizer.from_pretrained(backend.resolved.location)
    tok = backend.tokenizer
    text = "opening words here " + "filler " * 500 + "the final verdict"
    ids = backend._ids(text)
    assert len(ids) == 18
    assert ids[0] == tok.cls_token_id and ids[-1] == tok.sep_token_id
    words = tok.decode(ids[1:-1])
    assert words.startswith("opening words") and words.endswith("the final verdict")
    short = backend._ids("just this")
    assert short == tok("just this")["input_ids"]
