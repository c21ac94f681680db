"""Decisions that hold up with few positives: a warning when a threshold rests on a small validation part, and
thresholds/calibration fitted on out-of-fold scores of a K-fold cross-validation (``cv_folds`` / ``train --cv``)."""

import numpy as np
import pytest

from transferlab.data.records import Examples
from transferlab.errors import ConfigError, DataError
from transferlab.models.classifier import TextClassifier

from conftest import skewed_security as skewed


KW = dict(encoder="glove-50d", head="dan", epochs=6, max_length=12, seed=0, lr=5e-3, class_weight="auto")


def test_a_threshold_on_few_validation_positives_warns_and_names_cv():
    train, val = skewed(), skewed(4, 36, seed=1)
    with pytest.warns(UserWarning, match=r"only 4 example\(s\) of 'security'.*--cv 5"):
        TextClassifier(**KW, threshold="g").fit(train, validation=val)


@pytest.mark.slow
def test_cv_fits_the_threshold_on_out_of_fold_scores_of_all_the_data(tmp_path):
    train, val = skewed(), skewed(4, 36, seed=1)
    clf = TextClassifier(**KW, threshold="g", calibration="temperature", cv_folds=4)
    clf.fit(train, validation=val, out_dir=tmp_path / "m")
    d = clf.decision_
    assert d["fitted_on"].startswith("out-of-fold") and d["calibration"]["fitted_on"] == d["fitted_on"]
    assert d["threshold"]["validation"]["positives"] == 16 and d["threshold"]["validation"]["n"] == 160
    assert d["cv"]["folds"] == 4 and 0 <= d["cv"]["recall"]["sd"] and d["cv"]["recall"]["mean"] > 0.5
    assert clf.fit_info_["n_train"] == 160 and clf.fit_info_["n_validation"] == 0  # refitted on all of it
    loaded = TextClassifier.load(tmp_path / "m")
    assert loaded.decision_["cv"] == d["cv"] and loaded.predict(train.texts[:5]) == clf.predict(train.texts[:5])
    # the out-of-fold scores are honest: the same as fitting each fold by hand
    oof = clf._out_of_fold(Examples.concat(train, val), clf.train_config_)
    assert oof["logits"].shape == (160, 2) and sorted(np.bincount(oof["fold"])) == [40, 40, 40, 40]


def test_cv_refuses_what_it_cannot_do():
    train = skewed(3, 30)
    with pytest.raises(DataError, match="at least 5 examples of every class"):
        TextClassifier(**KW, threshold="g", cv_folds=5).fit(train)
    with pytest.raises(ConfigError, match="at least 2 folds"):
        TextClassifier(**KW, threshold="g", cv_folds=1).fit(train)


@pytest.mark.slow
def test_train_cv_on_the_command_line(tmp_path):
    from typer.testing import CliRunner

    from transferlab.cli import app

    from conftest import write_csv

    data = skewed(15, 105)
    path = write_csv(tmp_path / "d.csv", zip(data.texts, data.labels))
    res = CliRunner().invoke(app, ["train", "--data", str(path), "--head", "dan", "--epochs", "4", "--max-length",
                                   "12", "--threshold", "g", "--cv", "3", "--out", str(tmp_path / "m")])
    assert res.exit_code == 0, res.output
    said = " ".join(res.output.split())
    assert "on out-of-fold scores, 3-fold cross-validation" in said and "across the 3 folds" in said
