"""The hybrid family: a frozen sentence encoder's embedding with latent TF-IDF features appended (encoders/tfidf.py),
trained, saved without pickles, loaded to the same predictions, and refused where it does not apply."""

import json

import numpy as np
import pytest

from transferlab.errors import ConfigError, ModelFileError
from transferlab.models.classifier import TextClassifier

from conftest import skewed_security


def test_tfidf_block_saves_as_plain_data_and_transforms_the_same(tmp_path):
    from transferlab.encoders.tfidf import TENSORS, VOCAB, TfidfBlock

    texts = skewed_security().texts
    block = TfidfBlock.fit(texts, 16, seed=0)
    hashes = block.save(tmp_path)
    again = TfidfBlock.load(tmp_path, hashes)
    np.testing.assert_allclose(again.transform(texts[:7] + ["never seen words"]),
                               block.transform(texts[:7] + ["never seen words"]), atol=1e-6)
    assert block.dim == 16 and np.allclose(np.linalg.norm(block.transform(texts[:3]), axis=1), 1.0)
    assert "vocabulary" in json.loads((tmp_path / VOCAB).read_text())
    (tmp_path / TENSORS).write_bytes((tmp_path / TENSORS).read_bytes()[:-4] + b"\0\0\0\0")
    with pytest.raises(ModelFileError, match="altered"):
        TfidfBlock.load(tmp_path, hashes)


def test_the_hybrid_trains_saves_and_loads(tmp_path):
    data = skewed_security()
    clf = TextClassifier("minilm", strategy="frozen", head_solver="lbfgs", tfidf_dim=32, max_length=32)
    clf.fit(data, out_dir=tmp_path / "m")
    assert clf.backend_.info["dim"] == 384 + 32 and clf.backend_.info["tfidf_dim"] == 32
    assert clf.score(data.texts[:40], data.labels[:40]) >= 0.9
    loaded = TextClassifier.load(tmp_path / "m")
    probe = data.texts[:5] + ["", "overflow " * 20000]
    np.testing.assert_allclose(loaded.predict_proba(probe), clf.predict_proba(probe), atol=1e-5)
    with pytest.raises(ConfigError, match="frozen sentence encoder"):
        TextClassifier("minilm", tfidf_dim=32).fit(data)
    with pytest.raises(ConfigError, match="frozen sentence encoder"):
        TextClassifier("glove-50d", tfidf_dim=32).fit(data)


def test_stacked_tfidf_scores_training_texts_out_of_fold_until_training_ends(tmp_path):
    from sklearn.linear_model import LogisticRegression

    from transferlab.bench.peers import tfidf_vectorizer
    from transferlab.encoders.tfidf import TfidfStack, load_block

    data = skewed_security()
    block = TfidfStack.fit(data.texts, data.labels, seed=0)
    # a text it trained on: while training, its out-of-fold score, not the in-sample one of the final model
    in_sample = np.asarray(block.vectorizer.transform(data.texts[:20]) @ block.coef.T) + block.intercept
    during = block.transform(data.texts[:20])
    assert block.dim == 1 and not np.allclose(during, in_sample)
    # the final model is scikit-learn's own fit on all the texts
    X = tfidf_vectorizer(min_df=2, max_features=200_000).fit_transform(data.texts)
    ref = LogisticRegression(C=1.0, class_weight="balanced", max_iter=3000).fit(X, data.labels)
    block.end_fit()
    np.testing.assert_allclose(block.transform(data.texts[:20]).ravel(), ref.decision_function(X[:20]), atol=1e-4)
    hashes = block.save(tmp_path)
    again = load_block(tmp_path, hashes)
    assert isinstance(again, TfidfStack)
    probe = data.texts[:5] + ["never seen words", ""]
    np.testing.assert_allclose(again.transform(probe), block.transform(probe), atol=1e-5)


def test_the_stacked_hybrid_trains_saves_and_loads_and_is_small(tmp_path):
    data = skewed_security()
    clf = TextClassifier("minilm", strategy="frozen", head_solver="lbfgs", tfidf_stack=True, max_length=32)
    clf.fit(data, out_dir=tmp_path / "m")
    assert clf.backend_.info["dim"] == 384 + 1 and clf.backend_.info["tfidf_kind"] == "stack"
    assert clf.backend_._tfidf.oof is None  # training over: training texts are scored like any other
    assert clf.score(data.texts[:40], data.labels[:40]) >= 0.9
    loaded = TextClassifier.load(tmp_path / "m")
    probe = data.texts[:5] + ["", "overflow " * 20000]
    np.testing.assert_allclose(loaded.predict_proba(probe), clf.predict_proba(probe), atol=1e-5)
    with pytest.raises(ConfigError, match="choose one"):
        TextClassifier("minilm", strategy="frozen", tfidf_dim=8, tfidf_stack=True).fit(data)
    with pytest.raises(ConfigError, match="frozen sentence encoder"):
        TextClassifier("glove-50d", tfidf_stack=True).fit(data)
