"""The estimators are scikit-learn estimators: parameters in, clone-able, never changed by fit."""

import pytest
from sklearn.base import clone

from transferlab.data.records import Examples
from transferlab.errors import ConfigError
from transferlab.models.classifier import TextClassifier

from conftest import sentiment_data


def test_clone_copies_parameters_including_mutable_ones():
    clf = TextClassifier("glove-50d", "cnn", epochs=2, head_options={"filters": 8}, class_weight={"a": 2.0})
    twin = clone(clf)  # raised RuntimeError before: get_params returned copies of head_options
    assert twin is not clf and twin.get_params() == clf.get_params()
    assert twin.get_params()["head_options"] == {"filters": 8} and twin.epochs == 2


def test_set_params_and_unknown_names():
    clf = TextClassifier().set_params(epochs=4, head="dan")
    assert clf.get_params()["epochs"] == 4 and clf.head == "dan"
    with pytest.raises(ValueError):
        clf.set_params(epoch=4)
    with pytest.raises(ConfigError, match="unknown option"):
        TextClassifier(epoch=4)


@pytest.mark.slow
def test_fit_leaves_the_constructor_arguments_alone():
    texts, labels = sentiment_data(24)
    clf = TextClassifier("glove-50d", epochs=1, max_length=12, seed=0, patience=None, head_options={"filters": 4})
    before = clf.get_params()
    clf.fit(Examples(texts, labels), validation=Examples(texts[:6], labels[:6]))
    assert clf.get_params() == before  # defaults (head, lr, batch size) resolved into model_config_, not here
    assert clf.head is None and clf.model_config.head == "cnn" and clf.train_config.batch_size == 32
    twin = clone(clf)
    assert not hasattr(twin, "module_") and twin.get_params() == before


def test_every_estimator_clones():
    from transferlab.models.pairs import PairScorer
    from transferlab.models.tagger import TokenTagger

    for est in (TokenTagger("glove-50d", crf=True, case_features=True), PairScorer("minilm", strategy="contrastive")):
        twin = clone(est)
        assert type(twin) is type(est) and twin.get_params() == est.get_params()
